//! What every server-side peer connection is built with: codecs, RTCP feedback, header
//! extensions, interceptors and network settings.
//!
//! One codec per kind keeps forwarding a pure copy: VP8 (payload type 96) and Opus (111), which
//! every browser supports. Retransmissions go on the original SSRC (no RTX): the NACK responder
//! answers from the server's own history, and no RTX SSRC has to be carried across the reuse of
//! a transceiver slot.
//!
//! Feedback is decided per direction:
//! - towards the server (the publisher's tracks): `transport-cc`, so the publisher's own
//!   send-side estimator ramps up its bitrate; the server runs the TWCC receiver interceptor.
//! - towards the subscriber: no transport-wide sequence numbers are stamped on forwarded
//!   packets (the extension is offered only on receiving transceivers), so a browser subscriber
//!   estimates with its receive-side estimator and reports it as `goog-remb`.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use rtc::interceptor::{
    NackGeneratorBuilder, NackResponderBuilder, ReceiverReportBuilder, Registry,
    SenderReportBuilder, Slot, TwccReceiverBuilder,
};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::mpsc;

use crate::media::audio_level::AUDIO_LEVEL_URI;
use crate::media::send_time::ABS_SEND_TIME_URI;
use crate::rtc::feedback::{Feedback, FeedbackTap};
use crate::rtc::public_address::PublicAddresses;
use crate::signal::protocol::TrackKind;

/// The payload type the server offers VP8 on.
pub const VP8_PAYLOAD_TYPE: u8 = 96;
/// The payload type the server offers Opus on.
pub const OPUS_PAYLOAD_TYPE: u8 = 111;

/// Where the interceptor that copies subscriber feedback sits: application-most, so every
/// interceptor before it has acted on the RTCP it sees.
const FEEDBACK_TAP_SLOT: usize = 14_000;

/// How often ICE sends a connectivity check while connecting (RFC 8445's Ta).
const ICE_CHECK_INTERVAL: Duration = Duration::from_millis(50);
/// Checks per candidate pair before it counts as failed: 1.4 s of trying, as webrtc-rs's
/// default of 7 at 200 ms.
const ICE_MAX_BINDING_REQUESTS: u16 = 28;

/// Where every connection's media flows: the shared ports on each media address, and what is
/// announced for them.
#[derive(Debug, Clone)]
pub struct MediaSettings {
    /// The UDP sockets' addresses, one per media address, all on the one media port.
    pub udp: Vec<SocketAddr>,
    /// The ICE-TCP listeners' addresses, if ICE over TCP is on.
    pub tcp: Vec<SocketAddr>,
    /// The public addresses announced for the local ones (1:1 NAT).
    pub public: PublicAddresses,
}

impl MediaSettings {
    /// Host candidates for every media address: UDP, and TCP passive at a lower priority so
    /// that a client uses it only when UDP does not get through (RFC 6544).
    pub fn local_candidates(&self) -> Vec<RTCIceCandidateInit> {
        let udp = self.udp.iter().enumerate().map(|(index, address)| {
            // RFC 8445's host priority: type preference 126, local preference by order.
            let priority = (126u32 << 24) | ((65_535 - index as u32) << 8) | 255;
            format!(
                "candidate:{} 1 udp {priority} {} {} typ host",
                index + 1,
                address.ip(),
                address.port()
            )
        });
        let tcp = self.tcp.iter().enumerate().map(|(index, address)| {
            // Below every UDP candidate: a lower type preference for TCP (RFC 6544 4.2).
            let priority = (80u32 << 24) | ((65_535 - index as u32) << 8) | 255;
            format!(
                "candidate:{} 1 tcp {priority} {} {} typ host tcptype passive",
                1001 + index,
                address.ip(),
                address.port()
            )
        });
        udp.chain(tcp)
            .map(|candidate| RTCIceCandidateInit {
                candidate,
                ..Default::default()
            })
            .collect()
    }
}

/// The codec the server uses for a kind.
pub fn codec(kind: TrackKind) -> RTCRtpCodec {
    match kind {
        TrackKind::Video => RTCRtpCodec {
            mime_type: MIME_TYPE_VP8.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        },
        TrackKind::Audio => RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
    }
}

fn feedback(typ: &str, parameter: &str) -> RTCPFeedback {
    RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    }
}

/// A track to send on one SSRC with the server's codec for `kind`.
pub fn single_stream_track(
    stream: String,
    track: String,
    label: String,
    kind: TrackKind,
    ssrc: u32,
) -> MediaStreamTrack {
    let codec_kind = match kind {
        TrackKind::Audio => RtpCodecKind::Audio,
        TrackKind::Video => RtpCodecKind::Video,
    };
    MediaStreamTrack::new(
        stream,
        track,
        label,
        codec_kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: codec(kind),
            ..Default::default()
        }],
    )
}

/// A transceiver that only sends: how clients publish, and how the server forwards.
pub fn send_only() -> Option<RTCRtpTransceiverInit> {
    Some(RTCRtpTransceiverInit {
        direction: RTCRtpTransceiverDirection::Sendonly,
        streams: vec![],
        send_encodings: vec![],
    })
}

/// The media engine: codecs, feedback and header extensions, as described above.
pub fn media_engine() -> Result<MediaEngine, rtc::shared::error::Error> {
    let mut engine = MediaEngine::default();
    engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: codec(TrackKind::Video),
            payload_type: VP8_PAYLOAD_TYPE,
        },
        RtpCodecKind::Video,
    )?;
    engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: codec(TrackKind::Audio),
            payload_type: OPUS_PAYLOAD_TYPE,
        },
        RtpCodecKind::Audio,
    )?;
    for (typ, parameter) in [
        ("nack", ""),
        ("nack", "pli"),
        ("ccm", "fir"),
        ("goog-remb", ""),
        ("transport-cc", ""),
    ] {
        engine.register_feedback(feedback(typ, parameter), RtpCodecKind::Video);
    }
    engine.register_feedback(feedback("transport-cc", ""), RtpCodecKind::Audio);
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        engine.register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: rtc::sdp::extmap::SDES_MID_URI.to_owned(),
            },
            kind,
            None,
        )?;
        engine.register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: rtc::sdp::extmap::TRANSPORT_CC_URI.to_owned(),
            },
            kind,
            Some(RTCRtpTransceiverDirection::Recvonly),
        )?;
    }
    // The send time of every forwarded video packet, for the subscriber's estimator (see
    // `media::send_time`).
    engine.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: ABS_SEND_TIME_URI.to_owned(),
        },
        RtpCodecKind::Video,
        Some(RTCRtpTransceiverDirection::Sendonly),
    )?;
    // The level of every audio packet a publisher sends, for speaker detection (see
    // `media::audio_level`); nothing forwarded carries it.
    engine.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: AUDIO_LEVEL_URI.to_owned(),
        },
        RtpCodecKind::Audio,
        Some(RTCRtpTransceiverDirection::Recvonly),
    )?;
    for uri in [
        rtc::sdp::extmap::SDES_RTP_STREAM_ID_URI,
        rtc::sdp::extmap::SDES_REPAIR_RTP_STREAM_ID_URI,
    ] {
        engine.register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: uri.to_owned(),
            },
            RtpCodecKind::Video,
            Some(RTCRtpTransceiverDirection::Recvonly),
        )?;
    }
    Ok(engine)
}

/// Packets each forwarded video stream keeps for retransmission: about 3 s of a 1.5 Mbit/s
/// camera, over 1 s of a 4 Mbit/s screen share, far beyond the round trip a NACK waits for.
/// webrtc-rs's default of 1024 takes about 115 KB for every video slot of every subscriber,
/// twice this, with nothing gained (docs/benchmarks.md, "What a connection costs").
pub const RETRANSMISSION_HISTORY: u16 = 512;

/// The interceptor chain: NACK both ways, RTCP reports, TWCC feedback for what the server
/// receives, and the tap that hands subscriber feedback to the session. None of them keeps an
/// inbound packet back (no jitter buffer, no FEC): `rtc::padding` takes a padded packet that
/// does not come out of the core by the next `poll_read` for one the core refused.
pub fn interceptors(feedback: mpsc::Sender<Feedback>) -> Registry {
    Registry::new()
        .with(
            Slot::NackResponder,
            NackResponderBuilder::new()
                .with_size(RETRANSMISSION_HISTORY)
                .build(),
        )
        .with(Slot::NackGenerator, NackGeneratorBuilder::new().build())
        .with(Slot::TwccReceiver, TwccReceiverBuilder::new().build())
        .with(Slot::ReceiverReport, ReceiverReportBuilder::new().build())
        .with(Slot::SenderReport, SenderReportBuilder::new().build())
        .with(Slot::from(FEEDBACK_TAP_SLOT), FeedbackTap::new(feedback))
}

/// ICE timing as browsers have it, for the server and the synthetic participants alike.
///
/// - A peer's first connectivity checks often arrive before its trickled candidates, so its
///   address is first known as peer-reflexive. webrtc-rs waits a second before accepting such
///   a pair, which only delayed joins by that second; browsers do not wait.
/// - Connectivity checks are paced at RFC 8445's Ta of 50 ms rather than webrtc-rs's 200 ms:
///   each round of checks and the nomination after it otherwise add 200 ms to a join. The
///   number of attempts grows to match, keeping the 1.4 s a pair is tried for.
pub fn prompt_ice(settings: SettingEngineBuilder) -> SettingEngineBuilder {
    settings
        .with_prflx_acceptance_min_wait(Some(Duration::ZERO))
        .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), Some(ICE_MAX_BINDING_REQUESTS))
}

/// Builds one server-side connection, reporting subscriber feedback to `feedback`. Its ICE
/// credentials are the core's own, fresh at every ICE restart: the media port learns them from
/// each local description.
pub fn build(
    settings: &MediaSettings,
    feedback: mpsc::Sender<Feedback>,
    now: Instant,
) -> Result<RTCPeerConnection, rtc::shared::error::Error> {
    let mut network_types = vec![NetworkType::Udp4, NetworkType::Udp6];
    if !settings.tcp.is_empty() {
        network_types.extend([NetworkType::Tcp4, NetworkType::Tcp6]);
    }
    // No mDNS: the server announces explicit addresses, and a browser that hides its address
    // behind a `.local` name is still reached through the peer-reflexive candidate its first
    // connectivity check creates.
    let setting_engine = prompt_ice(
        SettingEngineBuilder::new()
            .with_network_types(network_types)
            .with_multicast_dns_mode(MulticastDnsMode::Disabled),
    )
    .build();
    RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media_engine()?)
        .with_setting_engine(setting_engine)
        .with_interceptor_registry(interceptors(feedback))
        .build(now)
}

/// The local IPv4 addresses to gather on by default: every interface, loopback included, so
/// that a browser on the same machine (or in a namespace holding only `lo`) and one on the
/// LAN can both connect. Link-local addresses are skipped.
pub fn default_media_ips() -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
        .map(|interfaces| {
            interfaces
                .into_iter()
                .map(|interface| interface.ip())
                .filter(|ip| match ip {
                    IpAddr::V4(v4) => !v4.is_link_local() && !v4.is_unspecified(),
                    IpAddr::V6(_) => false,
                })
                .collect()
        })
        .unwrap_or_default();
    if ips.is_empty() {
        ips.push(IpAddr::from([127, 0, 0, 1]));
    }
    ips.sort();
    ips.dedup();
    ips
}

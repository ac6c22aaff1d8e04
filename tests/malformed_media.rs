//! Publisher input the server cannot use is refused or dropped: it never ends the session that
//! sent it, and never reaches a subscriber.

mod common;

use common::publisher::HandPublisher;
use common::{server, wait_for_counts};
use switchyard::Counts;
use switchyard::signal::protocol::{ErrorCode, ServerMessage, TrackKind};

/// The offer without any line that declares an SSRC: what a client that relies on the MID and
/// RID header extensions to tell its streams apart may send.
fn without_ssrc_lines(sdp: &str) -> String {
    sdp.split_inclusive("\r\n")
        .filter(|line| !line.starts_with("a=ssrc:") && !line.starts_with("a=ssrc-group:"))
        .collect()
}

fn errors(messages: &[ServerMessage]) -> Vec<(ErrorCode, String)> {
    messages
        .iter()
        .filter_map(|message| match message {
            ServerMessage::Error { code, message } => Some((*code, message.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_that_declares_no_ssrc_is_refused_and_the_session_goes_on() {
    let server = server().await;
    let publisher = HandPublisher::join(
        &server,
        "no-ssrc",
        "ada",
        &[TrackKind::Video, TrackKind::Audio],
        without_ssrc_lines,
    )
    .await;
    publisher
        .wait_until("a reply to the offer", |seen| {
            !errors(&seen.messages).is_empty() || seen.closed.is_some()
        })
        .await;
    let seen = publisher.seen();
    assert_eq!(seen.closed, None, "the session goes on: {seen:#?}");
    // The candidates the client trickles meanwhile are refused too: there is no connection.
    let errors: Vec<_> = errors(&seen.messages)
        .into_iter()
        .filter(|(code, _)| *code != ErrorCode::InvalidCandidate)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, ErrorCode::InvalidSdp, "{errors:?}");
    assert!(errors[0].1.contains("`a=ssrc`"), "says why: {errors:?}");
    assert!(
        !seen
            .messages
            .iter()
            .any(|message| matches!(message, ServerMessage::Answer { .. })),
        "not answered"
    );

    // The same offer with its SSRCs is answered, and the connection comes up.
    publisher.offer(publisher.local_sdp().await);
    publisher
        .wait_until("the connection to come up", |seen| {
            seen.state == Some(webrtc::peer_connection::RTCPeerConnectionState::Connected)
        })
        .await;
    publisher.leave().await;
    wait_for_counts(&server, Counts::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_declares_no_ssrc_is_refused_and_the_session_goes_on() {
    let server = server().await;
    let camera = common::join(
        &server,
        "no-ssrc-answer",
        "ada",
        common::camera_and_microphone(),
    )
    .await;
    // Its offer declares its SSRCs; its answers to the server's offers do not.
    let publisher = HandPublisher::join_editing_answers(
        &server,
        "no-ssrc-answer",
        "brian",
        &[TrackKind::Video],
        str::to_owned,
        without_ssrc_lines,
    )
    .await;
    publisher
        .wait_until("the answer refused", |seen| {
            errors(&seen.messages)
                .iter()
                .any(|(code, _)| *code == ErrorCode::InvalidSdp)
                || seen.closed.is_some()
        })
        .await;
    let seen = publisher.seen();
    let refused: Vec<_> = errors(&seen.messages)
        .into_iter()
        .filter(|(code, _)| *code != ErrorCode::InvalidCandidate)
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, ErrorCode::InvalidSdp);
    assert!(refused[0].1.contains("`a=ssrc`"), "says why: {refused:?}");
    // The connection its offer set up goes on: its video reaches the others.
    let track = &publisher.tracks[0];
    let mut numbering = Numbering::new(
        track.ssrc,
        loadtest::synthetic::track_tag(&publisher.id, &track.id),
    );
    let mut ticker = tokio::time::interval(std::time::Duration::from_millis(33));
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    while !camera
        .observed()
        .live_tracks()
        .any(|track| track.participant == publisher.id && track.intact > 0)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no video from brian"
        );
        ticker.tick().await;
        for packet in numbering.frame(true) {
            publisher.write(0, packet).await;
        }
    }
    assert_eq!(publisher.seen().closed, None);
    publisher.leave().await;
    camera.leave().await;
    wait_for_counts(&server, Counts::default()).await;
}

/// Numbers a synthetic VP8 track the way a sender does.
struct Numbering {
    ssrc: u32,
    tag: u32,
    sequence: u16,
    timestamp: u32,
    index: u64,
}

impl Numbering {
    fn new(ssrc: u32, tag: u32) -> Self {
        Self {
            ssrc,
            tag,
            sequence: rand::random(),
            timestamp: rand::random(),
            index: 0,
        }
    }

    fn packet(&mut self, marker: bool, payload: bytes::Bytes) -> rtc::rtp::Packet {
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                marker,
                payload_type: switchyard::rtc::setup::VP8_PAYLOAD_TYPE,
                sequence_number: self.sequence,
                timestamp: self.timestamp,
                ssrc: self.ssrc,
                ..Default::default()
            },
            payload,
        };
        self.sequence = self.sequence.wrapping_add(1);
        packet
    }

    /// One frame's packets, each payload carrying a probe the subscriber checks.
    fn frame(&mut self, keyframe: bool) -> Vec<rtc::rtp::Packet> {
        let parts = loadtest::synthetic::vp8_frame(
            &loadtest::synthetic::VideoShape::default(),
            keyframe,
            self.tag,
            0,
            &mut self.index,
        );
        let packets = parts
            .into_iter()
            .map(|part| self.packet(part.last, part.payload))
            .collect();
        self.timestamp = self.timestamp.wrapping_add(3000);
        packets
    }

    /// One frame's packets, each ending in padding with a valid pad length (as many bytes as
    /// align the packet to four, the last of them saying how many).
    fn padded_frame(&mut self, keyframe: bool) -> Vec<rtc::rtp::Packet> {
        let mut packets = self.frame(keyframe);
        for packet in &mut packets {
            packet.header.padding = true;
        }
        packets
    }

    /// A padding-only packet, as a sender probes its bandwidth with: the padding bit, and four
    /// bytes of padding whose last says four.
    fn padding_only(&mut self) -> rtc::rtp::Packet {
        let mut packet = self.packet(false, bytes::Bytes::new());
        packet.header.padding = true;
        packet
    }
}

/// The series of `/metrics` counting malformed packets dropped for `reason`.
async fn malformed(server: &switchyard::RunningServer, reason: &str) -> f64 {
    let (status, body) = common::http::get(server.local_addr(), "/metrics")
        .await
        .expect("/metrics answers");
    assert_eq!(status, 200);
    let scrape = common::prometheus::parse(&body).unwrap_or_else(|error| panic!("{error}"));
    scrape.value(&format!(
        "switchyard_rtp_packets_malformed_total{{reason=\"{reason}\"}}"
    ))
}

/// A packet whose padding bit is set and whose padding length (its last byte, 255) is longer
/// than the packet: the server's core refuses it once it has decrypted it. webrtc-rs marshals a packet's CSRC count into the header's four bits
/// without a check, so 32 CSRCs set the padding bit and leave the count at zero: the CSRCs'
/// bytes become the start of the payload (a VP8 descriptor, then zeros).
fn over_padded(numbering: &mut Numbering, index: u64) -> rtc::rtp::Packet {
    let mut payload = probe_payload(numbering.tag, index).to_vec();
    payload.push(0xff);
    let mut packet = numbering.packet(true, payload.into());
    packet.header.csrc = std::iter::once(0x1011_0200).chain([0; 31]).collect();
    packet
}

/// A packet whose header extension element runs past its block. Through the same quirk, 31
/// CSRCs set the extension bit and a count of 15: the 16th CSRC is then read as the extension
/// header (one-byte profile, a block of one word) and the 17th as the block, whose one element
/// claims 16 bytes.
fn extension_overrun(numbering: &mut Numbering, index: u64) -> rtc::rtp::Packet {
    let mut packet = numbering.packet(true, probe_payload(numbering.tag, index));
    packet.header.csrc = [0; 15]
        .into_iter()
        .chain([0xbede_0001, 0x1f00_0000])
        .chain([0; 14])
        .collect();
    packet
}

/// A VP8 payload whose descriptor announces a picture id it does not hold.
fn truncated_descriptor(numbering: &mut Numbering) -> rtc::rtp::Packet {
    numbering.packet(true, bytes::Bytes::from_static(&[0x90, 0x80]))
}

/// A delta frame's payload, a VP8 descriptor then a probe, as the viewer checks them.
fn probe_payload(tag: u32, index: u64) -> bytes::Bytes {
    loadtest::synthetic::payload(
        &[0x10, 0x01, 0x02, 0x00],
        48,
        loadtest::synthetic::Probe {
            tag,
            layer: 0,
            index,
            sent_at_micros: loadtest::synthetic::now_micros(),
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_are_dropped_counted_and_never_reach_a_subscriber() {
    let server = server().await;
    let viewer = common::join(&server, "malformed", "viewer", vec![]).await;
    let publisher = HandPublisher::join(
        &server,
        "malformed",
        "ada",
        &[TrackKind::Video],
        str::to_owned,
    )
    .await;
    let track = &publisher.tracks[0];
    let mut numbering = Numbering::new(
        track.ssrc,
        loadtest::synthetic::track_tag(&publisher.id, &track.id),
    );

    // Frames until the viewer has video: a keyframe every tenth, as it may join late.
    let mut ticker = tokio::time::interval(std::time::Duration::from_millis(33));
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    let mut frames = 0u32;
    while viewer.observed().flowing_tracks() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no video reached the viewer"
        );
        ticker.tick().await;
        for packet in numbering.frame(frames.is_multiple_of(10)) {
            publisher.write(0, packet).await;
        }
        frames += 1;
    }
    for reason in ["rtp_header", "vp8_descriptor", "padding"] {
        assert_eq!(malformed(&server, reason).await, 0.0, "{reason}");
    }

    // Packets with valid padding, and padding-only packets as a sender probes its bandwidth
    // with: forwarded, and never counted.
    let first_padded = numbering.index;
    let mut padding_only = 0;
    for _ in 0..5 {
        ticker.tick().await;
        publisher.write(0, numbering.padding_only()).await;
        for packet in numbering.padded_frame(false) {
            publisher.write(0, packet).await;
        }
        publisher.write(0, numbering.padding_only()).await;
        padding_only += 2;
    }
    let last_padded = numbering.index - 1;
    viewer
        .wait_until("the padded frames", common::PATIENCE, |observed| {
            observed.live_tracks().any(|track| {
                track
                    .quality
                    .indices
                    .span()
                    .is_some_and(|span| *span.end() >= last_padded)
            })
        })
        .await
        .unwrap_or_else(|error| panic!("{error}: {:#?}", viewer.observed().received));
    let observed = viewer.observed();
    let received = observed.live_tracks().next().expect("the video track");
    assert_eq!(
        received
            .quality
            .indices
            .arrived_in(first_padded..=last_padded),
        last_padded - first_padded + 1,
        "every padded packet arrived intact: {received:#?}"
    );
    assert_eq!(malformed(&server, "padding").await, 0.0);
    let keyframe_requests = publisher.seen().keyframe_requests;
    let nacks = publisher.seen().nacks;

    // Four malformed packets between valid frames, each a frame of its own; the first three
    // carry probes with indices of their own, so that any form of them reaching the viewer
    // shows.
    let malformed_indices = [numbering.index, numbering.index + 1, numbering.index + 2];
    numbering.index += 3;
    let injected = [
        over_padded(&mut numbering, malformed_indices[0]),
        extension_overrun(&mut numbering, malformed_indices[1]),
        over_padded(&mut numbering, malformed_indices[2]),
        truncated_descriptor(&mut numbering),
    ];
    let first_valid = numbering.index;
    for packet in injected {
        ticker.tick().await;
        publisher.write(0, packet).await;
        numbering.timestamp = numbering.timestamp.wrapping_add(3000);
        for packet in numbering.frame(false) {
            publisher.write(0, packet).await;
        }
    }
    for frame in 0..10 {
        ticker.tick().await;
        for packet in numbering.frame(frame == 9) {
            publisher.write(0, packet).await;
        }
    }
    // The server asks for what it never saw; the publisher sends each again, the over-padded
    // ones included, and SRTP refuses those as replays.
    publisher
        .wait_until("NACKs for the gaps", |seen| seen.nacks > nacks)
        .await;
    for _ in 0..3 {
        ticker.tick().await;
        for packet in numbering.frame(false) {
            publisher.write(0, packet).await;
        }
    }
    let last_valid = numbering.index - 1;
    viewer
        .wait_until(
            "the frames after the malformed packets",
            common::PATIENCE,
            |observed| {
                observed.live_tracks().any(|track| {
                    track
                        .quality
                        .indices
                        .span()
                        .is_some_and(|span| *span.end() >= last_valid)
                })
            },
        )
        .await
        .unwrap_or_else(|error| panic!("{error}: {:#?}", viewer.observed().received));
    let observed = viewer.observed();
    let received = observed.live_tracks().next().expect("the video track");
    assert_eq!(
        received.corrupted, padding_only,
        "nothing malformed arrived, only the padding-only packets carried no probe: {received:#?}"
    );
    for index in malformed_indices {
        assert_eq!(received.quality.indices.arrived_in(index..=index), 0);
    }
    assert_eq!(
        received
            .quality
            .indices
            .arrived_in(first_valid..=last_valid),
        last_valid - first_valid + 1,
        "every valid packet arrived intact"
    );

    // The header that would have been misread and the unreadable VP8 payload are counted (the
    // first perhaps more than once: it is dropped before decryption, so each retransmission
    // of it is too). The over-padded packets, refused by the core after decryption, are counted
    // once each: their retransmissions are replays.
    assert!(malformed(&server, "rtp_header").await >= 1.0);
    assert_eq!(malformed(&server, "vp8_descriptor").await, 1.0);
    assert_eq!(malformed(&server, "padding").await, 2.0);
    // The gaps they leave are healed by a keyframe the server asks for.
    publisher
        .wait_until("a keyframe request after the drops", |seen| {
            seen.keyframe_requests > keyframe_requests
        })
        .await;

    publisher.leave().await;
    viewer.leave().await;
    wait_for_counts(&server, Counts::default()).await;
}

/// Polls `/metrics` until the series `series` reaches `at_least`, for at most
/// [`common::PATIENCE`]; returns its value then.
async fn wait_for_series(server: &switchyard::RunningServer, series: &str, at_least: f64) -> f64 {
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    let mut ticker = tokio::time::interval(std::time::Duration::from_millis(20));
    loop {
        let (status, body) = common::http::get(server.local_addr(), "/metrics")
            .await
            .expect("/metrics answers");
        assert_eq!(status, 200);
        let scrape = common::prometheus::parse(&body).unwrap_or_else(|error| panic!("{error}"));
        let value = scrape.value(series);
        if value >= at_least {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} stayed at {value}, below {at_least}"
        );
        ticker.tick().await;
    }
}

/// A sender's first packets may be padding (Chrome probes its bandwidth before it has media):
/// they open the track and are not counted, while an over-padded packet is counted even
/// before the track's first packet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn padding_before_the_first_media_packet() {
    let server = server().await;
    let publisher = HandPublisher::join(
        &server,
        "first-padding",
        "ada",
        &[TrackKind::Video],
        str::to_owned,
    )
    .await;
    // Both sides of the connection are up: the publisher's may be first, or the server's.
    publisher
        .wait_until("the connection to come up", |seen| {
            seen.state == Some(webrtc::peer_connection::RTCPeerConnectionState::Connected)
        })
        .await;
    wait_for_series(&server, "switchyard_join_seconds_count", 1.0).await;
    let track = &publisher.tracks[0];
    let mut numbering = Numbering::new(
        track.ssrc,
        loadtest::synthetic::track_tag(&publisher.id, &track.id),
    );
    let index = numbering.index;
    numbering.index += 1;
    publisher.write(0, over_padded(&mut numbering, index)).await;
    for _ in 0..5 {
        publisher.write(0, numbering.padding_only()).await;
    }
    // The padding-only packets open the track; the over-padded one went in before them.
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    let mut ticker = tokio::time::interval(std::time::Duration::from_millis(20));
    while server.counts().publications < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the padding did not open the track: {:?}",
            server.counts()
        );
        ticker.tick().await;
    }
    assert_eq!(
        wait_for_series(
            &server,
            "switchyard_rtp_packets_malformed_total{reason=\"padding\"}",
            1.0
        )
        .await,
        1.0
    );
    assert_eq!(publisher.seen().closed, None);
    publisher.leave().await;
    wait_for_counts(&server, Counts::default()).await;
}

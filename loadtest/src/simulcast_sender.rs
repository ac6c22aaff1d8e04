//! Sends one simulcast track: every layer its own RTP stream (SSRC, sequence numbers,
//! timestamps, packet indices) with its own keyframes, each packet stamped with the MID and RID
//! header extensions a server tells the streams apart by (the offer declares the layers with
//! `a=rid` and `a=simulcast`, and no SSRCs).
//!
//! Like a browser's encoder, it sends the layers [`simulcast::sending_layers`] chooses from the
//! server's `layers` message and the uplink estimate, answers a keyframe request naming one
//! layer's SSRC with a keyframe on that layer, and starts a layer again with a keyframe.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp;
use rtc::rtp::extension::HeaderExtension;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::shared::marshal::{Marshal, MarshalSize};
use switchyard::rtc::setup::{self as engine, VP8_PAYLOAD_TYPE};
use switchyard::signal::protocol::TrackKind;
use tokio::sync::{Notify, watch};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;

use crate::simulcast::{self, Layer, LayerControl};
use crate::synthetic::{self, VideoShape};

/// One layer's stream.
pub struct SimulcastStream {
    /// Its SSRC.
    pub ssrc: u32,
    /// The layer.
    pub layer: Layer,
    /// Set when a keyframe of this layer is wanted.
    pub keyframe_wanted: Arc<AtomicBool>,
}

/// Everything the media task of a simulcast track needs.
pub struct SimulcastSender {
    /// The track's tag, in every probe.
    pub tag: u32,
    /// Frame rate, keyframe interval, keyframe requests to ignore.
    pub shape: VideoShape,
    /// The layers, lowest first.
    pub streams: Vec<SimulcastStream>,
    /// Where the packets go.
    pub pipe: Arc<TrackLocalStaticRTP>,
    /// The transceiver's mid.
    pub mid: String,
    /// Woken when a keyframe is wanted.
    pub wake: Arc<Notify>,
    /// The server's wanted layers and the uplink estimate.
    pub control: watch::Receiver<LayerControl>,
}

/// A track whose encodings are the simulcast layers, each with its RID and SSRC: webrtc-rs
/// offers such a track with `a=rid:RID send` lines and `a=simulcast:send q;h;f`.
pub fn simulcast_track(
    participant: &str,
    track: &str,
    streams: &[(u32, Layer)],
) -> MediaStreamTrack {
    MediaStreamTrack::new(
        format!("{participant}-media"),
        track.to_owned(),
        track.to_owned(),
        RtpCodecKind::Video,
        streams
            .iter()
            .map(|(ssrc, layer)| RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    rid: layer.rid.to_owned(),
                    ssrc: Some(*ssrc),
                    ..Default::default()
                },
                active: true,
                codec: engine::codec(TrackKind::Video),
                max_bitrate: layer.bitrate as u32,
                ..Default::default()
            })
            .collect(),
    )
}

/// An SDES item carried as a header extension: the MID or the RID, as ASCII.
struct SdesItem(Bytes);

impl MarshalSize for SdesItem {
    fn marshal_size(&self) -> usize {
        self.0.len()
    }
}

impl Marshal for SdesItem {
    fn marshal_to(&self, buf: &mut [u8]) -> rtc::shared::error::Result<usize> {
        let len = self.0.len();
        if buf.len() < len {
            return Err(rtc::shared::error::Error::ErrBufferShort);
        }
        buf[..len].copy_from_slice(&self.0);
        Ok(len)
    }
}

fn sdes_extension(uri: &'static str, value: &str) -> HeaderExtension {
    HeaderExtension::Custom {
        uri: Cow::Borrowed(uri),
        extension: Box::new(SdesItem(Bytes::copy_from_slice(value.as_bytes()))),
    }
}

/// One layer's numbering and keyframe schedule.
struct LayerState {
    sequence: u16,
    timestamp: u32,
    index: u64,
    last_keyframe: Option<Instant>,
    requests_to_ignore: u32,
}

impl SimulcastSender {
    /// Sends until the task is aborted; `on_layers` hears the RIDs sent, whenever they change.
    pub async fn run(self, mut on_layers: impl FnMut(Vec<String>) + Send) {
        let layers: Vec<Layer> = self.streams.iter().map(|stream| stream.layer).collect();
        let mut states: Vec<LayerState> = self
            .streams
            .iter()
            .map(|_| LayerState {
                sequence: rand::random(),
                timestamp: rand::random(),
                index: 0,
                last_keyframe: None,
                requests_to_ignore: self.shape.ignored_keyframe_requests,
            })
            .collect();
        let mut sending = vec![false; layers.len()];
        let fps = self.shape.fps.max(1);
        let ticks_per_frame = 90_000 / fps;
        let mut ticker = tokio::time::interval(Duration::from_secs(1) / fps);
        loop {
            let tick = tokio::select! {
                _ = ticker.tick() => true,
                () = self.wake.notified() => false,
            };
            let chosen = simulcast::sending_layers(&layers, &self.control.borrow(), &sending);
            if chosen != sending {
                sending = chosen;
                on_layers(
                    layers
                        .iter()
                        .zip(&sending)
                        .filter(|(_, on)| **on)
                        .map(|(layer, _)| layer.rid.to_owned())
                        .collect(),
                );
            }
            let now = Instant::now();
            for ((stream, state), on) in self.streams.iter().zip(&mut states).zip(&sending) {
                let mut requested = stream.keyframe_wanted.swap(false, Ordering::AcqRel);
                if requested && state.requests_to_ignore > 0 {
                    state.requests_to_ignore -= 1;
                    requested = false;
                }
                if !on {
                    // A layer that starts again starts with a keyframe.
                    state.last_keyframe = None;
                    continue;
                }
                if !tick && !requested {
                    continue;
                }
                let keyframe = requested
                    || state.last_keyframe.is_none_or(|last| {
                        now.duration_since(last) >= self.shape.keyframe_interval
                    });
                if keyframe {
                    state.last_keyframe = Some(now);
                }
                self.send_frame(stream, state, keyframe).await;
                state.timestamp = state.timestamp.wrapping_add(ticks_per_frame);
            }
        }
    }

    async fn send_frame(&self, stream: &SimulcastStream, state: &mut LayerState, keyframe: bool) {
        let shape = stream.layer.shape(&self.shape);
        let parts = synthetic::vp8_frame(
            &shape,
            keyframe,
            self.tag,
            stream.layer.probe_byte(),
            &mut state.index,
        );
        for part in parts {
            let packet = rtp::Packet {
                header: rtp::header::Header {
                    version: 2,
                    marker: part.last,
                    payload_type: VP8_PAYLOAD_TYPE,
                    sequence_number: state.sequence,
                    timestamp: state.timestamp,
                    ssrc: stream.ssrc,
                    ..Default::default()
                },
                payload: part.payload,
            };
            let extensions = [
                sdes_extension(rtc::sdp::extmap::SDES_MID_URI, &self.mid),
                sdes_extension(rtc::sdp::extmap::SDES_RTP_STREAM_ID_URI, stream.layer.rid),
            ];
            // A packet written before the connection is up goes nowhere, as a browser's would.
            let _ = self
                .pipe
                .write_rtp_with_extensions(packet, &extensions)
                .await;
            state.sequence = state.sequence.wrapping_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulcast::LAYERS;

    #[test]
    fn the_track_declares_every_layer_with_its_rid_and_ssrc() {
        let streams: Vec<(u32, Layer)> = LAYERS
            .iter()
            .enumerate()
            .map(|(index, layer)| (index as u32 + 10, *layer))
            .collect();
        let track = simulcast_track("PA_1", "video0", &streams);
        let codings = track.codings();
        assert_eq!(codings.len(), 3);
        for (coding, (ssrc, layer)) in codings.iter().zip(&streams) {
            assert_eq!(coding.rtp_coding_parameters.rid, layer.rid);
            assert_eq!(coding.rtp_coding_parameters.ssrc, Some(*ssrc));
        }
    }

    #[tokio::test]
    async fn the_sender_follows_the_estimate_and_the_server_s_layers() {
        let streams: Vec<SimulcastStream> = LAYERS
            .iter()
            .enumerate()
            .map(|(index, layer)| SimulcastStream {
                ssrc: index as u32 + 1,
                layer: *layer,
                keyframe_wanted: Arc::new(AtomicBool::new(false)),
            })
            .collect();
        let pairs: Vec<(u32, Layer)> = streams.iter().map(|s| (s.ssrc, s.layer)).collect();
        let (control_tx, control) = watch::channel(LayerControl::default());
        let sender = SimulcastSender {
            tag: 1,
            shape: VideoShape {
                fps: 100,
                ..VideoShape::default()
            },
            streams,
            // Not bound to a connection: every write fails, as before a connection is up.
            pipe: Arc::new(TrackLocalStaticRTP::new(simulcast_track(
                "PA", "video0", &pairs,
            ))),
            mid: "0".to_owned(),
            wake: Arc::new(Notify::new()),
            control,
        };
        let (layers_tx, mut layers) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(sender.run(move |rids| {
            let _ = layers_tx.send(rids);
        }));
        let mut next = async || {
            tokio::time::timeout(Duration::from_secs(5), layers.recv())
                .await
                .expect("the sender reports a change")
                .expect("the sender runs")
        };
        assert_eq!(next().await, ["q", "h", "f"], "every layer at first");
        control_tx.send_modify(|control| control.estimate = Some(700_000));
        assert_eq!(next().await, ["q", "h"], "the top layer does not fit");
        control_tx.send_modify(|control| control.estimate = Some(100_000));
        assert_eq!(next().await, ["q"], "the lowest is always sent");
        control_tx.send_modify(|control| {
            control.estimate = None;
            control.wanted = Some(["q".to_owned(), "f".to_owned()].into());
        });
        assert_eq!(next().await, ["q", "f"], "what the server wants");
        task.abort();
    }

    #[tokio::test]
    async fn the_offer_declares_the_layers_and_the_extensions_a_server_needs() {
        use webrtc::media_stream::track_local::TrackLocal;
        use webrtc::peer_connection::{PeerConnection, PeerConnectionBuilder};

        let (events, _events) = tokio::sync::mpsc::unbounded_channel();
        let connection = PeerConnectionBuilder::new()
            .with_handler(Arc::new(crate::peer_events::EventForwarder::new(events)))
            .with_media_engine(crate::participant::client_media_engine(true).expect("codecs"))
            .with_udp_addrs(vec![std::net::SocketAddr::from(([127, 0, 0, 1], 0))])
            .build()
            .await
            .expect("a connection");
        let streams: Vec<(u32, Layer)> = LAYERS
            .iter()
            .enumerate()
            .map(|(index, layer)| (index as u32 + 100, *layer))
            .collect();
        let track = Arc::new(TrackLocalStaticRTP::new(simulcast_track(
            "PA", "video0", &streams,
        )));
        connection
            .add_transceiver_from_track(track as Arc<dyn TrackLocal>, engine::send_only())
            .await
            .expect("the track is added");
        let offer = connection.create_offer(None).await.expect("an offer").sdp;
        for line in [
            "a=rid:q send",
            "a=rid:h send",
            "a=rid:f send",
            "a=simulcast:send q;h;f",
            rtc::sdp::extmap::SDES_MID_URI,
            rtc::sdp::extmap::SDES_RTP_STREAM_ID_URI,
            rtc::sdp::extmap::TRANSPORT_CC_URI,
        ] {
            assert!(offer.contains(line), "{line} in {offer}");
        }
        let _ = connection.close().await;
    }

    #[test]
    fn sdes_items_are_written_as_they_are() {
        let item = SdesItem(Bytes::from_static(b"f"));
        let mut buffer = [0u8; 4];
        assert_eq!(item.marshal_to(&mut buffer).unwrap(), 1);
        assert_eq!(buffer[0], b'f');
        assert!(item.marshal_to(&mut []).is_err());
    }
}

//! One subscriber's sending slot for one track.
//!
//! A [`DownTrack`] is everything the router needs to write into one send-only transceiver of a
//! subscriber's connection: the SSRC the subscriber knows it by, the payload type and header
//! extension its SDP negotiated, the [`Rewriter`] and [`PictureNumbering`] that keep its
//! numbering continuous, and the [`Outlet`] (connection and transceiver) the packet is written
//! to. It outlives the publications that feed it: when one ends, its transceiver goes inactive
//! and is later reused for the next track of the same kind, so the subscriber's SDP does not
//! grow as people come and go.
//!
//! Of a track sent in several layers it forwards one, the *target* its subscriber's allocation
//! chose (or none: paused). A change of target takes effect at the target layer's next
//! keyframe; until then the layer forwarded so far goes on, so the subscriber never sees a
//! picture it cannot decode.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use rtc::rtp;

use crate::ids::{ConnectionId, LayerIndex, PublicationKey, Ssrc, SubscriberKey, TransceiverIndex};
use crate::media::picture_numbering::PictureNumbering;
use crate::media::rewriter::Rewriter;
use crate::signal::protocol::TrackKind;

/// Where a down-track's packets are written: a transceiver of a subscriber's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outlet {
    /// The subscriber's connection.
    pub connection: ConnectionId,
    /// The slot's transceiver on it.
    pub transceiver: TransceiverIndex,
}

/// A subscriber's sending slot; see the module documentation.
pub struct DownTrack {
    id: SubscriberKey,
    kind: TrackKind,
    ssrc: Ssrc,
    outlet: Outlet,
    payload_type: AtomicU8,
    /// The abs-send-time extension id the subscriber negotiated for this slot; 0 for none.
    abs_send_time_id: AtomicU8,
    ready: AtomicBool,
    /// The layer to forward, or [`NO_LAYER`] while paused.
    target: AtomicU8,
    /// The layer the subscriber's allocation would like, arriving or not, or [`NO_LAYER`]:
    /// what the publisher is asked to send.
    wanted: AtomicU8,
    /// Only the worker that owns the feeding publication locks it, so it is never contended.
    forwarding: Mutex<Forwarding>,
    sent: AtomicU64,
}

/// A layer index that names no layer.
const NO_LAYER: u8 = u8::MAX;

/// What the packet path changes as it forwards.
#[derive(Debug)]
struct Forwarding {
    rewriter: Rewriter,
    pictures: PictureNumbering,
    /// The layer being forwarded; `None` until a keyframe of the target starts it.
    current: Option<LayerIndex>,
}

fn to_layer(value: u8) -> Option<LayerIndex> {
    (value != NO_LAYER).then_some(LayerIndex(value))
}

fn from_layer(layer: Option<LayerIndex>) -> u8 {
    layer.map_or(NO_LAYER, |layer| layer.0)
}

impl std::fmt::Debug for DownTrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownTrack")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("ssrc", &self.ssrc)
            .finish_non_exhaustive()
    }
}

impl DownTrack {
    /// A down-track sending `kind` on `ssrc` through `transceiver` of `connection`.
    pub fn new(
        kind: TrackKind,
        ssrc: Ssrc,
        clock_rate: u32,
        connection: ConnectionId,
        transceiver: TransceiverIndex,
    ) -> Self {
        Self {
            id: SubscriberKey::next(),
            kind,
            ssrc,
            outlet: Outlet {
                connection,
                transceiver,
            },
            payload_type: AtomicU8::new(0),
            abs_send_time_id: AtomicU8::new(0),
            ready: AtomicBool::new(false),
            target: AtomicU8::new(0),
            wanted: AtomicU8::new(0),
            forwarding: Mutex::new(Forwarding {
                rewriter: Rewriter::new(clock_rate, rand::random(), rand::random()),
                pictures: PictureNumbering::default(),
                current: None,
            }),
            sent: AtomicU64::new(0),
        }
    }

    /// A process-wide unique id, used to key this subscriber's bandwidth estimates.
    pub fn id(&self) -> SubscriberKey {
        self.id
    }

    /// Audio or video.
    pub fn kind(&self) -> TrackKind {
        self.kind
    }

    /// The SSRC the subscriber receives this slot's packets on.
    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    /// Where its packets are written.
    pub fn outlet(&self) -> Outlet {
        self.outlet
    }

    /// Packets forwarded to the subscriber's connection so far.
    pub fn packets_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Records the payload type the subscriber's SDP negotiated for this slot's codec.
    pub fn set_payload_type(&self, payload_type: u8) {
        self.payload_type.store(payload_type, Ordering::Release);
    }

    /// Records the id the subscriber's SDP gave the abs-send-time header extension on this
    /// slot, or that it did not accept it.
    pub fn set_abs_send_time_id(&self, id: Option<u8>) {
        self.abs_send_time_id
            .store(id.unwrap_or(0), Ordering::Release);
    }

    /// Whether packets can reach the subscriber: its SDP negotiated this slot and its
    /// connection is up. Packets written before that would be lost (no SRTP keys yet) and
    /// would start the subscriber's numbering on a keyframe it never receives.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// See [`set_ready`](Self::set_ready).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Makes `source` the publication this slot forwards, from its next keyframe on, starting
    /// with its first layer until told otherwise.
    pub fn switch_to(&self, source: PublicationKey) {
        let mut forwarding = self.forwarding();
        forwarding.rewriter.switch_to(source);
        forwarding.current = None;
        self.set_target(Some(LayerIndex(0)), Some(LayerIndex(0)));
    }

    /// Stops forwarding anything until the next [`switch_to`](Self::switch_to).
    pub fn detach(&self) {
        let mut forwarding = self.forwarding();
        forwarding.rewriter.detach();
        forwarding.current = None;
    }

    /// The publication currently feeding this slot.
    pub fn source(&self) -> Option<PublicationKey> {
        self.forwarding().rewriter.source()
    }

    /// Chooses the layer to forward (`None`: pause) and the one the subscriber would like.
    pub fn set_target(&self, target: Option<LayerIndex>, wanted: Option<LayerIndex>) {
        self.target.store(from_layer(target), Ordering::Release);
        self.wanted.store(from_layer(wanted), Ordering::Release);
    }

    /// The layer to forward, `None` while paused.
    pub fn target(&self) -> Option<LayerIndex> {
        to_layer(self.target.load(Ordering::Acquire))
    }

    /// The layer the subscriber would like, arriving or not.
    pub fn wanted(&self) -> Option<LayerIndex> {
        to_layer(self.wanted.load(Ordering::Acquire))
    }

    /// The layer being forwarded, `None` before the target's first keyframe or while paused.
    pub fn current(&self) -> Option<LayerIndex> {
        self.forwarding().current
    }

    /// Rewrites one packet of `layer` of `source` for this subscriber: SSRC, payload type,
    /// sequence number and timestamp, the VP8 picture numbering, and `send_time` (an
    /// abs-send-time payload) when the subscriber negotiated that extension. `None` when the
    /// packet is not for this slot now: another source or layer, not ready, paused, or waiting
    /// for a keyframe (`can_start` says a decoder can begin at this packet).
    pub fn forward(
        &self,
        source: PublicationKey,
        layer: LayerIndex,
        packet: &rtp::Packet,
        can_start: bool,
        now: Instant,
        send_time: Option<&Bytes>,
    ) -> Option<rtp::Packet> {
        if !self.ready.load(Ordering::Acquire) {
            return None;
        }
        let target = self.target();
        let mut forwarding = self.forwarding();
        if target.is_none() {
            forwarding.current = None;
            return None;
        }
        let starts = forwarding.current != Some(layer);
        if starts {
            if target != Some(layer) || !can_start {
                return None;
            }
            // The target's keyframe: the layer changes here, its numbering continues the old.
            if forwarding.rewriter.source() != Some(source) {
                return None;
            }
            forwarding.rewriter.switch_to(source);
        }
        let numbers = forwarding.rewriter.rewrite(
            source,
            packet.header.sequence_number,
            packet.header.timestamp,
            can_start,
            now,
        )?;
        if starts {
            forwarding.current = Some(layer);
            if self.kind == TrackKind::Video {
                forwarding.pictures.restart(&packet.payload);
            }
        }
        let payload = if self.kind == TrackKind::Video {
            forwarding.pictures.rewrite(&packet.payload)
        } else {
            packet.payload.clone()
        };
        drop(forwarding);
        let mut outgoing = rtp::Packet {
            header: packet.header.clone(),
            payload,
        };
        outgoing.header.ssrc = self.ssrc.0;
        outgoing.header.payload_type = self.payload_type.load(Ordering::Acquire);
        outgoing.header.sequence_number = numbers.sequence;
        outgoing.header.timestamp = numbers.timestamp;
        let abs_send_time_id = self.abs_send_time_id.load(Ordering::Acquire);
        if let Some(send_time) = send_time.filter(|_| abs_send_time_id != 0) {
            // The id was negotiated, so it is in range; a failure would only leave the packet
            // without a send time.
            let _ = outgoing
                .header
                .set_extension(abs_send_time_id, send_time.clone());
        }
        self.sent.fetch_add(1, Ordering::Relaxed);
        Some(outgoing)
    }

    fn forwarding(&self) -> MutexGuard<'_, Forwarding> {
        self.forwarding
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::WorkerIndex;

    fn packet(sequence_number: u16, payload: &'static [u8]) -> rtp::Packet {
        rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                payload_type: 100,
                sequence_number,
                timestamp: 7,
                ssrc: 42,
                ..Default::default()
            },
            payload: Bytes::from_static(payload),
        }
    }

    fn down_track() -> DownTrack {
        DownTrack::new(
            TrackKind::Video,
            Ssrc(9),
            90_000,
            ConnectionId::next(WorkerIndex(0)),
            TransceiverIndex(3),
        )
    }

    #[test]
    fn forwards_only_when_ready_and_rewrites_the_header_not_the_payload() {
        let down = down_track();
        let now = Instant::now();
        down.switch_to(PublicationKey(1));
        down.set_payload_type(96);
        assert!(
            down.forward(
                PublicationKey(1),
                LayerIndex(0),
                &packet(5, b"abc"),
                true,
                now,
                None
            )
            .is_none()
        );
        down.set_ready(true);
        assert!(
            down.forward(
                PublicationKey(2),
                LayerIndex(0),
                &packet(5, b"abc"),
                true,
                now,
                None
            )
            .is_none()
        );
        let first = down
            .forward(
                PublicationKey(1),
                LayerIndex(0),
                &packet(5, b"abc"),
                true,
                now,
                None,
            )
            .expect("forwarded");
        let second = down
            .forward(
                PublicationKey(1),
                LayerIndex(0),
                &packet(6, b"def"),
                false,
                now,
                None,
            )
            .expect("forwarded");
        for sent in [&first, &second] {
            assert_eq!(sent.header.ssrc, 9);
            assert_eq!(sent.header.payload_type, 96);
        }
        assert_eq!(
            second.header.sequence_number,
            first.header.sequence_number.wrapping_add(1)
        );
        assert_eq!(&first.payload[..], b"abc");
        assert_eq!(down.packets_sent(), 2);
        assert_eq!(down.outlet().transceiver, TransceiverIndex(3));
    }

    #[test]
    fn stamps_the_send_time_only_with_a_negotiated_id() {
        let down = down_track();
        let now = Instant::now();
        down.switch_to(PublicationKey(1));
        down.set_payload_type(96);
        down.set_ready(true);
        let send_time = Bytes::from_static(&[1, 2, 3]);
        let plain = down
            .forward(
                PublicationKey(1),
                LayerIndex(0),
                &packet(1, b"a"),
                true,
                now,
                Some(&send_time),
            )
            .expect("forwarded");
        down.set_abs_send_time_id(Some(3));
        let stamped = down
            .forward(
                PublicationKey(1),
                LayerIndex(0),
                &packet(2, b"b"),
                false,
                now,
                Some(&send_time),
            )
            .expect("forwarded");
        let nothing_to_stamp = down
            .forward(
                PublicationKey(1),
                LayerIndex(0),
                &packet(3, b"c"),
                false,
                now,
                None,
            )
            .expect("forwarded");
        assert!(!plain.header.extension, "no id negotiated: no extension");
        assert_eq!(stamped.header.get_extension(3), Some(send_time.clone()));
        assert_eq!(stamped.header.get_extension_ids(), vec![3]);
        assert!(!nothing_to_stamp.header.extension, "nothing to stamp");
    }
}

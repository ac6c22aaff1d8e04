//! One subscriber's sending slot for one track.
//!
//! A [`DownTrack`] is everything the router needs to write into one send-only transceiver of a
//! subscriber's connection: the SSRC the subscriber knows it by, the payload type and header
//! extension its SDP negotiated, the [`Rewriter`] that keeps its numbering continuous, and the
//! [`PacketSink`] packets go to. It outlives the publications that feed it: when one ends, its
//! transceiver goes inactive and is later reused for the next track of the same kind, so the
//! subscriber's SDP does not grow as people come and go.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use futures::FutureExt;
use rtc::rtp;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;

use crate::media::bitrate::SubscriberKey;
use crate::media::rewriter::{Rewriter, SourceKey};
use crate::metrics::Metrics;
use crate::signal::protocol::TrackKind;

/// What became of one packet offered to a down-track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarded {
    /// Handed to the subscriber's connection.
    Sent,
    /// Not for this down-track now: another source, or waiting for a keyframe.
    Skipped,
    /// The subscriber's connection is not keeping up; the packet was dropped and counted.
    Dropped,
}

/// Where a down-track's packets go.
pub trait PacketSink: Send + Sync {
    /// Hands one packet over without waiting; `false` when it cannot be taken now.
    fn try_send(&self, packet: rtp::Packet) -> bool;
}

/// The subscriber's connection: `write_rtp` completes at once when the connection driver's
/// queue has room, and `now_or_never` drops the write (and the packet) instead of waiting
/// when it has not.
impl PacketSink for TrackLocalStaticRTP {
    fn try_send(&self, packet: rtp::Packet) -> bool {
        matches!(self.write_rtp(packet).now_or_never(), Some(Ok(())))
    }
}

/// A subscriber's sending slot; see the module documentation.
pub struct DownTrack {
    id: SubscriberKey,
    kind: TrackKind,
    ssrc: u32,
    sink: Arc<dyn PacketSink>,
    payload_type: AtomicU8,
    /// The abs-send-time extension id the subscriber negotiated for this slot; 0 for none.
    abs_send_time_id: AtomicU8,
    ready: AtomicBool,
    rewriter: Mutex<Rewriter>,
    metrics: Arc<Metrics>,
    sent: AtomicU64,
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
    /// A down-track writing packets of `kind` on `ssrc` into `sink`.
    pub fn new(
        kind: TrackKind,
        ssrc: u32,
        clock_rate: u32,
        sink: Arc<dyn PacketSink>,
        metrics: Arc<Metrics>,
    ) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            kind,
            ssrc,
            sink,
            payload_type: AtomicU8::new(0),
            abs_send_time_id: AtomicU8::new(0),
            ready: AtomicBool::new(false),
            rewriter: Mutex::new(Rewriter::new(clock_rate, rand::random(), rand::random())),
            metrics,
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
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Packets handed to the subscriber's connection so far.
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

    /// Makes `source` the publication this slot forwards, from its next keyframe on.
    pub fn switch_to(&self, source: SourceKey) {
        self.rewriter().switch_to(source);
    }

    /// Stops forwarding anything until the next [`switch_to`](Self::switch_to).
    pub fn detach(&self) {
        self.rewriter().detach();
    }

    /// The publication currently feeding this slot.
    pub fn source(&self) -> Option<SourceKey> {
        self.rewriter().source()
    }

    /// Forwards one packet of `source`: rewrites SSRC, payload type, sequence number and
    /// timestamp, stamps `send_time` (an abs-send-time payload) when the subscriber negotiated
    /// that extension, and hands the packet to the subscriber's connection without waiting.
    /// When that connection's queue is full the packet is dropped, so a slow subscriber never
    /// holds up the publisher's read loop or the other subscribers.
    pub fn forward(
        &self,
        source: SourceKey,
        packet: &rtp::Packet,
        can_start: bool,
        now: Instant,
        send_time: Option<&Bytes>,
    ) -> Forwarded {
        if !self.ready.load(Ordering::Acquire) {
            return Forwarded::Skipped;
        }
        let Some(numbers) = self.rewriter().rewrite(
            source,
            packet.header.sequence_number,
            packet.header.timestamp,
            can_start,
            now,
        ) else {
            return Forwarded::Skipped;
        };
        let mut outgoing = packet.clone();
        outgoing.header.ssrc = self.ssrc;
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
        let size = outgoing.payload.len() as u64;
        if self.sink.try_send(outgoing) {
            self.sent.fetch_add(1, Ordering::Relaxed);
            self.metrics.packets_out.fetch_add(1, Ordering::Relaxed);
            self.metrics.bytes_out.fetch_add(size, Ordering::Relaxed);
            Forwarded::Sent
        } else {
            self.metrics.packets_dropped.fetch_add(1, Ordering::Relaxed);
            Forwarded::Dropped
        }
    }

    fn rewriter(&self) -> MutexGuard<'_, Rewriter> {
        // A panic while holding this lock cannot leave the rewriter half-updated in a way that
        // matters more than losing the slot, so a poisoned lock is simply taken over.
        self.rewriter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// Keeps what it is given, or refuses everything.
    #[derive(Default)]
    struct Recorder {
        packets: Mutex<Vec<rtp::Packet>>,
        full: AtomicBool,
    }

    impl PacketSink for Recorder {
        fn try_send(&self, packet: rtp::Packet) -> bool {
            if self.full.load(Ordering::Relaxed) {
                return false;
            }
            self.packets.lock().unwrap().push(packet);
            true
        }
    }

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

    fn down_track() -> (DownTrack, Arc<Recorder>, Arc<Metrics>) {
        let recorder = Arc::new(Recorder::default());
        let metrics = Arc::new(Metrics::default());
        let down = DownTrack::new(
            TrackKind::Video,
            9,
            90_000,
            Arc::clone(&recorder) as Arc<dyn PacketSink>,
            Arc::clone(&metrics),
        );
        (down, recorder, metrics)
    }

    #[test]
    fn forwards_only_when_ready_and_rewrites_the_header_not_the_payload() {
        let (down, recorder, metrics) = down_track();
        let now = Instant::now();
        down.switch_to(1);
        down.set_payload_type(96);
        assert_eq!(
            down.forward(1, &packet(5, b"abc"), true, now, None),
            Forwarded::Skipped
        );
        down.set_ready(true);
        assert_eq!(
            down.forward(2, &packet(5, b"abc"), true, now, None),
            Forwarded::Skipped
        );
        assert_eq!(
            down.forward(1, &packet(5, b"abc"), true, now, None),
            Forwarded::Sent
        );
        assert_eq!(
            down.forward(1, &packet(6, b"def"), false, now, None),
            Forwarded::Sent
        );
        let packets = recorder.packets.lock().unwrap();
        assert_eq!(packets.len(), 2);
        assert!(
            packets
                .iter()
                .all(|p| p.header.ssrc == 9 && p.header.payload_type == 96)
        );
        assert_eq!(
            packets[1].header.sequence_number,
            packets[0].header.sequence_number.wrapping_add(1)
        );
        assert_eq!(&packets[0].payload[..], b"abc");
        assert_eq!(metrics.packets_out.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_full_sink_drops_and_counts() {
        let (down, recorder, metrics) = down_track();
        down.switch_to(1);
        down.set_ready(true);
        recorder.full.store(true, Ordering::Relaxed);
        assert_eq!(
            down.forward(1, &packet(1, b"x"), true, Instant::now(), None),
            Forwarded::Dropped
        );
        assert_eq!(metrics.packets_dropped.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn stamps_the_send_time_only_with_a_negotiated_id() {
        let (down, recorder, _) = down_track();
        let now = Instant::now();
        down.switch_to(1);
        down.set_payload_type(96);
        down.set_ready(true);
        let send_time = Bytes::from_static(&[1, 2, 3]);
        down.forward(1, &packet(1, b"a"), true, now, Some(&send_time));
        down.set_abs_send_time_id(Some(3));
        down.forward(1, &packet(2, b"b"), false, now, Some(&send_time));
        down.forward(1, &packet(3, b"c"), false, now, None);
        let packets = recorder.packets.lock().unwrap();
        assert_eq!(packets.len(), 3);
        assert!(
            !packets[0].header.extension,
            "no id negotiated: no extension"
        );
        assert_eq!(packets[1].header.get_extension(3), Some(send_time.clone()));
        assert_eq!(packets[1].header.get_extension_ids(), vec![3]);
        assert!(!packets[2].header.extension, "nothing to stamp");
    }
}

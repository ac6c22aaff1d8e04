//! One subscriber's sending slot for one track.
//!
//! A [`DownTrack`] is a transceiver on the subscriber's connection together with everything the
//! router needs to write into it: the SSRC the subscriber knows it by, the payload type its SDP
//! negotiated, and the [`Rewriter`] that keeps its numbering continuous. It outlives the
//! publications that feed it: when one ends, the slot goes inactive and is later reused for the
//! next track of the same kind, so the subscriber's SDP does not grow as people come and go.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use futures::FutureExt;
use rtc::rtp;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::rtp_transceiver::RtpTransceiver;

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

/// A subscriber's sending slot; see the module documentation.
pub struct DownTrack {
    id: SubscriberKey,
    kind: TrackKind,
    ssrc: u32,
    transceiver: Arc<dyn RtpTransceiver>,
    pipe: Arc<TrackLocalStaticRTP>,
    payload_type: AtomicU8,
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
    /// Wraps a transceiver whose sender writes through `pipe` with `ssrc`.
    pub fn new(
        kind: TrackKind,
        ssrc: u32,
        clock_rate: u32,
        transceiver: Arc<dyn RtpTransceiver>,
        pipe: Arc<TrackLocalStaticRTP>,
        metrics: Arc<Metrics>,
    ) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            kind,
            ssrc,
            transceiver,
            pipe,
            payload_type: AtomicU8::new(0),
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

    /// The transceiver on the subscriber's connection.
    pub fn transceiver(&self) -> &Arc<dyn RtpTransceiver> {
        &self.transceiver
    }

    /// Packets handed to the subscriber's connection so far.
    pub fn packets_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Records the payload type the subscriber's SDP negotiated for this slot's codec.
    pub fn set_payload_type(&self, payload_type: u8) {
        self.payload_type.store(payload_type, Ordering::Release);
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
    /// timestamp, and hands it to the subscriber's connection without waiting. When that
    /// connection's queue is full the packet is dropped, so a slow subscriber never holds up
    /// the publisher's read loop or the other subscribers.
    pub fn forward(
        &self,
        source: SourceKey,
        packet: &rtp::Packet,
        can_start: bool,
        now: Instant,
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
        let size = outgoing.payload.len() as u64;
        // `write_rtp` completes at once when the connection's queue has room; `now_or_never`
        // drops the write (and the packet) instead of waiting when it has not.
        match self.pipe.write_rtp(outgoing).now_or_never() {
            Some(Ok(())) => {
                self.sent.fetch_add(1, Ordering::Relaxed);
                self.metrics.packets_out.fetch_add(1, Ordering::Relaxed);
                self.metrics.bytes_out.fetch_add(size, Ordering::Relaxed);
                Forwarded::Sent
            }
            Some(Err(_)) | None => {
                self.metrics.packets_dropped.fetch_add(1, Ordering::Relaxed);
                Forwarded::Dropped
            }
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

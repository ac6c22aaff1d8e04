//! One published track: what the room knows of it, and the list of down-tracks its packets go
//! to.
//!
//! A [`Publication`] is announced as soon as the publisher's offer says it sends the track, so
//! subscribers negotiate their slots for it while the publisher's camera and encoder start;
//! the first packets, a keyframe, then reach them without another round of negotiation and a
//! keyframe request. The media worker that owns the publisher's connection feeds it every packet
//! ([`route`](Publication::route)); the set of down-tracks is an atomically swapped list, so
//! the packet path takes no lock that signaling ever holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;
use rtc::rtp;

use crate::ids::{ConnectionId, LayerIndex, ParticipantId, PublicationKey};
use crate::media::audio_level::AudioLevelMeter;
use crate::media::downtrack::DownTrack;
use crate::media::layers::Layers;
use crate::media::malformed::{self, Malformed, Payload};
use crate::media::send_time::abs_send_time;
use crate::media::vp8;
use crate::signal::protocol::TrackKind;

/// What describes a published track to the rest of the room.
#[derive(Debug, Clone)]
pub struct TrackInfo {
    /// The publisher's participant id.
    pub participant: ParticipantId,
    /// The publisher's track id (its SDP `msid` track id).
    pub track: String,
    /// The publisher's stream id.
    pub stream: String,
    /// Audio or video.
    pub kind: TrackKind,
    /// The codec's clock rate.
    pub clock_rate: u32,
    /// The codec's MIME type, e.g. `video/VP8`.
    pub mime_type: String,
    /// Whether the publisher marked it as a presentation (a screen share): its media section
    /// says `a=content:slides` (RFC 4796).
    pub screen: bool,
}

/// A published track; see the module documentation.
pub struct Publication {
    key: PublicationKey,
    info: TrackInfo,
    publisher: ConnectionId,
    muted: AtomicBool,
    reading: AtomicBool,
    ended: AtomicBool,
    layers: Layers,
    subscribers: ArcSwap<Vec<Arc<DownTrack>>>,
    packets: AtomicU64,
    /// The levels of an audio track, for speaker detection.
    audio_level: Option<AudioLevelMeter>,
}

impl std::fmt::Debug for Publication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publication")
            .field("key", &self.key)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// A packet on its way to one down-track.
pub type Outgoing = (Arc<DownTrack>, rtp::Packet);

impl Publication {
    /// A publication of the connection `publisher`, announced before its first packet, sent as
    /// the layers `rids` (none: one stream).
    pub fn new(
        info: TrackInfo,
        rids: &[String],
        muted: bool,
        publisher: ConnectionId,
        now: Instant,
    ) -> Arc<Publication> {
        let audio_level = (info.kind == TrackKind::Audio).then(AudioLevelMeter::default);
        Arc::new(Publication {
            key: PublicationKey::next(),
            info,
            publisher,
            muted: AtomicBool::new(muted),
            reading: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            layers: Layers::new(rids, now),
            subscribers: ArcSwap::from_pointee(Vec::new()),
            packets: AtomicU64::new(0),
            audio_level,
        })
    }

    /// A process-wide unique key.
    pub fn key(&self) -> PublicationKey {
        self.key
    }

    /// What the track is.
    pub fn info(&self) -> &TrackInfo {
        &self.info
    }

    /// Its layers and what is measured of them.
    pub fn layers(&self) -> &Layers {
        &self.layers
    }

    /// The down-tracks it is forwarded to.
    pub fn down_tracks(&self) -> Arc<Vec<Arc<DownTrack>>> {
        self.subscribers.load_full()
    }

    /// The connection the track arrives on: keyframe requests and bitrate estimates go there.
    pub fn publisher(&self) -> ConnectionId {
        self.publisher
    }

    /// Whether the publisher has muted it.
    pub fn muted(&self) -> bool {
        self.muted.load(Ordering::Relaxed)
    }

    /// Records the publisher's mute state.
    pub fn set_muted(&self, muted: bool) {
        self.muted.store(muted, Ordering::Relaxed);
    }

    /// The meter of an audio track's levels; `None` for video.
    pub fn audio_level(&self) -> Option<&AudioLevelMeter> {
        self.audio_level.as_ref()
    }

    /// Packets received from the publisher so far.
    pub fn packets_received(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    /// Whether the publisher's packets are arriving: its first came and it has not ended.
    pub fn is_reading(&self) -> bool {
        self.reading.load(Ordering::Relaxed) && !self.has_ended()
    }

    /// Notes that the first packet arrived.
    pub fn begin(&self) {
        self.reading.store(true, Ordering::Relaxed);
    }

    /// Ends forwarding for good. Subscribers are told by the room, not here.
    pub fn stop(&self) {
        self.ended.store(true, Ordering::Relaxed);
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }

    /// Starts offering packets to `down` (already switched to this publication). It forwards
    /// them from the first keyframe after it is [ready](DownTrack::set_ready).
    pub fn attach(&self, down: Arc<DownTrack>) {
        self.subscribers.rcu(|current| {
            let mut next = Vec::with_capacity(current.len() + 1);
            next.extend(current.iter().cloned());
            next.push(Arc::clone(&down));
            next
        });
    }

    /// Stops forwarding to `down`.
    pub fn detach(&self, down: &Arc<DownTrack>) {
        self.subscribers.rcu(|current| {
            current
                .iter()
                .filter(|existing| !Arc::ptr_eq(existing, down))
                .cloned()
                .collect::<Vec<_>>()
        });
    }

    /// Whether any down-track takes its packets.
    pub fn is_watched(&self) -> bool {
        !self.subscribers.load().is_empty()
    }

    /// The router's per-packet work: checks one packet of `layer` from the publisher, measures
    /// it, and pushes it, rewritten for each down-track that takes it, onto `out`. Returns
    /// whether it starts a keyframe, or why it was dropped (see `media::malformed`).
    ///
    /// Header extensions go here, once: their ids are negotiated per connection and differ
    /// between the publisher's and each subscriber's, a sender refuses ids it did not
    /// negotiate, and none of the publisher's extensions mean anything downstream. Each
    /// down-track stamps the server's own send time on video instead.
    pub fn route(
        &self,
        mut packet: rtp::Packet,
        layer: LayerIndex,
        now: Instant,
        out: &mut Vec<Outgoing>,
    ) -> Result<bool, Malformed> {
        self.packets.fetch_add(1, Ordering::Relaxed);
        let payload = malformed::check_payload(self.info.kind, &packet.payload)?;
        let video = self.info.kind == TrackKind::Video;
        let size = (video && payload == Payload::Media)
            .then(|| vp8::keyframe_size(&packet.payload))
            .flatten();
        // The fixed RTP header counts towards a layer's rate, as it does in a sender's.
        self.layers
            .record(layer, packet.payload.len() + 12, size, now);
        // A muted track is not forwarded: the publisher's black frames and silence, or its
        // media after an operator muted it, reach nobody.
        if self.has_ended() || self.muted() {
            return Ok(false);
        }
        packet.header.extensions.clear();
        packet.header.extension = false;
        packet.header.extension_profile = 0;
        packet.header.extensions_padding = 0;
        let keyframe = self.info.kind == TrackKind::Video
            && payload == Payload::Media
            && vp8::is_keyframe_start(&packet.payload);
        // Audio can start anywhere; video at a keyframe.
        let can_start = self.info.kind == TrackKind::Audio || keyframe;
        // Subscribers estimate their downlink from video packets only (see `send_time`); one
        // stamp serves them all.
        let send_time = (self.info.kind == TrackKind::Video).then(|| abs_send_time(now));
        for down in self.subscribers.load().iter() {
            if let Some(rewritten) =
                down.forward(self.key, layer, &packet, can_start, now, send_time.as_ref())
            {
                out.push((Arc::clone(down), rewritten));
            }
        }
        Ok(keyframe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Ssrc;
    use crate::ids::WorkerIndex;
    use bytes::Bytes;

    fn video() -> Arc<Publication> {
        Publication::new(
            TrackInfo {
                participant: ParticipantId::from("PA_1"),
                track: "camera".to_owned(),
                stream: "stream".to_owned(),
                kind: TrackKind::Video,
                clock_rate: 90_000,
                mime_type: "video/VP8".to_owned(),
                screen: false,
            },
            &[],
            false,
            ConnectionId::next(WorkerIndex(0)),
            Instant::now(),
        )
    }

    fn packet(sequence_number: u16, payload: &'static [u8]) -> rtp::Packet {
        rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                payload_type: 100,
                sequence_number,
                ssrc: 42,
                extension: true,
                extensions: vec![rtp::header::Extension {
                    id: 3,
                    payload: Bytes::from_static(b"xyz"),
                }],
                ..Default::default()
            },
            payload: Bytes::from_static(payload),
        }
    }

    /// A VP8 payload descriptor starting a partition, then a keyframe's first byte.
    const KEYFRAME: &[u8] = &[0x10, 0x00, 0x9d, 0x01, 0x2a];
    const DELTA: &[u8] = &[0x10, 0x01, 0x9d, 0x01, 0x2a];

    #[test]
    fn a_subscriber_starts_on_a_keyframe_and_gets_only_the_server_s_extensions() {
        let publication = video();
        let down = Arc::new(DownTrack::new(
            TrackKind::Video,
            Ssrc(77),
            90_000,
            ConnectionId::next(WorkerIndex(0)),
            crate::ids::TransceiverIndex(1),
        ));
        down.set_payload_type(96);
        down.set_abs_send_time_id(Some(2));
        down.switch_to(publication.key());
        down.set_ready(true);
        publication.attach(Arc::clone(&down));
        let mut out = Vec::new();
        let now = Instant::now();
        assert_eq!(
            publication.route(packet(1, DELTA), LayerIndex(0), now, &mut out),
            Ok(false)
        );
        assert!(out.is_empty(), "nothing before a keyframe");
        assert_eq!(
            publication.route(packet(2, KEYFRAME), LayerIndex(0), now, &mut out),
            Ok(true)
        );
        assert_eq!(out.len(), 1);
        let (to, sent) = &out[0];
        assert!(Arc::ptr_eq(to, &down));
        assert_eq!(sent.header.ssrc, 77);
        assert_eq!(sent.header.payload_type, 96);
        let ids: Vec<u8> = sent.header.extensions.iter().map(|ext| ext.id).collect();
        assert_eq!(
            ids,
            vec![2],
            "the publisher's extension went, the send time came"
        );
        assert_eq!(publication.packets_received(), 2);

        publication.detach(&down);
        out.clear();
        let _ = publication.route(packet(3, KEYFRAME), LayerIndex(0), now, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn an_unreadable_payload_is_refused_and_padding_goes_through() {
        let publication = video();
        let down = Arc::new(DownTrack::new(
            TrackKind::Video,
            Ssrc(77),
            90_000,
            ConnectionId::next(WorkerIndex(0)),
            crate::ids::TransceiverIndex(1),
        ));
        down.switch_to(publication.key());
        down.set_ready(true);
        publication.attach(Arc::clone(&down));
        assert!(publication.is_watched());
        let mut out = Vec::new();
        let now = Instant::now();
        assert_eq!(
            publication.route(packet(1, KEYFRAME), LayerIndex(0), now, &mut out),
            Ok(true)
        );
        assert_eq!(
            publication.route(packet(2, &[0x90, 0x80]), LayerIndex(0), now, &mut out),
            Err(Malformed::Vp8(
                crate::media::vp8::DescriptorError::Truncated
            ))
        );
        let mut padding = packet(3, &[]);
        padding.header.padding = true;
        assert_eq!(
            publication.route(padding, LayerIndex(0), now, &mut out),
            Ok(false)
        );
        let numbers: Vec<u16> = out
            .iter()
            .map(|(_, sent)| sent.header.sequence_number)
            .collect();
        assert_eq!(numbers.len(), 2, "the keyframe and the padding");
        assert_eq!(
            numbers[1].wrapping_sub(numbers[0]),
            2,
            "the dropped packet's number stays a gap"
        );
        assert!(out[1].1.payload.is_empty() && out[1].1.header.padding);
        assert_eq!(publication.packets_received(), 3);
    }

    #[test]
    fn a_stopped_publication_forwards_nothing() {
        let publication = video();
        let down = Arc::new(DownTrack::new(
            TrackKind::Video,
            Ssrc(5),
            90_000,
            ConnectionId::next(WorkerIndex(0)),
            crate::ids::TransceiverIndex(0),
        ));
        down.switch_to(publication.key());
        down.set_ready(true);
        publication.attach(down);
        publication.begin();
        assert!(publication.is_reading());
        publication.stop();
        assert!(!publication.is_reading());
        let mut out = Vec::new();
        let _ = publication.route(packet(1, KEYFRAME), LayerIndex(0), Instant::now(), &mut out);
        assert!(out.is_empty());
    }
}

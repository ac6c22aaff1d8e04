//! What goes back up to one publisher: keyframe requests, throttled per track, and the bitrate
//! cap aggregated from its subscribers' estimates.
//!
//! Subscribers' PLI, FIR and REMB arrive at the media worker, which hands them to the
//! publisher's [`Upstream`]; it answers with the RTCP to write to the publisher, now or when a
//! deferred request or the next bitrate report falls due ([`deadline`](Upstream::deadline)).

use std::collections::HashMap;
use std::time::Instant;

use rtc::rtcp;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;

use crate::ids::{LayerIndex, PublicationKey, Ssrc, SubscriberKey};
use crate::media::bitrate::{BitrateAggregator, REPORT_INTERVAL};
use crate::media::keyframe::{KeyframeReason, KeyframeThrottle};

/// One RTCP packet for the publisher, about the track `source`.
pub struct Feedback {
    /// The track it is about; the REMB names all of them and goes with any.
    pub source: PublicationKey,
    /// The packet.
    pub packet: Box<dyn rtcp::Packet>,
}

impl std::fmt::Debug for Feedback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feedback")
            .field("source", &self.source)
            .field("packet", &self.packet.header().packet_type)
            .finish()
    }
}

/// One stream's upstream state: a published track, or one layer of a simulcast track.
#[derive(Debug, Default)]
struct Stream {
    /// Unknown until the stream's first packet.
    media_ssrc: Option<Ssrc>,
    throttle: KeyframeThrottle,
    /// A keyframe asked for before the stream's first packet: sent the moment it arrives, as a
    /// publisher's first packets are not always a keyframe (a track re-added by the browser).
    waiting: Option<(KeyframeReason, std::time::Duration)>,
}

/// One publisher's upstream feedback; see the module documentation.
#[derive(Debug, Default)]
pub struct Upstream {
    streams: HashMap<(PublicationKey, LayerIndex), Stream>,
    bitrate: BitrateAggregator,
    next_report: Option<Instant>,
}

impl Upstream {
    /// `layer` of the publisher's track `source` arrives on `media_ssrc`: the PLI to send now
    /// for a keyframe asked for before, if any.
    pub fn track_started(
        &mut self,
        source: PublicationKey,
        layer: LayerIndex,
        media_ssrc: Ssrc,
        audio: bool,
        now: Instant,
    ) -> Option<Feedback> {
        let stream = self.streams.entry((source, layer)).or_default();
        if stream.media_ssrc.is_none() && audio {
            self.bitrate.add_audio_track();
        }
        stream.media_ssrc = Some(media_ssrc);
        let (reason, round_trip) = stream.waiting.take()?;
        stream
            .throttle
            .request(reason, round_trip, now)
            .then(|| pli(source, media_ssrc))
    }

    /// The track `source` ended, with all its layers.
    pub fn track_ended(&mut self, source: PublicationKey, audio: bool) {
        let ended: Vec<(PublicationKey, LayerIndex)> = self
            .streams
            .keys()
            .filter(|(publication, _)| *publication == source)
            .copied()
            .collect();
        for key in ended {
            let Some(stream) = self.streams.remove(&key) else {
                continue;
            };
            if let Some(ssrc) = stream.media_ssrc {
                if audio {
                    self.bitrate.remove_audio_track();
                }
                self.bitrate.forget_publication(ssrc);
            }
        }
    }

    /// A keyframe of `layer` of `source` passed through.
    pub fn keyframe_seen(&mut self, source: PublicationKey, layer: LayerIndex, now: Instant) {
        if let Some(stream) = self.streams.get_mut(&(source, layer)) {
            stream.throttle.keyframe_seen(now);
        }
    }

    /// A subscriber whose connection has `round_trip` time wants a keyframe of `layer` of
    /// `source`: the PLI to send now, if the throttle lets it through.
    pub fn request_keyframe(
        &mut self,
        source: PublicationKey,
        layer: LayerIndex,
        reason: KeyframeReason,
        round_trip: std::time::Duration,
        now: Instant,
    ) -> Option<Feedback> {
        let stream = self.streams.entry((source, layer)).or_default();
        let Some(media_ssrc) = stream.media_ssrc else {
            // Not arrived yet: asked for when it does.
            stream.waiting = Some((reason, round_trip));
            return None;
        };
        stream
            .throttle
            .request(reason, round_trip, now)
            .then(|| pli(source, media_ssrc))
    }

    /// A subscriber's share of its estimate for `source`: the REMB to send now, if due.
    pub fn record_bitrate(
        &mut self,
        source: PublicationKey,
        subscriber: SubscriberKey,
        bitrate: u64,
        now: Instant,
    ) -> Option<Feedback> {
        let ssrc = self.first_ssrc(source)?;
        self.bitrate.record(ssrc, subscriber, bitrate, now);
        self.next_report.get_or_insert(now + REPORT_INTERVAL);
        self.report(source, now)
    }

    /// A subscriber of `source` left.
    pub fn forget_subscriber(&mut self, source: PublicationKey, subscriber: SubscriberKey) {
        if let Some(ssrc) = self.first_ssrc(source) {
            self.bitrate.forget_subscriber(ssrc, subscriber);
        }
    }

    /// When [`poll`](Self::poll) has something to do next.
    pub fn deadline(&self) -> Option<Instant> {
        self.streams
            .values()
            .filter_map(|stream| stream.throttle.deadline())
            .chain(self.next_report)
            .min()
    }

    /// The RTCP due at `now`: deferred keyframe requests and the periodic bitrate report.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<Feedback>) {
        for ((source, _), stream) in &mut self.streams {
            if let Some(media_ssrc) = stream.media_ssrc
                && stream.throttle.poll_deferred(now)
            {
                out.push(pli(*source, media_ssrc));
            }
        }
        if self.next_report.is_some_and(|due| now >= due) {
            self.next_report = Some(now + REPORT_INTERVAL);
            if let Some((source, _)) = self.streams.keys().next().copied()
                && let Some(remb) = self.report(source, now)
            {
                out.push(remb);
            }
        }
    }

    /// The SSRC a track's bitrate estimates are kept under: its lowest layer's that arrived.
    fn first_ssrc(&self, source: PublicationKey) -> Option<Ssrc> {
        self.streams
            .iter()
            .filter(|((publication, _), _)| *publication == source)
            .filter_map(|((_, layer), stream)| Some((*layer, stream.media_ssrc?)))
            .min()
            .map(|(_, ssrc)| ssrc)
    }

    fn report(&mut self, source: PublicationKey, now: Instant) -> Option<Feedback> {
        let cap = self.bitrate.poll(now)?;
        Some(Feedback {
            source,
            packet: Box::new(ReceiverEstimatedMaximumBitrate {
                sender_ssrc: 0,
                bitrate: cap.bitrate as f32,
                ssrcs: cap.ssrcs.iter().map(|ssrc| ssrc.0).collect(),
            }),
        })
    }
}

fn pli(source: PublicationKey, media_ssrc: Ssrc) -> Feedback {
    Feedback {
        source,
        packet: Box::new(PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: media_ssrc.0,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::media::keyframe::{DEFAULT_ROUND_TRIP, KEYFRAME_REQUEST_INTERVAL};

    fn is_pli(feedback: &Feedback, ssrc: u32) -> bool {
        feedback
            .packet
            .as_any()
            .downcast_ref::<PictureLossIndication>()
            .is_some_and(|pli| pli.media_ssrc == ssrc)
    }

    #[test]
    fn keyframe_requests_wait_for_the_track_and_are_throttled() {
        let mut upstream = Upstream::default();
        let now = Instant::now();
        let reason = KeyframeReason::SubscriberRequest;
        assert!(
            upstream
                .request_keyframe(
                    PublicationKey(1),
                    LayerIndex(0),
                    reason,
                    DEFAULT_ROUND_TRIP,
                    now
                )
                .is_none(),
            "nothing to ask before the track arrives"
        );
        let first = upstream
            .track_started(PublicationKey(1), LayerIndex(0), Ssrc(1111), false, now)
            .expect("the request waiting for the track goes out as it arrives");
        assert!(is_pli(&first, 1111));
        let soon = now + Duration::from_millis(50);
        assert!(
            upstream
                .request_keyframe(
                    PublicationKey(1),
                    LayerIndex(0),
                    reason,
                    DEFAULT_ROUND_TRIP,
                    soon
                )
                .is_none()
        );
        // The keyframe came and a subscriber still asks a while later: deferred to the gap's end.
        upstream.keyframe_seen(
            PublicationKey(1),
            LayerIndex(0),
            now + Duration::from_millis(60),
        );
        let later = now + Duration::from_millis(300);
        assert!(
            upstream
                .request_keyframe(
                    PublicationKey(1),
                    LayerIndex(0),
                    reason,
                    DEFAULT_ROUND_TRIP,
                    later
                )
                .is_none()
        );
        let due = upstream.deadline().expect("a deferred request");
        assert_eq!(due, now + KEYFRAME_REQUEST_INTERVAL);
        let mut out = Vec::new();
        upstream.poll(due, &mut out);
        assert_eq!(out.len(), 1);
        assert!(is_pli(&out[0], 1111));
    }

    #[test]
    fn estimates_become_one_remb_for_the_publisher_repeated_each_second() {
        let mut upstream = Upstream::default();
        let now = Instant::now();
        upstream.track_started(PublicationKey(1), LayerIndex(0), Ssrc(1111), false, now);
        upstream.track_started(PublicationKey(2), LayerIndex(0), Ssrc(2222), true, now);
        let remb = upstream
            .record_bitrate(PublicationKey(1), SubscriberKey(7), 500_000, now)
            .expect("the first estimate is reported at once");
        let remb = remb
            .packet
            .as_any()
            .downcast_ref::<ReceiverEstimatedMaximumBitrate>()
            .expect("a REMB")
            .clone();
        assert_eq!(remb.ssrcs, vec![1111]);
        assert_eq!(
            remb.bitrate as u64,
            500_000 + crate::media::bitrate::AUDIO_ALLOWANCE
        );
        assert!(
            upstream
                .record_bitrate(PublicationKey(1), SubscriberKey(8), 600_000, now)
                .is_none()
        );
        let mut out = Vec::new();
        upstream.poll(now + REPORT_INTERVAL, &mut out);
        assert_eq!(out.len(), 1, "repeated once a second");
        upstream.track_ended(PublicationKey(1), false);
        upstream.track_ended(PublicationKey(2), true);
        out.clear();
        upstream.poll(now + REPORT_INTERVAL * 2, &mut out);
        assert!(out.is_empty(), "nothing left to report");
    }
}

//! REMB aggregation: what the subscribers can take becomes the cap the publisher is told.
//!
//! A subscriber's REMB estimates the bandwidth of its whole downlink. The router splits it evenly
//! among the video tracks the REMB names and records each share against the publication feeding
//! that track. Per publication the cap is the *largest* of its subscribers' fresh shares: the
//! publisher need not send more than its best-placed subscriber can take, and a subscriber with
//! less room is given less by its own allocation (`media::allocation`: a lower layer, or the
//! video paused) instead of lowering the picture for everybody. A simulcast track is capped by
//! no subscriber at all ([`SIMULCAST_CEILING`]): each subscriber takes the layer that fits it,
//! and layers nobody takes are switched off at the publisher.
//!
//! Browsers treat a REMB they receive as a cap on the *whole* connection, whatever SSRCs it
//! lists, so one publisher gets one REMB: the sum of its publications' caps, listing their
//! SSRCs, plus [`AUDIO_ALLOWANCE`] for each audio track it publishes. The subscribers' estimates
//! cover video only (only video carries a send time, see `media::send_time`); without the
//! allowance the publisher's audio would eat into its video, the subscribers would see less
//! video arrive, and since a browser's estimate never runs far ahead of what arrives, the cap
//! would stop growing. The REMB goes out about once a second, and at once when the cap falls by
//! more than a fifth.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ids::{Ssrc, SubscriberKey};

/// How long a subscriber's estimate counts; browsers send REMB about once a second.
pub const ESTIMATE_LIFETIME: Duration = Duration::from_secs(5);
/// How often an unchanged cap is repeated to the publisher.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// A cap below this fraction of the last one sent is sent at once.
pub const SHARP_DROP: f64 = 0.8;

/// The cap a simulcast track contributes: above what a browser sends for all three layers of
/// a camera, so the publisher's own estimate of its uplink decides.
pub const SIMULCAST_CEILING: u64 = 4_000_000;

/// What each of the publisher's audio tracks may use on top of its video caps: Opus at the
/// browsers' default rate, with its packet overhead, stays below it.
pub const AUDIO_ALLOWANCE: u64 = 64_000;

/// A REMB to send to the publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitrateCap {
    /// Bits per second.
    pub bitrate: u64,
    /// The publisher's media SSRCs the cap covers.
    pub ssrcs: Vec<Ssrc>,
}

#[derive(Debug, Clone, Copy)]
struct Estimate {
    bitrate: u64,
    at: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Report {
    bitrate: u64,
    at: Instant,
}

/// One publisher's subscriber estimates, per publication.
#[derive(Debug, Default)]
pub struct BitrateAggregator {
    publications: HashMap<Ssrc, HashMap<SubscriberKey, Estimate>>,
    audio_tracks: u64,
    last_report: Option<Report>,
}

impl BitrateAggregator {
    /// Records a subscriber's latest share for the publication whose media SSRC is `ssrc`.
    pub fn record(&mut self, ssrc: Ssrc, subscriber: SubscriberKey, bitrate: u64, now: Instant) {
        self.publications
            .entry(ssrc)
            .or_default()
            .insert(subscriber, Estimate { bitrate, at: now });
    }

    /// Forgets a subscriber that no longer receives the publication.
    pub fn forget_subscriber(&mut self, ssrc: Ssrc, subscriber: SubscriberKey) {
        if let Some(estimates) = self.publications.get_mut(&ssrc) {
            estimates.remove(&subscriber);
        }
    }

    /// The publisher started publishing an audio track.
    pub fn add_audio_track(&mut self) {
        self.audio_tracks += 1;
    }

    /// One of the publisher's audio tracks ended.
    pub fn remove_audio_track(&mut self) {
        self.audio_tracks = self.audio_tracks.saturating_sub(1);
    }

    /// Forgets a publication that ended.
    pub fn forget_publication(&mut self, ssrc: Ssrc) {
        self.publications.remove(&ssrc);
    }

    /// The REMB to send now, if one is due.
    pub fn poll(&mut self, now: Instant) -> Option<BitrateCap> {
        let cap = self.current_cap(now)?;
        let due = match self.last_report {
            None => true,
            Some(last) => {
                (cap.bitrate as f64) < (last.bitrate as f64) * SHARP_DROP
                    || now.saturating_duration_since(last.at) >= REPORT_INTERVAL
            }
        };
        if !due {
            return None;
        }
        self.last_report = Some(Report {
            bitrate: cap.bitrate,
            at: now,
        });
        Some(cap)
    }

    /// The sum of the publications' caps, from fresh estimates only, and the audio allowance.
    fn current_cap(&mut self, now: Instant) -> Option<BitrateCap> {
        let mut total = 0u64;
        let mut ssrcs = Vec::new();
        for (ssrc, estimates) in &mut self.publications {
            estimates.retain(|_, estimate| {
                now.saturating_duration_since(estimate.at) < ESTIMATE_LIFETIME
            });
            if let Some(max) = estimates.values().map(|estimate| estimate.bitrate).max() {
                total = total.saturating_add(max);
                ssrcs.push(*ssrc);
            }
        }
        self.publications
            .retain(|_, estimates| !estimates.is_empty());
        if ssrcs.is_empty() {
            return None;
        }
        ssrcs.sort_unstable();
        Some(BitrateCap {
            bitrate: total.saturating_add(self.audio_tracks * AUDIO_ALLOWANCE),
            ssrcs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_best_placed_subscriber_sets_the_cap() {
        let now = Instant::now();
        let mut aggregator = BitrateAggregator::default();
        aggregator.record(Ssrc(11), SubscriberKey(1), 1_000_000, now);
        aggregator.record(Ssrc(11), SubscriberKey(2), 300_000, now);
        assert_eq!(
            aggregator.poll(now),
            Some(BitrateCap {
                bitrate: 1_000_000,
                ssrcs: vec![Ssrc(11)]
            })
        );
    }

    #[test]
    fn repeats_once_a_second_and_at_once_on_a_sharp_drop() {
        let start = Instant::now();
        let mut aggregator = BitrateAggregator::default();
        aggregator.record(Ssrc(11), SubscriberKey(1), 1_000_000, start);
        assert!(aggregator.poll(start).is_some());
        aggregator.record(Ssrc(11), SubscriberKey(1), 900_000, start + 100 * MS);
        assert_eq!(aggregator.poll(start + 100 * MS), None, "a 10% dip waits");
        aggregator.record(Ssrc(11), SubscriberKey(1), 700_000, start + 200 * MS);
        assert_eq!(
            aggregator.poll(start + 200 * MS).map(|cap| cap.bitrate),
            Some(700_000),
            "a 30% drop goes at once"
        );
        assert_eq!(aggregator.poll(start + 900 * MS), None);
        assert_eq!(
            aggregator.poll(start + 1200 * MS).map(|cap| cap.bitrate),
            Some(700_000)
        );
    }

    #[test]
    fn stale_and_departed_subscribers_stop_counting() {
        let start = Instant::now();
        let mut aggregator = BitrateAggregator::default();
        aggregator.record(Ssrc(11), SubscriberKey(1), 200_000, start);
        aggregator.record(
            Ssrc(11),
            SubscriberKey(2),
            800_000,
            start + ESTIMATE_LIFETIME / 2,
        );
        let later = start + ESTIMATE_LIFETIME + 10 * MS;
        assert_eq!(aggregator.poll(later).map(|cap| cap.bitrate), Some(800_000));
        aggregator.forget_subscriber(Ssrc(11), SubscriberKey(2));
        assert_eq!(aggregator.poll(later + REPORT_INTERVAL), None);
    }

    #[test]
    fn audio_is_allowed_for_on_top_of_the_video_caps() {
        let now = Instant::now();
        let mut aggregator = BitrateAggregator::default();
        aggregator.add_audio_track();
        assert_eq!(aggregator.poll(now), None, "no estimate, no cap");
        aggregator.record(Ssrc(11), SubscriberKey(1), 300_000, now);
        assert_eq!(
            aggregator.poll(now).map(|cap| cap.bitrate),
            Some(300_000 + AUDIO_ALLOWANCE)
        );
        aggregator.remove_audio_track();
        aggregator.record(Ssrc(11), SubscriberKey(1), 300_000, now + REPORT_INTERVAL);
        assert_eq!(
            aggregator
                .poll(now + REPORT_INTERVAL)
                .map(|cap| cap.bitrate),
            Some(300_000)
        );
    }

    #[test]
    fn one_remb_covers_every_publication_of_the_publisher() {
        let now = Instant::now();
        let mut aggregator = BitrateAggregator::default();
        aggregator.record(Ssrc(22), SubscriberKey(1), 500_000, now);
        aggregator.record(Ssrc(11), SubscriberKey(1), 1_500_000, now);
        aggregator.record(Ssrc(11), SubscriberKey(2), 1_000_000, now);
        assert_eq!(
            aggregator.poll(now),
            Some(BitrateCap {
                bitrate: 2_000_000,
                ssrcs: vec![Ssrc(11), Ssrc(22)]
            })
        );
        aggregator.forget_publication(Ssrc(22));
        assert_eq!(
            aggregator
                .poll(now + REPORT_INTERVAL)
                .map(|cap| cap.bitrate),
            Some(1_500_000)
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use std::collections::BTreeMap;

        #[derive(Debug, Clone)]
        enum Event {
            Record {
                ssrc: u32,
                subscriber: u64,
                bitrate: u64,
            },
            ForgetSubscriber {
                ssrc: u32,
                subscriber: u64,
            },
            ForgetPublication {
                ssrc: u32,
            },
            Poll,
        }

        fn event() -> impl Strategy<Value = (u64, Event)> {
            let bitrate = prop_oneof![any::<u64>(), 0..5_000_000u64, Just(u64::MAX)];
            (
                0..3_000u64,
                prop_oneof![
                    (0..3u32, 0..4u64, bitrate).prop_map(|(ssrc, subscriber, bitrate)| {
                        Event::Record {
                            ssrc,
                            subscriber,
                            bitrate,
                        }
                    }),
                    (0..3u32, 0..4u64).prop_map(|(ssrc, subscriber)| {
                        Event::ForgetSubscriber { ssrc, subscriber }
                    }),
                    (0..3u32).prop_map(|ssrc| Event::ForgetPublication { ssrc }),
                    Just(Event::Poll),
                ],
            )
        }

        proptest! {
            /// Whatever subscribers report, a cap sent is the sum over publications of their
            /// strongest fresh estimate (saturating), plus the audio allowance, listing exactly
            /// the publications that have one.
            #[test]
            fn the_cap_is_the_sum_of_the_strongest_fresh_estimates(
                audio_tracks in 0..4u64,
                events in prop::collection::vec(event(), 1..60),
            ) {
                let start = Instant::now();
                let mut aggregator = BitrateAggregator::default();
                for _ in 0..audio_tracks {
                    aggregator.add_audio_track();
                }
                let mut model: BTreeMap<(u32, u64), (u64, Instant)> = BTreeMap::new();
                let mut now = start;
                for (after_ms, event) in events {
                    now += Duration::from_millis(after_ms);
                    match event {
                        Event::Record { ssrc, subscriber, bitrate } => {
                            aggregator.record(Ssrc(ssrc), SubscriberKey(subscriber), bitrate, now);
                            model.insert((ssrc, subscriber), (bitrate, now));
                        }
                        Event::ForgetSubscriber { ssrc, subscriber } => {
                            aggregator.forget_subscriber(Ssrc(ssrc), SubscriberKey(subscriber));
                            model.remove(&(ssrc, subscriber));
                        }
                        Event::ForgetPublication { ssrc } => {
                            aggregator.forget_publication(Ssrc(ssrc));
                            model.retain(|(of, _), _| *of != ssrc);
                        }
                        Event::Poll => {
                            let mut strongest: BTreeMap<u32, u64> = BTreeMap::new();
                            for ((ssrc, _), (bitrate, at)) in &model {
                                if now.saturating_duration_since(*at) < ESTIMATE_LIFETIME {
                                    let max = strongest.entry(*ssrc).or_insert(0);
                                    *max = (*max).max(*bitrate);
                                }
                            }
                            if let Some(cap) = aggregator.poll(now) {
                                let sum = strongest.values().fold(0u64, |sum, max| sum.saturating_add(*max));
                                prop_assert_eq!(
                                    cap.bitrate,
                                    sum.saturating_add(audio_tracks * AUDIO_ALLOWANCE)
                                );
                                let ssrcs: Vec<Ssrc> = strongest.keys().copied().map(Ssrc).collect();
                                prop_assert_eq!(cap.ssrcs, ssrcs);
                            } else {
                                // Nothing fresh, or nothing due yet.
                                prop_assert!(strongest.is_empty() || aggregator.last_report.is_some());
                            }
                        }
                    }
                }
            }
        }
    }
}

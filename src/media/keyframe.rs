//! Keyframe requests towards a publisher, throttled.
//!
//! Every subscriber of a video track may ask for a keyframe (PLI or FIR) whenever its decoder is
//! lost. A keyframe costs the publisher several times the bits of an ordinary frame, so requests
//! are merged: after a PLI, a subscriber's request waits out [`KEYFRAME_REQUEST_INTERVAL`].
//! A subscription that has just started waits only [`SUBSCRIPTION_START_INTERVAL`]: its person
//! sees nothing at all until a keyframe comes, and newcomers arrive one by one, so the shorter
//! gap bounds the keyframes a burst of arrivals costs (five a second at most) while each
//! newcomer sees every picture a fraction of a second after connecting.
//!
//! A request inside its gap is either dropped or deferred to the gap's end:
//! - dropped when the keyframe the last PLI asked for has not arrived yet, or arrived less than
//!   the requesting subscriber's round-trip time ago, so that the request was sent before the
//!   subscriber could have seen it: that keyframe answers it;
//! - deferred when a keyframe arrived a while ago and a subscriber still asks (it lost
//!   something since), or when the request is for a subscription that started after the last
//!   keyframe went out (that subscriber was not attached to see it). Waiting for the next
//!   natural keyframe instead could take seconds.
//!
//! A subscription that starts while the keyframe the last PLI asked for is still on its way
//! needs no request of its own: it is attached already, so that keyframe starts it. Should
//! that keyframe never come, the subscriber's connection asks again (see
//! `rtc::connection`'s keyframe watch), which is why nothing here needs a timer of its own
//! beyond the deferred request.

use std::time::{Duration, Instant};

/// The shortest gap between a PLI and the next one sent for a subscriber's request.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// The shortest gap between a PLI and the next one sent for a subscription that just started.
pub const SUBSCRIPTION_START_INTERVAL: Duration = Duration::from_millis(200);

/// The round-trip time assumed for a subscriber whose connection has not measured one yet.
pub const DEFAULT_ROUND_TRIP: Duration = Duration::from_millis(100);

/// Added to a subscriber's round-trip time before a request counts as newer than a keyframe:
/// the subscriber's own reaction time and the server's queueing.
const REACTION_MARGIN: Duration = Duration::from_millis(20);

/// However short the round trip, a request this soon after a keyframe is taken to predate it,
/// so that a burst of requests from several subscribers within this time is one request.
const MIN_STALE_GRACE: Duration = Duration::from_millis(100);

/// Why a keyframe is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyframeReason {
    /// A subscriber sent PLI or FIR.
    SubscriberRequest,
    /// A subscriber has just been attached and cannot decode until a keyframe arrives.
    SubscriptionStart,
    /// A subscriber is to change to this layer (or resume it after a pause), which it can do
    /// only at one of its keyframes: a start, as far as the throttle goes.
    LayerSwitch,
    /// The track was unmuted: forwarding resumes after a gap no retransmission fills, so every
    /// subscriber needs a keyframe, as a newcomer does.
    Resumed,
    /// The server dropped a malformed packet of the track: every subscriber has a gap that
    /// no retransmission fills. Throttled as a subscriber's request.
    PacketDropped,
}

/// Decides when a PLI goes to the publisher.
#[derive(Debug)]
pub struct KeyframeThrottle {
    request_interval: Duration,
    start_interval: Duration,
    last_sent: Option<Instant>,
    last_keyframe: Option<Instant>,
    /// When a deferred request falls due.
    deferred: Option<Instant>,
}

impl Default for KeyframeThrottle {
    fn default() -> Self {
        Self::new(KEYFRAME_REQUEST_INTERVAL, SUBSCRIPTION_START_INTERVAL)
    }
}

impl KeyframeThrottle {
    /// A throttle leaving `request_interval` after a PLI before another for a subscriber's
    /// request, and `start_interval` before another for a subscription's start.
    pub fn new(request_interval: Duration, start_interval: Duration) -> Self {
        Self {
            request_interval,
            start_interval,
            last_sent: None,
            last_keyframe: None,
            deferred: None,
        }
    }

    /// Notes that a keyframe from the publisher passed through.
    pub fn keyframe_seen(&mut self, now: Instant) {
        self.last_keyframe = Some(now);
    }

    /// Registers a request from a subscriber whose connection has `round_trip` time; `true`
    /// means send a PLI now.
    pub fn request(&mut self, reason: KeyframeReason, round_trip: Duration, now: Instant) -> bool {
        let gap = match reason {
            KeyframeReason::SubscriberRequest | KeyframeReason::PacketDropped => {
                self.request_interval
            }
            KeyframeReason::SubscriptionStart
            | KeyframeReason::LayerSwitch
            | KeyframeReason::Resumed => self.start_interval,
        };
        let Some(sent) = self
            .last_sent
            .filter(|sent| now.saturating_duration_since(*sent) < gap)
        else {
            self.send(now);
            return true;
        };
        let in_flight = self.last_keyframe.is_none_or(|keyframe| keyframe < sent);
        let answered_a_while_ago = self.last_keyframe.is_some_and(|keyframe| {
            let grace = (round_trip + REACTION_MARGIN).max(MIN_STALE_GRACE);
            keyframe >= sent && now.saturating_duration_since(keyframe) > grace
        });
        let defer = match reason {
            // Attached before the keyframe on its way arrives: that one starts it.
            KeyframeReason::SubscriptionStart
            | KeyframeReason::LayerSwitch
            | KeyframeReason::Resumed => !in_flight,
            KeyframeReason::SubscriberRequest | KeyframeReason::PacketDropped => {
                answered_a_while_ago
            }
        };
        if defer {
            let due = sent + gap;
            self.deferred = Some(self.deferred.map_or(due, |earlier| earlier.min(due)));
        }
        false
    }

    /// When a deferred request falls due, if one is waiting.
    pub fn deadline(&self) -> Option<Instant> {
        self.deferred
    }

    /// `true` means the deferred request is due: send a PLI now.
    pub fn poll_deferred(&mut self, now: Instant) -> bool {
        if self.deferred.is_some_and(|due| now >= due) {
            self.send(now);
            return true;
        }
        false
    }

    fn send(&mut self, now: Instant) {
        self.last_sent = Some(now);
        self.deferred = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const RTT: Duration = Duration::from_millis(30);

    #[test]
    fn a_request_long_after_the_answering_keyframe_is_deferred() {
        let start = Instant::now();
        let mut throttle = KeyframeThrottle::default();
        assert!(throttle.request(KeyframeReason::SubscriberRequest, RTT, start));
        throttle.keyframe_seen(start + 20 * MS);
        // Soon after that keyframe: sent before the subscriber saw it, dropped.
        assert!(!throttle.request(KeyframeReason::SubscriberRequest, RTT, start + 110 * MS));
        assert_eq!(throttle.deadline(), None);
        // A fresh loss after it: deferred to the end of the window.
        assert!(!throttle.request(KeyframeReason::SubscriberRequest, RTT, start + 130 * MS));
        assert_eq!(throttle.deadline(), Some(start + 500 * MS));
        assert!(throttle.poll_deferred(start + 500 * MS));
    }

    #[test]
    fn a_distant_subscribers_request_waits_a_round_trip() {
        let start = Instant::now();
        let mut throttle = KeyframeThrottle::default();
        assert!(throttle.request(KeyframeReason::SubscriberRequest, RTT, start));
        throttle.keyframe_seen(start + 10 * MS);
        let far = Duration::from_millis(250);
        assert!(!throttle.request(KeyframeReason::SubscriberRequest, far, start + 200 * MS));
        assert_eq!(throttle.deadline(), None, "within its round trip: stale");
        assert!(!throttle.request(KeyframeReason::SubscriberRequest, far, start + 300 * MS));
        assert_eq!(throttle.deadline(), Some(start + 500 * MS));
    }

    #[test]
    fn a_burst_of_subscriber_requests_becomes_one() {
        let start = Instant::now();
        let mut throttle = KeyframeThrottle::default();
        let sent = (0..10)
            .filter(|i| {
                if *i == 1 {
                    throttle.keyframe_seen(start + 5 * MS);
                }
                throttle.request(KeyframeReason::SubscriberRequest, RTT, start + *i * 10 * MS)
            })
            .count();
        assert_eq!(sent, 1);
        assert_eq!(
            throttle.deadline(),
            None,
            "subscriber requests are not deferred"
        );
        assert!(!throttle.poll_deferred(start + 600 * MS));
        assert!(throttle.request(KeyframeReason::SubscriberRequest, RTT, start + 500 * MS));
    }

    #[test]
    fn a_subscription_start_after_the_keyframe_is_deferred_not_lost() {
        let start = Instant::now();
        let mut throttle = KeyframeThrottle::default();
        assert!(throttle.request(KeyframeReason::SubscriberRequest, RTT, start));
        throttle.keyframe_seen(start + 40 * MS);
        assert!(!throttle.request(KeyframeReason::SubscriptionStart, RTT, start + 100 * MS));
        assert!(!throttle.request(KeyframeReason::SubscriptionStart, RTT, start + 150 * MS));
        assert_eq!(throttle.deadline(), Some(start + 200 * MS));
        assert!(!throttle.poll_deferred(start + 199 * MS));
        assert!(throttle.poll_deferred(start + 200 * MS));
        assert!(!throttle.poll_deferred(start + 1200 * MS), "fires once");
    }

    #[test]
    fn a_subscription_start_waits_less_than_a_subscribers_request() {
        let start = Instant::now();
        let mut throttle = KeyframeThrottle::default();
        assert!(throttle.request(KeyframeReason::SubscriptionStart, RTT, start));
        throttle.keyframe_seen(start + 40 * MS);
        // A subscriber that lost something since waits out the longer gap...
        assert!(!throttle.request(KeyframeReason::SubscriberRequest, RTT, start + 250 * MS));
        assert_eq!(throttle.deadline(), Some(start + 500 * MS));
        // ...and a newcomer brings the PLI forward, which answers both.
        assert!(throttle.request(KeyframeReason::SubscriptionStart, RTT, start + 260 * MS));
        assert_eq!(throttle.deadline(), None);
    }

    #[test]
    fn a_subscription_start_while_a_keyframe_is_on_its_way_waits_for_it() {
        let start = Instant::now();
        let mut throttle = KeyframeThrottle::default();
        assert!(throttle.request(KeyframeReason::SubscriptionStart, RTT, start));
        // Before the keyframe arrives: it will start this subscription too.
        assert!(!throttle.request(KeyframeReason::SubscriptionStart, RTT, start + 30 * MS));
        assert_eq!(throttle.deadline(), None);
        // Once it has passed, a newcomer needs the next one.
        throttle.keyframe_seen(start + 60 * MS);
        assert!(!throttle.request(KeyframeReason::SubscriptionStart, RTT, start + 90 * MS));
        assert_eq!(throttle.deadline(), Some(start + 200 * MS));
    }

    #[test]
    fn a_request_after_the_window_cancels_the_deferred_one() {
        let start = Instant::now();
        let mut throttle = KeyframeThrottle::default();
        assert!(throttle.request(KeyframeReason::SubscriberRequest, RTT, start));
        throttle.keyframe_seen(start + 5 * MS);
        assert!(!throttle.request(KeyframeReason::SubscriberRequest, RTT, start + 300 * MS));
        assert_eq!(throttle.deadline(), Some(start + 500 * MS));
        assert!(throttle.request(KeyframeReason::SubscriberRequest, RTT, start + 700 * MS));
        assert_eq!(throttle.deadline(), None);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// What can happen to a throttle, at some milliseconds after the previous event.
        #[derive(Debug, Clone)]
        enum Event {
            Request(KeyframeReason, u64),
            KeyframeSeen,
            Poll,
        }

        fn event() -> impl Strategy<Value = (u64, Event)> {
            let reason = prop::sample::select(vec![
                KeyframeReason::SubscriberRequest,
                KeyframeReason::SubscriptionStart,
                KeyframeReason::PacketDropped,
            ]);
            (
                0..400u64,
                prop_oneof![
                    (reason, 0..600u64).prop_map(|(reason, rtt)| Event::Request(reason, rtt)),
                    Just(Event::KeyframeSeen),
                    Just(Event::Poll),
                ],
            )
        }

        proptest! {
            /// However requests arrive, PLIs are never closer than the shorter gap, one for a
            /// subscriber's request (or a dropped packet) never closer than the longer, and a
            /// deferred request is sent when its deadline comes.
            #[test]
            fn plis_keep_their_gaps_and_deferred_requests_go_out(
                events in prop::collection::vec(event(), 1..80),
            ) {
                let start = Instant::now();
                let mut throttle = KeyframeThrottle::default();
                let mut now = start;
                let mut last_pli: Option<Instant> = None;
                for (after_ms, event) in events {
                    now += Duration::from_millis(after_ms);
                    // A deadline that passed meanwhile is what the worker polls at.
                    if let Some(due) = throttle.deadline().filter(|due| *due <= now) {
                        prop_assert!(throttle.poll_deferred(due), "the deferred request goes out");
                        prop_assert!(last_pli.is_none_or(|last| due - last >= SUBSCRIPTION_START_INTERVAL));
                        last_pli = Some(due);
                    }
                    match event {
                        Event::Request(reason, rtt) => {
                            let sent = throttle.request(reason, Duration::from_millis(rtt), now);
                            if sent {
                                let gap = match reason {
                                    KeyframeReason::SubscriptionStart => SUBSCRIPTION_START_INTERVAL,
                                    _ => KEYFRAME_REQUEST_INTERVAL,
                                };
                                prop_assert!(last_pli.is_none_or(|last| now - last >= gap));
                                last_pli = Some(now);
                            }
                        }
                        Event::KeyframeSeen => throttle.keyframe_seen(now),
                        Event::Poll => prop_assert!(!throttle.poll_deferred(now)),
                    }
                    if let (Some(due), Some(last)) = (throttle.deadline(), last_pli) {
                        prop_assert!(due - last >= SUBSCRIPTION_START_INTERVAL);
                        prop_assert!(due - last <= KEYFRAME_REQUEST_INTERVAL);
                    }
                }
            }
        }
    }
}

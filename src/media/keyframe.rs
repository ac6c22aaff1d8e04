//! Keyframe requests towards a publisher, throttled.
//!
//! Every subscriber of a video track may ask for a keyframe (PLI or FIR) whenever its decoder is
//! lost. A keyframe costs the publisher several times the bits of an ordinary frame, so requests
//! are merged: at most one PLI per publication per [`KEYFRAME_REQUEST_INTERVAL`].
//!
//! A request inside the window is either dropped or deferred to the window's end:
//! - dropped when the keyframe the last PLI asked for has not arrived yet, or arrived less than
//!   the requesting subscriber's round-trip time ago, so that the request was sent before the
//!   subscriber could have seen it: that keyframe answers it;
//! - deferred when a keyframe arrived a while ago and a subscriber still asks (it lost
//!   something since), or when the request is for a subscription that just started (that
//!   subscriber was not attached when the earlier keyframe went out). Waiting for the next
//!   natural keyframe instead could take seconds.

use std::time::{Duration, Instant};

/// The shortest gap between two keyframe requests sent to one publication.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

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
}

/// Decides when a PLI goes to the publisher.
#[derive(Debug)]
pub struct KeyframeThrottle {
    interval: Duration,
    last_sent: Option<Instant>,
    last_keyframe: Option<Instant>,
    deferred: bool,
}

impl Default for KeyframeThrottle {
    fn default() -> Self {
        Self::new(KEYFRAME_REQUEST_INTERVAL)
    }
}

impl KeyframeThrottle {
    /// A throttle allowing one request per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last_sent: None,
            last_keyframe: None,
            deferred: false,
        }
    }

    /// Notes that a keyframe from the publisher passed through.
    pub fn keyframe_seen(&mut self, now: Instant) {
        self.last_keyframe = Some(now);
    }

    /// Registers a request from a subscriber whose connection has `round_trip` time; `true`
    /// means send a PLI now.
    pub fn request(&mut self, reason: KeyframeReason, round_trip: Duration, now: Instant) -> bool {
        if self.window_open(now) {
            self.last_sent = Some(now);
            self.deferred = false;
            return true;
        }
        let answered_a_while_ago = match (self.last_keyframe, self.last_sent) {
            (Some(keyframe), Some(sent)) => {
                let grace = (round_trip + REACTION_MARGIN).max(MIN_STALE_GRACE);
                keyframe >= sent && now.saturating_duration_since(keyframe) > grace
            }
            _ => false,
        };
        if reason == KeyframeReason::SubscriptionStart || answered_a_while_ago {
            self.deferred = true;
        }
        false
    }

    /// When a deferred request falls due, if one is waiting.
    pub fn deadline(&self) -> Option<Instant> {
        match (self.deferred, self.last_sent) {
            (true, Some(last)) => Some(last + self.interval),
            _ => None,
        }
    }

    /// `true` means the deferred request is due: send a PLI now.
    pub fn poll_deferred(&mut self, now: Instant) -> bool {
        if self.deferred && self.window_open(now) {
            self.deferred = false;
            self.last_sent = Some(now);
            return true;
        }
        false
    }

    fn window_open(&self, now: Instant) -> bool {
        self.last_sent
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval)
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
    fn a_subscription_start_inside_the_window_is_deferred_not_lost() {
        let start = Instant::now();
        let mut throttle = KeyframeThrottle::default();
        assert!(throttle.request(KeyframeReason::SubscriberRequest, RTT, start));
        assert!(!throttle.request(KeyframeReason::SubscriptionStart, RTT, start + 100 * MS));
        assert!(!throttle.request(KeyframeReason::SubscriptionStart, RTT, start + 200 * MS));
        assert_eq!(throttle.deadline(), Some(start + 500 * MS));
        assert!(!throttle.poll_deferred(start + 499 * MS));
        assert!(throttle.poll_deferred(start + 500 * MS));
        assert!(!throttle.poll_deferred(start + 1200 * MS), "fires once");
    }

    #[test]
    fn a_request_after_the_window_cancels_the_deferred_one() {
        let start = Instant::now();
        let mut throttle = KeyframeThrottle::default();
        assert!(throttle.request(KeyframeReason::SubscriptionStart, RTT, start));
        assert!(!throttle.request(KeyframeReason::SubscriptionStart, RTT, start + 10 * MS));
        assert!(throttle.request(KeyframeReason::SubscriberRequest, RTT, start + 700 * MS));
        assert_eq!(throttle.deadline(), None);
    }
}

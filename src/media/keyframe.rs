//! Keyframe requests towards a publisher, throttled.
//!
//! Every subscriber of a video track may ask for a keyframe (PLI or FIR) whenever its decoder is
//! lost. A keyframe costs the publisher several times the bits of an ordinary frame, so requests
//! are merged: at most one PLI per publication per [`KEYFRAME_REQUEST_INTERVAL`].
//!
//! Two kinds of request are treated differently inside the window. A subscriber's own request
//! is dropped: the keyframe already on its way answers it. A request made because a subscription
//! starts is deferred to the end of the window instead, since the subscriber it is for was not
//! attached when the earlier keyframe went out and would otherwise wait for the next natural one.

use std::time::{Duration, Instant};

/// The shortest gap between two keyframe requests sent to one publication.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

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
            deferred: false,
        }
    }

    /// Registers a request; `true` means send a PLI now.
    pub fn request(&mut self, reason: KeyframeReason, now: Instant) -> bool {
        if self.window_open(now) {
            self.last_sent = Some(now);
            self.deferred = false;
            return true;
        }
        if reason == KeyframeReason::SubscriptionStart {
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

    #[test]
    fn a_burst_of_subscriber_requests_becomes_one() {
        let start = Instant::now();
        let mut throttle = KeyframeThrottle::default();
        let sent = (0..10)
            .filter(|i| throttle.request(KeyframeReason::SubscriberRequest, start + *i * 10 * MS))
            .count();
        assert_eq!(sent, 1);
        assert_eq!(
            throttle.deadline(),
            None,
            "subscriber requests are not deferred"
        );
        assert!(!throttle.poll_deferred(start + 600 * MS));
        assert!(throttle.request(KeyframeReason::SubscriberRequest, start + 500 * MS));
    }

    #[test]
    fn a_subscription_start_inside_the_window_is_deferred_not_lost() {
        let start = Instant::now();
        let mut throttle = KeyframeThrottle::default();
        assert!(throttle.request(KeyframeReason::SubscriberRequest, start));
        assert!(!throttle.request(KeyframeReason::SubscriptionStart, start + 100 * MS));
        assert!(!throttle.request(KeyframeReason::SubscriptionStart, start + 200 * MS));
        assert_eq!(throttle.deadline(), Some(start + 500 * MS));
        assert!(!throttle.poll_deferred(start + 499 * MS));
        assert!(throttle.poll_deferred(start + 500 * MS));
        assert!(!throttle.poll_deferred(start + 1200 * MS), "fires once");
    }

    #[test]
    fn a_request_after_the_window_cancels_the_deferred_one() {
        let start = Instant::now();
        let mut throttle = KeyframeThrottle::default();
        assert!(throttle.request(KeyframeReason::SubscriptionStart, start));
        assert!(!throttle.request(KeyframeReason::SubscriptionStart, start + 10 * MS));
        assert!(throttle.request(KeyframeReason::SubscriberRequest, start + 700 * MS));
        assert_eq!(throttle.deadline(), None);
    }
}

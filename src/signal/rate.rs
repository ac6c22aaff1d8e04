//! How fast one WebSocket may send: a token bucket, and a rule for clients that ignore it.
//!
//! The bucket holds up to `burst` messages and refills at `per_second`; each message takes one,
//! and a message that finds it empty is refused with `rate_limited` and otherwise ignored. A
//! client that backs off is forgiven: its count of refusals starts over once the bucket has
//! refilled completely. A client that keeps sending anyway, and runs up more refusals than the
//! bucket holds before it refills, is abusing the server and is disconnected.

use std::time::Instant;

/// What to do with one incoming message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it.
    Allowed,
    /// Refuse it with `rate_limited`; the session goes on.
    Limited,
    /// Refuse it and close the socket: the client ignores the limit.
    Abusive,
}

/// One socket's rate limit; see the module documentation.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    refused: u64,
}

impl RateLimiter {
    /// A full bucket of `burst` messages refilling at `per_second` (each at least 1).
    pub fn new(per_second: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            per_second: f64::from(per_second.max(1)),
            burst,
            tokens: burst,
            last: now,
            refused: 0,
        }
    }

    /// Takes one message arriving at `now`.
    pub fn check(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now.max(self.last);
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= self.burst {
            self.refused = 0;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Allowed;
        }
        self.refused += 1;
        if self.refused as f64 > self.burst {
            Verdict::Abusive
        } else {
            Verdict::Limited
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_passes_then_the_sustained_rate() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(10, 5, start);
        for _ in 0..5 {
            assert_eq!(limiter.check(start), Verdict::Allowed);
        }
        assert_eq!(limiter.check(start), Verdict::Limited);
        // 100 ms later one more message fits, and no second one.
        let later = start + Duration::from_millis(100);
        assert_eq!(limiter.check(later), Verdict::Allowed);
        assert_eq!(limiter.check(later), Verdict::Limited);
        // At the sustained rate nothing is refused.
        for step in 1..=50 {
            let at = later + Duration::from_millis(100 * step);
            assert_eq!(limiter.check(at), Verdict::Allowed, "message {step}");
        }
    }

    #[test]
    fn a_client_that_backs_off_is_forgiven() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(10, 5, start);
        for round in 0..20u64 {
            let at = start + Duration::from_secs(round);
            for _ in 0..5 {
                assert_eq!(limiter.check(at), Verdict::Allowed);
            }
            for _ in 0..5 {
                assert_eq!(limiter.check(at), Verdict::Limited);
            }
        }
    }

    #[test]
    fn a_client_that_keeps_going_is_cut_off() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(10, 5, start);
        // Twice the sustained rate: one message in two is refused, and the bucket never
        // refills, so the refusals add up.
        let mut verdicts = Vec::new();
        for step in 0..100u64 {
            let at = start + Duration::from_millis(50 * step);
            let verdict = limiter.check(at);
            verdicts.push(verdict);
            if verdict == Verdict::Abusive {
                break;
            }
        }
        assert_eq!(verdicts.last(), Some(&Verdict::Abusive));
        let refused = verdicts.iter().filter(|v| **v != Verdict::Allowed).count();
        assert_eq!(refused, 6, "cut off at the first refusal beyond the burst");
    }

    #[test]
    fn time_going_backwards_changes_nothing() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(1, 1, start + Duration::from_secs(1));
        assert_eq!(limiter.check(start), Verdict::Allowed);
        assert_eq!(limiter.check(start), Verdict::Limited);
    }
}

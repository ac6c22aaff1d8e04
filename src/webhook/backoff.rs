//! When a failed webhook attempt is tried again: after `webhooks.first_retry_ms`, then twice as
//! long each time up to a minute, a bounded number of times. Each wait is spread between three
//! and five quarters of itself, so the rooms whose events failed together (a receiver that was
//! down) do not all come back at the same instant.

use std::time::{Duration, Instant};

/// The longest wait between two attempts, before the spread.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// The retry policy of one event to one URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Attempts in all, the first included (at least 1).
    pub attempts: u32,
    /// The wait before the first retry.
    pub first: Duration,
}

impl Backoff {
    /// When to try again once `made` attempts have failed, the last at `now`; `None` once every
    /// attempt is spent. `spread` (0 to 1, a random draw in the dispatcher) places the retry
    /// between three and five quarters of the wait.
    pub fn retry_at(&self, now: Instant, made: u32, spread: f64) -> Option<Instant> {
        self.wait(made, spread).map(|wait| now + wait)
    }

    /// How long to wait once `made` attempts have failed; `None` once every attempt is spent.
    pub fn wait(&self, made: u32, spread: f64) -> Option<Duration> {
        if made >= self.attempts.max(1) {
            return None;
        }
        let doublings = made.saturating_sub(1);
        let factor = 1u32.checked_shl(doublings).unwrap_or(u32::MAX);
        let wait = self.first.saturating_mul(factor).min(MAX_WAIT);
        let spread = if spread.is_finite() {
            spread.clamp(0.0, 1.0)
        } else {
            0.5
        };
        Some(wait.mul_f64(0.75 + 0.5 * spread))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Backoff = Backoff {
        attempts: 5,
        first: Duration::from_secs(1),
    };

    #[test]
    fn waits_double_from_the_first_and_stop_after_the_last_attempt() {
        let now = Instant::now();
        let waits: Vec<_> = (1..=5)
            .map(|made| POLICY.retry_at(now, made, 0.5).map(|at| at - now))
            .collect();
        assert_eq!(
            waits,
            [
                Some(Duration::from_secs(1)),
                Some(Duration::from_secs(2)),
                Some(Duration::from_secs(4)),
                Some(Duration::from_secs(8)),
                None,
            ]
        );
    }

    #[test]
    fn the_spread_stays_within_three_to_five_quarters() {
        assert_eq!(POLICY.wait(3, 0.0), Some(Duration::from_secs(3)));
        assert_eq!(POLICY.wait(3, 1.0), Some(Duration::from_secs(5)));
        assert_eq!(POLICY.wait(3, 7.0), Some(Duration::from_secs(5)));
        assert_eq!(POLICY.wait(3, f64::NAN), Some(Duration::from_secs(4)));
    }

    #[test]
    fn waits_are_capped_and_one_attempt_means_no_retry() {
        let many = Backoff {
            attempts: 100,
            first: Duration::from_secs(1),
        };
        assert_eq!(many.wait(7, 0.5), Some(MAX_WAIT));
        assert_eq!(many.wait(99, 0.5), Some(MAX_WAIT));
        assert_eq!(many.wait(100, 0.5), None);
        let once = Backoff {
            attempts: 1,
            first: Duration::from_secs(1),
        };
        assert_eq!(once.wait(1, 0.5), None);
    }
}

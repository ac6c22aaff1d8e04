//! The live progress line, and the rate it shows: packets received per second over a fixed
//! recent window, so that the figure is steady when the load is, whatever the moments the
//! line happens to be printed at.

use std::collections::VecDeque;
use std::io::Write as _;
use std::time::{Duration, Instant};

/// How far back the live rate looks.
pub const RATE_WINDOW: Duration = Duration::from_secs(5);

/// A rate over the last [`RATE_WINDOW`], from samples of a running total.
#[derive(Debug, Clone, Default)]
pub struct RecentRate {
    samples: VecDeque<(Instant, u64)>,
}

impl RecentRate {
    /// Notes the running total at `at`.
    pub fn push(&mut self, at: Instant, total: u64) {
        self.samples.push_back((at, total));
        // Keep the newest sample at least RATE_WINDOW old, which the rate is measured from.
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|(second, _)| at.saturating_duration_since(*second) >= RATE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Per second, over the last [`RATE_WINDOW`] (or since the first sample, when that is
    /// more recent); `None` before two samples.
    pub fn per_second(&self) -> Option<f64> {
        let (latest, latest_total) = *self.samples.back()?;
        let (oldest, oldest_total) = self
            .samples
            .iter()
            .find(|(at, _)| latest.saturating_duration_since(*at) <= RATE_WINDOW)
            .copied()?;
        let elapsed = latest.saturating_duration_since(oldest).as_secs_f64();
        (elapsed > 0.0).then(|| latest_total.saturating_sub(oldest_total) as f64 / elapsed)
    }
}

/// Rewrites the progress line on standard error.
pub fn line(text: &str) {
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "\r\x1b[2K{text}");
    let _ = stderr.flush();
}

/// Ends the progress line.
pub fn end() {
    eprintln!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_rate_reads_steady_however_the_samples_fall() {
        let start = Instant::now();
        let mut rate = RecentRate::default();
        assert_eq!(rate.per_second(), None);
        // 3,160 packets a second, arriving in uneven bursts, sampled at uneven moments.
        let mut total = 0u64;
        let mut at = start;
        for step in 0..200u64 {
            let gap = Duration::from_millis(100 + (step * 37) % 400);
            at += gap;
            total = (at.duration_since(start).as_secs_f64() * 3160.0) as u64 / 500 * 500;
            rate.push(at, total);
            if at.duration_since(start) > RATE_WINDOW * 2 {
                let seen = rate.per_second().expect("a rate");
                assert!(
                    (seen - 3160.0).abs() < 3160.0 * 0.05,
                    "{seen} at step {step}"
                );
            }
        }
        assert!(total > 0);
    }

    #[test]
    fn the_window_is_fixed() {
        let start = Instant::now();
        let mut rate = RecentRate::default();
        rate.push(start, 0);
        rate.push(start + Duration::from_secs(10), 100_000);
        // From here on 1,000 a second: the old burst falls out of the window.
        for second in 11..=20 {
            rate.push(
                start + Duration::from_secs(second),
                100_000 + (second - 10) * 1000,
            );
        }
        let seen = rate.per_second().expect("a rate");
        assert!((seen - 1000.0).abs() < 1.0, "{seen}");
    }
}

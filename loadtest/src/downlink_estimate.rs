//! A receiver's estimate of its downlink, sent to the server as REMB, as a browser's
//! receive-side estimator does: what a server that shares each subscriber's downlink among its
//! videos needs to know, and what a synthetic subscriber behind a bandwidth limit (the
//! impairment's `--bandwidth`) must say for the server to see the limit.
//!
//! Once a second it looks at what arrived: the bitrate, how late the packets were (the probes
//! carry their send time, on the one clock of this machine) and how many never came. A queue
//! building up (the median latency well above the lowest seen) or heavy loss means the link is
//! full: the estimate drops below what arrived. Otherwise it grows, by a quarter at most each
//! second and to at most half again what arrived, so the server's probing finds the room there
//! is. It is simpler than a browser's (no Kalman filter, no trend of inter-arrival times) and
//! reacts the same way to the two things that matter here: a full link and a free one.

use std::time::Duration;

/// Queuing delay above the lowest seen that means the link is full: well above what a busy
/// load machine adds by itself, half the longest queue of the impairment's bandwidth limit.
pub const QUEUE_LIMIT: Duration = Duration::from_millis(250);
/// Loss that means the link is full.
pub const LOSS_LIMIT: f64 = 0.1;
/// How far below what arrived a full link's estimate drops...
const DECREASE: f64 = 0.85;
/// ...but by at most half a second: what arrived in a second of heavy loss understates the
/// link.
const LARGEST_DECREASE: f64 = 0.5;
/// How fast the estimate may grow each second.
const GROWTH: f64 = 1.25;
/// How far above what arrived it may grow.
const ABOVE_ARRIVED: f64 = 1.5;
/// Room to grow into beyond what arrived, bits per second: a receiver that gets little (its
/// videos paused) still asks for room for a low layer or two more.
const HEADROOM_BPS: f64 = 300_000.0;
/// The lowest and highest estimate.
const RANGE_BPS: (f64, f64) = (50_000.0, 100_000_000.0);

/// What arrived during one period.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DownlinkSample {
    /// Payload bits received.
    pub bits: u64,
    /// The period's length.
    pub period: Duration,
    /// The median latency of what arrived, if anything did.
    pub median_latency: Option<Duration>,
    /// Packets due during the period (from the indices that arrived).
    pub expected: u64,
    /// Of those, packets that arrived.
    pub arrived: u64,
}

/// What arrived since the estimator last looked, gathered as packets arrive.
#[derive(Debug, Clone, Default)]
pub struct DownlinkMeter {
    /// Payload bits.
    pub bits: u64,
    /// Latencies, microseconds, at most [`MAX_LATENCY_SAMPLES`] a period.
    pub latencies_us: Vec<u64>,
}

/// The most latencies kept a period: plenty for a median.
pub const MAX_LATENCY_SAMPLES: usize = 4096;

impl DownlinkMeter {
    /// Notes one packet of `bytes`, `latency_us` late if it carried a probe.
    pub fn record(&mut self, bytes: usize, latency_us: Option<u64>) {
        self.bits += bytes as u64 * 8;
        if let Some(latency) = latency_us
            && self.latencies_us.len() < MAX_LATENCY_SAMPLES
        {
            self.latencies_us.push(latency);
        }
    }

    /// The median latency so far, and starts a new period.
    pub fn take(&mut self) -> (u64, Option<Duration>) {
        let bits = std::mem::take(&mut self.bits);
        let mut latencies = std::mem::take(&mut self.latencies_us);
        latencies.sort_unstable();
        let median = latencies
            .get(latencies.len() / 2)
            .map(|micros| Duration::from_micros(*micros));
        (bits, median)
    }
}

/// The estimator's state.
#[derive(Debug, Clone, Default)]
pub struct DownlinkEstimator {
    estimate: Option<f64>,
    lowest_latency: Option<Duration>,
}

impl DownlinkEstimator {
    /// Takes one period's sample; returns the estimate to send, bits per second, or `None`
    /// when nothing arrived to judge by.
    pub fn update(&mut self, sample: DownlinkSample) -> Option<u64> {
        if sample.period.is_zero() || sample.bits == 0 {
            return None;
        }
        let rate = sample.bits as f64 / sample.period.as_secs_f64();
        let queued = sample.median_latency.is_some_and(|latency| {
            let lowest = self
                .lowest_latency
                .map_or(latency, |lowest| lowest.min(latency));
            self.lowest_latency = Some(lowest);
            latency.saturating_sub(lowest) > QUEUE_LIMIT
        });
        let loss = if sample.expected == 0 {
            0.0
        } else {
            1.0 - (sample.arrived.min(sample.expected) as f64 / sample.expected as f64)
        };
        let full = queued || loss > LOSS_LIMIT;
        let ceiling = rate * ABOVE_ARRIVED + HEADROOM_BPS;
        let estimate = if full {
            (rate * DECREASE).max(self.estimate.unwrap_or(0.0) * LARGEST_DECREASE)
        } else {
            self.estimate
                .map_or(ceiling, |estimate| (estimate * GROWTH).min(ceiling))
        }
        .clamp(RANGE_BPS.0, RANGE_BPS.1);
        self.estimate = Some(estimate);
        Some(estimate as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(kbps: u64, latency_ms: u64, expected: u64, arrived: u64) -> DownlinkSample {
        DownlinkSample {
            bits: kbps * 1000,
            period: Duration::from_secs(1),
            median_latency: Some(Duration::from_millis(latency_ms)),
            expected,
            arrived,
        }
    }

    #[test]
    fn a_free_link_grows_the_estimate_above_what_arrives() {
        let mut estimator = DownlinkEstimator::default();
        assert_eq!(estimator.update(second(2000, 2, 200, 200)), Some(3_300_000));
        // What arrives stays the same: the estimate stays half again above it.
        assert_eq!(estimator.update(second(2000, 3, 200, 200)), Some(3_300_000));
        // Less arrives (videos paused, or smaller layers): it follows down, with headroom.
        assert_eq!(estimator.update(second(300, 2, 30, 30)), Some(750_000));
        // And grows back by a quarter a second at most.
        assert_eq!(estimator.update(second(3000, 2, 300, 300)), Some(937_500));
    }

    #[test]
    fn a_queue_or_heavy_loss_drops_it_below_what_arrives() {
        let mut estimator = DownlinkEstimator::default();
        assert_eq!(estimator.update(second(600, 5, 100, 100)), Some(1_200_000));
        // The queue of a 600 kbit/s link fills: latency far above the lowest seen. The
        // estimate drops to below what arrived, but by half at most.
        assert_eq!(estimator.update(second(600, 300, 100, 100)), Some(600_000));
        assert_eq!(estimator.update(second(500, 300, 100, 100)), Some(425_000));
        // Heavy loss, little arrives: it halves at most.
        assert_eq!(estimator.update(second(100, 300, 100, 20)), Some(212_500));
        // A busy machine's delay is not a full link.
        assert_eq!(estimator.update(second(100, 200, 10, 10)), Some(265_625));
        // A link full from the start shows by its loss.
        let mut full = DownlinkEstimator::default();
        assert_eq!(full.update(second(600, 500, 300, 100)), Some(510_000));
        // Light loss alone is not a full link.
        assert_eq!(full.update(second(600, 500, 100, 95)), Some(637_500));
        assert_eq!(full.update(second(600, 500, 100, 100)), Some(796_875));
    }

    #[test]
    fn the_meter_gives_the_period_s_bits_and_median_latency() {
        let mut meter = DownlinkMeter::default();
        for (bytes, latency) in [
            (100, Some(5_000)),
            (100, None),
            (50, Some(1_000)),
            (50, Some(9_000)),
        ] {
            meter.record(bytes, latency);
        }
        assert_eq!(meter.take(), (2400, Some(Duration::from_millis(5))));
        assert_eq!(meter.take(), (0, None), "a new period");
        for _ in 0..MAX_LATENCY_SAMPLES + 10 {
            meter.record(1, Some(1));
        }
        assert_eq!(meter.latencies_us.len(), MAX_LATENCY_SAMPLES);
    }

    #[test]
    fn nothing_arrived_says_nothing() {
        let mut estimator = DownlinkEstimator::default();
        assert_eq!(estimator.update(DownlinkSample::default()), None);
        let tiny = DownlinkSample {
            bits: 1000,
            period: Duration::from_secs(1),
            ..DownlinkSample::default()
        };
        assert_eq!(estimator.update(tiny), Some(301_500));
        assert_eq!(
            DownlinkEstimator::default().update(DownlinkSample {
                bits: 1,
                period: Duration::from_secs(100),
                ..DownlinkSample::default()
            }),
            Some(300_000),
            "at least the headroom"
        );
    }
}

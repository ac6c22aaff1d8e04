//! What one participant received since the run's per-second sampler last looked: the raw
//! material of the report's per-second series ([`crate::series`]).

use std::collections::{BTreeMap, VecDeque};

use hdrhistogram::Histogram;

use crate::series::LossCounts;
use crate::stats::IndexSet;

/// How long after a second its packets' loss is judged: time for their retransmissions to
/// come, as the measurement window's end allows them.
pub const LOSS_JUDGING_DELAY_SECONDS: u64 = 2;

/// The longest latency an interval histogram holds, in microseconds; longer ones count as this.
const INTERVAL_LATENCY_MAX_MICROS: u64 = 60_000_000;

/// A latency histogram for one second of one participant: two significant digits (1 %), which
/// is plenty for a per-second plot and keeps the sampler's copying small.
pub fn interval_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, INTERVAL_LATENCY_MAX_MICROS, 2).expect("constant, valid bounds")
}

/// Received since the last look.
#[derive(Debug, Clone)]
pub struct Interval {
    /// RTP packets received, intact or not.
    pub packets: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Video freezes that ended.
    pub freezes: u64,
    /// Publisher send to arrival of every intact packet, microseconds.
    pub latency: Histogram<u64>,
    /// The loss of earlier seconds, judged now that their retransmissions had time to come,
    /// by Unix second.
    pub loss: BTreeMap<u64, LossCounts>,
}

impl Default for Interval {
    fn default() -> Self {
        Self {
            packets: 0,
            bytes: 0,
            freezes: 0,
            latency: interval_histogram(),
            loss: BTreeMap::new(),
        }
    }
}

/// Which of a received track's packets were due in which second, until their loss is judged.
#[derive(Debug, Clone, Default)]
pub struct LossLedger {
    /// The highest index seen at the end of each second not judged yet.
    checkpoints: VecDeque<(u64, u64)>,
    /// The highest index judged so far.
    judged_until: Option<u64>,
}

impl LossLedger {
    /// Notes the highest index seen by the end of `second`.
    pub fn checkpoint(&mut self, second: u64, highest: u64) {
        self.checkpoints.push_back((second, highest));
    }

    /// Judges the seconds up to `until` (all of them with `None`): for each, the packets due
    /// in it (from the previous checkpoint's index to its own) and how many of them are
    /// missing from `arrived`. Returns `(second, expected, missing)`.
    pub fn judge(&mut self, arrived: &IndexSet, until: Option<u64>) -> Vec<(u64, u64, u64)> {
        let mut judged = Vec::new();
        while let Some(&(second, highest)) = self.checkpoints.front() {
            if until.is_some_and(|until| second > until) {
                break;
            }
            self.checkpoints.pop_front();
            let Some(span) = arrived.span() else { continue };
            let first = self
                .judged_until
                .map_or(*span.start(), |judged| judged.saturating_add(1));
            if first > highest {
                continue;
            }
            let expected = highest - first + 1;
            let missing = expected - arrived.arrived_in(first..=highest);
            judged.push((second, expected, missing));
            self.judged_until = Some(highest);
        }
        judged
    }
}

impl Interval {
    /// Counts one packet of `bytes` payload bytes.
    pub fn count_packet(&mut self, bytes: usize) {
        self.packets += 1;
        self.bytes += bytes as u64;
    }

    /// Records the latency of one intact packet.
    pub fn record_latency(&mut self, micros: u64) {
        self.latency.saturating_record(micros.max(1));
    }

    /// Returns what was counted and starts counting again from zero, reusing the histogram's
    /// memory (the sampler takes one of these per participant per second).
    pub fn take(&mut self, into: &mut Interval) {
        into.packets += std::mem::take(&mut self.packets);
        into.bytes += std::mem::take(&mut self.bytes);
        into.freezes += std::mem::take(&mut self.freezes);
        // Both have the same bounds and precision: adding cannot fail.
        let _ = into.latency.add(&self.latency);
        self.latency.reset();
        for (second, loss) in std::mem::take(&mut self.loss) {
            into.loss.entry(second).or_default().add(&loss);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taking_moves_the_counts_and_starts_over() {
        let mut interval = Interval::default();
        interval.count_packet(100);
        interval.count_packet(50);
        interval.record_latency(2_000);
        interval.record_latency(u64::MAX);
        interval.freezes = 1;
        let mut sum = Interval::default();
        interval.take(&mut sum);
        assert_eq!((sum.packets, sum.bytes, sum.freezes), (2, 150, 1));
        assert_eq!(sum.latency.len(), 2);
        assert!(sum.latency.max() >= INTERVAL_LATENCY_MAX_MICROS * 99 / 100);
        assert_eq!((interval.packets, interval.latency.len()), (0, 0));
    }

    #[test]
    fn loss_is_judged_second_by_second_once_retransmissions_had_time() {
        let mut arrived = IndexSet::default();
        let mut ledger = LossLedger::default();
        // Second 100: indices 0..=9, 3 missing; second 101: 10..=19, 7 missing; second 102:
        // nothing new; second 103: 20..=29, all there.
        for index in (0..10).filter(|index| *index != 3) {
            arrived.insert(index);
        }
        ledger.checkpoint(100, 9);
        for index in (10..20).filter(|index| *index != 17) {
            arrived.insert(index);
        }
        ledger.checkpoint(101, 19);
        ledger.checkpoint(102, 19);
        assert_eq!(ledger.judge(&arrived, Some(100)), vec![(100, 10, 1)]);
        arrived.insert(3); // too late for second 100, already judged
        for index in 20..30 {
            arrived.insert(index);
        }
        ledger.checkpoint(103, 29);
        assert_eq!(
            ledger.judge(&arrived, None),
            vec![(101, 10, 1), (103, 10, 0)],
            "a second with nothing new is not judged"
        );
        assert!(ledger.judge(&arrived, None).is_empty());
    }
}

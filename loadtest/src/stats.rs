//! What a person in a call would feel, measured per received track: how much arrives, how
//! much is lost for good, how late it is, how often the picture freezes, and how fast a
//! keyframe comes after asking for one.

use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::synthetic::Probe;

/// Which packet indices of a track arrived, as a bitmap from the first one seen.
#[derive(Debug, Clone, Default)]
pub struct IndexSet {
    first: Option<u64>,
    words: Vec<u64>,
    distinct: u64,
    highest: u64,
}

impl IndexSet {
    /// Records `index`; returns `false` for a duplicate or one before the first.
    pub fn insert(&mut self, index: u64) -> bool {
        let first = *self.first.get_or_insert(index);
        let Some(offset) = index.checked_sub(first) else {
            return false;
        };
        let (word, bit) = ((offset / 64) as usize, offset % 64);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let mask = 1u64 << bit;
        if self.words[word] & mask != 0 {
            return false;
        }
        self.words[word] |= mask;
        self.distinct += 1;
        self.highest = self.highest.max(index);
        true
    }

    /// The indices from the first to the highest seen that never arrived.
    pub fn missing(&self) -> u64 {
        match self.first {
            Some(first) => (self.highest - first + 1) - self.distinct,
            None => 0,
        }
    }

    /// The indices that should have arrived, from the first to the highest seen.
    pub fn expected(&self) -> u64 {
        self.first.map_or(0, |first| self.highest - first + 1)
    }

    /// From the first index seen to the highest, if any arrived.
    pub fn span(&self) -> Option<RangeInclusive<u64>> {
        self.first.map(|first| first..=self.highest)
    }

    /// How many of the indices in `range` arrived.
    pub fn arrived_in(&self, range: RangeInclusive<u64>) -> u64 {
        let Some(first) = self.first else {
            return 0;
        };
        let start = (*range.start()).max(first) - first;
        let end = (*range.end()).min(self.highest);
        if end < first || start > end - first {
            return 0;
        }
        let end = end - first;
        let (first_word, last_word) = ((start / 64) as usize, (end / 64) as usize);
        (first_word..=last_word)
            .map(|word| {
                let mut bits = self.words.get(word).copied().unwrap_or(0);
                if word == first_word {
                    bits &= u64::MAX << (start % 64);
                }
                if word == last_word {
                    bits &= u64::MAX >> (63 - end % 64);
                }
                u64::from(bits.count_ones())
            })
            .sum()
    }
}

/// The packets of a track that loss is judged on: those sent during the measurement window.
/// Packets due before it opened are left out (the track was still starting), and so are
/// those sent after it closed (their retransmissions could not have come yet).
#[derive(Debug, Clone, Copy, Default)]
pub struct LossWindow {
    /// The highest index seen when the window opened; `None` judges from the first.
    after: Option<u64>,
    /// The highest index seen when it closed; `None` judges up to the highest seen.
    until: Option<u64>,
}

/// Latency and loss bookkeeping for one received track.
#[derive(Debug, Clone)]
pub struct TrackQuality {
    /// End-to-end latency of every intact packet, in microseconds.
    pub latency: Histogram<u64>,
    /// Which packets arrived.
    pub indices: IndexSet,
    /// When the last packet arrived.
    pub last_packet: Option<Instant>,
    /// When the last frame completed (video: a packet with the marker bit).
    pub last_frame: Option<Instant>,
    /// How many gaps between frames exceeded the freeze threshold.
    pub freezes: u64,
    /// Their total length.
    pub frozen: Duration,
    /// When a PLI for this track was sent and no keyframe has arrived since.
    pub keyframe_asked: Option<Instant>,
    /// How long each PLI waited for the next keyframe.
    pub keyframe_response: Vec<Duration>,
    /// Which packets loss is judged on.
    pub loss_window: LossWindow,
}

impl Default for TrackQuality {
    fn default() -> Self {
        Self {
            latency: new_histogram(),
            indices: IndexSet::default(),
            last_packet: None,
            last_frame: None,
            freezes: 0,
            frozen: Duration::ZERO,
            keyframe_asked: None,
            keyframe_response: Vec::new(),
            loss_window: LossWindow::default(),
        }
    }
}

/// A histogram for microsecond latencies up to an hour, three significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant, valid bounds")
}

impl TrackQuality {
    /// Records one intact packet; `index` is its place on the track's one continuous sequence
    /// (see [`crate::received_layers`]), `None` for a packet loss does not judge.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        probe: Probe,
        index: Option<u64>,
        now: Instant,
        now_micros: u64,
        frame_complete: bool,
        keyframe_start: bool,
        freeze_threshold: Option<Duration>,
    ) {
        if let Some(index) = index {
            self.indices.insert(index);
        }
        let _ = self
            .latency
            .record(now_micros.saturating_sub(probe.sent_at_micros).max(1));
        self.last_packet = Some(now);
        if keyframe_start && let Some(asked) = self.keyframe_asked.take() {
            self.keyframe_response
                .push(now.saturating_duration_since(asked));
        }
        if frame_complete && let Some(threshold) = freeze_threshold {
            if let Some(last) = self.last_frame {
                let gap = now.saturating_duration_since(last);
                if gap > threshold {
                    self.freezes += 1;
                    self.frozen += gap;
                }
            }
            self.last_frame = Some(now);
        }
    }

    /// Starts the loss window: what was due until now is not judged.
    pub fn open_loss_window(&mut self) {
        self.loss_window.after = self.indices.span().map(|span| *span.end());
    }

    /// Ends the loss window: what is sent from now on is not judged.
    pub fn close_loss_window(&mut self) {
        self.loss_window.until = self.indices.span().map(|span| *span.end());
    }

    /// The indices loss is judged on, if there are any.
    fn judged(&self) -> Option<RangeInclusive<u64>> {
        let span = self.indices.span()?;
        let start = self
            .loss_window
            .after
            .map_or(*span.start(), |after| after + 1);
        let end = self.loss_window.until.unwrap_or(*span.end());
        (start <= end).then_some(start..=end)
    }

    /// Packets in the loss window that should have arrived.
    pub fn expected(&self) -> u64 {
        self.judged()
            .map_or(0, |range| range.end() - range.start() + 1)
    }

    /// Packets in the loss window that have not arrived (yet: a retransmission may bring them).
    pub fn missing(&self) -> u64 {
        self.judged()
            .map_or(0, |range| self.expected() - self.indices.arrived_in(range))
    }

    /// The fraction of the packets in the loss window that never arrived, retransmissions
    /// included.
    pub fn loss(&self) -> f64 {
        let expected = self.expected();
        if expected == 0 {
            return 0.0;
        }
        self.missing() as f64 / expected as f64
    }
}

/// Percentiles of a distribution, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// How many samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

impl Percentiles {
    /// From a histogram of microseconds.
    pub fn from_micros(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Self {
            count: histogram.len(),
            p50: ms(histogram.value_at_quantile(0.50)),
            p95: ms(histogram.value_at_quantile(0.95)),
            p99: ms(histogram.value_at_quantile(0.99)),
            max: ms(histogram.max()),
        }
    }

    /// From a list of durations.
    pub fn from_durations(samples: &[Duration]) -> Self {
        let mut histogram = new_histogram();
        for sample in samples {
            let _ = histogram.record((sample.as_micros() as u64).max(1));
        }
        Self::from_micros(&histogram)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_never_arrived() {
        let mut set = IndexSet::default();
        for index in [10, 11, 13, 12, 15, 15, 9] {
            set.insert(index);
        }
        assert_eq!(set.expected(), 6);
        assert_eq!(set.missing(), 1, "14 is missing; 9 came before the first");
        let mut empty = IndexSet::default();
        assert_eq!(empty.missing(), 0);
        assert!(empty.insert(1000));
        assert_eq!(empty.expected(), 1);
    }

    #[test]
    fn counts_what_arrived_in_a_range() {
        let mut set = IndexSet::default();
        for index in (100..300).filter(|index| index % 10 != 0) {
            set.insert(index);
        }
        assert_eq!(set.arrived_in(100..=299), 180);
        assert_eq!(set.arrived_in(0..=1000), 180, "clamped to what was seen");
        assert_eq!(set.arrived_in(163..=163), 1);
        assert_eq!(set.arrived_in(170..=170), 0);
        assert_eq!(set.arrived_in(128..=191), 57, "130, 140, ... 190 missing");
        assert_eq!(set.arrived_in(301..=400), 0);
        assert_eq!(set.arrived_in(50..=99), 0);
        assert_eq!(IndexSet::default().arrived_in(0..=10), 0);
    }

    #[test]
    fn loss_is_judged_on_the_window_only() {
        let mut quality = TrackQuality::default();
        let probe = |index| Probe {
            tag: 1,
            layer: 0,
            index,
            sent_at_micros: 0,
        };
        let receive = |quality: &mut TrackQuality, indices: std::ops::Range<u64>| {
            for index in indices.filter(|index| index % 4 != 0) {
                quality.record(
                    probe(index),
                    Some(index),
                    Instant::now(),
                    1,
                    false,
                    false,
                    None,
                );
            }
        };
        receive(&mut quality, 1..100);
        assert_eq!(quality.missing(), 24, "4, 8, ... 96: judged from the first");
        quality.open_loss_window();
        receive(&mut quality, 100..200);
        quality.close_loss_window();
        receive(&mut quality, 200..300);
        assert_eq!(quality.expected(), 100, "100 ... 199");
        assert_eq!(quality.missing(), 25);
        quality.record(probe(104), Some(104), Instant::now(), 1, false, false, None);
        assert_eq!(quality.missing(), 24, "a late retransmission still counts");
        assert!((quality.loss() - 0.24).abs() < 1e-9);
    }

    #[test]
    fn freezes_are_gaps_longer_than_the_threshold() {
        let start = Instant::now();
        let mut quality = TrackQuality::default();
        let threshold = Some(Duration::from_millis(100));
        let probe = |index| Probe {
            tag: 1,
            layer: 0,
            index,
            sent_at_micros: 0,
        };
        quality.record(probe(0), Some(0), start, 1_000, true, true, threshold);
        quality.record(
            probe(1),
            Some(1),
            start + Duration::from_millis(33),
            2_000,
            true,
            false,
            threshold,
        );
        quality.record(
            probe(2),
            Some(2),
            start + Duration::from_millis(333),
            3_000,
            true,
            false,
            threshold,
        );
        assert_eq!(quality.freezes, 1);
        assert_eq!(quality.frozen, Duration::from_millis(300));
        assert_eq!(quality.loss(), 0.0);
        assert_eq!(Percentiles::from_micros(&quality.latency).count, 3);
    }

    #[test]
    fn keyframe_response_is_timed_from_the_request() {
        let start = Instant::now();
        let mut quality = TrackQuality {
            keyframe_asked: Some(start),
            ..TrackQuality::default()
        };
        let probe = Probe {
            tag: 1,
            layer: 0,
            index: 0,
            sent_at_micros: 0,
        };
        quality.record(
            probe,
            Some(0),
            start + Duration::from_millis(40),
            1,
            false,
            false,
            None,
        );
        assert!(quality.keyframe_response.is_empty());
        quality.record(
            probe,
            Some(0),
            start + Duration::from_millis(80),
            1,
            false,
            true,
            None,
        );
        assert_eq!(quality.keyframe_response, vec![Duration::from_millis(80)]);
    }
}

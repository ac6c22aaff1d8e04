//! The run second by second: what the receivers got, lost and waited for, how many joined and
//! how fast, and what the server forwarded and spent, one point per wall-clock second (Unix
//! time), from the first participant's start to the end of the measurement window. The JSON
//! report carries it and the HTML report plots it. Points are keyed by wall-clock second so
//! that the shards of one run ([`crate::shard`]) line up when merged; their latency and join
//! times are histograms, so merged percentiles come from the merged distributions.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::histogram::{EncodedHistogram, HistogramError};
use crate::interval::interval_histogram;

/// One second of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecondPoint {
    /// The wall-clock second, Unix time.
    pub unix: u64,
    /// How much of the second the run covered: less than 1 for the first and the last, which
    /// the run started or ended within. Rates are the counts over this.
    pub covered: f64,
    /// Participants in the rooms at its end (joined and not left).
    pub participants: usize,
    /// Participants that joined during it.
    pub joins: u64,
    /// Their socket-open-to-`joined` times, microseconds.
    pub join_us: EncodedHistogram,
    /// Median and 99th percentile of those, milliseconds.
    pub join_ms: Quantiles,
    /// RTP packets all receivers got.
    pub received_packets: u64,
    /// Their payload bytes.
    pub received_bytes: u64,
    /// Packets due in this second and whether they ever arrived, retransmissions included.
    pub loss: LossCounts,
    /// Publisher send to receiver arrival of every intact packet, microseconds.
    pub latency_us: EncodedHistogram,
    /// Median and 99th percentile of those, milliseconds.
    pub latency_ms: Quantiles,
    /// Video freezes that ended.
    pub freezes: u64,
    /// Packets the server says it forwarded (its `switchyard_rtp_packets_out_total`).
    pub server_forwarded_packets: Option<f64>,
    /// CPU seconds the server used (its `process_cpu_seconds_total`, or `/proc`).
    pub server_cpu_seconds: Option<f64>,
}

/// Median and 99th percentile, milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl SecondPoint {
    /// `count` per second of the time this point covers.
    pub fn rate(&self, count: f64) -> f64 {
        count / self.covered.clamp(0.01, 1.0)
    }
}

impl Quantiles {
    /// From a histogram of microseconds.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        Self {
            p50: histogram.value_at_quantile(0.50) as f64 / 1000.0,
            p99: histogram.value_at_quantile(0.99) as f64 / 1000.0,
        }
    }
}

/// Packets due in one second, and how many of them never arrived, retransmissions included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LossCounts {
    /// Video packets due.
    pub video_expected: u64,
    /// Video packets that never arrived.
    pub video_missing: u64,
    /// Audio packets due.
    pub audio_expected: u64,
    /// Audio packets that never arrived.
    pub audio_missing: u64,
}

impl LossCounts {
    /// Adds `other`.
    pub fn add(&mut self, other: &LossCounts) {
        self.video_expected += other.video_expected;
        self.video_missing += other.video_missing;
        self.audio_expected += other.audio_expected;
        self.audio_missing += other.audio_missing;
    }

    /// The fraction of the video packets lost, if any were due.
    pub fn video(&self) -> Option<f64> {
        fraction(self.video_missing, self.video_expected)
    }

    /// The fraction of the audio packets lost, if any were due.
    pub fn audio(&self) -> Option<f64> {
        fraction(self.audio_missing, self.audio_expected)
    }
}

fn fraction(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Every second of a run, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Series(pub Vec<SecondPoint>);

impl Series {
    /// The series of several shards of one run, second by second: counts add up, histograms
    /// merge, and the server's figures (one server, read by every shard) are taken from the
    /// first shard that read them.
    pub fn merge<'a>(all: impl IntoIterator<Item = &'a Series>) -> Result<Series, HistogramError> {
        let mut by_second: BTreeMap<u64, Vec<&SecondPoint>> = BTreeMap::new();
        for series in all {
            for point in &series.0 {
                by_second.entry(point.unix).or_default().push(point);
            }
        }
        let mut merged = Vec::with_capacity(by_second.len());
        for (unix, points) in by_second {
            let join =
                EncodedHistogram::sum(points.iter().map(|p| &p.join_us), interval_histogram)?;
            let latency =
                EncodedHistogram::sum(points.iter().map(|p| &p.latency_us), interval_histogram)?;
            let mut point = SecondPoint {
                unix,
                covered: points.iter().map(|p| p.covered).fold(0.0, f64::max),
                join_us: EncodedHistogram::encode(&join),
                join_ms: Quantiles::of(&join),
                latency_us: EncodedHistogram::encode(&latency),
                latency_ms: Quantiles::of(&latency),
                server_forwarded_packets: points.iter().find_map(|p| p.server_forwarded_packets),
                server_cpu_seconds: points.iter().find_map(|p| p.server_cpu_seconds),
                ..SecondPoint::default()
            };
            for other in points {
                point.participants += other.participants;
                point.joins += other.joins;
                point.received_packets += other.received_packets;
                point.received_bytes += other.received_bytes;
                point.loss.add(&other.loss);
                point.freezes += other.freezes;
            }
            merged.push(point);
        }
        Ok(Series(merged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(unix: u64, latencies: &[u64], packets: u64, cpu: Option<f64>) -> SecondPoint {
        let mut histogram = interval_histogram();
        for latency in latencies {
            histogram.record(*latency).expect("in range");
        }
        SecondPoint {
            unix,
            participants: 2,
            received_packets: packets,
            latency_us: EncodedHistogram::encode(&histogram),
            latency_ms: Quantiles::of(&histogram),
            loss: LossCounts {
                video_expected: 100,
                video_missing: 1,
                ..LossCounts::default()
            },
            server_cpu_seconds: cpu,
            ..SecondPoint::default()
        }
    }

    #[test]
    fn shards_merge_second_by_second() {
        let first = Series(vec![
            point(10, &[1_000; 10], 100, Some(0.5)),
            point(11, &[1_000; 10], 100, Some(0.6)),
        ]);
        let second = Series(vec![
            point(11, &[9_000; 30], 300, Some(0.6)),
            point(12, &[9_000; 30], 300, None),
        ]);
        let merged = Series::merge([&first, &second]).expect("merges");
        let seconds: Vec<u64> = merged.0.iter().map(|point| point.unix).collect();
        assert_eq!(seconds, [10, 11, 12]);
        let both = &merged.0[1];
        assert_eq!(both.received_packets, 400);
        assert_eq!(both.participants, 4);
        assert_eq!(both.loss.video_expected, 200);
        assert_eq!(both.loss.video(), Some(0.01));
        assert_eq!(both.server_cpu_seconds, Some(0.6), "one server, not summed");
        // 30 of the 40 samples are 9 ms: the merged median is 9 ms, not the mean of 1 and 9.
        assert!(
            (both.latency_ms.p50 - 9.0).abs() < 0.1,
            "{:?}",
            both.latency_ms
        );
        assert_eq!(merged.0[2].server_cpu_seconds, None);
    }
}

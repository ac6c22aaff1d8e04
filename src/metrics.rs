//! Process-wide counts and counters.
//!
//! Gauges (rooms aside, which the registry counts itself) are held by RAII guards, so a count
//! goes down exactly when the thing it counts is dropped: a leak shows up as a count that never
//! returns to zero, which is what the lifecycle tests check.
//!
//! `/metrics` renders everything in the Prometheus text exposition format (version 0.0.4):
//! every family has its `# HELP` and `# TYPE` lines, counters end in `_total`, and the one
//! histogram, join latency, has cumulative `_bucket` series, `_sum` and `_count`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// Everything the server counts.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Participants currently joined to a room.
    pub participants: AtomicI64,
    /// Peer connections currently open.
    pub peers: AtomicI64,
    /// Tracks currently published.
    pub publications: AtomicI64,
    /// Publication-to-subscriber forwards currently active.
    pub subscriptions: AtomicI64,
    /// RTP packets read from publishers.
    pub packets_in: AtomicU64,
    /// RTP payload bytes read from publishers.
    pub bytes_in: AtomicU64,
    /// RTP packets handed to subscribers' connections.
    pub packets_out: AtomicU64,
    /// RTP payload bytes handed to subscribers' connections.
    pub bytes_out: AtomicU64,
    /// RTP packets dropped because a subscriber's connection was not keeping up.
    pub packets_dropped: AtomicU64,
    /// Datagrams on the media port from an unknown address that were not a binding request
    /// to a ufrag the server issued.
    pub datagrams_unknown: AtomicU64,
    /// Binding requests on the media port naming a ufrag nobody was issued.
    pub datagrams_unknown_ufrag: AtomicU64,
    /// Datagrams the kernel refused to send.
    pub datagrams_send_failed: AtomicU64,
    /// PLI and FIR received from subscribers.
    pub keyframe_requests_received: AtomicU64,
    /// Keyframe requests the publications' tasks have decided on (sent or throttled).
    pub keyframe_requests_handled: AtomicU64,
    /// PLI sent to publishers.
    pub plis_sent: AtomicU64,
    /// REMB received from subscribers.
    pub rembs_received: AtomicU64,
    /// REMB sent to publishers.
    pub rembs_sent: AtomicU64,
    /// NACK received from subscribers (answered from the server's own history).
    pub nacks_received: AtomicU64,
    /// Completed joins.
    pub joins: AtomicU64,
    /// WebSocket messages refused with an `error`.
    pub signaling_errors: AtomicU64,
    /// Join latency: from a `join` message's arrival to the participant's media connection
    /// first reaching `connected` (see `docs/deployment.md`, "Metrics").
    pub join_seconds: Histogram,
}

/// The upper bounds of the join latency buckets, in seconds. A join on a good network takes a
/// few hundred milliseconds (signaling, the client's offer, ICE and DTLS); the upper buckets
/// catch TURN fallbacks and struggling clients.
pub const JOIN_SECONDS_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0];

/// A Prometheus histogram of durations with the fixed bounds [`JOIN_SECONDS_BUCKETS`].
///
/// Each observation adds one to exactly one bucket (the first whose bound is not below it, or
/// the overflow bucket), so recording is two atomic additions and no lock; rendering adds the
/// buckets up into Prometheus' cumulative form.
#[derive(Debug)]
pub struct Histogram {
    /// Observations per bucket, not cumulative; the last one is everything above the last bound.
    buckets: [AtomicU64; JOIN_SECONDS_BUCKETS.len() + 1],
    /// The sum of all observations, in microseconds.
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        let index = JOIN_SECONDS_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(JOIN_SECONDS_BUCKETS.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// How many observations were recorded.
    pub fn count(&self) -> u64 {
        self.buckets
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .sum()
    }

    /// The sum of all observations.
    pub fn sum(&self) -> Duration {
        Duration::from_micros(self.sum_micros.load(Ordering::Relaxed))
    }

    /// Writes the family `name`: HELP, TYPE, cumulative buckets, sum and count.
    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        // One pass over the buckets, so the cumulative counts and `_count` agree even while
        // observations are being recorded.
        let mut cumulative = 0;
        for (index, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            match JOIN_SECONDS_BUCKETS.get(index) {
                Some(bound) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let _ = writeln!(
            out,
            "{name}_sum {}\n{name}_count {cumulative}",
            self.sum().as_secs_f64()
        );
    }
}

/// The live counts a test or an operator checks return to zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Counts {
    /// Rooms with at least one participant.
    pub rooms: i64,
    /// Participants joined to a room.
    pub participants: i64,
    /// Open peer connections.
    pub peers: i64,
    /// Published tracks.
    pub publications: i64,
    /// Active forwards from a publication to a subscriber.
    pub subscriptions: i64,
}

impl Counts {
    /// Whether nothing at all is live.
    pub fn is_zero(&self) -> bool {
        *self == Counts::default()
    }
}

impl Metrics {
    /// A snapshot of the live counts, given the number of rooms.
    pub fn counts(&self, rooms: usize) -> Counts {
        Counts {
            rooms: rooms as i64,
            participants: self.participants.load(Ordering::Relaxed),
            peers: self.peers.load(Ordering::Relaxed),
            publications: self.publications.load(Ordering::Relaxed),
            subscriptions: self.subscriptions.load(Ordering::Relaxed),
        }
    }

    /// Renders every gauge and counter in the Prometheus text format.
    pub fn render_prometheus(&self, rooms: usize) -> String {
        let counts = self.counts(rooms);
        let mut out = String::with_capacity(2048);
        let gauges = [
            (
                "rooms",
                "Rooms with at least one participant.",
                counts.rooms,
            ),
            (
                "participants",
                "Participants joined to a room.",
                counts.participants,
            ),
            ("peers", "Open peer connections.", counts.peers),
            ("publications", "Published tracks.", counts.publications),
            (
                "subscriptions",
                "Active forwards from a publication to a subscriber.",
                counts.subscriptions,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP switchyard_{name} {help}\n# TYPE switchyard_{name} gauge\nswitchyard_{name} {value}"
            );
        }
        let counters = [
            (
                "rtp_packets_in_total",
                "RTP packets read from publishers.",
                &self.packets_in,
            ),
            (
                "rtp_bytes_in_total",
                "RTP payload bytes read from publishers.",
                &self.bytes_in,
            ),
            (
                "rtp_packets_out_total",
                "RTP packets forwarded to subscribers.",
                &self.packets_out,
            ),
            (
                "rtp_bytes_out_total",
                "RTP payload bytes forwarded to subscribers.",
                &self.bytes_out,
            ),
            (
                "rtp_packets_dropped_total",
                "RTP packets dropped because a subscriber was not keeping up.",
                &self.packets_dropped,
            ),
            (
                "media_datagrams_unknown_total",
                "Datagrams on the media port from an unknown address that were not a binding request to an issued ufrag.",
                &self.datagrams_unknown,
            ),
            (
                "media_datagrams_unknown_ufrag_total",
                "Binding requests on the media port naming a ufrag the server never issued.",
                &self.datagrams_unknown_ufrag,
            ),
            (
                "media_datagrams_send_failed_total",
                "Datagrams the kernel refused to send.",
                &self.datagrams_send_failed,
            ),
            (
                "keyframe_requests_received_total",
                "PLI and FIR received from subscribers.",
                &self.keyframe_requests_received,
            ),
            (
                "keyframe_requests_handled_total",
                "Keyframe requests decided on by the throttle (sent or merged).",
                &self.keyframe_requests_handled,
            ),
            (
                "plis_sent_total",
                "PLI sent to publishers.",
                &self.plis_sent,
            ),
            (
                "rembs_received_total",
                "REMB received from subscribers.",
                &self.rembs_received,
            ),
            (
                "rembs_sent_total",
                "REMB sent to publishers.",
                &self.rembs_sent,
            ),
            (
                "nacks_received_total",
                "NACK received from subscribers.",
                &self.nacks_received,
            ),
            ("joins_total", "Completed joins.", &self.joins),
            (
                "signaling_errors_total",
                "Signaling messages refused with an error.",
                &self.signaling_errors,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP switchyard_{name} {help}\n# TYPE switchyard_{name} counter\nswitchyard_{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        self.join_seconds.render(
            &mut out,
            "switchyard_join_seconds",
            "Seconds from a join message to the participant's media connection first connected.",
        );
        out
    }
}

/// Which gauge a [`GaugeGuard`] holds.
#[derive(Debug, Clone, Copy)]
pub enum Gauge {
    /// [`Metrics::participants`].
    Participants,
    /// [`Metrics::peers`].
    Peers,
    /// [`Metrics::publications`].
    Publications,
    /// [`Metrics::subscriptions`].
    Subscriptions,
}

/// Adds one to a gauge while it lives.
#[derive(Debug)]
pub struct GaugeGuard {
    metrics: Arc<Metrics>,
    gauge: Gauge,
}

impl GaugeGuard {
    /// Increments `gauge` until the guard is dropped.
    pub fn new(metrics: &Arc<Metrics>, gauge: Gauge) -> Self {
        Self::counter(metrics, gauge).fetch_add(1, Ordering::Relaxed);
        Self {
            metrics: Arc::clone(metrics),
            gauge,
        }
    }

    fn counter(metrics: &Metrics, gauge: Gauge) -> &AtomicI64 {
        match gauge {
            Gauge::Participants => &metrics.participants,
            Gauge::Peers => &metrics.peers,
            Gauge::Publications => &metrics.publications,
            Gauge::Subscriptions => &metrics.subscriptions,
        }
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        Self::counter(&self.metrics, self.gauge).fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_return_gauges_to_zero() {
        let metrics = Arc::new(Metrics::default());
        let a = GaugeGuard::new(&metrics, Gauge::Peers);
        let b = GaugeGuard::new(&metrics, Gauge::Peers);
        assert_eq!(metrics.counts(0).peers, 2);
        drop(a);
        drop(b);
        assert!(metrics.counts(0).is_zero());
    }

    #[test]
    fn prometheus_text_names_every_series() {
        let metrics = Metrics::default();
        metrics.packets_out.fetch_add(3, Ordering::Relaxed);
        let text = metrics.render_prometheus(1);
        assert!(text.contains("switchyard_rooms 1"));
        assert!(text.contains("switchyard_rtp_packets_out_total 3"));
        assert!(text.contains("# TYPE switchyard_rembs_received_total counter"));
        assert!(text.contains("# TYPE switchyard_join_seconds histogram"));
    }

    #[test]
    fn every_counter_is_named_total_and_every_family_is_described() {
        let text = Metrics::default().render_prometheus(0);
        let mut described = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("a TYPE line names a type");
                assert!(
                    text.contains(&format!("# HELP {name} ")),
                    "{name} has a HELP line"
                );
                if kind == "counter" {
                    assert!(name.ends_with("_total"), "counter {name} ends in _total");
                }
                described.insert(name.to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().expect("a sample has a name");
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .filter(|family| described.contains(*family))
                    .unwrap_or(name);
                assert!(described.contains(family), "{name} follows its TYPE line");
            }
        }
    }

    #[test]
    fn the_histogram_counts_each_observation_in_its_bucket() {
        let histogram = Histogram::default();
        for millis in [40, 50, 300, 999, 60_000] {
            histogram.observe(Duration::from_millis(millis));
        }
        assert_eq!(histogram.count(), 5);
        assert_eq!(histogram.sum(), Duration::from_millis(61_389));
        let mut out = String::new();
        histogram.render(&mut out, "join_seconds", "help");
        let expected = "# HELP join_seconds help\n# TYPE join_seconds histogram\n\
            join_seconds_bucket{le=\"0.05\"} 2\n\
            join_seconds_bucket{le=\"0.1\"} 2\n\
            join_seconds_bucket{le=\"0.25\"} 2\n\
            join_seconds_bucket{le=\"0.5\"} 3\n\
            join_seconds_bucket{le=\"1\"} 4\n\
            join_seconds_bucket{le=\"2\"} 4\n\
            join_seconds_bucket{le=\"3\"} 4\n\
            join_seconds_bucket{le=\"5\"} 4\n\
            join_seconds_bucket{le=\"10\"} 4\n\
            join_seconds_bucket{le=\"30\"} 4\n\
            join_seconds_bucket{le=\"+Inf\"} 5\n\
            join_seconds_sum 61.389\n\
            join_seconds_count 5\n";
        assert_eq!(out, expected);
    }
}

//! What the server cost during the measurement window, from its readings at the window's
//! two ends: CPU time and memory (its own `process_` metrics, or `/proc` on this machine) and
//! its counters (`/metrics`). The report keeps the readings themselves, so that the shards of
//! one run can be merged over the time they all measured.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::server_probe::Sample;
use crate::start::unix_seconds;

/// The server's cost and counters during the window.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct ServerReport {
    /// CPU used, in percent of one core.
    pub cpu_percent: Option<f64>,
    /// CPU seconds used.
    pub cpu_seconds: Option<f64>,
    /// Highest resident memory seen, bytes.
    pub rss_bytes: Option<u64>,
    /// Packets the server says it forwarded.
    pub forwarded_packets: Option<f64>,
    /// Per second.
    pub forwarded_per_second: Option<f64>,
    /// Per CPU-second.
    pub forwarded_per_cpu_second: Option<f64>,
    /// CPU microseconds per forwarded packet: the figure to judge a change by.
    pub cpu_us_per_forwarded_packet: Option<f64>,
    /// Packets the synthetic receivers got per CPU-second of the server: the forwarding rate
    /// counted the same way for any server, whatever its own counters say.
    pub delivered_per_cpu_second: Option<f64>,
    /// CPU microseconds per packet the synthetic receivers got.
    pub cpu_us_per_delivered_packet: Option<f64>,
    /// Packets it dropped because a receiver was not keeping up.
    pub dropped_packets: Option<f64>,
    /// PLIs it sent publishers.
    pub plis_sent: Option<f64>,
    /// REMBs it received from receivers.
    pub rembs_received: Option<f64>,
    /// NACKs it received from receivers.
    pub nacks_received: Option<f64>,
}

/// One reading of the server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// When, Unix seconds.
    pub unix: f64,
    /// CPU seconds the process used so far.
    pub cpu_seconds: Option<f64>,
    /// Resident memory, bytes.
    pub rss_bytes: Option<u64>,
    /// Its unlabelled counters and gauges, by name.
    pub counters: BTreeMap<String, f64>,
}

impl From<&Sample> for Reading {
    fn from(sample: &Sample) -> Self {
        Self {
            unix: unix_seconds(sample.wall),
            cpu_seconds: sample.cpu_seconds,
            rss_bytes: sample.rss_bytes,
            counters: sample
                .metrics
                .iter()
                .map(|(name, value)| (name.clone(), *value))
                .collect(),
        }
    }
}

/// The server at the two ends of the measurement window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Readings {
    /// When the window opened.
    pub opened: Reading,
    /// When it closed.
    pub closed: Reading,
}

impl ServerReport {
    /// The server's cost between the two readings, `delivered` being the packets the synthetic
    /// receivers got meanwhile and `rss_max` the highest resident memory seen.
    pub fn between(readings: &Readings, rss_max: Option<u64>, delivered: u64) -> ServerReport {
        let (before, after) = (&readings.opened, &readings.closed);
        let window_seconds = (after.unix - before.unix).max(1e-9);
        let delta = |name: &str| -> Option<f64> {
            Some(after.counters.get(name)? - before.counters.get(name)?)
        };
        let cpu_seconds = match (before.cpu_seconds, after.cpu_seconds) {
            (Some(start), Some(end)) => Some(end - start),
            _ => None,
        };
        let forwarded = delta("switchyard_rtp_packets_out_total");
        ServerReport {
            cpu_percent: cpu_seconds.map(|cpu| cpu / window_seconds * 100.0),
            cpu_seconds,
            rss_bytes: rss_max.or(after.rss_bytes),
            forwarded_packets: forwarded,
            forwarded_per_second: forwarded.map(|packets| packets / window_seconds),
            forwarded_per_cpu_second: match (forwarded, cpu_seconds) {
                (Some(packets), Some(cpu)) if cpu > 0.0 => Some(packets / cpu),
                _ => None,
            },
            cpu_us_per_forwarded_packet: match (forwarded, cpu_seconds) {
                (Some(packets), Some(cpu)) if packets > 0.0 => Some(cpu * 1e6 / packets),
                _ => None,
            },
            delivered_per_cpu_second: cpu_seconds
                .filter(|cpu| *cpu > 0.0)
                .map(|cpu| delivered as f64 / cpu),
            cpu_us_per_delivered_packet: cpu_seconds
                .filter(|_| delivered > 0)
                .map(|cpu| cpu * 1e6 / delivered as f64),
            dropped_packets: delta("switchyard_rtp_packets_dropped_total"),
            plis_sent: delta("switchyard_plis_sent_total"),
            rembs_received: delta("switchyard_rembs_received_total"),
            nacks_received: delta("switchyard_nacks_received_total"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(unix: f64, cpu: f64, forwarded: f64) -> Reading {
        Reading {
            unix,
            cpu_seconds: Some(cpu),
            rss_bytes: Some(1 << 20),
            counters: BTreeMap::from([("switchyard_rtp_packets_out_total".to_owned(), forwarded)]),
        }
    }

    #[test]
    fn cost_per_packet_comes_from_the_two_readings() {
        let readings = Readings {
            opened: reading(100.0, 10.0, 1_000.0),
            closed: reading(110.0, 12.0, 201_000.0),
        };
        let server = ServerReport::between(&readings, None, 150_000);
        assert_eq!(server.cpu_seconds, Some(2.0));
        assert_eq!(server.cpu_percent, Some(20.0));
        assert_eq!(server.forwarded_per_second, Some(20_000.0));
        assert_eq!(server.cpu_us_per_forwarded_packet, Some(10.0));
        assert_eq!(server.forwarded_per_cpu_second, Some(100_000.0));
        assert_eq!(server.delivered_per_cpu_second, Some(75_000.0));
        assert_eq!(server.rss_bytes, Some(1 << 20));
        assert_eq!(server.nacks_received, None, "not read");
    }
}

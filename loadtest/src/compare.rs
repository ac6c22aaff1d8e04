//! Two servers side by side: the reports of the same scenario run against each of them, in
//! turn, reduced to one table with the ratio of the first server's figures to the second's.
//!
//! Every figure is computed the same way for both servers from what the load test itself
//! observed: "forwarded packets" are the packets the synthetic receivers got during the
//! measurement window (no server counter is trusted), and the server's CPU time and memory
//! come from `/proc` for its process. Runs of one server are pooled: CPU per packet is the
//! CPU time of all runs over the packets of all runs, rates and percentiles are the mean of
//! the runs, the peak memory is the highest, and the spread of the per-packet cost over the
//! runs is shown next to it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::report::Report;

/// Every run of one server.
#[derive(Debug, Clone)]
pub struct ServerRuns {
    /// The server's name, from the reports.
    pub target: String,
    /// Its runs, in the order they ran.
    pub reports: Vec<Report>,
}

/// The figures of one server, over its runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pooled {
    /// Server CPU microseconds per packet delivered to the receivers, over all runs.
    pub cpu_us_per_packet: Option<f64>,
    /// The lowest and highest per-run value of the above.
    pub cpu_us_per_packet_range: Option<(f64, f64)>,
    /// Packets delivered per second, mean of the runs.
    pub packets_per_second: f64,
    /// Packets delivered per CPU-second of the server, over all runs.
    pub packets_per_cpu_second: Option<f64>,
    /// Server CPU in percent of one core, mean of the runs.
    pub cpu_percent: Option<f64>,
    /// Video loss after retransmission, all tracks, mean of the runs.
    pub video_loss: f64,
    /// Audio loss, all tracks, mean of the runs.
    pub audio_loss: f64,
    /// Video latency p50 and p99 in milliseconds, mean of the runs.
    pub video_latency_ms: (f64, f64),
    /// Audio latency p50 and p99 in milliseconds, mean of the runs.
    pub audio_latency_ms: (f64, f64),
    /// From joining to the first packet of every remote track, p50 and p99 in milliseconds,
    /// mean of the runs.
    pub join_ms: (f64, f64),
    /// From joining to the first keyframe of every remote video (the first picture), p50 and
    /// p99 in milliseconds, mean of the runs.
    pub picture_ms: (f64, f64),
    /// The highest resident memory of any run, MiB.
    pub peak_rss_mib: Option<f64>,
    /// Tracks received and expected, summed over the runs.
    pub tracks: (usize, usize),
}

impl ServerRuns {
    /// Pools the runs; `None` when there are none.
    pub fn pooled(&self) -> Option<Pooled> {
        let runs = &self.reports;
        if runs.is_empty() {
            return None;
        }
        let count = runs.len() as f64;
        let mean = |value: &dyn Fn(&Report) -> f64| runs.iter().map(value).sum::<f64>() / count;
        let cpu: Option<f64> = runs.iter().map(|run| run.server.cpu_seconds).sum();
        let packets: u64 = runs.iter().map(|run| run.received.packets).sum();
        let per_run: Option<Vec<f64>> = runs
            .iter()
            .map(|run| run.server.cpu_us_per_delivered_packet)
            .collect();
        let cpu_percent: Option<f64> = runs.iter().map(|run| run.server.cpu_percent).sum();
        let rss = runs
            .iter()
            .filter_map(|run| run.server.rss_bytes)
            .max()
            .map(|bytes| bytes as f64 / 1_048_576.0);
        Some(Pooled {
            cpu_us_per_packet: cpu
                .filter(|_| packets > 0)
                .map(|cpu| cpu * 1e6 / packets as f64),
            cpu_us_per_packet_range: per_run.filter(|values| !values.is_empty()).map(|values| {
                values
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), value| {
                        (low.min(*value), high.max(*value))
                    })
            }),
            packets_per_second: mean(&|run| run.received.packets_per_second),
            packets_per_cpu_second: cpu.filter(|cpu| *cpu > 0.0).map(|cpu| packets as f64 / cpu),
            cpu_percent: cpu_percent.map(|total| total / count),
            video_loss: mean(&|run| run.video.loss),
            audio_loss: mean(&|run| run.audio.loss),
            video_latency_ms: (
                mean(&|run| run.video.latency_ms.p50),
                mean(&|run| run.video.latency_ms.p99),
            ),
            audio_latency_ms: (
                mean(&|run| run.audio.latency_ms.p50),
                mean(&|run| run.audio.latency_ms.p99),
            ),
            join_ms: (
                mean(&|run| run.join.to_all_tracks_ms.p50),
                mean(&|run| run.join.to_all_tracks_ms.p99),
            ),
            picture_ms: (
                mean(&|run| run.join.to_all_keyframes_ms.p50),
                mean(&|run| run.join.to_all_keyframes_ms.p99),
            ),
            peak_rss_mib: rss,
            tracks: runs.iter().fold((0, 0), |(received, expected), run| {
                (
                    received + run.tracks.received,
                    expected + run.tracks.expected,
                )
            }),
        })
    }
}

/// Groups reports by server, keeping the order in which the servers first appear.
pub fn group(reports: Vec<Report>) -> Vec<ServerRuns> {
    let mut groups: Vec<ServerRuns> = Vec::new();
    for report in reports {
        match groups
            .iter_mut()
            .find(|group| group.target == report.target)
        {
            Some(group) => group.reports.push(report),
            None => groups.push(ServerRuns {
                target: report.target.clone(),
                reports: vec![report],
            }),
        }
    }
    groups
}

/// The most packets one core can forward per second, by SRTP protection profile: the inverse
/// of the floor benchmark's time per packet (`cargo bench --bench forward_floor`).
pub type Floors = BTreeMap<String, f64>;

/// A floor benchmark's figures, with what the table calls it.
#[derive(Debug, Clone, Default)]
pub struct FloorSet {
    /// How the share row names the floor, e.g. "the floor" or "the batched floor".
    pub name: String,
    /// Packets per CPU-second by SRTP profile.
    pub floors: Floors,
}

/// The Markdown table comparing exactly two servers, the ratio being the first's figure over
/// the second's. For each of `floor_sets`, each server's forwarded packets per CPU-second are
/// also given as a share of that floor for the SRTP profile it negotiated.
pub fn markdown(servers: &[ServerRuns], floor_sets: &[FloorSet]) -> Result<String, String> {
    let [first, second] = servers else {
        return Err(format!(
            "a comparison needs reports of exactly two servers, not {}",
            servers.len()
        ));
    };
    let scenario = &first.reports[0].scenario;
    if second
        .reports
        .iter()
        .chain(&first.reports)
        .any(|report| report.scenario != *scenario)
    {
        return Err("every report must come from the same scenario".to_owned());
    }
    let (Some(a), Some(b)) = (first.pooled(), second.pooled()) else {
        return Err("a server without runs".to_owned());
    };
    let profiles = |runs: &ServerRuns| {
        let mut all: Vec<String> = runs
            .reports
            .iter()
            .flat_map(|report| report.srtp_profiles.iter().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    };
    let (profiles_a, profiles_b) = (profiles(first), profiles(second));
    // A floor of a server's one negotiated profile.
    let floor = |floors: &Floors, profiles: &[String]| match profiles {
        [profile] => floors.get(profile).copied(),
        _ => None,
    };
    let share = |pooled: &Pooled, floor: Option<f64>| {
        pooled
            .packets_per_cpu_second
            .zip(floor)
            .map(|(rate, floor)| rate / floor)
    };
    let listed = |profiles: &[String]| {
        if profiles.is_empty() {
            "n/a".to_owned()
        } else {
            profiles.join(", ")
        }
    };

    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut row = |label: &str, a: String, b: String, ratio: String| {
        rows.push([label.to_owned(), a, b, ratio]);
    };
    row(
        "server CPU µs per forwarded packet (runs: low–high)",
        per_packet(a.cpu_us_per_packet, a.cpu_us_per_packet_range),
        per_packet(b.cpu_us_per_packet, b.cpu_us_per_packet_range),
        ratio(a.cpu_us_per_packet, b.cpu_us_per_packet),
    );
    row(
        "forwarded packets per server CPU-second",
        number(a.packets_per_cpu_second, 0),
        number(b.packets_per_cpu_second, 0),
        ratio(a.packets_per_cpu_second, b.packets_per_cpu_second),
    );
    for set in floor_sets.iter().filter(|set| !set.floors.is_empty()) {
        let percent = |share: Option<f64>, floor: Option<f64>| match (share, floor) {
            (Some(share), Some(floor)) => {
                format!("{:.1}% of {:.0}", share * 100.0, floor)
            }
            _ => "n/a".to_owned(),
        };
        let (floor_a, floor_b) = (
            floor(&set.floors, &profiles_a),
            floor(&set.floors, &profiles_b),
        );
        let (share_a, share_b) = (share(&a, floor_a), share(&b, floor_b));
        row(
            &format!("… as a share of {} for its SRTP profile", set.name),
            percent(share_a, floor_a),
            percent(share_b, floor_b),
            ratio(share_a, share_b),
        );
    }
    row(
        "forwarded packets/s",
        format!("{:.0}", a.packets_per_second),
        format!("{:.0}", b.packets_per_second),
        ratio(Some(a.packets_per_second), Some(b.packets_per_second)),
    );
    row(
        "server CPU, % of one core",
        number(a.cpu_percent, 1),
        number(b.cpu_percent, 1),
        ratio(a.cpu_percent, b.cpu_percent),
    );
    row(
        "video loss / audio loss",
        format!(
            "{:.3}% / {:.3}%",
            a.video_loss * 100.0,
            a.audio_loss * 100.0
        ),
        format!(
            "{:.3}% / {:.3}%",
            b.video_loss * 100.0,
            b.audio_loss * 100.0
        ),
        format!(
            "{} / {}",
            ratio(Some(a.video_loss), Some(b.video_loss)),
            ratio(Some(a.audio_loss), Some(b.audio_loss))
        ),
    );
    for (label, x, y) in [
        (
            "video latency p50 / p99 ms",
            a.video_latency_ms,
            b.video_latency_ms,
        ),
        (
            "audio latency p50 / p99 ms",
            a.audio_latency_ms,
            b.audio_latency_ms,
        ),
        ("join → every track p50 / p99 ms", a.join_ms, b.join_ms),
        (
            "join → every video's first keyframe p50 / p99 ms",
            a.picture_ms,
            b.picture_ms,
        ),
    ] {
        row(
            label,
            format!("{:.1} / {:.1}", x.0, x.1),
            format!("{:.1} / {:.1}", y.0, y.1),
            format!(
                "{} / {}",
                ratio(Some(x.0), Some(y.0)),
                ratio(Some(x.1), Some(y.1))
            ),
        );
    }
    row(
        "server peak RSS MiB",
        number(a.peak_rss_mib, 1),
        number(b.peak_rss_mib, 1),
        ratio(a.peak_rss_mib, b.peak_rss_mib),
    );
    row(
        "tracks received, all runs",
        format!("{}/{}", a.tracks.0, a.tracks.1),
        format!("{}/{}", b.tracks.0, b.tracks.1),
        String::new(),
    );
    row(
        "SRTP profile",
        listed(&profiles_a),
        listed(&profiles_b),
        String::new(),
    );
    row(
        "runs",
        first.reports.len().to_string(),
        second.reports.len().to_string(),
        String::new(),
    );

    let mut out = String::new();
    let _ = writeln!(
        out,
        "| measure | {} | {} | {} / {} |\n|---|---|---|---|",
        first.target, second.target, first.target, second.target
    );
    for [label, a, b, ratio] in rows {
        let _ = writeln!(out, "| {label} | {a} | {b} | {ratio} |");
    }
    Ok(out)
}

/// What is wrong with a run as a measurement: participants that could not join, tracks that
/// never arrived, or a track that lost 1 % or more. Empty when the run measured everything.
pub fn shortfalls(report: &Report) -> Vec<String> {
    let mut problems = Vec::new();
    if report.participants.failed > 0 {
        problems.push(format!(
            "{} participants could not join",
            report.participants.failed
        ));
    }
    if report.tracks.received < report.tracks.expected {
        problems.push(format!(
            "{} of {} tracks received",
            report.tracks.received, report.tracks.expected
        ));
    }
    for (kind, media) in [("video", &report.video), ("audio", &report.audio)] {
        if media.loss_worst >= 0.01 {
            problems.push(format!(
                "the worst {kind} track lost {:.2}%",
                media.loss_worst * 100.0
            ));
        }
    }
    if report.tracks.corrupted_packets + report.tracks.foreign_packets > 0 {
        problems.push(format!(
            "{} corrupted and {} misrouted packets",
            report.tracks.corrupted_packets, report.tracks.foreign_packets
        ));
    }
    problems
}

fn number(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "n/a".to_owned(), |value| format!("{value:.digits$}"))
}

fn per_packet(value: Option<f64>, range: Option<(f64, f64)>) -> String {
    match (value, range) {
        (Some(value), Some((low, high))) => format!("{value:.1} ({low:.1}–{high:.1})"),
        (value, _) => number(value, 1),
    }
}

/// `a / b` to two decimals; `–` when it means nothing (both zero, or a figure missing).
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        (Some(a), Some(_)) if a > 0.0 => "∞".to_owned(),
        _ => "–".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{
        JoinTimes, MediaSummary, ParticipantCounts, ServerReport, Throughput, TrackCounts,
    };
    use crate::scenario::Scenario;
    use crate::stats::Percentiles;

    fn report(target: &str, cpu_seconds: f64, packets: u64, video_loss: f64) -> Report {
        let latency = Percentiles {
            count: 10,
            p50: 2.0,
            p95: 3.0,
            p99: 4.0,
            max: 5.0,
        };
        Report {
            target: target.to_owned(),
            scenario: Scenario::default(),
            window_seconds: 10.0,
            participants: ParticipantCounts::default(),
            join: JoinTimes {
                to_all_tracks_ms: latency,
                ..JoinTimes::default()
            },
            tracks: TrackCounts {
                expected: 4,
                received: 4,
                ..TrackCounts::default()
            },
            video: MediaSummary {
                loss: video_loss,
                latency_ms: latency,
                ..MediaSummary::default()
            },
            audio: MediaSummary::default(),
            keyframe_response_ms: Percentiles::default(),
            received: Throughput {
                packets,
                packets_per_second: packets as f64 / 10.0,
            },
            server: ServerReport {
                cpu_seconds: Some(cpu_seconds),
                cpu_percent: Some(cpu_seconds * 10.0),
                cpu_us_per_delivered_packet: Some(cpu_seconds * 1e6 / packets as f64),
                rss_bytes: Some(64 * 1_048_576),
                ..ServerReport::default()
            },
            srtp_profiles: vec!["SRTP_AEAD_AES_128_GCM".to_owned()],
            per_track: Vec::new(),
            ..Report::default()
        }
    }

    #[test]
    fn pools_runs_and_divides_the_first_server_by_the_second() {
        let groups = group(vec![
            report("switchyard", 1.0, 100_000, 0.0),
            report("janus", 2.0, 100_000, 0.001),
            report("switchyard", 1.5, 100_000, 0.0),
            report("janus", 2.0, 100_000, 0.001),
        ]);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].target, "switchyard");
        let pooled = groups[0].pooled().unwrap();
        assert_eq!(
            pooled.cpu_us_per_packet,
            Some(12.5),
            "2.5 s over 200 000 packets"
        );
        assert_eq!(pooled.cpu_us_per_packet_range, Some((10.0, 15.0)));
        assert_eq!(pooled.tracks, (8, 8));
        let floors = FloorSet {
            name: "the floor".to_owned(),
            floors: Floors::from([("SRTP_AEAD_AES_128_GCM".to_owned(), 1_000_000.0)]),
        };
        let table = markdown(&groups, &[floors]).unwrap();
        assert!(table.contains("| switchyard / janus |"), "{table}");
        assert!(
            table.contains("| server CPU µs per forwarded packet (runs: low–high) | 12.5 (10.0–15.0) | 20.0 (20.0–20.0) | 0.62 |"),
            "{table}"
        );
        assert!(
            table.contains("0.000% / 0.000% | 0.100% / 0.000% | 0.00 / – |"),
            "{table}"
        );
    }

    #[test]
    fn a_run_with_missing_tracks_or_loss_falls_short() {
        assert!(shortfalls(&report("janus", 1.0, 10, 0.0)).is_empty());
        let mut lossy = report("janus", 1.0, 10, 0.0);
        lossy.video.loss_worst = 0.02;
        lossy.tracks.received = 3;
        assert_eq!(shortfalls(&lossy).len(), 2, "{:?}", shortfalls(&lossy));
    }

    #[test]
    fn refuses_what_cannot_be_compared() {
        let none = [];
        assert!(markdown(&group(vec![report("switchyard", 1.0, 10, 0.0)]), &none).is_err());
        let mut other = report("janus", 1.0, 10, 0.0);
        other.scenario.publishers = 9;
        assert!(
            markdown(
                &group(vec![report("switchyard", 1.0, 10, 0.0), other]),
                &none
            )
            .is_err()
        );
    }
}

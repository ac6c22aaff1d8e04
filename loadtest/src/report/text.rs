//! The report as people read it: a table on the terminal, and the headline figures in
//! Markdown for `docs/benchmarks.md`.

use std::fmt::Write as _;

use super::{Failure, Report, receivers};

impl Report {
    /// The headline figures as a Markdown table, for `docs/benchmarks.md`.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "| measure | value |\n|---|---|");
        for (label, value) in self.headline() {
            let _ = writeln!(out, "| {label} | {value} |");
        }
        out
    }

    /// The headline figures: what the Markdown table and the HTML page show.
    pub fn headline(&self) -> Vec<(&'static str, String)> {
        let server = &self.server;
        let value = |value: Option<f64>, digits: usize| {
            value.map_or_else(|| "n/a".to_owned(), |value| format!("{value:.digits$}"))
        };
        let mut rows: Vec<(&'static str, String)> = vec![
            (
                "participants joined",
                format!("{}/{}", self.participants.joined, self.participants.planned),
            ),
            (
                "tracks received",
                format!("{}/{}", self.tracks.received, self.tracks.expected),
            ),
            (
                "join: socket → joined, p50 / p99 ms",
                format!(
                    "{:.1} / {:.1}",
                    self.join.to_joined_ms.p50, self.join.to_joined_ms.p99
                ),
            ),
            (
                "join: → every track, p50 / p99 ms",
                format!(
                    "{:.0} / {:.0}",
                    self.join.to_all_tracks_ms.p50, self.join.to_all_tracks_ms.p99
                ),
            ),
            (
                "join: → every keyframe, p50 / p99 ms",
                format!(
                    "{:.0} / {:.0}",
                    self.join.to_all_keyframes_ms.p50, self.join.to_all_keyframes_ms.p99
                ),
            ),
            (
                "video received per track, mean / min kbit/s",
                format!(
                    "{:.0} / {:.0}",
                    self.video.bitrate_mean_bps / 1000.0,
                    self.video.bitrate_min_bps / 1000.0
                ),
            ),
            (
                "video loss after retransmission, all / worst track",
                format!(
                    "{:.3}% / {:.3}%",
                    self.video.loss * 100.0,
                    self.video.loss_worst * 100.0
                ),
            ),
            (
                "audio loss, all / worst track",
                format!(
                    "{:.3}% / {:.3}%",
                    self.audio.loss * 100.0,
                    self.audio.loss_worst * 100.0
                ),
            ),
            (
                "video latency p50 / p95 / p99 ms",
                format!(
                    "{:.1} / {:.1} / {:.1}",
                    self.video.latency_ms.p50, self.video.latency_ms.p95, self.video.latency_ms.p99
                ),
            ),
            (
                "audio latency p50 / p95 / p99 ms",
                format!(
                    "{:.1} / {:.1} / {:.1}",
                    self.audio.latency_ms.p50, self.audio.latency_ms.p95, self.audio.latency_ms.p99
                ),
            ),
            (
                "video freezes (total frozen ms)",
                format!("{} ({:.0})", self.video.freezes, self.video.frozen_ms),
            ),
            (
                "keyframe response p50 / p99 ms",
                format!(
                    "{:.1} / {:.1}",
                    self.keyframe_response_ms.p50, self.keyframe_response_ms.p99
                ),
            ),
            (
                "server: forwarded packets/s",
                value(server.forwarded_per_second, 0),
            ),
            ("server: CPU, % of one core", value(server.cpu_percent, 1)),
            (
                "server: CPU µs per forwarded packet",
                value(server.cpu_us_per_forwarded_packet, 1),
            ),
            (
                "server: forwarded packets per CPU-second",
                value(server.forwarded_per_cpu_second, 0),
            ),
            (
                "server: peak RSS MiB",
                value(server.rss_bytes.map(|bytes| bytes as f64 / 1048576.0), 1),
            ),
            (
                "server: packets dropped (slow receivers)",
                value(server.dropped_packets, 0),
            ),
            ("server: NACKs received", value(server.nacks_received, 0)),
        ];
        if !self.per_receiver.is_empty() {
            let bitrates: Vec<f64> = self
                .per_receiver
                .iter()
                .map(|receiver| receiver.bitrate_bps)
                .collect();
            let mean = bitrates.iter().sum::<f64>() / bitrates.len() as f64;
            let min = bitrates.iter().copied().fold(f64::INFINITY, f64::min);
            let max = bitrates.iter().copied().fold(0.0, f64::max);
            rows.push((
                "received per participant, mean / min / max kbit/s",
                format!(
                    "{:.0} / {:.0} / {:.0}",
                    mean / 1000.0,
                    min / 1000.0,
                    max / 1000.0
                ),
            ));
        }
        if !self.layer_seconds.is_empty() {
            rows.push((
                "video layers received, share of time",
                receivers::layer_shares(&self.layer_seconds),
            ));
        }
        if let Some(churn) = &self.churn {
            rows.extend([
                (
                    "churn: joined / started",
                    format!("{}/{}", churn.joined, churn.started),
                ),
                (
                    "churn: socket → joined, p50 / p99 ms",
                    format!(
                        "{:.1} / {:.1}",
                        churn.to_joined_ms.p50, churn.to_joined_ms.p99
                    ),
                ),
                (
                    "churn: → every track, p50 / p99 ms",
                    format!(
                        "{:.0} / {:.0}",
                        churn.to_all_tracks_ms.p50, churn.to_all_tracks_ms.p99
                    ),
                ),
            ]);
        }
        rows
    }

    /// The report as a readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let s = &self.scenario;
        let _ = writeln!(
            out,
            "target     {}, SRTP {}",
            self.target,
            if self.srtp_profiles.is_empty() {
                "n/a".to_owned()
            } else {
                self.srtp_profiles.join(", ")
            }
        );
        let _ = writeln!(
            out,
            "scenario   {} room(s) x ({} publishers + {} subscribers), video {} @ {} fps, audio {}, {:.1} s measured",
            s.rooms,
            s.publishers,
            s.subscribers,
            video_description(s),
            s.fps,
            if s.audio { "on" } else { "off" },
            self.window_seconds
        );
        if let Some(tile) = s.tile {
            let _ = writeln!(out, "tiles      every received video shown at {tile}");
        }
        if !s.impairment.is_none() {
            let i = &s.impairment;
            let _ = writeln!(
                out,
                "network    {}loss {:.1}%, delay {} ms +/- {} ms, bandwidth {}",
                s.impaired.map_or(String::new(), |count| format!(
                    "the last {count} of each room: "
                )),
                i.loss * 100.0,
                i.delay.as_millis(),
                i.jitter.as_millis(),
                i.bandwidth.map_or("unlimited".to_owned(), |bits| format!(
                    "{} kbit/s",
                    bits / 1000
                ))
            );
        }
        let p = &self.participants;
        let _ = writeln!(
            out,
            "joined     {}/{} participants ({} failed, {} connected); tracks {}/{} received",
            p.joined, p.planned, p.failed, p.connected, self.tracks.received, self.tracks.expected
        );
        for (count, reason, who) in failure_summary(&p.failures) {
            let _ = writeln!(out, "failed     {count} x {reason} ({who})");
        }
        if p.skipped > 0 {
            let _ = writeln!(
                out,
                "skipped    {} participants: the run was stopped before they joined",
                p.skipped
            );
        }
        if let Some(churn) = &self.churn {
            let _ = writeln!(
                out,
                "churn      {}/{} churners joined ({} failed, {} left before every track came)",
                churn.joined, churn.started, churn.failed, churn.incomplete
            );
            for (count, reason, who) in failure_summary(&churn.failures) {
                let _ = writeln!(out, "failed     {count} x {reason} ({who})");
            }
        }
        if self.run.merged_shards > 1 {
            let _ = writeln!(
                out,
                "shards     merged from {} load machines, run {}",
                self.run.merged_shards, self.run.run_id
            );
        } else if !self.run.shard.is_whole() {
            let _ = writeln!(
                out,
                "shard      {} of run {}: merge the shards' --json reports with `loadtest merge`",
                self.run.shard, self.run.run_id
            );
        }
        if let Some(problem) = &self.run.metrics_problem {
            let _ = writeln!(out, "METRICS    not read: {problem}");
        }
        if self.run.interrupted {
            let _ = writeln!(
                out,
                "STOPPED    early: the figures cover what was measured until then"
            );
        }
        if self.tracks.corrupted_packets + self.tracks.foreign_packets > 0 {
            let _ = writeln!(
                out,
                "INTEGRITY  {} corrupted and {} misrouted packets",
                self.tracks.corrupted_packets, self.tracks.foreign_packets
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<28}{:>10}{:>10}{:>10}{:>10}",
            "milliseconds", "p50", "p95", "p99", "max"
        );
        let mut rows = vec![
            ("join: socket -> joined", &self.join.to_joined_ms),
            ("join: -> every track", &self.join.to_all_tracks_ms),
            ("join: -> every keyframe", &self.join.to_all_keyframes_ms),
            ("video latency", &self.video.latency_ms),
            ("audio latency", &self.audio.latency_ms),
            ("keyframe response", &self.keyframe_response_ms),
        ];
        if let Some(churn) = &self.churn {
            rows.push(("churn: socket -> joined", &churn.to_joined_ms));
            rows.push(("churn: -> every track", &churn.to_all_tracks_ms));
        }
        for (label, row) in rows {
            let _ = writeln!(
                out,
                "{label:<28}{:>10.1}{:>10.1}{:>10.1}{:>10.1}",
                row.p50, row.p95, row.p99, row.max
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<8}{:>8}{:>14}{:>14}{:>10}{:>12}{:>10}{:>12}",
            "media",
            "tracks",
            "mean kbit/s",
            "min kbit/s",
            "loss %",
            "worst %",
            "freezes",
            "frozen ms"
        );
        for (label, media) in [("video", &self.video), ("audio", &self.audio)] {
            let _ = writeln!(
                out,
                "{label:<8}{:>8}{:>14.0}{:>14.0}{:>10.3}{:>12.3}{:>10}{:>12.0}",
                media.tracks,
                media.bitrate_mean_bps / 1000.0,
                media.bitrate_min_bps / 1000.0,
                media.loss * 100.0,
                media.loss_worst * 100.0,
                media.freezes,
                media.frozen_ms
            );
        }
        let _ = writeln!(out);
        let server = &self.server;
        let show = |value: Option<f64>, unit: &str| {
            value.map_or_else(|| "n/a".to_owned(), |value| format!("{value:.1}{unit}"))
        };
        let _ = writeln!(
            out,
            "received   {} packets, {:.0} packets/s; server CPU {} per received packet",
            self.received.packets,
            self.received.packets_per_second,
            show(server.cpu_us_per_delivered_packet, " us")
        );
        let _ = writeln!(
            out,
            "server     forwarded {} packets/s, CPU {} of one core, {} per forwarded packet, {} packets per CPU-second, RSS {}",
            show(server.forwarded_per_second, ""),
            show(server.cpu_percent, "%"),
            show(server.cpu_us_per_forwarded_packet, " us"),
            show(server.forwarded_per_cpu_second, ""),
            server.rss_bytes.map_or("n/a".to_owned(), |bytes| format!(
                "{:.1} MiB",
                bytes as f64 / 1048576.0
            )),
        );
        let _ = writeln!(
            out,
            "server     PLIs sent {}, REMBs received {}, NACKs received {}, packets dropped {}",
            show(server.plis_sent, ""),
            show(server.rembs_received, ""),
            show(server.nacks_received, ""),
            show(server.dropped_packets, "")
        );
        if !self.layer_seconds.is_empty() || s.impaired.is_some() || s.tile.is_some() {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "layers     video received, share of time: {}",
                receivers::layer_shares(&self.layer_seconds)
            );
            out.push_str(&receivers::table(&self.per_receiver));
        }
        out
    }
}

/// `500 kbit/s`, or the simulcast layers.
pub fn video_description(scenario: &crate::scenario::Scenario) -> String {
    if scenario.video_bitrate == 0 {
        "off".to_owned()
    } else if scenario.simulcast {
        "simulcast q/h/f 150+500+1500 kbit/s".to_owned()
    } else {
        format!("{} kbit/s", scenario.video_bitrate / 1000)
    }
}

/// Failures grouped by reason, most frequent first: how many, the reason, and who (the first
/// few names).
pub fn failure_summary(failures: &[Failure]) -> Vec<(usize, String, String)> {
    const NAMED: usize = 3;
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for failure in failures {
        match groups
            .iter_mut()
            .find(|(reason, _)| *reason == failure.reason)
        {
            Some((_, who)) => who.push(&failure.participant),
            None => groups.push((failure.reason.clone(), vec![&failure.participant])),
        }
    }
    groups.sort_by_key(|(_, who)| std::cmp::Reverse(who.len()));
    groups
        .into_iter()
        .map(|(reason, who)| {
            let mut named = who[..who.len().min(NAMED)].join(", ");
            if who.len() > NAMED {
                named.push_str(&format!(" and {} more", who.len() - NAMED));
            }
            (who.len(), reason, named)
        })
        .collect()
}

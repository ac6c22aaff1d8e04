//! The numbers a run produces: as a readable table and as JSON.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use switchyard::signal::protocol::TrackKind;

use crate::participant::Observed;
use crate::scenario::Scenario;
use crate::server_probe::Sample;
use crate::stats::{Percentiles, new_histogram};

/// Everything one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The server it ran against: `switchyard` or `janus`.
    pub target: String,
    /// What ran.
    pub scenario: Scenario,
    /// The length of the measurement window, in seconds; it starts once everybody has joined
    /// and every remote track flows (or the settling time ran out).
    pub window_seconds: f64,
    /// Who took part.
    pub participants: ParticipantCounts,
    /// How long joining took.
    pub join: JoinTimes,
    /// How many received tracks there should have been and were.
    pub tracks: TrackCounts,
    /// Every received video track, summarized.
    pub video: MediaSummary,
    /// Every received audio track, summarized.
    pub audio: MediaSummary,
    /// From a receiver's PLI to the next keyframe it received, in milliseconds.
    pub keyframe_response_ms: Percentiles,
    /// What receivers counted during the window.
    pub received: Throughput,
    /// What the server cost and counted during the window, when it could be observed.
    pub server: ServerReport,
    /// The SRTP protection profiles the participants' connections negotiated.
    pub srtp_profiles: Vec<String>,
    /// Every received track.
    pub per_track: Vec<TrackReport>,
}

/// Who took part.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct ParticipantCounts {
    /// Participants the scenario asked for.
    pub planned: usize,
    /// Participants the server accepted.
    pub joined: usize,
    /// Participants that could not join.
    pub failed: usize,
    /// Participants whose peer connection reached `connected`.
    pub connected: usize,
}

/// Join times over participants, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct JoinTimes {
    /// WebSocket open to `joined`.
    pub to_joined_ms: Percentiles,
    /// Until the first packet of every remote track, each track timed from the later of the
    /// receiver's and the publisher's start (so a ramp-up's waiting is not counted).
    pub to_all_tracks_ms: Percentiles,
    /// The same, to the first keyframe of every remote video track.
    pub to_all_keyframes_ms: Percentiles,
    /// Participants that never received some remote track.
    pub incomplete: usize,
}

/// Received tracks, expected and actual.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct TrackCounts {
    /// Remote tracks each participant should receive, summed.
    pub expected: usize,
    /// Remote tracks that delivered at least one intact packet.
    pub received: usize,
    /// Packets whose payload did not match what was sent.
    pub corrupted_packets: u64,
    /// Packets that arrived on the wrong track.
    pub foreign_packets: u64,
}

/// One kind of received track, summarized over all of them.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct MediaSummary {
    /// How many tracks.
    pub tracks: usize,
    /// Mean received bitrate per track, bits per second.
    pub bitrate_mean_bps: f64,
    /// Lowest received bitrate of a track.
    pub bitrate_min_bps: f64,
    /// Packets never received, retransmissions included, over all packets sent.
    pub loss: f64,
    /// The worst track's loss.
    pub loss_worst: f64,
    /// Publisher send to receiver arrival, all packets of all tracks, milliseconds.
    pub latency_ms: Percentiles,
    /// Gaps between frames longer than three frame intervals (video).
    pub freezes: u64,
    /// Their total length, milliseconds.
    pub frozen_ms: f64,
}

/// Packets receivers got during the window.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Throughput {
    /// Packets all receivers got.
    pub packets: u64,
    /// Per second.
    pub packets_per_second: f64,
}

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

/// One received track.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrackReport {
    /// The receiver.
    pub receiver: String,
    /// The publisher.
    pub publisher: String,
    /// The publisher's track id.
    pub track: String,
    /// Audio or video.
    pub kind: Option<TrackKind>,
    /// Packets received.
    pub packets: u64,
    /// Received bitrate, bits per second.
    pub bitrate_bps: f64,
    /// Packets never received, retransmissions included.
    pub loss: f64,
    /// Latency percentiles, milliseconds.
    pub latency_ms: Percentiles,
    /// Freezes.
    pub freezes: u64,
    /// Frozen time, milliseconds.
    pub frozen_ms: f64,
}

/// What the runner hands over for the report.
pub struct RunRecord<'a> {
    /// The server's name.
    pub target: &'a str,
    /// The scenario.
    pub scenario: &'a Scenario,
    /// Participants that could not join.
    pub failed: usize,
    /// Each participant that joined: its id, what it observed, how many remote tracks it
    /// should receive.
    pub participants: &'a [(String, Observed, usize)],
    /// The server before and after the window.
    pub before: &'a Sample,
    /// After.
    pub after: &'a Sample,
    /// The highest RSS seen during the run.
    pub rss_max: Option<u64>,
    /// Packets received by all participants at the start and end of the window.
    pub received_packets: (u64, u64),
}

impl Report {
    /// Builds the report.
    pub fn build(record: RunRecord<'_>) -> Report {
        let window = record.after.at.saturating_duration_since(record.before.at);
        let window_seconds = window.as_secs_f64().max(1e-9);
        let started: HashMap<&str, Instant> = record
            .participants
            .iter()
            .filter_map(|(id, observed, _)| Some((id.as_str(), observed.started_at?)))
            .collect();

        let mut join_ms = Vec::new();
        let mut all_tracks = Vec::new();
        let mut all_keyframes = Vec::new();
        let mut incomplete = 0;
        let mut tracks = TrackCounts::default();
        let mut per_track = Vec::new();
        let mut video = Accumulator::default();
        let mut audio = Accumulator::default();
        let mut keyframe_response = Vec::new();
        let mut connected = 0;
        let mut srtp_profiles = std::collections::BTreeSet::new();

        for (id, observed, expected) in record.participants {
            tracks.expected += expected;
            if observed.connection_state
                == Some(webrtc::peer_connection::RTCPeerConnectionState::Connected)
            {
                connected += 1;
            }
            srtp_profiles.extend(observed.srtp_profiles.iter().cloned());
            let Some(own_start) = observed.started_at else {
                continue;
            };
            if let Some(joined) = observed.joined_at {
                join_ms.push(joined.saturating_duration_since(own_start));
            }
            let mut received_here = 0;
            let mut slowest_track = Duration::ZERO;
            let mut slowest_keyframe = Duration::ZERO;
            for track in observed.received.values() {
                tracks.corrupted_packets += track.corrupted;
                tracks.foreign_packets += track.foreign;
                if track.intact == 0 || track.participant.is_empty() {
                    continue;
                }
                received_here += 1;
                let origin = started
                    .get(track.participant.as_str())
                    .map_or(own_start, |publisher| (*publisher).max(own_start));
                if let Some(first) = track.first_packet {
                    slowest_track = slowest_track.max(first.saturating_duration_since(origin));
                }
                if track.kind == Some(TrackKind::Video)
                    && let Some(first) = track.first_keyframe
                {
                    slowest_keyframe =
                        slowest_keyframe.max(first.saturating_duration_since(origin));
                }
                keyframe_response.extend_from_slice(&track.quality.keyframe_response);
                let span = match (track.first_packet, track.quality.last_packet) {
                    (Some(first), Some(last)) => last.saturating_duration_since(first),
                    _ => Duration::ZERO,
                };
                let bitrate = if span.is_zero() {
                    0.0
                } else {
                    track.bytes as f64 * 8.0 / span.as_secs_f64()
                };
                let report = TrackReport {
                    receiver: id.clone(),
                    publisher: track.participant.clone(),
                    track: track.track.clone(),
                    kind: track.kind,
                    packets: track.packets,
                    bitrate_bps: bitrate,
                    loss: track.quality.loss(),
                    latency_ms: Percentiles::from_micros(&track.quality.latency),
                    freezes: track.quality.freezes,
                    frozen_ms: track.quality.frozen.as_secs_f64() * 1000.0,
                };
                let accumulator = match track.kind {
                    Some(TrackKind::Video) => &mut video,
                    _ => &mut audio,
                };
                accumulator.add(track, &report);
                per_track.push(report);
            }
            tracks.received += received_here;
            if received_here >= *expected {
                all_tracks.push(slowest_track);
                if record.scenario.video_bitrate > 0 {
                    all_keyframes.push(slowest_keyframe);
                }
            } else {
                incomplete += 1;
            }
        }

        let received_packets = record
            .received_packets
            .1
            .saturating_sub(record.received_packets.0);
        Report {
            target: record.target.to_owned(),
            scenario: record.scenario.clone(),
            window_seconds,
            participants: ParticipantCounts {
                planned: record.scenario.participants(),
                joined: record.participants.len(),
                failed: record.failed,
                connected,
            },
            join: JoinTimes {
                to_joined_ms: Percentiles::from_durations(&join_ms),
                to_all_tracks_ms: Percentiles::from_durations(&all_tracks),
                to_all_keyframes_ms: Percentiles::from_durations(&all_keyframes),
                incomplete,
            },
            tracks,
            video: video.finish(),
            audio: audio.finish(),
            keyframe_response_ms: Percentiles::from_durations(&keyframe_response),
            received: Throughput {
                packets: received_packets,
                packets_per_second: received_packets as f64 / window_seconds,
            },
            server: server_report(
                record.before,
                record.after,
                record.rss_max,
                window_seconds,
                received_packets,
            ),
            srtp_profiles: srtp_profiles.into_iter().collect(),
            per_track,
        }
    }

    /// The headline figures as a Markdown table, for `docs/benchmarks.md`.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let server = &self.server;
        let value = |value: Option<f64>, digits: usize| {
            value.map_or_else(|| "n/a".to_owned(), |value| format!("{value:.digits$}"))
        };
        let rows: Vec<(&str, String)> = vec![
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
        let _ = writeln!(out, "| measure | value |\n|---|---|");
        for (label, value) in rows {
            let _ = writeln!(out, "| {label} | {value} |");
        }
        out
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
            "scenario   {} room(s) x ({} publishers + {} subscribers), video {} kbit/s @ {} fps, audio {}, {:.1} s measured",
            s.rooms,
            s.publishers,
            s.subscribers,
            s.video_bitrate / 1000,
            s.fps,
            if s.audio { "on" } else { "off" },
            self.window_seconds
        );
        if !s.impairment.is_none() {
            let i = &s.impairment;
            let _ = writeln!(
                out,
                "network    loss {:.1}%, delay {} ms +/- {} ms, bandwidth {}",
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
        let rows = [
            ("join: socket -> joined", &self.join.to_joined_ms),
            ("join: -> every track", &self.join.to_all_tracks_ms),
            ("join: -> every keyframe", &self.join.to_all_keyframes_ms),
            ("video latency", &self.video.latency_ms),
            ("audio latency", &self.audio.latency_ms),
            ("keyframe response", &self.keyframe_response_ms),
        ];
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
        out
    }
}

#[derive(Default)]
struct Accumulator {
    tracks: usize,
    bitrate_sum: f64,
    bitrate_min: Option<f64>,
    missing: u64,
    expected: u64,
    loss_worst: f64,
    latency: Option<hdrhistogram::Histogram<u64>>,
    freezes: u64,
    frozen_ms: f64,
}

impl Accumulator {
    fn add(&mut self, track: &crate::participant::ReceivedTrack, report: &TrackReport) {
        self.tracks += 1;
        self.bitrate_sum += report.bitrate_bps;
        self.bitrate_min = Some(
            self.bitrate_min
                .map_or(report.bitrate_bps, |min: f64| min.min(report.bitrate_bps)),
        );
        self.missing += track.quality.missing();
        self.expected += track.quality.expected();
        self.loss_worst = self.loss_worst.max(report.loss);
        let _ = self
            .latency
            .get_or_insert_with(new_histogram)
            .add(&track.quality.latency);
        self.freezes += report.freezes;
        self.frozen_ms += report.frozen_ms;
    }

    fn finish(self) -> MediaSummary {
        MediaSummary {
            tracks: self.tracks,
            bitrate_mean_bps: if self.tracks == 0 {
                0.0
            } else {
                self.bitrate_sum / self.tracks as f64
            },
            bitrate_min_bps: self.bitrate_min.unwrap_or(0.0),
            loss: if self.expected == 0 {
                0.0
            } else {
                self.missing as f64 / self.expected as f64
            },
            loss_worst: self.loss_worst,
            latency_ms: self
                .latency
                .as_ref()
                .map(Percentiles::from_micros)
                .unwrap_or_default(),
            freezes: self.freezes,
            frozen_ms: self.frozen_ms,
        }
    }
}

fn server_report(
    before: &Sample,
    after: &Sample,
    rss_max: Option<u64>,
    window_seconds: f64,
    delivered: u64,
) -> ServerReport {
    let delta =
        |name: &str| -> Option<f64> { Some(after.metrics.get(name)? - before.metrics.get(name)?) };
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

//! `loadtest merge`: the JSON reports of the shards of one run, made into the report one
//! machine would have made. Counts add up; percentiles come from the shards' histograms added
//! together (never from averaging percentiles); loss from the packets due and missing; the
//! server's cost from its readings over the time every shard was measuring (the latest window
//! opening to the earliest closing); the per-second series line up by wall-clock second.

use std::collections::BTreeSet;

use hdrhistogram::Histogram;

use crate::histogram::{EncodedHistogram, HistogramError};
use crate::report::{
    ChurnReport, Histograms, JoinTimes, MediaSummary, ParticipantCounts, Readings, Report, RunInfo,
    ServerReport, Throughput, TrackCounts,
};
use crate::series::Series;
use crate::shard::Shard;
use crate::stats::{Percentiles, new_histogram};

/// The reports cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("no reports")]
    Empty,
    /// They are not the shards of one run.
    #[error("not the shards of one run: {0}")]
    NotOneRun(String),
    /// A histogram could not be read.
    #[error(transparent)]
    Histogram(#[from] HistogramError),
}

/// Merges the shards' reports; see the module documentation.
pub fn merge(reports: &[Report]) -> Result<Report, MergeError> {
    let first = reports.first().ok_or(MergeError::Empty)?;
    check_one_run(reports)?;
    let sum_of = |histogram: fn(&Report) -> &EncodedHistogram| {
        EncodedHistogram::sum(reports.iter().map(histogram), new_histogram)
    };
    let join_to_joined = sum_of(|report| &report.histograms.join_to_joined_us)?;
    let join_to_all_tracks = sum_of(|report| &report.histograms.join_to_all_tracks_us)?;
    let join_to_all_keyframes = sum_of(|report| &report.histograms.join_to_all_keyframes_us)?;
    let video_latency = sum_of(|report| &report.histograms.video_latency_us)?;
    let audio_latency = sum_of(|report| &report.histograms.audio_latency_us)?;
    let keyframe_response = sum_of(|report| &report.histograms.keyframe_response_us)?;

    let readings = common_window(reports)?;
    let window_seconds = readings.as_ref().map_or(first.window_seconds, |readings| {
        (readings.closed.unix - readings.opened.unix).max(1e-9)
    });
    let packets_per_second: f64 = reports
        .iter()
        .map(|report| report.received.packets_per_second)
        .sum();
    let delivered = (packets_per_second * window_seconds).round() as u64;
    let rss_max = reports
        .iter()
        .filter_map(|report| report.server.rss_bytes)
        .max();
    let server = match &readings {
        Some(readings) => ServerReport::between(readings, rss_max, delivered),
        None => first.server,
    };

    Ok(Report {
        target: first.target.clone(),
        scenario: first.scenario.clone(),
        window_seconds,
        participants: participants(reports),
        join: JoinTimes {
            to_joined_ms: Percentiles::from_micros(&join_to_joined),
            to_all_tracks_ms: Percentiles::from_micros(&join_to_all_tracks),
            to_all_keyframes_ms: Percentiles::from_micros(&join_to_all_keyframes),
            incomplete: reports.iter().map(|report| report.join.incomplete).sum(),
        },
        tracks: tracks(reports),
        video: media(reports.iter().map(|report| &report.video), &video_latency),
        audio: media(reports.iter().map(|report| &report.audio), &audio_latency),
        keyframe_response_ms: Percentiles::from_micros(&keyframe_response),
        received: Throughput {
            packets: reports.iter().map(|report| report.received.packets).sum(),
            packets_per_second,
        },
        server,
        srtp_profiles: reports
            .iter()
            .flat_map(|report| report.srtp_profiles.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        per_track: reports
            .iter()
            .flat_map(|report| report.per_track.iter().cloned())
            .collect(),
        per_receiver: reports
            .iter()
            .flat_map(|report| report.per_receiver.iter().cloned())
            .collect(),
        layer_seconds: crate::report::receivers::layer_totals(
            reports.iter().flat_map(|report| &report.per_receiver),
        ),
        run: RunInfo {
            url: first.run.url.clone(),
            run_id: first.run.run_id.clone(),
            shard: Shard::WHOLE,
            merged_shards: reports
                .iter()
                .map(|report| report.run.merged_shards.max(1))
                .sum(),
            started_unix: reports
                .iter()
                .map(|report| report.run.started_unix)
                .fold(f64::INFINITY, f64::min),
            window_unix: readings.as_ref().map_or(first.run.window_unix, |readings| {
                (readings.opened.unix, readings.closed.unix)
            }),
            interrupted: reports.iter().any(|report| report.run.interrupted),
            metrics_problem: reports
                .iter()
                .find_map(|report| report.run.metrics_problem.clone()),
        },
        histograms: Histograms {
            join_to_joined_us: EncodedHistogram::encode(&join_to_joined),
            join_to_all_tracks_us: EncodedHistogram::encode(&join_to_all_tracks),
            join_to_all_keyframes_us: EncodedHistogram::encode(&join_to_all_keyframes),
            video_latency_us: EncodedHistogram::encode(&video_latency),
            audio_latency_us: EncodedHistogram::encode(&audio_latency),
            keyframe_response_us: EncodedHistogram::encode(&keyframe_response),
        },
        server_readings: readings,
        series: Series::merge(reports.iter().map(|report| &report.series))?,
        churn: churn(reports)?,
    })
}

/// Refuses reports that are not every shard of one run, each once.
fn check_one_run(reports: &[Report]) -> Result<(), MergeError> {
    let first = &reports[0];
    for report in reports {
        let differs = if report.run.run_id != first.run.run_id {
            Some("run id (start each shard with the same --start-at)")
        } else if report.scenario != first.scenario {
            Some("scenario")
        } else if report.target != first.target {
            Some("server")
        } else {
            None
        };
        if let Some(what) = differs {
            return Err(MergeError::NotOneRun(format!(
                "their {what} differs ({} and {})",
                first.run.shard, report.run.shard
            )));
        }
    }
    let count = first.run.shard.count;
    let mut seen = BTreeSet::new();
    for report in reports {
        let shard = report.run.shard;
        if shard.count != count {
            return Err(MergeError::NotOneRun(format!(
                "shards of {count} and of {} machines",
                shard.count
            )));
        }
        if !seen.insert(shard.index) {
            return Err(MergeError::NotOneRun(format!(
                "shard {shard} is given twice"
            )));
        }
    }
    let missing: Vec<String> = (1..=count)
        .filter(|index| !seen.contains(index))
        .map(|index| Shard { index, count }.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(MergeError::NotOneRun(format!(
            "shard {} is missing",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// The server's readings over the time every shard measured: the latest opening to the
/// earliest closing.
fn common_window(reports: &[Report]) -> Result<Option<Readings>, MergeError> {
    let readings: Vec<&Readings> = reports
        .iter()
        .filter_map(|report| report.server_readings.as_ref())
        .collect();
    let (Some(opened), Some(closed)) = (
        readings
            .iter()
            .map(|readings| &readings.opened)
            .max_by(|a, b| a.unix.total_cmp(&b.unix)),
        readings
            .iter()
            .map(|readings| &readings.closed)
            .min_by(|a, b| a.unix.total_cmp(&b.unix)),
    ) else {
        return Ok(None);
    };
    if closed.unix <= opened.unix {
        return Err(MergeError::NotOneRun(
            "their measurement windows do not overlap: start the shards with one --start-at"
                .to_owned(),
        ));
    }
    Ok(Some(Readings {
        opened: opened.clone(),
        closed: closed.clone(),
    }))
}

fn participants(reports: &[Report]) -> ParticipantCounts {
    let mut total = ParticipantCounts::default();
    for report in reports {
        let counts = &report.participants;
        total.planned += counts.planned;
        total.joined += counts.joined;
        total.failed += counts.failed;
        total.connected += counts.connected;
        total.skipped += counts.skipped;
        total.failures.extend(counts.failures.iter().cloned());
    }
    total
}

fn tracks(reports: &[Report]) -> TrackCounts {
    let mut total = TrackCounts::default();
    for report in reports {
        total.expected += report.tracks.expected;
        total.received += report.tracks.received;
        total.corrupted_packets += report.tracks.corrupted_packets;
        total.foreign_packets += report.tracks.foreign_packets;
    }
    total
}

fn media<'a>(
    summaries: impl Iterator<Item = &'a MediaSummary>,
    latency: &Histogram<u64>,
) -> MediaSummary {
    let mut total = MediaSummary {
        latency_ms: Percentiles::from_micros(latency),
        ..MediaSummary::default()
    };
    let mut bitrate_sum = 0.0;
    let mut bitrate_min: Option<f64> = None;
    for summary in summaries.filter(|summary| summary.tracks > 0) {
        total.tracks += summary.tracks;
        bitrate_sum += summary.bitrate_mean_bps * summary.tracks as f64;
        bitrate_min = Some(bitrate_min.map_or(summary.bitrate_min_bps, |min| {
            min.min(summary.bitrate_min_bps)
        }));
        total.packets_expected += summary.packets_expected;
        total.packets_missing += summary.packets_missing;
        total.loss_worst = total.loss_worst.max(summary.loss_worst);
        total.freezes += summary.freezes;
        total.frozen_ms += summary.frozen_ms;
    }
    if total.tracks > 0 {
        total.bitrate_mean_bps = bitrate_sum / total.tracks as f64;
    }
    total.bitrate_min_bps = bitrate_min.unwrap_or(0.0);
    if total.packets_expected > 0 {
        total.loss = total.packets_missing as f64 / total.packets_expected as f64;
    }
    total
}

fn churn(reports: &[Report]) -> Result<Option<ChurnReport>, MergeError> {
    let churns: Vec<&ChurnReport> = reports
        .iter()
        .filter_map(|report| report.churn.as_ref())
        .collect();
    if churns.is_empty() {
        return Ok(None);
    }
    let to_joined = EncodedHistogram::sum(
        churns.iter().map(|churn| &churn.to_joined_us),
        new_histogram,
    )?;
    let to_all_tracks = EncodedHistogram::sum(
        churns.iter().map(|churn| &churn.to_all_tracks_us),
        new_histogram,
    )?;
    Ok(Some(ChurnReport {
        started: churns.iter().map(|churn| churn.started).sum(),
        joined: churns.iter().map(|churn| churn.joined).sum(),
        failed: churns.iter().map(|churn| churn.failed).sum(),
        failures: churns
            .iter()
            .flat_map(|churn| churn.failures.iter().cloned())
            .collect(),
        incomplete: churns.iter().map(|churn| churn.incomplete).sum(),
        to_joined_ms: Percentiles::from_micros(&to_joined),
        to_all_tracks_ms: Percentiles::from_micros(&to_all_tracks),
        to_joined_us: EncodedHistogram::encode(&to_joined),
        to_all_tracks_us: EncodedHistogram::encode(&to_all_tracks),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Reading, ReceiverTotals};

    /// A shard's report whose receivers saw `count` latencies of `latency_ms` each.
    fn shard(index: u32, count: u64, latency_ms: u64, opened: f64, closed: f64) -> Report {
        let mut latency = new_histogram();
        latency
            .record_n(latency_ms * 1000, count)
            .expect("in range");
        let reading = |unix: f64, cpu: f64, forwarded: f64| Reading {
            unix,
            cpu_seconds: Some(cpu),
            counters: [("switchyard_rtp_packets_out_total".to_owned(), forwarded)].into(),
            ..Reading::default()
        };
        Report {
            target: "switchyard".to_owned(),
            window_seconds: closed - opened,
            participants: ParticipantCounts {
                planned: 3,
                joined: 3,
                ..ParticipantCounts::default()
            },
            video: MediaSummary {
                tracks: 4,
                bitrate_mean_bps: 300_000.0 * f64::from(index),
                bitrate_min_bps: 250_000.0 * f64::from(index),
                loss: 0.01,
                latency_ms: Percentiles::from_micros(&latency),
                packets_expected: 1000 * count,
                packets_missing: 10 * count,
                ..MediaSummary::default()
            },
            received: Throughput {
                packets: 1000,
                packets_per_second: 100.0,
            },
            run: RunInfo {
                run_id: "00000001".to_owned(),
                shard: Shard { index, count: 2 },
                merged_shards: 1,
                window_unix: (opened, closed),
                ..RunInfo::default()
            },
            histograms: Histograms {
                video_latency_us: EncodedHistogram::encode(&latency),
                ..Histograms::default()
            },
            per_receiver: vec![ReceiverTotals {
                name: format!("subscriber-0-{index}"),
                layer_seconds: [("q".to_owned(), f64::from(index))].into(),
                ..ReceiverTotals::default()
            }],
            // The server runs at 10,000 forwarded packets and 0.1 CPU-second per second.
            server_readings: Some(Readings {
                opened: reading(opened, opened * 0.1, opened * 10_000.0),
                closed: reading(closed, closed * 0.1, closed * 10_000.0),
            }),
            ..Report::default()
        }
    }

    #[test]
    fn percentiles_come_from_the_merged_histograms_not_averages() {
        // 100 packets at 10 ms on one shard, 300 at 50 ms on the other: the merged median is
        // 50 ms, where averaging the shards' medians would say 30.
        let merged = merge(&[
            shard(1, 100, 10, 1000.0, 1010.0),
            shard(2, 300, 50, 1001.0, 1011.0),
        ])
        .expect("merges");
        let latency = merged.video.latency_ms;
        assert_eq!(latency.count, 400);
        assert!((latency.p50 - 50.0).abs() <= 0.05, "{latency:?}");
        assert!((latency.p99 - 50.0).abs() <= 0.05, "{latency:?}");
        assert_eq!(merged.participants.joined, 6);
        assert_eq!(merged.video.tracks, 8);
        assert_eq!(merged.video.bitrate_mean_bps, 450_000.0);
        assert_eq!(merged.video.bitrate_min_bps, 250_000.0);
        assert!((merged.video.loss - 0.01).abs() < 1e-12);
        assert_eq!(merged.received.packets_per_second, 200.0);
        assert_eq!(merged.run.merged_shards, 2);
        assert_eq!(merged.run.shard, Shard::WHOLE);
        // The server over the common window, 1001 to 1010.
        assert_eq!(merged.run.window_unix, (1001.0, 1010.0));
        let server = merged.server;
        assert!((server.forwarded_per_second.expect("read") - 10_000.0).abs() < 1e-6);
        assert!((server.cpu_us_per_forwarded_packet.expect("read") - 10.0).abs() < 1e-6);
        // Each shard's receivers are listed, and their layers add up.
        assert_eq!(merged.per_receiver.len(), 2);
        assert_eq!(merged.layer_seconds["q"], 3.0);
        // What was merged merges again the same.
        let json = serde_json::to_string(&merged).expect("serializes");
        let again: Report = serde_json::from_str(&json).expect("reads back");
        assert_eq!(again.video.latency_ms, merged.video.latency_ms);
    }

    #[test]
    fn refuses_what_is_not_one_run() {
        let first = shard(1, 10, 10, 1000.0, 1010.0);
        let second = shard(2, 10, 10, 1000.0, 1010.0);
        assert!(merge(&[]).is_err());
        assert!(
            merge(std::slice::from_ref(&first)).is_err(),
            "2/2 is missing"
        );
        assert!(merge(&[first.clone(), first.clone()]).is_err(), "1/2 twice");
        let mut other_run = second.clone();
        other_run.run.run_id = "00000002".to_owned();
        assert!(merge(&[first.clone(), other_run]).is_err());
        let late = shard(2, 10, 10, 1020.0, 1030.0);
        let error = merge(&[first.clone(), late]).expect_err("windows apart");
        assert!(error.to_string().contains("overlap"), "{error}");
        assert!(merge(&[first, second]).is_ok());
    }
}

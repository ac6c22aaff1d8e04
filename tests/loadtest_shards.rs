//! Several load machines: two shards of one scenario run at once against one server, sharing a
//! start time, and `merge` makes one report of theirs with the same participant and track
//! totals as the same scenario run whole, its percentiles taken from the shards' histograms
//! merged (bounded by the shards' own, and counting every sample of both).

mod common;

use std::time::{Duration, SystemTime};

use loadtest::histogram::EncodedHistogram;
use loadtest::shard::Shard;
use loadtest::stats::new_histogram;
use loadtest::{Report, RunOptions, Scenario, merge, run};

fn scenario() -> Scenario {
    Scenario {
        rooms: 2,
        publishers: 2,
        subscribers: 1,
        video_bitrate: 300_000,
        duration: Duration::from_secs(3),
        pli_interval: Duration::ZERO,
        ..Scenario::default()
    }
}

/// Whether `merged` lies between the shards' values, within the histograms' precision (three
/// significant digits).
fn between(merged: f64, shards: [f64; 2]) -> bool {
    let (low, high) = (shards[0].min(shards[1]), shards[0].max(shards[1]));
    merged >= low * 0.999 - 1e-9 && merged <= high * 1.001 + 1e-9
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_merged_are_the_whole_run() {
    let server = common::server().await;
    let whole = run(RunOptions::new(server.websocket_url(), scenario()))
        .await
        .expect("the whole run completes");

    let start_at = SystemTime::now() + Duration::from_secs(1);
    let shard = |index| {
        let mut options = RunOptions::new(server.websocket_url(), scenario());
        options.shard = Shard { index, count: 2 };
        options.start_at = Some(start_at);
        run(options)
    };
    let (first, second) = tokio::join!(shard(1), shard(2));
    let shards: [Report; 2] = [
        first.expect("shard 1/2 completes"),
        second.expect("shard 2/2 completes"),
    ];
    assert_eq!(shards[0].run.run_id, shards[1].run.run_id, "one run");
    assert_eq!(shards[0].participants.planned, 3);
    assert_eq!(shards[1].participants.planned, 3);
    let merged = merge::merge(&shards).expect("the shards merge");
    let table = format!("whole:\n{}\nmerged:\n{}", whole.table(), merged.table());

    assert_eq!(
        merged.participants.planned, whole.participants.planned,
        "{table}"
    );
    assert_eq!(
        merged.participants.joined, whole.participants.joined,
        "{table}"
    );
    assert_eq!(merged.participants.joined, 6, "{table}");
    assert_eq!(merged.tracks.expected, whole.tracks.expected, "{table}");
    assert_eq!(merged.tracks.received, whole.tracks.received, "{table}");
    assert_eq!(merged.tracks.received, merged.tracks.expected, "{table}");
    assert_eq!(merged.video.tracks, whole.video.tracks, "{table}");
    assert_eq!(merged.audio.tracks, whole.audio.tracks, "{table}");
    assert_eq!(
        merged.join.to_joined_ms.count, whole.join.to_joined_ms.count,
        "{table}"
    );
    assert_eq!(merged.run.merged_shards, 2);

    // Percentiles from the merged histograms: every sample of both shards counts, and each
    // percentile lies between the shards' own.
    for (merged, shards) in [
        (
            merged.video.latency_ms,
            [shards[0].video.latency_ms, shards[1].video.latency_ms],
        ),
        (
            merged.audio.latency_ms,
            [shards[0].audio.latency_ms, shards[1].audio.latency_ms],
        ),
        (
            merged.join.to_joined_ms,
            [shards[0].join.to_joined_ms, shards[1].join.to_joined_ms],
        ),
    ] {
        assert_eq!(merged.count, shards[0].count + shards[1].count);
        for (value, of_shards) in [
            (merged.p50, [shards[0].p50, shards[1].p50]),
            (merged.p99, [shards[0].p99, shards[1].p99]),
            (merged.max, [shards[0].max, shards[1].max]),
        ] {
            assert!(
                between(value, of_shards),
                "{value} not within {of_shards:?}"
            );
        }
    }
    // And they are the percentiles of the pooled samples.
    let pooled = EncodedHistogram::sum(
        shards
            .iter()
            .map(|report| &report.histograms.video_latency_us),
        new_histogram,
    )
    .expect("the shards' histograms read");
    assert_eq!(
        merged.video.latency_ms.p99,
        pooled.value_at_quantile(0.99) as f64 / 1000.0
    );
    // The merged series covers both shards' receivers, second by second.
    let received = |report: &Report| -> u64 {
        report
            .series
            .0
            .iter()
            .map(|point| point.received_packets)
            .sum()
    };
    assert_eq!(
        received(&merged),
        received(&shards[0]) + received(&shards[1])
    );
    assert!(
        merged.server.cpu_us_per_forwarded_packet.is_some(),
        "{table}"
    );
}

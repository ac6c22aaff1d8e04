//! The load test's library API against an in-process server: a small run reports every
//! track received, little loss and real latencies; with 5 % loss on every link, NACK
//! retransmission keeps the loss after retransmission well under what the network dropped.

mod common;

use std::time::Duration;

use common::server;
use loadtest::{Impairment, RunOptions, Scenario, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_load_reports_every_track_with_little_loss() {
    let server = server().await;
    let scenario = Scenario {
        rooms: 2,
        publishers: 3,
        subscribers: 0,
        video_bitrate: 300_000,
        duration: Duration::from_secs(5),
        pli_interval: Duration::from_secs(2),
        ..Scenario::default()
    };
    let report = run(RunOptions::new(server.websocket_url(), scenario))
        .await
        .expect("the run completes");

    assert_eq!(report.participants.joined, 6);
    assert_eq!(report.participants.failed, 0);
    assert_eq!(
        report.tracks.expected,
        6 * 4,
        "each receives two others' video and audio"
    );
    assert_eq!(
        report.tracks.received,
        report.tracks.expected,
        "{}",
        report.table()
    );
    assert_eq!(report.tracks.corrupted_packets, 0);
    assert_eq!(report.tracks.foreign_packets, 0);
    for media in [&report.video, &report.audio] {
        assert_eq!(media.tracks, 12);
        assert!(media.loss < 0.01, "loss {}\n{}", media.loss, report.table());
        assert!(media.latency_ms.count > 0);
        assert!(media.latency_ms.p50 > 0.0 && media.latency_ms.p99 >= media.latency_ms.p50);
        assert!(media.bitrate_mean_bps > 0.0);
    }
    assert!(report.join.to_joined_ms.p50 > 0.0);
    assert_eq!(report.join.incomplete, 0);
    assert!(report.join.to_all_keyframes_ms.count == 6);
    let forwarded = report
        .server
        .forwarded_packets
        .expect("the server's counters were read");
    assert!(forwarded > 0.0);
    assert!(report.received.packets > 0);
    let json = serde_json::to_value(&report).expect("the report serializes");
    assert!(
        json["server"]["forwarded_per_second"]
            .as_f64()
            .is_some_and(|rate| rate > 0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmission_recovers_most_of_five_percent_loss() {
    let server = server().await;
    let scenario = Scenario {
        rooms: 1,
        publishers: 2,
        subscribers: 1,
        video_bitrate: 300_000,
        duration: Duration::from_secs(6),
        impairment: Impairment {
            loss: 0.05,
            ..Impairment::default()
        },
        ..Scenario::default()
    };
    let report = run(RunOptions::new(server.websocket_url(), scenario))
        .await
        .expect("the run completes");
    assert_eq!(
        report.tracks.received,
        report.tracks.expected,
        "{}",
        report.table()
    );
    let video = &report.video;
    // Each packet crosses two impaired links (publisher to server, server to receiver):
    // without retransmission about 1 - 0.95² ≈ 9.75 % would be lost.
    assert!(
        video.loss < 0.01,
        "video loss after retransmission {}\n{}",
        video.loss,
        report.table()
    );
    assert!(
        report
            .server
            .nacks_received
            .is_some_and(|nacks| nacks > 0.0),
        "receivers asked for retransmissions\n{}",
        report.table()
    );
}

//! A viewer on a weak link, in the load test against an in-process server: two simulcast
//! publishers and one viewer behind 600 kbit/s (the impairment's bandwidth limit, on it alone),
//! every video in a 1280×720 tile. The viewer's estimate tells the server what its link
//! carries, and it spends most of its time on the lower layers, while the publishers, who also
//! receive each other, keep the full layer above 1 Mbit/s: the weakest viewer no longer
//! lowers the room.
//!
//! In a file of its own, so that no other test's load shares the machine with its timing.

mod common;

use std::time::Duration;

use common::server;
use loadtest::view::Tile;
use loadtest::{Impairment, RunOptions, Scenario, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_on_a_weak_link_gets_lower_layers_and_the_others_the_full_one() {
    let server = server().await;
    let scenario = Scenario {
        publishers: 2,
        subscribers: 1,
        simulcast: true,
        tile: Some(Tile {
            width: 1280,
            height: 720,
        }),
        impairment: Impairment {
            bandwidth: Some(600_000),
            ..Impairment::default()
        },
        impaired: Some(1),
        duration: Duration::from_secs(10),
        pli_interval: Duration::ZERO,
        ..Scenario::default()
    };
    let report = run(RunOptions::new(server.websocket_url(), scenario))
        .await
        .expect("the run completes");
    let table = report.table();
    assert_eq!(report.per_receiver.len(), 3, "{table}");
    for receiver in &report.per_receiver {
        let total: f64 = receiver.layer_seconds.values().sum();
        let full = receiver.layer_seconds.get("f").copied().unwrap_or(0.0);
        if receiver.impaired {
            assert_eq!(receiver.name, "subscriber-0-0");
            // The server tries the top layer now and then, as the estimate probes upward.
            assert_ne!(receiver.main_layer(), Some("f"), "{table}");
            assert!(full < 0.4 * total, "{table}");
            assert!(receiver.bitrate_bps < 600_000.0, "{table}");
        } else {
            assert_eq!(receiver.main_layer(), Some("f"), "{table}");
            assert!(receiver.bitrate_bps > 1_000_000.0, "{table}");
        }
    }
    // The publishers' videos are still on the full layer when the window closes.
    let publishers: Vec<&str> = report
        .per_receiver
        .iter()
        .filter(|receiver| !receiver.impaired)
        .map(|receiver| receiver.receiver.as_str())
        .collect();
    for track in report
        .per_track
        .iter()
        .filter(|track| publishers.contains(&track.receiver.as_str()))
        .filter(|track| !track.layer_seconds.is_empty())
    {
        assert_eq!(track.layer_at_end.as_deref(), Some("f"), "{table}");
    }
}

//! The load test's synthetic publishers stamp their microphones' loudness (RFC 6464) as
//! browsers do, talking in turns: the server finds an active speaker among them, and every
//! receiver hears of it.

mod common;

use std::time::Duration;

use common::server;
use loadtest::{RunOptions, Scenario, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_talkers_give_the_room_an_active_speaker() {
    let server = server().await;
    let scenario = Scenario {
        rooms: 1,
        publishers: 3,
        subscribers: 1,
        video_bitrate: 100_000,
        duration: Duration::from_secs(6),
        ..Scenario::default()
    };
    let report = run(RunOptions::new(server.websocket_url(), scenario))
        .await
        .expect("the run completes");
    assert_eq!(report.participants.joined, 4, "{}", report.table());
    assert_eq!(report.per_receiver.len(), 4);
    for receiver in &report.per_receiver {
        assert!(
            receiver.speaker_changes >= 1,
            "{} never heard of an active speaker",
            receiver.name
        );
    }
}

//! Several media workers share one room: each connection lives on one worker, packets for a
//! subscriber on another worker cross in batches, and every track still reaches everyone.

mod common;

use std::sync::atomic::Ordering;

use common::{PATIENCE, camera_and_microphone, join, server_with, wait_for_counts};
use switchyard::{Config, Counts};

/// The process's threads whose name starts with `prefix`.
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_spread_over_three_workers_reaches_everyone() {
    let mut config = Config::loopback();
    config.media.workers = 3;
    let server = server_with(config).await;
    assert_eq!(threads_named("media-w"), 3, "one thread per media worker");

    let mut participants = Vec::new();
    for name in ["ada", "brian", "chen", "dana"] {
        participants.push(join(&server, "spread", name, camera_and_microphone()).await);
    }
    for participant in &participants {
        participant
            .wait_until("six live tracks with packets", PATIENCE, |observed| {
                observed.live_tracks().count() == 6
                    && observed.live_tracks().all(|track| track.intact >= 20)
            })
            .await
            .unwrap_or_else(|error| panic!("{}: {error}", participant.id()));
        let observed = participant.observed();
        for track in observed.received.values() {
            assert_eq!(
                track.corrupted, 0,
                "every payload arrives as sent: {track:?}"
            );
            assert_eq!(track.foreign, 0, "every packet on its own track: {track:?}");
        }
    }

    // Four connections dealt round-robin over three workers: some subscribers live on another
    // worker than their publishers, so packets must have crossed.
    let metrics = &server.context().metrics;
    assert!(
        metrics.worker_crossings.load(Ordering::Relaxed) > 0,
        "packets crossed between workers"
    );

    for participant in participants {
        participant.leave().await;
    }
    wait_for_counts(&server, Counts::default()).await;
}

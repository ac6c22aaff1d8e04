//! Several media workers told to spread every connection (`media.spread_when_busy` 0): a
//! room's connections land on every worker, its packets for subscribers on other workers cross
//! in batches, and every track still reaches everyone. (Where rooms go by default, together
//! until a worker is busy, is `engine::placement`'s unit test.)

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
    config.media.spread_when_busy = 0;
    let server = server_with(config).await;
    assert_eq!(threads_named("media-w"), 3, "one thread per media worker");
    let engine = &server.context().engine;

    let mut participants = Vec::new();
    for name in ["ada", "brian", "chen", "dana"] {
        participants.push(join(&server, "spread", name, camera_and_microphone()).await);
    }
    participants.push(join(&server, "spread", "listener", Vec::new()).await);
    let beside = join(&server, "beside", "erin", camera_and_microphone()).await;
    let load = engine.load();
    assert_eq!(load.iter().sum::<usize>(), 6);
    assert!(
        load.iter().all(|connections| *connections == 2),
        "connections dealt evenly: {load:?}"
    );

    for participant in &participants[..4] {
        wait_intact(participant, 6).await;
    }
    wait_intact(&participants[4], 8).await;
    // Every publisher has subscribers on other workers, so packets crossed; and feedback too
    // (each subscriber's first keyframe request goes to a publisher elsewhere).
    assert!(
        server
            .context()
            .metrics
            .worker_crossings
            .load(Ordering::Relaxed)
            > 0,
        "packets crossed between workers"
    );

    for participant in participants.into_iter().chain([beside]) {
        participant.leave().await;
    }
    wait_for_counts(&server, Counts::default()).await;
    assert_eq!(engine.load(), vec![0, 0, 0], "every seat given back");
}

/// Waits until `participant` receives `count` live tracks, each with intact packets only.
async fn wait_intact(participant: &loadtest::Participant, count: usize) {
    participant
        .wait_until(
            &format!("{count} live tracks with packets"),
            PATIENCE,
            |observed| {
                observed.live_tracks().count() == count
                    && observed.live_tracks().all(|track| track.intact >= 20)
            },
        )
        .await
        .unwrap_or_else(|error| panic!("{}: {error}", participant.id()));
    for track in participant.observed().received.values() {
        assert_eq!(
            track.corrupted, 0,
            "every payload arrives as sent: {track:?}"
        );
        assert_eq!(track.foreign, 0, "every packet on its own track: {track:?}");
    }
}

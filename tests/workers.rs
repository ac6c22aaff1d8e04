//! Several media workers: a room bigger than one worker's share spreads over them, its packets
//! for subscribers on other workers cross in batches, and every track still reaches everyone,
//! in that room and in small rooms beside it. (Where small rooms go as the reader gets busy is
//! `engine::placement`'s unit test.)

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
async fn a_big_room_spreads_over_the_workers_and_its_packets_cross() {
    let mut config = Config::loopback();
    config.media.workers = 3;
    let server = server_with(config).await;
    assert_eq!(threads_named("media-w"), 3, "one thread per media worker");
    let engine = &server.context().engine;

    // A room bigger than one worker's share: a publisher and seventeen receivers.
    let mut big = vec![join(&server, "big", "speaker", camera_and_microphone()).await];
    for index in 0..17 {
        big.push(join(&server, "big", &format!("listener-{index}"), Vec::new()).await);
    }
    // Two small rooms.
    let mut small = Vec::new();
    for room in ["left", "right"] {
        for name in ["ada", "brian"] {
            small.push(join(&server, room, name, camera_and_microphone()).await);
        }
    }
    let load = engine.load();
    assert_eq!(load.iter().sum::<usize>(), 22);
    assert!(
        load.iter().all(|connections| *connections > 0),
        "every worker holds connections: {load:?}"
    );

    for participant in big.iter().skip(1) {
        wait_intact(participant, 2).await;
    }
    for participant in &small {
        wait_intact(participant, 2).await;
    }
    // The big room's receivers past the first sixteen connections live on other workers
    // than the speaker, so its packets crossed.
    assert!(
        engine_crossings(&server) > 0,
        "packets crossed between workers"
    );

    for participant in big.into_iter().chain(small) {
        participant.leave().await;
    }
    wait_for_counts(&server, Counts::default()).await;
    assert_eq!(engine.load(), vec![0, 0, 0], "every seat given back");
}

fn engine_crossings(server: &switchyard::RunningServer) -> u64 {
    server
        .context()
        .metrics
        .worker_crossings
        .load(Ordering::Relaxed)
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

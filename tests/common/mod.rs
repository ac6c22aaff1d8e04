//! Helpers shared by the integration tests: an in-process server on an ephemeral loopback
//! port, and synthetic participants that join it.

#![allow(dead_code)]

pub mod cluster;
pub mod flood;
pub mod http;
pub mod process;
pub mod prometheus;
pub mod publisher;
pub mod redis_server;
pub mod tcp_subscriber;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use loadtest::{Participant, ParticipantOptions, TrackSpec};
use switchyard::{Config, Counts, RunningServer, Server};

/// How long any one condition in a test may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Starts a server on loopback.
pub async fn server() -> RunningServer {
    server_with(Config::loopback()).await
}

/// Starts a server with `config` (build it from [`Config::loopback`]).
pub async fn server_with(config: Config) -> RunningServer {
    init_tracing();
    Server::new(config)
        .start()
        .await
        .expect("the server starts")
}

/// Joins `room` as `name`, publishing `tracks`.
pub async fn join(
    server: &RunningServer,
    room: &str,
    name: &str,
    tracks: Vec<TrackSpec>,
) -> Participant {
    Participant::join(
        ParticipantOptions::new(server.websocket_url(), room, name).with_tracks(tracks),
    )
    .await
    .expect("the participant joins")
}

/// One video and one audio track.
pub fn camera_and_microphone() -> Vec<TrackSpec> {
    vec![TrackSpec::Video(Default::default()), TrackSpec::Audio]
}

/// Waits until `participant` receives intact packets on `count` live tracks.
pub async fn wait_for_flowing_tracks(participant: &Participant, count: usize) {
    participant
        .wait_until(&format!("{count} flowing tracks"), PATIENCE, |observed| {
            observed.flowing_tracks() == count
        })
        .await
        .unwrap_or_else(|error| panic!("{error}: got {}", participant.observed().flowing_tracks()));
}

/// Waits until at most `at_most` tasks are alive on the test's runtime: whatever a test started
/// beyond that has ended.
pub async fn wait_for_tasks(at_most: usize) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut ticker = tokio::time::interval(Duration::from_millis(50));
    loop {
        let alive = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        if alive <= at_most {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{alive} tasks alive, {at_most} before"
        );
        ticker.tick().await;
    }
}

/// Waits until the server's counts equal `expected`.
pub async fn wait_for_counts(server: &RunningServer, expected: Counts) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    loop {
        if server.counts() == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "counts stayed at {:?}, expected {:?}",
            server.counts(),
            expected
        );
        ticker.tick().await;
    }
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rtc=off,webrtc=off")),
        )
        .with_test_writer()
        .try_init();
}

/// A loopback UDP port nobody is bound to right now.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .and_then(|socket| socket.local_addr())
        .expect("an ephemeral UDP port")
        .port()
}

//! The ICE-TCP listener on the media port holds up on the open internet: a flood of silent
//! streams is capped per address and in all, and timed out, while a participant whose network
//! carries no UDP still connects over TCP and gets media and `/healthz` keeps answering; and
//! when the process runs out of file descriptors, the listener waits between attempts to accept
//! and says so once.
//!
//! Attackers' streams come from loopback addresses other than 127.0.0.1 (127.0.0.2 and up), so
//! the per-address cap engages for them as it would on the internet, and 127.0.0.1 stays free
//! for the participants and the checks.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::flood::{attacker, closed_at, connect_from, poll_healthz};
use common::process::{ServerProcess, free_port};
use common::tcp_subscriber::TcpSubscriber;
use common::{PATIENCE, camera_and_microphone};
use switchyard::net::admission::Refusal;
use switchyard::net::tcp::FIRST_PACKET_TIMEOUT;
use switchyard::{Config, RunningServer};
use tokio::sync::watch;
use tokio::time::Instant;
use webrtc::peer_connection::RTCPeerConnectionState;

/// How fast `/healthz` must answer, flood or not.
const HEALTHZ_BOUND: Duration = Duration::from_millis(200);

/// How much later than its timeout a stream may be seen closed, on a loaded machine.
const CLOSE_MARGIN: Duration = Duration::from_secs(3);

/// Attacking addresses in the flood, and the streams each opens beyond the per-address cap.
const ATTACKERS: usize = 3;
const BEYOND_THE_CAP: usize = 16;

/// Waits until `condition` holds, checking every 20 ms, for at most `patience`.
async fn wait_until(what: &str, patience: Duration, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + patience;
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    while !condition() {
        assert!(Instant::now() < deadline, "waited in vain for {what}");
        ticker.tick().await;
    }
}

/// The value of `series` (name and labels) in `/metrics`.
async fn metric(server: &RunningServer, series: &str) -> u64 {
    let (status, text) = common::http::get(server.local_addr(), "/metrics")
        .await
        .expect("/metrics");
    assert_eq!(status, 200);
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{series}` in /metrics:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_silent_streams_is_capped_and_timed_out_while_a_tcp_participant_gets_media() {
    let server = common::server().await;
    let context = Arc::clone(server.context());
    let media_tcp = context.engine.settings().tcp[0];
    let per_ip = context
        .config
        .media
        .tcp_streams_per_ip
        .expect("a cap by default");
    let metrics = &context.metrics.ice_tcp;

    let (stop_polling, polling) = watch::channel(false);
    let poller = tokio::spawn(poll_healthz(server.local_addr(), polling));

    // The flood: silent streams from a few addresses, more from each than the cap allows.
    let mut flood = Vec::new();
    for index in 0..ATTACKERS * (per_ip + BEYOND_THE_CAP) {
        let stream = connect_from(attacker(index % ATTACKERS), media_tcp).await;
        flood.push((stream, Instant::now()));
    }
    let over_the_cap = ATTACKERS * BEYOND_THE_CAP;

    // Meanwhile somebody publishes, over UDP, and somebody whose network carries no UDP
    // watches, over TCP.
    let publisher = common::join(&server, "flooded", "ada", camera_and_microphone()).await;
    let watcher = TcpSubscriber::join(&server, "flooded", "bob").await;
    watcher
        .wait_until("media over ICE-TCP", |seen| {
            seen.state == Some(RTCPeerConnectionState::Connected) && seen.packets >= 100
        })
        .await;

    wait_until("the refusals to be counted", PATIENCE, || {
        metrics.refusals(Refusal::PerSource) == over_the_cap as u64
    })
    .await;
    assert_eq!(metrics.refusals(Refusal::Total), 0);

    // Every flood stream is closed: those over the cap at once, the others when their first
    // packet is overdue.
    let closings = flood.into_iter().map(|(stream, opened)| async move {
        let closed = closed_at(stream, opened + FIRST_PACKET_TIMEOUT + CLOSE_MARGIN).await;
        (opened, closed)
    });
    let mut at_once = 0;
    for (opened, closed) in futures::future::join_all(closings).await {
        let lasted = closed.expect("the server closes every flood stream in time") - opened;
        if lasted < FIRST_PACKET_TIMEOUT / 2 {
            at_once += 1;
        } else {
            assert!(
                lasted >= FIRST_PACKET_TIMEOUT - Duration::from_millis(500),
                "an admitted stream is given its whole first-packet timeout, not {lasted:?}"
            );
        }
    }
    assert_eq!(at_once, over_the_cap, "only those over the cap are refused");

    // Media went on throughout, and goes on.
    let before = watcher.progress().packets;
    watcher
        .wait_until("more media after the flood", |seen| {
            seen.packets >= before + 50
        })
        .await;
    let _ = stop_polling.send(true);
    let took = poller.await.expect("the poller");
    let slowest = took.iter().max().copied().unwrap_or_default();
    eprintln!(
        "/healthz during the flood: {} polls, slowest {slowest:?}",
        took.len()
    );
    let expected_polls = (FIRST_PACKET_TIMEOUT.as_millis() / 50 / 2) as usize;
    assert!(
        took.len() >= expected_polls,
        "{} polls, {expected_polls} expected",
        took.len()
    );
    assert!(
        slowest < HEALTHZ_BOUND,
        "/healthz took {slowest:?} at worst over {} polls",
        took.len()
    );

    // `/metrics` tells the story.
    assert_eq!(
        metric(
            &server,
            "switchyard_ice_tcp_refused_total{reason=\"per_ip\"}"
        )
        .await,
        over_the_cap as u64
    );
    assert_eq!(
        metric(
            &server,
            "switchyard_ice_tcp_refused_total{reason=\"total\"}"
        )
        .await,
        0
    );
    let admitted = (ATTACKERS * per_ip) as u64;
    assert!(
        metric(&server, "switchyard_ice_tcp_first_packet_timeouts_total").await >= admitted,
        "every admitted flood stream ran out of time for its first packet"
    );

    // Once everybody has left, no stream is left open.
    watcher.leave().await;
    publisher.leave().await;
    wait_until("every stream to close", PATIENCE, || {
        metrics.open_streams() == 0
    })
    .await;
    server.shutdown().await.expect("the server shuts down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_the_total_cap_are_closed_at_once() {
    let mut config = Config::loopback();
    config.media.tcp_streams_per_ip = None;
    config.media.max_tcp_streams = Some(20);
    let server = common::server_with(config).await;
    let media_tcp = server.context().engine.settings().tcp[0];
    let metrics = &server.context().metrics.ice_tcp;

    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(connect_from(attacker(0), media_tcp).await);
    }
    wait_until("20 streams held", PATIENCE, || metrics.open_streams() == 20).await;
    let beyond = connect_from(attacker(1), media_tcp).await;
    let opened = Instant::now();
    let closed = closed_at(beyond, opened + CLOSE_MARGIN)
        .await
        .expect("closed at once");
    assert!(closed - opened < Duration::from_secs(1));
    assert_eq!(metrics.refusals(Refusal::Total), 1);
    assert_eq!(metrics.refusals(Refusal::PerSource), 0);

    // Streams that close give their places back.
    drop(held);
    wait_until("the held streams to close", PATIENCE, || {
        metrics.open_streams() == 0
    })
    .await;
    let _again = connect_from(attacker(1), media_tcp).await;
    wait_until("a stream admitted again", PATIENCE, || {
        metrics.open_streams() == 1
    })
    .await;
    assert_eq!(metrics.refusals(Refusal::Total), 1);
    server.shutdown().await.expect("the server shuts down");
}

/// Streams the out-of-descriptors test opens: far more than the descriptors it leaves the
/// server.
const EXHAUSTING: usize = 120;

/// Descriptors the server may open beyond those it holds once started.
const SPARE_DESCRIPTORS: u64 = 40;

/// How long the server is kept out of descriptors.
const EXHAUSTED_FOR: Duration = Duration::from_secs(2);

/// Descriptors `pid` holds.
fn open_descriptors(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the server's descriptors")
        .count() as u64
}

/// Sets `pid`'s open-file limit, soft and hard, to `limit`.
fn limit_descriptors(pid: u32, limit: u64) {
    let limit = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    let pid = libc::pid_t::try_from(pid).expect("a pid fits pid_t");
    // SAFETY: prlimit reads the struct it is given and writes nothing (no old limit asked).
    let result = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &limit, std::ptr::null_mut()) };
    assert_eq!(result, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// The value of `field=` in `line`.
fn field(line: &str, field: &str) -> u64 {
    let prefix = format!("{field}=");
    line.split(' ')
        .find_map(|word| word.strip_prefix(&prefix))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in `{line}`"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_listener_waits_between_attempts_and_says_so_once() {
    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let media_tcp = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let args = [
        "--http",
        &address.to_string(),
        "--media-ip",
        "127.0.0.1",
        "--media-tcp-port",
        &media_tcp.port().to_string(),
        // No caps: only the descriptors run out.
        "--media-tcp-streams-per-ip",
        "0",
        "--media-max-tcp-streams",
        "100000",
    ]
    .map(str::to_owned);
    let mut server = ServerProcess::start(address, &args, &[]).await;
    let pid = server.pid();
    limit_descriptors(pid, open_descriptors(pid) + SPARE_DESCRIPTORS);

    // Silent streams: the server accepts as many as it has descriptors for, and each holds its
    // descriptor until its first-packet timeout, far beyond this test's burst.
    let mut flood = Vec::new();
    for _ in 0..EXHAUSTING {
        flood.push(connect_from(attacker(0), media_tcp).await);
    }
    server.wait_for_output("cannot accept connections").await;
    // The burst the listener lives through: what it logs and how often it tries are measured
    // over it.
    tokio::time::sleep(EXHAUSTED_FOR).await;
    drop(flood);
    server.wait_for_output("accepting connections again").await;

    let output = server.output();
    let listener = format!("local={media_tcp}");
    let ours: Vec<&str> = output
        .lines()
        .filter(|line| line.contains("ICE-TCP") && line.contains(&listener))
        .collect();
    let recovered = ours
        .iter()
        .position(|line| line.contains("accepting connections again"))
        .expect("the listener says it accepts again");
    let burst = &ours[..recovered];
    assert_eq!(
        burst
            .iter()
            .filter(|line| line.contains("cannot accept connections"))
            .count(),
        1,
        "one line for the whole burst:\n{}",
        burst.join("\n")
    );
    assert!(
        burst[0].contains("Too many open files"),
        "the line names the reason: {}",
        burst[0]
    );
    let over = ours[recovered];
    let (failures, lasted_ms) = (field(over, "failures"), field(over, "lasted_ms"));
    eprintln!("{failures} failed attempts over {lasted_ms} ms");
    assert!(
        lasted_ms >= EXHAUSTED_FOR.as_millis() as u64,
        "the burst lasted as long as the test held it: {over}"
    );
    // At most one attempt per retry interval (100 ms): a loop retrying at once would count
    // thousands.
    assert!(
        failures >= 2 && failures <= lasted_ms / 100 + 1,
        "{failures} attempts in {lasted_ms} ms"
    );

    // And the server serves again.
    let deadline = Instant::now() + PATIENCE;
    while !matches!(common::http::get(address, "/healthz").await, Ok((200, _))) {
        assert!(Instant::now() < deadline, "/healthz answers again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.terminate();
    assert!(server.wait_for_exit(PATIENCE).await.is_some(), "it stops");
}

//! `/metrics` over HTTP after a short call: valid OpenMetrics text, the router's packet and
//! RTCP counters moving, a join latency observed per participant, and every gauge back at
//! zero once everybody has left; and the process metrics of a running server checked against
//! what `/proc` says of it.

mod common;

use common::prometheus::{self, Scrape};
use common::{
    PATIENCE, camera_and_microphone, join, server, wait_for_counts, wait_for_flowing_tracks,
};
use loadtest::Participant;
use switchyard::signal::protocol::TrackKind;
use switchyard::{Counts, RunningServer};

const GAUGES: [&str; 5] = [
    "switchyard_rooms",
    "switchyard_participants",
    "switchyard_peers",
    "switchyard_publications",
    "switchyard_subscriptions",
];

async fn scrape(server: &RunningServer) -> Scrape {
    let (status, body) = common::http::get(server.local_addr(), "/metrics")
        .await
        .expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    prometheus::parse(&body).unwrap_or_else(|error| panic!("{error}\n{body}"))
}

async fn video_mid_from(subscriber: &Participant, publisher: &Participant) -> String {
    let publisher_id = publisher.id().to_owned();
    subscriber
        .wait_until("video from the publisher", PATIENCE, |observed| {
            observed.live_tracks().any(|track| {
                track.participant == publisher_id
                    && track.kind == Some(TrackKind::Video)
                    && track.intact > 0
            })
        })
        .await
        .expect("video flows");
    subscriber
        .observed()
        .received
        .iter()
        .find(|(_, track)| {
            track.announced
                && track.participant == publisher_id
                && track.kind == Some(TrackKind::Video)
        })
        .map(|(mid, _)| mid.clone())
        .expect("the video's mid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_call_and_return_to_zero_after_it() {
    let server = server().await;
    let before = scrape(&server).await;
    for gauge in GAUGES {
        assert_eq!(before.value(gauge), 0.0, "{gauge} before the call");
    }
    assert_eq!(before.value("switchyard_join_seconds_count"), 0.0);

    let ada = join(&server, "metrics", "ada", camera_and_microphone()).await;
    let brian = join(&server, "metrics", "brian", camera_and_microphone()).await;
    for participant in [&ada, &brian] {
        wait_for_flowing_tracks(participant, 2).await;
    }
    let mid_at_brian = video_mid_from(&brian, &ada).await;
    // A subscriber's loss report and bandwidth estimate, as a browser sends them.
    brian.send_pli(&mid_at_brian, 1);
    brian.send_remb(&mid_at_brian, 500_000);
    let metrics = std::sync::Arc::clone(&server.context().metrics);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut ticker = tokio::time::interval(std::time::Duration::from_millis(20));
    while metrics
        .rembs_received
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
        || metrics
            .keyframe_requests_received
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the PLI and the REMB reach the server"
        );
        ticker.tick().await;
    }

    let during = scrape(&server).await;
    assert_eq!(during.value("switchyard_rooms"), 1.0);
    assert_eq!(during.value("switchyard_participants"), 2.0);
    assert_eq!(during.value("switchyard_peers"), 2.0);
    assert_eq!(during.value("switchyard_publications"), 4.0);
    assert_eq!(during.value("switchyard_subscriptions"), 4.0);
    for counter in [
        "switchyard_rtp_packets_in_total",
        "switchyard_rtp_bytes_in_total",
        "switchyard_rtp_packets_out_total",
        "switchyard_rtp_bytes_out_total",
        "switchyard_keyframe_requests_received_total",
        "switchyard_plis_sent_total",
        "switchyard_rembs_received_total",
        "switchyard_rembs_sent_total",
    ] {
        assert!(
            during.value(counter) > 0.0,
            "{counter} is zero during a call"
        );
    }
    assert_eq!(during.value("switchyard_joins_total"), 2.0);
    // Both participants publish, so both connections came up and each join was timed.
    assert_eq!(during.value("switchyard_join_seconds_count"), 2.0);
    assert_eq!(
        during.value("switchyard_join_seconds_bucket{le=\"+Inf\"}"),
        2.0
    );
    let sum = during.value("switchyard_join_seconds_sum");
    assert!(
        sum > 0.0 && sum < 2.0 * PATIENCE.as_secs_f64(),
        "join latency sum {sum}"
    );

    ada.leave().await;
    brian.leave().await;
    wait_for_counts(&server, Counts::default()).await;
    let after = scrape(&server).await;
    for gauge in GAUGES {
        assert_eq!(after.value(gauge), 0.0, "{gauge} after everybody left");
    }
    // Counters only ever grow.
    for counter in [
        "switchyard_rtp_packets_out_total",
        "switchyard_plis_sent_total",
        "switchyard_rembs_received_total",
    ] {
        assert!(after.value(counter) >= during.value(counter), "{counter}");
    }
    assert_eq!(after.value("switchyard_join_seconds_count"), 2.0);
}

/// What `/proc` says of `pid`, read by the test itself.
#[derive(Debug)]
struct ProcView {
    cpu_seconds: f64,
    rss_bytes: f64,
    threads: f64,
    open_fds: f64,
    max_fds: f64,
}

impl ProcView {
    fn read(pid: u32) -> Self {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let field = |name: &str| -> f64 {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|value| value.parse().ok())
                .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
        };
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
        let max_fds = limits
            .lines()
            .find_map(|line| line.strip_prefix("Max open files"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|soft| soft.parse().ok())
            .expect("the soft limit on open files");
        Self {
            cpu_seconds: loadtest::server_probe::cpu_seconds(pid).expect("CPU time"),
            rss_bytes: field("VmRSS:") * 1024.0,
            threads: field("Threads:"),
            open_fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
                .expect("the fd folder")
                .count() as f64,
            max_fds,
        }
    }
}

/// When `pid` started, in whole seconds since the Unix epoch: the boot time from
/// `/proc/stat` plus the start in clock ticks after boot from `/proc/PID/stat`.
fn start_time_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let boot: u64 = stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
        .expect("btime");
    let process = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Field 22 of proc(5); the fields after the command name's closing parenthesis start at 3.
    let ticks: u64 = process
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(22 - 3))
        .and_then(|value| value.parse().ok())
        .expect("starttime");
    (boot + ticks / 100) as f64
}

/// Asserts `value` lies within `[low - slack, high + slack]`.
fn assert_between(name: &str, value: f64, (low, high): (f64, f64), slack: f64) {
    assert!(
        value >= low.min(high) - slack && value <= low.max(high) + slack,
        "{name} is {value}; /proc said {low} before the scrape and {high} after"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_metrics_match_what_proc_says_of_the_server() {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], common::process::free_port()));
    let args = ["--http", &address.to_string(), "--media-ip", "127.0.0.1"].map(String::from);
    let server = common::process::ServerProcess::start(address, &args, &[]).await;
    let pid = server.pid();

    let before = ProcView::read(pid);
    let (status, body) = common::http::get(address, "/metrics")
        .await
        .expect("GET /metrics");
    let after = ProcView::read(pid);
    assert_eq!(status, 200, "{body}");
    let scrape = prometheus::parse(&body).unwrap_or_else(|error| panic!("{error}\n{body}"));

    // CPU time only grows, and both sides count it in the same clock ticks.
    assert_between(
        "process_cpu_seconds_total",
        scrape.value("process_cpu_seconds_total"),
        (before.cpu_seconds, after.cpu_seconds),
        0.0,
    );
    // Memory, threads and descriptors may move a little while the scrape is served (its own
    // connection is one descriptor; reading /proc opens another).
    assert_between(
        "process_resident_memory_bytes",
        scrape.value("process_resident_memory_bytes"),
        (before.rss_bytes, after.rss_bytes),
        before.rss_bytes * 0.1,
    );
    assert_between(
        "process_threads",
        scrape.value("process_threads"),
        (before.threads, after.threads),
        1.0,
    );
    assert_between(
        "process_open_fds",
        scrape.value("process_open_fds"),
        (before.open_fds, after.open_fds),
        3.0,
    );
    assert_eq!(scrape.value("process_max_fds"), before.max_fds);
    assert_eq!(
        scrape.value("process_start_time_seconds"),
        start_time_seconds(pid)
    );
}

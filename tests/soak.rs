//! The soak command against an in-process server: its cycles all succeed, every count is back
//! to zero after each phase, and the process holds no more file descriptors after the cycles
//! than after the warm-up (the server and the test's own clients share the process, so a socket
//! kept by either shows).

mod common;

use std::time::{Duration, Instant};

use common::server;
use loadtest::soak::{SoakOptions, soak};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_cycles_leave_nothing_behind() {
    let server = server().await;
    let report = soak(SoakOptions {
        url: server.websocket_url(),
        signaling_cycles: 300,
        media_cycles: 8,
        concurrency: 8,
        media_ip: "127.0.0.1".parse().expect("an address"),
        progress: false,
    })
    .await
    .expect("the soak runs");

    assert_eq!(report.failed(), 0, "{}", report.markdown());
    let names: Vec<&str> = report
        .phases
        .iter()
        .map(|phase| phase.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "warm-up: signaling",
            "warm-up: media",
            "signaling cycles",
            "media cycles"
        ]
    );
    for phase in &report.phases {
        assert!(
            phase.after.counts.is_zero(),
            "{}: {:?}",
            phase.name,
            phase.after.counts
        );
    }
    // The clients' own sockets close a moment after they leave: a leak never comes back down.
    let warmed = report.phases[1].after.open_fds as usize;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut open = open_descriptors();
    while open > warmed && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        open = open_descriptors();
    }
    assert!(
        open <= warmed,
        "{open} descriptors after the cycles, {warmed} after the warm-up\n{}",
        report.markdown()
    );
    server.shutdown().await.expect("shutdown");
}

/// This process's open file descriptors (the listing's own included, as the server's metric
/// counts it).
fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

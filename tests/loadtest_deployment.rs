//! The load test against a deployment as docs/deployment.md sets one up: HTTPS and `wss://`
//! with a certificate (here a self-signed one, accepted with the insecure verifier), and a
//! token key (each synthetic participant gets a token minted under it, or one given). Every
//! participant joins, and the server's CPU per forwarded packet comes from its own `/metrics`,
//! over HTTPS.
//! Without the insecure verifier the self-signed certificate is refused: every participant is
//! reported with the reason, and the run still ends with a report.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use loadtest::tls::{CertificateCheck, client_config};
use loadtest::tokens::Admission;
use loadtest::{RunOptions, Scenario, run};
use switchyard::config::TlsFiles;
use switchyard::{Config, RunningServer};

const TOKEN_KEY: &str = "a-load-test-token-key-of-32-bytes-or-more";

/// A folder of its own under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "switchyard-{name}-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&path).expect("a temporary directory");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server with HTTPS (a certificate made here, for `localhost` and 127.0.0.1) and a token
/// key.
async fn deployment(folder: &TempDir) -> RunningServer {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("a certificate");
    let cert = folder.0.join("cert.pem");
    let key = folder.0.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("written");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("written");
    let mut config = Config::loopback();
    config.http.tls = Some(TlsFiles { cert, key });
    config.auth.token_key = Some(TOKEN_KEY.to_owned());
    common::server_with(config).await
}

fn scenario() -> Scenario {
    Scenario {
        rooms: 1,
        publishers: 2,
        subscribers: 2,
        video_bitrate: 300_000,
        duration: Duration::from_secs(3),
        pli_interval: Duration::ZERO,
        ..Scenario::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_deployment_with_tokens_is_load_tested_and_its_cost_read_from_its_metrics() {
    let folder = TempDir::new("loadtest-deployment");
    let server = deployment(&folder).await;
    let url = server.websocket_url();
    assert!(url.starts_with("wss://"), "{url}");

    let mut options = RunOptions::new(url, scenario());
    options.tls = Some(client_config(CertificateCheck::AcceptAnything).expect("TLS settings"));
    options.admission = Admission::mint(TOKEN_KEY).expect("a usable key");
    let report = run(options).await.expect("the run completes");
    let table = report.table();

    assert!(report.window_seconds >= 2.9, "the whole window: {table}");
    assert_eq!(report.participants.planned, 4, "{table}");
    assert_eq!(report.participants.joined, 4, "{table}");
    assert_eq!(report.participants.failed, 0, "{table}");
    assert!(report.participants.failures.is_empty(), "{table}");
    // Publishers receive the other's video and audio; subscribers both publishers'.
    assert_eq!(report.tracks.expected, 2 * 2 + 2 * 4, "{table}");
    assert_eq!(report.tracks.received, report.tracks.expected, "{table}");

    // No server PID was given: the CPU time is the server's own process_cpu_seconds_total,
    // scraped over HTTPS next to the wss:// URL.
    let readings = report
        .server_readings
        .as_ref()
        .expect("the server was read");
    for reading in [&readings.opened, &readings.closed] {
        assert!(
            reading.counters.contains_key("process_cpu_seconds_total"),
            "{:?}",
            reading.counters.keys().collect::<Vec<_>>()
        );
    }
    let server = &report.server;
    assert!(
        server
            .forwarded_packets
            .is_some_and(|packets| packets > 0.0),
        "{table}"
    );
    assert!(
        server
            .cpu_us_per_forwarded_packet
            .is_some_and(|micros| micros > 0.0 && micros.is_finite()),
        "{table}"
    );
    assert!(server.rss_bytes.is_some_and(|bytes| bytes > 0), "{table}");
    // The series has the server's forwarding and CPU second by second too.
    assert!(
        report.series.0.iter().any(|point| point
            .server_forwarded_packets
            .is_some_and(|packets| packets > 0.0)),
        "{:?}",
        report.series
    );
    assert!(
        report
            .series
            .0
            .iter()
            .any(|point| point.server_cpu_seconds.is_some())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_insecure_verifier_a_self_signed_certificate_is_refused_and_reported() {
    let folder = TempDir::new("loadtest-untrusted");
    let server = deployment(&folder).await;
    let scenario = Scenario {
        duration: Duration::from_millis(500),
        ..scenario()
    };
    let mut options = RunOptions::new(server.websocket_url(), scenario);
    options.admission = Admission::mint(TOKEN_KEY).expect("a usable key");
    let report = run(options)
        .await
        .expect("the run still ends with a report");

    assert_eq!(report.participants.joined, 0, "{}", report.table());
    assert_eq!(report.participants.failed, 4);
    for failure in &report.participants.failures {
        assert!(
            failure.reason.contains("certificate"),
            "the reason names the certificate: {failure:?}"
        );
        assert_eq!(failure.code, None);
    }
    assert!(
        report.table().contains("4 x "),
        "the table groups the failures: {}",
        report.table()
    );
    assert_eq!(server.counts().participants, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_minted_elsewhere_admit_each_participant_to_their_room() {
    use switchyard::auth::{Claims, Grants, TokenKey};

    let folder = TempDir::new("loadtest-given-tokens");
    let server = deployment(&folder).await;
    let key = TokenKey::new(TOKEN_KEY).expect("a usable key");
    let mint = |identity: &str, publish: bool| {
        let grants = Grants {
            publish,
            subscribe: true,
            chat: false,
            admin: false,
            invite: false,
        };
        let claims = Claims::new(
            "standup",
            identity,
            grants,
            std::time::SystemTime::now(),
            Duration::from_secs(600),
        );
        key.mint(&claims).expect("minted")
    };
    let scenario = Scenario {
        publishers: 1,
        subscribers: 1,
        duration: Duration::from_secs(1),
        ..scenario()
    };
    let mut options = RunOptions::new(server.websocket_url(), scenario);
    options.tls = Some(client_config(CertificateCheck::AcceptAnything).expect("TLS settings"));
    options.admission =
        Admission::given(&[mint("ada", true), mint("bo", false)]).expect("readable tokens");
    let report = run(options).await.expect("the run completes");
    let table = report.table();
    assert_eq!(report.participants.joined, 2, "{table}");
    // The subscriber receives the publisher's video and audio: both are in the tokens' room.
    assert_eq!(report.tracks.expected, 2, "{table}");
    assert_eq!(report.tracks.received, 2, "{table}");
}

//! The load test through a TURN server, as a browser with `iceTransportPolicy: 'relay'`: the
//! participants take the TURN server and credentials the server hands out in `joined`, gather
//! only relayed candidates, and every track still arrives, so every packet went through the
//! relay (a real coturn, on loopback). Without a TURN server to use, each participant is
//! reported with the reason.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use loadtest::{RunOptions, Scenario, run};
use switchyard::Config;
use switchyard::config::TurnConfig;

const TURNSERVER: &str = "/usr/bin/turnserver";
const SECRET: &str = "a-turn-secret-shared-with-coturn";

/// A coturn on loopback, stopped and its folder removed when dropped.
struct Coturn {
    child: Child,
    folder: PathBuf,
    port: u16,
}

impl Coturn {
    fn start() -> Self {
        let folder = std::env::temp_dir().join(format!(
            "switchyard-coturn-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&folder).expect("a folder");
        let port = common::free_udp_port();
        let config = [
            "listening-ip=127.0.0.1".to_owned(),
            "relay-ip=127.0.0.1".to_owned(),
            format!("listening-port={port}"),
            // The relay and the media server share loopback, which coturn refuses by default.
            "allow-loopback-peers".to_owned(),
            "use-auth-secret".to_owned(),
            format!("static-auth-secret={SECRET}"),
            "realm=switchyard.test".to_owned(),
            "fingerprint".to_owned(),
            "no-tls".to_owned(),
            "no-dtls".to_owned(),
            "no-cli".to_owned(),
            "no-multicast-peers".to_owned(),
            format!("pidfile={}", folder.join("turnserver.pid").display()),
            format!("userdb={}", folder.join("turndb").display()),
            format!("log-file={}", folder.join("turnserver.log").display()),
            "simple-log".to_owned(),
            "verbose".to_owned(),
        ]
        .join("\n");
        let config_file = folder.join("turnserver.conf");
        std::fs::write(&config_file, config).expect("the configuration");
        let child = Command::new(TURNSERVER)
            .arg("-c")
            .arg(&config_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("coturn starts (Debian's coturn package)");
        let coturn = Coturn {
            child,
            folder,
            port,
        };
        coturn.wait_until_it_answers();
        coturn
    }

    /// What coturn logged.
    fn log(&self) -> String {
        std::fs::read_to_string(self.folder.join("turnserver.log")).unwrap_or_default()
    }

    /// Waits until a STUN binding request gets an answer.
    fn wait_until_it_answers(&self) {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("a socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("a timeout");
        let server = SocketAddr::from(([127, 0, 0, 1], self.port));
        // Binding request: type 0x0001, no attributes, the magic cookie, a transaction id.
        let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        request.extend_from_slice(&rand::random::<[u8; 12]>());
        let deadline = Instant::now() + common::PATIENCE;
        let mut answer = [0u8; 512];
        loop {
            let _ = socket.send_to(&request, server);
            if socket.recv_from(&mut answer).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "coturn did not answer on {server}: {}",
                self.log()
            );
        }
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

fn scenario() -> Scenario {
    Scenario {
        rooms: 1,
        publishers: 2,
        subscribers: 1,
        video_bitrate: 300_000,
        duration: Duration::from_secs(2),
        pli_interval: Duration::ZERO,
        ..Scenario::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_participants_get_every_track_through_turn() {
    let coturn = Coturn::start();
    let mut config = Config::loopback();
    config.ice.turn = Some(TurnConfig {
        urls: vec![format!("turn:127.0.0.1:{}?transport=udp", coturn.port)],
        secret: SECRET.to_owned(),
        credential_ttl: Duration::from_secs(3600),
    });
    let server = common::server_with(config).await;
    let mut options = RunOptions::new(server.websocket_url(), scenario());
    options.relay = true;
    let report = run(options).await.expect("the run completes");
    let table = report.table();
    assert_eq!(report.participants.joined, 3, "{table}");
    assert_eq!(report.participants.connected, 3, "{table}");
    assert_eq!(report.tracks.expected, 2 * 2 + 4, "{table}");
    assert_eq!(report.tracks.received, report.tracks.expected, "{table}");
    assert!(report.received.packets > 0, "{table}");
    // Every participant's connection was a relay allocation of coturn's.
    let log = coturn.log();
    let allocations = log.matches("ALLOCATE processed, success").count();
    assert!(allocations >= 3, "{allocations} allocations:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_without_a_turn_server_is_reported_for_each_participant() {
    let server = common::server().await;
    let mut options = RunOptions::new(server.websocket_url(), scenario());
    options.relay = true;
    let report = run(options).await.expect("the run ends with a report");
    assert_eq!(report.participants.joined, 0, "{}", report.table());
    assert_eq!(report.participants.failures.len(), 3);
    for failure in &report.participants.failures {
        assert!(failure.reason.contains("no TURN server"), "{failure:?}");
    }
}

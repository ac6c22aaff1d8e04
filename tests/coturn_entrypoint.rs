//! `deploy/coturn.sh`, coturn's entrypoint in the compose setup, run with Debian's coturn: it
//! waits for the certificate Caddy obtains, serves it on coturn's TLS listener, serves a renewed
//! one after its next reload (SIGUSR2), and passes SIGTERM on so that coturn stops with it.
//!
//! Needs coturn installed (`scripts/test.sh` installs it).

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::free_port;
use common::{PATIENCE, free_udp_port};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A directory of the test's own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "switchyard-coturn-{}-{:x}",
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

/// The entrypoint and the coturn it starts; killed if the test fails before it stops them.
struct Entrypoint {
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Drop for Entrypoint {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGTERM, which the script passes on to coturn, rather than a SIGKILL that
            // would leave coturn running.
            self.terminate();
            let _ = self.child.wait();
        }
    }
}

impl Entrypoint {
    fn output(&self) -> String {
        self.output
            .lock()
            .map(|text| text.clone())
            .unwrap_or_default()
    }

    fn terminate(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a process id");
        // SAFETY: sends a signal to our own child process.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}

/// A self-signed certificate for `localhost`: PEM certificate, PEM key, DER.
fn certificate() -> (String, String, CertificateDer<'static>) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("a certificate");
    (
        certified.cert.pem(),
        certified.signing_key.serialize_pem(),
        certified.cert.der().clone(),
    )
}

/// Writes `contents` to `path` all at once (a rename), as a renewal replaces a file.
fn replace(path: &Path, contents: &str) {
    let staged = path.with_extension("new");
    std::fs::write(&staged, contents).expect("written");
    std::fs::rename(&staged, path).expect("renamed");
}

/// Whether a TLS handshake with `address` as `localhost`, trusting `root` alone, succeeds.
async fn serves(address: SocketAddr, root: &CertificateDer<'static>) -> bool {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).expect("the root is accepted");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let Ok(tcp) = TcpStream::connect(address).await else {
        return false;
    };
    let name = ServerName::try_from("localhost").expect("a server name");
    let handshake = TlsConnector::from(Arc::new(config)).connect(name, tcp);
    matches!(
        tokio::time::timeout(Duration::from_secs(2), handshake).await,
        Ok(Ok(_))
    )
}

/// Waits until `condition` holds, polling, or fails after `PATIENCE` naming `what`.
async fn wait_until<F, Fut>(what: &str, output: impl Fn() -> String, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !condition().await {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; the entrypoint's output:\n{}",
            output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await; // the polling interval
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coturn_serves_caddys_certificate_and_its_renewal_and_stops_with_its_entrypoint() {
    let turnserver = Path::new("/usr/bin/turnserver");
    assert!(
        turnserver.is_file(),
        "no coturn at {}: install Debian's coturn (scripts/test.sh does)",
        turnserver.display()
    );
    let directory = TempDir::new();
    let cert = directory.0.join("turn.example.net.crt");
    let key = directory.0.join("turn.example.net.key");
    let tls_port = free_port();
    let address = SocketAddr::from(([127, 0, 0, 1], tls_port));
    let args = [
        "-n".to_owned(),
        "--log-file=stdout".to_owned(),
        "--listening-ip=127.0.0.1".to_owned(),
        "--relay-ip=127.0.0.1".to_owned(),
        format!("--listening-port={}", free_udp_port()),
        format!("--tls-listening-port={tls_port}"),
        "--no-dtls".to_owned(),
        "--no-cli".to_owned(),
        "--use-auth-secret".to_owned(),
        "--static-auth-secret=the-secret".to_owned(),
        "--realm=switchyard.test".to_owned(),
        format!("--pidfile={}", directory.0.join("turnserver.pid").display()),
        format!("--userdb={}", directory.0.join("turndb").display()),
    ];
    let mut child = Command::new("sh")
        .arg(repository().join("deploy/coturn.sh"))
        .args(&args)
        .env("TURN_TLS_CERT", &cert)
        .env("TURN_TLS_KEY", &key)
        // A reload every second instead of twice a day.
        .env("TURN_TLS_RELOAD_SECS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the entrypoint starts");
    let output = Arc::new(Mutex::new(String::new()));
    for mut stream in [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ] {
        let output = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buffer = [0; 4096];
            while let Ok(read @ 1..) = stream.read(&mut buffer) {
                if let Ok(mut text) = output.lock() {
                    text.push_str(&String::from_utf8_lossy(&buffer[..read]));
                }
            }
        });
    }
    let mut entrypoint = Entrypoint { child, output };

    // Before Caddy has a certificate, coturn does not start, and the log says why.
    wait_until(
        "the entrypoint to say it waits",
        || entrypoint.output(),
        || async {
            entrypoint
                .output()
                .contains("waiting for Caddy's certificate")
        },
    )
    .await;
    assert!(
        TcpStream::connect(address).await.is_err(),
        "no listener yet"
    );

    // Caddy obtains one: coturn starts and serves it.
    let (first_pem, first_key, first) = certificate();
    replace(&key, &first_key);
    replace(&cert, &first_pem);
    wait_until(
        "coturn to serve the certificate",
        || entrypoint.output(),
        || serves(address, &first),
    )
    .await;

    // Caddy renews it: after its next reload, coturn serves the new one, without a restart.
    let (second_pem, second_key, second) = certificate();
    replace(&key, &second_key);
    replace(&cert, &second_pem);
    wait_until(
        "coturn to serve the renewed certificate",
        || entrypoint.output(),
        || serves(address, &second),
    )
    .await;
    assert!(!serves(address, &first).await, "the old one is gone");
    let output = entrypoint.output();
    assert!(
        output.contains("Reloading TLS certificates and keys"),
        "{output}"
    );
    assert_eq!(
        output.matches("IO method (main listener thread)").count(),
        1,
        "coturn started once: {output}"
    );

    // docker stop: SIGTERM to the entrypoint stops coturn too.
    entrypoint.terminate();
    let deadline = Instant::now() + PATIENCE;
    while entrypoint.child.try_wait().ok().flatten().is_none() {
        assert!(
            Instant::now() < deadline,
            "running after SIGTERM:\n{}",
            entrypoint.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await; // the polling interval
    }
    wait_until(
        "coturn's TLS listener to close",
        || entrypoint.output(),
        || async { TcpStream::connect(address).await.is_err() },
    )
    .await;
}

//! HTTPS and WSS served by the server itself, with a certificate made by the test; and bad
//! certificate or key files refused at start, naming the file.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::PATIENCE;
use common::process::{ServerProcess, free_port};
use futures::{SinkExt, StreamExt};
use loadtest::server_probe::MetricsEndpoint;
use rustls::pki_types::{CertificateDer, ServerName};
use switchyard::config::TlsFiles;
use switchyard::signal::protocol::ServerMessage;
use switchyard::{Config, RunningServer, Server, StartError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

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

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("the file is written");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate for `localhost` and 127.0.0.1: PEM certificate, PEM key, DER.
fn self_signed() -> (String, String, CertificateDer<'static>) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("a certificate");
    (
        certified.cert.pem(),
        certified.signing_key.serialize_pem(),
        certified.cert.der().clone(),
    )
}

async fn start(cert: &Path, key: &Path) -> Result<RunningServer, StartError> {
    let mut config = Config::loopback();
    config.http.tls = Some(TlsFiles {
        cert: cert.to_owned(),
        key: key.to_owned(),
    });
    Server::new(config).start().await
}

/// Connects to `server` over TLS, trusting only `root`, as `localhost`.
async fn connect(server: &RunningServer, root: &CertificateDer<'static>) -> TlsStream<TcpStream> {
    try_connect(server.local_addr(), root)
        .await
        .expect("the TLS handshake succeeds with the test's certificate")
}

/// Connects to `address` over TLS, trusting only `root`, as `localhost`.
async fn try_connect(
    address: SocketAddr,
    root: &CertificateDer<'static>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).expect("the root is accepted");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(address).await?;
    let name = ServerName::try_from("localhost").expect("a server name");
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

type SecureSocket = WebSocketStream<TlsStream<TcpStream>>;

/// Opens the signaling socket over `wss://` and joins `room`.
async fn join_over_wss(
    address: SocketAddr,
    root: &CertificateDer<'static>,
    room: &str,
) -> SecureSocket {
    let url = format!("wss://localhost:{}/ws", address.port());
    let tls = try_connect(address, root).await.expect("the TLS handshake");
    let (mut socket, _) = tokio_tungstenite::client_async(url, tls)
        .await
        .expect("the WebSocket upgrade over TLS");
    let join = serde_json::json!({"type": "join", "room": room, "name": "Ada"});
    socket
        .send(Message::Text(join.to_string().into()))
        .await
        .expect("sent");
    let joined = next_message(&mut socket).await;
    assert!(matches!(joined, ServerMessage::Joined { .. }), "{joined:?}");
    socket
}

async fn next_message(socket: &mut SecureSocket) -> ServerMessage {
    loop {
        let frame = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("the server answers in time")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).expect("a server message");
        }
    }
}

/// Sends a chat message and waits for it to come back.
async fn chat_round_trip(socket: &mut SecureSocket, text: &str) {
    let chat = serde_json::json!({"type": "chat", "text": text});
    socket
        .send(Message::Text(chat.to_string().into()))
        .await
        .expect("sent");
    while !matches!(next_message(socket).await, ServerMessage::Chat { text: heard, .. } if heard == text)
    {
    }
}

async fn https_get(
    server: &RunningServer,
    root: &CertificateDer<'static>,
    path: &str,
) -> (u16, String) {
    let mut stream = connect(server, root).await;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("the request is sent");
    let mut response = Vec::new();
    // A server may end a TLS connection without close_notify; what arrived is complete.
    let _ = stream.read_to_end(&mut response).await;
    common::http::parse_response(&response).expect("an HTTP response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_page_over_https_and_signaling_over_wss() {
    let folder = TempDir::new("tls");
    let (cert, key, root) = self_signed();
    let server = start(
        &folder.write("cert.pem", &cert),
        &folder.write("key.pem", &key),
    )
    .await
    .expect("the server starts with TLS");
    assert!(server.is_tls());
    assert!(server.websocket_url().starts_with("wss://"));

    let (status, page) = https_get(&server, &root, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("<title>"), "the client page: {page}");
    assert_eq!(
        https_get(&server, &root, "/healthz").await,
        (200, "ok\n".to_owned())
    );

    // A participant joins over wss:// and hears its own chat message back.
    let mut socket = join_over_wss(server.local_addr(), &root, "secure").await;
    chat_round_trip(&mut socket, "over TLS").await;
    assert_eq!(server.counts().participants, 1);

    // The load test reads the metrics over HTTPS.
    let metrics = MetricsEndpoint::new(
        format!("https://localhost:{}/metrics", server.local_addr().port()),
        Some(cert.as_bytes()),
    )
    .expect("an HTTPS client")
    .scrape()
    .await
    .expect("/metrics over HTTPS");
    assert_eq!(metrics.get("switchyard_participants"), Some(&1.0));

    // Plain HTTP on the TLS port gets no page.
    let plain = common::http::get(server.local_addr(), "/healthz").await;
    assert!(
        !matches!(plain, Ok((200, _))),
        "plain HTTP is not served: {plain:?}"
    );

    let _ = socket.close(None).await;
    server.shutdown().await.expect("the server shuts down");
}

#[tokio::test]
async fn bad_certificate_or_key_files_are_refused_naming_them() {
    let folder = TempDir::new("tls-bad");
    let (cert, key, _) = self_signed();
    let (_, other_key, _) = self_signed();
    let cert_path = folder.write("cert.pem", &cert);
    let key_path = folder.write("key.pem", &key);
    let missing = folder.0.join("missing.pem");
    let garbage = folder.write("garbage.pem", "this is not PEM\n");
    let other_key = folder.write("other-key.pem", &other_key);

    let cases: [(&Path, &Path, Vec<&Path>); 5] = [
        (&missing, &key_path, vec![&missing]),
        (&cert_path, &missing, vec![&missing]),
        (&garbage, &key_path, vec![&garbage]),
        (&cert_path, &garbage, vec![&garbage]),
        (&cert_path, &other_key, vec![&cert_path, &other_key]),
    ];
    for (cert, key, named) in cases {
        let error = start(cert, key)
            .await
            .expect_err("the server refuses to start");
        let message = error.to_string();
        assert!(matches!(error, StartError::Tls(_)), "{message}");
        for path in named {
            assert!(
                message.contains(&path.display().to_string()),
                "`{message}` names {}",
                path.display()
            );
        }
    }
}

#[tokio::test]
async fn the_binary_refuses_a_missing_certificate_and_says_which() {
    let folder = TempDir::new("tls-binary");
    let (_, key, _) = self_signed();
    let key_path = folder.write("key.pem", &key);
    let missing = folder.0.join("no-such-cert.pem");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "--http",
            "127.0.0.1:0",
            "--media-ip",
            "127.0.0.1",
            "--tls-cert",
        ])
        .arg(&missing)
        .arg("--tls-key")
        .arg(&key_path)
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(20), child)
        .await
        .expect("the binary exits by itself")
        .expect("the binary runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{printed}");
    assert!(
        printed.contains(&missing.display().to_string()),
        "names the file: {printed}"
    );
}

/// Writes `contents` to `path` as a certificate renewal does: a new file renamed over the old.
fn replace(path: &Path, contents: &str) {
    let fresh = path.with_extension("new");
    std::fs::write(&fresh, contents).expect("the new file is written");
    std::fs::rename(&fresh, path).expect("the new file replaces the old");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_while_calls_go_on() {
    let folder = TempDir::new("tls-reload");
    let (cert, key, first) = self_signed();
    let cert_path = folder.write("cert.pem", &cert);
    let key_path = folder.write("key.pem", &key);
    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let args = [
        "--http".to_owned(),
        address.to_string(),
        "--media-ip".to_owned(),
        "127.0.0.1".to_owned(),
        "--tls-cert".to_owned(),
        cert_path.display().to_string(),
        "--tls-key".to_owned(),
        key_path.display().to_string(),
    ];
    let mut server = ServerProcess::start_serving(address, &args, &[]).await;
    let mut socket = join_over_wss(address, &first, "renewal").await;
    chat_round_trip(&mut socket, "before the renewal").await;

    let (cert, key, second) = self_signed();
    replace(&cert_path, &cert);
    replace(&key_path, &key);
    server.signal(libc::SIGHUP);
    server
        .wait_for_output("reloaded the TLS certificate and key")
        .await;

    // New handshakes present the new certificate, and only it.
    try_connect(address, &second)
        .await
        .expect("a client trusting only the new certificate connects");
    assert!(
        try_connect(address, &first).await.is_err(),
        "the old certificate is no longer presented"
    );
    // The socket opened before the renewal still carries the call.
    chat_round_trip(&mut socket, "after the renewal").await;

    // A renewal that went wrong leaves the certificate being served as it was.
    replace(&cert_path, "not a certificate\n");
    server.signal(libc::SIGHUP);
    server
        .wait_for_output("still serving the previous ones")
        .await;
    try_connect(address, &second)
        .await
        .expect("the certificate from before the failed reload is still presented");
    chat_round_trip(&mut socket, "after the failed renewal").await;
    let _ = socket.close(None).await;
}

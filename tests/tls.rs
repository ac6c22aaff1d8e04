//! HTTPS and WSS served by the server itself, with a certificate made by the test; and bad
//! certificate or key files refused at start, naming the file.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::PATIENCE;
use futures::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, ServerName};
use switchyard::config::TlsFiles;
use switchyard::signal::protocol::ServerMessage;
use switchyard::{Config, RunningServer, Server, StartError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
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
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).expect("the root is accepted");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(server.local_addr())
        .await
        .expect("TCP connects");
    let name = ServerName::try_from("localhost").expect("a server name");
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("the TLS handshake succeeds with the test's certificate")
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
    let url = format!("wss://localhost:{}/ws", server.local_addr().port());
    let (mut socket, _) = tokio_tungstenite::client_async(url, connect(&server, &root).await)
        .await
        .expect("the WebSocket upgrade over TLS");
    for message in [
        r#"{"type": "join", "room": "secure", "name": "Ada"}"#,
        r#"{"type": "chat", "text": "over TLS"}"#,
    ] {
        socket
            .send(Message::Text(message.into()))
            .await
            .expect("sent");
    }
    let mut heard = Vec::new();
    while !heard
        .iter()
        .any(|message| matches!(message, ServerMessage::Chat { text, .. } if text == "over TLS"))
    {
        let frame = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("the server answers in time")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(text) = frame {
            heard.push(serde_json::from_str::<ServerMessage>(&text).expect("a server message"));
        }
    }
    assert!(
        matches!(heard[0], ServerMessage::Joined { .. }),
        "{heard:?}"
    );
    assert_eq!(server.counts().participants, 1);

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

//! The HTTP listener holds up on the open internet: floods of silent and half-sent connections
//! and of WebSockets that never join are capped and timed out while `/healthz` and joins go on; TLS handshakes and idle
//! connections are bounded in time; the total cap, the cap on sockets waiting to join and the
//! origin check refuse what they should; the client's pages carry their security headers.
//!
//! Attackers' connections come from loopback addresses other than 127.0.0.1 (127.0.0.2 and
//! up), so the per-address cap engages for them as it would on the internet, and 127.0.0.1
//! stays free for the checks.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::PATIENCE;
use common::flood::{attacker, closed_at, connect_from, poll_healthz};
use futures::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, ServerName};
use switchyard::config::TlsFiles;
use switchyard::http::origin::WebOrigin;
use switchyard::metrics::{RefusedBecause, TimedOut};
use switchyard::signal::protocol::ServerMessage;
use switchyard::{Config, RunningServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// How fast `/healthz` must answer, flood or not.
const HEALTHZ_BOUND: Duration = Duration::from_millis(100);

/// How much later than its timeout a connection may be seen closed, on a loaded machine.
const CLOSE_MARGIN: Duration = Duration::from_secs(3);

/// Silent connections in the flood, and how many come from each attacking address.
const SILENT: usize = 1_100;
const SILENT_PER_ADDRESS: usize = 220;

/// Connections that send half a request, all from one more address.
const HALF_SENT: usize = 200;

/// WebSockets that open and never join, 50 from each of ten more addresses.
const IDLE_SOCKETS: usize = 500;
const IDLE_SOCKETS_PER_ADDRESS: usize = 50;

/// A signaling WebSocket to `server` from `source`, opened and left idle.
async fn idle_socket_from(
    source: Ipv4Addr,
    server: SocketAddr,
) -> tokio_tungstenite::WebSocketStream<TcpStream> {
    let stream = connect_from(source, server).await;
    let (socket, _) = tokio_tungstenite::client_async(format!("ws://{server}/ws"), stream)
        .await
        .expect("the idle socket opens");
    socket
}

/// Reads `socket` until the server closes it, and says when and with which code; `None` if it
/// is still open at `deadline`.
async fn socket_closed_at(
    mut socket: tokio_tungstenite::WebSocketStream<TcpStream>,
    deadline: Instant,
) -> Option<(Instant, Option<u16>)> {
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return None,
            Ok(None | Some(Err(_))) => return Some((Instant::now(), None)),
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Some((Instant::now(), frame.map(|frame| u16::from(frame.code))));
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// The open-file limit of this process, which holds both ends of every connection.
fn open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given and nothing else.
    let result = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(result, 0, "getrlimit");
    limit.rlim_cur
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads server messages until one matches.
async fn wait_for(socket: &mut Socket, what: impl Fn(&ServerMessage) -> bool) -> ServerMessage {
    loop {
        let frame = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("the server answers in time")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(text) = frame {
            let message = serde_json::from_str(&text).expect("a server message");
            if what(&message) {
                return message;
            }
        }
    }
}

/// Sends `join` on `socket` and waits for `joined`.
async fn join(socket: &mut Socket, room: &str) {
    let join = serde_json::json!({"type": "join", "room": room, "name": "Ada"});
    socket
        .send(Message::Text(join.to_string().into()))
        .await
        .expect("sent");
    wait_for(socket, |message| {
        matches!(message, ServerMessage::Joined { .. })
    })
    .await;
}

/// Opens the signaling socket with `origin`, if any.
async fn open_socket(server: &RunningServer, origin: Option<&str>) -> Result<Socket, WsError> {
    let mut request = server
        .websocket_url()
        .into_client_request()
        .expect("a request");
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", HeaderValue::from_str(origin).expect("a header"));
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

fn refused_status(result: Result<Socket, WsError>) -> u16 {
    match result {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected an HTTP refusal, got a socket"),
    }
}

/// Waits until `condition` holds, checking every 20 ms, for at most [`PATIENCE`].
async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    while !condition() {
        assert!(Instant::now() < deadline, "waited in vain for {what}");
        ticker.tick().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_of_silent_half_sent_and_idle_connections_leave_the_server_answering() {
    let server = common::server().await;
    let address = server.local_addr();
    let context = Arc::clone(server.context());
    let header_timeout = context.config.http.header_timeout;
    let per_ip = context
        .config
        .limits
        .connections_per_ip
        .expect("a cap by default");
    let metrics = &context.metrics.http;
    // Both ends of every connection are this process's: the server raised the limit for both.
    let join_timeout = context.config.signaling.join_timeout;
    let needed = 2 * (SILENT + HALF_SENT + IDLE_SOCKETS) as u64 + 1_024;
    assert!(
        open_file_limit() >= needed,
        "this test needs {needed} file descriptors; the hard limit allows {}",
        open_file_limit()
    );

    let (stop_polling, polling) = watch::channel(false);
    let poller = tokio::spawn(poll_healthz(address, polling));

    // The flood: silent connections from five addresses, more from each than the cap allows.
    let mut flood = Vec::new();
    for index in 0..SILENT {
        let stream = connect_from(attacker(index / SILENT_PER_ADDRESS), address).await;
        flood.push((stream, Instant::now()));
    }
    // And connections that send half a request each, from one more address.
    let half_sent_from = attacker(SILENT / SILENT_PER_ADDRESS);
    for _ in 0..HALF_SENT {
        let mut stream = connect_from(half_sent_from, address).await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: switchyard\r\nUser-Agent: slow")
            .await
            .expect("half a request is sent");
        flood.push((stream, Instant::now()));
    }

    // And signaling sockets that never join, from ten more addresses.
    let first_idle = SILENT / SILENT_PER_ADDRESS + 1;
    let mut idle = Vec::new();
    for index in 0..IDLE_SOCKETS {
        let source = attacker(first_idle + index / IDLE_SOCKETS_PER_ADDRESS);
        idle.push((idle_socket_from(source, address).await, Instant::now()));
    }

    // Somebody joins a room meanwhile.
    let mut socket = open_socket(&server, None)
        .await
        .expect("the signaling socket opens during the flood");
    join(&mut socket, "flooded").await;

    let over_the_cap = (SILENT / SILENT_PER_ADDRESS) * (SILENT_PER_ADDRESS - per_ip);
    wait_until("the refusals to be counted", || {
        metrics.refusals(RefusedBecause::PerIp) == over_the_cap as u64
    })
    .await;

    // Every flood connection is closed: those over the cap at once, the others when the
    // header timeout runs out.
    let closings = flood.into_iter().map(|(stream, opened)| async move {
        let closed = closed_at(stream, opened + header_timeout + CLOSE_MARGIN).await;
        (opened, closed)
    });
    let idle_closings = idle.into_iter().map(|(socket, opened)| async move {
        let closed = socket_closed_at(socket, opened + join_timeout + CLOSE_MARGIN).await;
        (opened, closed)
    });
    let (closings, idle_closings) = futures::future::join(
        futures::future::join_all(closings),
        futures::future::join_all(idle_closings),
    )
    .await;
    for (opened, closed) in idle_closings {
        let (closed, code) = closed.expect("the server closes every idle socket in time");
        assert_eq!(code, Some(4004), "an idle socket is closed for not joining");
        assert!(
            closed - opened >= join_timeout - Duration::from_millis(500),
            "an idle socket is given its whole join timeout"
        );
    }
    let mut at_once = 0;
    for (opened, closed) in closings {
        let closed = closed.expect("the server closes every flood connection in time");
        if closed - opened < header_timeout / 2 {
            at_once += 1;
        }
    }
    assert_eq!(at_once, over_the_cap, "only those over the cap are refused");
    let _ = stop_polling.send(true);
    let took = poller.await.expect("the poller");

    // /healthz kept answering, fast, throughout.
    let slowest = took.iter().max().copied().unwrap_or_default();
    eprintln!(
        "/healthz during the flood: {} polls, slowest {slowest:?}",
        took.len()
    );
    let expected_polls = (header_timeout.as_millis() / 50 / 2) as usize;
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

    // The participant is still there, and the connections the flood held were let go.
    socket
        .send(Message::Text(
            r#"{"type": "chat", "text": "still here"}"#.into(),
        ))
        .await
        .expect("sent");
    wait_for(&mut socket, |message| {
        matches!(message, ServerMessage::Chat { .. })
    })
    .await;
    let admitted = (SILENT - over_the_cap + HALF_SENT) as u64;
    assert_eq!(
        counter(
            &server,
            "switchyard_http_timeouts_total",
            "phase=\"header\""
        )
        .await,
        admitted,
        "every admitted flood connection ran out of time for its headers"
    );
    let _ = socket.close(None).await;
    wait_until("the connections to close", || {
        metrics.open_connections() <= 1
    })
    .await;
    server.shutdown().await.expect("the server shuts down");
}

/// The value of `name{label}` in `/metrics`.
async fn counter(server: &RunningServer, name: &str, label: &str) -> u64 {
    let (status, text) = common::http::get(server.local_addr(), "/metrics")
        .await
        .expect("/metrics");
    assert_eq!(status, 200);
    let series = format!("{name}{{{label}}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{series}` in /metrics:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_that_never_comes_is_cut_off() {
    let folder = std::env::temp_dir().join(format!(
        "switchyard-hardening-tls-{}-{:x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&folder).expect("a folder");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("a certificate");
    let files = TlsFiles {
        cert: folder.join("cert.pem"),
        key: folder.join("key.pem"),
    };
    std::fs::write(&files.cert, certified.cert.pem()).expect("written");
    std::fs::write(&files.key, certified.signing_key.serialize_pem()).expect("written");
    let mut config = Config::loopback();
    config.http.tls = Some(files);
    config.http.tls_handshake_timeout = Duration::from_secs(1);
    let server = common::server_with(config).await;
    let address = server.local_addr();

    let silent = connect_from(attacker(0), address).await;
    let opened = Instant::now();
    let closed = closed_at(silent, opened + Duration::from_secs(1) + CLOSE_MARGIN)
        .await
        .expect("the server gives up on the handshake");
    assert!(
        closed - opened >= Duration::from_millis(900),
        "not before its time"
    );
    assert_eq!(
        counter_over_tls(&server, &certified.cert.der().clone()).await,
        1
    );
    server.shutdown().await.expect("the server shuts down");
    let _ = std::fs::remove_dir_all(&folder);
}

/// `switchyard_http_timeouts_total{phase="tls_handshake"}`, read over HTTPS.
async fn counter_over_tls(server: &RunningServer, root: &CertificateDer<'static>) -> u64 {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).expect("the root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(server.local_addr())
        .await
        .expect("connected");
    let mut stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("a name"), tcp)
        .await
        .expect("the handshake");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("sent");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    let series = "switchyard_http_timeouts_total{phase=\"tls_handshake\"} ";
    text.lines()
        .find_map(|line| line.strip_prefix(series))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{series}` in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kept_alive_connection_is_closed() {
    let mut config = Config::loopback();
    config.http.idle_timeout = Some(Duration::from_secs(1));
    let server = common::server_with(config).await;

    let mut stream = TcpStream::connect(server.local_addr())
        .await
        .expect("connected");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: switchyard\r\n\r\n")
        .await
        .expect("sent");
    let mut response = Vec::new();
    let mut buffer = [0u8; 1024];
    while !String::from_utf8_lossy(&response).ends_with("ok\n") {
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut buffer))
            .await
            .expect("the answer comes")
            .expect("read");
        assert_ne!(read, 0, "kept alive after the answer");
        response.extend_from_slice(&buffer[..read]);
    }
    let answered = Instant::now();
    let closed = closed_at(stream, answered + Duration::from_secs(1) + CLOSE_MARGIN)
        .await
        .expect("the idle connection is closed");
    let idle_for = closed - answered;
    assert!(
        idle_for >= Duration::from_millis(900)
            && idle_for < server.context().config.http.header_timeout,
        "closed after {idle_for:?} idle: the idle timeout, not the header timeout"
    );
    assert_eq!(
        server.context().metrics.http.timeouts(TimedOut::Idle),
        1,
        "counted as idle"
    );
    server.shutdown().await.expect("the server shuts down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_total_cap_are_closed_at_once() {
    let mut config = Config::loopback();
    config.limits.connections_per_ip = None;
    config.limits.max_connections = Some(20);
    let server = common::server_with(config).await;
    let address = server.local_addr();
    let metrics = &server.context().metrics.http;

    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(connect_from(attacker(0), address).await);
    }
    wait_until("20 connections held", || metrics.open_connections() == 20).await;
    let beyond = connect_from(attacker(1), address).await;
    let opened = Instant::now();
    let closed = closed_at(beyond, opened + CLOSE_MARGIN)
        .await
        .expect("closed at once");
    assert!(closed - opened < Duration::from_secs(1));
    assert_eq!(metrics.refusals(RefusedBecause::Total), 1);

    drop(held);
    wait_until("the held connections to close", || {
        metrics.open_connections() == 0
    })
    .await;
    assert_eq!(
        common::http::get(address, "/healthz")
            .await
            .expect("/healthz"),
        (200, "ok\n".to_owned())
    );
    server.shutdown().await.expect("the server shuts down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_waiting_to_join_are_capped_until_one_joins() {
    let mut config = Config::loopback();
    config.limits.max_unjoined_sockets = 2;
    let server = common::server_with(config).await;
    let context = Arc::clone(server.context());
    let unjoined = &context.unjoined;

    let mut first = open_socket(&server, None).await.expect("the first");
    let _second = open_socket(&server, None).await.expect("the second");
    assert_eq!(unjoined.count(), 2);
    // Each WebSocket keeps the place its connection was admitted with.
    assert_eq!(context.metrics.http.open_connections(), 2);
    assert_eq!(refused_status(open_socket(&server, None).await), 503);
    assert_eq!(context.metrics.http.refusals(RefusedBecause::Unjoined), 1);

    // A join frees its place.
    join(&mut first, "waiting").await;
    assert_eq!(unjoined.count(), 1);
    let third = open_socket(&server, None).await.expect("a place was freed");
    // A socket that goes away without joining frees its place too.
    drop(third);
    wait_until("the dropped socket's place to be freed", || {
        unjoined.count() == 1
    })
    .await;
    server.shutdown().await.expect("the server shuts down");
    assert_eq!(unjoined.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_servers_own_and_listed_origins_may_open_the_socket() {
    let listed = "https://meet.example.com";
    let mut config = Config::loopback();
    config.http.allowed_origins = vec![listed.parse::<WebOrigin>().expect("an origin")];
    let server = common::server_with(config).await;
    let own = format!("http://{}", server.local_addr());

    for allowed in [Some(listed), Some(own.as_str()), None] {
        let mut socket = open_socket(&server, allowed)
            .await
            .unwrap_or_else(|error| panic!("{allowed:?} may: {error}"));
        join(&mut socket, "origins").await;
        let _ = socket.close(None).await;
    }
    for foreign in ["https://evil.example", "null", "http://127.0.0.1:1"] {
        assert_eq!(
            refused_status(open_socket(&server, Some(foreign)).await),
            403,
            "{foreign}"
        );
    }
    assert_eq!(
        counter(
            &server,
            "switchyard_connections_refused_total",
            "reason=\"origin\""
        )
        .await,
        3
    );
    server.shutdown().await.expect("the server shuts down");

    // Without a list, any page may.
    let open = common::server().await;
    let mut socket = open_socket(&open, Some("https://evil.example"))
        .await
        .expect("no list, no check");
    join(&mut socket, "open").await;
    let _ = socket.close(None).await;
    open.shutdown().await.expect("the server shuts down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_page_carries_its_security_headers() {
    let server = common::server().await;
    let mut stream = TcpStream::connect(server.local_addr())
        .await
        .expect("connected");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: switchyard\r\nConnection: close\r\n\r\n")
        .await
        .expect("sent");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("the page");
    let response = String::from_utf8_lossy(&response).to_ascii_lowercase();
    let (head, _) = response.split_once("\r\n\r\n").expect("a head");
    let csp = head
        .lines()
        .find_map(|line| line.strip_prefix("content-security-policy: "))
        .expect("a Content-Security-Policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    for line in [
        "x-frame-options: deny",
        "referrer-policy: no-referrer",
        "x-content-type-options: nosniff",
    ] {
        assert!(head.lines().any(|l| l == line), "{line} in:\n{head}");
    }
    server.shutdown().await.expect("the server shuts down");
}

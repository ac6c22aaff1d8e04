//! `http.internal_listen`: `/metrics` and everything under `/api/` are served on the internal
//! address only, the public one answers them with 404 and keeps the client and the signaling
//! socket, `/healthz` answers on both, and both listeners stop with the server.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use common::http::{get, request};
use common::{PATIENCE, camera_and_microphone, server, server_with, wait_for_tasks};
use loadtest::{Participant, ParticipantOptions};
use serde_json::Value;
use switchyard::Config;
use switchyard::auth::{Claims, Grants, TokenKey};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const KEY: &str = "the-internal-address-tests-key-0123456789";

fn token(room: &str, identity: &str, grants: Grants) -> String {
    let claims = Claims::new(
        room,
        identity,
        grants,
        SystemTime::now(),
        Duration::from_secs(600),
    );
    TokenKey::new(KEY)
        .expect("a key")
        .mint(&claims)
        .expect("a token")
}

/// GETs `path` as an operator: with an admin bearer token.
async fn get_as_operator(address: SocketAddr, path: &str) -> (u16, String) {
    let authorization = format!("Bearer {}", token("any", "operator", Grants::ADMIN));
    request(
        address,
        "GET",
        path,
        &[("Authorization", authorization.as_str())],
        None,
    )
    .await
    .unwrap_or_else(|error| panic!("GET {path} from {address}: {error}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_the_api_are_served_only_on_the_internal_address() {
    let baseline = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let mut config = Config::loopback();
    config.auth.token_key = Some(KEY.to_owned());
    config.http.internal_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let server = server_with(config).await;
    let public = server.local_addr();
    let internal = server.internal_addr().expect("an internal listener");
    assert_ne!(public.port(), internal.port());

    // Someone in a room, joined through the public address.
    let ada = Participant::join(
        ParticipantOptions::new(server.websocket_url(), "standup", "ada")
            .with_tracks(camera_and_microphone())
            .with_token(token("standup", "ada", Grants::ALL)),
    )
    .await
    .expect("ada joins on the public address");

    // The internal address: metrics, counts, the room service API and its document.
    let (status, metrics) = get_as_operator(internal, "/metrics").await;
    assert_eq!(status, 200, "{metrics}");
    let scrape = common::prometheus::parse(&metrics).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(scrape.value("switchyard_participants"), 1.0);
    let (status, counts) = get_as_operator(internal, "/api/counts").await;
    assert_eq!(status, 200, "{counts}");
    let counts: Value = serde_json::from_str(&counts).expect("JSON counts");
    assert_eq!(counts["participants"], 1);
    let (status, rooms) = get_as_operator(internal, "/api/rooms").await;
    assert_eq!(status, 200, "{rooms}");
    let rooms: Value = serde_json::from_str(&rooms).expect("JSON rooms");
    assert_eq!(rooms["rooms"][0]["name"], "standup", "{rooms}");
    let (status, participants) = get_as_operator(internal, "/api/rooms/standup/participants").await;
    assert_eq!(status, 200, "{participants}");
    assert!(participants.contains("\"ada\""), "{participants}");
    let (status, document) = get_as_operator(internal, "/api/openapi.json").await;
    assert_eq!(status, 200);
    let document: Value = serde_json::from_str(&document).expect("the OpenAPI document");
    assert!(document["paths"]["/api/rooms"].is_object(), "{document}");
    // Without a token the API still refuses: the internal address is no way around it.
    let (status, _) = get(internal, "/api/rooms").await.expect("GET /api/rooms");
    assert_eq!(status, 401);

    // The public address: the same paths are not there, even with the operator's token.
    for path in [
        "/metrics",
        "/api/counts",
        "/api/rooms",
        "/api/rooms/standup/participants",
        "/api/openapi.json",
        "/api",
        "/api/",
        "/api/no/such/call",
    ] {
        let (status, body) = get_as_operator(public, path).await;
        assert_eq!(status, 404, "{path} on the public address: {body}");
        assert!(!body.contains("switchyard_"), "{path}: {body}");
    }
    // What browsers need stays public, and only there.
    let (status, page) = get(public, "/").await.expect("GET /");
    assert_eq!(status, 200);
    assert!(page.contains("<title>"), "the client page: {page}");
    for path in ["/", "/ws", "/index.html"] {
        let (status, _) = get(internal, path)
            .await
            .expect("GET on the internal address");
        assert_eq!(status, 404, "{path} on the internal address");
    }
    for address in [public, internal] {
        assert_eq!(
            get(address, "/healthz").await.expect("GET /healthz"),
            (200, "ok\n".to_owned()),
            "/healthz on {address}"
        );
    }

    // An idle connection to each listener, open while the server shuts down: both close.
    let mut idle = Vec::new();
    for address in [public, internal] {
        idle.push(TcpStream::connect(address).await.expect("a connection"));
    }
    server.shutdown().await.expect("the server shuts down");
    for (mut stream, address) in idle.into_iter().zip([public, internal]) {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut byte))
            .await
            .unwrap_or_else(|_| panic!("the connection to {address} stays open"));
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "{address} closed the connection: {read:?}"
        );
    }
    for address in [public, internal] {
        assert!(
            TcpStream::connect(address).await.is_err(),
            "{address} still accepts after the shutdown"
        );
    }
    ada.vanish().await;
    // Neither listener left a task behind.
    wait_for_tasks(baseline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_internal_address_everything_is_served_on_the_one_listener() {
    let server = server().await;
    assert_eq!(server.internal_addr(), None);
    let address = server.local_addr();
    for path in [
        "/metrics",
        "/api/counts",
        "/api/openapi.json",
        "/healthz",
        "/",
    ] {
        let (status, _) = get(address, path).await.expect("a response");
        assert_eq!(status, 200, "{path}");
    }
    server.shutdown().await.expect("the server shuts down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_that_fills_the_public_listener_leaves_the_internal_one_open() {
    let mut config = Config::loopback();
    config.limits.connections_per_ip = None;
    config.limits.max_connections = Some(8);
    config.http.internal_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let server = server_with(config).await;
    let internal = server.internal_addr().expect("an internal listener");
    let metrics = &server.context().metrics.http;

    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(
            TcpStream::connect(server.local_addr())
                .await
                .expect("a connection"),
        );
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while metrics.open_connections() < 8 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the flood never filled the cap"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The public listener is full: the next connection is closed at once.
    let mut beyond = TcpStream::connect(server.local_addr())
        .await
        .expect("a connection");
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(PATIENCE, beyond.read(&mut byte))
        .await
        .expect("closed, not left open");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // Prometheus still gets in.
    let (status, body) = get(internal, "/metrics").await.expect("/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("switchyard_http_connections"), "{body}");
    drop(held);
}

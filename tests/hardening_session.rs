//! A session's lifetime on the open internet: sockets that never join, participants that never
//! set up media, clients that vanish or stop reading, and frames that break the WebSocket
//! protocol are each given up on within their deadline, with their own error and close code,
//! and the room sees them leave.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::{PATIENCE, camera_and_microphone, server_with, wait_for_flowing_tracks};
use futures::{SinkExt, StreamExt};
use loadtest::{ClientError, Participant, ParticipantOptions};
use serde_json::json;
use switchyard::signal::protocol::{ErrorCode, ServerMessage};
use switchyard::{Config, RunningServer};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

type Socket = WebSocketStream<TcpStream>;

/// An offer without media sections: what a client that publishes nothing sends.
const EMPTY_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";

/// An offer that publishes one video track, from a client that will never connect.
const VIDEO_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    a=group:BUNDLE 0\r\na=msid-semantic: WMS stream\r\n\
    m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\n\
    a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
    a=fingerprint:sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89\r\n\
    a=setup:actpass\r\na=mid:0\r\na=sendonly\r\na=msid:stream camera\r\na=rtcp-mux\r\n\
    a=rtpmap:96 VP8/90000\r\na=ssrc:1000 cname:publisher\r\n";

/// How the server ended a socket, as its client saw it.
#[derive(Debug)]
struct Ending {
    /// Every server message before the end.
    messages: Vec<ServerMessage>,
    /// The close frame's code; `None` when the socket ended without one.
    code: Option<u16>,
}

impl Ending {
    fn error_codes(&self) -> Vec<ErrorCode> {
        self.messages
            .iter()
            .filter_map(|message| match message {
                ServerMessage::Error { code, .. } => Some(*code),
                _ => None,
            })
            .collect()
    }
}

/// Opens a WebSocket to `server`, from `source` when given (the socket is bound before it
/// connects), with a small receive buffer when `receive_buffer` is given.
async fn open_from(
    server: &RunningServer,
    source: Option<Ipv4Addr>,
    receive_buffer: Option<u32>,
) -> Socket {
    let socket = TcpSocket::new_v4().expect("a TCP socket");
    if let Some(source) = source {
        socket
            .bind(SocketAddr::from((source, 0)))
            .expect("bind the source address");
    }
    if let Some(bytes) = receive_buffer {
        socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
    }
    let stream = socket.connect(server.local_addr()).await.expect("connect");
    let (socket, _) = tokio_tungstenite::client_async(server.websocket_url(), stream)
        .await
        .expect("the WebSocket handshake");
    socket
}

async fn open(server: &RunningServer) -> Socket {
    open_from(server, None, None).await
}

async fn send(socket: &mut Socket, message: serde_json::Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .expect("sent");
}

/// The next server message; pings are answered (by reading) and skipped.
async fn next_message(socket: &mut Socket) -> ServerMessage {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                return serde_json::from_str(&text).expect("a server message");
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

/// Reads until the socket ends, within `PATIENCE`.
async fn read_until_closed(socket: &mut Socket) -> Ending {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut messages = Vec::new();
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("the server closes the socket in time");
        match frame {
            Some(Ok(Message::Text(text))) => {
                messages.push(serde_json::from_str(&text).expect("a server message"));
            }
            Some(Ok(Message::Close(frame))) => {
                return Ending {
                    messages,
                    code: frame.map(|frame| u16::from(frame.code)),
                };
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                return Ending {
                    messages,
                    code: None,
                };
            }
        }
    }
}

/// Joins `room` over a raw socket; returns it and the participant id.
async fn join_raw(server: &RunningServer, room: &str, name: &str) -> (Socket, String) {
    join_raw_on(open(server).await, room, name).await
}

async fn join_raw_on(mut socket: Socket, room: &str, name: &str) -> (Socket, String) {
    send(
        &mut socket,
        json!({"type": "join", "room": room, "name": name}),
    )
    .await;
    match next_message(&mut socket).await {
        ServerMessage::Joined { participant, .. } => (socket, participant.to_string()),
        other => panic!("expected joined, got {other:?}"),
    }
}

/// Sends `sdp` as an offer and waits for its answer.
async fn offer(socket: &mut Socket, sdp: &str) {
    send(socket, json!({"type": "offer", "sdp": sdp})).await;
    match next_message(socket).await {
        ServerMessage::Answer { .. } => {}
        other => panic!("expected an answer, got {other:?}"),
    }
}

async fn join(server: &RunningServer, room: &str, name: &str) -> Participant {
    common::join(server, room, name, vec![]).await
}

async fn wait_until_left(observer: &Participant, who: &str) {
    observer
        .wait_until(&format!("{who} leaves"), PATIENCE, |observed| {
            observed.messages.iter().any(|message| {
                matches!(message, ServerMessage::ParticipantLeft { participant } if participant == who)
            })
        })
        .await
        .expect("the others see it leave");
}

async fn wait_for_sessions(server: &RunningServer, expected: usize) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    while server.context().drain.sessions() != expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} sessions open, expected {expected}",
            server.context().drain.sessions()
        );
        ticker.tick().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_never_joins_is_closed_with_the_join_timeout_code() {
    let mut config = Config::loopback();
    config.signaling.join_timeout = Duration::from_secs(1);
    let server = server_with(config).await;

    let opened = Instant::now();
    let mut socket = open(&server).await;
    let ending = read_until_closed(&mut socket).await;
    let waited = opened.elapsed();

    assert_eq!(ending.error_codes(), vec![ErrorCode::JoinTimeout]);
    assert_eq!(ending.code, Some(4004));
    assert!(
        waited >= Duration::from_millis(900),
        "closed after {waited:?}, before its deadline"
    );
    wait_for_sessions(&server, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_idle_sockets_are_all_closed_at_the_default_join_timeout() {
    const SOURCES: u8 = 10;
    const PER_SOURCE: usize = 50;
    let config = Config::loopback();
    let join_timeout = config.signaling.join_timeout;
    assert_eq!(
        join_timeout,
        Duration::from_secs(10),
        "the documented default"
    );
    let server = server_with(config).await;

    // 50 from each of 127.0.0.2 to 127.0.0.11: each source stays well below a per-address cap.
    let mut opening = tokio::task::JoinSet::new();
    for source in 0..SOURCES {
        let address = Ipv4Addr::new(127, 0, 0, 2 + source);
        let url_server = server.local_addr();
        let url = server.websocket_url();
        opening.spawn(async move {
            let mut sockets = Vec::with_capacity(PER_SOURCE);
            for _ in 0..PER_SOURCE {
                let socket = TcpSocket::new_v4().expect("a TCP socket");
                socket
                    .bind(SocketAddr::from((address, 0)))
                    .expect("bind the source address");
                let stream = socket.connect(url_server).await.expect("connect");
                let (socket, _) = tokio_tungstenite::client_async(url.as_str(), stream)
                    .await
                    .expect("the WebSocket handshake");
                sockets.push((Instant::now(), socket));
            }
            sockets
        });
    }
    let mut reading = tokio::task::JoinSet::new();
    while let Some(sockets) = opening.join_next().await {
        for (opened, mut socket) in sockets.expect("opened") {
            reading.spawn(async move {
                let ending = read_until_closed(&mut socket).await;
                (opened.elapsed(), ending)
            });
        }
    }
    assert_eq!(server.context().drain.sessions(), 500);

    let mut closed = 0;
    while let Some(result) = reading.join_next().await {
        let (after, ending) = result.expect("read");
        assert_eq!(ending.code, Some(4004), "{ending:?}");
        assert_eq!(ending.error_codes(), vec![ErrorCode::JoinTimeout]);
        assert!(
            after >= join_timeout - Duration::from_millis(500)
                && after <= join_timeout + Duration::from_secs(3),
            "a socket was closed {after:?} after it opened"
        );
        closed += 1;
    }
    assert_eq!(closed, 500);
    wait_for_sessions(&server, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_that_never_offers_is_removed_and_the_others_see_it_leave() {
    let mut config = Config::loopback();
    config.signaling.offer_timeout = Duration::from_secs(1);
    let server = server_with(config).await;
    // It offers (an empty offer: it publishes nothing), so it stays.
    let watcher = join(&server, "lobby", "watcher").await;
    let (mut lurker, lurker_id) = join_raw(&server, "lobby", "lurker").await;

    let ending = read_until_closed(&mut lurker).await;
    assert_eq!(ending.error_codes(), vec![ErrorCode::OfferTimeout]);
    assert_eq!(ending.code, Some(4004));
    wait_until_left(&watcher, &lurker_id).await;
    assert_eq!(server.counts().participants, 1, "the watcher stays");
    assert_eq!(watcher.observed().socket_closed, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_filled_by_joins_that_never_set_up_media_frees_up() {
    let mut config = Config::loopback();
    config.limits.max_participants_per_room = 5;
    config.signaling.offer_timeout = Duration::from_secs(1);
    config.signaling.media_timeout = Duration::from_secs(2);
    let server = server_with(config).await;

    let mut silent = Vec::new();
    for index in 0..3 {
        silent.push(
            join_raw(&server, "full", &format!("silent-{index}"))
                .await
                .0,
        );
    }
    let mut unconnected = Vec::new();
    for index in 0..2 {
        let (mut socket, _) = join_raw(&server, "full", &format!("unconnected-{index}")).await;
        offer(&mut socket, VIDEO_OFFER).await;
        unconnected.push(socket);
    }
    match Participant::join(
        ParticipantOptions::new(server.websocket_url(), "full", "latecomer").with_tracks(vec![]),
    )
    .await
    {
        Err(ClientError::Refused(ErrorCode::RoomFull, _)) => {}
        Err(other) => panic!("expected room_full, got {other}"),
        Ok(_) => panic!("the room had room"),
    }

    for socket in &mut silent {
        let ending = read_until_closed(socket).await;
        assert_eq!(ending.error_codes(), vec![ErrorCode::OfferTimeout]);
        assert_eq!(ending.code, Some(4004));
    }
    for socket in &mut unconnected {
        let ending = read_until_closed(socket).await;
        assert!(
            ending.error_codes().ends_with(&[ErrorCode::MediaTimeout]),
            "{ending:?}"
        );
        assert_eq!(ending.code, Some(4001));
    }

    // The room is free again, and participants that do set up their media stay.
    let first = common::join(&server, "full", "first", camera_and_microphone()).await;
    let second = common::join(&server, "full", "second", camera_and_microphone()).await;
    wait_for_flowing_tracks(&first, 2).await;
    wait_for_flowing_tracks(&second, 2).await;
    assert_eq!(server.counts().participants, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_stops_answering_pings_is_removed() {
    let mut config = Config::loopback();
    config.signaling.ping_interval = Duration::from_secs(1);
    config.signaling.ping_timeout = Duration::from_secs(1);
    let server = server_with(config).await;
    // The watcher's client answers pings: it must outlive the ghost, which joined later.
    let watcher = join(&server, "dark", "watcher").await;
    let (mut ghost, ghost_id) = join_raw(&server, "dark", "ghost").await;
    // Set up as far as it can (nothing to publish, nothing to receive): no setup deadline is
    // left to remove it; only its silence can.
    offer(&mut ghost, EMPTY_OFFER).await;
    let silent_since = Instant::now();

    // The ghost neither reads nor answers from here on.
    wait_until_left(&watcher, &ghost_id).await;
    assert!(silent_since.elapsed() >= Duration::from_secs(1));
    let ending = read_until_closed(&mut ghost).await;
    assert_eq!(ending.error_codes(), vec![ErrorCode::PingTimeout]);
    assert_eq!(ending.code, Some(4005));
    assert_eq!(
        watcher.observed().socket_closed,
        None,
        "the watcher answers"
    );
    assert_eq!(server.counts().participants, 1);

    // A client that reads answers every ping, and stays; the server answers its pings too.
    let (mut reader, _) = join_raw(&server, "dark", "reader").await;
    offer(&mut reader, EMPTY_OFFER).await;
    reader
        .send(Message::Ping(b"still there?".to_vec().into()))
        .await
        .expect("sent");
    let mut ponged = false;
    let mut pings = 0;
    while pings < 3 {
        match tokio::time::timeout(PATIENCE, reader.next()).await {
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            Ok(Some(Ok(Message::Pong(payload)))) => {
                assert_eq!(payload.as_ref(), b"still there?");
                ponged = true;
            }
            Ok(Some(Ok(Message::Text(_)))) => {}
            other => panic!("the socket stays open while it answers, got {other:?}"),
        }
    }
    assert!(ponged, "the server answered the client's ping");
    assert_eq!(server.counts().participants, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_gets_close_4002_ahead_of_its_queue() {
    const CHAT_CHARS: usize = 2000;
    const BATCH: usize = 20;
    const MAX_CHATS: usize = 10_000;
    let mut config = Config::loopback();
    config.limits.messages_per_second = 100_000;
    config.limits.message_burst = 100_000;
    // The sleeper answers no pings while it does not read; that is not what is tested here.
    config.signaling.ping_interval = Duration::from_secs(600);
    let outbox_bytes = config.signaling.outbox_bytes;
    let server = server_with(config).await;

    // A small receive buffer, so the server gives up after megabytes, not tens of them.
    let sleeper = open_from(&server, None, Some(8 * 1024)).await;
    let (mut sleeper, sleeper_id) = join_raw_on(sleeper, "flood", "sleeper").await;
    offer(&mut sleeper, EMPTY_OFFER).await;
    let talker = join(&server, "flood", "talker").await;

    let chat = json!({"type": "chat", "text": "x".repeat(CHAT_CHARS)}).to_string();
    let mut sent = 0;
    let gone = std::cell::Cell::new(false);
    while !gone.get() {
        assert!(
            sent < MAX_CHATS,
            "the server kept queueing for a client that does not read"
        );
        for _ in 0..BATCH {
            talker.send_raw(chat.clone());
        }
        sent += BATCH;
        // Paced by the talker's own copies coming back: a batch at a time waits for the
        // talker, well within its own outbox.
        talker
            .wait_until(
                "its chats back, or the sleeper gone",
                PATIENCE,
                |observed| {
                    let mut chats = 0;
                    for message in &observed.messages {
                        match message {
                            ServerMessage::ParticipantLeft { participant }
                                if *participant == sleeper_id =>
                            {
                                gone.set(true);
                                return true;
                            }
                            ServerMessage::Chat { .. } => chats += 1,
                            _ => {}
                        }
                    }
                    chats >= sent
                },
            )
            .await
            .expect("the talker reads");
    }
    assert_eq!(talker.observed().socket_closed, None, "the talker reads");

    // It reads again, at once: behind what was already on its way, the close frame.
    let ending = read_until_closed(&mut sleeper).await;
    assert_eq!(
        ending.code,
        Some(4002),
        "{} messages, then no close frame",
        ending.messages.len()
    );
    // The session gave up with about `outbox_bytes` of chats queued, and dropped them.
    let dropped_at_least = outbox_bytes / (CHAT_CHARS + 100) - 1;
    assert!(
        ending.messages.len() + dropped_at_least <= sent,
        "read {} of {sent}: the queue went out before the close",
        ending.messages.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_that_break_the_protocol_get_their_close_codes() {
    let server = server_with(Config::loopback()).await;

    let mut socket = open(&server).await;
    let not_utf8 = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    socket.send(Message::Frame(not_utf8)).await.expect("sent");
    assert_eq!(read_until_closed(&mut socket).await.code, Some(1007));

    let (mut socket, _) = join_raw(&server, "strict", "ada").await;
    let stray_continuation = Frame::message(b"{}".to_vec(), OpCode::Data(Data::Continue), true);
    socket
        .send(Message::Frame(stray_continuation))
        .await
        .expect("sent");
    assert_eq!(read_until_closed(&mut socket).await.code, Some(1002));
    wait_for_sessions(&server, 0).await;
    assert_eq!(server.counts().participants, 0, "it left the room");
}

//! Graceful shutdown: every client is told, every session and connection is closed, and the
//! process exits 0 well within its bound, in the real binary and in process.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::process::{ServerProcess, free_port};
use common::{PATIENCE, camera_and_microphone, wait_for_flowing_tracks, wait_for_tasks};
use futures::{SinkExt, StreamExt};
use loadtest::{Observed, Participant, ParticipantOptions};
use switchyard::signal::protocol::ServerMessage;
use switchyard::{Config, Counts, Server};
use tokio_tungstenite::tungstenite::Message;

/// The bound the issue sets: the process is gone this soon after SIGTERM.
const EXIT_BOUND: Duration = Duration::from_secs(5);

async fn join(url: &str, room: &str, name: &str) -> Participant {
    Participant::join(ParticipantOptions::new(url, room, name).with_tracks(camera_and_microphone()))
        .await
        .expect("the participant joins")
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads a raw signaling socket to its end: the server messages, and the close code.
async fn read_until_closed(mut socket: Socket) -> (Vec<ServerMessage>, Option<u16>) {
    let mut heard = Vec::new();
    loop {
        let frame = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("the server closes the socket in time");
        match frame {
            Some(Ok(Message::Text(text))) => {
                heard.push(serde_json::from_str::<ServerMessage>(&text).expect("a server message"))
            }
            Some(Ok(Message::Close(frame))) => {
                // Reading on completes the closing handshake.
                let _ = tokio::time::timeout(PATIENCE, socket.next()).await;
                return (heard, frame.map(|frame| u16::from(frame.code)));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return (heard, None),
        }
    }
}

/// What a client must get: the `shutdown` message, and a socket that ends, with 1001 or with no
/// close frame at all. The close frame is sent, but a synthetic participant that is answering a
/// renegotiation offer at that moment (the others leaving the room trigger one) can see its
/// socket fail before it reads the frame (about one run in thirty); the raw socket below, which
/// sends nothing, checks the close code itself.
async fn wait_until_told_and_disconnected(participant: &Participant) {
    participant
        .wait_until(
            "the shutdown message and the socket closed",
            PATIENCE,
            was_told_and_disconnected,
        )
        .await
        .unwrap_or_else(|error| {
            let observed = participant.observed();
            panic!(
                "{error}: last messages {:?}, socket closed {:?}",
                observed.messages.iter().rev().take(4).collect::<Vec<_>>(),
                observed.socket_closed
            )
        });
}

fn was_told_and_disconnected(observed: &Observed) -> bool {
    observed
        .messages
        .iter()
        .any(|message| matches!(message, ServerMessage::Shutdown { .. }))
        && matches!(observed.socket_closed, Some(Some(1001) | None))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_call_tells_every_client_and_exits_zero() {
    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let args = [
        "--http".to_owned(),
        address.to_string(),
        "--media-ip".to_owned(),
        "127.0.0.1".to_owned(),
    ];
    let mut server = ServerProcess::start(address, &args, &[]).await;
    let url = server.websocket_url();
    let ada = join(&url, "standup", "ada").await;
    let brian = join(&url, "standup", "brian").await;
    wait_for_flowing_tracks(&ada, 2).await;
    wait_for_flowing_tracks(&brian, 2).await;

    let signalled = Instant::now();
    server.terminate();
    let status = server.wait_for_exit(EXIT_BOUND).await;
    let took = signalled.elapsed();
    let output = server.output();
    eprintln!("exited {took:?} after SIGTERM");
    let status =
        status.unwrap_or_else(|| panic!("still running {took:?} after SIGTERM:\n{output}"));
    assert!(status.success(), "exit status {status}:\n{output}");
    assert!(!output.contains("panicked"), "a panic:\n{output}");
    assert!(
        !output.contains("cut off") && !output.contains("overran"),
        "every session ended within the grace period:\n{output}"
    );
    for participant in [&ada, &brian] {
        wait_until_told_and_disconnected(participant).await;
    }
    ada.vanish().await;
    brian.vanish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_session_and_leaves_no_task_behind() {
    // Everything on the runtime before the server starts; the participants' own tasks are
    // gone once they are.
    let baseline = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let mut config = Config::loopback();
    config.shutdown_grace = Duration::from_secs(3);
    let server = Server::new(config)
        .start()
        .await
        .expect("the server starts");
    let url = server.websocket_url();
    let ada = join(&url, "drain", "ada").await;
    let brian = join(&url, "drain", "brian").await;
    wait_for_flowing_tracks(&ada, 2).await;
    wait_for_flowing_tracks(&brian, 2).await;
    // A socket that never joined is told too.
    let (idle, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("the socket opens");
    let context = std::sync::Arc::clone(server.context());
    assert_eq!(context.drain.sessions(), 3);
    let idle = tokio::spawn(read_until_closed(idle));

    server.shutdown().await.expect("the server shuts down");
    // Every client answered the server's close frame, so every session ended in time.
    assert_eq!(context.drain.sessions(), 0);
    assert_eq!(context.counts(), Counts::default());
    for participant in [&ada, &brian] {
        wait_until_told_and_disconnected(participant).await;
    }
    let (heard, close_code) = idle.await.expect("the reader ends");
    assert!(
        heard
            .iter()
            .any(|message| matches!(message, ServerMessage::Shutdown { .. })),
        "the idle socket got `shutdown`: {heard:?}"
    );
    assert_eq!(close_code, Some(1001));
    // The listener is closed: nobody new gets in.
    assert!(tokio_tungstenite::connect_async(&url).await.is_err());

    ada.vanish().await;
    brian.vanish().await;
    wait_for_tasks(baseline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_new_session_starts_once_the_drain_has_begun() {
    let server = Server::new(Config::loopback())
        .start()
        .await
        .expect("the server starts");
    let url = server.websocket_url();
    let (mut early, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("the socket opens");
    server.context().drain.begin(Duration::from_secs(3));

    // A join racing the drain is never accepted: it is refused (`shutting_down`) or overtaken
    // by `shutdown`, and the socket closes with 1001.
    early
        .send(Message::Text(
            r#"{"type": "join", "room": "late", "name": "late"}"#.into(),
        ))
        .await
        .expect("the join is sent");
    let (heard, close_code) = read_until_closed(early).await;
    assert!(
        heard
            .iter()
            .all(|message| !matches!(message, ServerMessage::Joined { .. })),
        "{heard:?}"
    );
    assert!(
        heard.iter().any(|message| matches!(
            message,
            ServerMessage::Shutdown { .. }
                | ServerMessage::Error {
                    code: switchyard::signal::protocol::ErrorCode::ShuttingDown,
                    ..
                }
        )),
        "{heard:?}"
    );
    assert_eq!(close_code, Some(1001));

    // A new WebSocket is refused before it upgrades.
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
        }
        other => panic!("expected 503, got {other:?}"),
    }
    server.shutdown().await.expect("the server shuts down");
}

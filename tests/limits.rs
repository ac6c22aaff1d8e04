//! Limits: a full room, a server with as many rooms as it allows, a client sending too fast and
//! a chat message too long each get a precise `error` and change nothing else; a client that
//! keeps flooding is disconnected.

mod common;

use std::time::Duration;

use common::{PATIENCE, join, server_with, wait_for_counts};
use loadtest::signaling::{self, Received, SignalingReceiver};
use loadtest::{ClientError, Participant, ParticipantOptions};
use serde_json::json;
use switchyard::signal::protocol::{ErrorCode, ServerMessage};
use switchyard::{Config, Counts, RunningServer};

async fn refused_join(server: &RunningServer, room: &str, name: &str) -> ErrorCode {
    match Participant::join(
        ParticipantOptions::new(server.websocket_url(), room, name).with_tracks(vec![]),
    )
    .await
    {
        Err(ClientError::Refused(code, message)) => {
            assert!(!message.is_empty());
            code
        }
        Ok(participant) => panic!("{name} joined {room}: {}", participant.id()),
        Err(other) => panic!("{name} failed otherwise: {other}"),
    }
}

async fn next_received(receiver: &mut SignalingReceiver) -> Received {
    tokio::time::timeout(PATIENCE, receiver.next())
        .await
        .expect("the server says something")
        .expect("the socket is open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_room_and_a_full_server_refuse_newcomers_and_nobody_else() {
    let mut config = Config::loopback();
    config.limits.max_participants_per_room = 2;
    config.limits.max_rooms = 2;
    let server = server_with(config).await;

    let ada = join(&server, "one", "ada", vec![]).await;
    let bob = join(&server, "one", "bob", vec![]).await;
    assert_eq!(
        refused_join(&server, "one", "cara").await,
        ErrorCode::RoomFull
    );
    let dan = join(&server, "two", "dan", vec![]).await;
    assert_eq!(
        refused_join(&server, "three", "eve").await,
        ErrorCode::TooManyRooms
    );
    wait_for_counts(
        &server,
        Counts {
            rooms: 2,
            participants: 3,
            ..Counts::default()
        },
    )
    .await;
    let announced = |participant: &Participant| -> Vec<String> {
        participant
            .observed()
            .messages
            .into_iter()
            .filter_map(|message| match message {
                ServerMessage::ParticipantJoined { participant } => Some(participant.name),
                _ => None,
            })
            .collect()
    };
    // A chat message comes back through the room after everything the room said before it.
    for member in [&ada, &bob] {
        member.send_raw(json!({"type": "chat", "text": "still here"}).to_string());
        member
            .wait_until("its own message back", PATIENCE, |observed| {
                observed.messages.iter().any(|message| {
                    matches!(message, ServerMessage::Chat { participant, .. } if participant == member.id())
                })
            })
            .await
            .expect("the room goes on");
    }
    assert_eq!(announced(&ada), vec!["bob"], "nobody refused was announced");
    assert!(announced(&bob).is_empty());

    // Room and server have space again once somebody leaves.
    bob.leave().await;
    let cara = join(&server, "one", "cara", vec![]).await;
    dan.leave().await;
    let eve = join(&server, "three", "eve", vec![]).await;

    for participant in [ada, cara, eve] {
        participant.leave().await;
    }
    wait_for_counts(&server, Counts::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_chat_message_is_refused_and_a_long_enough_one_passes() {
    let mut config = Config::loopback();
    config.limits.max_chat_bytes = 16;
    let server = server_with(config).await;
    let ada = join(&server, "room", "ada", vec![]).await;
    let bob = join(&server, "room", "bob", vec![]).await;

    // Eight two-byte characters fit in 16 bytes; nine do not.
    ada.send_raw(json!({"type": "chat", "text": "é".repeat(9)}).to_string());
    ada.send_raw(json!({"type": "chat", "text": "é".repeat(8)}).to_string());
    bob.wait_until("the message that fits", PATIENCE, |observed| {
        observed
            .messages
            .iter()
            .any(|message| matches!(message, ServerMessage::Chat { .. }))
    })
    .await
    .expect("a message of the largest size goes through");
    ada.wait_until("the refusal", PATIENCE, |observed| {
        !observed.errors().is_empty()
    })
    .await
    .expect("the long message is refused");
    assert_eq!(ada.observed().errors(), vec![ErrorCode::ChatTooLong]);
    let texts: Vec<String> = bob
        .observed()
        .messages
        .into_iter()
        .filter_map(|message| match message {
            ServerMessage::Chat { text, .. } => Some(text),
            _ => None,
        })
        .collect();
    assert_eq!(texts, vec!["é".repeat(8)], "the long one reached nobody");

    ada.leave().await;
    bob.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_over_the_rate_are_refused_and_the_session_goes_on() {
    let mut config = Config::loopback();
    config.limits.messages_per_second = 2;
    config.limits.message_burst = 5;
    let server = server_with(config).await;
    let (mut sender, mut receiver) = signaling::connect(&server.websocket_url()).await.unwrap();

    sender
        .send_raw(json!({"type": "join", "room": "room", "name": "ada"}).to_string())
        .await
        .unwrap();
    assert!(matches!(
        next_received(&mut receiver).await,
        Received::Message(ServerMessage::Joined { .. })
    ));
    // Nine messages at once: the join took one of the five the bucket holds, so four go
    // through (or a few more, should the bucket refill while they arrive) and the rest are
    // dropped. Five refusals or fewer stay within the client's allowance.
    const SENT: usize = 9;
    for index in 0..SENT {
        sender
            .send_raw(json!({"type": "chat", "text": format!("message {index}")}).to_string())
            .await
            .unwrap();
    }
    let (mut delivered, mut limited) = (Vec::new(), 0);
    while delivered.len() + limited < SENT {
        match next_received(&mut receiver).await {
            Received::Message(ServerMessage::Chat { text, .. }) => delivered.push(text),
            Received::Message(ServerMessage::Error { code, message }) => {
                assert_eq!(code, ErrorCode::RateLimited, "{message}");
                assert!(message.contains("2 a second"), "{message}");
                limited += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(delivered.len() >= 4, "{delivered:?}");
    assert!(limited >= 1, "some were dropped");
    let expected: Vec<String> = (0..delivered.len())
        .map(|index| format!("message {index}"))
        .collect();
    assert_eq!(delivered, expected, "the first ones went through, in order");

    // At the sustained rate the session goes on: one message every 600 ms is never refused
    // once the bucket has refilled, which the first delivered one shows.
    let mut spaced = tokio::time::interval(Duration::from_millis(600));
    spaced.tick().await;
    let mut through = 0;
    for attempt in 0..10 {
        spaced.tick().await;
        sender
            .send_raw(json!({"type": "chat", "text": format!("later {attempt}")}).to_string())
            .await
            .unwrap();
        match next_received(&mut receiver).await {
            Received::Message(ServerMessage::Chat { .. }) => through += 1,
            Received::Message(ServerMessage::Error { code, .. }) => {
                assert_eq!(code, ErrorCode::RateLimited);
                assert_eq!(through, 0, "once through, the sustained rate always passes");
            }
            other => panic!("unexpected {other:?}"),
        }
        if through == 3 {
            break;
        }
    }
    assert_eq!(through, 3, "the session went on");
    assert_eq!(server.counts().participants, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_keeps_flooding_is_disconnected() {
    let mut config = Config::loopback();
    config.limits.messages_per_second = 1;
    config.limits.message_burst = 3;
    let server = server_with(config).await;
    let (mut sender, mut receiver) = signaling::connect(&server.websocket_url()).await.unwrap();
    sender
        .send_raw(json!({"type": "join", "room": "room", "name": "ada"}).to_string())
        .await
        .unwrap();
    assert!(matches!(
        next_received(&mut receiver).await,
        Received::Message(ServerMessage::Joined { .. })
    ));
    // Far more than the bucket holds, at once. Sending may fail once the server has closed.
    for index in 0..50 {
        let frame = json!({"type": "chat", "text": format!("flood {index}")}).to_string();
        if sender.send_raw(frame).await.is_err() {
            break;
        }
    }
    let mut limited = 0;
    let close_code = loop {
        match next_received(&mut receiver).await {
            Received::Message(ServerMessage::Error { code, .. }) => {
                assert_eq!(code, ErrorCode::RateLimited);
                limited += 1;
            }
            Received::Message(ServerMessage::Chat { .. }) => {}
            Received::Closed(code) => break code,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(close_code, Some(1008), "policy violation");
    assert!(
        limited > 3,
        "told to slow down before being cut off ({limited} errors)"
    );
    wait_for_counts(&server, Counts::default()).await;
}

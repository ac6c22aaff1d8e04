//! Bad input gets a precise error and changes nothing else.

mod common;

use std::sync::atomic::Ordering;

use common::{
    PATIENCE, camera_and_microphone, join, server, wait_for_counts, wait_for_flowing_tracks,
};
use loadtest::signaling::{self, Received, SignalingReceiver};
use switchyard::Counts;
use switchyard::signal::protocol::{ErrorCode, ServerMessage};

async fn next_message(receiver: &mut SignalingReceiver) -> ServerMessage {
    match tokio::time::timeout(PATIENCE, receiver.next()).await {
        Ok(Some(Received::Message(message))) => message,
        other => panic!("expected a message, got {other:?}"),
    }
}

async fn expect_error(receiver: &mut SignalingReceiver, expected: ErrorCode) {
    match next_message(receiver).await {
        ServerMessage::Error { code, message } => {
            assert_eq!(code, expected, "{message}");
            assert!(!message.is_empty());
        }
        other => panic!("expected {expected:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_message_is_refused_and_the_session_goes_on() {
    let server = server().await;
    let (mut sender, mut receiver) = signaling::connect(&server.websocket_url()).await.unwrap();
    let candidate = r#"{"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0}"#;
    let before_join = [
        ("not json at all".to_owned(), ErrorCode::MalformedMessage),
        ("[1, 2, 3]".to_owned(), ErrorCode::MalformedMessage),
        (r#"{"type": "dance"}"#.to_owned(), ErrorCode::UnknownType),
        (
            r#"{"type": "join", "room": 5}"#.to_owned(),
            ErrorCode::MalformedMessage,
        ),
        (
            r#"{"type": "offer", "sdp": "v=0"}"#.to_owned(),
            ErrorCode::NotJoined,
        ),
        (
            format!(r#"{{"type": "candidate", "candidate": {candidate}}}"#),
            ErrorCode::NotJoined,
        ),
        (r#"{"type": "leave"}"#.to_owned(), ErrorCode::NotJoined),
        (
            r#"{"type": "chat", "text": "hello?"}"#.to_owned(),
            ErrorCode::NotJoined,
        ),
        (
            r#"{"type": "join", "room": "no spaces", "name": "Ada"}"#.to_owned(),
            ErrorCode::InvalidRoom,
        ),
        (
            format!(
                r#"{{"type": "join", "room": "{}", "name": "Ada"}}"#,
                "x".repeat(65)
            ),
            ErrorCode::InvalidRoom,
        ),
        (
            r#"{"type": "join", "room": "", "name": "Ada"}"#.to_owned(),
            ErrorCode::InvalidRoom,
        ),
        (
            r#"{"type": "join", "room": "fine", "name": "  "}"#.to_owned(),
            ErrorCode::InvalidName,
        ),
    ];
    for (frame, code) in before_join {
        sender.send_raw(frame).await.unwrap();
        expect_error(&mut receiver, code).await;
    }
    assert_eq!(
        server.counts(),
        Counts::default(),
        "no refused join left a trace"
    );

    sender
        .send_raw(r#"{"type": "join", "room": "fine", "name": "Ada"}"#.to_owned())
        .await
        .unwrap();
    assert!(matches!(
        next_message(&mut receiver).await,
        ServerMessage::Joined { .. }
    ));

    let after_join = [
        (
            r#"{"type": "join", "room": "other", "name": "Ada"}"#.to_owned(),
            ErrorCode::AlreadyJoined,
        ),
        (
            format!(r#"{{"type": "candidate", "candidate": {candidate}}}"#),
            ErrorCode::InvalidCandidate,
        ),
        (
            r#"{"type": "offer", "sdp": "this is not SDP"}"#.to_owned(),
            ErrorCode::InvalidSdp,
        ),
        (
            r#"{"type": "offer", "sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"}"#.to_owned(),
            ErrorCode::InvalidSdp,
        ),
        (
            r#"{"type": "answer", "sdp": "v=0"}"#.to_owned(),
            ErrorCode::UnexpectedAnswer,
        ),
        (
            r#"{"type": "mute", "track": "nothing", "muted": true}"#.to_owned(),
            ErrorCode::UnknownTrack,
        ),
        (
            r#"{"type": "offer"}"#.to_owned(),
            ErrorCode::MalformedMessage,
        ),
    ];
    for (frame, code) in after_join {
        sender.send_raw(frame).await.unwrap();
        expect_error(&mut receiver, code).await;
    }
    assert_eq!(
        server.counts(),
        Counts {
            rooms: 1,
            participants: 1,
            peers: 0,
            publications: 0,
            subscriptions: 0
        },
        "a refused offer leaves no connection behind"
    );
    assert!(
        server
            .context()
            .metrics
            .signaling_errors
            .load(Ordering::Relaxed)
            >= 18
    );

    sender
        .send_raw(r#"{"type": "leave"}"#.to_owned())
        .await
        .unwrap();
    assert_eq!(
        tokio::time::timeout(PATIENCE, receiver.next())
            .await
            .unwrap(),
        Some(Received::Closed(Some(1000)))
    );
    wait_for_counts(&server, Counts::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_mid_call_changes_nothing_for_anybody() {
    let server = server().await;
    let ada = join(&server, "steady", "ada", camera_and_microphone()).await;
    let brian = join(&server, "steady", "brian", camera_and_microphone()).await;
    for participant in [&ada, &brian] {
        wait_for_flowing_tracks(participant, 2).await;
    }
    let counts = server.counts();
    let (ada_errors, ada_packets) = (ada.observed().errors().len(), total_packets(&ada));

    ada.send_raw(r#"{"type": "offer", "sdp": "garbage"}"#);
    ada.send_raw(
        r#"{"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=sendonly\r\n"}"#,
    );
    ada.send_raw(
        r#"{"type": "candidate", "candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "no-such-mid"}}"#,
    );
    ada.send_raw(r#"{"type": "candidate", "candidate": {"candidate": "not a candidate", "sdpMLineIndex": 0}}"#);
    ada.send_raw(r#"{"type": "answer", "sdp": "v=0"}"#);
    ada.send_raw(r#"{"type": "join", "room": "steady", "name": "again"}"#);
    ada.wait_until("six errors", PATIENCE, |observed| {
        observed.errors().len() == ada_errors + 6
    })
    .await
    .expect("each bad message is refused");
    assert_eq!(
        ada.observed().errors()[ada_errors..],
        [
            ErrorCode::InvalidSdp,
            ErrorCode::InvalidSdp,
            ErrorCode::InvalidCandidate,
            ErrorCode::InvalidCandidate,
            ErrorCode::UnexpectedAnswer,
            ErrorCode::AlreadyJoined,
        ]
    );
    ada.wait_until("media still flowing", PATIENCE, |observed| {
        observed
            .received
            .values()
            .map(|track| track.packets)
            .sum::<u64>()
            > ada_packets + 50
    })
    .await
    .expect("the call goes on");
    assert_eq!(server.counts(), counts);
    assert!(
        brian.observed().errors().is_empty(),
        "the other participant noticed nothing"
    );

    ada.leave().await;
    brian.leave().await;
    wait_for_counts(&server, Counts::default()).await;
}

fn total_packets(participant: &loadtest::Participant) -> u64 {
    participant
        .observed()
        .received
        .values()
        .map(|track| track.packets)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_the_socket_with_1009() {
    let server = server().await;
    let (mut sender, mut receiver) = signaling::connect(&server.websocket_url()).await.unwrap();
    sender
        .send_raw(r#"{"type": "join", "room": "big", "name": "Ada"}"#.to_owned())
        .await
        .unwrap();
    assert!(matches!(
        next_message(&mut receiver).await,
        ServerMessage::Joined { .. }
    ));
    let huge = format!(
        r#"{{"type": "offer", "sdp": "{}"}}"#,
        "a".repeat(1024 * 1024)
    );
    let _ = sender.send_raw(huge).await;
    assert_eq!(
        tokio::time::timeout(PATIENCE, receiver.next())
            .await
            .unwrap(),
        Some(Received::Closed(Some(1009)))
    );
    wait_for_counts(&server, Counts::default()).await;
}

/// Expects an `error` with `expected` whose message mentions `mentions`.
async fn expect_error_mentioning(
    receiver: &mut SignalingReceiver,
    expected: ErrorCode,
    mentions: &str,
) {
    match next_message(receiver).await {
        ServerMessage::Error { code, message } => {
            assert_eq!(code, expected, "{message}");
            assert!(
                message.contains(mentions),
                "`{message}` should mention `{mentions}`"
            );
        }
        other => panic!("expected {expected:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_and_repeated_keys_are_malformed_and_the_session_goes_on() {
    let server = server().await;
    let (mut sender, mut receiver) = signaling::connect(&server.websocket_url()).await.unwrap();

    // Before `join`, a `leave` would be `not_joined`: `malformed_message` shows it was refused
    // as it was read, and a refused `join` leaves the socket free to join.
    let before_join = [
        (r#"{"type": "leave", "to": "x"}"#, "unknown field `to`"),
        (
            r#"{"type": "join", "room": "fine", "name": "Ada", "admin": true}"#,
            "unknown field `admin`",
        ),
        (
            r#"{"type": "join", "room": "fine", "room": "other", "name": "Ada"}"#,
            "duplicate key `room`",
        ),
        (
            r#"{"type": "join", "type": "leave", "room": "fine", "name": "Ada"}"#,
            "duplicate key `type`",
        ),
    ];
    for (frame, mentions) in before_join {
        sender.send_raw(frame.to_owned()).await.unwrap();
        expect_error_mentioning(&mut receiver, ErrorCode::MalformedMessage, mentions).await;
    }
    assert_eq!(server.counts(), Counts::default(), "nobody joined");

    sender
        .send_raw(r#"{"type": "join", "room": "fine", "name": "Ada"}"#.to_owned())
        .await
        .unwrap();
    let ServerMessage::Joined { participant, .. } = next_message(&mut receiver).await else {
        panic!("expected joined");
    };

    // Every type, with a field it does not have or a key given twice. A `leave` refused so
    // does not leave, and a `chat` refused so reaches nobody.
    let after_join = [
        (r#"{"type": "leave", "to": "x"}"#, "unknown field `to`"),
        (
            r#"{"type": "leave", "type": "leave"}"#,
            "duplicate key `type`",
        ),
        (
            r#"{"type": "chat", "text": "hi", "to": "PA_1"}"#,
            "unknown field `to`",
        ),
        (
            r#"{"type": "chat", "text": "hi", "text": "bye"}"#,
            "duplicate key `text`",
        ),
        (
            r#"{"type": "mute", "track": "t", "muted": true, "for": "all"}"#,
            "unknown field `for`",
        ),
        (
            r#"{"type": "offer", "sdp": "v=0", "x": 1}"#,
            "unknown field `x`",
        ),
        (
            r#"{"type": "answer", "sdp": "v=0", "x": 1}"#,
            "unknown field `x`",
        ),
        (
            r#"{"type": "candidate", "candidate": {"candidate": "", "sdpMid": "0", "port": 9}}"#,
            "unknown field `port`",
        ),
        (
            r#"{"type": "candidate", "candidate": {"candidate": "", "sdpMid": "0", "sdpMid": "1"}}"#,
            "duplicate key `sdpMid`",
        ),
        (
            r#"{"type": "join", "room": "other", "name": "Ada", "x": 1}"#,
            "unknown field `x`",
        ),
    ];
    for (frame, mentions) in after_join {
        sender.send_raw(frame.to_owned()).await.unwrap();
        expect_error_mentioning(&mut receiver, ErrorCode::MalformedMessage, mentions).await;
    }

    // The session still serves the next valid message: a chat comes back, the only one.
    sender
        .send_raw(r#"{"type": "chat", "text": "still here"}"#.to_owned())
        .await
        .unwrap();
    match next_message(&mut receiver).await {
        ServerMessage::Chat {
            participant: sender_id,
            text,
            ..
        } => {
            assert_eq!(sender_id, participant);
            assert_eq!(text, "still here");
        }
        other => panic!("expected the chat back, got {other:?}"),
    }
    assert_eq!(server.counts().participants, 1);
    sender
        .send_raw(r#"{"type": "leave"}"#.to_owned())
        .await
        .unwrap();
    assert_eq!(
        tokio::time::timeout(PATIENCE, receiver.next())
            .await
            .unwrap(),
        Some(Received::Closed(Some(1000)))
    );
    wait_for_counts(&server, Counts::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invisible_and_reordering_names_are_refused_and_the_session_goes_on() {
    let server = server().await;
    let (mut sender, mut receiver) = signaling::connect(&server.websocket_url()).await.unwrap();
    let names = [
        ("\u{200B}", "U+200B"),
        ("\u{FEFF}\u{FEFF}", "U+FEFF"),
        ("\u{3164}", "U+3164"),
        ("\u{115F}\u{1160}", "U+115F"),
        ("\u{FFA0}", "U+FFA0"),
        ("\u{2800}", "U+2800"),
        ("\u{301}\u{301}", "U+0301"),
        ("\u{202E}nimdA", "U+202E"),
        ("Ada\u{202E}", "U+202E"),
        ("\u{202A}Ada\u{202C}", "U+202A"),
        ("\u{2067}Ada\u{2069}", "U+2067"),
        ("Ada\u{200B}", "U+200B"),
        ("Ada\u{0}", "U+0000"),
    ];
    for (name, mentions) in names {
        let frame = serde_json::json!({"type": "join", "room": "names", "name": name});
        sender.send_raw(frame.to_string()).await.unwrap();
        expect_error_mentioning(&mut receiver, ErrorCode::InvalidName, mentions).await;
    }
    assert_eq!(server.counts(), Counts::default(), "nobody joined");

    // Right-to-left names are names like any.
    let frame = serde_json::json!({"type": "join", "room": "names", "name": " محمد علي "});
    sender.send_raw(frame.to_string()).await.unwrap();
    match next_message(&mut receiver).await {
        ServerMessage::Joined { name, .. } => assert_eq!(name, "محمد علي"),
        other => panic!("expected joined, got {other:?}"),
    }
    assert_eq!(server.counts().participants, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_with_control_or_reordering_characters_is_refused_and_reaches_nobody() {
    let server = server().await;
    let ada = join(&server, "chat-rules", "ada", vec![]).await;
    let bob = join(&server, "chat-rules", "bob", vec![]).await;

    let refused = [
        "nul\u{0}byte",
        "\u{1B}[2J\u{1B}[Hcleared",
        "bell\u{7}",
        "c1\u{9B}31m",
        "see file\u{202E}txt.exe",
        "\u{2067}isolated\u{2069}",
        "\u{200B}\u{3164}",
    ];
    for text in refused {
        ada.send_raw(serde_json::json!({"type": "chat", "text": text}).to_string());
    }
    let accepted = "שלום\nline two\tand a tab";
    ada.send_raw(serde_json::json!({"type": "chat", "text": accepted}).to_string());
    bob.wait_until("the valid message", PATIENCE, |observed| {
        observed
            .messages
            .iter()
            .any(|message| matches!(message, ServerMessage::Chat { text, .. } if text == accepted))
    })
    .await
    .expect("the next valid message is served");
    ada.wait_until("every refusal", PATIENCE, |observed| {
        observed.errors().len() == refused.len()
    })
    .await
    .expect("each bad message is refused");
    assert_eq!(
        ada.observed().errors(),
        vec![ErrorCode::InvalidChat; refused.len()]
    );
    let chats_seen_by_bob: Vec<String> = bob
        .observed()
        .messages
        .into_iter()
        .filter_map(|message| match message {
            ServerMessage::Chat { text, .. } => Some(text),
            _ => None,
        })
        .collect();
    assert_eq!(chats_seen_by_bob, vec![accepted.to_owned()]);

    ada.leave().await;
    bob.leave().await;
    wait_for_counts(&server, Counts::default()).await;
}

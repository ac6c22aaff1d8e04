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

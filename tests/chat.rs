//! Chat: a message reaches everybody in its room, the sender included, stamped with the
//! server's time, and nobody in another room; a bad message is refused and changes nothing.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{PATIENCE, join, server};
use loadtest::Participant;
use serde_json::json;
use switchyard::signal::protocol::{ErrorCode, MAX_CHAT_CHARS, ServerMessage};

/// The chat messages a participant received: (sender, text, at).
fn chats(participant: &Participant) -> Vec<(String, String, u64)> {
    participant
        .observed()
        .messages
        .into_iter()
        .filter_map(|message| match message {
            ServerMessage::Chat {
                participant,
                text,
                at,
            } => Some((participant.to_string(), text, at)),
            _ => None,
        })
        .collect()
}

fn now_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    u64::try_from(since.as_millis()).expect("milliseconds fit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_the_whole_room_in_one_order_and_no_other_room() {
    let server = server().await;
    let ada = join(&server, "chat", "ada", vec![]).await;
    let bob = join(&server, "chat", "bob", vec![]).await;
    let elsewhere = join(&server, "other", "eve", vec![]).await;

    let before = now_ms();
    ada.send_raw(json!({"type": "chat", "text": "hello"}).to_string());
    bob.send_raw(json!({"type": "chat", "text": "hi\nthere"}).to_string());
    for participant in [&ada, &bob] {
        participant
            .wait_until("both messages", PATIENCE, |observed| {
                observed
                    .messages
                    .iter()
                    .filter(|message| matches!(message, ServerMessage::Chat { .. }))
                    .count()
                    == 2
            })
            .await
            .expect("the room's messages arrive");
    }
    let after = now_ms();

    let seen_by_ada = chats(&ada);
    assert_eq!(seen_by_ada, chats(&bob), "everybody sees one order");
    let mut texts: Vec<(&str, &str)> = seen_by_ada
        .iter()
        .map(|(sender, text, _)| (sender.as_str(), text.as_str()))
        .collect();
    texts.sort_unstable();
    let mut expected = vec![(ada.id(), "hello"), (bob.id(), "hi\nthere")];
    expected.sort_unstable();
    assert_eq!(texts, expected, "the sender gets its own message back");
    for (_, _, at) in &seen_by_ada {
        assert!(
            (before..=after).contains(at),
            "{at} is the server's time of receipt"
        );
    }
    assert!(
        seen_by_ada[0].2 <= seen_by_ada[1].2,
        "stamps follow the order"
    );

    // The other room's member joined before the messages and saw none of them.
    elsewhere.send_raw(json!({"type": "chat", "text": "anyone?"}).to_string());
    elsewhere
        .wait_until("its own message", PATIENCE, |observed| {
            observed
                .messages
                .iter()
                .any(|message| matches!(message, ServerMessage::Chat { .. }))
        })
        .await
        .expect("the message comes back");
    assert_eq!(
        chats(&elsewhere),
        vec![(
            elsewhere.id().to_owned(),
            "anyone?".to_owned(),
            chats(&elsewhere)[0].2
        )]
    );
    assert_eq!(chats(&ada).len(), 2, "nothing crossed from the other room");

    for participant in [ada, bob, elsewhere] {
        participant.leave().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_and_oversized_messages_are_refused() {
    let server = server().await;
    let ada = join(&server, "limits", "ada", vec![]).await;
    let bob = join(&server, "limits", "bob", vec![]).await;

    let longest = "é".repeat(MAX_CHAT_CHARS);
    for text in [String::new(), " \n\t".to_owned(), format!("{longest}x")] {
        ada.send_raw(json!({"type": "chat", "text": text}).to_string());
    }
    ada.send_raw(json!({"type": "chat", "text": longest}).to_string());
    bob.wait_until("the longest message", PATIENCE, |observed| {
        observed
            .messages
            .iter()
            .any(|message| matches!(message, ServerMessage::Chat { text, .. } if text.chars().count() == MAX_CHAT_CHARS))
    })
    .await
    .expect("a message of the largest size goes through");
    ada.wait_until("three refusals", PATIENCE, |observed| {
        observed.errors().len() == 3
    })
    .await
    .expect("each bad message is refused");
    assert_eq!(ada.observed().errors(), vec![ErrorCode::InvalidChat; 3]);
    assert_eq!(chats(&bob).len(), 1, "no refused message reached the room");

    for participant in [ada, bob] {
        participant.leave().await;
    }
}

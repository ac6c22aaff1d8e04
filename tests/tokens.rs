//! Access tokens: with a token key configured, only a valid token for the room gets in, and
//! what a participant may do follows its token's grants. Each refusal is a precise `error`
//! that changes nothing else.

mod common;

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use common::{PATIENCE, camera_and_microphone, server_with, wait_for_counts};
use loadtest::signaling::{self, Received, SignalingReceiver};
use loadtest::{Participant, ParticipantOptions, TrackSpec};
use serde_json::json;
use switchyard::auth::{Claims, Grants, TokenKey};
use switchyard::signal::protocol::{ErrorCode, ServerMessage};
use switchyard::{Config, Counts, RunningServer};

const KEY: &str = "the-integration-tests-token-key-0123456789";

fn config() -> Config {
    let mut config = Config::loopback();
    config.auth.token_key = Some(KEY.to_owned());
    config
}

fn claims(room: &str, identity: &str, grants: Grants) -> Claims {
    Claims::new(
        room,
        identity,
        grants,
        SystemTime::now(),
        Duration::from_secs(600),
    )
}

fn mint(claims: &Claims) -> String {
    TokenKey::new(KEY).unwrap().mint(claims).unwrap()
}

fn token(room: &str, identity: &str, grants: Grants) -> String {
    mint(&claims(room, identity, grants))
}

async fn join(
    server: &RunningServer,
    room: &str,
    token: String,
    tracks: Vec<TrackSpec>,
) -> Participant {
    Participant::join(
        ParticipantOptions::new(server.websocket_url(), room, "guest")
            .with_tracks(tracks)
            .with_token(token),
    )
    .await
    .expect("the participant joins")
}

async fn next_message(receiver: &mut SignalingReceiver) -> ServerMessage {
    match tokio::time::timeout(PATIENCE, receiver.next()).await {
        Ok(Some(Received::Message(message))) => message,
        other => panic!("expected a message, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_flawed_token_is_refused_with_its_own_error_and_changes_nothing() {
    let server = server_with(config()).await;
    let (mut sender, mut receiver) = signaling::connect(&server.websocket_url()).await.unwrap();
    let join = |token: Option<String>| {
        let mut message = json!({"type": "join", "room": "standup", "name": "Ada"});
        if let Some(token) = token {
            message["token"] = json!(token);
        }
        message.to_string()
    };

    let mut expired = claims("standup", "ada", Grants::ALL);
    expired.exp -= 3600;
    let wrong_signature = TokenKey::new("some-other-key-that-is-long-enough-too")
        .unwrap()
        .mint(&claims("standup", "ada", Grants::ALL))
        .unwrap();
    let cases = [
        (None, ErrorCode::TokenMissing, "token"),
        (Some(mint(&expired)), ErrorCode::TokenExpired, "expired"),
        (Some(wrong_signature), ErrorCode::TokenInvalid, "signature"),
        (
            Some(token("retro", "ada", Grants::ALL)),
            ErrorCode::TokenWrongRoom,
            "retro",
        ),
        (
            Some("not-a-token".to_owned()),
            ErrorCode::TokenInvalid,
            "invalid",
        ),
    ];
    for (token, expected, mentions) in cases {
        sender.send_raw(join(token)).await.unwrap();
        match next_message(&mut receiver).await {
            ServerMessage::Error { code, message } => {
                assert_eq!(code, expected, "{message}");
                assert!(
                    message.contains(mentions),
                    "`{message}` should mention `{mentions}`"
                );
            }
            other => panic!("expected {expected:?}, got {other:?}"),
        }
        assert_eq!(server.counts(), Counts::default(), "nothing changed");
    }

    // The same socket then joins with a good token, under the name and grants it carries.
    let mut good = claims(
        "standup",
        "ada",
        Grants {
            publish: false,
            subscribe: true,
            chat: true,
            admin: false,
            invite: false,
        },
    );
    good.name = Some("Ada Lovelace".to_owned());
    sender.send_raw(join(Some(mint(&good)))).await.unwrap();
    match next_message(&mut receiver).await {
        ServerMessage::Joined { name, grants, .. } => {
            assert_eq!(name, "Ada Lovelace", "the token's name wins over join's");
            assert_eq!(grants, good.grants);
        }
        other => panic!("expected joined, got {other:?}"),
    }
    assert_eq!(server.counts().participants, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_publish_the_tracks_are_refused_and_receiving_works() {
    let server = server_with(config()).await;
    let ada = join(
        &server,
        "room",
        token("room", "ada", Grants::ALL),
        camera_and_microphone(),
    )
    .await;
    let viewer_grants = Grants {
        publish: false,
        subscribe: true,
        chat: true,
        admin: false,
        invite: false,
    };
    // The viewer tries to publish anyway.
    let viewer = join(
        &server,
        "room",
        token("room", "viewer", viewer_grants),
        camera_and_microphone(),
    )
    .await;

    viewer
        .wait_until("Ada's tracks, flowing", PATIENCE, |observed| {
            observed.live_tracks().count() == 2
                && observed.live_tracks().all(|track| track.intact >= 20)
        })
        .await
        .expect("a participant that may not publish still receives");
    assert_eq!(
        viewer.observed().errors(),
        vec![ErrorCode::PublishNotAllowed],
        "its offer was refused, once, with a clear error"
    );
    assert!(
        viewer
            .observed()
            .messages
            .iter()
            .any(|message| matches!(message, ServerMessage::Answer { .. })),
        "the offer was still answered, so the connection carries what it receives"
    );
    wait_for_counts(
        &server,
        Counts {
            rooms: 1,
            participants: 2,
            peers: 2,
            publications: 2,
            subscriptions: 2,
        },
    )
    .await;
    let observed = ada.observed();
    assert!(
        !observed
            .messages
            .iter()
            .any(|message| matches!(message, ServerMessage::TrackPublished { .. })),
        "nothing of the viewer's was published"
    );
    assert_eq!(ada.received_packets(), 0);

    ada.leave().await;
    viewer.leave().await;
    wait_for_counts(&server, Counts::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_subscribe_nothing_is_received_and_publishing_works() {
    let server = server_with(config()).await;
    let ada = join(
        &server,
        "room",
        token("room", "ada", Grants::ALL),
        camera_and_microphone(),
    )
    .await;
    let presenter_grants = Grants {
        publish: true,
        subscribe: false,
        chat: true,
        admin: false,
        invite: false,
    };
    let presenter = join(
        &server,
        "room",
        token("room", "presenter", presenter_grants),
        camera_and_microphone(),
    )
    .await;
    let bob = join(&server, "room", token("room", "bob", Grants::ALL), vec![]).await;

    bob.wait_until("both publishers' tracks, flowing", PATIENCE, |observed| {
        observed.live_tracks().count() == 4
            && observed.live_tracks().all(|track| track.intact >= 20)
    })
    .await
    .expect("the others receive what the presenter publishes");
    ada.wait_until("the presenter's tracks, flowing", PATIENCE, |observed| {
        observed.live_tracks().count() == 2
            && observed.live_tracks().all(|track| track.intact >= 20)
    })
    .await
    .expect("the presenter's tracks reach Ada");
    wait_for_counts(
        &server,
        Counts {
            rooms: 1,
            participants: 3,
            peers: 3,
            publications: 4,
            subscriptions: 6,
        },
    )
    .await;

    // The presenter's own chat message comes back through the room after every event the room
    // sent it before, Ada's publications included.
    presenter.send_raw(json!({"type": "chat", "text": "can you see me?"}).to_string());
    presenter
        .wait_until("its chat message back", PATIENCE, |observed| {
            observed
                .messages
                .iter()
                .any(|message| matches!(message, ServerMessage::Chat { .. }))
        })
        .await
        .expect("the chat message comes back");
    let observed = presenter.observed();
    assert!(
        !observed.messages.iter().any(|message| matches!(
            message,
            ServerMessage::TrackPublished { .. } | ServerMessage::Offer { .. }
        )),
        "no track and no offer for one: {:?}",
        observed.messages
    );
    assert_eq!(presenter.received_packets(), 0);
    assert!(observed.errors().is_empty());

    for participant in [ada, presenter, bob] {
        participant.leave().await;
    }
    wait_for_counts(&server, Counts::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_chat_messages_are_refused_and_the_room_is_still_heard() {
    let server = server_with(config()).await;
    let ada = join(&server, "room", token("room", "ada", Grants::ALL), vec![]).await;
    let quiet_grants = Grants {
        publish: true,
        subscribe: true,
        chat: false,
        admin: false,
        invite: false,
    };
    let quiet = join(
        &server,
        "room",
        token("room", "quiet", quiet_grants),
        vec![],
    )
    .await;

    quiet.send_raw(json!({"type": "chat", "text": "may I?"}).to_string());
    quiet
        .wait_until("a refusal", PATIENCE, |observed| {
            !observed.errors().is_empty()
        })
        .await
        .expect("the message is refused");
    assert_eq!(quiet.observed().errors(), vec![ErrorCode::ChatNotAllowed]);

    ada.send_raw(json!({"type": "chat", "text": "welcome"}).to_string());
    for participant in [&quiet, &ada] {
        participant
            .wait_until("Ada's message", PATIENCE, |observed| {
                observed.messages.iter().any(
                    |message| matches!(message, ServerMessage::Chat { text, .. } if text == "welcome"),
                )
            })
            .await
            .expect("the others' messages still arrive");
    }
    let chats_seen_by_ada = ada
        .observed()
        .messages
        .iter()
        .filter(|message| matches!(message, ServerMessage::Chat { .. }))
        .count();
    assert_eq!(chats_seen_by_ada, 1, "the refused message reached nobody");

    ada.leave().await;
    quiet.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_session_with_the_same_identity_replaces_the_first() {
    let server = server_with(config()).await;
    let first = join(
        &server,
        "room",
        token("room", "ada", Grants::ALL),
        camera_and_microphone(),
    )
    .await;
    let bob = join(&server, "room", token("room", "bob", Grants::ALL), vec![]).await;
    bob.wait_until("Ada's first session's tracks", PATIENCE, |observed| {
        observed.live_tracks().count() == 2
    })
    .await
    .expect("Bob receives the first session");

    let second = join(&server, "room", token("room", "ada", Grants::ALL), vec![]).await;
    first
        .wait_until("the socket to close", PATIENCE, |observed| {
            observed.socket_closed.is_some()
        })
        .await
        .expect("the older session is ended");
    let observed = first.observed();
    assert_eq!(observed.errors(), vec![ErrorCode::Replaced]);
    assert_eq!(observed.socket_closed, Some(Some(4003)));

    let first_id = first.id().to_owned();
    let second_id = second.id().to_owned();
    bob.wait_until("the swap", PATIENCE, |observed| {
        let left = observed.messages.iter().any(|message| {
            matches!(message, ServerMessage::ParticipantLeft { participant } if *participant == first_id)
        });
        let joined = observed.messages.iter().any(|message| {
            matches!(message, ServerMessage::ParticipantJoined { participant } if participant.id == second_id)
        });
        left && joined && observed.live_tracks().count() == 0
    })
    .await
    .expect("Bob sees the old session leave, its tracks end, and the new one arrive");
    let joined_participants = second
        .observed()
        .messages
        .iter()
        .find_map(|message| match message {
            ServerMessage::Joined { participants, .. } => Some(participants.clone()),
            _ => None,
        });
    assert_eq!(
        joined_participants.map(|list| list
            .into_iter()
            .map(|p| p.id.to_string())
            .collect::<Vec<_>>()),
        Some(vec![bob.id().to_owned()]),
        "the new session does not see the old one"
    );
    wait_for_counts(
        &server,
        Counts {
            rooms: 1,
            participants: 2,
            peers: 1,
            publications: 0,
            subscriptions: 0,
        },
    )
    .await;

    first.vanish().await;
    second.leave().await;
    bob.leave().await;
    wait_for_counts(&server, Counts::default()).await;
}

/// A token with exactly this header and these claims, signed with [`KEY`]: what a backend with
/// any JWT library could send.
fn sign_raw(header: &serde_json::Value, claims: &serde_json::Value) -> String {
    sign_text(&header.to_string(), &claims.to_string())
}

/// [`sign_raw`] for JSON written by hand.
fn sign_text(header: &str, claims: &str) -> String {
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = jsonwebtoken::crypto::sign(
        signed.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(KEY.as_bytes()),
        jsonwebtoken::Algorithm::HS256,
    )
    .expect("HS256 signs");
    format!("{signed}.{signature}")
}

fn now() -> u64 {
    switchyard::auth::unix_seconds(SystemTime::now())
}

/// Sends `join` with `token` on a fresh socket's `sender` and expects `expected`, mentioning
/// `mentions`, with nothing changed on the server.
async fn refused_join(
    server: &RunningServer,
    sender: &mut signaling::SignalingSender,
    receiver: &mut SignalingReceiver,
    token: String,
    expected: ErrorCode,
    mentions: &str,
) {
    let join = json!({"type": "join", "room": "standup", "name": "Ada", "token": token});
    sender.send_raw(join.to_string()).await.unwrap();
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
    assert_eq!(server.counts(), Counts::default(), "nothing changed");
}

/// Joins with a good token on the same socket: the session still serves a valid message.
async fn joins_after_all(
    sender: &mut signaling::SignalingSender,
    receiver: &mut SignalingReceiver,
) {
    let join = json!({"type": "join", "room": "standup", "name": "Ada",
                      "token": token("standup", "ada", Grants::ALL)});
    sender.send_raw(join.to_string()).await.unwrap();
    assert!(matches!(
        next_message(receiver).await,
        ServerMessage::Joined { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_with_a_critical_header_extension_is_refused() {
    let server = server_with(config()).await;
    let (mut sender, mut receiver) = signaling::connect(&server.websocket_url()).await.unwrap();
    let claims = json!({"sub": "ada", "room": "standup", "exp": now() + 600});
    for header in [
        json!({"alg": "HS256", "typ": "JWT", "crit": ["urn:example:must-understand"],
               "urn:example:must-understand": true}),
        json!({"alg": "HS256", "crit": ["b64"], "b64": false}),
        json!({"alg": "HS256", "crit": ["exp"]}),
    ] {
        refused_join(
            &server,
            &mut sender,
            &mut receiver,
            sign_raw(&header, &claims),
            ErrorCode::TokenInvalid,
            "`crit`",
        )
        .await;
    }
    joins_after_all(&mut sender, &mut receiver).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_never_expires_or_lasts_too_long_is_refused() {
    let mut config = config();
    config.auth.max_token_lifetime = Duration::from_secs(2 * 3600);
    let server = server_with(config).await;
    let (mut sender, mut receiver) = signaling::connect(&server.websocket_url()).await.unwrap();
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let now = now();
    for claims in [
        json!({"sub": "ada", "room": "standup", "exp": u64::MAX}),
        json!({"sub": "ada", "room": "standup", "exp": u64::MAX, "iat": u64::MAX - 60}),
        json!({"sub": "ada", "room": "standup", "exp": now + 3 * 3600}),
        json!({"sub": "ada", "room": "standup", "exp": now + 3600, "iat": now - 3 * 3600}),
    ] {
        refused_join(
            &server,
            &mut sender,
            &mut receiver,
            sign_raw(&header, &claims),
            ErrorCode::TokenInvalid,
            "valid",
        )
        .await;
    }
    // Within the configured cap: in.
    let token = sign_raw(
        &header,
        &json!({"sub": "ada", "room": "standup", "exp": now + 3600, "iat": now}),
    );
    sender
        .send_raw(
            json!({"type": "join", "room": "standup", "name": "Ada", "token": token}).to_string(),
        )
        .await
        .unwrap();
    assert!(matches!(
        next_message(&mut receiver).await,
        ServerMessage::Joined { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_whose_name_hides_or_reorders_is_refused() {
    let server = server_with(config()).await;
    let (mut sender, mut receiver) = signaling::connect(&server.websocket_url()).await.unwrap();
    for name in [
        "\u{3164}",
        "\u{200B}",
        "Ada\u{202E}",
        "\u{2066}Ada\u{2069}",
        "\u{2800}",
    ] {
        let mut claims = claims("standup", "ada", Grants::ALL);
        claims.name = Some(name.to_owned());
        refused_join(
            &server,
            &mut sender,
            &mut receiver,
            mint(&claims),
            ErrorCode::TokenInvalid,
            "`name`",
        )
        .await;
    }
    joins_after_all(&mut sender, &mut receiver).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_and_tampered_tokens_are_refused() {
    let server = server_with(config()).await;
    let (mut sender, mut receiver) = signaling::connect(&server.websocket_url()).await.unwrap();
    // The claims of a good token under an `alg: none` header, without a signature.
    let good = token("standup", "ada", Grants::ALL);
    let claims = good.split('.').nth(1).unwrap();
    let unsigned = format!(
        "{}.{claims}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#)
    );
    refused_join(
        &server,
        &mut sender,
        &mut receiver,
        unsigned,
        ErrorCode::TokenInvalid,
        "HS256",
    )
    .await;
    // Claims changed, the good token's signature kept.
    let elevated = sign_raw(
        &json!({"alg": "HS256"}),
        &json!({"sub": "ada", "room": "standup", "exp": now() + 600, "grants": {"publish": true}}),
    );
    let good_signature = good.rsplit('.').next().unwrap();
    let (signed, _) = elevated.rsplit_once('.').unwrap();
    refused_join(
        &server,
        &mut sender,
        &mut receiver,
        format!("{signed}.{good_signature}"),
        ErrorCode::TokenInvalid,
        "signature",
    )
    .await;
    // `room` given twice, signed: elsewhere the second one would win.
    let twice = sign_text(
        r#"{"alg":"HS256"}"#,
        &format!(
            r#"{{"sub":"ada","room":"other","room":"standup","exp":{}}}"#,
            now() + 600
        ),
    );
    refused_join(
        &server,
        &mut sender,
        &mut receiver,
        twice,
        ErrorCode::TokenInvalid,
        "duplicate key `room`",
    )
    .await;
    joins_after_all(&mut sender, &mut receiver).await;
}

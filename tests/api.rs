//! The room service API: only an `admin` token gets in; it lists rooms and participants,
//! removes participants, mutes their tracks and closes rooms, and each of those reaches the
//! sessions concerned as the documentation says.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use common::http::request;
use common::{PATIENCE, camera_and_microphone, server_with, wait_for_counts};
use loadtest::{Participant, ParticipantOptions, TrackSpec};
use serde_json::Value;
use switchyard::auth::{Claims, Grants, TokenKey};
use switchyard::signal::protocol::{ErrorCode, ServerMessage};
use switchyard::{Config, Counts, RunningServer};

const KEY: &str = "the-api-tests-token-key-0123456789abcdef";

fn config() -> Config {
    let mut config = Config::loopback();
    config.auth.token_key = Some(KEY.to_owned());
    config
}

fn token_with(key: &str, room: &str, identity: &str, grants: Grants) -> String {
    let claims = Claims::new(
        room,
        identity,
        grants,
        SystemTime::now(),
        Duration::from_secs(600),
    );
    TokenKey::new(key).unwrap().mint(&claims).unwrap()
}

fn admin_token() -> String {
    token_with(KEY, "api", "operator", Grants::ADMIN)
}

/// Calls the API as an operator; returns the status and the body (JSON, or `Null` if empty).
async fn call(address: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    call_with(address, method, path, Some(&admin_token()), body).await
}

async fn call_with(
    address: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let authorization = token.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = authorization
        .iter()
        .map(|value| ("Authorization", value.as_str()))
        .collect();
    let (status, text) = request(address, method, path, &headers, body)
        .await
        .expect("the API answers");
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}"))
    };
    (status, json)
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("none")
}

async fn join(
    server: &RunningServer,
    room: &str,
    identity: &str,
    tracks: Vec<TrackSpec>,
) -> Participant {
    Participant::join(
        ParticipantOptions::new(server.websocket_url(), room, identity)
            .with_tracks(tracks)
            .with_token(token_with(KEY, room, identity, Grants::ALL)),
    )
    .await
    .expect("the participant joins")
}

async fn wait_for_removal(participant: &Participant) {
    participant
        .wait_until("its socket to close", PATIENCE, |observed| {
            observed.socket_closed.is_some()
        })
        .await
        .expect("the session ends");
    let observed = participant.observed();
    assert_eq!(observed.errors(), vec![ErrorCode::Removed]);
    assert_eq!(observed.socket_closed, Some(Some(4006)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_admin_token_gets_in_and_every_refusal_is_json() {
    let server = server_with(config()).await;
    let address = server.local_addr();
    let (status, body) = call_with(address, "GET", "/api/rooms", None, None).await;
    assert_eq!((status, error_code(&body)), (401, "token_missing"));
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );

    let foreign = token_with(
        "some-other-key-of-at-least-32-bytes!!",
        "api",
        "operator",
        Grants::ADMIN,
    );
    let (status, body) = call_with(address, "GET", "/api/rooms", Some(&foreign), None).await;
    assert_eq!((status, error_code(&body)), (401, "token_invalid"));
    let (status, body) = call_with(address, "GET", "/api/rooms", Some("not.a.jwt"), None).await;
    assert_eq!((status, error_code(&body)), (401, "token_invalid"));

    let participant = token_with(KEY, "standup", "ada", Grants::ALL);
    for (method, path) in [
        ("GET", "/api/rooms"),
        ("GET", "/api/rooms/standup/participants"),
        ("DELETE", "/api/rooms/standup"),
        ("DELETE", "/api/rooms/standup/participants/PA_1"),
    ] {
        let (status, body) = call_with(address, method, path, Some(&participant), None).await;
        assert_eq!(
            (status, error_code(&body)),
            (403, "not_admin"),
            "{method} {path}"
        );
    }

    let (status, body) = call(address, "GET", "/api/rooms", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["rooms"], Value::Array(vec![]));
    server.shutdown().await.unwrap();

    let open = server_with(Config::loopback()).await;
    let (status, body) = call(open.local_addr(), "GET", "/api/rooms", None).await;
    assert_eq!((status, error_code(&body)), (404, "api_disabled"));
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("token key"))
    );
    open.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_and_participants_are_listed_with_their_tracks() {
    let server = server_with(config()).await;
    let address = server.local_addr();
    let before = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let ada = join(&server, "standup", "ada", camera_and_microphone()).await;
    let bob = join(&server, "standup", "bob", vec![]).await;
    common::wait_for_flowing_tracks(&bob, 2).await;

    let (status, body) = call(address, "GET", "/api/rooms", None).await;
    assert_eq!(status, 200);
    let rooms = body["rooms"].as_array().unwrap();
    assert_eq!(rooms.len(), 1);
    assert_eq!(rooms[0]["name"], "standup");
    assert_eq!(rooms[0]["participants"], 2);
    let created = rooms[0]["created_at"].as_u64().unwrap();
    assert!(created >= before && created <= before + PATIENCE.as_millis() as u64);

    let (status, body) = call(address, "GET", "/api/rooms/standup/participants", None).await;
    assert_eq!(status, 200, "{body}");
    let participants = body["participants"].as_array().unwrap();
    assert_eq!(participants.len(), 2);
    let (first, second) = (&participants[0], &participants[1]);
    assert_eq!(first["id"], ada.id());
    assert_eq!(first["identity"], "ada");
    assert_eq!(first["name"], "ada");
    assert!(first["joined_at"].as_u64().unwrap() >= created);
    assert_eq!(first["connection"], "connected");
    let mut kinds: Vec<&str> = first["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|track| {
            assert_eq!(track["muted"], false);
            assert!(track["id"].as_str().is_some_and(|id| !id.is_empty()));
            track["kind"].as_str().unwrap()
        })
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["audio", "video"]);
    assert_eq!(second["id"], bob.id());
    assert_eq!(second["identity"], "bob");
    assert_eq!(second["tracks"], Value::Array(vec![]));

    let (status, body) = call(address, "GET", "/api/rooms/nowhere/participants", None).await;
    assert_eq!((status, error_code(&body)), (404, "unknown_room"));
    let (status, body) = call(
        address,
        "DELETE",
        "/api/rooms/standup/participants/PA_000000000000",
        None,
    )
    .await;
    assert_eq!((status, error_code(&body)), (404, "unknown_participant"));
    assert_eq!(server.counts().participants, 2, "nothing changed");

    ada.leave().await;
    bob.leave().await;
    wait_for_counts(&server, Counts::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_participant_is_told_and_closed_and_the_others_see_it_leave() {
    let server = server_with(config()).await;
    let ada = join(&server, "standup", "ada", camera_and_microphone()).await;
    let bob = join(&server, "standup", "bob", vec![]).await;
    common::wait_for_flowing_tracks(&bob, 2).await;

    let path = format!("/api/rooms/standup/participants/{}", ada.id());
    let (status, body) = call(server.local_addr(), "DELETE", &path, None).await;
    assert_eq!((status, body), (204, Value::Null));
    wait_for_removal(&ada).await;
    let ada_id = ada.id().to_owned();
    bob.wait_until("Ada to leave", PATIENCE, |observed| {
        observed.live_tracks().count() == 0
            && observed.messages.iter().any(|message| {
                matches!(message, ServerMessage::ParticipantLeft { participant } if *participant == ada_id)
            })
    })
    .await
    .expect("Bob sees Ada leave and her tracks end");
    wait_for_counts(
        &server,
        Counts {
            rooms: 1,
            participants: 1,
            peers: 1,
            publications: 0,
            subscriptions: 0,
        },
    )
    .await;
    let (status, body) = call(server.local_addr(), "DELETE", &path, None).await;
    assert_eq!((status, error_code(&body)), (404, "unknown_participant"));

    ada.vanish().await;
    bob.leave().await;
    wait_for_counts(&server, Counts::default()).await;
}

/// The packets `participant` received of `publisher`'s track `track`.
fn packets_of(participant: &Participant, publisher: &str, track: &str) -> u64 {
    received_of(&participant.observed(), publisher, track)
}

/// The packets received of `publisher`'s track `track` in `observed`.
fn received_of(observed: &loadtest::Observed, publisher: &str, track: &str) -> u64 {
    observed
        .received
        .values()
        .filter(|received| received.participant == publisher && received.track == track)
        .map(|received| received.packets)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_side_mute_stops_forwarding_and_everybody_is_told() {
    let server = server_with(config()).await;
    let address = server.local_addr();
    let ada = join(&server, "standup", "ada", camera_and_microphone()).await;
    let bob = join(&server, "standup", "bob", vec![]).await;
    common::wait_for_flowing_tracks(&bob, 2).await;
    let (_, body) = call(address, "GET", "/api/rooms/standup/participants", None).await;
    let track_of = |kind: &str| -> String {
        body["participants"][0]["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|track| track["kind"] == kind)
            .and_then(|track| track["id"].as_str())
            .unwrap()
            .to_owned()
    };
    let (video, audio) = (track_of("video"), track_of("audio"));
    let ada_id = ada.id().to_owned();
    let mute_path = format!("/api/rooms/standup/participants/{ada_id}/tracks/{video}/mute");

    for bad in [
        "",
        "{}",
        r#"{"muted": "yes"}"#,
        r#"{"muted": true, "x": 1}"#,
    ] {
        let (status, body) = call(address, "POST", &mute_path, Some(bad)).await;
        assert_eq!((status, error_code(&body)), (400, "invalid_body"), "{bad}");
    }
    let unknown = format!("/api/rooms/standup/participants/{ada_id}/tracks/nope/mute");
    let (status, body) = call(address, "POST", &unknown, Some(r#"{"muted": true}"#)).await;
    assert_eq!((status, error_code(&body)), (404, "unknown_track"));

    let (status, body) = call(address, "POST", &mute_path, Some(r#"{"muted": true}"#)).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["muted"], true);
    let told = |muted: bool| {
        let (ada_id, video) = (ada_id.clone(), video.clone());
        move |observed: &loadtest::Observed| {
            observed.messages.iter().any(|message| {
                matches!(message, ServerMessage::Mute { participant, track, muted: m }
                    if *participant == ada_id && *track == video && *m == muted)
            })
        }
    };
    bob.wait_until("Bob is told of the mute", PATIENCE, told(true))
        .await
        .expect("Bob gets `mute`");
    ada.wait_until("Ada is told of the mute", PATIENCE, told(true))
        .await
        .expect("Ada gets `mute` too");

    // Whatever was on its way when the mute came has arrived once the audio has gone on for a
    // while; from then on no video arrives.
    let audio_now = packets_of(&bob, &ada_id, &audio);
    bob.wait_until("more audio", PATIENCE, |observed| {
        received_of(observed, &ada_id, &audio) >= audio_now + 25
    })
    .await
    .expect("audio goes on");
    let video_after_mute = packets_of(&bob, &ada_id, &video);
    let audio_now = packets_of(&bob, &ada_id, &audio);
    bob.wait_until("more audio", PATIENCE, |observed| {
        received_of(observed, &ada_id, &audio) >= audio_now + 50
    })
    .await
    .expect("audio goes on");
    assert_eq!(
        packets_of(&bob, &ada_id, &video),
        video_after_mute,
        "no video is forwarded while muted"
    );
    let (_, body) = call(address, "GET", "/api/rooms/standup/participants", None).await;
    let muted: Vec<(&str, bool)> = body["participants"][0]["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|track| {
            (
                track["kind"].as_str().unwrap(),
                track["muted"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(muted.contains(&("video", true)) && muted.contains(&("audio", false)));

    let asked_before: u64 = ada.observed().keyframe_requests.values().sum();
    let (status, _) = call(address, "POST", &mute_path, Some(r#"{"muted": false}"#)).await;
    assert_eq!(status, 202);
    bob.wait_until("Bob is told of the unmute", PATIENCE, told(false))
        .await
        .expect("Bob gets `mute` false");
    bob.wait_until("video again", PATIENCE, |observed| {
        received_of(observed, &ada_id, &video) > video_after_mute
    })
    .await
    .expect("forwarding resumes");
    ada.wait_until("a keyframe request on unmuting", PATIENCE, |observed| {
        observed.keyframe_requests.values().sum::<u64>() > asked_before
    })
    .await
    .expect("the subscriber's decoder is brought back with a keyframe");

    ada.leave().await;
    bob.leave().await;
    wait_for_counts(&server, Counts::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_room_removes_everybody_and_every_count_goes_to_zero() {
    let server = server_with(config()).await;
    let ada = join(&server, "standup", "ada", camera_and_microphone()).await;
    let bob = join(&server, "standup", "bob", vec![]).await;
    let carol = join(&server, "other", "carol", vec![]).await;
    common::wait_for_flowing_tracks(&bob, 2).await;

    let (status, _) = call(server.local_addr(), "DELETE", "/api/rooms/standup", None).await;
    assert_eq!(status, 204);
    wait_for_removal(&ada).await;
    wait_for_removal(&bob).await;
    wait_for_counts(
        &server,
        Counts {
            rooms: 1,
            participants: 1,
            // Carol, alone and publishing nothing, has not negotiated media.
            peers: 0,
            publications: 0,
            subscriptions: 0,
        },
    )
    .await;
    let (status, body) = call(server.local_addr(), "DELETE", "/api/rooms/standup", None).await;
    assert_eq!((status, error_code(&body)), (404, "unknown_room"));

    let (status, _) = call(server.local_addr(), "DELETE", "/api/rooms/other", None).await;
    assert_eq!(status, 204);
    wait_for_removal(&carol).await;
    wait_for_counts(&server, Counts::default()).await;
    let (_, body) = call(server.local_addr(), "GET", "/api/rooms", None).await;
    assert_eq!(body["rooms"], Value::Array(vec![]));
    ada.vanish().await;
    bob.vanish().await;
    carol.vanish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_call() {
    let server = server_with(config()).await;
    let (status, body) =
        call_with(server.local_addr(), "GET", "/api/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert!(
        body["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3."))
    );
    let paths = body["paths"].as_object().expect("paths");
    let expected = [
        ("/api/rooms", "get"),
        ("/api/rooms/{room}", "delete"),
        ("/api/rooms/{room}/participants", "get"),
        ("/api/rooms/{room}/participants/{participant}", "delete"),
        (
            "/api/rooms/{room}/participants/{participant}/tracks/{track}/mute",
            "post",
        ),
        ("/api/invites", "post"),
        ("/api/rooms/{room}/invite", "post"),
    ];
    for (path, method) in expected {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path}"
        );
    }
    assert_eq!(paths.len(), expected.len());
    assert!(body["components"]["securitySchemes"]["bearer"].is_object());
    server.shutdown().await.unwrap();
}

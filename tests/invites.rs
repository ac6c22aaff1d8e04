//! Invite links: an operator's `POST /api/invites` and a participant's
//! `POST /api/rooms/{room}/invite` make a link token; each join with it is a new person, until
//! it has been used as often as it allows or expires; each guest gets a token of its own to
//! rejoin with.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use common::http::request;
use common::{PATIENCE, camera_and_microphone, server_with};
use loadtest::{ClientError, Participant, ParticipantOptions};
use serde_json::{Value, json};
use switchyard::auth::{Claims, Grants, InviteClaims, TokenKey};
use switchyard::signal::protocol::{ErrorCode, ServerMessage};
use switchyard::{Config, RunningServer};

const KEY: &str = "the-invite-tests-token-key-0123456789abc";

fn config() -> Config {
    let mut config = Config::loopback();
    config.auth.token_key = Some(KEY.to_owned());
    config
}

fn key() -> TokenKey {
    TokenKey::new(KEY).unwrap()
}

fn token(room: &str, identity: &str, grants: Grants) -> String {
    let claims = Claims::new(
        room,
        identity,
        grants,
        SystemTime::now(),
        Duration::from_secs(600),
    );
    key().mint(&claims).unwrap()
}

fn admin_token() -> String {
    token("api", "operator", Grants::ADMIN)
}

const INVITER: Grants = Grants {
    invite: true,
    ..Grants::ALL
};

/// Sends `method path` with a bearer `token` and a JSON `body`; the status and the JSON answer.
async fn call(
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

/// Creates an invite as an operator; panics unless it is made.
async fn invite(server: &RunningServer, body: Value) -> Value {
    let (status, link) = call(
        server.local_addr(),
        "POST",
        "/api/invites",
        Some(&admin_token()),
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(status, 201, "{link}");
    link
}

async fn join_with(
    server: &RunningServer,
    room: &str,
    name: &str,
    token: &str,
) -> Result<Participant, ClientError> {
    Participant::join(
        ParticipantOptions::new(server.websocket_url(), room, name)
            .with_tracks(camera_and_microphone())
            .with_token(token),
    )
    .await
}

fn refused_with(result: Result<Participant, ClientError>) -> ErrorCode {
    match result {
        Err(ClientError::Refused(code, _)) => code,
        Err(other) => panic!("refused otherwise: {other}"),
        Ok(_) => panic!("joined"),
    }
}

/// The grants and own token a participant's `joined` carried.
fn joined_grants_and_token(participant: &Participant) -> (Grants, Option<String>) {
    match participant.observed().messages.first() {
        Some(ServerMessage::Joined { grants, token, .. }) => (*grants, token.clone()),
        other => panic!("the first message is not `joined`: {other:?}"),
    }
}

async fn identities(server: &RunningServer, room: &str) -> Vec<String> {
    let operators = server.internal_addr().unwrap_or(server.local_addr());
    let (status, body) = call(
        operators,
        "GET",
        &format!("/api/rooms/{room}/participants"),
        Some(&admin_token()),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["participants"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|entry| entry["identity"].as_str().expect("an identity").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_guest_of_an_invite_is_a_new_person_until_it_is_used_up() {
    let server = server_with(config()).await;
    let link = invite(
        &server,
        json!({"room": "standup", "grants": {"publish": true, "subscribe": true},
               "expires_in_secs": 600, "max_uses": 2, "base_url": "https://meet.example.org/"}),
    )
    .await;
    let invite_token = link["token"].as_str().expect("a token").to_owned();
    assert_eq!(
        link["url"],
        format!("https://meet.example.org/?room=standup&token={invite_token}"),
        "{link}"
    );
    assert_eq!(link["max_uses"], 2);
    let expires_at = link["expires_at"].as_u64().expect("an expiry");
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        (now_ms + 590_000..=now_ms + 610_000).contains(&expires_at),
        "{expires_at} vs now {now_ms}"
    );

    let first = join_with(&server, "standup", "Guest one", &invite_token)
        .await
        .expect("the first guest joins");
    let second = join_with(&server, "standup", "Guest two", &invite_token)
        .await
        .expect("the second guest joins");
    let who = identities(&server, "standup").await;
    assert_eq!(who.len(), 2, "two people, neither replaced: {who:?}");
    assert_ne!(who[0], who[1]);
    assert!(
        who.iter().all(|identity| identity.starts_with("IN_")),
        "{who:?}"
    );
    let (grants, own_token) = joined_grants_and_token(&first);
    assert_eq!(
        grants,
        Grants {
            publish: true,
            subscribe: true,
            ..Grants::default()
        }
    );
    let own_token = own_token.expect("a guest gets a token of its own");
    assert!(joined_grants_and_token(&second).1.is_some());

    assert_eq!(
        refused_with(join_with(&server, "standup", "Guest three", &invite_token).await),
        ErrorCode::InviteUsedUp
    );

    // The first guest's connection drops; it rejoins with its own token, as the same person,
    // and the used-up invite is not asked again.
    let rejoined = join_with(&server, "standup", "Guest one", &own_token)
        .await
        .expect("the guest rejoins with its own token");
    first
        .wait_until("the older session to be replaced", PATIENCE, |observed| {
            observed.socket_closed.is_some()
        })
        .await
        .expect("replaced");
    assert_eq!(first.observed().errors(), vec![ErrorCode::Replaced]);
    let mut after = identities(&server, "standup").await;
    let mut before = who.clone();
    after.sort();
    before.sort();
    assert_eq!(after, before, "the same two people");
    rejoined.leave().await;
    second.leave().await;
    first.vanish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_admits_only_to_its_room_and_until_it_expires() {
    let server = server_with(config()).await;
    let link = invite(&server, json!({"room": "standup"})).await;
    let invite_token = link["token"].as_str().expect("a token");
    assert_eq!(link["max_uses"], 10, "the default");
    assert_eq!(
        link["grants"],
        json!({"publish": true, "subscribe": true, "chat": true})
    );
    assert_eq!(
        refused_with(join_with(&server, "other", "Guest", invite_token).await),
        ErrorCode::TokenWrongRoom
    );

    let mut expired = InviteClaims::new(
        "standup",
        Grants::ALL,
        5,
        SystemTime::now(),
        Duration::from_secs(60),
    );
    expired.exp -= 3600;
    expired.iat = expired.iat.map(|iat| iat - 3600);
    let expired = key().mint(&expired).unwrap();
    assert_eq!(
        refused_with(join_with(&server, "standup", "Guest", &expired).await),
        ErrorCode::TokenExpired
    );

    // Minted with the key but granting `admin`: not an invite the server honours.
    let mut admin_invite = InviteClaims::new(
        "standup",
        Grants::ADMIN,
        5,
        SystemTime::now(),
        Duration::from_secs(60),
    );
    admin_invite.grants.publish = true;
    let admin_invite = key().mint(&admin_invite).unwrap();
    assert_eq!(
        refused_with(join_with(&server, "standup", "Guest", &admin_invite).await),
        ErrorCode::TokenInvalid
    );

    // An invite is no bearer token for the API.
    let (status, body) = call(
        server.local_addr(),
        "GET",
        "/api/rooms",
        Some(invite_token),
        None,
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (401, "token_invalid"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_operator_invites_to_any_room_and_within_bounds() {
    let server = server_with(config()).await;
    let address = server.local_addr();
    let body = r#"{"room": "standup"}"#;
    let (status, answer) = call(address, "POST", "/api/invites", None, Some(body)).await;
    assert_eq!((status, error_code(&answer)), (401, "token_missing"));
    let inviter = token("standup", "ada", INVITER);
    let (status, answer) = call(address, "POST", "/api/invites", Some(&inviter), Some(body)).await;
    assert_eq!((status, error_code(&answer)), (403, "not_admin"));

    for (body, code) in [
        (
            json!({"room": "standup", "grants": {"admin": true}}),
            "invalid_body",
        ),
        (
            json!({"room": "standup", "grants": {"invite": true}}),
            "invalid_body",
        ),
        (json!({"room": "no spaces"}), "invalid_invite"),
        (
            json!({"room": "standup", "expires_in_secs": 86_401}),
            "invalid_invite",
        ),
        (
            json!({"room": "standup", "expires_in_secs": 0}),
            "invalid_invite",
        ),
        (json!({"room": "standup", "max_uses": 0}), "invalid_invite"),
        (
            json!({"room": "standup", "base_url": "javascript:alert(1)"}),
            "invalid_invite",
        ),
    ] {
        let (status, answer) = call(
            address,
            "POST",
            "/api/invites",
            Some(&admin_token()),
            Some(&body.to_string()),
        )
        .await;
        assert_eq!(
            (status, error_code(&answer)),
            (400, code),
            "{body}: {answer}"
        );
    }

    // Without a base URL, the link points at the address the call was sent to.
    let link = invite(&server, json!({"room": "standup"})).await;
    let url = link["url"].as_str().expect("a URL");
    assert!(
        url.starts_with(&format!("http://{address}/?room=standup&token=")),
        "{url}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_with_the_invite_grant_invites_to_its_own_room_only() {
    let mut config = config();
    config.http.internal_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let server = server_with(config).await;
    // The public address: where the browser client is, and the participant's call with it.
    let public = server.local_addr();
    let path = "/api/rooms/standup/invite";

    let (status, answer) = call(public, "POST", path, None, None).await;
    assert_eq!((status, error_code(&answer)), (401, "token_missing"));
    let plain = token("standup", "bob", Grants::ALL);
    let (status, answer) = call(public, "POST", path, Some(&plain), None).await;
    assert_eq!(
        (status, error_code(&answer)),
        (403, "invite_not_granted"),
        "{answer}"
    );
    let elsewhere = token("other", "ada", INVITER);
    let (status, answer) = call(public, "POST", path, Some(&elsewhere), None).await;
    assert_eq!((status, error_code(&answer)), (403, "token_wrong_room"));
    let (status, answer) = call(public, "POST", path, Some(&admin_token()), None).await;
    assert_eq!(
        (status, error_code(&answer)),
        (403, "token_wrong_room"),
        "an operator uses /api/invites"
    );
    let viewer = token(
        "standup",
        "vic",
        Grants {
            subscribe: true,
            invite: true,
            ..Grants::default()
        },
    );
    let (status, answer) = call(
        public,
        "POST",
        path,
        Some(&viewer),
        Some(r#"{"grants": {"publish": true, "subscribe": true}}"#),
    )
    .await;
    assert_eq!(
        (status, error_code(&answer)),
        (403, "grant_not_held"),
        "{answer}"
    );
    // Not on the public address: the operator's call.
    let authorization = format!("Bearer {}", admin_token());
    let (status, _) = request(
        public,
        "POST",
        "/api/invites",
        &[("Authorization", authorization.as_str())],
        Some(r#"{"room": "standup"}"#),
    )
    .await
    .expect("the public address answers");
    assert_eq!(status, 404);

    let inviter = token("standup", "ada", INVITER);
    let ada = join_with(&server, "standup", "Ada", &inviter)
        .await
        .expect("ada joins");
    let (grants, own_token) = joined_grants_and_token(&ada);
    assert!(grants.invite, "`joined` tells the client it may invite");
    assert_eq!(own_token, None, "ada has a token of her own already");

    let (status, link) = call(public, "POST", path, Some(&inviter), None).await;
    assert_eq!(status, 201, "{link}");
    assert_eq!(link["max_uses"], 10);
    let url = link["url"].as_str().expect("a URL");
    assert!(
        url.starts_with(&format!("http://{public}/?room=standup&token=")),
        "{url}"
    );
    let guest = join_with(
        &server,
        "standup",
        "Guest",
        link["token"].as_str().expect("a token"),
    )
    .await
    .expect("the guest joins ada's room");
    let (grants, _) = joined_grants_and_token(&guest);
    assert_eq!(grants, Grants::ALL, "ada's grants but `invite`");
    assert_eq!(identities(&server, "standup").await.len(), 2);

    // A viewer's invite gives no more than watching.
    let (status, link) = call(public, "POST", path, Some(&viewer), Some("")).await;
    assert_eq!(status, 201, "{link}");
    assert_eq!(
        link["grants"],
        json!({"publish": false, "subscribe": true, "chat": false})
    );
    guest.leave().await;
    ada.leave().await;
}

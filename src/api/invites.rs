//! Invite links: `POST /api/invites` for operators (an `admin` token, any room), and
//! `POST /api/rooms/{room}/invite` for a participant whose own token for that room grants
//! `invite`. Both answer a link token ([`InviteClaims`]) and the client page's address with it.
//!
//! The participant's call is the one route under `/api/` served on the public listener too:
//! the browser client calls it from the Invite button, and a browser can reach only the public
//! address. It is safe there because it takes no operator's token, only the participant's own,
//! and gives no more than that token does: its room, its grants (never `admin` or `invite`),
//! an expiry no later than its own.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use reqwest::Url;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::info;
use utoipa::ToSchema;

use crate::ServerContext;
use crate::api::auth::{Admin, bearer_token};
use crate::api::error::{ApiError, ErrorBody};
use crate::auth::invite::MAX_INVITE_USES;
use crate::auth::{Grants, InviteClaims, TokenError, TokenKey, unix_seconds};
use crate::signal::protocol::is_valid_room_name;

/// How long an invite link is valid when the call does not say.
pub const DEFAULT_INVITE_LIFETIME: Duration = Duration::from_secs(3600);

/// How many joins an invite link admits when the call does not say.
pub const DEFAULT_INVITE_USES: u32 = 10;

/// What an invite link lets each person it admits do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteGrants {
    /// May publish tracks.
    #[serde(default)]
    pub publish: bool,
    /// May receive the others' tracks.
    #[serde(default)]
    pub subscribe: bool,
    /// May send chat messages.
    #[serde(default)]
    pub chat: bool,
}

impl From<InviteGrants> for Grants {
    fn from(grants: InviteGrants) -> Self {
        Grants {
            publish: grants.publish,
            subscribe: grants.subscribe,
            chat: grants.chat,
            admin: false,
            invite: false,
        }
    }
}

impl From<Grants> for InviteGrants {
    fn from(grants: Grants) -> Self {
        InviteGrants {
            publish: grants.publish,
            subscribe: grants.subscribe,
            chat: grants.chat,
        }
    }
}

/// The body of `POST /api/invites`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    /// The room the link admits to.
    pub room: String,
    /// What each person it admits may do; `publish`, `subscribe` and `chat` when absent.
    #[serde(default)]
    pub grants: Option<InviteGrants>,
    /// How long the link is valid, in seconds: 1 to `auth.max_token_lifetime_secs`; 3600 when
    /// absent.
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
    /// How many joins it admits: 1 to 10000; 10 when absent.
    #[serde(default)]
    pub max_uses: Option<u32>,
    /// The address of the client page the link opens (`https://meet.example.org/`); when
    /// absent, the address this call was sent to.
    #[serde(default)]
    pub base_url: Option<String>,
}

/// The body of `POST /api/rooms/{room}/invite`, which may be empty.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomInviteRequest {
    /// What each person it admits may do: some of the caller's own grants; all of its
    /// `publish`, `subscribe` and `chat` when absent.
    #[serde(default)]
    pub grants: Option<InviteGrants>,
    /// How long the link is valid, in seconds; 3600 when absent. The link never outlives the
    /// caller's own token.
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
    /// How many joins it admits: 1 to 10000; 10 when absent.
    #[serde(default)]
    pub max_uses: Option<u32>,
}

/// A new invite link.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InviteLink {
    /// The room it admits to.
    pub room: String,
    /// The link's token: what `join` carries.
    pub token: String,
    /// The client page's address with the room and the token: what to send people.
    pub url: String,
    /// When it expires, in milliseconds since the Unix epoch.
    pub expires_at: u64,
    /// How many joins it admits.
    pub max_uses: u32,
    /// What each person it admits may do.
    pub grants: InviteGrants,
}

/// Creates an invite link to any room.
#[utoipa::path(
    post,
    path = "/api/invites",
    tag = "invites",
    security(("bearer" = [])),
    request_body = InviteRequest,
    responses(
        (status = 201, description = "The invite link", body = InviteLink),
        (status = 400, description = "The body is not an invite's, or asks for what an invite cannot be", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token does not grant `admin`", body = ErrorBody),
    )
)]
pub async fn create(
    admin: Admin,
    State(context): State<Arc<ServerContext>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<InviteLink>), ApiError> {
    let request: InviteRequest = read_body(&body)?;
    let key = context.token_key.as_ref().ok_or(ApiError::Disabled)?;
    if !is_valid_room_name(&request.room) {
        return Err(ApiError::InvalidInvite(
            "`room` must be 1 to 64 characters of A-Z, a-z, 0-9, `_` and `-`".to_owned(),
        ));
    }
    let grants = request.grants.map_or(Grants::ALL, Grants::from);
    let terms = Terms::new(
        grants,
        request.expires_in_secs,
        request.max_uses,
        key.max_lifetime(),
    )?;
    let base = page_address(request.base_url.as_deref(), &headers, &context)?;
    let link = mint(key, &request.room, terms, base)?;
    info!(
        room = link.room,
        max_uses = link.max_uses,
        operator = admin.identity,
        "created an invite link"
    );
    Ok((StatusCode::CREATED, Json(link)))
}

/// Creates an invite link to the caller's own room.
#[utoipa::path(
    post,
    path = "/api/rooms/{room}/invite",
    tag = "invites",
    security(("bearer" = [])),
    params(("room" = String, Path, description = "The room's name: the one the caller's token admits to")),
    request_body(content = RoomInviteRequest, description = "May be empty"),
    responses(
        (status = 201, description = "The invite link", body = InviteLink),
        (status = 400, description = "The body is not an invite's, or asks for what an invite cannot be", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token is for another room, does not grant `invite`, or lacks a grant the invite asks for", body = ErrorBody),
    )
)]
pub async fn create_for_room(
    State(context): State<Arc<ServerContext>>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<InviteLink>), ApiError> {
    let key = context.token_key.as_ref().ok_or(ApiError::Disabled)?;
    let token = bearer_token(&headers)?;
    let inviter = key.verify(token, &room).map_err(|error| match error {
        TokenError::WrongRoom { .. } => ApiError::WrongRoom(error.to_string()),
        other => ApiError::TokenInvalid(other.to_string()),
    })?;
    if !inviter.grants.invite {
        return Err(ApiError::InviteNotGranted);
    }
    let request: RoomInviteRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RoomInviteRequest::default()
    } else {
        read_body(&body)?
    };
    let own = inviter.grants.in_room();
    let grants = request.grants.map_or(own, Grants::from);
    if let Some(missing) = missing_grant(grants, own) {
        return Err(ApiError::GrantNotHeld(missing));
    }
    let mut terms = Terms::new(
        grants,
        request.expires_in_secs,
        request.max_uses,
        key.max_lifetime(),
    )?;
    let left = inviter
        .expires_at
        .saturating_sub(unix_seconds(SystemTime::now()));
    terms.lifetime = terms.lifetime.min(Duration::from_secs(left.max(1)));
    let base = page_address(None, &headers, &context)?;
    let link = mint(key, &room, terms, base)?;
    info!(
        room,
        max_uses = link.max_uses,
        inviter = inviter.identity,
        "created an invite link"
    );
    Ok((StatusCode::CREATED, Json(link)))
}

/// What an invite link is for: grants, lifetime, joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    /// What each person it admits may do.
    pub grants: Grants,
    /// How long it is valid.
    pub lifetime: Duration,
    /// How many joins it admits.
    pub max_uses: u32,
}

impl Terms {
    /// The terms a call asks for, defaults filled in, checked against the bounds: a lifetime
    /// of 1 s to `max_lifetime`, 1 to [`MAX_INVITE_USES`] joins.
    pub fn new(
        grants: Grants,
        expires_in_secs: Option<u64>,
        max_uses: Option<u32>,
        max_lifetime: Duration,
    ) -> Result<Self, ApiError> {
        let lifetime = expires_in_secs.map_or(
            DEFAULT_INVITE_LIFETIME.min(max_lifetime),
            Duration::from_secs,
        );
        if lifetime.is_zero() || lifetime > max_lifetime {
            return Err(ApiError::InvalidInvite(format!(
                "`expires_in_secs` must be 1 to {} (auth.max_token_lifetime_secs)",
                max_lifetime.as_secs()
            )));
        }
        let max_uses = max_uses.unwrap_or(DEFAULT_INVITE_USES);
        if !(1..=MAX_INVITE_USES).contains(&max_uses) {
            return Err(ApiError::InvalidInvite(format!(
                "`max_uses` must be 1 to {MAX_INVITE_USES}"
            )));
        }
        Ok(Self {
            grants: grants.in_room(),
            lifetime,
            max_uses,
        })
    }
}

/// The first of `wanted`'s grants that `held` lacks.
fn missing_grant(wanted: Grants, held: Grants) -> Option<&'static str> {
    [
        (wanted.publish && !held.publish, "publish"),
        (wanted.subscribe && !held.subscribe, "subscribe"),
        (wanted.chat && !held.chat, "chat"),
    ]
    .into_iter()
    .find_map(|(missing, name)| missing.then_some(name))
}

/// Mints the link for `room` on `terms`, its page at `base`.
fn mint(key: &TokenKey, room: &str, terms: Terms, mut base: Url) -> Result<InviteLink, ApiError> {
    let claims = InviteClaims::new(
        room,
        terms.grants,
        terms.max_uses,
        SystemTime::now(),
        terms.lifetime,
    );
    let token = key
        .mint(&claims)
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    base.query_pairs_mut()
        .clear()
        .append_pair("room", room)
        .append_pair("token", &token);
    base.set_fragment(None);
    Ok(InviteLink {
        room: room.to_owned(),
        token,
        url: base.into(),
        expires_at: claims.exp.saturating_mul(1000),
        max_uses: terms.max_uses,
        grants: terms.grants.into(),
    })
}

/// The client page's address: `given` when the call names one; otherwise the page the call
/// came from (`Origin`, which browsers send), or else the address it was sent to (`Host`,
/// with `X-Forwarded-Proto` from a proxy in front that ends TLS).
fn page_address(
    given: Option<&str>,
    headers: &HeaderMap,
    context: &ServerContext,
) -> Result<Url, ApiError> {
    address_from(given, headers, context.config.http.tls.is_some())
}

/// [`page_address`], for a server that serves TLS itself when `tls`.
fn address_from(given: Option<&str>, headers: &HeaderMap, tls: bool) -> Result<Url, ApiError> {
    if let Some(given) = given {
        let url = Url::parse(given)
            .map_err(|error| ApiError::InvalidInvite(format!("`base_url`: {error}")))?;
        if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
            return Err(ApiError::InvalidInvite(
                "`base_url` must be an http:// or https:// address".to_owned(),
            ));
        }
        return Ok(url);
    }
    let text = |name| headers.get(name).and_then(|value| value.to_str().ok());
    if let Some(url) = text(header::ORIGIN.as_str())
        .and_then(|origin| Url::parse(origin).ok())
        .filter(|url| matches!(url.scheme(), "http" | "https"))
    {
        return Ok(url);
    }
    let scheme = text("x-forwarded-proto")
        .filter(|proto| matches!(*proto, "http" | "https"))
        .unwrap_or(if tls { "https" } else { "http" });
    text(header::HOST.as_str())
        .and_then(|host| Url::parse(&format!("{scheme}://{host}/")).ok())
        .ok_or_else(|| {
            ApiError::InvalidInvite(
                "cannot tell the client page's address from the request: give `base_url`"
                    .to_owned(),
            )
        })
}

/// Reads a JSON body, so that a bad one gets the API's JSON error too.
fn read_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| ApiError::InvalidBody(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn terms_fill_in_defaults_and_keep_to_the_bounds() {
        let terms = Terms::new(Grants::ALL, None, None, DAY).unwrap();
        assert_eq!(terms.lifetime, DEFAULT_INVITE_LIFETIME);
        assert_eq!(terms.max_uses, DEFAULT_INVITE_USES);
        assert_eq!(
            Terms::new(Grants::ALL, None, None, Duration::from_secs(60))
                .unwrap()
                .lifetime,
            Duration::from_secs(60),
            "the default within a shorter cap"
        );
        for (expires, uses) in [(Some(0), None), (Some(86_401), None), (None, Some(0))] {
            assert!(matches!(
                Terms::new(Grants::ALL, expires, uses, DAY),
                Err(ApiError::InvalidInvite(_))
            ));
        }
        assert!(Terms::new(Grants::ALL, None, Some(MAX_INVITE_USES + 1), DAY).is_err());
        let powerful = Grants {
            admin: true,
            invite: true,
            ..Grants::ALL
        };
        assert_eq!(
            Terms::new(powerful, Some(86_400), Some(1), DAY)
                .unwrap()
                .grants,
            Grants::ALL,
            "never `admin` or `invite`"
        );
    }

    #[test]
    fn an_inviter_gives_only_what_it_holds() {
        let viewer = Grants {
            subscribe: true,
            ..Grants::default()
        };
        assert_eq!(missing_grant(viewer, Grants::ALL), None);
        assert_eq!(missing_grant(Grants::ALL, viewer), Some("publish"));
        assert_eq!(missing_grant(viewer, viewer), None);
    }

    #[test]
    fn the_page_address_comes_from_the_call_or_the_request() {
        let address = |given: Option<&str>, pairs: &[(&'static str, &str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.insert(*name, value.parse().unwrap());
            }
            address_from(given, &headers, false).map(String::from)
        };
        assert_eq!(
            address(
                Some("https://meet.example.org/call"),
                &[("host", "10.0.0.1:8081")]
            ),
            Ok("https://meet.example.org/call".to_owned())
        );
        assert_eq!(
            address(
                None,
                &[("origin", "https://meet.example.org"), ("host", "x")]
            ),
            Ok("https://meet.example.org/".to_owned())
        );
        assert_eq!(
            address(
                None,
                &[("host", "sfu.example.org"), ("x-forwarded-proto", "https")]
            ),
            Ok("https://sfu.example.org/".to_owned())
        );
        assert_eq!(
            address(None, &[("host", "127.0.0.1:8080")]),
            Ok("http://127.0.0.1:8080/".to_owned())
        );
        assert!(address(Some("ftp://example.org/"), &[]).is_err());
        assert!(address(None, &[]).is_err());
    }
}

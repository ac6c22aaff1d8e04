//! Access tokens: who may join which room, under which identity, allowed to do what.
//!
//! A token is a JWT signed with HS256 under the server's key (`[auth] token_key`). Whoever
//! holds the key (the team's own backend, or `switchyard token` during development) mints one
//! per person and room; the client hands it over in `join`. The server checks the header
//! (`compact.rs`), the signature, the claims and their times ([`Validity`]) and the room, and
//! the participant then gets the identity, the display name and the grants the token carries.
//! `docs/access.md` describes the claims and the decisions behind them.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::signal::protocol::{ErrorCode, NameError, is_valid_room_name, normalize_display_name};

mod compact;
pub mod invite;
#[cfg(test)]
mod properties;
pub mod uses;
mod validity;

use compact::Compact;
pub use invite::{INVITE_MARKER, InviteClaims};
pub use uses::{InviteUses, UsedUp};
pub use validity::Validity;

/// The shortest key accepted: HS256 wants a key at least as long as its hash (RFC 7518 §3.2).
pub const MIN_KEY_BYTES: usize = 32;

/// How far the server's clock may be behind or ahead of the one that minted a token: `exp`,
/// `nbf` and `iat` are checked with this much slack.
pub const CLOCK_LEEWAY: Duration = Duration::from_secs(30);

/// The longest identity a token may carry, in characters.
pub const MAX_IDENTITY_CHARS: usize = 128;

/// The longest a token may be valid unless `auth.max_token_lifetime_secs` says otherwise: a
/// day, which covers a working day's meetings and their reconnections, and keeps a leaked
/// token useful for no longer.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// What a participant may do in its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Grants {
    /// May publish tracks.
    #[serde(default)]
    pub publish: bool,
    /// May receive the others' tracks.
    #[serde(default)]
    pub subscribe: bool,
    /// May send chat messages (everybody receives them).
    #[serde(default)]
    pub chat: bool,
    /// May use the room service API (`/api/`): list, remove, mute, close. Not a participant's
    /// grant; left out of `joined` when not given.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
    /// May ask the server for invite links to its own room (`POST /api/rooms/{room}/invite`).
    /// Left out of `joined` when not given.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invite: bool,
}

impl Grants {
    /// Everything: what every participant gets on a server without a token key.
    pub const ALL: Grants = Grants {
        publish: true,
        subscribe: true,
        chat: true,
        admin: false,
        invite: false,
    };

    /// Only the room service API.
    pub const ADMIN: Grants = Grants {
        publish: false,
        subscribe: false,
        chat: false,
        admin: true,
        invite: false,
    };

    /// These grants without `admin` and `invite`: what a person may do in the room itself.
    pub fn in_room(self) -> Grants {
        Grants {
            admin: false,
            invite: false,
            ..self
        }
    }

    /// Whether every grant of `self` is one of `other`'s.
    pub fn within(self, other: Grants) -> bool {
        (!self.publish || other.publish)
            && (!self.subscribe || other.subscribe)
            && (!self.chat || other.chat)
            && (!self.admin || other.admin)
            && (!self.invite || other.invite)
    }
}

/// The claims of a Switchyard access token. Unknown claims are ignored, so a backend may add
/// its own (`iss`, `jti`, ...), except `aud` ([`TokenKey::verify`]). Times are whole seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The participant's identity: stable across its sessions, unique in the room.
    pub sub: String,
    /// The one room the token admits to.
    pub room: String,
    /// The display name; when absent, the name given in `join` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the participant may do. A grant that is absent is not given.
    #[serde(default)]
    pub grants: Grants,
    /// Expiry, in seconds since the Unix epoch.
    pub exp: u64,
    /// When the token was minted, in seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// The token is not valid before this time, in seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

impl Claims {
    /// Claims for `identity` in `room`, valid for `ttl` from `now`.
    pub fn new(
        room: impl Into<String>,
        identity: impl Into<String>,
        grants: Grants,
        now: SystemTime,
        ttl: Duration,
    ) -> Self {
        let issued = unix_seconds(now);
        Self {
            sub: identity.into(),
            room: room.into(),
            name: None,
            grants,
            exp: issued.saturating_add(ttl.as_secs()),
            iat: Some(issued),
            nbf: None,
        }
    }
}

impl Claims {
    /// Checks what the claims say (a valid room name, a usable identity and name) and returns
    /// the display name, trimmed, if they set one. The error says which claim is wrong.
    pub fn check(&self) -> Result<Option<String>, ClaimError> {
        if !is_valid_room_name(&self.room) {
            return Err(ClaimError::Room);
        }
        let identity_chars = self.sub.chars().count();
        if !(1..=MAX_IDENTITY_CHARS).contains(&identity_chars)
            || self.sub.chars().any(char::is_control)
        {
            return Err(ClaimError::Identity);
        }
        self.name
            .as_deref()
            .map(normalize_display_name)
            .transpose()
            .map_err(ClaimError::Name)
    }
}

/// A claim that holds something a token may not say.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// `room` is not a room name.
    #[error("`room` must be 1 to 64 characters of A-Z, a-z, 0-9, `_` and `-`")]
    Room,
    /// `sub` is not a usable identity.
    #[error(
        "`sub` (the identity) must be 1 to {MAX_IDENTITY_CHARS} characters without control characters"
    )]
    Identity,
    /// `name` is not a display name the server accepts.
    #[error("`name`: {0}")]
    Name(NameError),
}

impl fmt::Display for Grants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let granted: Vec<&str> = [
            (self.publish, "publish"),
            (self.subscribe, "subscribe"),
            (self.chat, "chat"),
            (self.admin, "admin"),
            (self.invite, "invite"),
        ]
        .into_iter()
        .filter_map(|(granted, name)| granted.then_some(name))
        .collect();
        if granted.is_empty() {
            f.write_str("nothing")
        } else {
            f.write_str(&granted.join(", "))
        }
    }
}

/// Who a verified token admits, and to do what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The participant's identity.
    pub identity: String,
    /// The display name the token sets, trimmed, if it sets one.
    pub name: Option<String>,
    /// What the participant may do.
    pub grants: Grants,
    /// When the token expires, in seconds since the Unix epoch.
    pub expires_at: u64,
}

/// What a token that verified admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// One person, by a token of its own.
    Person(Access),
    /// Whoever holds an invite link: the server makes the person's identity.
    Invite(InviteClaims),
}

/// Why an API token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminTokenError {
    /// It is not a valid token signed with the server's key.
    #[error("{0}")]
    Invalid(#[from] TokenError),
    /// It is valid but does not grant `admin`.
    #[error("the token does not grant `admin`")]
    NotAdmin,
}

/// The key is not fit to sign tokens with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the token key must be at least {MIN_KEY_BYTES} bytes (it is {0}): use a long random string, for example `openssl rand -hex 32`"
)]
pub struct WeakKey(pub usize);

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The server needs a token and `join` carried none.
    #[error("this server admits only participants with an access token: add `token` to `join`")]
    Missing,
    /// The token expired.
    #[error("the access token expired at {expired_at} (Unix time): ask for a new one")]
    Expired {
        /// When it expired, in seconds since the Unix epoch.
        expired_at: u64,
    },
    /// The signature does not match the server's key.
    #[error("the access token's signature does not match this server's key")]
    BadSignature,
    /// `nbf` or `iat` is later than now (and the clock leeway).
    #[error(
        "the access token is not valid yet: its `{claim}` is {at} (Unix time), later than now; check the clocks"
    )]
    NotYetValid {
        /// Which claim.
        claim: &'static str,
        /// Its time, in seconds since the Unix epoch.
        at: u64,
    },
    /// The token is valid for longer than the server accepts.
    #[error(
        "the access token is valid for {seconds} s, longer than this server accepts ({max} s at most): mint tokens that expire sooner"
    )]
    TooLong {
        /// How long it is valid: from `iat` to `exp`, or from now to `exp`.
        seconds: u64,
        /// The most the server accepts.
        max: u64,
    },
    /// The token is for another room.
    #[error("the access token is for room `{token_room}`, not `{room}`")]
    WrongRoom {
        /// The room the token names.
        token_room: String,
        /// The room `join` asked for.
        room: String,
    },
    /// The token is not a well-formed Switchyard token.
    #[error("invalid access token: {0}")]
    Invalid(String),
}

impl TokenError {
    /// The error code the client is told.
    pub fn code(&self) -> ErrorCode {
        match self {
            TokenError::Missing => ErrorCode::TokenMissing,
            TokenError::Expired { .. } => ErrorCode::TokenExpired,
            TokenError::BadSignature
            | TokenError::NotYetValid { .. }
            | TokenError::TooLong { .. }
            | TokenError::Invalid(_) => ErrorCode::TokenInvalid,
            TokenError::WrongRoom { .. } => ErrorCode::TokenWrongRoom,
        }
    }
}

/// A token could not be minted.
#[derive(Debug, thiserror::Error)]
#[error("cannot mint a token: {0}")]
pub struct MintError(String);

/// The HS256 key tokens are signed and checked with, and how their times are judged.
#[derive(Clone)]
pub struct TokenKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validity: Validity,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is a secret: never in a log.
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// The key from its configured text, used as bytes, accepting tokens valid for up to
    /// [`DEFAULT_MAX_TOKEN_LIFETIME`].
    pub fn new(secret: &str) -> Result<Self, WeakKey> {
        let bytes = secret.as_bytes();
        if bytes.len() < MIN_KEY_BYTES {
            return Err(WeakKey(bytes.len()));
        }
        Ok(Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validity: Validity {
                leeway: CLOCK_LEEWAY,
                max_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
            },
        })
    }

    /// The same key, accepting tokens valid for up to `max_lifetime`.
    pub fn with_max_lifetime(mut self, max_lifetime: Duration) -> Self {
        self.validity.max_lifetime = max_lifetime;
        self
    }

    /// The longest a token may be valid.
    pub fn max_lifetime(&self) -> Duration {
        self.validity.max_lifetime
    }

    /// The slack given to the clocks.
    pub fn leeway(&self) -> Duration {
        self.validity.leeway
    }

    /// Signs `claims` ([`Claims`] or [`InviteClaims`]).
    pub fn mint(&self, claims: &impl Serialize) -> Result<String, MintError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|error| MintError(error.to_string()))
    }

    /// Checks `token` for `room` now: see [`TokenKey::verify_at`].
    pub fn verify(&self, token: &str, room: &str) -> Result<Access, TokenError> {
        self.verify_at(token, room, unix_seconds(SystemTime::now()))
    }

    /// Checks `token` for `room` at `now` (Unix seconds), in this order: a JWT whose header
    /// says HS256 and lists no critical extension; its signature under this key; claims that
    /// are a JSON object without repeated keys or an audience (`aud`: RFC 7519 §4.1.3 asks a
    /// recipient that is not in it to refuse the token, and this server is in none); times
    /// that make it valid now ([`Validity`]); this room; a usable identity and name.
    pub fn verify_at(&self, token: &str, room: &str, now: u64) -> Result<Access, TokenError> {
        let claims = self.verified_claims(token, now)?;
        Self::admit_person(claims, room)
    }

    /// Checks `token` for `room` now, as a person's token or an invite link's: see
    /// [`TokenKey::admit_at`].
    pub fn admit(&self, token: &str, room: &str) -> Result<Admission, TokenError> {
        self.admit_at(token, room, unix_seconds(SystemTime::now()))
    }

    /// Checks `token` for `room` at `now`: a person's token as [`TokenKey::verify_at`] does,
    /// or an invite link's (its `invite_link` claim says so), whose header, signature, times
    /// and room are checked the same way, and whose claims must be an invite's
    /// ([`InviteClaims::check`]). Whether it has joins left is not its business.
    pub fn admit_at(&self, token: &str, room: &str, now: u64) -> Result<Admission, TokenError> {
        let object = self.verified_object(token)?;
        if !object.contains_key(INVITE_MARKER) {
            let claims = self.person_claims(object, now)?;
            return Self::admit_person(claims, room).map(Admission::Person);
        }
        let invite: InviteClaims = serde_path_to_error::deserialize(Value::Object(object))
            .map_err(|error| TokenError::Invalid(format!("its claims: {error}")))?;
        self.validity
            .check_times(invite.exp, invite.iat, invite.nbf, now)?;
        if invite.room != room {
            return Err(TokenError::WrongRoom {
                token_room: invite.room,
                room: room.to_owned(),
            });
        }
        invite
            .check()
            .map_err(|error| TokenError::Invalid(error.to_string()))?;
        Ok(Admission::Invite(invite))
    }

    /// The access that verified `claims` give in `room`.
    fn admit_person(claims: Claims, room: &str) -> Result<Access, TokenError> {
        if claims.room != room {
            return Err(TokenError::WrongRoom {
                token_room: claims.room,
                room: room.to_owned(),
            });
        }
        let name = claims
            .check()
            .map_err(|error| TokenError::Invalid(error.to_string()))?;
        Ok(Access {
            identity: claims.sub,
            name,
            grants: claims.grants,
            expires_at: claims.exp,
        })
    }

    /// Checks an API token now: signed with this key, valid now, granting `admin`. Its room is
    /// not looked at: the API is server-wide.
    pub fn verify_admin(&self, token: &str) -> Result<String, AdminTokenError> {
        let claims = self.verified_claims(token, unix_seconds(SystemTime::now()))?;
        if claims.grants.admin {
            Ok(claims.sub)
        } else {
            Err(AdminTokenError::NotAdmin)
        }
    }

    /// The claims of `token`, if it is a person's JWT signed with this key, well formed, and
    /// valid at `now` (see [`TokenKey::verify_at`]).
    fn verified_claims(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let object = self.verified_object(token)?;
        if object.contains_key(INVITE_MARKER) {
            return Err(TokenError::Invalid(
                "it is an invite link's token, which only admits to its room".to_owned(),
            ));
        }
        self.person_claims(object, now)
    }

    /// A person's claims from a verified object, their times checked at `now`.
    fn person_claims(&self, object: Map<String, Value>, now: u64) -> Result<Claims, TokenError> {
        let claims: Claims = serde_path_to_error::deserialize(Value::Object(object))
            .map_err(|error| TokenError::Invalid(format!("its claims: {error}")))?;
        self.validity.check(&claims, now)?;
        Ok(claims)
    }

    /// The claims of `token` as a JSON object, if it is a JWT signed with this key whose header
    /// and claims are sound and name no audience; its times are not looked at yet.
    fn verified_object(&self, token: &str) -> Result<Map<String, Value>, TokenError> {
        let compact = Compact::split(token)?;
        compact.check_header()?;
        let signature_matches = jsonwebtoken::crypto::verify(
            compact.signature,
            compact.signed.as_bytes(),
            &self.decoding,
            Algorithm::HS256,
        )
        .map_err(|error| TokenError::Invalid(format!("its signature: {error}")))?;
        if !signature_matches {
            return Err(TokenError::BadSignature);
        }
        let claims = compact.claims()?;
        if claims.contains_key("aud") {
            return Err(TokenError::Invalid(
                "it names an audience (`aud`), and this server is in none".to_owned(),
            ));
        }
        Ok(claims)
    }
}

/// Seconds since the Unix epoch (0 before it).
pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    use super::*;

    const KEY: &str = "an-hs256-key-of-at-least-32-bytes!!";

    fn key() -> TokenKey {
        TokenKey::new(KEY).unwrap()
    }

    fn claims(ttl: Duration) -> Claims {
        Claims::new("standup", "ada", Grants::ALL, SystemTime::now(), ttl)
    }

    fn now() -> u64 {
        unix_seconds(SystemTime::now())
    }

    /// A token with exactly this header and these claims, as text, signed with [`KEY`].
    pub(super) fn sign_raw(header: &str, claims: &str) -> String {
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let signature = jsonwebtoken::crypto::sign(
            signed.as_bytes(),
            &EncodingKey::from_secret(KEY.as_bytes()),
            Algorithm::HS256,
        )
        .unwrap();
        format!("{signed}.{signature}")
    }

    fn sign_claims(claims: &Value) -> String {
        sign_raw(r#"{"alg":"HS256","typ":"JWT"}"#, &claims.to_string())
    }

    fn invalid_because(token: &str) -> String {
        match key().verify(token, "standup") {
            Err(TokenError::Invalid(problem)) => problem,
            other => panic!("expected an invalid token, got {other:?}"),
        }
    }

    #[test]
    fn a_minted_token_verifies_for_its_room() {
        let mut claims = claims(Duration::from_secs(60));
        claims.name = Some("  Ada Lovelace ".to_owned());
        claims.grants = Grants {
            publish: false,
            subscribe: true,
            chat: true,
            admin: false,
            invite: false,
        };
        let token = key().mint(&claims).unwrap();
        assert_eq!(
            key().verify(&token, "standup"),
            Ok(Access {
                identity: "ada".to_owned(),
                name: Some("Ada Lovelace".to_owned()),
                grants: claims.grants,
                expires_at: claims.exp,
            })
        );
    }

    #[test]
    fn each_flaw_has_its_own_error() {
        let token = key().mint(&claims(Duration::from_secs(60))).unwrap();
        assert_eq!(
            key().verify(&token, "other"),
            Err(TokenError::WrongRoom {
                token_room: "standup".to_owned(),
                room: "other".to_owned()
            })
        );
        let other_key = TokenKey::new("another-key-that-is-long-enough-too").unwrap();
        assert_eq!(
            other_key.verify(&token, "standup"),
            Err(TokenError::BadSignature)
        );
        let mut expired = claims(Duration::ZERO);
        expired.exp -= 3600;
        let expired_token = key().mint(&expired).unwrap();
        assert_eq!(
            key().verify(&expired_token, "standup"),
            Err(TokenError::Expired {
                expired_at: expired.exp
            })
        );
        assert_eq!(
            key().verify("not.a.token", "standup").unwrap_err().code(),
            ErrorCode::TokenInvalid
        );
        let mut early = claims(Duration::from_secs(7200));
        early.nbf = Some(now() + 3600);
        let early_token = key().mint(&early).unwrap();
        assert!(matches!(
            key().verify(&early_token, "standup"),
            Err(TokenError::NotYetValid { claim: "nbf", .. })
        ));
    }

    #[test]
    fn an_expired_token_is_accepted_within_the_leeway_only() {
        let mut recent = claims(Duration::ZERO);
        recent.exp -= 5;
        let token = key().mint(&recent).unwrap();
        assert!(key().verify(&token, "standup").is_ok());
        recent.exp -= CLOCK_LEEWAY.as_secs();
        let token = key().mint(&recent).unwrap();
        assert!(matches!(
            key().verify(&token, "standup"),
            Err(TokenError::Expired { .. })
        ));
    }

    #[test]
    fn absent_grants_are_not_given() {
        // A token minted elsewhere, with only the claims it must have.
        let token = sign_claims(&json!({"sub": "bob", "room": "standup", "exp": now() + 60,
                                       "grants": {"subscribe": true}, "iss": "our-backend"}));
        let access = key().verify(&token, "standup").unwrap();
        assert_eq!(
            access.grants,
            Grants {
                publish: false,
                subscribe: true,
                chat: false,
                admin: false,
                invite: false,
            }
        );
        assert_eq!(access.name, None);
    }

    #[test]
    fn only_hs256_is_accepted() {
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims(Duration::from_secs(60)),
            &EncodingKey::from_secret(KEY.as_bytes()),
        )
        .unwrap();
        assert!(invalid_because(&hs512).contains("HS256"));
        // `alg: none`, unsigned, and the same claims with the signature kept.
        let claims = URL_SAFE_NO_PAD
            .encode(json!({"sub": "ada", "room": "standup", "exp": now() + 60}).to_string());
        let none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        assert!(invalid_because(&format!("{none}.{claims}.")).contains("HS256"));
        let signed = sign_claims(&json!({"sub": "ada", "room": "standup", "exp": now() + 60}));
        let signature = signed.rsplit('.').next().unwrap();
        assert!(invalid_because(&format!("{none}.{claims}.{signature}")).contains("HS256"));
    }

    #[test]
    fn a_critical_header_extension_is_refused() {
        let claims = json!({"sub": "ada", "room": "standup", "exp": now() + 60}).to_string();
        for header in [
            r#"{"alg":"HS256","crit":["exp"]}"#,
            r#"{"alg":"HS256","crit":["b64"],"b64":false}"#,
            r#"{"alg":"HS256","crit":["urn:example:unknown"],"urn:example:unknown":1}"#,
            r#"{"alg":"HS256","crit":[]}"#,
        ] {
            let token = sign_raw(header, &claims);
            let problem = invalid_because(&token);
            assert!(problem.contains("`crit`"), "{header}: {problem}");
        }
        let mut header = Header::new(Algorithm::HS256);
        header.crit = Some(vec!["exp".to_owned()]);
        let token = jsonwebtoken::encode(
            &header,
            &self::claims(Duration::from_secs(60)),
            &EncodingKey::from_secret(KEY.as_bytes()),
        )
        .unwrap();
        assert!(invalid_because(&token).contains("`crit`"));
        assert_eq!(
            key()
                .verify(&sign_raw(r#"{"alg":"HS256"}"#, &claims), "standup")
                .map(|a| a.identity),
            Ok("ada".to_owned()),
            "the same token without `crit` is fine"
        );
    }

    #[test]
    fn a_token_that_never_expires_is_refused() {
        for exp in [u64::MAX, now() + 365 * 24 * 3600] {
            let token = sign_claims(&json!({"sub": "ada", "room": "standup", "exp": exp}));
            assert!(
                matches!(
                    key().verify(&token, "standup"),
                    Err(TokenError::TooLong { max: 86_400, .. })
                ),
                "exp {exp}"
            );
        }
        let long = key().mint(&claims(Duration::from_secs(48 * 3600))).unwrap();
        assert!(matches!(
            key().verify(&long, "standup"),
            Err(TokenError::TooLong {
                seconds: 172_800,
                max: 86_400
            })
        ));
        let longer_allowed = key().with_max_lifetime(Duration::from_secs(72 * 3600));
        assert!(longer_allowed.verify(&long, "standup").is_ok());
    }

    #[test]
    fn times_must_be_whole_seconds_that_fit() {
        let too_big = sign_raw(
            r#"{"alg":"HS256"}"#,
            r#"{"sub":"ada","room":"standup","exp":18446744073709551616}"#,
        );
        assert!(invalid_because(&too_big).starts_with("its claims: exp:"));
        for exp in [
            json!(1e300),
            json!(-1),
            json!(1.5),
            json!("1767225600"),
            json!(null),
        ] {
            let token = sign_claims(&json!({"sub": "ada", "room": "standup", "exp": exp}));
            let problem = invalid_because(&token);
            assert!(
                problem.starts_with("its claims: exp:"),
                "exp {exp}: {problem}"
            );
        }
        let token =
            sign_claims(&json!({"sub": "ada", "room": "standup", "exp": now() + 60, "nbf": -5}));
        assert!(invalid_because(&token).starts_with("its claims: nbf:"));
    }

    #[test]
    fn claims_given_twice_or_naming_an_audience_are_refused() {
        let exp = now() + 60;
        let twice = sign_raw(
            r#"{"alg":"HS256"}"#,
            &format!(
                r#"{{"sub":"ada","room":"standup","exp":{exp},"exp":{}}}"#,
                u64::MAX
            ),
        );
        assert!(invalid_because(&twice).contains("duplicate key `exp`"));
        let twice_in_header = sign_raw(
            r#"{"alg":"HS256","alg":"HS256"}"#,
            &format!(r#"{{"sub":"ada","room":"standup","exp":{exp}}}"#),
        );
        assert!(invalid_because(&twice_in_header).contains("duplicate key `alg`"));
        let audience = sign_claims(
            &json!({"sub": "ada", "room": "standup", "exp": exp, "aud": "someone-else"}),
        );
        assert!(invalid_because(&audience).contains("`aud`"));
    }

    #[test]
    fn sound_claims_only() {
        let exp = now() + 60;
        for (bad, claim) in [
            (json!({"sub": "", "room": "standup", "exp": exp}), "`sub`"),
            (
                json!({"sub": "a\u{7}b", "room": "standup", "exp": exp}),
                "`sub`",
            ),
            (
                json!({"sub": "x".repeat(129), "room": "standup", "exp": exp}),
                "`sub`",
            ),
            (
                json!({"sub": "ada", "room": "standup", "exp": exp, "name": " "}),
                "`name`",
            ),
            (
                json!({"sub": "ada", "room": "standup", "exp": exp, "name": "\u{3164}"}),
                "`name`",
            ),
            (
                json!({"sub": "ada", "room": "standup", "exp": exp, "name": "Ada\u{202E}"}),
                "U+202E",
            ),
            (
                json!({"sub": "ada", "room": "standup", "exp": exp, "name": "x".repeat(10_000)}),
                "`name`",
            ),
            (json!({"sub": "ada", "exp": exp}), "`room`"),
            (json!({"room": "standup", "exp": exp}), "`sub`"),
            (json!({"sub": "ada", "room": "standup"}), "`exp`"),
            (
                json!({"sub": "ada", "room": "standup", "exp": exp, "grants": null}),
                "grants:",
            ),
        ] {
            let problem = invalid_because(&sign_claims(&bad));
            assert!(problem.contains(claim), "{bad}: {problem}");
        }
    }

    #[test]
    fn an_invite_token_admits_as_an_invite_only() {
        let invite = InviteClaims::new(
            "standup",
            Grants::ALL,
            2,
            SystemTime::now(),
            Duration::from_secs(60),
        );
        let token = key().mint(&invite).unwrap();
        assert_eq!(
            key().admit(&token, "standup"),
            Ok(Admission::Invite(invite.clone()))
        );
        assert!(matches!(
            key().admit(&token, "other"),
            Err(TokenError::WrongRoom { .. })
        ));
        assert!(invalid_because(&token).contains("invite link"));
        assert!(matches!(
            key().verify_admin(&token),
            Err(AdminTokenError::Invalid(TokenError::Invalid(_)))
        ));
        let mut expired = invite.clone();
        expired.exp = now() - 3600;
        expired.iat = Some(now() - 3660);
        assert!(matches!(
            key().admit(&key().mint(&expired).unwrap(), "standup"),
            Err(TokenError::Expired { .. })
        ));
        let mut too_long = invite.clone();
        too_long.exp = now() + 48 * 3600;
        assert!(matches!(
            key().admit(&key().mint(&too_long).unwrap(), "standup"),
            Err(TokenError::TooLong { .. })
        ));
        let mut admin = invite;
        admin.grants.admin = true;
        assert!(matches!(
            key().admit(&key().mint(&admin).unwrap(), "standup"),
            Err(TokenError::Invalid(problem)) if problem.contains("`publish`, `subscribe` and `chat` only")
        ));
        let person = key().mint(&claims(Duration::from_secs(60))).unwrap();
        assert!(matches!(
            key().admit(&person, "standup"),
            Ok(Admission::Person(Access { identity, .. })) if identity == "ada"
        ));
    }

    #[test]
    fn short_keys_are_refused() {
        assert_eq!(TokenKey::new("secret").unwrap_err(), WeakKey(6));
        assert!(TokenKey::new(&"k".repeat(MIN_KEY_BYTES)).is_ok());
        assert_eq!(format!("{:?}", key()), "TokenKey(..)");
    }
}

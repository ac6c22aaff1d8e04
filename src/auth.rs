//! Access tokens: who may join which room, under which identity, allowed to do what.
//!
//! A token is a JWT signed with HS256 under the server's key (`[auth] token_key`). Whoever
//! holds the key (the team's own backend, or `switchyard token` during development) mints one
//! per person and room; the client hands it over in `join`. The server checks the signature,
//! the expiry and the room, and the participant then gets the identity, the display name and
//! the grants the token carries. `docs/access.md` describes the claims and the decisions
//! behind them.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::signal::protocol::{ErrorCode, is_valid_room_name, normalize_display_name};

/// The shortest key accepted: HS256 wants a key at least as long as its hash (RFC 7518 §3.2).
pub const MIN_KEY_BYTES: usize = 32;

/// How far the server's clock may be behind or ahead of the one that minted a token: `exp`
/// and `nbf` are checked with this much slack.
pub const CLOCK_LEEWAY: Duration = Duration::from_secs(30);

/// The longest identity a token may carry, in characters.
pub const MAX_IDENTITY_CHARS: usize = 128;

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
}

impl Grants {
    /// Everything: what every participant gets on a server without a token key.
    pub const ALL: Grants = Grants {
        publish: true,
        subscribe: true,
        chat: true,
    };
}

/// The claims of a Switchyard access token. Unknown claims are ignored, so a backend may add
/// its own (`iss`, `jti`, ...).
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
    /// the display name, normalized, if they set one. The error says which claim is wrong.
    pub fn check(&self) -> Result<Option<String>, String> {
        if !is_valid_room_name(&self.room) {
            return Err(
                "`room` must be 1 to 64 characters of A-Z, a-z, 0-9, `_` and `-`".to_owned(),
            );
        }
        let identity_chars = self.sub.chars().count();
        if !(1..=MAX_IDENTITY_CHARS).contains(&identity_chars)
            || self.sub.chars().any(char::is_control)
        {
            return Err(format!(
                "`sub` (the identity) must be 1 to {MAX_IDENTITY_CHARS} characters without control characters"
            ));
        }
        match self.name.as_deref() {
            None => Ok(None),
            Some(name) => normalize_display_name(name)
                .map(Some)
                .map_err(|error| format!("`name`: {error}")),
        }
    }
}

impl fmt::Display for Grants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let granted: Vec<&str> = [
            (self.publish, "publish"),
            (self.subscribe, "subscribe"),
            (self.chat, "chat"),
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
    /// The display name the token sets, normalized, if it sets one.
    pub name: Option<String>,
    /// What the participant may do.
    pub grants: Grants,
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
            TokenError::BadSignature | TokenError::Invalid(_) => ErrorCode::TokenInvalid,
            TokenError::WrongRoom { .. } => ErrorCode::TokenWrongRoom,
        }
    }
}

/// A token could not be minted.
#[derive(Debug, thiserror::Error)]
#[error("cannot mint a token: {0}")]
pub struct MintError(String);

/// The HS256 key tokens are signed and checked with.
#[derive(Clone)]
pub struct TokenKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is a secret: never in a log.
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// The key from its configured text, used as bytes.
    pub fn new(secret: &str) -> Result<Self, WeakKey> {
        let bytes = secret.as_bytes();
        if bytes.len() < MIN_KEY_BYTES {
            return Err(WeakKey(bytes.len()));
        }
        Ok(Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
        })
    }

    /// Signs `claims`.
    pub fn mint(&self, claims: &Claims) -> Result<String, MintError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|error| MintError(error.to_string()))
    }

    /// Checks `token` for `room`: HS256 under this key, not expired, valid already, for this
    /// room, with a usable identity and name.
    pub fn verify(&self, token: &str, room: &str) -> Result<Access, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = CLOCK_LEEWAY.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|error| match error.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::ExpiredSignature => TokenError::Expired {
                    expired_at: expiry_of(token).unwrap_or_default(),
                },
                ErrorKind::ImmatureSignature => {
                    TokenError::Invalid("it is not valid yet (`nbf` is in the future)".to_owned())
                }
                ErrorKind::InvalidAlgorithm => {
                    TokenError::Invalid("it must be signed with HS256".to_owned())
                }
                ErrorKind::Json(error) => TokenError::Invalid(format!("its claims: {error}")),
                _ => TokenError::Invalid(error.to_string()),
            })?
            .claims;
        if claims.room != room {
            return Err(TokenError::WrongRoom {
                token_room: claims.room,
                room: room.to_owned(),
            });
        }
        let name = claims.check().map_err(TokenError::Invalid)?;
        Ok(Access {
            identity: claims.sub,
            name,
            grants: claims.grants,
        })
    }
}

/// The `exp` of a token whose signature has been checked already, for the error message.
fn expiry_of(token: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct Expiry {
        exp: u64,
    }
    jsonwebtoken::dangerous::insecure_decode::<Expiry>(token)
        .ok()
        .map(|data| data.claims.exp)
}

/// Seconds since the Unix epoch (0 before it).
pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "an-hs256-key-of-at-least-32-bytes!!";

    fn key() -> TokenKey {
        TokenKey::new(KEY).unwrap()
    }

    fn claims(ttl: Duration) -> Claims {
        Claims::new("standup", "ada", Grants::ALL, SystemTime::now(), ttl)
    }

    #[test]
    fn a_minted_token_verifies_for_its_room() {
        let mut claims = claims(Duration::from_secs(60));
        claims.name = Some("  Ada Lovelace ".to_owned());
        claims.grants = Grants {
            publish: false,
            subscribe: true,
            chat: true,
        };
        let token = key().mint(&claims).unwrap();
        assert_eq!(
            key().verify(&token, "standup"),
            Ok(Access {
                identity: "ada".to_owned(),
                name: Some("Ada Lovelace".to_owned()),
                grants: claims.grants,
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
        early.nbf = Some(unix_seconds(SystemTime::now()) + 3600);
        let early_token = key().mint(&early).unwrap();
        assert!(matches!(
            key().verify(&early_token, "standup"),
            Err(TokenError::Invalid(_))
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
        let now = unix_seconds(SystemTime::now());
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "bob", "room": "standup", "exp": now + 60,
                                "grants": {"subscribe": true}, "iss": "our-backend"}),
            &EncodingKey::from_secret(KEY.as_bytes()),
        )
        .unwrap();
        let access = key().verify(&token, "standup").unwrap();
        assert_eq!(
            access.grants,
            Grants {
                publish: false,
                subscribe: true,
                chat: false
            }
        );
        assert_eq!(access.name, None);
    }

    #[test]
    fn only_hs256_and_sound_claims_are_accepted() {
        let now = unix_seconds(SystemTime::now());
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims(Duration::from_secs(60)),
            &EncodingKey::from_secret(KEY.as_bytes()),
        )
        .unwrap();
        assert!(matches!(
            key().verify(&hs512, "standup"),
            Err(TokenError::Invalid(_))
        ));
        // `alg: none`, unsigned.
        let unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhZGEiLCJyb29tIjoic3RhbmR1cCIsImV4cCI6OTk5OTk5OTk5OX0.";
        assert!(key().verify(unsigned, "standup").is_err());
        for bad in [
            serde_json::json!({"sub": "", "room": "standup", "exp": now + 60}),
            serde_json::json!({"sub": "a\u{7}b", "room": "standup", "exp": now + 60}),
            serde_json::json!({"sub": "ada", "room": "standup", "exp": now + 60, "name": " "}),
            serde_json::json!({"sub": "ada", "exp": now + 60}),
            serde_json::json!({"room": "standup", "exp": now + 60}),
            serde_json::json!({"sub": "ada", "room": "standup"}),
        ] {
            let token = jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &bad,
                &EncodingKey::from_secret(KEY.as_bytes()),
            )
            .unwrap();
            assert!(
                matches!(key().verify(&token, "standup"), Err(TokenError::Invalid(_))),
                "{bad} is refused"
            );
        }
    }

    #[test]
    fn short_keys_are_refused() {
        assert_eq!(TokenKey::new("secret").unwrap_err(), WeakKey(6));
        assert!(TokenKey::new(&"k".repeat(MIN_KEY_BYTES)).is_ok());
        assert_eq!(format!("{:?}", key()), "TokenKey(..)");
    }
}

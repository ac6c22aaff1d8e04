//! Access tokens for the synthetic participants, for a server with a token key
//! (`docs/access.md`).
//!
//! With the server's key (`--token-key`) the load test mints one token per participant, as the
//! team's backend would: each its own identity (its name in the run, unique in its room), for
//! its room, granting what its role needs (publishers `publish` and `subscribe`, subscribers
//! `subscribe`), valid for [`MINTED_TOKEN_TTL`]. Tokens are minted with the server crate's own
//! code, the one behind `switchyard token`.
//!
//! Tokens minted elsewhere (`--token`, once per participant) are handed out in the order of the
//! plan; each names its own room, and the server keeps one session per identity, so each
//! participant needs its own.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use switchyard::auth::{Claims, Grants, TokenKey};

/// How long a minted token is valid. The server checks a token only at `join`, which follows
/// the minting at once; an hour leaves any clock skew between the two machines far behind.
pub const MINTED_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// How participants get into rooms.
#[derive(Debug, Clone, Default)]
pub enum Admission {
    /// The server is open: no token.
    #[default]
    Open,
    /// One token per participant, minted under the server's key.
    Mint(TokenKey),
    /// Tokens minted elsewhere, one per participant in the order of the plan.
    Given(Vec<GivenToken>),
}

/// A token minted elsewhere, and what it says (read, not verified: the server verifies).
#[derive(Debug, Clone)]
pub struct GivenToken {
    /// The token.
    pub token: String,
    /// Its claims.
    pub claims: Claims,
}

/// Tokens cannot be had as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The key is not one the server would accept.
    #[error("--token-key: {0}")]
    Key(String),
    /// A given token is not a Switchyard token.
    #[error("--token number {number}: {reason}")]
    Unreadable {
        /// Its place among the `--token` flags, from 1.
        number: usize,
        /// Why.
        reason: String,
    },
    /// The given tokens do not fit the participants.
    #[error("{0}")]
    Mismatch(String),
    /// Minting failed.
    #[error("minting a token: {0}")]
    Mint(String),
}

/// One participant, as far as its token is concerned.
#[derive(Debug, Clone, Copy)]
pub struct Seat<'a> {
    /// The room the plan puts it in.
    pub room: &'a str,
    /// Its name in the run, unique in its room: its identity when minting.
    pub name: &'a str,
    /// Whether it publishes.
    pub publishes: bool,
}

impl Seat<'_> {
    /// What its role needs.
    pub fn grants(&self) -> Grants {
        Grants {
            publish: self.publishes,
            subscribe: true,
            chat: false,
            admin: false,
            invite: false,
        }
    }
}

impl Admission {
    /// Minting under the server's key, given as its configured text.
    pub fn mint(key: &str) -> Result<Self, TokenError> {
        TokenKey::new(key)
            .map(Admission::Mint)
            .map_err(|error| TokenError::Key(error.to_string()))
    }

    /// The tokens given, read.
    pub fn given(tokens: &[String]) -> Result<Self, TokenError> {
        tokens
            .iter()
            .enumerate()
            .map(|(index, token)| {
                read_claims(token)
                    .map(|claims| GivenToken {
                        token: token.clone(),
                        claims,
                    })
                    .map_err(|reason| TokenError::Unreadable {
                        number: index + 1,
                        reason,
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Admission::Given)
    }

    /// With given tokens, the room each seat is in is its token's: checks that there is one
    /// token per seat, granting what the seat needs, that seats the plan puts together are
    /// in one room and seats it keeps apart are not, and returns each seat's room. Otherwise
    /// the plan's rooms stand.
    pub fn rooms(&self, seats: &[Seat<'_>]) -> Result<Vec<String>, TokenError> {
        let Admission::Given(tokens) = self else {
            return Ok(seats.iter().map(|seat| seat.room.to_owned()).collect());
        };
        if tokens.len() != seats.len() {
            return Err(TokenError::Mismatch(format!(
                "{} --token given for {} participants: give one per participant (each is one identity, and the server keeps one session per identity), or --token-key to mint them",
                tokens.len(),
                seats.len()
            )));
        }
        let mut rooms: std::collections::HashMap<&str, &str> = Default::default();
        for (number, (seat, given)) in seats.iter().zip(tokens).enumerate() {
            let number = number + 1;
            let granted = given.claims.grants;
            let needed = seat.grants();
            if (needed.publish && !granted.publish) || !granted.subscribe {
                return Err(TokenError::Mismatch(format!(
                    "--token number {number} grants {granted}, and participant {} needs {needed}",
                    seat.name
                )));
            }
            let room = given.claims.room.as_str();
            if *rooms.entry(seat.room).or_insert(room) != room {
                return Err(TokenError::Mismatch(format!(
                    "--token number {number} is for room `{room}`, and the participants before it in its room have tokens for `{}`",
                    rooms[seat.room]
                )));
            }
        }
        let distinct: std::collections::HashSet<&str> = rooms.values().copied().collect();
        if distinct.len() != rooms.len() {
            return Err(TokenError::Mismatch(
                "the --token values put participants of different rooms in one room".to_owned(),
            ));
        }
        Ok(tokens
            .iter()
            .map(|given| given.claims.room.clone())
            .collect())
    }

    /// The token for the seat at `position` in the plan, if the server needs one.
    pub fn token_for(&self, position: usize, seat: Seat<'_>) -> Result<Option<String>, TokenError> {
        match self {
            Admission::Open => Ok(None),
            Admission::Mint(key) => {
                let claims = Claims::new(
                    seat.room,
                    seat.name,
                    seat.grants(),
                    SystemTime::now(),
                    MINTED_TOKEN_TTL,
                );
                key.mint(&claims)
                    .map(Some)
                    .map_err(|error| TokenError::Mint(error.to_string()))
            }
            Admission::Given(tokens) => tokens
                .get(position)
                .map(|given| Some(given.token.clone()))
                .ok_or_else(|| {
                    TokenError::Mismatch(format!("no --token for participant {}", seat.name))
                }),
        }
    }
}

/// The claims of a JWT, read without checking its signature.
fn read_claims(token: &str) -> Result<Claims, String> {
    let mut parts = token.trim().split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a JWT (three base64url parts separated by dots)".to_owned());
    };
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|error| format!("its claims are not base64url: {error}"))?;
    serde_json::from_slice(&json).map_err(|error| format!("its claims: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn seat<'a>(room: &'a str, name: &'a str, publishes: bool) -> Seat<'a> {
        Seat {
            room,
            name,
            publishes,
        }
    }

    #[test]
    fn minted_tokens_carry_each_identity_and_the_grants_of_its_role() {
        let admission = Admission::mint(KEY).expect("a usable key");
        let key = TokenKey::new(KEY).expect("a usable key");
        let publisher = admission
            .token_for(0, seat("r1", "publisher-0-0", true))
            .expect("minted")
            .expect("a token");
        let access = key.verify(&publisher, "r1").expect("the server accepts it");
        assert_eq!(access.identity, "publisher-0-0");
        assert!(access.grants.publish && access.grants.subscribe && !access.grants.chat);
        let subscriber = admission
            .token_for(1, seat("r1", "subscriber-0-0", false))
            .expect("minted")
            .expect("a token");
        let access = key
            .verify(&subscriber, "r1")
            .expect("the server accepts it");
        assert!(!access.grants.publish && access.grants.subscribe);
        assert!(matches!(
            Admission::mint("short"),
            Err(TokenError::Key(message)) if message.contains("32 bytes")
        ));
    }

    #[test]
    fn given_tokens_name_the_rooms_and_must_fit_the_seats() {
        let key = TokenKey::new(KEY).expect("a usable key");
        let mint = |room: &str, identity: &str, publish: bool| {
            let grants = Grants {
                publish,
                subscribe: true,
                chat: false,
                admin: false,
                invite: false,
            };
            key.mint(&Claims::new(
                room,
                identity,
                grants,
                SystemTime::now(),
                MINTED_TOKEN_TTL,
            ))
            .expect("minted")
        };
        let seats = [
            seat("load-0", "publisher-0-0", true),
            seat("load-0", "subscriber-0-0", false),
            seat("load-1", "publisher-1-0", true),
        ];
        let fitting = [
            mint("standup", "ada", true),
            mint("standup", "bo", false),
            mint("retro", "cy", true),
        ];
        let admission = Admission::given(&fitting).expect("readable");
        assert_eq!(
            admission.rooms(&seats).expect("they fit"),
            ["standup", "standup", "retro"]
        );
        assert_eq!(
            admission
                .token_for(1, seats[1])
                .expect("a token")
                .as_deref(),
            Some(fitting[1].as_str())
        );

        let too_few = Admission::given(&fitting[..2]).expect("readable");
        assert!(too_few.rooms(&seats).is_err());
        let no_publish = [
            mint("standup", "ada", false),
            mint("standup", "bo", false),
            mint("retro", "cy", true),
        ];
        let error = Admission::given(&no_publish)
            .expect("readable")
            .rooms(&seats)
            .expect_err("a publisher without publish");
        assert!(error.to_string().contains("publisher-0-0"), "{error}");
        let split_room = [
            mint("standup", "ada", true),
            mint("retro", "bo", false),
            mint("retro", "cy", true),
        ];
        assert!(
            Admission::given(&split_room)
                .expect("readable")
                .rooms(&seats)
                .is_err()
        );
        assert!(matches!(
            Admission::given(&["not-a-token".to_owned()]),
            Err(TokenError::Unreadable { number: 1, .. })
        ));
    }
}

//! Invite links: a token that admits whoever holds it to one room, a bounded number of times,
//! each time as a new person with an identity of its own.
//!
//! It is a JWT signed with the server's key like a person's token, told apart by its
//! `invite_link` claim. It names no identity (`sub`): the server makes one per join. How many
//! joins it has made is counted by its id (`jti`) in [`super::uses::InviteUses`].

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{Grants, unix_seconds};
use crate::ids::InviteId;
use crate::signal::protocol::is_valid_room_name;

/// The claim that marks an invite link's token.
pub const INVITE_MARKER: &str = "invite_link";

/// The most joins one invite link may allow.
pub const MAX_INVITE_USES: u32 = 10_000;

/// The longest an invite id may be, in characters.
pub const MAX_INVITE_ID_CHARS: usize = 64;

/// The claims of an invite link's token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteClaims {
    /// Always `true`: what makes the token an invite link.
    pub invite_link: bool,
    /// The invite's id, which its uses are counted by.
    pub jti: InviteId,
    /// The one room it admits to.
    pub room: String,
    /// What each person it admits may do: `publish`, `subscribe`, `chat`, never more.
    #[serde(default)]
    pub grants: Grants,
    /// How many joins it admits.
    pub max_uses: u32,
    /// Expiry, in seconds since the Unix epoch.
    pub exp: u64,
    /// When it was minted, in seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not valid before this time, in seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

impl InviteClaims {
    /// A fresh invite to `room` for up to `max_uses` joins, valid for `ttl` from `now`.
    pub fn new(
        room: impl Into<String>,
        grants: Grants,
        max_uses: u32,
        now: SystemTime,
        ttl: Duration,
    ) -> Self {
        let issued = unix_seconds(now);
        Self {
            invite_link: true,
            jti: InviteId::random(),
            room: room.into(),
            grants,
            max_uses,
            exp: issued.saturating_add(ttl.as_secs()),
            iat: Some(issued),
            nbf: None,
        }
    }

    /// Checks what the claims say; the error says which claim is wrong.
    pub fn check(&self) -> Result<(), InviteClaimError> {
        if !self.invite_link {
            return Err(InviteClaimError::Marker);
        }
        let id = self.jti.as_str();
        if !(1..=MAX_INVITE_ID_CHARS).contains(&id.len())
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(InviteClaimError::Id);
        }
        if !is_valid_room_name(&self.room) {
            return Err(InviteClaimError::Room);
        }
        if !(1..=MAX_INVITE_USES).contains(&self.max_uses) {
            return Err(InviteClaimError::Uses);
        }
        if self.grants.admin || self.grants.invite {
            return Err(InviteClaimError::Grants);
        }
        Ok(())
    }

    /// A fresh identity for one person it admits: the invite's id, so that the server's log and
    /// the API show how each came in, and a random part, so that two people are never one.
    pub fn fresh_identity(&self) -> String {
        format!("{}/{:08x}", self.jti, rand::random::<u32>())
    }
}

/// A claim of an invite link's token that holds something it may not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InviteClaimError {
    /// `invite_link` is not `true`.
    #[error("`{INVITE_MARKER}` must be `true`")]
    Marker,
    /// `jti` is not a usable id.
    #[error(
        "`jti` (the invite's id) must be 1 to {MAX_INVITE_ID_CHARS} characters of A-Z, a-z, 0-9, `_` and `-`"
    )]
    Id,
    /// `room` is not a room name.
    #[error("`room` must be 1 to 64 characters of A-Z, a-z, 0-9, `_` and `-`")]
    Room,
    /// `max_uses` is out of bounds.
    #[error("`max_uses` must be 1 to {MAX_INVITE_USES}")]
    Uses,
    /// It grants what an invite may not.
    #[error("an invite link may grant `publish`, `subscribe` and `chat` only")]
    Grants,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite() -> InviteClaims {
        InviteClaims::new(
            "standup",
            Grants::ALL,
            3,
            SystemTime::now(),
            Duration::from_secs(60),
        )
    }

    #[test]
    fn a_fresh_invite_is_sound_and_marked() {
        let invite = invite();
        assert_eq!(invite.check(), Ok(()));
        assert!(invite.invite_link);
        assert!(invite.jti.as_str().starts_with("IN_"));
        assert_ne!(invite.jti, self::invite().jti, "ids are unique");
    }

    #[test]
    fn each_flaw_is_named() {
        let mut bad = invite();
        bad.invite_link = false;
        assert_eq!(bad.check(), Err(InviteClaimError::Marker));
        for uses in [0, MAX_INVITE_USES + 1] {
            let mut bad = invite();
            bad.max_uses = uses;
            assert_eq!(bad.check(), Err(InviteClaimError::Uses));
        }
        for grants in [
            Grants::ADMIN,
            Grants {
                invite: true,
                ..Grants::ALL
            },
        ] {
            let mut bad = invite();
            bad.grants = grants;
            assert_eq!(bad.check(), Err(InviteClaimError::Grants));
        }
        let mut bad = invite();
        bad.room = "no spaces".into();
        assert_eq!(bad.check(), Err(InviteClaimError::Room));
        let long = "x".repeat(MAX_INVITE_ID_CHARS + 1);
        for id in ["", "a/b", long.as_str()] {
            let mut bad = invite();
            bad.jti = serde_json::from_value(serde_json::json!(id)).unwrap();
            assert_eq!(bad.check(), Err(InviteClaimError::Id), "{id:?}");
        }
    }

    #[test]
    fn two_people_get_two_identities() {
        let invite = invite();
        let (a, b) = (invite.fresh_identity(), invite.fresh_identity());
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("{}/", invite.jti)));
    }
}

//! How many joins each invite link has made, in memory: a restart forgets the counts, so an
//! invite's expiry is what bounds it for good.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::ids::InviteId;

/// The joins made with each invite link that has not expired.
#[derive(Debug, Default)]
pub struct InviteUses {
    counts: Mutex<HashMap<InviteId, Count>>,
}

#[derive(Debug, Clone, Copy)]
struct Count {
    used: u32,
    /// The invite's `exp`, after which (and the leeway) its count is of no use.
    expires_at: u64,
}

/// The invite has admitted as many joins as it allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this invite link has been used {max_uses} times, as many as it allows: ask for a new one")]
pub struct UsedUp {
    /// How many it allows.
    pub max_uses: u32,
}

impl InviteUses {
    /// Counts one more join with `invite`, which allows `max_uses` and expires at `expires_at`
    /// (Unix seconds), unless it has made `max_uses` already. Counts of invites expired more
    /// than `leeway` before `now` are dropped on the way, so the map holds live invites only.
    pub fn take(
        &self,
        invite: &InviteId,
        max_uses: u32,
        expires_at: u64,
        now: u64,
        leeway: Duration,
    ) -> Result<(), UsedUp> {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        counts.retain(|_, count| count.expires_at.saturating_add(leeway.as_secs()) >= now);
        let count = counts.entry(invite.clone()).or_insert(Count {
            used: 0,
            expires_at,
        });
        if count.used >= max_uses {
            return Err(UsedUp { max_uses });
        }
        count.used += 1;
        Ok(())
    }

    /// Gives back a join [`InviteUses::take`] counted, which did not happen after all (the
    /// room was full, say).
    pub fn give_back(&self, invite: &InviteId) {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(count) = counts.get_mut(invite) {
            count.used = count.used.saturating_sub(1);
        }
    }

    /// How many joins `invite` has made.
    pub fn used(&self, invite: &InviteId) -> u32 {
        let counts = self
            .counts
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        counts.get(invite).map_or(0, |count| count.used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_767_225_600;
    const LEEWAY: Duration = Duration::from_secs(30);

    #[test]
    fn an_invite_admits_as_many_joins_as_it_allows() {
        let uses = InviteUses::default();
        let invite = InviteId::random();
        let other = InviteId::random();
        for _ in 0..2 {
            assert_eq!(uses.take(&invite, 2, NOW + 60, NOW, LEEWAY), Ok(()));
        }
        assert_eq!(
            uses.take(&invite, 2, NOW + 60, NOW, LEEWAY),
            Err(UsedUp { max_uses: 2 })
        );
        assert_eq!(uses.used(&invite), 2);
        assert_eq!(
            uses.take(&other, 1, NOW + 60, NOW, LEEWAY),
            Ok(()),
            "counted apart"
        );
    }

    #[test]
    fn a_join_given_back_can_be_made_again() {
        let uses = InviteUses::default();
        let invite = InviteId::random();
        assert_eq!(uses.take(&invite, 1, NOW + 60, NOW, LEEWAY), Ok(()));
        uses.give_back(&invite);
        assert_eq!(uses.used(&invite), 0);
        assert_eq!(uses.take(&invite, 1, NOW + 60, NOW, LEEWAY), Ok(()));
        assert!(uses.take(&invite, 1, NOW + 60, NOW, LEEWAY).is_err());
    }

    #[test]
    fn counts_of_expired_invites_are_dropped() {
        let uses = InviteUses::default();
        let old = InviteId::random();
        assert_eq!(uses.take(&old, 5, NOW + 60, NOW, LEEWAY), Ok(()));
        let later = NOW + 60 + LEEWAY.as_secs();
        assert_eq!(
            uses.take(&InviteId::random(), 5, later + 60, later, LEEWAY),
            Ok(())
        );
        assert_eq!(uses.used(&old), 1, "kept within the leeway");
        assert_eq!(
            uses.take(&InviteId::random(), 5, later + 60, later + 1, LEEWAY),
            Ok(())
        );
        assert_eq!(uses.used(&old), 0, "dropped after it");
    }
}

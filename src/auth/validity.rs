//! When a token may be used: not before `nbf` or `iat`, not after `exp`, and never for longer
//! than the server allows, however far away its `exp`.

use std::time::Duration;

use super::{Claims, TokenError};

/// How the times in a token are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Slack for the clocks of the minting machine and this one: `exp` may be this far in the
    /// past, `nbf` and `iat` this far in the future.
    pub leeway: Duration,
    /// The longest a token may be valid: its `exp` at most this far after its `iat`, and, from
    /// this server's point of view, at most this far (and the leeway) after now.
    pub max_lifetime: Duration,
}

impl Validity {
    /// Checks the times of `claims` at `now` (Unix seconds).
    ///
    /// The cap on the lifetime is checked against now, so that it holds for a token without
    /// `iat` and for one whose `iat` is made up: an accepted token always expires within
    /// `max_lifetime` (and the leeway). When `iat` is there, `exp - iat` is checked too, so a
    /// token minted to last too long is refused from its first use, not only early in its life.
    pub fn check(&self, claims: &Claims, now: u64) -> Result<(), TokenError> {
        self.check_times(claims.exp, claims.iat, claims.nbf, now)
    }

    /// Checks the times `exp`, `iat` and `nbf` of any token at `now`, as [`Validity::check`].
    pub fn check_times(
        &self,
        exp: u64,
        iat: Option<u64>,
        nbf: Option<u64>,
        now: u64,
    ) -> Result<(), TokenError> {
        let leeway = self.leeway.as_secs();
        let max = self.max_lifetime.as_secs();
        if exp.saturating_add(leeway) < now {
            return Err(TokenError::Expired { expired_at: exp });
        }
        for (claim, at) in [("nbf", nbf), ("iat", iat)] {
            if let Some(at) = at.filter(|&at| at > now.saturating_add(leeway)) {
                return Err(TokenError::NotYetValid { claim, at });
            }
        }
        if let Some(iat) = iat
            && exp.saturating_sub(iat) > max
        {
            return Err(TokenError::TooLong {
                seconds: exp.saturating_sub(iat),
                max,
            });
        }
        let remaining = exp.saturating_sub(now);
        if remaining > max.saturating_add(leeway) {
            return Err(TokenError::TooLong {
                seconds: remaining,
                max,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Grants;

    const NOW: u64 = 1_767_225_600;
    const HOUR: u64 = 3600;

    fn validity() -> Validity {
        Validity {
            leeway: Duration::from_secs(30),
            max_lifetime: Duration::from_secs(24 * HOUR),
        }
    }

    fn claims(iat: Option<u64>, nbf: Option<u64>, exp: u64) -> Claims {
        Claims {
            sub: "ada".into(),
            room: "standup".into(),
            name: None,
            grants: Grants::ALL,
            exp,
            iat,
            nbf,
        }
    }

    fn check(iat: Option<u64>, nbf: Option<u64>, exp: u64) -> Result<(), TokenError> {
        validity().check(&claims(iat, nbf, exp), NOW)
    }

    #[test]
    fn a_token_within_its_times_is_valid() {
        assert_eq!(check(Some(NOW), None, NOW + HOUR), Ok(()));
        assert_eq!(check(None, None, NOW + HOUR), Ok(()));
        assert_eq!(check(Some(NOW - HOUR), Some(NOW - 10), NOW + HOUR), Ok(()));
        assert_eq!(
            check(Some(NOW), None, NOW + 24 * HOUR),
            Ok(()),
            "exactly the cap"
        );
        assert_eq!(
            check(Some(NOW + 30), Some(NOW + 30), NOW + HOUR),
            Ok(()),
            "leeway"
        );
        assert_eq!(
            check(None, None, NOW - 30),
            Ok(()),
            "expired within the leeway"
        );
    }

    #[test]
    fn expired_and_early_tokens_are_refused() {
        assert_eq!(
            check(Some(NOW - 2 * HOUR), None, NOW - HOUR),
            Err(TokenError::Expired {
                expired_at: NOW - HOUR
            })
        );
        assert_eq!(
            check(None, None, 0),
            Err(TokenError::Expired { expired_at: 0 })
        );
        assert_eq!(
            check(None, Some(NOW + 31), NOW + HOUR),
            Err(TokenError::NotYetValid {
                claim: "nbf",
                at: NOW + 31
            })
        );
        assert_eq!(
            check(None, Some(u64::MAX), u64::MAX),
            Err(TokenError::NotYetValid {
                claim: "nbf",
                at: u64::MAX
            })
        );
        assert_eq!(
            check(Some(NOW + HOUR), None, NOW + 2 * HOUR),
            Err(TokenError::NotYetValid {
                claim: "iat",
                at: NOW + HOUR
            }),
            "minted in the future"
        );
    }

    #[test]
    fn a_token_valid_for_longer_than_the_cap_is_refused() {
        let max = 24 * HOUR;
        assert_eq!(
            check(None, None, u64::MAX),
            Err(TokenError::TooLong {
                seconds: u64::MAX - NOW,
                max
            }),
            "never expires"
        );
        assert_eq!(
            check(Some(NOW), None, u64::MAX),
            Err(TokenError::TooLong {
                seconds: u64::MAX - NOW,
                max
            })
        );
        assert_eq!(
            check(Some(u64::MAX - 10), None, u64::MAX),
            Err(TokenError::NotYetValid {
                claim: "iat",
                at: u64::MAX - 10
            }),
            "an `iat` made up to pass the cap"
        );
        assert_eq!(
            check(None, None, NOW + max + 31),
            Err(TokenError::TooLong {
                seconds: max + 31,
                max
            })
        );
        assert_eq!(check(None, None, NOW + max + 30), Ok(()));
        assert_eq!(
            check(Some(NOW - HOUR), None, NOW + max),
            Err(TokenError::TooLong {
                seconds: max + HOUR,
                max
            }),
            "minted for 25 hours: refused now, not only in its first hour"
        );
    }
}

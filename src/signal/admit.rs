//! Who a `join` admits, by its token: on an open server everybody with every grant; with a
//! token key, the person the token names, or, with an invite link's token, a new person for
//! each join the invite has left.

use std::time::SystemTime;

use tracing::warn;

use crate::ServerContext;
use crate::auth::{Access, Admission, Claims, Grants, InviteClaims, TokenError, unix_seconds};
use crate::signal::protocol::ErrorCode;
use crate::signal::session::MessageError;

/// Who joins, and to do what.
pub struct Admitted {
    /// The identity from the token, or the one made for an invite's guest; none on an open
    /// server.
    pub identity: Option<String>,
    /// The display name: the token's, or the one `join` gave.
    pub name: String,
    /// What the participant may do.
    pub grants: Grants,
    /// The invite it came in by, whose use is counted until the join is given up.
    pub invite: Option<InviteClaims>,
}

/// Checks `token` for `room`; `name` is the name `join` gave, already checked. An invite's
/// join is counted here: give it back ([`give_back`]) if the join does not happen.
pub fn admit(
    context: &ServerContext,
    room: &str,
    name: String,
    token: Option<String>,
) -> Result<Admitted, MessageError> {
    // An open server: everybody may do everything, and a token is not looked at.
    let Some(key) = &context.token_key else {
        return Ok(Admitted {
            identity: None,
            name,
            grants: Grants::ALL,
            invite: None,
        });
    };
    let token = token.ok_or(TokenError::Missing)?;
    match key.admit(&token, room)? {
        Admission::Person(Access {
            identity,
            name: token_name,
            grants,
            ..
        }) => Ok(Admitted {
            identity: Some(identity),
            name: token_name.unwrap_or(name),
            grants,
            invite: None,
        }),
        Admission::Invite(invite) => {
            let now = unix_seconds(SystemTime::now());
            context
                .invite_uses
                .take(&invite.jti, invite.max_uses, invite.exp, now, key.leeway())
                .map_err(|used_up| {
                    MessageError::Refused(ErrorCode::InviteUsedUp, used_up.to_string())
                })?;
            Ok(Admitted {
                identity: Some(invite.fresh_identity()),
                name,
                grants: invite.grants.in_room(),
                invite: Some(invite),
            })
        }
    }
}

/// Checks `token` for `room` without admitting anybody (no invite's use is taken): what a node
/// of a cluster does before it places a room or sends the join on to the node hosting it, so
/// that nobody without a valid token can make entries in the cluster's directory.
pub fn check(context: &ServerContext, room: &str, token: Option<&str>) -> Result<(), MessageError> {
    let Some(key) = &context.token_key else {
        return Ok(());
    };
    key.admit(token.ok_or(TokenError::Missing)?, room)?;
    Ok(())
}

/// Gives back the use an invite's join took, when the join was refused after all.
pub fn give_back(context: &ServerContext, admitted: &Admitted) {
    if let Some(invite) = &admitted.invite {
        context.invite_uses.give_back(&invite.jti);
    }
}

/// A token of its own for a guest an invite admitted, so that its client rejoins as the same
/// person (taking the place of its dropped session) without using the invite again. It lasts
/// as long as the server lets a token last, counted from the join: an invite bounds when
/// people may come in, not how long the call they joined may run.
pub fn guest_token(context: &ServerContext, room: &str, admitted: &Admitted) -> Option<String> {
    let (Some(key), Some(_), Some(identity)) =
        (&context.token_key, &admitted.invite, &admitted.identity)
    else {
        return None;
    };
    let claims = Claims::new(
        room,
        identity.as_str(),
        admitted.grants,
        SystemTime::now(),
        key.max_lifetime(),
    );
    match key.mint(&claims) {
        Ok(token) => Some(token),
        Err(error) => {
            // The guest is in; only its reconnections would use the invite again.
            warn!(%error, "cannot mint a guest's own token");
            None
        }
    }
}

//! The ICE servers each client is told about in `joined`, with short-lived TURN credentials.
//!
//! A TURN server configured with a shared secret (coturn's `use-auth-secret` and
//! `static-auth-secret`) accepts any username of the form `<expiry>:<user>` whose password is
//! `base64(HMAC-SHA1(secret, username))`, until the expiry passes: the "TURN REST API"
//! convention (draft-uberti-behave-turn-rest). The server hands out one such pair per join, so
//! no long-lived TURN password ever reaches a browser, and a leaked one soon stops working.

use std::time::{Duration, SystemTime};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::auth::unix_seconds;
use crate::config::IceConfig;
use crate::signal::protocol::IceServer;

/// A TURN username and the password that goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredential {
    /// `<expiry in Unix seconds>:<user>`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub credential: String,
}

/// The credential for `user` valid until `now + ttl`, under `secret`.
pub fn turn_credential(secret: &str, user: &str, now: SystemTime, ttl: Duration) -> TurnCredential {
    let expiry = unix_seconds(now).saturating_add(ttl.as_secs());
    let username = format!("{expiry}:{user}");
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    TurnCredential {
        username,
        credential,
    }
}

/// The ICE servers for a client known as `user`: the configured STUN (or credential-less
/// TURN) URLs, and the TURN server with a fresh credential, when one is configured.
pub fn ice_servers(ice: &IceConfig, user: &str, now: SystemTime) -> Vec<IceServer> {
    let mut servers = Vec::new();
    if !ice.urls.is_empty() {
        servers.push(IceServer {
            urls: ice.urls.clone(),
            username: None,
            credential: None,
        });
    }
    if let Some(turn) = ice.turn.as_ref().filter(|turn| !turn.urls.is_empty()) {
        let TurnCredential {
            username,
            credential,
        } = turn_credential(&turn.secret, user, now, turn.credential_ttl);
        servers.push(IceServer {
            urls: turn.urls.clone(),
            username: Some(username),
            credential: Some(credential),
        });
    }
    servers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TurnConfig;

    #[test]
    fn credentials_follow_the_turn_rest_convention() {
        // Computed independently: `printf '1767229200:ada' | openssl dgst -sha1 -hmac
        // north-wind -binary | base64`.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        assert_eq!(
            turn_credential("north-wind", "ada", now, Duration::from_secs(3600)),
            TurnCredential {
                username: "1767229200:ada".to_owned(),
                credential: "Kj9auhCAsumrKPlOwIfEGf8wCk4=".to_owned(),
            }
        );
    }

    #[test]
    fn clients_get_stun_and_a_turn_credential_of_their_own() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let mut ice = IceConfig {
            urls: vec!["stun:stun.example.org:3478".to_owned()],
            turn: None,
        };
        assert_eq!(
            ice_servers(&ice, "ada", now),
            vec![IceServer {
                urls: vec!["stun:stun.example.org:3478".to_owned()],
                username: None,
                credential: None,
            }]
        );
        ice.turn = Some(TurnConfig {
            urls: vec![
                "turn:turn.example.org:3478".to_owned(),
                "turns:turn.example.org:5349?transport=tcp".to_owned(),
            ],
            secret: "north-wind".to_owned(),
            credential_ttl: Duration::from_secs(3600),
        });
        let servers = ice_servers(&ice, "ada", now);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[1].urls.len(), 2);
        assert_eq!(servers[1].username.as_deref(), Some("1767229200:ada"));
        assert_eq!(
            servers[1].credential.as_deref(),
            Some("Kj9auhCAsumrKPlOwIfEGf8wCk4=")
        );
        let bob = ice_servers(&ice, "bob", now);
        assert_ne!(bob[1].credential, servers[1].credential);
        ice.urls.clear();
        assert_eq!(ice_servers(&ice, "ada", now).len(), 1, "TURN alone");
    }
}

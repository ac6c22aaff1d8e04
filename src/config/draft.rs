//! A configuration being assembled from its layers.
//!
//! Some settings only make sense together (a port range's two ends, a TLS certificate and its
//! key, TURN URLs and their secret). The keys write their halves here, and [`Draft::finish`]
//! checks the pairs once every layer has spoken.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::load::Origin;
use super::{Config, TlsFiles, TurnConfig};
use crate::auth::MIN_KEY_BYTES;
use crate::client::ClientFiles;

/// The settings read so far, with the halves of pairs kept apart until [`finish`](Self::finish).
#[derive(Debug)]
pub struct Draft {
    /// Everything that needs no partner.
    pub config: Config,
    /// `http.tls_cert`.
    pub tls_cert: Option<PathBuf>,
    /// `http.tls_key`.
    pub tls_key: Option<PathBuf>,
    /// `http.client_dir`.
    pub client_dir: Option<PathBuf>,
    /// `media.ips`, when set.
    pub media_ips: Option<Vec<IpAddr>>,
    /// `media.interfaces`, when set.
    pub media_interfaces: Option<Vec<String>>,
    /// `ice.turn_urls`.
    pub turn_urls: Option<Vec<String>>,
    /// `ice.turn_secret`.
    pub turn_secret: Option<String>,
    /// `ice.turn_credential_ttl_secs`.
    pub turn_credential_ttl: Duration,
    /// Where each key's value came from, for messages about pairs.
    pub origins: HashMap<&'static str, Origin>,
}

/// A setting refused once the layers are combined.
#[derive(Debug)]
pub struct Refused {
    /// The key to blame.
    pub key: &'static str,
    /// Why.
    pub reason: String,
}

fn refuse(key: &'static str, reason: impl Into<String>) -> Refused {
    Refused {
        key,
        reason: reason.into(),
    }
}

impl Default for Draft {
    fn default() -> Self {
        Self {
            config: Config::default(),
            tls_cert: None,
            tls_key: None,
            client_dir: None,
            media_ips: None,
            media_interfaces: None,
            turn_urls: None,
            turn_secret: None,
            turn_credential_ttl: Duration::from_secs(24 * 3600),
            origins: HashMap::new(),
        }
    }
}

impl Draft {
    /// Checks the pairs and builds the configuration.
    pub fn finish(self) -> Result<Config, Refused> {
        let mut config = self.config;

        config.http.tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => return Err(refuse("http.tls_key", "is needed with http.tls_cert")),
            (None, Some(_)) => return Err(refuse("http.tls_cert", "is needed with http.tls_key")),
        };
        if let Some(dir) = self.client_dir {
            if !dir.is_dir() {
                return Err(refuse(
                    "http.client_dir",
                    format!("must be a folder: {} is not one", dir.display()),
                ));
            }
            config.client = ClientFiles::Directory(dir);
        }

        if self.media_ips.as_ref().is_some_and(Vec::is_empty) && self.media_interfaces.is_none() {
            return Err(refuse("media.ips", "must list at least one address"));
        }
        if self.media_ips.is_some() || self.media_interfaces.is_some() {
            let mut ips = self.media_ips.unwrap_or_default();
            for name in self.media_interfaces.unwrap_or_default() {
                ips.extend(
                    interface_ips(&name).map_err(|reason| refuse("media.interfaces", reason))?,
                );
            }
            ips.sort();
            ips.dedup();
            if ips.is_empty() {
                return Err(refuse(
                    "media.interfaces",
                    "gave no IPv4 address to gather on",
                ));
            }
            config.media.ips = ips;
        }
        for public in &config.media.public_ips {
            if let Some(local) = public
                .local
                .filter(|local| !config.media.ips.contains(local))
            {
                return Err(refuse(
                    "media.public_ips",
                    format!(
                        "maps {local}, which is not a media address ({:?})",
                        config.media.ips
                    ),
                ));
            }
        }

        for url in config.ice.urls.iter() {
            check_ice_url(url, &["stun:", "stuns:"])
                .map_err(|reason| refuse("ice.urls", reason))?;
        }
        config.ice.turn = match (self.turn_urls, self.turn_secret) {
            (Some(urls), Some(secret)) => {
                if urls.is_empty() {
                    return Err(refuse("ice.turn_urls", "must list at least one URL"));
                }
                for url in &urls {
                    check_ice_url(url, &["turn:", "turns:"])
                        .map_err(|reason| refuse("ice.turn_urls", reason))?;
                }
                if secret.is_empty() {
                    return Err(refuse("ice.turn_secret", "must not be empty"));
                }
                Some(TurnConfig {
                    urls,
                    secret,
                    credential_ttl: self.turn_credential_ttl,
                })
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(refuse("ice.turn_secret", "is needed with ice.turn_urls"));
            }
            (None, Some(_)) => {
                return Err(refuse("ice.turn_urls", "is needed with ice.turn_secret"));
            }
        };

        if let Some(key) = &config.auth.token_key
            && key.len() < MIN_KEY_BYTES
        {
            return Err(refuse(
                "auth.token_key",
                format!(
                    "must be at least {MIN_KEY_BYTES} bytes long (it has {}); \
                     `openssl rand -hex 32` makes a good one",
                    key.len()
                ),
            ));
        }
        if config.limits.message_burst < config.limits.messages_per_second {
            return Err(refuse(
                "limits.message_burst",
                format!(
                    "({}) must not be below limits.messages_per_second ({})",
                    config.limits.message_burst, config.limits.messages_per_second
                ),
            ));
        }
        Ok(config)
    }
}

/// The IPv4 addresses of the interface called `name`.
fn interface_ips(name: &str) -> Result<Vec<IpAddr>, String> {
    let interfaces = if_addrs::get_if_addrs()
        .map_err(|error| format!("cannot list the network interfaces: {error}"))?;
    let ips: Vec<IpAddr> = interfaces
        .iter()
        .filter(|interface| interface.name == name)
        .map(|interface| interface.ip())
        .filter(IpAddr::is_ipv4)
        .collect();
    if ips.is_empty() {
        let mut names: Vec<&str> = interfaces.iter().map(|i| i.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        return Err(format!(
            "names `{name}`, which has no IPv4 address here (interfaces: {})",
            names.join(", ")
        ));
    }
    Ok(ips)
}

/// Checks that `url` starts with one of `schemes` and names a host.
fn check_ice_url(url: &str, schemes: &[&str]) -> Result<(), String> {
    let Some(rest) = schemes.iter().find_map(|scheme| url.strip_prefix(scheme)) else {
        return Err(format!(
            "must list URLs starting with {}: `{url}` does not",
            schemes.join(" or ")
        ));
    };
    if rest.is_empty() || rest.starts_with(':') || rest.starts_with('?') {
        return Err(format!("must list URLs with a host: `{url}` has none"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_needs_urls_and_a_secret() {
        let draft = Draft {
            turn_secret: Some("s3cret".into()),
            ..Draft::default()
        };
        assert_eq!(draft.finish().expect_err("no URLs").key, "ice.turn_urls");

        let draft = Draft {
            turn_urls: Some(vec!["http://example.com".into()]),
            turn_secret: Some("s3cret".into()),
            ..Draft::default()
        };
        assert_eq!(draft.finish().expect_err("bad URL").key, "ice.turn_urls");
    }

    #[test]
    fn short_token_keys_are_refused() {
        let mut draft = Draft::default();
        draft.config.auth.token_key = Some("short".into());
        assert_eq!(draft.finish().expect_err("short key").key, "auth.token_key");
    }

    #[test]
    fn unknown_interfaces_are_refused() {
        let draft = Draft {
            media_interfaces: Some(vec!["no-such-interface0".into()]),
            ..Draft::default()
        };
        let refused = draft.finish().expect_err("unknown interface");
        assert_eq!(refused.key, "media.interfaces");
        assert!(refused.reason.contains("no-such-interface0"));
    }

    #[test]
    fn ice_urls_are_checked() {
        assert!(check_ice_url("stun:stun.example.com:3478", &["stun:"]).is_ok());
        assert!(check_ice_url("stun:", &["stun:"]).is_err());
        assert!(check_ice_url("turn:example.com", &["stun:"]).is_err());
    }
}

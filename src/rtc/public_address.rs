//! Announcing a public address for a server behind 1:1 NAT.
//!
//! A cloud instance often holds only a private address; its public one is mapped to it port
//! for port by the provider's NAT. The server's ICE agent must keep using the private address
//! (packets arrive there), but clients must be told the public one. webrtc-rs 0.21's setting
//! for this (`with_nat_1to1_ips`) is not applied by its connection driver, so the server
//! rewrites its own host candidates on the way out: in the candidates it trickles and in the
//! SDP it sends. The port stays the same, which is what 1:1 NAT guarantees.

use std::borrow::Cow;
use std::net::IpAddr;

use crate::config::PublicIp;

/// Maps local addresses to the public addresses announced for them.
#[derive(Debug, Clone, Default)]
pub struct PublicAddresses {
    mappings: Vec<PublicIp>,
}

impl PublicAddresses {
    /// Announces per `mappings`: a mapping without a local address stands for every
    /// non-loopback local address that has no mapping of its own.
    pub fn new(mappings: Vec<PublicIp>) -> Self {
        Self { mappings }
    }

    /// Whether anything is rewritten at all.
    pub fn is_empty(&self) -> bool {
        self.mappings.is_empty()
    }

    /// The public address announced for `local`, if it has one.
    pub fn public_for(&self, local: IpAddr) -> Option<IpAddr> {
        let exact = self.mappings.iter().find(|m| m.local == Some(local));
        let catch_all = || {
            self.mappings
                .iter()
                .find(|m| m.local.is_none())
                .filter(|_| !local.is_loopback())
        };
        exact.or_else(catch_all).map(|mapping| mapping.public)
    }

    /// A candidate attribute value (`candidate:1 1 udp 2130706431 10.0.0.7 50000 typ host`)
    /// with a host address replaced by its public address.
    pub fn rewrite_candidate<'a>(&self, candidate: &'a str) -> Cow<'a, str> {
        if self.is_empty() {
            return Cow::Borrowed(candidate);
        }
        let fields: Vec<&str> = candidate.split(' ').collect();
        // foundation component transport priority address port "typ" type ...
        let is_host = fields.get(6) == Some(&"typ") && fields.get(7) == Some(&"host");
        let public = fields
            .get(4)
            .and_then(|address| address.parse::<IpAddr>().ok())
            .and_then(|local| self.public_for(local));
        match public {
            Some(public) if is_host => {
                let public = public.to_string();
                let mut rewritten = fields;
                rewritten[4] = &public;
                Cow::Owned(rewritten.join(" "))
            }
            _ => Cow::Borrowed(candidate),
        }
    }

    /// An SDP with the host addresses of its `a=candidate` lines rewritten.
    pub fn rewrite_sdp<'a>(&self, sdp: &'a str) -> Cow<'a, str> {
        if self.is_empty() || !sdp.contains("a=candidate:") {
            return Cow::Borrowed(sdp);
        }
        let mut rewritten = String::with_capacity(sdp.len());
        for line in sdp.split_inclusive('\n') {
            let (content, ending) = match line.strip_suffix("\r\n") {
                Some(content) => (content, "\r\n"),
                None => line
                    .strip_suffix('\n')
                    .map_or((line, ""), |content| (content, "\n")),
            };
            match content.strip_prefix("a=") {
                Some(attribute) if attribute.starts_with("candidate:") => {
                    rewritten.push_str("a=");
                    rewritten.push_str(&self.rewrite_candidate(attribute));
                }
                _ => rewritten.push_str(content),
            }
            rewritten.push_str(ending);
        }
        Cow::Owned(rewritten)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(mappings: &[&str]) -> PublicAddresses {
        PublicAddresses::new(
            mappings
                .iter()
                .map(|m| m.parse().expect("mapping"))
                .collect(),
        )
    }

    #[test]
    fn host_candidates_get_the_public_address() {
        let public = addresses(&["203.0.113.7"]);
        assert_eq!(
            public.rewrite_candidate("candidate:1 1 udp 2130706431 10.0.0.7 50000 typ host"),
            "candidate:1 1 udp 2130706431 203.0.113.7 50000 typ host"
        );
        // Loopback is not what a catch-all public address stands for.
        let loopback = "candidate:2 1 udp 2130706431 127.0.0.1 50000 typ host";
        assert_eq!(public.rewrite_candidate(loopback), loopback);
        // Only host candidates are the server's own addresses.
        let relay =
            "candidate:3 1 udp 16777215 198.51.100.1 3478 typ relay raddr 10.0.0.7 rport 50000";
        assert_eq!(public.rewrite_candidate(relay), relay);
    }

    #[test]
    fn pairs_map_each_local_address_to_its_own() {
        let public = addresses(&["203.0.113.7/10.0.0.7", "203.0.113.8/10.0.0.8"]);
        assert_eq!(
            public.public_for("10.0.0.8".parse().expect("ip")),
            "203.0.113.8".parse().ok()
        );
        assert_eq!(public.public_for("10.0.0.9".parse().expect("ip")), None);
    }

    #[test]
    fn sdp_candidate_lines_are_rewritten_and_the_rest_kept() {
        let public = addresses(&["203.0.113.7"]);
        let sdp = "v=0\r\nc=IN IP4 0.0.0.0\r\na=candidate:1 1 udp 2130706431 10.0.0.7 50000 typ host\r\na=end-of-candidates\r\n";
        assert_eq!(
            public.rewrite_sdp(sdp),
            "v=0\r\nc=IN IP4 0.0.0.0\r\na=candidate:1 1 udp 2130706431 203.0.113.7 50000 typ host\r\na=end-of-candidates\r\n"
        );
        assert!(matches!(
            PublicAddresses::default().rewrite_sdp(sdp),
            Cow::Borrowed(_)
        ));
    }
}

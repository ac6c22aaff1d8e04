//! Which web pages may open the signaling WebSocket.
//!
//! Browsers let any page open a WebSocket to any server, and send the page's origin along. With
//! `http.allowed_origins` set, `/ws` takes a browser's socket only from a listed origin, or from
//! the server's own when it is reached by address (the `Origin` names the IP address or
//! `localhost` the request was sent to), so another site cannot drive a visitor's browser into a
//! room. A name the request was sent to proves nothing: a site can point its own name at this
//! server's address (DNS rebinding), and its pages then send that name as both `Host` and
//! `Origin`; so a name must be listed. A request with no `Origin` is not a browser page's (the
//! load test, a native client) and is let through: the check protects browsers, and a program
//! can send any header it likes. With no list, every origin is accepted.

use std::fmt;
use std::str::FromStr;

use axum::http::{HeaderMap, header};

/// A web origin: `https://meet.example.com`, `http://localhost:8080`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebOrigin {
    scheme: Scheme,
    /// Lower case; an IPv6 address keeps its brackets.
    host: String,
    port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// Why a text is not an origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadOrigin {
    /// Not `http://` or `https://`.
    #[error("it must start with http:// or https://")]
    Scheme,
    /// No host, or a host with characters a host cannot have.
    #[error("it must name a host")]
    Host,
    /// A port that is not a number from 1 to 65535.
    #[error("its port must be a number from 1 to 65535")]
    Port,
    /// A path, query or fragment after the host.
    #[error("an origin is a scheme, a host and a port, with no path")]
    Path,
}

impl FromStr for WebOrigin {
    type Err = BadOrigin;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (scheme, rest) = text.split_once("://").ok_or(BadOrigin::Scheme)?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(BadOrigin::Scheme),
        };
        // A single trailing slash is how origins are often pasted from an address bar.
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err(BadOrigin::Path);
        }
        let (host, port) = split_authority(authority)?;
        Ok(Self {
            scheme,
            host,
            port: port.unwrap_or(scheme.default_port()),
        })
    }
}

impl fmt::Display for WebOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://{}", self.host)?;
        if self.port != self.scheme.default_port() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

/// `host[:port]` as an `Origin` or a `Host` header writes it: the host in lower case, and the
/// port if one is written.
fn split_authority(authority: &str) -> Result<(String, Option<u16>), BadOrigin> {
    if authority.contains('@') {
        return Err(BadOrigin::Host);
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (address, after) = rest.split_once(']').ok_or(BadOrigin::Host)?;
        let in_address = |c: char| c.is_ascii_hexdigit() || ".:".contains(c);
        if address.is_empty() || !address.chars().all(in_address) {
            return Err(BadOrigin::Host);
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(BadOrigin::Port)?),
        };
        (format!("[{address}]"), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let in_name = |c: char| c.is_ascii_alphanumeric() || "-._".contains(c);
        if host.is_empty() || !host.chars().all(in_name) {
            return Err(BadOrigin::Host);
        }
        (host.to_owned(), port)
    };
    let port = port
        .map(|port| port.parse::<u16>().ok().filter(|port| *port != 0))
        .map(|port| port.ok_or(BadOrigin::Port))
        .transpose()?;
    Ok((host.to_ascii_lowercase(), port))
}

/// Why a WebSocket was refused for its origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "origin `{origin}` may not open the signaling socket: it is neither this server's nor listed in http.allowed_origins"
)]
pub struct ForeignOrigin {
    /// The `Origin` header, as sent.
    pub origin: String,
}

/// Whether a WebSocket upgrade with `headers` may go ahead, given the allowed origins (an empty
/// list allows every origin).
pub fn check(headers: &HeaderMap, allowed: &[WebOrigin]) -> Result<(), ForeignOrigin> {
    if allowed.is_empty() {
        return Ok(());
    }
    let Some(sent) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let refused = || ForeignOrigin {
        origin: String::from_utf8_lossy(sent.as_bytes()).into_owned(),
    };
    // `null` (a sandboxed page, a file) and anything unreadable is nobody's origin.
    let origin: WebOrigin = sent
        .to_str()
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(refused)?;
    if allowed.contains(&origin) || is_same_origin(&origin, headers) {
        Ok(())
    } else {
        Err(refused())
    }
}

/// Whether `origin` names the address and port the request was sent to (its `Host` header): an
/// IP address or `localhost`, which no other site can make its own, unlike a name. The scheme
/// is not compared: behind a proxy that terminates TLS the server itself speaks plain HTTP to a
/// page that was loaded over HTTPS.
fn is_same_origin(origin: &WebOrigin, headers: &HeaderMap) -> bool {
    let Some((host, port)) = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .and_then(|host| split_authority(host.trim()).ok())
    else {
        return false;
    };
    is_address(&host)
        && host == origin.host
        && port.unwrap_or(origin.scheme.default_port()) == origin.port
}

/// Whether `host` (lower case, an IPv6 address in brackets) is an IP address or `localhost`.
fn is_address(host: &str) -> bool {
    host == "localhost"
        || host.parse::<std::net::Ipv4Addr>().is_ok()
        || host
            .strip_prefix('[')
            .and_then(|inner| inner.strip_suffix(']'))
            .is_some_and(|inner| inner.parse::<std::net::Ipv6Addr>().is_ok())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn origin(text: &str) -> WebOrigin {
        text.parse().expect("an origin")
    }

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).expect("a host"));
        if let Some(origin) = origin {
            headers.insert(
                header::ORIGIN,
                HeaderValue::from_str(origin).expect("an origin"),
            );
        }
        headers
    }

    #[test]
    fn origins_are_read_and_compared_as_browsers_write_them() {
        assert_eq!(
            origin("HTTPS://Meet.Example.com/"),
            origin("https://meet.example.com:443")
        );
        assert_ne!(
            origin("http://meet.example.com"),
            origin("https://meet.example.com")
        );
        assert_eq!(origin("http://[::1]:8080").to_string(), "http://[::1]:8080");
        assert_eq!(
            origin("https://meet.example.com:443").to_string(),
            "https://meet.example.com"
        );
        for (text, error) in [
            ("meet.example.com", BadOrigin::Scheme),
            ("ftp://meet.example.com", BadOrigin::Scheme),
            ("https://", BadOrigin::Host),
            ("https://user@meet.example.com", BadOrigin::Host),
            ("https://meet.example.com:0", BadOrigin::Port),
            ("https://meet.example.com:99999", BadOrigin::Port),
            ("https://meet.example.com/room", BadOrigin::Path),
            ("null", BadOrigin::Scheme),
        ] {
            assert_eq!(text.parse::<WebOrigin>(), Err(error), "{text}");
        }
    }

    #[test]
    fn listed_and_same_origins_pass_and_foreign_ones_do_not() {
        let allowed = [origin("https://meet.example.com")];
        let host = "switchyard.internal:8080";
        assert!(check(&headers(Some("https://meet.example.com"), host), &allowed).is_ok());
        assert!(
            check(&headers(None, host), &allowed).is_ok(),
            "not a browser"
        );
        // Its own origin, reached by address.
        for (own, host) in [
            ("http://10.0.0.5:8080", "10.0.0.5:8080"),
            ("http://localhost:8080", "localhost:8080"),
            ("http://[::1]:8080", "[::1]:8080"),
        ] {
            assert!(check(&headers(Some(own), host), &allowed).is_ok(), "{own}");
        }
        // Reached by a name, which a site can point at this server (DNS rebinding): only a
        // listed one passes.
        assert!(
            check(
                &headers(Some("http://switchyard.internal:8080"), host),
                &allowed
            )
            .is_err()
        );
        assert!(
            check(
                &headers(
                    Some("http://rebound.evil.example:8080"),
                    "rebound.evil.example:8080"
                ),
                &allowed
            )
            .is_err()
        );
        assert!(
            check(
                &headers(Some("https://meet.example.com"), "meet.example.com"),
                &allowed
            )
            .is_ok()
        );
        for foreign in [
            "https://evil.example",
            "https://meet.example.com.evil.example",
            "http://switchyard.internal:8081",
            "null",
        ] {
            let refused = check(&headers(Some(foreign), host), &allowed).expect_err(foreign);
            assert_eq!(refused.origin, foreign);
        }
    }

    #[test]
    fn without_a_list_every_origin_passes() {
        assert!(
            check(
                &headers(Some("https://evil.example"), "localhost:8080"),
                &[]
            )
            .is_ok()
        );
    }
}

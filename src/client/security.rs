//! The headers that keep the client's pages to themselves.
//!
//! The page carries access tokens and drives the camera and microphone, so it must not run
//! anything but its own files, must not be framed by another site (clickjacking a "share your
//! screen" button), and must not tell other sites where it was (a token in the address).
//!
//! The Content-Security-Policy allows what the client uses and nothing else: its modules and
//! its style sheet from the server itself, its own icon, and connections back to the server
//! (`'self'` covers the `ws:`/`wss:` signaling socket on the same host). No inline script or
//! style, no `eval`, no `data:` or `blob:` URLs: video plays from `MediaStream`s given as
//! `srcObject`, which the policy does not govern. The browser tests fail on any violation.
//!
//! On a node of a cluster the page may be redirected to the signaling socket of the node
//! hosting its room, which is on another origin unless the nodes sit behind one proxy, and may
//! be a node that joined the cluster after the page was loaded: so there the page may open a
//! WebSocket to any host ([`CLUSTER_CONTENT_SECURITY_POLICY`]). Everything else stays as strict.

use axum::http::{HeaderName, HeaderValue, header};

/// The policy for every client file of a single server.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The policy for every client file of a node of a cluster: as [`CONTENT_SECURITY_POLICY`],
/// but for WebSockets to other hosts.
pub const CLUSTER_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self' ws: wss:; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Every header the client's files are served with for their safety, on a node of a cluster
/// (`cluster`) or a single server.
pub fn headers(cluster: bool) -> [(HeaderName, HeaderValue); 4] {
    let policy = if cluster {
        CLUSTER_CONTENT_SECURITY_POLICY
    } else {
        CONTENT_SECURITY_POLICY
    };
    [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(policy),
        ),
        // For browsers that predate `frame-ancestors`.
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_of_a_cluster_widens_only_where_websockets_may_go() {
        let single = CONTENT_SECURITY_POLICY.replace("connect-src 'self'", "");
        let cluster = CLUSTER_CONTENT_SECURITY_POLICY.replace("connect-src 'self' ws: wss:", "");
        assert_eq!(single, cluster);
        assert_eq!(headers(false)[0].1, CONTENT_SECURITY_POLICY);
        assert_eq!(headers(true)[0].1, CLUSTER_CONTENT_SECURITY_POLICY);
    }
}

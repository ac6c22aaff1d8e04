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

use axum::http::{HeaderName, HeaderValue, header};

/// The policy for every client file.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Every header the client's files are served with for their safety.
pub fn headers() -> [(HeaderName, HeaderValue); 4] {
    [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
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

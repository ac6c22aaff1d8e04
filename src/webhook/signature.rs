//! The signature on every webhook request: `Switchyard-Signature: t=<unix seconds>,v1=<hex>`,
//! where `v1` is the HMAC-SHA256, keyed with `webhooks.key`, of `<t>.<body>`.
//!
//! The timestamp is signed with the body, so a receiver that refuses old timestamps refuses a
//! request recorded and sent again later; a retry is signed afresh, with its own time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header the signature travels in.
pub const HEADER: &str = "Switchyard-Signature";

/// How far from its receiver's clock a timestamp may be, by default, in [`verify`].
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

type HmacSha256 = Hmac<Sha256>;

/// The header's value for `body`, sent at `unix_secs`.
pub fn sign(key: &[u8], unix_secs: u64, body: &[u8]) -> String {
    format!("t={unix_secs},v1={}", hex(&mac(key, unix_secs, body)))
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not `t=<seconds>,v1=<hex>`.
    #[error("the signature header is not `t=<seconds>,v1=<hex>`")]
    Malformed,
    /// The timestamp is further from now than the tolerance.
    #[error("the signature's timestamp is {0} s away from now")]
    Stale(u64),
    /// No `v1` matches the body and the key.
    #[error("the signature does not match the body")]
    Mismatch,
}

/// Checks `header` against `body`, as a receiver would: the timestamp within `tolerance_secs`
/// of `now_unix_secs`, and a `v1` that matches (compared in constant time). Several `v1`
/// entries may be given, any of which may match (for a change of key).
pub fn verify(
    key: &[u8],
    header: &str,
    body: &[u8],
    now_unix_secs: u64,
    tolerance_secs: u64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => {
                timestamp = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| SignatureError::Malformed)?,
                );
            }
            Some(("v1", value)) => signatures.push(unhex(value).ok_or(SignatureError::Malformed)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let skew = now_unix_secs.abs_diff(timestamp);
    if skew > tolerance_secs {
        return Err(SignatureError::Stale(skew));
    }
    let matches = signatures
        .iter()
        .any(|signature| keyed(key, timestamp, body).verify_slice(signature).is_ok());
    if matches {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn keyed(key: &[u8], unix_secs: u64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(unix_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

fn mac(key: &[u8], unix_secs: u64, body: &[u8]) -> Vec<u8> {
    keyed(key, unix_secs, body).finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut text, byte| {
            let _ = write!(text, "{byte:02x}");
            text
        })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn the_signature_is_hmac_sha256_of_the_time_and_the_body() {
        // Computed independently: printf '1767229200.{"a":1}' |
        //   openssl dgst -sha256 -hmac 0123456789abcdef0123456789abcdef
        assert_eq!(
            sign(KEY, 1_767_229_200, br#"{"a":1}"#),
            "t=1767229200,v1=b09f24e941e26ca2ad583b7c5df944522e87832f5c21feb808708c2d2aa3034d"
        );
    }

    #[test]
    fn a_receiver_accepts_what_was_signed_and_nothing_else() {
        let body = br#"{"type":"room_started"}"#;
        let header = sign(KEY, 1000, body);
        assert_eq!(verify(KEY, &header, body, 1000, 300), Ok(()));
        assert_eq!(verify(KEY, &header, body, 1299, 300), Ok(()));
        assert_eq!(
            verify(KEY, &header, body, 1301, 300),
            Err(SignatureError::Stale(301)),
            "a replay after the tolerance"
        );
        assert_eq!(
            verify(KEY, &header, br#"{"type":"room_finished"}"#, 1000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"another key, also thirty-two by", &header, body, 1000, 300),
            Err(SignatureError::Mismatch)
        );
        // The time is signed too: moving it forward breaks the signature.
        let moved = header.replacen("t=1000", "t=1200", 1);
        assert_eq!(
            verify(KEY, &moved, body, 1200, 300),
            Err(SignatureError::Mismatch)
        );
        for malformed in ["", "t=1000", "v1=00", "t=x,v1=00", "t=1000,v1=0g"] {
            assert_eq!(
                verify(KEY, malformed, body, 1000, 300),
                Err(SignatureError::Malformed),
                "{malformed}"
            );
        }
        let rotated = format!("{header},v1={}", "00".repeat(32));
        assert_eq!(verify(KEY, &rotated, body, 1000, 300), Ok(()));
    }

    #[test]
    fn hex_goes_both_ways() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(unhex("000fff"), Some(vec![0, 15, 255]));
        assert_eq!(unhex("0"), None);
    }
}

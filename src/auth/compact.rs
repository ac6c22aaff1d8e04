//! A token's compact form (RFC 7515 §7.1): three base64url parts separated by dots, a JSON
//! header, JSON claims and the signature. This reads the parts and checks the header; the
//! signature is `jsonwebtoken`'s to check.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::TokenError;
use crate::signal::strict_json;

/// The one algorithm tokens are signed with.
pub const ALGORITHM: &str = "HS256";

/// A token split into its parts, nothing checked yet.
pub struct Compact<'a> {
    /// `header.claims`, the text the signature covers.
    pub signed: &'a str,
    header: &'a str,
    claims: &'a str,
    /// The signature, base64url.
    pub signature: &'a str,
}

impl<'a> Compact<'a> {
    /// Splits `token` into exactly three parts.
    pub fn split(token: &'a str) -> Result<Self, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Invalid(
                "it is not a JWT: three base64url parts separated by dots".to_owned(),
            ));
        };
        Ok(Self {
            signed: &token[..header.len() + 1 + claims.len()],
            header,
            claims,
            signature,
        })
    }

    /// Checks the header: HS256, and no extension the server would have to understand.
    ///
    /// RFC 7515 §4.1.11: a recipient must refuse a token whose `crit` lists an extension it
    /// does not understand, and this server understands none, so any `crit` is refused (an
    /// empty one too, which the RFC forbids).
    pub fn check_header(&self) -> Result<(), TokenError> {
        let header = decode_object(self.header).map_err(|problem| {
            TokenError::Invalid(format!(
                "its header is not a base64url JSON object: {problem}"
            ))
        })?;
        if header.get("alg").and_then(Value::as_str) != Some(ALGORITHM) {
            return Err(TokenError::Invalid(format!(
                "it must be signed with {ALGORITHM} (`alg` in its header)"
            )));
        }
        if header.contains_key("crit") {
            return Err(TokenError::Invalid(
                "its header lists critical extensions (`crit`), and this server understands none"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    /// The claims, read strictly: a claim given twice is refused.
    pub fn claims(&self) -> Result<Map<String, Value>, TokenError> {
        decode_object(self.claims).map_err(|problem| {
            TokenError::Invalid(format!(
                "its claims are not a base64url JSON object: {problem}"
            ))
        })
    }
}

/// One base64url part holding a JSON object, duplicate keys refused.
fn decode_object(part: &str) -> Result<Map<String, Value>, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|error| format!("not base64url ({error})"))?;
    let text = std::str::from_utf8(&bytes).map_err(|error| format!("not UTF-8 ({error})"))?;
    match strict_json::from_str(text).map_err(|error| error.to_string())? {
        Value::Object(object) => Ok(object),
        _ => Err("not an object".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn part(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    fn with_header(header: Value) -> String {
        format!("{}.{}.c2ln", part(&header), part(&json!({})))
    }

    fn header_problem(header: Value) -> Option<String> {
        let token = with_header(header);
        match Compact::split(&token).and_then(|compact| compact.check_header()) {
            Ok(()) => None,
            Err(TokenError::Invalid(problem)) => Some(problem),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn splits_three_parts_only() {
        let compact = Compact::split("aGVhZA.Y2xhaW1z.c2ln").unwrap();
        assert_eq!(compact.signed, "aGVhZA.Y2xhaW1z");
        assert_eq!(compact.signature, "c2ln");
        for bad in ["", "a", "a.b", "a.b.c.d", "a.b.c.d.e"] {
            assert!(Compact::split(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_header_must_say_hs256_and_nothing_critical() {
        assert_eq!(header_problem(json!({"alg": "HS256", "typ": "JWT"})), None);
        assert_eq!(header_problem(json!({"alg": "HS256", "kid": "k1"})), None);
        for header in [
            json!({"alg": "none"}),
            json!({"alg": "HS512"}),
            json!({"alg": "RS256"}),
            json!({"alg": "hs256"}),
            json!({"alg": ["HS256"]}),
            json!({"typ": "JWT"}),
        ] {
            assert!(
                header_problem(header.clone()).is_some_and(|problem| problem.contains("HS256")),
                "{header}"
            );
        }
        for crit in [
            json!(["exp"]),
            json!(["b64"]),
            json!([]),
            json!("x"),
            json!(null),
        ] {
            let problem = header_problem(json!({"alg": "HS256", "crit": crit})).unwrap();
            assert!(problem.contains("`crit`"), "{problem}");
        }
    }

    #[test]
    fn a_header_that_is_not_a_json_object_is_refused() {
        for header in [
            "",
            "!!!!",
            "bnVsbA",
            "WzFd",
            "eyJhbGciOiJIUzI1NiIsImFsZyI6Im5vbmUifQ",
        ] {
            let token = format!("{header}.e30.c2ln");
            let problem = match Compact::split(&token).and_then(|c| c.check_header()) {
                Err(TokenError::Invalid(problem)) => problem,
                other => panic!("{header}: {other:?}"),
            };
            assert!(problem.starts_with("its header"), "{problem}");
        }
    }
}

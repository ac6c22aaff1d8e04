//! Properties of [`TokenKey::verify_at`] over generated tokens: nothing makes it panic, nothing
//! but the untouched token verifies, and whatever claims the key holder signs, a token that
//! verifies obeys every rule.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::{Value, json};

use super::tests::sign_raw;
use super::{Claims, Grants, TokenKey};
use crate::signal::protocol::normalize_display_name;

const KEY: &str = "an-hs256-key-of-at-least-32-bytes!!";
const NOW: u64 = 1_767_225_600;
const ROOM: &str = "standup";
const LEEWAY: u64 = 30;
const MAX_LIFETIME: u64 = 24 * 3600;

fn key() -> TokenKey {
    TokenKey::new(KEY)
        .unwrap()
        .with_max_lifetime(Duration::from_secs(MAX_LIFETIME))
}

/// A token the server accepts at [`NOW`].
fn valid_token() -> String {
    let mut claims = Claims::new(
        ROOM,
        "ada",
        Grants::ALL,
        std::time::UNIX_EPOCH + Duration::from_secs(NOW),
        Duration::from_secs(3600),
    );
    claims.name = Some("Ada Lovelace".to_owned());
    key().mint(&claims).unwrap()
}

/// The characters of a token, and the few that could confuse a reader.
const TOKEN_CHARS: &[char] = &[
    'A', 'B', 'Q', 'g', 'w', 'z', '0', '9', '-', '_', '.', '=', '+', '/', ' ', '\n', 'é', '\0',
];

/// A way to damage a token.
#[derive(Debug, Clone)]
enum Damage {
    Replace(Index, char),
    Insert(Index, char),
    Remove(Index),
    Truncate(Index),
    SwapParts(Index, Index),
    FlipBit(Index, u8),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<Index>(), select(TOKEN_CHARS)).prop_map(|(at, ch)| Damage::Replace(at, ch)),
        (any::<Index>(), select(TOKEN_CHARS)).prop_map(|(at, ch)| Damage::Insert(at, ch)),
        any::<Index>().prop_map(Damage::Remove),
        any::<Index>().prop_map(Damage::Truncate),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Damage::SwapParts(a, b)),
        (any::<Index>(), 0..8u8).prop_map(|(at, bit)| Damage::FlipBit(at, bit)),
    ]
}

impl Damage {
    fn apply(&self, token: &str) -> String {
        let mut chars: Vec<char> = token.chars().collect();
        match self {
            Damage::Replace(at, ch) => {
                let at = at.index(chars.len());
                chars[at] = *ch;
            }
            Damage::Insert(at, ch) => chars.insert(at.index(chars.len() + 1), *ch),
            Damage::Remove(at) => {
                chars.remove(at.index(chars.len()));
            }
            Damage::Truncate(at) => chars.truncate(at.index(chars.len())),
            Damage::SwapParts(a, b) => {
                let mut parts: Vec<&str> = token.split('.').collect();
                let (a, b) = (a.index(parts.len()), b.index(parts.len()));
                parts.swap(a, b);
                return parts.join(".");
            }
            Damage::FlipBit(at, bit) => {
                // A bit of the decoded header, claims or signature, encoded again.
                let parts: Vec<&str> = token.split('.').collect();
                let part = at.index(parts.len());
                let mut bytes = URL_SAFE_NO_PAD.decode(parts[part]).unwrap_or_default();
                if !bytes.is_empty() {
                    let byte = at.index(bytes.len());
                    bytes[byte] ^= 1 << bit;
                }
                let mut parts: Vec<String> = parts.iter().map(|p| (*p).to_owned()).collect();
                parts[part] = URL_SAFE_NO_PAD.encode(bytes);
                return parts.join(".");
            }
        }
        chars.into_iter().collect()
    }
}

/// A JSON value for a claim: mostly plausible, sometimes anything.
fn claim_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (NOW - 100_000..NOW + 200_000).prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        select(&[ROOM, "ada", "Ada", " Ada ", "\u{3164}", "Ada\u{202E}", "x"][..])
            .prop_map(Value::from),
        vec(any::<bool>(), 0..3).prop_map(|grants| {
            let mut object = serde_json::Map::new();
            for (grant, name) in grants.into_iter().zip(["publish", "subscribe", "chat"]) {
                object.insert(name.to_owned(), Value::from(grant));
            }
            Value::Object(object)
        }),
    ]
}

/// Claims as a backend might sign them, right or wrong: sound ones with a few claims changed,
/// added or taken away.
fn claims() -> impl Strategy<Value = serde_json::Map<String, Value>> {
    let names = select(
        &[
            "sub", "room", "exp", "iat", "nbf", "name", "grants", "aud", "jti",
        ][..],
    );
    vec((names, proptest::option::of(claim_value())), 0..4).prop_map(|edits| {
        let mut claims = json!({"sub": "ada", "room": ROOM, "exp": NOW + 3600, "iat": NOW})
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (name, value) in edits {
            match value {
                Some(value) => claims.insert(name.to_owned(), value),
                None => claims.remove(name),
            };
        }
        claims
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn any_text_is_refused(text in prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,43}",
        "eyJ[A-Za-z0-9_-]{0,60}\\.eyJ[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{43}",
    ]) {
        prop_assert!(key().verify_at(&text, ROOM, NOW).is_err());
    }

    #[test]
    fn a_damaged_token_never_verifies(damage in damage()) {
        let token = valid_token();
        let damaged = damage.apply(&token);
        prop_assume!(damaged != token);
        prop_assert!(key().verify_at(&damaged, ROOM, NOW).is_err(), "{:?}", damage);
    }

    #[test]
    fn a_token_under_another_key_never_verifies(other in "[ -~]{32,64}") {
        prop_assume!(other != KEY);
        let token = TokenKey::new(&other).unwrap().mint(&Claims::new(
            ROOM,
            "ada",
            Grants::ALL,
            std::time::UNIX_EPOCH + Duration::from_secs(NOW),
            Duration::from_secs(3600),
        )).unwrap();
        prop_assert!(key().verify_at(&token, ROOM, NOW).is_err());
    }

    #[test]
    fn a_signed_token_that_verifies_obeys_every_rule(claims in claims(), header in select(&[
        r#"{"alg":"HS256","typ":"JWT"}"#,
        r#"{"alg":"HS256"}"#,
        r#"{"alg":"HS256","crit":["exp"]}"#,
        r#"{"alg":"none"}"#,
        r#"{"alg":"HS256","alg":"HS256"}"#,
    ][..])) {
        let text = Value::Object(claims.clone()).to_string();
        let token = sign_raw(header, &text);
        let Ok(access) = key().verify_at(&token, ROOM, NOW) else {
            return Ok(());
        };
        prop_assert_eq!(header.matches("alg").count(), 1);
        prop_assert!(!header.contains("crit") && header.contains("HS256"));
        prop_assert!(!claims.contains_key("aud"));
        prop_assert_eq!(&claims["room"], &json!(ROOM));
        prop_assert_eq!(&claims["sub"], &json!(access.identity));
        let exp = claims["exp"].as_u64().unwrap();
        prop_assert!(exp + LEEWAY >= NOW && exp <= NOW + MAX_LIFETIME + LEEWAY);
        // `null` is as good as absent for the optional claims.
        let time = |claim| claims.get(claim).filter(|value: &&Value| !value.is_null()).map(Value::as_u64);
        for claim in ["iat", "nbf"] {
            if let Some(at) = time(claim) {
                prop_assert!(at.is_some_and(|at| at <= NOW + LEEWAY));
            }
        }
        if let Some(Some(iat)) = time("iat") {
            prop_assert!(exp.saturating_sub(iat) <= MAX_LIFETIME);
        }
        match claims.get("name").filter(|name| !name.is_null()) {
            Some(name) => {
                let name = name.as_str().unwrap();
                prop_assert_eq!(access.name, normalize_display_name(name).ok());
            }
            None => prop_assert_eq!(access.name, None),
        }
    }
}

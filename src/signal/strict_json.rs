//! JSON read strictly: a key that appears twice in one object is an error, at any depth.
//!
//! RFC 8259 leaves duplicate keys to the reader, and `serde_json` keeps the last one. Two
//! readers of the same frame (a proxy that logs it, the server that acts on it) could then
//! disagree about what it says, so the signaling protocol refuses such a frame instead.

use std::fmt;

use serde::Deserializer;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses `text` as one JSON value, refusing duplicate keys in any object. The error is
/// `serde_json`'s, with its line and column; a duplicate reads "duplicate key `name`".
pub fn from_str(text: &str) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = StrictValue.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// Builds a [`Value`] like `serde_json`'s own, but refuses a key seen before in its object.
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        // `serde_json` counts the nesting itself, so a deep input is an error, not a stack
        // overflow.
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        // JSON has no NaN or infinity, so every parsed float fits a `Number`.
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        StrictValue.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Value, A::Error> {
        let mut array = Vec::with_capacity(items.size_hint().unwrap_or(0).min(64));
        while let Some(item) = items.next_element_seed(StrictValue)? {
            array.push(item);
        }
        Ok(Value::Array(array))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = entries.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            let value = entries.next_value_seed(StrictValue)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_what_serde_json_reads() {
        for text in [
            r#"{"type": "join", "room": "a", "name": "b", "token": null}"#,
            r#"[1, -2, 3.5, 1e400000000, true, false, null, "x\u00e9", {"a": {"b": [{}]}}]"#,
            "18446744073709551615",
            "-9223372036854775808",
            r#""\ud83d\ude00""#,
        ] {
            let expected: Result<Value, _> = serde_json::from_str(text);
            match expected {
                Ok(expected) => assert_eq!(from_str(text).unwrap(), expected, "{text}"),
                Err(_) => assert!(from_str(text).is_err(), "{text}"),
            }
        }
    }

    #[test]
    fn refuses_a_key_given_twice_at_any_depth() {
        for (text, key) in [
            (r#"{"type": "leave", "type": "leave"}"#, "type"),
            (r#"{"a": 1, "b": {"c": 1, "c": 2}}"#, "c"),
            (r#"[{"x": 1}, {"x": 1, "x": 1}]"#, "x"),
            (r#"{"\u0061": 1, "a": 2}"#, "a"),
        ] {
            let error = from_str(text).unwrap_err().to_string();
            assert!(
                error.contains(&format!("duplicate key `{key}`")),
                "{text}: {error}"
            );
        }
        assert_eq!(
            from_str(r#"{"a": {"a": 1}, "b": {"a": 2}}"#).unwrap(),
            json!({"a": {"a": 1}, "b": {"a": 2}}),
            "the same key in different objects is fine"
        );
    }

    #[test]
    fn refuses_trailing_text_and_deep_nesting() {
        assert!(from_str(r#"{"a": 1} {"a": 2}"#).is_err());
        assert!(from_str(r#"{"a": 1} x"#).is_err());
        assert!(from_str(&format!("{}{}", "[".repeat(10_000), "]".repeat(10_000))).is_err());
    }
}

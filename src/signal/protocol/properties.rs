//! Properties of [`ClientMessage::parse`] over generated input: whatever a client sends, the
//! parser answers with a message or a refusal and never panics; every message survives the
//! trip through JSON; a field the protocol does not have, or a key given twice, is always
//! refused.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Number, Value, json};

use super::{ClientMessage, ErrorCode, IceCandidate};

/// The message types a client may send.
const TYPES: [&str; 8] = [
    "join",
    "offer",
    "answer",
    "candidate",
    "mute",
    "chat",
    "view",
    "leave",
];

/// Every field name of any client message, so that one type's fields are tried on another.
const FIELD_NAMES: [&str; 17] = [
    "type",
    "tracks",
    "participant",
    "width",
    "height",
    "visible",
    "room",
    "name",
    "token",
    "sdp",
    "candidate",
    "track",
    "muted",
    "text",
    "sdpMid",
    "sdpMLineIndex",
    "usernameFragment",
];

/// The top-level fields of `message`'s type.
fn fields_of(message: &ClientMessage) -> &'static [&'static str] {
    match message {
        ClientMessage::Join { .. } => &["type", "room", "name", "token"],
        ClientMessage::Offer { .. } | ClientMessage::Answer { .. } => &["type", "sdp"],
        ClientMessage::Candidate { .. } => &["type", "candidate"],
        ClientMessage::Mute { .. } => &["type", "track", "muted"],
        ClientMessage::Chat { .. } => &["type", "text"],
        ClientMessage::View { .. } => &["type", "tracks"],
        ClientMessage::Leave {} => &["type"],
    }
}

const CANDIDATE_FIELDS: [&str; 4] = ["candidate", "sdpMid", "sdpMLineIndex", "usernameFragment"];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-z0-9 ]{0,12}", Just(String::new())]
}

fn candidate() -> impl Strategy<Value = IceCandidate> {
    (
        text(),
        proptest::option::of(text()),
        proptest::option::of(any::<u16>()),
        proptest::option::of(text()),
    )
        .prop_map(
            |(candidate, sdp_mid, sdp_m_line_index, username_fragment)| IceCandidate {
                candidate,
                sdp_mid,
                sdp_m_line_index,
                username_fragment,
            },
        )
}

fn track_view() -> impl Strategy<Value = super::TrackView> {
    (text(), text(), any::<u32>(), any::<u32>(), any::<bool>()).prop_map(
        |(participant, track, width, height, visible)| super::TrackView {
            participant: crate::ids::ParticipantId::from(participant.as_str()),
            track,
            width,
            height,
            visible,
        },
    )
}

/// Any message a client could send, well formed.
fn client_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        (text(), text(), proptest::option::of(text()))
            .prop_map(|(room, name, token)| ClientMessage::Join { room, name, token }),
        text().prop_map(|sdp| ClientMessage::Offer { sdp }),
        text().prop_map(|sdp| ClientMessage::Answer { sdp }),
        candidate().prop_map(|candidate| ClientMessage::Candidate { candidate }),
        (text(), any::<bool>()).prop_map(|(track, muted)| ClientMessage::Mute { track, muted }),
        text().prop_map(|text| ClientMessage::Chat { text }),
        vec(track_view(), 0..4).prop_map(|tracks| ClientMessage::View { tracks }),
        Just(ClientMessage::Leave {}),
    ]
}

/// A key: one the protocol knows, or anything.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        select(&FIELD_NAMES[..]).prop_map(str::to_owned),
        any::<String>(),
    ]
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("JSON has finite numbers only", |number| {
            Number::from_f64(number).map(Value::Number)
        }),
        text().prop_map(Value::String),
        select(&TYPES[..]).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((key(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// An object written out entry by entry, so a key may come twice; mostly with a `type`.
fn object_text() -> impl Strategy<Value = (String, bool)> {
    let type_entry = prop_oneof![
        select(&TYPES[..]).prop_map(|kind| Some(("type".to_owned(), Value::from(kind)))),
        Just(None),
    ];
    (type_entry, vec((key(), json_value()), 0..6)).prop_map(|(type_entry, entries)| {
        let entries: Vec<(String, Value)> = type_entry.into_iter().chain(entries).collect();
        let keys: std::collections::BTreeSet<&String> = entries.iter().map(|(k, _)| k).collect();
        let repeated = keys.len() < entries.len();
        let body: Vec<String> = entries
            .iter()
            .map(|(key, value)| format!("{}:{value}", json!(key)))
            .collect();
        (format!("{{{}}}", body.join(",")), repeated)
    })
}

/// Checks what `parse` made of `text`: a message that survives another trip, or a refusal
/// with one of the parser's codes and a reason.
fn parsed_soundly(text: &str) -> Result<(), TestCaseError> {
    match ClientMessage::parse(text) {
        Ok(message) => {
            let again =
                serde_json::to_string(&message).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(ClientMessage::parse(&again), Ok(message));
        }
        Err((code, reason)) => {
            prop_assert!(
                matches!(code, ErrorCode::MalformedMessage | ErrorCode::UnknownType),
                "{:?}",
                code
            );
            prop_assert!(!reason.is_empty());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn any_text_is_parsed_or_refused(text in any::<String>()) {
        parsed_soundly(&text)?;
    }

    #[test]
    fn any_json_is_parsed_or_refused(value in json_value()) {
        parsed_soundly(&value.to_string())?;
    }

    #[test]
    fn any_object_is_parsed_or_refused_and_a_repeated_key_always_refused(
        (text, repeated) in object_text(),
    ) {
        parsed_soundly(&text)?;
        if repeated {
            let (code, reason) = ClientMessage::parse(&text).unwrap_err();
            prop_assert_eq!(code, ErrorCode::MalformedMessage);
            prop_assert!(reason.contains("duplicate key"), "{}", reason);
        }
    }

    #[test]
    fn a_damaged_message_is_parsed_or_refused(
        message in client_message(),
        cut in any::<proptest::sample::Index>(),
        insert in any::<char>(),
    ) {
        let text = serde_json::to_string(&message).unwrap();
        let chars: Vec<char> = text.chars().collect();
        let at = cut.index(chars.len() + 1);
        let truncated: String = chars[..at].iter().collect();
        let inserted: String = chars[..at].iter().chain([&insert]).chain(&chars[at..]).collect();
        let removed: String = chars.iter().enumerate().filter(|(i, _)| *i != at).map(|(_, c)| c).collect();
        for damaged in [truncated, inserted, removed] {
            parsed_soundly(&damaged)?;
        }
    }

    #[test]
    fn every_message_survives_the_trip_through_json(message in client_message()) {
        let text = serde_json::to_string(&message).unwrap();
        prop_assert_eq!(ClientMessage::parse(&text), Ok(message));
    }

    #[test]
    fn a_field_the_type_does_not_have_is_always_refused(
        message in client_message(),
        field in key(),
        value in json_value(),
    ) {
        prop_assume!(!fields_of(&message).contains(&field.as_str()));
        let mut object = serde_json::to_value(&message).unwrap();
        object[&field] = value;
        let (code, reason) = ClientMessage::parse(&object.to_string()).unwrap_err();
        prop_assert_eq!(code, ErrorCode::MalformedMessage);
        prop_assert!(reason.contains(&format!("unknown field `{field}`")), "{}", reason);
    }

    #[test]
    fn a_field_a_candidate_does_not_have_is_always_refused(
        candidate in candidate(),
        field in key(),
        value in json_value(),
    ) {
        prop_assume!(!CANDIDATE_FIELDS.contains(&field.as_str()));
        let mut object = serde_json::to_value(ClientMessage::Candidate { candidate }).unwrap();
        object["candidate"][&field] = value;
        let (code, reason) = ClientMessage::parse(&object.to_string()).unwrap_err();
        prop_assert_eq!(code, ErrorCode::MalformedMessage);
        prop_assert!(reason.contains(&format!("unknown field `{field}`")), "{}", reason);
    }

    #[test]
    fn a_key_given_twice_is_always_refused(
        message in client_message(),
        which in any::<proptest::sample::Index>(),
        value in json_value(),
    ) {
        let object = serde_json::to_value(&message).unwrap();
        let keys: Vec<&String> = object.as_object().unwrap().keys().collect();
        let key = keys[which.index(keys.len())];
        let text = object.to_string();
        let twice = format!("{},{}:{value}}}", &text[..text.len() - 1], json!(key));
        let (code, reason) = ClientMessage::parse(&twice).unwrap_err();
        prop_assert_eq!(code, ErrorCode::MalformedMessage);
        prop_assert!(reason.contains(&format!("duplicate key `{key}`")), "{}", reason);
    }
}

//! The signaling wire format, version 1.
//!
//! Every WebSocket text frame carries one JSON object whose `type` field names the message.
//! `docs/signaling.md` is the human-readable contract; this module is its executable twin, and
//! the unit tests at the bottom pin the JSON shapes the document shows.
//!
//! Client messages are read strictly: a key given twice ([`strict_json`]) or a field the
//! protocol does not have, at any depth, makes the frame `malformed_message`, so that what the
//! server acts on is exactly what any other reader of the frame sees.

use serde::{Deserialize, Serialize};

use crate::auth::Grants;
use crate::ids::ParticipantId;
use crate::signal::strict_json;

pub use crate::signal::text::{
    ChatError, MAX_CHAT_CHARS, MAX_NAME_CHARS, NameError, check_chat_text, normalize_display_name,
};

/// A message a client sends to the server.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Enter a room under a display name. Must be the first message, and is accepted once.
    Join {
        /// Room name: 1–64 characters of `A-Za-z0-9_-`.
        room: String,
        /// Display name shown to the others ([`normalize_display_name`] says which). A token
        /// that carries a name overrides it.
        name: String,
        /// The access token, required when the server has a token key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// An SDP offer from the client: its first one publishes its tracks, later ones change them.
    Offer {
        /// The session description.
        sdp: String,
    },
    /// The client's answer to the server's latest offer.
    Answer {
        /// The session description.
        sdp: String,
    },
    /// A trickled ICE candidate gathered by the client.
    Candidate {
        /// The candidate, shaped like the browser's `RTCIceCandidateInit`.
        #[serde(with = "ClientIceCandidate")]
        candidate: IceCandidate,
    },
    /// The client muted or unmuted one of its own tracks.
    Mute {
        /// The client's track id, as in its SDP `a=msid` line (the browser's `track.id`).
        track: String,
        /// Whether the track is now muted.
        muted: bool,
    },
    /// A chat message to everybody in the room, the sender included.
    Chat {
        /// The message ([`check_chat_text`] says which).
        text: String,
    },
    /// How the client shows videos it receives: the server sends no layer larger than a tile
    /// needs, and no video for a tile that is not shown.
    View {
        /// One entry per video whose tile changed; 1 to [`MAX_VIEWS`].
        tracks: Vec<TrackView>,
    },
    /// Leave the room; the server closes the connection afterwards.
    ///
    /// A struct variant with no fields, not a unit variant: serde ignores every other field of
    /// an internally tagged unit variant, `deny_unknown_fields` or not.
    Leave {},
}

/// The most entries one `view` message may carry.
pub const MAX_VIEWS: usize = 64;
/// The largest tile side a `view` may give, in device pixels.
pub const MAX_VIEW_SIDE: u32 = 16_384;

/// How the client shows one video it receives.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrackView {
    /// The publisher, as in `track_published`.
    pub participant: ParticipantId,
    /// The publisher's track id, as in `track_published`.
    pub track: String,
    /// The tile's rendered width in device pixels.
    pub width: u32,
    /// The tile's rendered height in device pixels.
    pub height: u32,
    /// Whether the tile is on screen.
    pub visible: bool,
}

/// A message the server sends to a client.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The join succeeded.
    Joined {
        /// The id the server gave this participant.
        participant: ParticipantId,
        /// The room joined.
        room: String,
        /// This participant's display name, as the others see it.
        name: String,
        /// What this participant may do.
        grants: Grants,
        /// For a participant that joined by an invite link: an access token of its own, to
        /// rejoin with as the same person without using the invite again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// Everybody else already in the room.
        participants: Vec<ParticipantInfo>,
        /// ICE servers the client should configure its `RTCPeerConnection` with.
        ice_servers: Vec<IceServer>,
    },
    /// Somebody else entered the room.
    ParticipantJoined {
        /// Who.
        participant: ParticipantInfo,
    },
    /// Somebody left the room; their tracks are being removed.
    ParticipantLeft {
        /// The id of the participant who left.
        participant: ParticipantId,
    },
    /// A server-initiated offer: tracks to add to or remove from this connection.
    Offer {
        /// The session description.
        sdp: String,
    },
    /// The answer to the client's offer.
    Answer {
        /// The session description.
        sdp: String,
    },
    /// A trickled ICE candidate gathered by the server.
    Candidate {
        /// The candidate.
        candidate: IceCandidate,
    },
    /// A track this client is about to receive, announced before the offer that carries it.
    TrackPublished {
        /// The publisher's participant id.
        participant: ParticipantId,
        /// The publisher's track id.
        track: String,
        /// `audio` or `video`.
        kind: TrackKind,
        /// The publisher's stream id: tracks sharing it belong together (camera + microphone).
        stream: String,
        /// The `mid` of the transceiver on *this* client's connection that carries the track.
        mid: String,
        /// Whether the publisher has the track muted right now.
        muted: bool,
    },
    /// A track this client was receiving has ended; its transceiver goes inactive.
    TrackUnpublished {
        /// The publisher's participant id.
        participant: ParticipantId,
        /// The publisher's track id.
        track: String,
        /// The `mid` that carried it on this client's connection.
        mid: String,
    },
    /// A participant muted or unmuted one of its tracks.
    Mute {
        /// Whose track.
        participant: ParticipantId,
        /// The publisher's track id.
        track: String,
        /// Whether it is now muted.
        muted: bool,
    },
    /// The server stopped sending a video because the client's downlink has no room for it, or
    /// resumed it.
    VideoPaused {
        /// Whose track.
        participant: ParticipantId,
        /// The publisher's track id.
        track: String,
        /// Whether it is now paused.
        paused: bool,
    },
    /// To a publisher: the simulcast layers of one of its tracks that somebody receives, by
    /// rid; the others may stop.
    Layers {
        /// The client's own track id.
        track: String,
        /// The rids to send, lowest first as the client's offer listed them.
        active: Vec<String>,
    },
    /// A chat message somebody in the room sent; the sender gets its own message back too, so
    /// every member sees the room's messages in the same order.
    Chat {
        /// The sender's participant id.
        participant: ParticipantId,
        /// The message, as sent.
        text: String,
        /// When the server received it: milliseconds since the Unix epoch.
        at: u64,
    },
    /// Who is speaking: sent to everybody in the room when it changes (at most four times a
    /// second), and once after `joined` when there is an active speaker.
    Speakers {
        /// The dominant speaker, shown large in a speaker view; `null` while nobody in the
        /// room has spoken. It stays the last dominant speaker while the room is silent.
        active: Option<ParticipantId>,
        /// Everybody speaking now, possibly nobody.
        speaking: Vec<ParticipantId>,
    },
    /// The room lives on another node of the cluster: open a socket to `url` and send the same
    /// `join` there. The server closes this socket (1000) right after.
    Redirect {
        /// The signaling URL of the node hosting the room (`ws://` or `wss://`).
        url: String,
    },
    /// The server is shutting down: the session ends now and the socket closes with 1001
    /// (going away). The client may join again after a pause, as the server may be restarting.
    Shutdown {
        /// A sentence for a human.
        reason: String,
    },
    /// The last message was refused; nothing else changed.
    Error {
        /// A stable, machine-readable reason.
        code: ErrorCode,
        /// A sentence for a human.
        message: String,
    },
}

/// Another participant, as listed in `joined` and `participant_joined`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ParticipantInfo {
    /// The server-assigned id.
    pub id: ParticipantId,
    /// The display name.
    pub name: String,
}

/// An ICE candidate in the browser's `RTCIceCandidateInit` shape.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    /// The `candidate:` attribute line (without `a=`). Empty means end of candidates.
    pub candidate: String,
    /// The media section id the candidate belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// The index of the media section the candidate belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_m_line_index: Option<u16>,
    /// The ICE username fragment the candidate belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// [`IceCandidate`] as a client must send it: those fields and no other. The type itself
/// lets unknown fields pass, as clients reading the server's candidates should.
#[derive(Deserialize, Serialize)]
#[serde(remote = "IceCandidate", rename_all = "camelCase", deny_unknown_fields)]
struct ClientIceCandidate {
    candidate: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sdp_mid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sdp_m_line_index: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username_fragment: Option<String>,
}

/// An ICE server in the browser's `RTCIceServer` shape.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct IceServer {
    /// `stun:` or `turn:` URLs.
    pub urls: Vec<String>,
    /// TURN username, when the server needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential, when the server needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The kind of a media track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

impl TrackKind {
    /// The lower-case name used on the wire and in SDP.
    pub fn as_str(self) -> &'static str {
        match self {
            TrackKind::Audio => "audio",
            TrackKind::Video => "video",
        }
    }
}

/// Why a message was refused. Serialized in `snake_case`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame was not a JSON object of a known shape: not JSON, a key given twice, a field
    /// missing, mistyped or unknown.
    MalformedMessage,
    /// The JSON named a `type` the server does not know.
    UnknownType,
    /// The message needs a joined session and this one has not joined.
    NotJoined,
    /// `join` was sent a second time.
    AlreadyJoined,
    /// The room name is not 1–64 characters of `A-Za-z0-9_-`.
    InvalidRoom,
    /// The display name breaks a rule of [`normalize_display_name`]: empty, too long, nothing
    /// visible, or a character that hides, pads or reorders it.
    InvalidName,
    /// The SDP did not parse or could not be applied.
    InvalidSdp,
    /// An `answer` arrived while the server had no offer outstanding.
    UnexpectedAnswer,
    /// The candidate did not parse, or there is no connection it could belong to.
    InvalidCandidate,
    /// `mute` named a track this participant does not publish.
    UnknownTrack,
    /// A `view` with no entries or more than [`MAX_VIEWS`], or a tile side above
    /// [`MAX_VIEW_SIDE`].
    InvalidView,
    /// A chat message that breaks a rule of [`check_chat_text`]: empty, nothing visible,
    /// longer than [`MAX_CHAT_CHARS`], or a control or bidirectional control character.
    InvalidChat,
    /// `join` arrived while the server is shutting down.
    ShuttingDown,
    /// A chat message longer, in UTF-8 bytes, than the server allows.
    ChatTooLong,
    /// The server needs an access token and `join` carried none.
    TokenMissing,
    /// The access token does not verify: bad signature, malformed, or not valid yet.
    TokenInvalid,
    /// The access token expired.
    TokenExpired,
    /// The access token is for another room.
    TokenWrongRoom,
    /// The invite link has admitted as many joins as it allows.
    InviteUsedUp,
    /// The participant's token does not grant `publish`: its offer's tracks were refused.
    PublishNotAllowed,
    /// The participant's token does not grant `chat`.
    ChatNotAllowed,
    /// The room has as many participants as the server allows.
    RoomFull,
    /// The server has as many rooms as it allows, and this one would be new.
    TooManyRooms,
    /// The node cannot reach the cluster's directory (Redis) to find or place the room; the
    /// socket closes with 1013 (try again later).
    ClusterUnavailable,
    /// The room now lives on another node of the cluster; the session ends (close 4007) and
    /// the client joins again, through its entry URL, to find it.
    RoomMoved,
    /// The client sent messages faster than the server allows; this one was dropped.
    RateLimited,
    /// A newer session with the same identity joined the room; this one ends.
    Replaced,
    /// An operator removed the participant, or closed its room, through the API; the session
    /// ends.
    Removed,
    /// The socket sent no `join` in time; the server closes it.
    JoinTimeout,
    /// No first `offer` came in time after `joined`; the participant leaves the room.
    OfferTimeout,
    /// The media connection did not connect in time; the participant leaves the room.
    MediaTimeout,
    /// The server's offer was not answered in time; the participant leaves the room.
    AnswerTimeout,
    /// The socket answered no ping in time; the participant leaves the room.
    PingTimeout,
    /// Something failed inside the server; the session goes on.
    Internal,
}

impl ClientMessage {
    /// Parses one text frame, telling a malformed frame from an unknown `type` apart so the
    /// client gets the precise error code. The message of an error names the key or field at
    /// fault.
    pub fn parse(text: &str) -> Result<ClientMessage, (ErrorCode, String)> {
        let value = strict_json::from_str(text).map_err(|error| {
            // A data error is the one thing the strict reader adds to JSON's syntax.
            let what = if error.is_data() {
                "a key given twice"
            } else {
                "invalid JSON"
            };
            (ErrorCode::MalformedMessage, format!("{what}: {error}"))
        })?;
        let Some(kind) = value.get("type").and_then(serde_json::Value::as_str) else {
            return Err((
                ErrorCode::MalformedMessage,
                "a message must be a JSON object with a string `type`".to_owned(),
            ));
        };
        const KNOWN: [&str; 8] = [
            "join",
            "offer",
            "answer",
            "candidate",
            "mute",
            "chat",
            "view",
            "leave",
        ];
        if !KNOWN.contains(&kind) {
            return Err((
                ErrorCode::UnknownType,
                format!("unknown message type `{kind}`"),
            ));
        }
        let kind = kind.to_owned();
        serde_json::from_value(value).map_err(|error| {
            (
                ErrorCode::MalformedMessage,
                format!("invalid `{kind}` message: {error}"),
            )
        })
    }
}

impl ServerMessage {
    /// Builds an `error` message.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> ServerMessage {
        ServerMessage::Error {
            code,
            message: message.into(),
        }
    }

    /// Serializes the message as one text frame.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail: every map key is a string.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

/// Checks a room name: 1–64 characters of `A-Za-z0-9_-`.
pub fn is_valid_room_name(room: &str) -> bool {
    (1..=64).contains(&room.len())
        && room
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_every_client_message() {
        let cases = [
            (
                json!({"type": "join", "room": "standup", "name": "Ada"}),
                ClientMessage::Join {
                    room: "standup".into(),
                    name: "Ada".into(),
                    token: None,
                },
            ),
            (
                json!({"type": "join", "room": "standup", "name": "Ada", "token": "e30.e30.sig"}),
                ClientMessage::Join {
                    room: "standup".into(),
                    name: "Ada".into(),
                    token: Some("e30.e30.sig".into()),
                },
            ),
            (
                json!({"type": "offer", "sdp": "v=0"}),
                ClientMessage::Offer { sdp: "v=0".into() },
            ),
            (
                json!({"type": "answer", "sdp": "v=0"}),
                ClientMessage::Answer { sdp: "v=0".into() },
            ),
            (
                json!({"type": "candidate", "candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0}}),
                ClientMessage::Candidate {
                    candidate: IceCandidate {
                        candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host".into(),
                        sdp_mid: Some("0".into()),
                        sdp_m_line_index: Some(0),
                        username_fragment: None,
                    },
                },
            ),
            (
                json!({"type": "mute", "track": "t1", "muted": true}),
                ClientMessage::Mute {
                    track: "t1".into(),
                    muted: true,
                },
            ),
            (
                json!({"type": "chat", "text": "hello, room"}),
                ClientMessage::Chat {
                    text: "hello, room".into(),
                },
            ),
            (json!({"type": "leave"}), ClientMessage::Leave {}),
        ];
        for (value, expected) in cases {
            assert_eq!(ClientMessage::parse(&value.to_string()), Ok(expected));
        }
    }

    #[test]
    fn tells_malformed_from_unknown() {
        let code = |text: &str| ClientMessage::parse(text).unwrap_err().0;
        assert_eq!(code("not json"), ErrorCode::MalformedMessage);
        assert_eq!(code("[1, 2]"), ErrorCode::MalformedMessage);
        assert_eq!(code(r#"{"room": "x"}"#), ErrorCode::MalformedMessage);
        assert_eq!(code(r#"{"type": 7}"#), ErrorCode::MalformedMessage);
        assert_eq!(code(r#"{"type": "dance"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type": "join"}"#), ErrorCode::MalformedMessage);
        assert_eq!(
            code(r#"{"type": "offer", "sdp": 5}"#),
            ErrorCode::MalformedMessage
        );
        assert_eq!(code(r#"{"type": "chat"}"#), ErrorCode::MalformedMessage);
        assert_eq!(
            code(r#"{"type": "chat", "text": "hi", "to": "PA_1"}"#),
            ErrorCode::MalformedMessage
        );
    }

    /// One valid message of every type the client sends.
    pub(super) fn one_of_each() -> Vec<serde_json::Value> {
        vec![
            json!({"type": "join", "room": "standup", "name": "Ada", "token": "e30.e30.sig"}),
            json!({"type": "offer", "sdp": "v=0"}),
            json!({"type": "answer", "sdp": "v=0"}),
            json!({"type": "candidate", "candidate": {"candidate": "", "sdpMid": "0",
                   "sdpMLineIndex": 0, "usernameFragment": "abcd"}}),
            json!({"type": "mute", "track": "t1", "muted": true}),
            json!({"type": "chat", "text": "hi"}),
            json!({"type": "leave"}),
        ]
    }

    #[test]
    fn every_type_refuses_a_field_it_does_not_have() {
        for valid in one_of_each() {
            assert!(ClientMessage::parse(&valid.to_string()).is_ok(), "{valid}");
            let mut extra = valid.clone();
            extra["to"] = json!("x");
            let (code, message) = ClientMessage::parse(&extra.to_string()).unwrap_err();
            assert_eq!(code, ErrorCode::MalformedMessage, "{extra}");
            assert!(message.contains("unknown field `to`"), "{extra}: {message}");
        }
        let nested = json!({"type": "candidate", "candidate": {"candidate": "", "sdpMid": "0",
                            "priority": 7}});
        let (code, message) = ClientMessage::parse(&nested.to_string()).unwrap_err();
        assert_eq!(code, ErrorCode::MalformedMessage);
        assert!(message.contains("unknown field `priority`"), "{message}");
    }

    #[test]
    fn every_type_refuses_a_key_given_twice() {
        for valid in one_of_each() {
            let text = valid.to_string();
            // Repeat the first key of the object (`type` after serde_json's sorting, or the
            // first field) with the same value, and the last key too.
            let object = valid.as_object().unwrap();
            for (key, value) in [
                object.iter().next().unwrap(),
                object.iter().next_back().unwrap(),
            ] {
                let twice = format!("{},{}:{}}}", &text[..text.len() - 1], json!(key), value);
                let (code, message) = ClientMessage::parse(&twice).unwrap_err();
                assert_eq!(code, ErrorCode::MalformedMessage, "{twice}");
                assert!(
                    message.contains(&format!("duplicate key `{key}`")),
                    "{message}"
                );
            }
        }
        let nested =
            r#"{"type":"candidate","candidate":{"candidate":"","sdpMid":"0","sdpMid":"1"}}"#;
        let (code, message) = ClientMessage::parse(nested).unwrap_err();
        assert_eq!(code, ErrorCode::MalformedMessage);
        assert!(message.contains("duplicate key `sdpMid`"), "{message}");
    }

    #[test]
    fn a_message_is_an_object_not_an_array() {
        for text in [
            r#"["leave"]"#,
            r#"["chat", "hi"]"#,
            r#"["join", "room", "Ada"]"#,
        ] {
            assert_eq!(
                ClientMessage::parse(text).unwrap_err().0,
                ErrorCode::MalformedMessage,
                "{text}"
            );
        }
    }

    #[test]
    fn server_messages_have_the_documented_shape() {
        let message = ServerMessage::TrackPublished {
            participant: "PA_1".into(),
            track: "t1".into(),
            kind: TrackKind::Video,
            stream: "s1".into(),
            mid: "3".into(),
            muted: false,
        };
        assert_eq!(
            serde_json::to_value(&message).unwrap(),
            json!({"type": "track_published", "participant": "PA_1", "track": "t1",
                   "kind": "video", "stream": "s1", "mid": "3", "muted": false})
        );
        let shutdown = ServerMessage::Shutdown {
            reason: "the server is shutting down".into(),
        };
        assert_eq!(
            serde_json::to_value(&shutdown).unwrap(),
            json!({"type": "shutdown", "reason": "the server is shutting down"})
        );
        let error = ServerMessage::error(ErrorCode::InvalidRoom, "bad");
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            json!({"type": "error", "code": "invalid_room", "message": "bad"})
        );
    }

    #[test]
    fn joined_has_the_documented_shape() {
        let joined = ServerMessage::Joined {
            participant: "PA_1".into(),
            room: "standup".into(),
            name: "Ada".into(),
            grants: Grants {
                publish: false,
                subscribe: true,
                chat: true,
                admin: false,
                invite: false,
            },
            token: None,
            participants: vec![],
            ice_servers: vec![IceServer {
                urls: vec!["turn:turn.example.org:3478".into()],
                username: Some("1767229200:ada".into()),
                credential: Some("c2VjcmV0".into()),
            }],
        };
        assert_eq!(
            serde_json::to_value(&joined).unwrap(),
            json!({"type": "joined", "participant": "PA_1", "room": "standup", "name": "Ada",
                   "grants": {"publish": false, "subscribe": true, "chat": true},
                   "participants": [],
                   "ice_servers": [{"urls": ["turn:turn.example.org:3478"],
                                    "username": "1767229200:ada", "credential": "c2VjcmV0"}]})
        );
        let error = ServerMessage::error(ErrorCode::TokenWrongRoom, "other room");
        assert_eq!(
            serde_json::to_value(&error).unwrap()["code"],
            json!("token_wrong_room")
        );
    }

    #[test]
    fn chat_messages_have_the_documented_shape() {
        let chat = ServerMessage::Chat {
            participant: "PA_1".into(),
            text: "hello".into(),
            at: 1_767_225_600_000,
        };
        assert_eq!(
            serde_json::to_value(&chat).unwrap(),
            json!({"type": "chat", "participant": "PA_1", "text": "hello", "at": 1_767_225_600_000u64})
        );
        let error = ServerMessage::error(ErrorCode::InvalidChat, "too long");
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            json!({"type": "error", "code": "invalid_chat", "message": "too long"})
        );
    }

    #[test]
    fn speakers_have_the_documented_shape() {
        let speakers = ServerMessage::Speakers {
            active: Some("PA_0b1c2d3e4f50".into()),
            speaking: vec!["PA_0b1c2d3e4f50".into(), "PA_77aa88bb99cc".into()],
        };
        assert_eq!(
            serde_json::to_value(&speakers).unwrap(),
            json!({"type": "speakers", "active": "PA_0b1c2d3e4f50",
                   "speaking": ["PA_0b1c2d3e4f50", "PA_77aa88bb99cc"]})
        );
        let nobody = ServerMessage::Speakers {
            active: None,
            speaking: vec![],
        };
        assert_eq!(
            serde_json::to_value(&nobody).unwrap(),
            json!({"type": "speakers", "active": null, "speaking": []})
        );
    }

    #[test]
    fn room_names() {
        assert!(is_valid_room_name("standup"));
        assert!(is_valid_room_name("a-b_C9"));
        assert!(is_valid_room_name(&"x".repeat(64)));
        assert!(!is_valid_room_name(""));
        assert!(!is_valid_room_name(&"x".repeat(65)));
        assert!(!is_valid_room_name("with space"));
        assert!(!is_valid_room_name("dot.name"));
        assert!(!is_valid_room_name("ünïcode"));
    }
}

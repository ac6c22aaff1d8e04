//! The events a receiver gets, as JSON: what happened, in which room, when, and to whom.

use serde::{Deserialize, Serialize};

use crate::ids::{EventId, ParticipantId};
use crate::signal::protocol::TrackKind;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The room's first participant joined: the room exists from now on.
    RoomStarted,
    /// The room's last participant left, or an operator closed it: the room is gone.
    RoomFinished,
    /// Somebody joined the room.
    ParticipantJoined,
    /// Somebody left the room (said goodbye, went silent, was replaced by a newer session with
    /// the same identity, or was removed).
    ParticipantLeft,
    /// A participant published a track.
    TrackPublished,
    /// A published track ended (its publisher stopped it, or left).
    TrackUnpublished,
}

impl EventKind {
    /// Every kind, in the order a room's life usually brings them.
    pub const ALL: [EventKind; 6] = [
        EventKind::RoomStarted,
        EventKind::ParticipantJoined,
        EventKind::TrackPublished,
        EventKind::TrackUnpublished,
        EventKind::ParticipantLeft,
        EventKind::RoomFinished,
    ];

    /// The name the JSON carries.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RoomStarted => "room_started",
            EventKind::RoomFinished => "room_finished",
            EventKind::ParticipantJoined => "participant_joined",
            EventKind::ParticipantLeft => "participant_left",
            EventKind::TrackPublished => "track_published",
            EventKind::TrackUnpublished => "track_unpublished",
        }
    }
}

/// One event, as it is POSTed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unique to the event; a retry carries the same id.
    pub id: EventId,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// The room's name.
    pub room: String,
    /// The event's place in its room's life: `room_started` is 1, and each later event of the
    /// room one more. A gap means an event was dropped.
    pub sequence: u64,
    /// When it happened, in milliseconds since the Unix epoch.
    pub at: u64,
    /// Who it is about (every kind but the room's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<ParticipantRef>,
    /// Which track it is about (`track_published`, `track_unpublished`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<TrackRef>,
}

/// A participant, as events name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantRef {
    /// The server-assigned id, as in the API and the signaling protocol.
    pub id: ParticipantId,
    /// The `sub` of its access token; `null` on a server without a token key.
    pub identity: Option<String>,
    /// Its display name.
    pub name: String,
}

/// A published track, as events name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackRef {
    /// The publisher's track id, as in the API and the signaling protocol.
    pub id: String,
    /// Audio or video.
    pub kind: TrackKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_as_documented() {
        let event = Event {
            id: EventId::random(),
            kind: EventKind::TrackPublished,
            room: "standup".to_owned(),
            sequence: 4,
            at: 1_767_229_200_456,
            participant: Some(ParticipantRef {
                id: ParticipantId::from("PA_0b1c2d3e4f50"),
                identity: Some("ada".to_owned()),
                name: "Ada".to_owned(),
            }),
            track: Some(TrackRef {
                id: "9f0c".to_owned(),
                kind: TrackKind::Video,
            }),
        };
        let json: serde_json::Value = serde_json::to_value(&event).expect("JSON");
        assert_eq!(json["type"], "track_published");
        assert_eq!(json["room"], "standup");
        assert_eq!(json["sequence"], 4);
        assert_eq!(json["participant"]["identity"], "ada");
        assert_eq!(json["track"]["kind"], "video");
        assert!(json["id"].as_str().expect("id").starts_with("EV_"));
        let back: Event = serde_json::from_value(json).expect("reads back");
        assert_eq!(back, event);

        let started = Event {
            kind: EventKind::RoomStarted,
            participant: None,
            track: None,
            ..event
        };
        let json = serde_json::to_value(&started).expect("JSON");
        let mut fields: Vec<&str> = json
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(fields, ["at", "id", "room", "sequence", "type"]);
        for kind in EventKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).expect("JSON"),
                serde_json::Value::from(kind.as_str())
            );
        }
    }
}

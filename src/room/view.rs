//! Read-only views of rooms and their participants, for the room service API.

use std::time::SystemTime;

use crate::ids::ParticipantId;
use crate::signal::protocol::TrackKind;

/// A room at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomView {
    /// Its name.
    pub name: String,
    /// How many participants are in it.
    pub participants: usize,
    /// When its first participant opened it.
    pub created_at: SystemTime,
}

/// A participant at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantView {
    /// The server-assigned id.
    pub id: ParticipantId,
    /// The identity from its access token; `None` on an open server.
    pub identity: Option<String>,
    /// The display name.
    pub name: String,
    /// When it joined.
    pub joined_at: SystemTime,
    /// Its media connection's state (`new`, `connecting`, `connected`, ...).
    pub connection: String,
    /// What it publishes.
    pub tracks: Vec<TrackView>,
}

/// A published track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackView {
    /// The publisher's track id.
    pub id: String,
    /// Audio or video.
    pub kind: TrackKind,
    /// Whether it is muted.
    pub muted: bool,
}

/// Why a mute could not be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MuteRefusal {
    /// Nobody with that id is in the room.
    #[error("no such participant in the room")]
    UnknownParticipant,
    /// The participant publishes no track with that id.
    #[error("the participant publishes no such track")]
    UnknownTrack,
}

//! What a room tells the webhooks: its events, numbered in the order they happen. The room calls
//! it under its lock, so the numbers and the order of the queue agree.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::ids::EventId;
use crate::media::publication::Publication;
use crate::webhook::{Event, EventKind, ParticipantRef, TrackRef, Webhooks};

/// A room's side of the webhooks.
#[derive(Debug)]
pub struct RoomHooks {
    webhooks: Webhooks,
    room: String,
    /// Whether `room_started` was told.
    started: bool,
    /// The last event's number; 0 before `room_started`.
    sequence: u64,
}

impl RoomHooks {
    /// The hooks of the room called `room`.
    pub fn new(webhooks: Webhooks, room: String) -> Self {
        Self {
            webhooks,
            room,
            started: false,
            sequence: 0,
        }
    }

    /// A member is joining: the room starts with the first.
    pub fn joining(&mut self) {
        if !self.started {
            self.started = true;
            self.emit(EventKind::RoomStarted, None, None);
        }
    }

    /// The room is gone.
    pub fn room_finished(&mut self) {
        self.emit(EventKind::RoomFinished, None, None);
    }

    /// `participant` left, its `publications` unpublished on the way out.
    pub fn left<'a>(
        &mut self,
        participant: ParticipantRef,
        publications: impl IntoIterator<Item = &'a std::sync::Arc<Publication>>,
    ) {
        for publication in publications {
            self.track(
                EventKind::TrackUnpublished,
                participant.clone(),
                publication,
            );
        }
        self.participant(EventKind::ParticipantLeft, participant);
    }

    /// `participant` joined or left.
    pub fn participant(&mut self, kind: EventKind, participant: ParticipantRef) {
        self.emit(kind, Some(participant), None);
    }

    /// `publication`, by `publisher`, was published or unpublished.
    pub fn track(&mut self, kind: EventKind, publisher: ParticipantRef, publication: &Publication) {
        let info = publication.info();
        let track = TrackRef {
            id: info.track.clone(),
            kind: info.kind,
        };
        self.emit(kind, Some(publisher), Some(track));
    }

    fn emit(
        &mut self,
        kind: EventKind,
        participant: Option<ParticipantRef>,
        track: Option<TrackRef>,
    ) {
        if !self.webhooks.is_enabled() {
            return;
        }
        self.sequence += 1;
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        self.webhooks.emit(Event {
            id: EventId::random(),
            kind,
            room: self.room.clone(),
            sequence: self.sequence,
            at,
            participant,
            track,
        });
    }
}

//! Every room on the server, by name, within the server's limits on rooms and members.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use crate::ids::ParticipantId;
use crate::metrics::LayerSample;
use crate::room::{JoinFailure, Newcomer, Room, RoomEvent, Snapshot};
use crate::webhook::Webhooks;

/// Why a join was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinRefusal {
    /// The room holds the most participants a room may.
    #[error("the room is full: it holds {max} participants, the most this server allows")]
    RoomFull {
        /// The limit.
        max: usize,
    },
    /// The server holds the most rooms it may, and the join would open another.
    #[error("this server has {max} rooms open, the most it allows: no new room can start now")]
    TooManyRooms {
        /// The limit.
        max: usize,
    },
}

/// The rooms; a room exists while somebody is in it.
#[derive(Debug)]
pub struct Registry {
    rooms: DashMap<String, Arc<Room>>,
    /// Rooms in the map, counted exactly as they are inserted and removed, so concurrent
    /// joins cannot overshoot `max_rooms` (the map's own length is only a sum over shards).
    open: AtomicUsize,
    max_rooms: usize,
    max_members: usize,
    /// Where every room's events go.
    webhooks: Webhooks,
}

impl Default for Registry {
    /// A registry without limits.
    fn default() -> Self {
        Self::new(usize::MAX, usize::MAX)
    }
}

impl Registry {
    /// A registry holding at most `max_rooms` rooms of at most `max_members` participants
    /// each (both at least 1).
    pub fn new(max_rooms: usize, max_members: usize) -> Self {
        Self {
            rooms: DashMap::new(),
            open: AtomicUsize::new(0),
            max_rooms: max_rooms.max(1),
            max_members: max_members.max(1),
            webhooks: Webhooks::default(),
        }
    }

    /// The same registry, its rooms telling `webhooks` their events.
    pub fn with_webhooks(self, webhooks: Webhooks) -> Self {
        Self { webhooks, ..self }
    }

    /// Every layer of every published track, for `/metrics`.
    pub fn layer_samples(&self) -> Vec<LayerSample> {
        let now = Instant::now();
        self.rooms()
            .iter()
            .flat_map(|room| room.publications())
            .flat_map(|publication| {
                let info = publication.info();
                let (participant, track) = (info.participant.to_string(), info.track.clone());
                publication
                    .layers()
                    .snapshot(now)
                    .into_iter()
                    .map(move |layer| {
                        let (width, height) = layer.resolution.unwrap_or_default();
                        LayerSample {
                            participant: participant.clone(),
                            track: track.clone(),
                            rid: layer.rid,
                            bitrate: if layer.arriving { layer.bitrate } else { 0 },
                            width,
                            height,
                        }
                    })
            })
            .collect()
    }

    /// Adds a participant to the room called `name`, creating it if needed and allowed.
    pub fn join(
        &self,
        name: &str,
        newcomer: Newcomer,
    ) -> Result<(Arc<Room>, Snapshot), JoinRefusal> {
        loop {
            let room = match self.rooms.entry(name.to_owned()) {
                Entry::Occupied(entry) => Arc::clone(entry.get()),
                Entry::Vacant(entry) => {
                    let reserved =
                        self.open
                            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                                (open < self.max_rooms).then_some(open + 1)
                            });
                    if reserved.is_err() {
                        return Err(JoinRefusal::TooManyRooms {
                            max: self.max_rooms,
                        });
                    }
                    Arc::clone(
                        entry
                            .insert(Room::new(name.to_owned(), self.webhooks.clone()))
                            .value(),
                    )
                }
            };
            match room.try_join(newcomer.clone(), self.max_members) {
                Ok(snapshot) => return Ok((room, snapshot)),
                Err(JoinFailure::Full) => {
                    return Err(JoinRefusal::RoomFull {
                        max: self.max_members,
                    });
                }
                // The room emptied and closed between the lookup and the join; it is on its
                // way out of the map. Take it out ourselves and start over with a fresh one.
                Err(JoinFailure::Closed) => self.remove(&room),
            }
        }
    }

    /// Removes a participant from its room, and the room from the server once empty.
    pub fn leave(&self, room: &Arc<Room>, participant: &ParticipantId) {
        if room.leave(participant) {
            self.remove(room);
        }
    }

    /// The room called `name`, if it exists.
    pub fn room(&self, name: &str) -> Option<Arc<Room>> {
        self.rooms.get(name).map(|room| Arc::clone(room.value()))
    }

    /// Every room, by name.
    pub fn rooms(&self) -> Vec<Arc<Room>> {
        let mut rooms: Vec<_> = self
            .rooms
            .iter()
            .map(|room| Arc::clone(room.value()))
            .collect();
        rooms.sort_by(|a, b| a.name().cmp(b.name()));
        rooms
    }

    /// Removes a participant from its room on an operator's behalf: its session is told and
    /// ends, the others see it leave. Returns whether it was in the room.
    pub fn remove_participant(&self, room: &Arc<Room>, participant: &ParticipantId) -> bool {
        let (found, closed) = room.remove(participant);
        if closed {
            self.remove(room);
        }
        found
    }

    /// Removes everybody from a room, each told as by [`Registry::remove_participant`], and
    /// the room from the server.
    pub fn close_room(&self, room: &Arc<Room>) {
        room.remove_everyone(RoomEvent::Removed);
        self.remove(room);
    }

    /// Ends a room that now lives on another node of the cluster: every member's session
    /// ends, telling its client to join again, which finds the room where it lives.
    pub fn move_room(&self, room: &Arc<Room>) {
        room.remove_everyone(RoomEvent::Moved);
        self.remove(room);
    }

    /// Takes a closed room out of the map, unless a fresh one has replaced it already.
    fn remove(&self, room: &Arc<Room>) {
        if self
            .rooms
            .remove_if(room.name(), |_, existing| Arc::ptr_eq(existing, room))
            .is_some()
        {
            self.open.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// How many rooms exist.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Whether no room exists.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;
    use crate::signal::protocol::ParticipantInfo;
    use crate::webhook::EventKind;

    fn info(id: &str) -> ParticipantInfo {
        ParticipantInfo {
            id: ParticipantId::from(id),
            name: id.to_owned(),
        }
    }

    /// A newcomer called `id`, with `identity`, and where its events arrive.
    fn newcomer(
        id: &str,
        identity: Option<&str>,
    ) -> (Newcomer, mpsc::UnboundedReceiver<RoomEvent>) {
        let (events, receiver) = mpsc::unbounded_channel();
        (
            Newcomer {
                info: info(id),
                identity: identity.map(str::to_owned),
                events,
            },
            receiver,
        )
    }

    fn join(registry: &Registry, room: &str, id: &str) -> (Arc<Room>, Snapshot) {
        registry.join(room, newcomer(id, None).0).unwrap()
    }

    #[test]
    fn rooms_come_and_go_with_their_members() {
        let registry = Registry::default();
        let (a, mut a_rx) = newcomer("a", None);
        let (room, snapshot) = registry.join("r", a).unwrap();
        assert!(snapshot.participants.is_empty());
        let (same, snapshot) = join(&registry, "r", "b");
        assert!(Arc::ptr_eq(&room, &same));
        assert_eq!(snapshot.participants, vec![info("a")]);
        assert!(matches!(a_rx.try_recv(), Ok(RoomEvent::ParticipantJoined(p)) if p.id == "b"));

        registry.leave(&room, &ParticipantId::from("b"));
        assert!(matches!(a_rx.try_recv(), Ok(RoomEvent::ParticipantLeft(id)) if id == "b"));
        assert_eq!(registry.len(), 1);
        registry.leave(&room, &ParticipantId::from("a"));
        assert_eq!(registry.len(), 0);

        // A closed room is never rejoined: a fresh one replaces it.
        let (fresh, _) = join(&registry, "r", "c");
        assert!(!Arc::ptr_eq(&room, &fresh));
    }

    #[test]
    fn a_removed_member_is_told_and_the_others_see_it_leave() {
        let registry = Registry::default();
        let (a, mut a_rx) = newcomer("a", None);
        let (room, _) = registry.join("r", a).unwrap();
        let (b, mut b_rx) = newcomer("b", None);
        registry.join("r", b).unwrap();
        let _ = a_rx.try_recv();
        assert!(!registry.remove_participant(&room, &ParticipantId::from("x")));
        assert!(
            a_rx.try_recv().is_err() && b_rx.try_recv().is_err(),
            "nothing changed"
        );

        assert!(registry.remove_participant(&room, &ParticipantId::from("b")));
        assert!(matches!(b_rx.try_recv(), Ok(RoomEvent::Removed)));
        assert!(matches!(a_rx.try_recv(), Ok(RoomEvent::ParticipantLeft(id)) if id == "b"));
        assert_eq!(room.len(), 1);
        assert!(registry.remove_participant(&room, &ParticipantId::from("a")));
        assert_eq!(registry.len(), 0, "the emptied room is gone");
    }

    #[test]
    fn a_closed_room_tells_everybody_and_is_gone() {
        let registry = Registry::default();
        let (a, mut a_rx) = newcomer("a", None);
        let (room, _) = registry.join("r", a).unwrap();
        let (b, mut b_rx) = newcomer("b", None);
        registry.join("r", b).unwrap();
        let _ = a_rx.try_recv();
        registry.close_room(&room);
        assert!(matches!(a_rx.try_recv(), Ok(RoomEvent::Removed)));
        assert!(matches!(b_rx.try_recv(), Ok(RoomEvent::Removed)));
        assert!(a_rx.try_recv().is_err() && b_rx.try_recv().is_err());
        assert_eq!((registry.len(), room.len()), (0, 0));
        assert!(registry.room("r").is_none());
        // Leaving afterwards, as the ended sessions do, changes nothing.
        registry.leave(&room, &ParticipantId::from("a"));
        assert_eq!(registry.len(), 0);
    }

    #[test]
    fn a_mute_request_needs_the_member_and_its_track() {
        let registry = Registry::default();
        let (room, _) = join(&registry, "r", "a");
        assert_eq!(
            room.request_mute(&ParticipantId::from("x"), "t", true),
            Err(crate::room::MuteRefusal::UnknownParticipant)
        );
        assert_eq!(
            room.request_mute(&ParticipantId::from("a"), "t", true),
            Err(crate::room::MuteRefusal::UnknownTrack)
        );
        let views = room.participants();
        assert_eq!(views.len(), 1);
        assert_eq!(
            (views[0].connection.as_str(), views[0].tracks.len()),
            ("new", 0)
        );
    }

    /// A registry whose rooms' webhook events can be read back, in order.
    fn registry_with_webhooks() -> (Registry, mpsc::UnboundedReceiver<crate::webhook::Queued>) {
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let (webhooks, events) = crate::webhook::Webhooks::queue(100, metrics);
        (Registry::default().with_webhooks(webhooks), events)
    }

    /// The events so far: (kind, who, track).
    fn hooked(
        events: &mut mpsc::UnboundedReceiver<crate::webhook::Queued>,
    ) -> Vec<(EventKind, String, String)> {
        let mut sequence = None;
        std::iter::from_fn(|| events.try_recv().ok())
            .map(|queued| {
                let event = queued.event;
                let expected = sequence.map_or(1, |last| last + 1);
                assert_eq!(event.sequence, expected, "{event:?}");
                sequence = Some(event.sequence);
                (
                    event.kind,
                    event
                        .participant
                        .map(|participant| participant.id.to_string())
                        .unwrap_or_default(),
                    event.track.map(|track| track.id).unwrap_or_default(),
                )
            })
            .collect()
    }

    fn track(participant: &str, id: &str) -> Arc<crate::media::publication::Publication> {
        crate::media::publication::Publication::new(
            crate::media::publication::TrackInfo {
                participant: ParticipantId::from(participant),
                track: id.to_owned(),
                stream: "s".to_owned(),
                kind: crate::signal::protocol::TrackKind::Audio,
                clock_rate: 48_000,
                mime_type: "audio/opus".to_owned(),
                screen: false,
            },
            &[],
            false,
            crate::ids::ConnectionId::next(crate::ids::WorkerIndex(0)),
            std::time::Instant::now(),
        )
    }

    fn event(kind: EventKind, who: &str, track: &str) -> (EventKind, String, String) {
        (kind, who.to_owned(), track.to_owned())
    }

    #[test]
    fn a_room_tells_the_webhooks_its_life_in_order() {
        use EventKind::*;
        let (registry, mut events) = registry_with_webhooks();
        let (room, _) = join(&registry, "r", "a");
        join(&registry, "r", "b");
        room.publish(vec![track("a", "mic"), track("a", "cam")]);
        room.publish(vec![track("stranger", "x")]);
        let (mic, cam) = {
            let state = room.state();
            (
                Arc::clone(&state.publications[0]),
                Arc::clone(&state.publications[1]),
            )
        };
        room.unpublish(vec![mic]);
        room.unpublish(vec![Arc::clone(&cam)]);
        room.unpublish(vec![cam]);
        room.publish(vec![track("b", "screen")]);
        registry.leave(&room, &ParticipantId::from("b"));
        registry.leave(&room, &ParticipantId::from("a"));
        registry.leave(&room, &ParticipantId::from("a"));
        assert_eq!(
            hooked(&mut events),
            [
                event(RoomStarted, "", ""),
                event(ParticipantJoined, "a", ""),
                event(ParticipantJoined, "b", ""),
                event(TrackPublished, "a", "mic"),
                event(TrackPublished, "a", "cam"),
                event(TrackUnpublished, "a", "mic"),
                event(TrackUnpublished, "a", "cam"),
                event(TrackPublished, "b", "screen"),
                event(TrackUnpublished, "b", "screen"),
                event(ParticipantLeft, "b", ""),
                event(ParticipantLeft, "a", ""),
                event(RoomFinished, "", ""),
            ],
            "a stranger's track, a second unpublish and a second leave tell nothing"
        );
        // The same name again is a new room, numbered from 1.
        join(&registry, "r", "c");
        assert_eq!(
            hooked(&mut events),
            [
                event(RoomStarted, "", ""),
                event(ParticipantJoined, "c", "")
            ]
        );
    }

    #[test]
    fn replacing_removing_and_closing_tell_the_webhooks_too() {
        use EventKind::*;
        let (registry, mut events) = registry_with_webhooks();
        let (room, _) = registry.join("r", newcomer("a1", Some("ada")).0).unwrap();
        room.publish(vec![track("a1", "mic")]);
        // A lone member replaced by its own newer session: the room goes on.
        registry.join("r", newcomer("a2", Some("ada")).0).unwrap();
        join(&registry, "r", "b");
        room.publish(vec![track("b", "cam")]);
        join(&registry, "r", "c");
        assert!(registry.remove_participant(&room, &ParticipantId::from("c")));
        registry.close_room(&room);
        registry.leave(&room, &ParticipantId::from("b"));
        assert_eq!(
            hooked(&mut events),
            [
                event(RoomStarted, "", ""),
                event(ParticipantJoined, "a1", ""),
                event(TrackPublished, "a1", "mic"),
                event(TrackUnpublished, "a1", "mic"),
                event(ParticipantLeft, "a1", ""),
                event(ParticipantJoined, "a2", ""),
                event(ParticipantJoined, "b", ""),
                event(TrackPublished, "b", "cam"),
                event(ParticipantJoined, "c", ""),
                event(ParticipantLeft, "c", ""),
                event(ParticipantLeft, "a2", ""),
                event(TrackUnpublished, "b", "cam"),
                event(ParticipantLeft, "b", ""),
                event(RoomFinished, "", ""),
            ]
        );
    }

    #[test]
    fn rooms_are_independent() {
        let registry = Registry::default();
        let (a, mut a_rx) = newcomer("a", None);
        registry.join("one", a).unwrap();
        join(&registry, "two", "b");
        assert!(a_rx.try_recv().is_err(), "no event crosses rooms");
        assert_eq!(registry.len(), 2);
    }

    #[test]
    fn a_full_room_and_a_full_server_refuse_and_change_nothing() {
        let registry = Registry::new(2, 2);
        let (one, _) = join(&registry, "one", "a");
        let (a_again, mut a_rx) = newcomer("a2", None);
        join(&registry, "one", "b");
        assert!(a_rx.try_recv().is_err());
        assert_eq!(
            registry.join("one", a_again).unwrap_err(),
            JoinRefusal::RoomFull { max: 2 }
        );
        assert_eq!(one.len(), 2);
        join(&registry, "two", "c");
        assert_eq!(
            registry.join("three", newcomer("d", None).0).unwrap_err(),
            JoinRefusal::TooManyRooms { max: 2 }
        );
        assert_eq!(registry.len(), 2);
        // An existing room still takes members, and a room that closes frees its place.
        registry.leave(&one, &ParticipantId::from("a"));
        join(&registry, "one", "e");
        registry.leave(&one, &ParticipantId::from("b"));
        registry.leave(&one, &ParticipantId::from("e"));
        assert_eq!(registry.len(), 1);
        join(&registry, "three", "d");
        assert_eq!(registry.len(), 2);
    }

    #[test]
    fn a_second_session_with_the_same_identity_replaces_the_first() {
        let registry = Registry::new(10, 2);
        let (first, mut first_rx) = newcomer("first", Some("ada"));
        let (room, _) = registry.join("r", first).unwrap();
        let (bob, mut bob_rx) = newcomer("bob", Some("bob"));
        registry.join("r", bob).unwrap();
        // The room is full, but the newcomer takes the place of its older session.
        let (second, _) = newcomer("second", Some("ada"));
        let (_, snapshot) = registry.join("r", second).unwrap();
        assert_eq!(snapshot.participants, vec![info("bob")]);
        assert_eq!(room.len(), 2);
        let first_events: Vec<_> = std::iter::from_fn(|| first_rx.try_recv().ok()).collect();
        assert!(matches!(
            first_events.as_slice(),
            [RoomEvent::ParticipantJoined(_), RoomEvent::Replaced]
        ));
        let bob_events: Vec<_> = std::iter::from_fn(|| bob_rx.try_recv().ok()).collect();
        assert!(matches!(
            bob_events.as_slice(),
            [RoomEvent::ParticipantLeft(left), RoomEvent::ParticipantJoined(joined)]
                if left == "first" && joined.id == "second"
        ));
        // The old session's own leave, when it comes, changes nothing.
        registry.leave(&room, &ParticipantId::from("first"));
        assert_eq!(room.len(), 2);
        assert!(bob_rx.try_recv().is_err());
    }
}

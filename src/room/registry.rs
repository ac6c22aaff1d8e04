//! Every room on the server, by name.

use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::mpsc;

use crate::room::{Room, RoomEvent, Snapshot};
use crate::signal::protocol::ParticipantInfo;

/// The rooms; a room exists while somebody is in it.
#[derive(Debug, Default)]
pub struct Registry {
    rooms: DashMap<String, Arc<Room>>,
}

impl Registry {
    /// Adds a participant to the room called `name`, creating it if needed.
    pub fn join(
        &self,
        name: &str,
        info: ParticipantInfo,
        events: mpsc::UnboundedSender<RoomEvent>,
    ) -> (Arc<Room>, Snapshot) {
        loop {
            let room = Arc::clone(
                self.rooms
                    .entry(name.to_owned())
                    .or_insert_with(|| Arc::new(Room::new(name.to_owned())))
                    .value(),
            );
            if let Some(snapshot) = room.try_join(info.clone(), events.clone()) {
                return (room, snapshot);
            }
            // The room emptied and closed between the lookup and the join; it is on its way
            // out of the map. Take it out ourselves and start over with a fresh one.
            self.rooms
                .remove_if(name, |_, existing| Arc::ptr_eq(existing, &room));
        }
    }

    /// Removes a participant from its room, and the room from the server once empty.
    pub fn leave(&self, room: &Arc<Room>, participant: &str) {
        if room.leave(participant) {
            self.rooms
                .remove_if(room.name(), |_, existing| Arc::ptr_eq(existing, room));
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
    use super::*;

    fn info(id: &str) -> ParticipantInfo {
        ParticipantInfo {
            id: id.to_owned(),
            name: id.to_owned(),
        }
    }

    #[test]
    fn rooms_come_and_go_with_their_members() {
        let registry = Registry::default();
        let (a_tx, mut a_rx) = mpsc::unbounded_channel();
        let (b_tx, _b_rx) = mpsc::unbounded_channel();
        let (room, snapshot) = registry.join("r", info("a"), a_tx);
        assert!(snapshot.participants.is_empty());
        let (same, snapshot) = registry.join("r", info("b"), b_tx);
        assert!(Arc::ptr_eq(&room, &same));
        assert_eq!(snapshot.participants, vec![info("a")]);
        assert!(matches!(a_rx.try_recv(), Ok(RoomEvent::ParticipantJoined(p)) if p.id == "b"));

        registry.leave(&room, "b");
        assert!(matches!(a_rx.try_recv(), Ok(RoomEvent::ParticipantLeft(id)) if id == "b"));
        assert_eq!(registry.len(), 1);
        registry.leave(&room, "a");
        assert_eq!(registry.len(), 0);

        // A closed room is never rejoined: a fresh one replaces it.
        let (c_tx, _c_rx) = mpsc::unbounded_channel();
        let (fresh, _) = registry.join("r", info("c"), c_tx);
        assert!(!Arc::ptr_eq(&room, &fresh));
    }

    #[test]
    fn rooms_are_independent() {
        let registry = Registry::default();
        let (a_tx, mut a_rx) = mpsc::unbounded_channel();
        let (b_tx, _b_rx) = mpsc::unbounded_channel();
        registry.join("one", info("a"), a_tx);
        registry.join("two", info("b"), b_tx);
        assert!(a_rx.try_recv().is_err(), "no event crosses rooms");
        assert_eq!(registry.len(), 2);
    }
}

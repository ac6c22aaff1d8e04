//! Which media worker a new connection goes to.
//!
//! A room's connections share one worker, its home: the worker with the fewest connections when
//! the room's first connection was made. Forwarding then stays on one thread, with no packet
//! crossing to another and no wake-up between them, and rooms spread over the cores. A room
//! larger than [`ROOM_SHARE`] connections spreads too: each further connection goes to the
//! worker with the fewest, so one big room is not held to one core; its packets to subscribers
//! on other workers cross in batches.
//!
//! Only signaling places and releases connections; the packet path never looks here.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::ids::WorkerIndex;

/// Connections of one room that share its home worker; a bigger room spreads beyond it.
pub const ROOM_SHARE: usize = 16;

/// One room's place.
#[derive(Debug)]
struct Home {
    worker: WorkerIndex,
    connections: usize,
}

#[derive(Debug)]
struct Ledger {
    /// Connections per worker.
    load: Vec<usize>,
    rooms: HashMap<String, Home>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Placement {
    ledger: Mutex<Ledger>,
}

/// A connection's place; gives it back when dropped.
#[derive(Debug)]
pub struct Seat {
    placement: Arc<Placement>,
    room: String,
    worker: WorkerIndex,
}

impl Seat {
    /// The worker the connection lives on.
    pub fn worker(&self) -> WorkerIndex {
        self.worker
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.placement.release(&self.room, self.worker);
    }
}

impl Placement {
    /// Placement over `workers` workers.
    pub fn new(workers: usize) -> Arc<Self> {
        Arc::new(Self {
            ledger: Mutex::new(Ledger {
                load: vec![0; workers.max(1)],
                rooms: HashMap::new(),
            }),
        })
    }

    /// A seat for a new connection in `room`.
    pub fn place(self: &Arc<Self>, room: &str) -> Seat {
        let mut ledger = self.ledger.lock();
        let least = least_loaded(&ledger.load);
        let home = ledger.rooms.entry(room.to_owned()).or_insert(Home {
            worker: least,
            connections: 0,
        });
        let worker = if home.connections < ROOM_SHARE {
            home.worker
        } else {
            least
        };
        home.connections += 1;
        ledger.load[worker.0] += 1;
        Seat {
            placement: Arc::clone(self),
            room: room.to_owned(),
            worker,
        }
    }

    fn release(&self, room: &str, worker: WorkerIndex) {
        let mut ledger = self.ledger.lock();
        ledger.load[worker.0] = ledger.load[worker.0].saturating_sub(1);
        if let Some(home) = ledger.rooms.get_mut(room) {
            home.connections = home.connections.saturating_sub(1);
            if home.connections == 0 {
                ledger.rooms.remove(room);
            }
        }
    }

    /// Connections per worker, in worker order.
    pub fn load(&self) -> Vec<usize> {
        self.ledger.lock().load.clone()
    }
}

/// The worker with the fewest connections; the lowest index among equals, so that an idle
/// server's first room lives on the worker that reads the sockets.
fn least_loaded(load: &[usize]) -> WorkerIndex {
    let (index, _) = load
        .iter()
        .enumerate()
        .min_by_key(|(index, count)| (**count, *index))
        .unwrap_or((0, &0));
    WorkerIndex(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_shares_its_home_and_rooms_spread_over_the_workers() {
        let placement = Placement::new(2);
        let first: Vec<Seat> = (0..5).map(|_| placement.place("first")).collect();
        assert!(first.iter().all(|seat| seat.worker() == WorkerIndex(0)));
        let second: Vec<Seat> = (0..3).map(|_| placement.place("second")).collect();
        assert!(
            second.iter().all(|seat| seat.worker() == WorkerIndex(1)),
            "the next room goes to the idle worker"
        );
        assert_eq!(placement.load(), vec![5, 3]);
        let third = placement.place("third");
        assert_eq!(third.worker(), WorkerIndex(1), "the less loaded one");
    }

    #[test]
    fn a_big_room_spreads_past_its_share() {
        let placement = Placement::new(2);
        let seats: Vec<Seat> = (0..ROOM_SHARE + 10)
            .map(|_| placement.place("big"))
            .collect();
        assert!(
            seats[..ROOM_SHARE]
                .iter()
                .all(|seat| seat.worker() == WorkerIndex(0))
        );
        assert!(
            seats[ROOM_SHARE..]
                .iter()
                .all(|seat| seat.worker() == WorkerIndex(1)),
            "past its share, the room fills the other worker up to an even load"
        );
        assert_eq!(placement.load(), vec![ROOM_SHARE, 10]);
    }

    #[test]
    fn seats_give_their_place_back() {
        let placement = Placement::new(3);
        let seats: Vec<Seat> = (0..4).map(|_| placement.place("room")).collect();
        assert_eq!(placement.load(), vec![4, 0, 0]);
        drop(seats);
        assert_eq!(placement.load(), vec![0, 0, 0]);
        assert!(
            placement.ledger.lock().rooms.is_empty(),
            "an empty room is forgotten"
        );
        // The room starts over on the least loaded worker.
        let elsewhere = placement.place("busy");
        let again = placement.place("room");
        assert_eq!(elsewhere.worker(), WorkerIndex(0));
        assert_eq!(again.worker(), WorkerIndex(1));
    }
}

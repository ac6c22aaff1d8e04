//! Which media worker a new connection goes to.
//!
//! A room's connections share one worker, its home, so that forwarding stays on one thread: no
//! packet crosses to another worker and no worker wakes another. A new room's home is the
//! reader (the worker that reads the sockets) while the reader spends less than
//! [`SPREAD_WHEN_BUSY`] (three quarters) of its time working: then no datagram crosses either.
//! Past that, new rooms go to the least busy worker, and rooms spread over the cores. A room larger than
//! [`ROOM_SHARE`] connections spreads too: each further connection goes to the worker with the
//! fewest, so one big room is not held to one core; its packets to subscribers on other workers
//! cross in batches.
//!
//! Only signaling places and releases connections; the packet path never looks here.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::engine::busy::Busy;
use crate::engine::crew::READER;
use crate::ids::WorkerIndex;

/// Connections of one room that share its home worker; a bigger room spreads beyond it.
pub const ROOM_SHARE: usize = 16;

/// The reader's busy share, in thousandths, from which new rooms go to other workers. Below it,
/// a room on the reader costs the least CPU: no datagram crosses and no worker wakes another.
/// (At `bae79bb`, which spread at half busy, `twenty-rooms-of-five` took 13.3 µs of CPU per
/// forwarded packet with two workers against 12.7 µs with one, in `bench/engine.sh`.) Above
/// it, the reader's core is needed for reading, and what it cannot do in time is worth a
/// crossing.
pub const SPREAD_WHEN_BUSY: u32 = 750;

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
    /// Each worker's busy share, in worker order.
    busy: Vec<Arc<Busy>>,
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
    /// Placement over the workers whose busy shares are `busy`, in worker order.
    pub fn new(busy: Vec<Arc<Busy>>) -> Arc<Self> {
        Arc::new(Self {
            ledger: Mutex::new(Ledger {
                load: vec![0; busy.len().max(1)],
                rooms: HashMap::new(),
            }),
            busy,
        })
    }

    /// A seat for a new connection in `room`.
    pub fn place(self: &Arc<Self>, room: &str) -> Seat {
        let mut ledger = self.ledger.lock();
        let least = least_loaded(&ledger.load);
        let new_home = self.home_for_a_new_room(&ledger.load);
        let home = ledger.rooms.entry(room.to_owned()).or_insert(Home {
            worker: new_home,
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

impl Placement {
    /// The reader while it has time to spare; else the least busy worker (the one with fewer
    /// connections among equals).
    fn home_for_a_new_room(&self, load: &[usize]) -> WorkerIndex {
        let busy = |worker: usize| self.busy.get(worker).map_or(0, |busy| busy.permille());
        if busy(READER.0) < SPREAD_WHEN_BUSY {
            return READER;
        }
        let (index, _) = load
            .iter()
            .enumerate()
            .min_by_key(|(index, count)| (busy(*index), **count, *index))
            .unwrap_or((READER.0, &0));
        WorkerIndex(index)
    }
}

/// The worker with the fewest connections; the lowest index among equals.
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

    fn placement(workers: usize) -> (Arc<Placement>, Vec<Arc<Busy>>) {
        let busy: Vec<Arc<Busy>> = (0..workers).map(|_| Arc::default()).collect();
        (Placement::new(busy.clone()), busy)
    }

    #[test]
    fn rooms_stay_on_the_reader_until_it_is_busy_then_spread() {
        let (placement, busy) = placement(3);
        let first: Vec<Seat> = (0..5).map(|_| placement.place("first")).collect();
        let second = placement.place("second");
        assert!(first.iter().all(|seat| seat.worker() == READER));
        assert_eq!(second.worker(), READER, "an idle reader takes every room");
        busy[0].set(SPREAD_WHEN_BUSY);
        busy[1].set(300);
        busy[2].set(200);
        let third = placement.place("third");
        assert_eq!(third.worker(), WorkerIndex(2), "the least busy worker");
        let again = placement.place("second");
        assert_eq!(again.worker(), READER, "a room keeps its home");
        busy[1].set(200);
        let fourth = placement.place("fourth");
        assert_eq!(
            fourth.worker(),
            WorkerIndex(1),
            "among equally busy workers, the one with fewer connections"
        );
        assert_eq!(placement.load(), vec![7, 1, 1]);
    }

    #[test]
    fn a_big_room_spreads_past_its_share() {
        let (placement, _) = placement(2);
        let seats: Vec<Seat> = (0..ROOM_SHARE + 10)
            .map(|_| placement.place("big"))
            .collect();
        assert!(
            seats[..ROOM_SHARE]
                .iter()
                .all(|seat| seat.worker() == READER)
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
        let (placement, busy) = placement(3);
        let seats: Vec<Seat> = (0..4).map(|_| placement.place("room")).collect();
        assert_eq!(placement.load(), vec![4, 0, 0]);
        drop(seats);
        assert_eq!(placement.load(), vec![0, 0, 0]);
        assert!(
            placement.ledger.lock().rooms.is_empty(),
            "an empty room is forgotten"
        );
        // The room starts over wherever placement says now.
        busy[0].set(900);
        assert_eq!(placement.place("room").worker(), WorkerIndex(1));
    }
}

//! Which media worker a new connection goes to.
//!
//! A connection goes where its room is, so that a room's forwarding stays on one thread: no
//! packet crosses to another worker and no worker wakes another. A new room starts on the
//! reader (the worker that reads the sockets), where not even its received datagrams cross.
//! Only when the worker a connection would go to is busy, its thread on the CPU for at least
//! the spread share (`media.spread_when_busy`, three quarters by default) of the last second,
//! does the connection go to the least busy worker instead: then the cores share the work, and the
//! room's packets for subscribers on other workers cross in batches. So a server uses one core
//! as long as one core does the work, which costs the least CPU, and every core when it must.
//!
//! Only signaling places and releases connections; the packet path never looks here.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::engine::busy::Busy;
use crate::engine::crew::READER;
use crate::ids::WorkerIndex;

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
    /// The busy share, in thousandths, from which a worker takes no more connections while a
    /// less busy one would.
    spread_at: u32,
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
    /// Placement over the workers whose busy shares are `busy`, in worker order, spreading
    /// from `spread_at` thousandths busy (0 spreads every connection).
    pub fn new(busy: Vec<Arc<Busy>>, spread_at: u32) -> Arc<Self> {
        Arc::new(Self {
            ledger: Mutex::new(Ledger {
                load: vec![0; busy.len().max(1)],
                rooms: HashMap::new(),
            }),
            busy,
            spread_at,
        })
    }

    /// A seat for a new connection in `room`.
    pub fn place(self: &Arc<Self>, room: &str) -> Seat {
        let mut ledger = self.ledger.lock();
        let wanted = ledger.rooms.get(room).map_or(READER, |home| home.worker);
        let worker = if self.busy(wanted) < self.spread_at {
            wanted
        } else {
            self.least_busy(&ledger.load)
        };
        let home = ledger.rooms.entry(room.to_owned()).or_insert(Home {
            worker,
            connections: 0,
        });
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

    fn busy(&self, worker: WorkerIndex) -> u32 {
        self.busy.get(worker.0).map_or(0, |busy| busy.permille())
    }

    /// The least busy worker; among equals, the one with the fewest connections, then the
    /// lowest index.
    fn least_busy(&self, load: &[usize]) -> WorkerIndex {
        let (index, _) = load
            .iter()
            .enumerate()
            .min_by_key(|(index, count)| (self.busy(WorkerIndex(*index)), **count, *index))
            .unwrap_or((READER.0, &0));
        WorkerIndex(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE_QUARTERS: u32 = 750;

    fn placement(workers: usize, spread_at: u32) -> (Arc<Placement>, Vec<Arc<Busy>>) {
        let busy: Vec<Arc<Busy>> = (0..workers).map(|_| Arc::default()).collect();
        (Placement::new(busy.clone(), spread_at), busy)
    }

    #[test]
    fn rooms_stay_on_the_reader_until_it_is_busy_then_spread() {
        let (placement, busy) = placement(3, THREE_QUARTERS);
        let first: Vec<Seat> = (0..5).map(|_| placement.place("first")).collect();
        let second = placement.place("second");
        assert!(first.iter().all(|seat| seat.worker() == READER));
        assert_eq!(second.worker(), READER, "an idle reader takes every room");
        busy[0].set(THREE_QUARTERS);
        busy[1].set(300);
        busy[2].set(200);
        let third = placement.place("third");
        assert_eq!(third.worker(), WorkerIndex(2), "the least busy worker");
        let joining_third = placement.place("third");
        assert_eq!(
            joining_third.worker(),
            WorkerIndex(2),
            "a room keeps its home"
        );
        let joining_second = placement.place("second");
        assert_eq!(
            joining_second.worker(),
            WorkerIndex(2),
            "a busy home takes no more: the room spreads"
        );
        busy[1].set(200);
        let fourth = placement.place("fourth");
        assert_eq!(
            fourth.worker(),
            WorkerIndex(1),
            "among equally busy workers, the one with fewer connections"
        );
        assert_eq!(placement.load(), vec![6, 1, 3]);
    }

    #[test]
    fn spreading_from_zero_deals_every_connection_to_the_least_loaded() {
        let (placement, _) = placement(3, 0);
        let seats: Vec<Seat> = (0..6).map(|_| placement.place("room")).collect();
        let workers: Vec<usize> = seats.iter().map(|seat| seat.worker().0).collect();
        assert_eq!(workers, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn seats_give_their_place_back() {
        let (placement, busy) = placement(3, THREE_QUARTERS);
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

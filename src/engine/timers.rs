//! One timer structure for all of a worker's connections: each connection has at most one
//! deadline, the earliest thing it needs done.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use crate::ids::ConnectionId;

/// Deadlines by connection, ordered by time.
#[derive(Debug, Default)]
pub struct Timers {
    by_time: BTreeSet<(Instant, ConnectionId)>,
    by_connection: HashMap<ConnectionId, Instant>,
}

impl Timers {
    /// Sets (or clears) `connection`'s deadline.
    pub fn schedule(&mut self, connection: ConnectionId, deadline: Option<Instant>) {
        if let Some(previous) = self.by_connection.remove(&connection) {
            self.by_time.remove(&(previous, connection));
        }
        if let Some(deadline) = deadline {
            self.by_connection.insert(connection, deadline);
            self.by_time.insert((deadline, connection));
        }
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.by_time.first().map(|(deadline, _)| *deadline)
    }

    /// Removes and returns the connections due at `now`.
    pub fn due(&mut self, now: Instant, out: &mut Vec<ConnectionId>) {
        while let Some(&(deadline, connection)) = self.by_time.first() {
            if deadline > now {
                break;
            }
            self.by_time.pop_first();
            self.by_connection.remove(&connection);
            out.push(connection);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::WorkerIndex;
    use std::time::Duration;

    #[test]
    fn hands_out_due_connections_in_order_and_keeps_one_deadline_each() {
        let mut timers = Timers::default();
        let now = Instant::now();
        let (a, b) = (
            ConnectionId::next(WorkerIndex(0)),
            ConnectionId::next(WorkerIndex(0)),
        );
        timers.schedule(a, Some(now + Duration::from_millis(30)));
        timers.schedule(b, Some(now + Duration::from_millis(10)));
        timers.schedule(a, Some(now + Duration::from_millis(5)));
        assert_eq!(timers.next(), Some(now + Duration::from_millis(5)));
        let mut due = Vec::new();
        timers.due(now + Duration::from_millis(20), &mut due);
        assert_eq!(due, vec![a, b]);
        assert_eq!(timers.next(), None);
        timers.schedule(b, Some(now));
        timers.schedule(b, None);
        assert_eq!(timers.next(), None);
    }
}

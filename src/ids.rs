//! Ids that would be easy to confuse as bare integers.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// One participant's media connection on the server, unique for the process's life. It names
/// the media worker that owns the connection, so that any worker can tell where a packet for it
/// goes without asking anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId {
    serial: u64,
    worker: WorkerIndex,
}

impl ConnectionId {
    /// A fresh id for a connection on `worker`.
    pub fn next(worker: WorkerIndex) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self {
            serial: NEXT.fetch_add(1, Ordering::Relaxed),
            worker,
        }
    }

    /// The worker that owns it.
    pub fn worker(self) -> WorkerIndex {
        self.worker
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.serial)
    }
}

/// A transceiver of one connection, as the WebRTC core numbers them (its index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransceiverIndex(pub usize);

/// One of the media engine's worker threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerIndex(pub usize);

impl fmt::Display for WorkerIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "w{}", self.0)
    }
}

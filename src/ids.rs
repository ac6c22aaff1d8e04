//! Ids that would be easy to confuse as bare integers.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// One participant's media connection on the server, unique for the process's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(u64);

impl ConnectionId {
    /// A fresh id.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// Its place in the order connections were made: what the engine deals workers by.
    pub fn serial(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// A transceiver of one connection, as the WebRTC core numbers them (its index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransceiverIndex(pub usize);

/// One of the media engine's worker threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WorkerIndex(pub usize);

impl fmt::Display for WorkerIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "w{}", self.0)
    }
}

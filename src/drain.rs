//! Graceful shutdown: the drain every session watches.
//!
//! When the server is told to stop it begins the drain, with a deadline. From then on the
//! HTTP listener takes no new connections, a WebSocket upgrade is refused, and every session
//! tells its client (`shutdown`), leaves its room, closes its media connection and closes its
//! socket with 1001 (going away). The server waits for its sessions to end, but never past the
//! deadline: a client that stopped reading cannot hold the process up.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// The server's drain; see the module documentation.
#[derive(Debug)]
pub struct Drain {
    /// `None` while serving; the deadline once draining.
    deadline: watch::Sender<Option<Instant>>,
    /// Sessions alive, counted by [`SessionGuard`]s.
    sessions: Arc<watch::Sender<usize>>,
}

impl Default for Drain {
    fn default() -> Self {
        Self {
            deadline: watch::Sender::new(None),
            sessions: Arc::new(watch::Sender::new(0)),
        }
    }
}

impl Drain {
    /// Begins draining: every session is told to end by `grace` from now. Beginning again
    /// keeps the first deadline. Returns the deadline.
    pub fn begin(&self, grace: Duration) -> Instant {
        let now = Instant::now();
        // A grace period too long to add up is as good as no deadline: a year will do.
        let mut deadline = now
            .checked_add(grace)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
        self.deadline.send_modify(|current| {
            deadline = *current.get_or_insert(deadline);
        });
        deadline
    }

    /// The deadline, once draining.
    pub fn deadline(&self) -> Option<Instant> {
        *self.deadline.borrow()
    }

    /// Whether the drain has begun.
    pub fn is_draining(&self) -> bool {
        self.deadline().is_some()
    }

    /// Waits until the drain begins; returns its deadline.
    pub async fn begun(&self) -> Instant {
        let mut receiver = self.deadline.subscribe();
        let deadline = receiver
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|deadline| *deadline);
        // The sender lives as long as `self`, so waiting cannot fail while we borrow it.
        deadline.unwrap_or_else(Instant::now)
    }

    /// Counts a session until the guard is dropped.
    pub fn session(&self) -> SessionGuard {
        self.sessions.send_modify(|count| *count += 1);
        SessionGuard {
            sessions: Arc::clone(&self.sessions),
        }
    }

    /// How many sessions are alive.
    pub fn sessions(&self) -> usize {
        *self.sessions.borrow()
    }

    /// Waits until no session is alive.
    pub async fn sessions_ended(&self) {
        let mut receiver = self.sessions.subscribe();
        let _ = receiver.wait_for(|count| *count == 0).await;
    }
}

/// Counts one session in its [`Drain`] while it lives.
#[derive(Debug)]
pub struct SessionGuard {
    sessions: Arc<watch::Sender<usize>>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.sessions
            .send_modify(|count| *count = count.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_deadline_stands() {
        let drain = Drain::default();
        assert!(!drain.is_draining());
        let first = drain.begin(Duration::from_secs(3));
        let second = drain.begin(Duration::from_secs(60));
        assert_eq!(first, second);
        assert_eq!(drain.begun().await, first);
    }

    #[tokio::test]
    async fn waits_for_every_session() {
        let drain = Drain::default();
        let one = drain.session();
        let two = drain.session();
        assert_eq!(drain.sessions(), 2);
        drop(one);
        let waiting = tokio::time::timeout(Duration::from_millis(20), drain.sessions_ended());
        assert!(waiting.await.is_err(), "one session is still alive");
        drop(two);
        drain.sessions_ended().await;
    }
}

//! Whether a kept-alive connection is idle, and since when: for `http.idle_timeout_secs`.
//!
//! hyper knows when a connection waits for its next request but does not say; the serve loop
//! wraps the connection's service so each request marks the connection busy until its response
//! is ready, and watches here for when it last went idle.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// One connection's requests in progress, and when the last one ended.
#[derive(Debug, Clone, Copy, Default)]
struct State {
    in_progress: usize,
    /// When the last request ended; `None` before the first one, and while one is in progress.
    idle_since: Option<Instant>,
}

/// The requests side: marks the connection busy.
#[derive(Debug, Clone)]
pub struct Activity(watch::Sender<State>);

/// The watching side: when the connection will have been idle too long.
#[derive(Debug)]
pub struct IdleWatch(watch::Receiver<State>);

/// A connection's activity and its watch.
pub fn activity() -> (Activity, IdleWatch) {
    let (sender, receiver) = watch::channel(State::default());
    (Activity(sender), IdleWatch(receiver))
}

impl Activity {
    /// Marks a request in progress until the returned guard is dropped.
    pub fn begin(&self) -> Busy {
        self.0.send_modify(|state| {
            state.in_progress += 1;
            state.idle_since = None;
        });
        Busy(self.0.clone())
    }
}

/// A request in progress on its connection.
#[derive(Debug)]
pub struct Busy(watch::Sender<State>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.send_modify(|state| {
            state.in_progress = state.in_progress.saturating_sub(1);
            if state.in_progress == 0 {
                state.idle_since = Some(Instant::now());
            }
        });
    }
}

impl IdleWatch {
    /// When the connection will have been idle for `timeout`, if it is idle after a request
    /// (before its first request a connection is bounded by the header timeout instead).
    pub fn deadline(&mut self, timeout: Duration) -> Option<Instant> {
        self.0
            .borrow_and_update()
            .idle_since
            .map(|since| since + timeout)
    }

    /// Waits until a request begins or ends. Never returns once nothing can mark it.
    pub async fn changed(&mut self) {
        if self.0.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_from_the_end_of_the_last_request() {
        let (activity, mut watch) = activity();
        let timeout = Duration::from_secs(5);
        assert_eq!(watch.deadline(timeout), None, "before any request");
        let first = activity.begin();
        let second = activity.begin();
        drop(first);
        assert_eq!(watch.deadline(timeout), None, "one still in progress");
        let before = Instant::now();
        drop(second);
        let after = Instant::now();
        tokio::time::timeout(Duration::from_secs(1), watch.changed())
            .await
            .expect("the end of the last request is seen");
        let deadline = watch.deadline(timeout).expect("idle");
        assert!(before + timeout <= deadline && deadline <= after + timeout);
        let _third = activity.begin();
        assert_eq!(watch.deadline(timeout), None, "busy again");
    }
}

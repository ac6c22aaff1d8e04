//! What a listener does when `accept` fails: tries again at once when only that one connection
//! went wrong, waits a little when the process or the system is out of something, and says so
//! once per burst of failures rather than once per attempt.
//!
//! Out of file descriptors (EMFILE, ENFILE) or memory, `accept` fails at once, again and again,
//! while the connection waits in the kernel's queue: a loop that retried at once would spin on a
//! core, and one that logged every attempt would flood the log. Waiting [`ACCEPT_RETRY`] between
//! attempts costs nothing a client would notice (the queue keeps its connections meanwhile), and
//! whatever frees a descriptor (a stream closing, a timeout) lets the next attempt through.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::{error, info};

/// How long an accept loop waits before trying again after `accept` failed for want of
/// resources.
pub const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// One listener's failures to accept, for its accept loop.
#[derive(Debug)]
pub struct AcceptFailures {
    /// What the listener is, for the log: "HTTP", "ICE-TCP".
    listener: &'static str,
    /// Its address.
    local: SocketAddr,
    /// The failures since the last connection accepted, if any.
    burst: Option<Burst>,
}

#[derive(Debug)]
struct Burst {
    began: Instant,
    failures: u64,
}

impl AcceptFailures {
    /// No failures yet on the `listener` at `local`.
    pub fn new(listener: &'static str, local: SocketAddr) -> Self {
        Self {
            listener,
            local,
            burst: None,
        }
    }

    /// Notes that `accept` failed with `error`; returns how long to wait before the next
    /// attempt, `None` to try again at once. The first failure of a burst is logged.
    pub fn failed(&mut self, error: &io::Error) -> Option<Duration> {
        if peer_gave_up(error) {
            return None;
        }
        match &mut self.burst {
            Some(burst) => burst.failures += 1,
            None => {
                error!(
                    listener = self.listener,
                    local = %self.local,
                    %error,
                    retry_ms = ACCEPT_RETRY.as_millis(),
                    "cannot accept connections; trying again shortly until it can"
                );
                self.burst = Some(Burst {
                    began: Instant::now(),
                    failures: 1,
                });
            }
        }
        Some(ACCEPT_RETRY)
    }

    /// Notes that `accept` gave a connection: a burst of failures, if there was one, is over,
    /// and the log says how long it lasted.
    pub fn accepted(&mut self) {
        if let Some(burst) = self.burst.take() {
            info!(
                listener = self.listener,
                local = %self.local,
                failures = burst.failures,
                lasted_ms = burst.began.elapsed().as_millis(),
                "accepting connections again"
            );
        }
    }

    /// Whether the last attempt failed.
    pub fn in_burst(&self) -> bool {
        self.burst.is_some()
    }
}

/// Whether `error` is about one connection whose peer gave up before it was accepted: nothing
/// is wrong with the listener, and the next connection may be accepted at once.
fn peer_gave_up(error: &io::Error) -> bool {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;

    use super::*;

    /// Everything logged while `run` runs, one line per event.
    fn logged(run: impl FnOnce()) -> Vec<String> {
        #[derive(Clone, Default)]
        struct Lines(Arc<Mutex<Vec<u8>>>);
        impl io::Write for Lines {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                self.0.lock().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, run);
        let text = String::from_utf8_lossy(&lines.0.lock()).into_owned();
        text.lines().map(str::to_owned).collect()
    }

    fn out_of_descriptors() -> io::Error {
        io::Error::from_raw_os_error(nix::libc::EMFILE)
    }

    fn listener() -> AcceptFailures {
        AcceptFailures::new("ICE-TCP", SocketAddr::from(([127, 0, 0, 1], 50_000)))
    }

    #[test]
    fn running_out_of_descriptors_waits_and_logs_once_per_burst() {
        let mut failures = listener();
        let lines = logged(|| {
            for _ in 0..50 {
                assert_eq!(failures.failed(&out_of_descriptors()), Some(ACCEPT_RETRY));
            }
            assert!(failures.in_burst());
            failures.accepted();
            failures.accepted();
            // A second burst is logged again.
            assert_eq!(failures.failed(&out_of_descriptors()), Some(ACCEPT_RETRY));
        });
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(lines[0].contains("ERROR") && lines[0].contains("cannot accept"));
        assert!(lines[0].contains("listener=\"ICE-TCP\"") && lines[0].contains("50000"));
        assert!(lines[1].contains("accepting connections again"));
        assert!(lines[1].contains("failures=50"), "{}", lines[1]);
        assert!(lines[2].contains("cannot accept"));
    }

    #[test]
    fn a_peer_that_gave_up_is_no_reason_to_wait() {
        let mut failures = listener();
        let lines = logged(|| {
            for kind in [
                io::ErrorKind::ConnectionAborted,
                io::ErrorKind::ConnectionReset,
                io::ErrorKind::ConnectionRefused,
            ] {
                assert_eq!(failures.failed(&io::Error::from(kind)), None);
            }
            failures.accepted();
        });
        assert!(lines.is_empty(), "{lines:#?}");
        assert!(!failures.in_burst());
    }

    #[test]
    fn any_other_failure_waits_too() {
        let mut failures = listener();
        for error in [
            io::Error::from_raw_os_error(nix::libc::ENFILE),
            io::Error::from_raw_os_error(nix::libc::ENOBUFS),
            io::Error::from_raw_os_error(nix::libc::ENOMEM),
            io::Error::other("something else"),
        ] {
            assert_eq!(failures.failed(&error), Some(ACCEPT_RETRY));
        }
    }
}

//! The process's open-file limit, and the share of it HTTP connections may hold.
//!
//! Every connection, every media socket and every ICE-TCP stream is a file descriptor. The soft
//! limit most systems start a service with (1,024) is far below what a server with a few hundred
//! participants needs, and far below the hard limit the system allows; running out stops
//! `accept` for everybody, health checks included. So the server raises the soft limit to the
//! hard one at start, and keeps HTTP connections to a share of it ([`FileLimit::connection_share`]).

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use tracing::{info, warn};

/// Descriptors set aside for the server's own use: the listeners, the media sockets and each
/// worker's duplicates of them, the runtime's event queues, logs, the certificate files.
pub const RESERVED_DESCRIPTORS: u64 = 128;

/// The fewest HTTP connections the share ever allows, however low the limit.
const MIN_CONNECTION_SHARE: usize = 16;

/// The open-file limit, once raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimit {
    /// The soft limit the process started with.
    pub before: u64,
    /// The soft limit now.
    pub now: u64,
}

impl FileLimit {
    /// Raises the soft limit to the hard one and logs it. When the system refuses, the limit
    /// stays as it was, with a warning.
    pub fn raise() -> Self {
        let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
            Ok(limits) => limits,
            Err(error) => {
                warn!(%error, "cannot read the open-file limit; assuming 1024");
                return Self::unchanged(1024);
            }
        };
        if soft >= hard {
            info!(limit = soft, "open-file limit already at its hard limit");
            return Self::unchanged(soft);
        }
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => {
                info!(from = soft, to = hard, "raised the open-file limit");
                Self {
                    before: soft,
                    now: hard,
                }
            }
            Err(error) => {
                warn!(%error, from = soft, to = hard, "cannot raise the open-file limit");
                Self::unchanged(soft)
            }
        }
    }

    fn unchanged(limit: u64) -> Self {
        Self {
            before: limit,
            now: limit,
        }
    }

    /// How many HTTP connections (pages, API calls, WebSockets) may be open at once: half of
    /// what the limit leaves after [`RESERVED_DESCRIPTORS`], so that every participant's
    /// WebSocket can have an ICE-TCP stream beside it and a flood of connections never takes
    /// the descriptors media needs.
    pub fn connection_share(&self) -> usize {
        let share = self.now.saturating_sub(RESERVED_DESCRIPTORS) / 2;
        usize::try_from(share)
            .unwrap_or(usize::MAX)
            .max(MIN_CONNECTION_SHARE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let limit = FileLimit::raise();
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("the limit");
        assert_eq!(soft, hard);
        assert_eq!(limit.now, soft);
        assert!(limit.before <= limit.now);
        // Raising again changes nothing.
        assert_eq!(FileLimit::raise().now, soft);
    }

    #[test]
    fn connections_get_half_of_what_the_reserve_leaves() {
        let share = |now| FileLimit { before: now, now }.connection_share();
        assert_eq!(share(1024), 448);
        assert_eq!(share(1_048_576), 524_224);
        assert_eq!(share(100), MIN_CONNECTION_SHARE);
    }
}

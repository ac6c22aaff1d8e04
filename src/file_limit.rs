//! The process's open-file limit, and the shares of it HTTP connections and ICE-TCP streams may
//! hold.
//!
//! Every connection, every media socket and every ICE-TCP stream is a file descriptor. The soft
//! limit most systems start a service with (1,024) is far below what a server with a few hundred
//! participants needs, and far below the hard limit the system allows; running out stops
//! `accept` for everybody, health checks included. So the server raises the soft limit to the
//! hard one at start, and keeps HTTP connections ([`FileLimit::connection_share`]) and ICE-TCP
//! streams ([`FileLimit::ice_tcp_share`]) to half each of what is left after its own
//! descriptors: a flood on either port leaves the other its descriptors.

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use tracing::{info, warn};

/// Descriptors set aside for the server's own use: the listeners, the media sockets and each
/// worker's duplicates of them, the runtime's event queues, logs, the certificate files.
pub const RESERVED_DESCRIPTORS: u64 = 128;

/// The fewest HTTP connections, or ICE-TCP streams, a share ever allows, however low the limit.
const MIN_SHARE: usize = 16;

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
        self.half_of_what_is_left()
    }

    /// How many ICE-TCP streams may be open at once: the other half, so that HTTP connections
    /// and ICE-TCP streams together stay within the limit, and a flood of streams never takes
    /// the descriptors signaling needs.
    pub fn ice_tcp_share(&self) -> usize {
        self.half_of_what_is_left()
    }

    /// What the limit leaves after [`RESERVED_DESCRIPTORS`], for HTTP connections and ICE-TCP
    /// streams together.
    pub fn left_for_connections(&self) -> u64 {
        self.now.saturating_sub(RESERVED_DESCRIPTORS)
    }

    fn half_of_what_is_left(&self) -> usize {
        usize::try_from(self.left_for_connections() / 2)
            .unwrap_or(usize::MAX)
            .max(MIN_SHARE)
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
        assert_eq!(share(100), MIN_SHARE);
    }

    #[test]
    fn ice_tcp_streams_get_the_other_half() {
        for now in [1024, 1025, 20_000, 1_048_576] {
            let limit = FileLimit { before: now, now };
            assert_eq!(limit.ice_tcp_share(), limit.connection_share());
            let both = (limit.ice_tcp_share() + limit.connection_share()) as u64;
            assert!(both <= limit.left_for_connections(), "{now}");
            assert!(both + RESERVED_DESCRIPTORS <= now, "{now}");
        }
        let tiny = FileLimit {
            before: 100,
            now: 100,
        };
        assert_eq!(tiny.ice_tcp_share(), MIN_SHARE);
        assert_eq!(tiny.left_for_connections(), 0);
    }
}

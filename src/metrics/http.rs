//! What the HTTP listener counts: the connections it holds, the sockets waiting to join, and
//! what it refused or timed out, by why.

use std::sync::atomic::Ordering;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter as PromCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::Level;

/// Why a connection or a WebSocket upgrade was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedBecause {
    /// `limits.connections_per_ip`.
    PerIp,
    /// `limits.max_connections`.
    Total,
    /// `limits.max_unjoined_sockets`.
    Unjoined,
    /// `http.allowed_origins`.
    Origin,
}

impl RefusedBecause {
    const ALL: [Self; 4] = [Self::PerIp, Self::Total, Self::Unjoined, Self::Origin];

    fn label(self) -> &'static str {
        match self {
            Self::PerIp => "per_ip",
            Self::Total => "total",
            Self::Unjoined => "unjoined",
            Self::Origin => "origin",
        }
    }
}

/// Which wait a connection was closed in for taking too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimedOut {
    /// `http.tls_handshake_timeout_secs`.
    TlsHandshake,
    /// `http.header_timeout_secs`.
    Header,
    /// `http.idle_timeout_secs`.
    Idle,
}

impl TimedOut {
    const ALL: [Self; 3] = [Self::TlsHandshake, Self::Header, Self::Idle];

    fn label(self) -> &'static str {
        match self {
            Self::TlsHandshake => "tls_handshake",
            Self::Header => "header",
            Self::Idle => "idle",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Phase {
    phase: &'static str,
}

/// The HTTP listener's series.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    /// HTTP connections open: pages, API calls and WebSockets.
    pub connections: Level,
    /// WebSockets open that have not joined a room.
    pub unjoined_sockets: Level,
    refused: Family<Reason, PromCounter>,
    timeouts: Family<Phase, PromCounter>,
}

impl HttpMetrics {
    /// Counts a refusal.
    pub fn refused(&self, because: RefusedBecause) {
        self.refused
            .get_or_create(&Reason {
                reason: because.label(),
            })
            .inc();
    }

    /// Counts a connection closed for a timeout.
    pub fn timed_out(&self, phase: TimedOut) {
        self.timeouts
            .get_or_create(&Phase {
                phase: phase.label(),
            })
            .inc();
    }

    /// Refusals so far for `because`.
    pub fn refusals(&self, because: RefusedBecause) -> u64 {
        self.refused
            .get_or_create(&Reason {
                reason: because.label(),
            })
            .get()
    }

    /// Connections closed so far for taking too long in `phase`.
    pub fn timeouts(&self, phase: TimedOut) -> u64 {
        self.timeouts
            .get_or_create(&Phase {
                phase: phase.label(),
            })
            .get()
    }

    /// Registers the series under `registry` (the `switchyard_` one).
    pub(super) fn register(&self, registry: &mut Registry) {
        // Every label value from the start, so a dashboard sees zeros rather than nothing.
        for because in RefusedBecause::ALL {
            let _ = self.refused.get_or_create(&Reason {
                reason: because.label(),
            });
        }
        for phase in TimedOut::ALL {
            let _ = self.timeouts.get_or_create(&Phase {
                phase: phase.label(),
            });
        }
        registry.register(
            "http_connections",
            "HTTP connections open: pages, API calls and WebSockets",
            self.connections.0.clone(),
        );
        registry.register(
            "unjoined_sockets",
            "Signaling WebSockets open that have not joined a room",
            self.unjoined_sockets.0.clone(),
        );
        registry.register(
            "connections_refused",
            "HTTP connections and WebSocket upgrades refused, by the cap or check that refused them",
            self.refused.clone(),
        );
        registry.register(
            "http_timeouts",
            "HTTP connections closed for taking too long, by what they were waiting for",
            self.timeouts.clone(),
        );
    }

    /// Connections open now.
    pub fn open_connections(&self) -> i64 {
        self.connections.load(Ordering::Relaxed)
    }
}

//! What a node of a cluster counts: whether it reaches Redis, the joins it sent to other nodes,
//! and how each placement it asked for ended.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter as PromCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::{Counter, Level};

/// How one placement of a room ended, as the node that asked saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlacementResult {
    /// The room is (or now is) on this node.
    Here,
    /// The room is on another node: the join was redirected there.
    Elsewhere,
    /// The cluster has as many rooms as it allows.
    Refused,
    /// Redis could not be reached, or no node could take the room.
    Unavailable,
}

impl PlacementResult {
    const ALL: [Self; 4] = [
        Self::Here,
        Self::Elsewhere,
        Self::Refused,
        Self::Unavailable,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Here => "here",
            Self::Elsewhere => "elsewhere",
            Self::Refused => "refused",
            Self::Unavailable => "unavailable",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// A node's cluster series (zeros on a server that is not in a cluster).
#[derive(Debug, Default)]
pub struct ClusterMetrics {
    /// 1 while the last call to Redis succeeded, 0 after one failed.
    pub redis_up: Level,
    /// Joins answered with `redirect`.
    pub redirects: Counter,
    placements: Family<ResultLabel, PromCounter>,
}

impl ClusterMetrics {
    /// Counts a placement that ended as `result`.
    pub fn placement(&self, result: PlacementResult) {
        self.placements
            .get_or_create(&ResultLabel {
                result: result.label(),
            })
            .inc();
    }

    /// Placements that ended as `result` so far.
    pub fn placements(&self, result: PlacementResult) -> u64 {
        self.placements
            .get_or_create(&ResultLabel {
                result: result.label(),
            })
            .get()
    }

    /// Registers the series under `registry` (the `switchyard_` one).
    pub(super) fn register(&self, registry: &mut Registry) {
        for result in PlacementResult::ALL {
            let _ = self.placements.get_or_create(&ResultLabel {
                result: result.label(),
            });
        }
        registry.register(
            "cluster_redis_up",
            "1 while this node reaches the cluster's Redis; 0 after a call to it failed, and on a server that is not in a cluster",
            self.redis_up.0.clone(),
        );
        registry.register(
            "cluster_redirects",
            "Joins this node answered with a redirect to the node hosting the room",
            self.redirects.0.clone(),
        );
        registry.register(
            "cluster_placements",
            "Room placements this node asked the cluster for, by how they ended",
            self.placements.clone(),
        );
    }
}

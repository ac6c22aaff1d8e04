//! The task that keeps a node's leases: every third of a lease it renews the node's entry and
//! its rooms' placements, until it is aborted (the node leaves) or the server is gone. A room
//! another node took meanwhile ends here, so that its members join again and meet the others
//! there, rather than the room going on in two halves.

use std::sync::{Arc, Weak};

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::warn;

use super::Cluster;
use crate::ServerContext;

/// Starts renewing `cluster`'s leases for the server `context` belongs to. The task holds the
/// server only weakly, so that a server dropped without a shutdown does not live on in it.
pub fn keep(cluster: Arc<Cluster>, context: Weak<ServerContext>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(cluster.renew_every());
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(context) = context.upgrade() else {
                return;
            };
            let (rooms, participants) = hosted(&context);
            for name in cluster.renew(rooms, participants).await {
                if let Some(room) = context.registry.room(&name) {
                    warn!(
                        room = %name,
                        members = room.len(),
                        "another node took this room while this one could not reach Redis: \
                         its members here join again there"
                    );
                    context.registry.move_room(&room);
                }
            }
        }
    })
}

/// The rooms this server hosts, and the participants in them.
pub fn hosted(context: &ServerContext) -> (Vec<String>, usize) {
    let rooms: Vec<String> = context
        .registry
        .rooms()
        .iter()
        .map(|room| room.name().to_owned())
        .collect();
    let participants = usize::try_from(context.counts().participants).unwrap_or(0);
    (rooms, participants)
}

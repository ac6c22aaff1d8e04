//! The task that keeps a node's leases: every third of a lease it renews the node's entry and
//! its rooms' placements, until it is aborted (the node leaves) or the server is gone.

use std::sync::{Arc, Weak};

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

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
            drop(context);
            cluster.renew(rooms, participants).await;
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

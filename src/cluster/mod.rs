//! Several nodes sharing one Redis: each room lives on one node, and a join that reaches
//! another node is redirected there.
//!
//! A node registers itself in the [`directory`] with a lease it renews ([`lease`]); the first
//! join of a room places it on the node with the most headroom, and later joins find it there.
//! Nothing else passes between nodes: media and signaling stay on the node hosting the room,
//! and Redis is never on a packet's road, so a Redis that is down stops new rooms only.

pub mod cpu;
pub mod directory;
pub mod lease;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tracing::{info, warn};

pub use directory::{Directory, DirectoryError, DirectoryView, NodeReport, Placed};

use crate::config::ClusterConfig;
use crate::ids::NodeId;
use crate::metrics::{Metrics, PlacementResult, ProcessSample};
use cpu::CpuMeter;

/// Where a join's room lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Here: the join goes on.
    Here,
    /// On another node, whose signaling is at this URL.
    Elsewhere(String),
}

/// Why a room could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// The cluster holds as many rooms as it allows.
    #[error("the cluster has {0} rooms open, the most it allows: no new room can start now")]
    Full(usize),
    /// The directory cannot be asked, or no node takes rooms.
    #[error("this node cannot place the room right now ({0}); try again in a moment")]
    Unavailable(String),
}

/// This node's part in a cluster.
#[derive(Debug)]
pub struct Cluster {
    directory: Directory,
    /// Where clients reach this node's signaling.
    url: String,
    media: Vec<String>,
    max_rooms: usize,
    lease: Duration,
    started_ms: u64,
    metrics: Arc<Metrics>,
    draining: AtomicBool,
    /// What the last renewal held, to let go of rooms that have since ended.
    held: Mutex<Vec<String>>,
    cpu: Mutex<CpuMeter>,
}

impl Cluster {
    /// This node, reached at `url`, with its media at `media`; nothing is sent to Redis yet.
    pub fn new(
        config: &ClusterConfig,
        url: String,
        media: Vec<String>,
        max_rooms: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Self, DirectoryError> {
        let directory = Directory::new(&config.redis_url, config.node_id.clone(), config.lease)?;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(Self {
            directory,
            url,
            media,
            max_rooms,
            lease: config.lease,
            started_ms: unix_ms(SystemTime::now()),
            metrics,
            draining: AtomicBool::new(false),
            held: Mutex::new(Vec::new()),
            cpu: Mutex::new(CpuMeter::new(cores)),
        })
    }

    /// This node's id.
    pub fn node(&self) -> &NodeId {
        self.directory.node()
    }

    /// Where clients reach this node's signaling.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How often the leases are renewed: three times per lease, so that two renewals in a row
    /// may fail before anything lapses.
    pub fn renew_every(&self) -> Duration {
        self.lease / 3
    }

    /// Where `room` lives, placing it if it lives nowhere yet.
    pub async fn place(&self, room: &str) -> Result<Placement, PlacementError> {
        let placed = self.directory.place(room, self.max_rooms).await;
        self.reached(placed.is_ok());
        let (result, outcome) = match placed {
            Ok(Placed::On { node, .. }) if node == *self.node() => {
                (Ok(Placement::Here), PlacementResult::Here)
            }
            Ok(Placed::On { url, .. }) => {
                (Ok(Placement::Elsewhere(url)), PlacementResult::Elsewhere)
            }
            Ok(Placed::Full) => (
                Err(PlacementError::Full(self.max_rooms)),
                PlacementResult::Refused,
            ),
            Ok(Placed::NoNode) => (
                Err(PlacementError::Unavailable(
                    "no node of the cluster takes rooms".to_owned(),
                )),
                PlacementResult::Unavailable,
            ),
            Err(error) => (
                Err(PlacementError::Unavailable(error.to_string())),
                PlacementResult::Unavailable,
            ),
        };
        self.metrics.cluster.placement(outcome);
        result
    }

    /// Every live node and every placed room, as Redis has them.
    pub async fn view(&self) -> Result<DirectoryView, DirectoryError> {
        let view = self.directory.view().await;
        self.reached(view.is_ok());
        view
    }

    /// Renews this node's entry and the leases of `rooms`, the rooms it hosts now, with
    /// `participants` in them; lets go of the rooms that ended since the last renewal. Returns
    /// the rooms another node took meanwhile (while this one could not reach Redis, its lease
    /// lapsed and a join placed the room elsewhere): they are that node's now.
    pub async fn renew(&self, rooms: Vec<String>, participants: usize) -> Vec<String> {
        let cpu_seconds = ProcessSample::read().map_or(0.0, |sample| sample.cpu_seconds);
        let cpu = self.cpu.lock().look(std::time::Instant::now(), cpu_seconds);
        let report = NodeReport {
            url: self.url.clone(),
            media: self.media.clone(),
            participants,
            rooms: rooms.len(),
            cpu,
            draining: self.draining.load(Ordering::Relaxed),
            started_ms: self.started_ms,
        };
        let hosted: HashSet<&String> = rooms.iter().collect();
        let released: Vec<String> = self
            .held
            .lock()
            .iter()
            .filter(|room| !hosted.contains(room))
            .cloned()
            .collect();
        match self.directory.renew(&report, &rooms, &released).await {
            Ok(taken) => {
                if !self.reached(true) {
                    info!(node = %self.node(), rooms = rooms.len(), "registered in the cluster");
                }
                *self.held.lock() = rooms
                    .into_iter()
                    .filter(|room| !taken.contains(room))
                    .collect();
                taken
            }
            Err(error) => {
                if self.reached(false) {
                    warn!(%error, "cannot renew this node's entry in the cluster; calls go on");
                }
                Vec::new()
            }
        }
    }

    /// Marks this node as shutting down: no new room is placed on it from the next renewal,
    /// which this makes at once.
    pub async fn drain(&self, rooms: Vec<String>, participants: usize) {
        self.draining.store(true, Ordering::Relaxed);
        // Rooms taken meanwhile end with the others in the drain.
        let _ = self.renew(rooms, participants).await;
    }

    /// Leaves the cluster: this node's entry and the leases of `rooms` (and of whatever it held
    /// at its last renewal) are removed. The renewals must have stopped, or the next one would
    /// register the node again.
    pub async fn leave(&self, rooms: Vec<String>) {
        let mut rooms = rooms;
        for room in self.held.lock().drain(..) {
            if !rooms.contains(&room) {
                rooms.push(room);
            }
        }
        match self.directory.leave(&rooms).await {
            Ok(()) => info!(node = %self.node(), "left the cluster"),
            Err(error) => {
                warn!(%error, "cannot remove this node from the cluster; its entry lapses with its lease")
            }
        }
    }

    /// Records whether the last call reached Redis; returns whether the one before did.
    fn reached(&self, now: bool) -> bool {
        let before = self
            .metrics
            .cluster
            .redis_up
            .swap(i64::from(now), Ordering::Relaxed);
        before == 1
    }
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}

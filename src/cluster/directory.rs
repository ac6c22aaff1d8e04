//! The cluster's directory in Redis: which nodes are live and how loaded, and which node hosts
//! each room. Every change is one Lua script (`scripts/`), so it is atomic however many nodes
//! call at once; this file only carries typed values to and from them.
//!
//! Calls are bounded in time: a Redis that does not answer costs a join a second or two, never
//! a session stuck waiting. The connection comes back by itself when Redis does.

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, Script};

use crate::ids::NodeId;

/// Every key the cluster writes starts with this.
const PREFIX: &str = "switchyard:";

/// How long one call to Redis may take, reconnecting included.
const PATIENCE: Duration = Duration::from_secs(2);

fn script(body: &str) -> Script {
    Script::new(&format!("{}\n{body}", include_str!("scripts/prelude.lua")))
}

static RENEW: LazyLock<Script> = LazyLock::new(|| script(include_str!("scripts/renew.lua")));
static PLACE: LazyLock<Script> = LazyLock::new(|| script(include_str!("scripts/place.lua")));
static LEAVE: LazyLock<Script> = LazyLock::new(|| script(include_str!("scripts/leave.lua")));
static VIEW: LazyLock<Script> = LazyLock::new(|| script(include_str!("scripts/view.lua")));

/// Redis could not be asked, or answered what the scripts never return.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// No answer in time.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// The connection or the command failed.
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// An answer of the wrong shape.
    #[error("Redis answered something unexpected: {0}")]
    Unexpected(String),
}

/// What a node tells the directory about itself at each renewal.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeReport {
    /// Where clients reach its signaling.
    pub url: String,
    /// Its media addresses, for operators.
    pub media: Vec<String>,
    /// Participants it hosts.
    pub participants: usize,
    /// Rooms it hosts.
    pub rooms: usize,
    /// The share of the machine's CPU it used lately, 0 to 1.
    pub cpu: f64,
    /// Whether it is shutting down: it takes no new room, and its rooms may move.
    pub draining: bool,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_ms: u64,
}

/// Where the directory put a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// On this node, reached at this signaling URL.
    On {
        /// The node.
        node: NodeId,
        /// Its signaling URL.
        url: String,
    },
    /// Nowhere: the cluster has as many rooms as it allows.
    Full,
    /// Nowhere: no live node takes rooms.
    NoNode,
}

/// A live node, as the directory lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeEntry {
    /// Its id.
    pub id: String,
    /// Where clients reach its signaling.
    pub url: String,
    /// Its media addresses.
    pub media: Vec<String>,
    /// Participants it hosts, as of its last renewal.
    pub participants: u64,
    /// Rooms it hosts, as of its last renewal, with those placed on it since.
    pub rooms: u64,
    /// The share of its machine's CPU it used lately, 0 to 1.
    pub cpu: f64,
    /// Whether it is shutting down.
    pub draining: bool,
    /// Milliseconds until its entry lapses unless renewed.
    pub lease_ms: i64,
}

/// A room and the node hosting it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RoomEntry {
    /// The room's name.
    pub room: String,
    /// The hosting node's id.
    pub node: String,
}

/// The whole directory, at one moment.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DirectoryView {
    /// The live nodes.
    pub nodes: Vec<NodeEntry>,
    /// The placed rooms.
    pub rooms: Vec<RoomEntry>,
}

/// One node's handle on the directory.
#[derive(Clone)]
pub struct Directory {
    redis: ConnectionManager,
    node: NodeId,
    lease: Duration,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("node", &self.node)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl Directory {
    /// The directory at `redis_url`, for `node`, whose entries last `lease`. Nothing is sent
    /// yet: the connection opens with the first call, and again whenever it was lost.
    pub fn new(redis_url: &str, node: NodeId, lease: Duration) -> Result<Self, DirectoryError> {
        let client = redis::Client::open(redis_url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let redis = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self { redis, node, lease })
    }

    /// This node.
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// Renews this node's entry with `report`, and the leases of the rooms it `holds`; lets go
    /// of the rooms it `released`. Returns the held rooms another node has taken meanwhile.
    pub async fn renew(
        &self,
        report: &NodeReport,
        holds: &[String],
        released: &[String],
    ) -> Result<Vec<String>, DirectoryError> {
        let mut call = RENEW.prepare_invoke();
        call.arg(PREFIX)
            .arg(self.node.as_str())
            .arg(self.lease_ms())
            .arg(&report.url)
            .arg(report.media.join(","))
            .arg(report.participants)
            .arg(report.rooms)
            .arg(format!("{:.3}", report.cpu))
            .arg(u8::from(report.draining))
            .arg(report.started_ms)
            .arg(holds.len())
            .arg(holds)
            .arg(released);
        let mut redis = self.redis.clone();
        bounded(call.invoke_async(&mut redis)).await
    }

    /// Where `room` lives, placing it if it lives nowhere yet; `max_rooms` bounds the rooms of
    /// the whole cluster (0: no bound).
    pub async fn place(&self, room: &str, max_rooms: usize) -> Result<Placed, DirectoryError> {
        let mut call = PLACE.prepare_invoke();
        call.arg(PREFIX)
            .arg(room)
            .arg(self.lease_ms())
            .arg(max_rooms);
        let mut redis = self.redis.clone();
        let answer: Vec<String> = bounded(call.invoke_async(&mut redis)).await?;
        match answer.as_slice() {
            [placed, node, url] if placed == "placed" => Ok(Placed::On {
                node: node
                    .parse()
                    .map_err(|_| DirectoryError::Unexpected(format!("node id `{node}`")))?,
                url: url.clone(),
            }),
            [full] if full == "full" => Ok(Placed::Full),
            [none] if none == "none" => Ok(Placed::NoNode),
            other => Err(DirectoryError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Removes this node's entry and its leases on `rooms`.
    pub async fn leave(&self, rooms: &[String]) -> Result<(), DirectoryError> {
        let mut call = LEAVE.prepare_invoke();
        call.arg(PREFIX).arg(self.node.as_str()).arg(rooms);
        let mut redis = self.redis.clone();
        bounded::<i64>(call.invoke_async(&mut redis))
            .await
            .map(drop)
    }

    /// Every live node and every placed room.
    pub async fn view(&self) -> Result<DirectoryView, DirectoryError> {
        let mut call = VIEW.prepare_invoke();
        call.arg(PREFIX);
        let mut redis = self.redis.clone();
        let (nodes, rooms): (Vec<Vec<String>>, Vec<Vec<String>>) =
            bounded(call.invoke_async(&mut redis)).await?;
        let nodes = nodes
            .into_iter()
            .map(|fields| node_entry(&fields))
            .collect::<Result<_, _>>()?;
        let rooms = rooms
            .into_iter()
            .map(|fields| match <[String; 2]>::try_from(fields) {
                Ok([room, node]) => Ok(RoomEntry { room, node }),
                Err(fields) => Err(DirectoryError::Unexpected(format!("room {fields:?}"))),
            })
            .collect::<Result<_, _>>()?;
        Ok(DirectoryView { nodes, rooms })
    }

    fn lease_ms(&self) -> u64 {
        u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX)
    }
}

/// A node's fields as `view.lua` lists them.
fn node_entry(fields: &[String]) -> Result<NodeEntry, DirectoryError> {
    let [id, url, media, participants, rooms, cpu, draining, lease_ms] = fields else {
        return Err(DirectoryError::Unexpected(format!("node {fields:?}")));
    };
    let number = |text: &str| {
        text.parse::<f64>()
            .map_err(|_| DirectoryError::Unexpected(format!("number `{text}` of node {id}")))
    };
    Ok(NodeEntry {
        id: id.clone(),
        url: url.clone(),
        media: media
            .split(',')
            .filter(|address| !address.is_empty())
            .map(str::to_owned)
            .collect(),
        participants: number(participants)? as u64,
        rooms: number(rooms)? as u64,
        cpu: number(cpu)?,
        draining: draining == "1",
        lease_ms: number(lease_ms)? as i64,
    })
}

/// `call`, given [`PATIENCE`] at most.
async fn bounded<T: FromRedisValue>(
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, DirectoryError> {
    match tokio::time::timeout(PATIENCE, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(DirectoryError::Timeout(PATIENCE)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(values: &[&str]) -> Vec<String> {
        values.iter().map(|value| (*value).to_owned()).collect()
    }

    #[test]
    fn a_node_entry_reads_its_eight_fields() {
        let entry = node_entry(&fields(&[
            "node-1",
            "ws://127.0.0.1:8080/ws",
            "udp 127.0.0.1:50000,tcp 127.0.0.1:50000",
            "12",
            "3",
            "0.250",
            "1",
            "4200",
        ]))
        .expect("entry");
        assert_eq!(entry.media.len(), 2);
        assert_eq!((entry.participants, entry.rooms), (12, 3));
        assert!(entry.draining);
        assert_eq!(entry.lease_ms, 4200);
        assert!((entry.cpu - 0.25).abs() < 1e-9);
    }

    #[test]
    fn a_node_entry_of_another_shape_is_an_error_not_a_panic() {
        assert!(node_entry(&fields(&["node-1", "ws://x/ws"])).is_err());
        let mut bad = fields(&["n", "u", "", "many", "0", "0", "0", "0"]);
        assert!(node_entry(&bad).is_err());
        bad[3] = "1".to_owned();
        assert!(node_entry(&bad).expect("entry").media.is_empty());
    }
}

//! Nodes of a cluster as real `switchyard` processes on loopback, sharing one real Redis, and
//! what their directory says.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::PATIENCE;
use super::process::{ServerProcess, free_port};
use super::redis_server::RedisProcess;

/// How long the tests' leases last: short, so a dead node is replaced quickly.
pub const LEASE: Duration = Duration::from_secs(3);

/// Starts a node called `id` on `redis`, with `extra` arguments.
pub async fn node(redis: &RedisProcess, id: &str, extra: &[&str]) -> ServerProcess {
    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut args: Vec<String> = [
        "--http",
        &address.to_string(),
        "--media-ip",
        "127.0.0.1",
        "--redis-url",
        &redis.url(),
        "--node-id",
        id,
        "--cluster-lease",
        &LEASE.as_secs().to_string(),
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    ServerProcess::start(address, &args, &[]).await
}

/// `GET /api/cluster` of the node at `address`: the status and the body.
pub async fn view(address: SocketAddr) -> (u16, Value) {
    let (status, body) = super::http::get(address, "/api/cluster")
        .await
        .expect("the node answers");
    let value = serde_json::from_str(&body).unwrap_or(Value::Null);
    (status, value)
}

/// The ids of the live nodes the directory lists, asked of `address`.
pub async fn live_nodes(address: SocketAddr) -> Vec<String> {
    let (_, view) = view(address).await;
    let mut ids: Vec<String> = view["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|node| node["id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

/// Which node hosts each room, asked of `address`.
pub async fn placements(address: SocketAddr) -> BTreeMap<String, String> {
    let (_, view) = view(address).await;
    view["rooms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|room| {
            Some((
                room["room"].as_str()?.to_owned(),
                room["node"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// Waits until `condition` holds of the directory as `address` reads it.
pub async fn wait_for_view(
    address: SocketAddr,
    what: &str,
    condition: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, view) = view(address).await;
        if status == 200 && condition(&view) {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the directory says {view}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the node at `address` lists `count` live nodes.
pub async fn wait_for_nodes(address: SocketAddr, count: usize) {
    wait_for_view(address, &format!("{count} live nodes"), |view| {
        view["nodes"].as_array().map_or(0, Vec::len) == count
    })
    .await;
}

/// Waits until the node at `address` shows `value` for the series `series` at `/metrics`.
pub async fn wait_for_metric(address: SocketAddr, series: &str, value: f64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, text) = super::http::get(address, "/metrics")
            .await
            .expect("the node answers");
        let scrape = super::prometheus::parse(&text).expect("valid OpenMetrics");
        if scrape.samples.get(series) == Some(&value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} never became {value}: {:?}",
            scrape.samples.get(series)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

//! The cluster's directory scripts against a real Redis: the placement rule (least load, rooms
//! just placed counted, busy and draining nodes passed over, ties), leases that lapse, rooms
//! let go, a room taken by another node, and the room limit of the whole cluster.

mod common;

use std::time::Duration;

use common::redis_server::RedisProcess;
use switchyard::cluster::{Directory, NodeReport, Placed};
use switchyard::ids::NodeId;

const LEASE: Duration = Duration::from_secs(2);

fn directory(redis: &RedisProcess, node: &str) -> Directory {
    let node: NodeId = node.parse().expect("a node id");
    Directory::new(&redis.url(), node, LEASE).expect("a directory")
}

fn report(node: &str, participants: usize, rooms: usize, cpu: f64) -> NodeReport {
    NodeReport {
        url: format!("ws://{node}.example/ws"),
        media: vec!["udp 127.0.0.1:50000".to_owned()],
        participants,
        rooms,
        cpu,
        draining: false,
        started_ms: 1,
    }
}

fn on(node: &str) -> Placed {
    Placed::On {
        node: node.parse().expect("a node id"),
        url: format!("ws://{node}.example/ws"),
    }
}

#[tokio::test]
async fn a_room_goes_to_the_least_loaded_node_and_stays_there() {
    let redis = RedisProcess::start().await;
    let (a, b) = (directory(&redis, "a"), directory(&redis, "b"));
    a.renew(&report("a", 10, 2, 0.2), &[], &[])
        .await
        .expect("a renews");
    b.renew(&report("b", 3, 1, 0.4), &[], &[])
        .await
        .expect("b renews");

    // b's load is 3 + 4 x 1 = 7 against a's 10 + 4 x 2 = 18.
    assert_eq!(a.place("standup", 0).await.expect("placed"), on("b"));
    // Asked again, by either node, the room is where it was put.
    assert_eq!(a.place("standup", 0).await.expect("placed"), on("b"));
    assert_eq!(b.place("standup", 0).await.expect("placed"), on("b"));

    // Rooms placed since the last renewal count: b is now at 11, then 15, then 19 > 18.
    for room in ["r1", "r2"] {
        assert_eq!(a.place(room, 0).await.expect("placed"), on("b"), "{room}");
    }
    assert_eq!(a.place("r3", 0).await.expect("placed"), on("a"));
}

#[tokio::test]
async fn busy_and_draining_nodes_are_passed_over_and_ties_go_by_cpu_then_id() {
    let redis = RedisProcess::start().await;
    let (a, b, c) = (
        directory(&redis, "a"),
        directory(&redis, "b"),
        directory(&redis, "c"),
    );
    // c has the least load, but its CPU is at 95 %.
    a.renew(&report("a", 8, 0, 0.5), &[], &[])
        .await
        .expect("renews");
    b.renew(&report("b", 8, 0, 0.3), &[], &[])
        .await
        .expect("renews");
    c.renew(&report("c", 0, 0, 0.95), &[], &[])
        .await
        .expect("renews");
    // Equal load: the lower CPU wins.
    assert_eq!(a.place("one", 0).await.expect("placed"), on("b"));

    // A draining node takes nothing, and its rooms are placed anew.
    let mut draining = report("b", 0, 0, 0.0);
    draining.draining = true;
    b.renew(&draining, &["one".to_owned()], &[])
        .await
        .expect("renews");
    assert_eq!(a.place("one", 0).await.expect("placed"), on("a"));

    // Every node busy: the least loaded anyway.
    a.renew(&report("a", 8, 0, 0.99), &[], &[])
        .await
        .expect("renews");
    c.renew(&report("c", 0, 0, 0.95), &[], &[])
        .await
        .expect("renews");
    assert_eq!(a.place("two", 0).await.expect("placed"), on("c"));

    // Equal in everything: the lower id.
    let (x, y) = (directory(&redis, "x"), directory(&redis, "y"));
    for node in [&a, &c] {
        node.leave(&[]).await.expect("leaves");
    }
    y.renew(&report("y", 1, 0, 0.0), &[], &[])
        .await
        .expect("renews");
    x.renew(&report("x", 1, 0, 0.0), &[], &[])
        .await
        .expect("renews");
    assert_eq!(x.place("three", 0).await.expect("placed"), on("x"));
}

#[tokio::test]
async fn a_node_that_stops_renewing_lapses_with_its_rooms() {
    let redis = RedisProcess::start().await;
    let (a, b) = (directory(&redis, "a"), directory(&redis, "b"));
    a.renew(&report("a", 0, 0, 0.0), &[], &[])
        .await
        .expect("renews");
    b.renew(&report("b", 50, 0, 0.0), &[], &[])
        .await
        .expect("renews");
    assert_eq!(b.place("standup", 0).await.expect("placed"), on("a"));
    a.renew(&report("a", 1, 1, 0.0), &["standup".to_owned()], &[])
        .await
        .expect("renews");

    // a dies; b keeps renewing. Once a's lease is over, nothing of a is left.
    let deadline = tokio::time::Instant::now() + LEASE * 3;
    loop {
        b.renew(&report("b", 50, 0, 0.0), &[], &[])
            .await
            .expect("renews");
        let view = b.view().await.expect("a view");
        if view.nodes.iter().all(|node| node.id != "a") {
            assert!(view.rooms.is_empty(), "{view:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a never lapsed: {view:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let keys = redis.keys().await;
    assert!(
        keys.iter()
            .all(|key| !key.contains("node:a") && !key.contains("room:")),
        "{keys:?}"
    );
    // The room's next join places it on a live node.
    assert_eq!(b.place("standup", 0).await.expect("placed"), on("b"));
}

#[tokio::test]
async fn renewals_let_go_of_ended_rooms_and_report_rooms_taken_meanwhile() {
    let redis = RedisProcess::start().await;
    let (a, b) = (directory(&redis, "a"), directory(&redis, "b"));
    a.renew(&report("a", 0, 0, 0.0), &[], &[])
        .await
        .expect("renews");
    assert_eq!(a.place("ended", 0).await.expect("placed"), on("a"));
    assert_eq!(a.place("kept", 0).await.expect("placed"), on("a"));
    let taken = a
        .renew(
            &report("a", 1, 1, 0.0),
            &["kept".to_owned()],
            &["ended".to_owned()],
        )
        .await
        .expect("renews");
    assert!(taken.is_empty());
    let rooms: Vec<String> = a
        .view()
        .await
        .expect("a view")
        .rooms
        .into_iter()
        .map(|room| room.room)
        .collect();
    assert_eq!(rooms, ["kept"]);

    // While a could not reach Redis, its lease on `kept` lapsed and b took the room.
    b.renew(&report("b", 0, 0, 0.0), &[], &[])
        .await
        .expect("renews");
    let mut connection = redis.connection().await.expect("redis");
    let () = redis::cmd("SET")
        .arg("switchyard:room:kept")
        .arg("b")
        .query_async(&mut connection)
        .await
        .expect("SET");
    let taken = a
        .renew(&report("a", 1, 1, 0.0), &["kept".to_owned()], &[])
        .await
        .expect("renews");
    assert_eq!(taken, ["kept"], "b keeps it, and a is told");
    assert_eq!(a.place("kept", 0).await.expect("placed"), on("b"));
    // A node letting go never removes another's room.
    a.leave(&["kept".to_owned()]).await.expect("leaves");
    assert_eq!(b.place("kept", 0).await.expect("placed"), on("b"));
}

#[tokio::test]
async fn the_room_limit_counts_every_node_and_a_cluster_without_nodes_places_nothing() {
    let redis = RedisProcess::start().await;
    let (a, b) = (directory(&redis, "a"), directory(&redis, "b"));
    assert_eq!(a.place("early", 2).await.expect("answered"), Placed::NoNode);
    a.renew(&report("a", 0, 0, 0.0), &[], &[])
        .await
        .expect("renews");
    b.renew(&report("b", 0, 0, 0.0), &[], &[])
        .await
        .expect("renews");
    assert!(matches!(a.place("one", 2).await, Ok(Placed::On { .. })));
    assert!(matches!(b.place("two", 2).await, Ok(Placed::On { .. })));
    assert_eq!(a.place("three", 2).await.expect("answered"), Placed::Full);
    assert_eq!(b.place("three", 2).await.expect("answered"), Placed::Full);
    // Rooms already placed are still found.
    assert!(matches!(b.place("one", 2).await, Ok(Placed::On { .. })));
}

#[tokio::test]
async fn a_redis_that_is_gone_is_an_error_in_bounded_time_and_is_found_again() {
    let mut redis = RedisProcess::start().await;
    let a = directory(&redis, "a");
    a.renew(&report("a", 0, 0, 0.0), &[], &[])
        .await
        .expect("renews");
    redis.stop();
    let started = tokio::time::Instant::now();
    assert!(a.place("standup", 0).await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    redis.restart().await;
    // The same handle reconnects by itself.
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    while a.renew(&report("a", 0, 0, 0.0), &[], &[]).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(a.place("standup", 0).await.expect("placed"), on("a"));
}

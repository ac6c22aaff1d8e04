//! Several `switchyard` processes sharing one real Redis on loopback: rooms spread over the
//! nodes and each lives on exactly one; a node killed with -9 leaves no entry once its lease is
//! over and its rooms are placed again; a node shutting down takes no new room; with Redis down
//! calls go on, new rooms are refused clearly, and the nodes register again when it is back;
//! tokens and the room limit hold across the cluster.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use common::cluster::{LEASE, live_nodes, node, placements, wait_for_nodes, wait_for_view};
use common::process::ServerProcess;
use common::redis_server::RedisProcess;
use common::{PATIENCE, camera_and_microphone, wait_for_flowing_tracks};
use loadtest::{ClientError, Participant, ParticipantOptions, RunOptions, Scenario, run};
use switchyard::auth::{Claims, Grants, TokenKey};
use switchyard::signal::protocol::{ErrorCode, ServerMessage};

async fn join_at(node: &ServerProcess, room: &str, name: &str) -> Result<Participant, ClientError> {
    Participant::join(
        ParticipantOptions::new(node.websocket_url(), room, name)
            .with_tracks(camera_and_microphone()),
    )
    .await
}

/// The node hosting `room`, by id, as the directory read at `asked` says.
async fn host_of(asked: &ServerProcess, room: &str) -> String {
    placements(asked.address)
        .await
        .remove(room)
        .unwrap_or_else(|| panic!("room {room} is placed nowhere"))
}

/// Two nodes, `node-a` and `node-b`, on `redis`, with `extra` arguments, once both are listed.
async fn two_nodes(redis: &RedisProcess, extra: &[&str]) -> [ServerProcess; 2] {
    let nodes = [
        node(redis, "node-a", extra).await,
        node(redis, "node-b", extra).await,
    ];
    wait_for_nodes(nodes[0].address, 2).await;
    nodes
}

/// Of two nodes `node-a` and `node-b`, the one called `host`, the other, and the other's id.
fn host_and_other<'a>(
    nodes: &'a [ServerProcess; 2],
    host: &str,
) -> (&'a ServerProcess, &'a ServerProcess, &'static str) {
    if host == "node-a" {
        (&nodes[0], &nodes[1], "node-b")
    } else {
        (&nodes[1], &nodes[0], "node-a")
    }
}

/// Waits until the participant has received more packets than `before`.
async fn wait_for_more_packets(participant: &Participant, before: u64) {
    participant
        .wait_until("more packets", PATIENCE, |observed| {
            observed
                .received
                .values()
                .map(|track| track.packets)
                .sum::<u64>()
                > before
        })
        .await
        .expect("media keeps flowing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_participants_through_one_node_land_in_six_rooms_spread_over_three_nodes() {
    let redis = RedisProcess::start().await;
    let nodes = [
        node(&redis, "node-a", &[]).await,
        node(&redis, "node-b", &[]).await,
        node(&redis, "node-c", &[]).await,
    ];
    wait_for_nodes(nodes[0].address, 3).await;
    let scenario = Scenario {
        rooms: 6,
        publishers: 3,
        subscribers: 2,
        video_bitrate: 200_000,
        duration: Duration::from_secs(4),
        ..Scenario::default()
    };
    let report = run(RunOptions::new(nodes[0].websocket_url(), scenario))
        .await
        .expect("the run completes");

    assert_eq!(report.participants.joined, 30, "{}", report.table());
    assert_eq!(report.participants.failed, 0, "{}", report.table());
    assert_eq!(
        report.tracks.received,
        report.tracks.expected,
        "{}",
        report.table()
    );
    // Every participant of a room joined on the same node, and media reached every one.
    let mut hosts: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for receiver in &report.per_receiver {
        hosts
            .entry(&receiver.room)
            .or_default()
            .insert(&receiver.server);
        assert!(receiver.bytes > 0, "{} received nothing", receiver.name);
    }
    assert_eq!(hosts.len(), 6, "{hosts:?}");
    for (room, servers) in &hosts {
        assert_eq!(servers.len(), 1, "room {room} on {servers:?}");
    }
    let used: BTreeSet<&str> = hosts.values().flatten().copied().collect();
    let urls: BTreeSet<String> = nodes.iter().map(ServerProcess::websocket_url).collect();
    assert_eq!(
        used,
        urls.iter().map(String::as_str).collect(),
        "the rooms spread over all three nodes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_leaves_no_entry_after_its_lease_and_its_room_is_placed_again() {
    let redis = RedisProcess::start().await;
    let mut nodes = vec![
        node(&redis, "node-a", &[]).await,
        node(&redis, "node-b", &[]).await,
        node(&redis, "node-c", &[]).await,
    ];
    wait_for_nodes(nodes[0].address, 3).await;
    let first = join_at(&nodes[0], "standup", "ada").await.expect("joins");
    let host = host_of(&nodes[0], "standup").await;
    let index = ["node-a", "node-b", "node-c"]
        .iter()
        .position(|id| *id == host)
        .expect("a known node");
    let dead = nodes.remove(index);
    dead.signal(libc::SIGKILL);
    let killed = tokio::time::Instant::now();
    drop(first);

    // Once its lease is over, the directory holds nothing of the dead node.
    let survivor = nodes[0].address;
    wait_for_view(survivor, "the dead node lapsed", |view| {
        let nodes = view["nodes"].as_array().map_or(0, Vec::len);
        let rooms = view["rooms"].as_array().map_or(0, Vec::len);
        nodes == 2 && rooms == 0
    })
    .await;
    assert!(
        killed.elapsed() < LEASE + Duration::from_secs(2),
        "lapsed {:?} after the kill, with a {LEASE:?} lease",
        killed.elapsed()
    );
    let keys = redis.keys().await;
    assert!(keys.iter().all(|key| !key.contains(&host)), "{keys:?}");

    // The room's next joins, through either live node, meet on one of them, with media.
    let again = join_at(&nodes[0], "standup", "ada").await.expect("joins");
    let other = join_at(&nodes[1], "standup", "grace").await.expect("joins");
    wait_for_flowing_tracks(&again, 2).await;
    wait_for_flowing_tracks(&other, 2).await;
    let new_host = host_of(&nodes[1], "standup").await;
    assert_ne!(new_host, host);
    assert_eq!(live_nodes(survivor).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_shutting_down_tells_its_clients_and_takes_no_new_room() {
    let redis = RedisProcess::start().await;
    let nodes = two_nodes(&redis, &["--shutdown-grace", "5"]).await;
    let participant = join_at(&nodes[0], "standup", "ada").await.expect("joins");
    let host = host_of(&nodes[0], "standup").await;
    let (leaving, staying, staying_id) = host_and_other(&nodes, &host);

    leaving.terminate();
    participant
        .wait_until("`shutdown`", PATIENCE, |observed| {
            observed
                .messages
                .iter()
                .any(|message| matches!(message, ServerMessage::Shutdown { .. }))
        })
        .await
        .expect("the client is told");
    // Its rooms, and every new one, go to the node that stays.
    for room in ["standup", "retro", "planning", "review"] {
        let joined = join_at(staying, room, "grace").await.expect("joins");
        assert_eq!(host_of(staying, room).await, staying_id, "{room}");
        drop(joined);
    }
    wait_for_view(staying.address, "the node left", |view| {
        view["nodes"].as_array().map_or(0, Vec::len) == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_calls_go_on_new_rooms_are_refused_and_nodes_register_again() {
    let mut redis = RedisProcess::start().await;
    let nodes = two_nodes(&redis, &[]).await;
    let ada = join_at(&nodes[0], "standup", "ada").await.expect("joins");
    let host = host_of(&nodes[0], "standup").await;
    let (host, _, _) = host_and_other(&nodes, &host);
    let grace = join_at(host, "standup", "grace").await.expect("joins");
    wait_for_flowing_tracks(&ada, 2).await;
    wait_for_flowing_tracks(&grace, 2).await;

    redis.stop();
    for node in &nodes {
        common::cluster::wait_for_metric(node.address, "switchyard_cluster_redis_up", 0.0).await;
    }
    // The call goes on.
    wait_for_more_packets(&ada, ada.received_packets()).await;
    wait_for_more_packets(&grace, grace.received_packets()).await;
    // A new room cannot be placed: a clear error, on either node.
    for node in &nodes {
        match join_at(node, "retro", "alan").await {
            Err(ClientError::Refused(ErrorCode::ClusterUnavailable, message)) => {
                assert!(message.contains("try again"), "{message}");
            }
            Err(other) => panic!("refused otherwise: {other}"),
            Ok(_) => panic!("a room was placed without Redis"),
        }
    }
    // The room this node hosts still takes people.
    let late = join_at(host, "standup", "edsger")
        .await
        .expect("joins the hosted room");
    wait_for_flowing_tracks(&late, 4).await;

    // Redis is back, empty: both nodes register again, and the hosted room with them.
    redis.restart().await;
    wait_for_view(nodes[1].address, "both nodes back with the room", |view| {
        view["nodes"].as_array().map_or(0, Vec::len) == 2
            && view["rooms"].as_array().map_or(0, Vec::len) == 1
    })
    .await;
    let joined = join_at(&nodes[0], "retro", "alan").await.expect("joins");
    wait_for_more_packets(&ada, ada.received_packets()).await;
    drop(joined);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_before_anything_is_placed_and_the_room_limit_spans_the_cluster() {
    const KEY: &str = "a cluster-wide token key of more than thirty-two bytes";
    let redis = RedisProcess::start().await;
    let args = ["--token-key", KEY, "--max-rooms", "2"];
    let nodes = two_nodes(&redis, &args).await;
    let token = |room: &str, identity: &str| {
        let claims = Claims::new(
            room,
            identity,
            Grants::ALL,
            SystemTime::now(),
            Duration::from_secs(600),
        );
        TokenKey::new(KEY)
            .expect("a key")
            .mint(&claims)
            .expect("a token")
    };
    let join_with = |node: &ServerProcess, room: &str, token: Option<String>| {
        let mut options = ParticipantOptions::new(node.websocket_url(), room, "ada")
            .with_tracks(camera_and_microphone());
        options.token = token;
        Participant::join(options)
    };

    // No token, or a token for another room: refused, and nothing written.
    assert!(matches!(
        join_with(&nodes[0], "standup", None).await,
        Err(ClientError::Refused(ErrorCode::TokenMissing, _))
    ));
    assert!(matches!(
        join_with(&nodes[1], "standup", Some(token("retro", "ada"))).await,
        Err(ClientError::Refused(ErrorCode::TokenWrongRoom, _))
    ));
    let keys = redis.keys().await;
    assert!(keys.iter().all(|key| !key.contains("room")), "{keys:?}");

    // Two rooms, wherever they land, fill the cluster.
    let _one = join_with(&nodes[0], "one", Some(token("one", "ada")))
        .await
        .expect("joins");
    let _two = join_with(&nodes[0], "two", Some(token("two", "bob")))
        .await
        .expect("joins");
    for node in &nodes {
        assert!(matches!(
            join_with(node, "three", Some(token("three", "cy"))).await,
            Err(ClientError::Refused(ErrorCode::TooManyRooms, _))
        ));
    }
    // An open room still takes people, through either node.
    join_with(&nodes[1], "one", Some(token("one", "dee")))
        .await
        .expect("joins room one");

    // The directory names rooms only to an operator.
    let (status, anybody) = common::cluster::view(nodes[1].address).await;
    assert_eq!(status, 200);
    assert_eq!(anybody["nodes"].as_array().map(Vec::len), Some(2));
    assert!(anybody.get("rooms").is_none(), "{anybody}");
    let admin = TokenKey::new(KEY)
        .expect("a key")
        .mint(&Claims::new(
            "api",
            "operator",
            Grants::ADMIN,
            SystemTime::now(),
            Duration::from_secs(600),
        ))
        .expect("a token");
    let bearer = format!("Bearer {admin}");
    let (status, body) = common::http::request(
        nodes[1].address,
        "GET",
        "/api/cluster",
        &[("Authorization", &bearer)],
        None,
    )
    .await
    .expect("the node answers");
    assert_eq!(status, 200, "{body}");
    let operator: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let mut rooms: Vec<&str> = operator["rooms"]
        .as_array()
        .expect("rooms for an admin")
        .iter()
        .filter_map(|room| room["room"].as_str())
        .collect();
    rooms.sort_unstable();
    assert_eq!(rooms, ["one", "two"]);
    let (status, _) = common::http::request(
        nodes[1].address,
        "GET",
        "/api/cluster",
        &[("Authorization", "Bearer not-a-token")],
        None,
    )
    .await
    .expect("the node answers");
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_another_node_took_meanwhile_ends_here_and_its_members_are_told_to_join_again() {
    let redis = RedisProcess::start().await;
    let nodes = two_nodes(&redis, &[]).await;
    let ada = join_at(&nodes[0], "standup", "ada").await.expect("joins");
    let host = host_of(&nodes[0], "standup").await;
    let (here, there, there_id) = host_and_other(&nodes, &host);
    // What a node finds after it could not reach Redis for longer than its lease: a join
    // elsewhere placed its room on the other node.
    let mut connection = redis.connection().await.expect("redis");
    let () = redis::cmd("SET")
        .arg("switchyard:room:standup")
        .arg(there_id)
        .query_async(&mut connection)
        .await
        .expect("SET");

    ada.wait_until("`room_moved`", PATIENCE, |observed| {
        observed.messages.iter().any(|message| {
            matches!(
                message,
                ServerMessage::Error {
                    code: ErrorCode::RoomMoved,
                    ..
                }
            )
        })
    })
    .await
    .expect("the member is told to join again");
    // Joining again, through either node, finds the room on the node that holds it.
    let again = join_at(here, "standup", "ada").await.expect("joins again");
    assert_eq!(host_of(there, "standup").await, there_id);
    let grace = join_at(there, "standup", "grace").await.expect("joins");
    wait_for_flowing_tracks(&again, 2).await;
    wait_for_flowing_tracks(&grace, 2).await;
}

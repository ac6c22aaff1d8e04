//! The one media port: every connection shares one UDP socket per media address, strangers'
//! datagrams are dropped and counted without disturbing a call, and a participant that
//! restarts ICE or moves to a new address keeps its media.

mod common;

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::process::{ServerProcess, free_port};
use common::{PATIENCE, camera_and_microphone, server, wait_for_counts, wait_for_flowing_tracks};
use loadtest::{Handover, Participant, ParticipantOptions, TrackSpec};
use switchyard::signal::protocol::ServerMessage;
use switchyard::{Counts, RunningServer};

/// Waits until `participant` has received `more` packets beyond `since`.
async fn wait_for_more_packets(participant: &Participant, since: u64, more: u64, what: &str) {
    participant
        .wait_until(what, PATIENCE, |observed| {
            observed
                .received
                .values()
                .map(|track| track.packets)
                .sum::<u64>()
                >= since + more
        })
        .await
        .unwrap_or_else(|error| panic!("{error}: {} packets", participant.received_packets()));
}

/// Waits until every one of `participants` has received `more` packets beyond what it had.
async fn wait_until_all_receive_more(participants: &[&Participant], more: u64, what: &str) {
    for participant in participants {
        let since = participant.received_packets();
        wait_for_more_packets(participant, since, more, what).await;
    }
}

/// The answers the server has sent `observed`'s participant.
fn answers(observed: &loadtest::Observed) -> usize {
    observed
        .messages
        .iter()
        .filter(|message| matches!(message, ServerMessage::Answer { .. }))
        .count()
}

/// Everybody leaves, every count returns to zero, and the server shuts down.
async fn finish(server: RunningServer, participants: Vec<Participant>) {
    for participant in participants {
        participant.leave().await;
    }
    wait_for_counts(&server, Counts::default()).await;
    server.shutdown().await.expect("shutdown");
}

/// The inodes of the sockets process `pid` holds open.
fn socket_inodes(pid: u32) -> HashSet<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the process's descriptors")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// Rows of `/proc/PID/net/{table}` (`udp`, `tcp`, ...) whose socket `pid` holds: (local
/// address in the kernel's hex form, state).
fn sockets_in(pid: u32, table: &str) -> Vec<(String, String)> {
    let held = socket_inodes(pid);
    let rows = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
    rows.lines()
        .skip(1)
        .filter_map(|row| {
            let fields: Vec<&str> = row.split_whitespace().collect();
            let inode: u64 = fields.get(9)?.parse().ok()?;
            held.contains(&inode)
                .then(|| (fields[1].to_owned(), fields[3].to_owned()))
        })
        .collect()
}

/// The server's UDP sockets and listening TCP sockets.
fn server_sockets(pid: u32) -> (usize, usize) {
    let udp = sockets_in(pid, "udp").len() + sockets_in(pid, "udp6").len();
    const LISTEN: &str = "0A";
    let listening = sockets_in(pid, "tcp")
        .into_iter()
        .chain(sockets_in(pid, "tcp6"))
        .filter(|(_, state)| state == LISTEN)
        .count();
    (udp, listening)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_participants_share_one_udp_socket_per_media_address() {
    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let server = ServerProcess::start(
        address,
        &[
            "--http".to_owned(),
            address.to_string(),
            "--media-ip".to_owned(),
            "127.0.0.1".to_owned(),
            "--media-udp-port".to_owned(),
            "0".to_owned(),
        ],
        &[],
    )
    .await;
    let idle = server_sockets(server.pid());
    assert_eq!(idle.0, 1, "one UDP socket for the one media address");

    // Three people publish, twenty-seven watch: thirty connections, 162 forwarded tracks.
    let mut participants = Vec::new();
    for index in 0..30 {
        let tracks = if index < 3 {
            camera_and_microphone()
        } else {
            Vec::<TrackSpec>::new()
        };
        participants.push(
            Participant::join(
                ParticipantOptions::new(server.websocket_url(), "thirty", format!("p{index}"))
                    .with_tracks(tracks),
            )
            .await
            .expect("joins"),
        );
    }
    for (index, participant) in participants.iter().enumerate() {
        let expected = if index < 3 { 4 } else { 6 };
        wait_for_flowing_tracks(participant, expected).await;
    }
    assert_eq!(
        server_sockets(server.pid()),
        idle,
        "thirty connections add no socket: still one UDP socket per media address"
    );
    for participant in participants {
        participant.leave().await;
    }
}

/// A STUN binding request (RFC 5389) with `username`, nothing else.
fn binding_request(username: &str) -> Vec<u8> {
    let value = username.as_bytes();
    let padded = value.len().next_multiple_of(4);
    let mut datagram = vec![0x00, 0x01];
    datagram.extend_from_slice(&((4 + padded) as u16).to_be_bytes());
    datagram.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    datagram.extend_from_slice(&rand::random::<[u8; 12]>());
    datagram.extend_from_slice(&[0x00, 0x06]);
    datagram.extend_from_slice(&(value.len() as u16).to_be_bytes());
    datagram.extend_from_slice(value);
    datagram.resize(20 + 4 + padded, 0);
    datagram
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_datagrams_are_dropped_and_counted_while_a_call_flows() {
    let server = server().await;
    let media = server.context().engine.settings().udp[0];
    let ada = common::join(&server, "strangers", "ada", camera_and_microphone()).await;
    let bob = common::join(&server, "strangers", "bob", camera_and_microphone()).await;
    wait_for_flowing_tracks(&ada, 2).await;
    wait_for_flowing_tracks(&bob, 2).await;
    let metrics = &server.context().metrics;
    let unknown_before = metrics.datagrams_unknown.load(Ordering::Relaxed);
    let ufrag_before = metrics.datagrams_unknown_ufrag.load(Ordering::Relaxed);

    const GARBAGE: u64 = 200;
    const STRANGERS: u64 = 200;
    const FLOOD: u64 = 3_000;
    let attacker = UdpSocket::bind("127.0.0.1:0").expect("a socket");
    for index in 0..GARBAGE {
        // Whatever comes: RTP-looking, DTLS-looking, empty-ish and random bytes.
        let first = [0x80u8, 22, 0, 0xff][index as usize % 4];
        let mut datagram = rand::random::<[u8; 64]>().to_vec();
        datagram[0] = first;
        datagram.truncate(1 + index as usize % 64);
        attacker.send_to(&datagram, media).expect("sent");
    }
    for index in 0..STRANGERS {
        attacker
            .send_to(&binding_request(&format!("nobody{index}:x")), media)
            .expect("sent");
    }
    // A flood of binding requests from many addresses, paced only by the sockets.
    let flooders: Vec<UdpSocket> = (0..10)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("a socket"))
        .collect();
    for index in 0..FLOOD {
        let socket = &flooders[index as usize % flooders.len()];
        socket
            .send_to(&binding_request("f1ood:x"), media)
            .expect("sent");
    }

    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let unknown = metrics.datagrams_unknown.load(Ordering::Relaxed) - unknown_before;
        let ufrag = metrics.datagrams_unknown_ufrag.load(Ordering::Relaxed) - ufrag_before;
        if unknown == GARBAGE && ufrag == STRANGERS + FLOOD {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "counted {unknown} unknown datagrams and {ufrag} unknown ufrags"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The call goes on: both keep receiving.
    wait_until_all_receive_more(&[&ada, &bob], 100, "media after the flood").await;
    finish(server, vec![ada, bob]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ice_restart_keeps_the_media_flowing_through_the_one_port() {
    let server = server().await;
    let ada = common::join(&server, "restart", "ada", camera_and_microphone()).await;
    let bob = common::join(&server, "restart", "bob", camera_and_microphone()).await;
    wait_for_flowing_tracks(&ada, 2).await;
    wait_for_flowing_tracks(&bob, 2).await;
    let before = answers(&ada.observed());
    ada.restart_ice();
    ada.wait_until("the server's answer to the restart", PATIENCE, |observed| {
        answers(observed) > before
    })
    .await
    .expect("the restart is answered");
    wait_until_all_receive_more(&[&ada, &bob], 200, "media after the ICE restart").await;
    finish(server, vec![ada, bob]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_that_moves_to_a_new_address_keeps_its_media() {
    let server = server().await;
    let handover = Handover::default();
    let ada = Participant::join(
        ParticipantOptions::new(server.websocket_url(), "moving", "ada")
            .with_tracks(camera_and_microphone())
            .with_handover(handover.clone()),
    )
    .await
    .expect("joins");
    let bob = common::join(&server, "moving", "bob", camera_and_microphone()).await;
    wait_for_flowing_tracks(&ada, 2).await;
    wait_for_flowing_tracks(&bob, 2).await;

    // Ada's network changes under her: her packets now come from a new port. Like a browser
    // that sees its connection interrupted, she restarts ICE from there.
    handover.trigger();
    ada.restart_ice();
    wait_until_all_receive_more(&[&ada, &bob], 200, "media after the move").await;
    finish(server, vec![ada, bob]).await;
}

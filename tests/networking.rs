//! Media networking settings: the UDP port range and the public address announced behind 1:1
//! NAT, seen from a client.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::{PATIENCE, camera_and_microphone, free_port_range, wait_for_counts};
use loadtest::{Observed, Participant, ParticipantOptions};
use switchyard::config::PublicIp;
use switchyard::signal::protocol::{ServerMessage, TrackKind};
use switchyard::{Config, Counts, RunningServer, Server};
use webrtc::peer_connection::RTCPeerConnectionState;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The address and port of every host candidate the server announced, in trickled candidates
/// and in its SDPs.
fn announced_host_candidates(observed: &Observed) -> Vec<(IpAddr, u16)> {
    let mut lines: Vec<String> = Vec::new();
    for message in &observed.messages {
        match message {
            ServerMessage::Candidate { candidate } => lines.push(candidate.candidate.clone()),
            ServerMessage::Offer { sdp } | ServerMessage::Answer { sdp } => lines.extend(
                sdp.lines()
                    .filter_map(|line| line.strip_prefix("a="))
                    .filter(|attribute| attribute.starts_with("candidate:"))
                    .map(str::to_owned),
            ),
            _ => {}
        }
    }
    lines
        .iter()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.get(7) != Some(&"host") {
                return None;
            }
            Some((fields.get(4)?.parse().ok()?, fields.get(5)?.parse().ok()?))
        })
        .collect()
}

async fn start(config: Config) -> RunningServer {
    Server::new(config)
        .start()
        .await
        .expect("the server starts")
}

async fn join(server: &RunningServer, name: &str) -> Participant {
    Participant::join(
        ParticipantOptions::new(server.websocket_url(), "networking", name)
            .with_tracks(camera_and_microphone()),
    )
    .await
    .expect("the participant joins")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_ports_come_from_the_configured_range_and_go_back_to_it() {
    let range = free_port_range(8, 24_000);
    let mut config = Config::loopback();
    config.media.port_range = Some(range);
    let server = start(config).await;
    let ports = server
        .context()
        .media
        .ports
        .clone()
        .expect("the range is configured");

    let alice = join(&server, "alice").await;
    let bob = join(&server, "bob").await;
    for participant in [&alice, &bob] {
        participant
            .wait_until("the other's video flows", PATIENCE, |observed| {
                observed.received.values().any(|track| {
                    track.announced && track.kind == Some(TrackKind::Video) && track.packets > 0
                })
            })
            .await
            .expect("media flows through ports of the range");
        let announced = announced_host_candidates(&participant.observed());
        assert!(
            !announced.is_empty(),
            "the server announced host candidates"
        );
        for (ip, port) in announced {
            assert_eq!(ip, LOOPBACK);
            assert!(
                (range.min..=range.max).contains(&port),
                "port {port} is outside {range:?}"
            );
        }
    }
    assert_eq!(ports.leased(), 2, "one port per connection");

    alice.leave().await;
    bob.leave().await;
    wait_for_counts(&server, Counts::default()).await;
    assert_eq!(ports.leased(), 0, "every port went back to the range");
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_port_range_refuses_the_next_connection_and_nothing_else() {
    let range = free_port_range(1, 28_000);
    let mut config = Config::loopback();
    config.media.port_range = Some(range);
    let server = start(config).await;

    let alice = join(&server, "alice").await;
    alice
        .wait_until("connected", PATIENCE, |observed| {
            observed.connection_state == Some(RTCPeerConnectionState::Connected)
        })
        .await
        .expect("the first connection takes the only port");
    let bob = Participant::join(
        ParticipantOptions::new(server.websocket_url(), "networking", "bob")
            .with_tracks(camera_and_microphone()),
    )
    .await
    .expect("bob joins the room; only his connection fails");
    bob.wait_until("an error naming the port range", PATIENCE, |observed| {
        observed.messages.iter().any(|message| {
            matches!(message, ServerMessage::Error { message, .. }
                if message.contains("no free UDP port left in the media range"))
        })
    })
    .await
    .expect("the second connection is refused with a clear error");
    bob.leave().await;
    assert!(alice.is_connected(), "the first participant is untouched");
    alice.leave().await;
    wait_for_counts(&server, Counts::default()).await;
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_address_is_announced_instead_of_the_local_one() {
    // 127.0.0.2 stands in for a public address: it is on this machine, so nothing leaves it.
    let public: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let mut config = Config::loopback();
    config.media.public_ips = vec![PublicIp {
        public,
        local: Some(LOOPBACK),
    }];
    let server = start(config).await;

    let alice = join(&server, "alice").await;
    alice
        .wait_until("a host candidate from the server", PATIENCE, |observed| {
            !announced_host_candidates(observed).is_empty()
        })
        .await
        .expect("the server trickles its candidates");
    for (ip, _) in announced_host_candidates(&alice.observed()) {
        assert_eq!(ip, public, "only the public address is announced");
    }
    alice.leave().await;
    wait_for_counts(&server, Counts::default()).await;
    server.shutdown().await.expect("shutdown");
}

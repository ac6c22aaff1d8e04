//! Media networking, seen from a client: the one media port every connection shares, and the
//! public address announced behind 1:1 NAT.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::{PATIENCE, camera_and_microphone, wait_for_counts};
use loadtest::{Observed, Participant, ParticipantOptions};
use switchyard::config::PublicIp;
use switchyard::signal::protocol::ServerMessage;
use switchyard::{Config, Counts, RunningServer, Server};
use webrtc::peer_connection::RTCPeerConnectionState;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The protocol, address and port of every host candidate the server announced, in trickled
/// candidates and in its SDPs.
fn announced_host_candidates(observed: &Observed) -> Vec<(String, IpAddr, u16)> {
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
            Some((
                fields.get(2)?.to_ascii_lowercase(),
                fields.get(4)?.parse().ok()?,
                fields.get(5)?.parse().ok()?,
            ))
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
async fn every_connection_announces_and_uses_the_one_media_port() {
    let server = start(Config::loopback()).await;
    let settings = server.context().engine.settings();
    let (udp, tcp) = (settings.udp.clone(), settings.tcp.clone());
    assert_eq!(udp.len(), 1, "one UDP socket for the one media address");
    assert_eq!(tcp.len(), 1, "one ICE-TCP listener for it");
    let alice = join(&server, "alice").await;
    let bob = join(&server, "bob").await;
    for participant in [&alice, &bob] {
        participant
            .wait_until("media flowing", PATIENCE, |observed| {
                observed.flowing_tracks() == 2
                    && observed.connection_state == Some(RTCPeerConnectionState::Connected)
            })
            .await
            .expect("media flows through the one port");
        let announced = announced_host_candidates(&participant.observed());
        assert!(announced.iter().any(|(protocol, ..)| protocol == "udp"));
        assert!(announced.iter().any(|(protocol, ..)| protocol == "tcp"));
        for (protocol, ip, port) in announced {
            let expected = if protocol == "udp" { udp[0] } else { tcp[0] };
            assert_eq!(
                (ip, port),
                (expected.ip(), expected.port()),
                "every connection announces the one {protocol} port"
            );
        }
    }
    alice.leave().await;
    bob.leave().await;
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
    for (_, ip, _) in announced_host_candidates(&alice.observed()) {
        assert_eq!(ip, public, "only the public address is announced");
    }
    alice.leave().await;
    wait_for_counts(&server, Counts::default()).await;
    server.shutdown().await.expect("shutdown");
}

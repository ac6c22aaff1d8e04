//! A participant whose network carries no UDP: its peer connection (webrtc-rs) gathers no UDP
//! candidate and binds no UDP socket, so it reaches the server over ICE-TCP or not at all, as a
//! browser behind a UDP-blocking firewall does. It publishes nothing and counts the RTP packets
//! it receives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use loadtest::Switchyard;
use loadtest::peer_events::{EventForwarder, PeerEvent};
use loadtest::target::{ConnectionId, JoinRequest, SignalCommand, SignalEvent, Target};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use switchyard::RunningServer;
use switchyard::rtc::feedback::FEEDBACK_QUEUE;
use switchyard::rtc::setup as engine;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, RTCConfigurationBuilder, RTCIceCandidateInit,
    RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
};

use super::PATIENCE;

/// What the subscriber has seen so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The connection's latest state.
    pub state: Option<RTCPeerConnectionState>,
    /// RTP packets received, all tracks together.
    pub packets: u64,
}

/// The subscriber; see the module documentation.
pub struct TcpSubscriber {
    connection: Arc<dyn PeerConnection>,
    signal: mpsc::UnboundedSender<SignalCommand>,
    progress: watch::Receiver<Progress>,
    tasks: Vec<JoinHandle<()>>,
}

impl TcpSubscriber {
    /// Joins `room` on `server` as `name`.
    pub async fn join(server: &RunningServer, room: &str, name: &str) -> TcpSubscriber {
        let session = Switchyard
            .join(JoinRequest {
                url: server.websocket_url(),
                room: room.to_owned(),
                name: name.to_owned(),
                token: None,
                tls: None,
            })
            .await
            .expect("the subscriber joins");
        let (events_tx, peer_events) = mpsc::unbounded_channel();
        let settings = engine::prompt_ice(
            SettingEngineBuilder::new()
                .with_network_types(vec![NetworkType::Tcp4])
                .with_include_loopback_candidate(true)
                .with_multicast_dns_mode(MulticastDnsMode::Disabled),
        )
        .build();
        // Feedback from the interceptors is not looked at; the channel only has to exist.
        let (feedback, _) = mpsc::channel(FEEDBACK_QUEUE);
        let connection: Arc<dyn PeerConnection> = Arc::new(
            PeerConnectionBuilder::new()
                .with_configuration(RTCConfigurationBuilder::new().build())
                .with_media_engine(engine::media_engine().expect("codecs"))
                .with_setting_engine(settings)
                .with_interceptor_registry(engine::interceptors(feedback))
                .with_handler(Arc::new(EventForwarder::new(events_tx)))
                .with_udp_addrs(Vec::<SocketAddr>::new())
                .with_tcp_addrs(vec![SocketAddr::from(([127, 0, 0, 1], 0))])
                .build()
                .await
                .expect("a peer connection"),
        );
        // With nothing to publish the offer has no media section: it only tells the server to
        // make its own (as the load test's participants do).
        let offer = connection.create_offer(None).await.expect("an offer");
        session
            .commands
            .send(SignalCommand::Offer {
                connection: ConnectionId::MAIN,
                sdp: offer.sdp,
            })
            .expect("the signaling task runs");
        let (progress_tx, progress) = watch::channel(Progress::default());
        let driver = Driver {
            connection: Arc::clone(&connection),
            signal: session.commands.clone(),
            progress: Arc::new(progress_tx),
            packets: Arc::default(),
        };
        let driver = tokio::spawn(driver.run(session.events, peer_events));
        TcpSubscriber {
            connection,
            signal: session.commands,
            progress,
            tasks: vec![session.task, driver],
        }
    }

    /// Waits until `condition` holds of what the subscriber saw, for at most [`PATIENCE`].
    pub async fn wait_until(&self, what: &str, condition: impl Fn(&Progress) -> bool) {
        let mut progress = self.progress.clone();
        let reached = tokio::time::timeout(PATIENCE, progress.wait_for(|seen| condition(seen)));
        match reached.await {
            Ok(Ok(_)) => {}
            _ => panic!(
                "timed out waiting for {what}: {:?}",
                *self.progress.borrow()
            ),
        }
    }

    /// What the subscriber saw so far.
    pub fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    /// Leaves and closes the connection.
    pub async fn leave(self) {
        let _ = self.signal.send(SignalCommand::Leave);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.connection.close()).await;
    }
}

impl Drop for TcpSubscriber {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Answers the server's offers, trickles candidates both ways and reads every track.
struct Driver {
    connection: Arc<dyn PeerConnection>,
    signal: mpsc::UnboundedSender<SignalCommand>,
    progress: Arc<watch::Sender<Progress>>,
    packets: Arc<AtomicU64>,
}

impl Driver {
    async fn run(
        self,
        mut signal_events: mpsc::UnboundedReceiver<SignalEvent>,
        mut peer_events: mpsc::UnboundedReceiver<PeerEvent>,
    ) {
        let mut readers = Vec::new();
        loop {
            tokio::select! {
                event = signal_events.recv() => match event {
                    None | Some(SignalEvent::Closed(_)) => break,
                    Some(SignalEvent::Offer { sdp, .. }) => self.answer(sdp).await,
                    Some(SignalEvent::Candidate { candidate, .. }) => {
                        let _ = self.connection.add_ice_candidate(candidate).await;
                    }
                    Some(_) => {}
                },
                Some(event) = peer_events.recv() => match event {
                    PeerEvent::Candidate(candidate) => {
                        let _ = self.signal.send(SignalCommand::Candidate {
                            connection: ConnectionId::MAIN,
                            candidate,
                        });
                    }
                    PeerEvent::State(state) => {
                        self.progress.send_modify(|seen| seen.state = Some(state));
                    }
                    PeerEvent::Track(track) => readers.push(tokio::spawn(read(
                        track,
                        Arc::clone(&self.packets),
                        Arc::clone(&self.progress),
                    ))),
                },
            }
        }
        for reader in readers {
            reader.abort();
        }
    }

    async fn answer(&self, sdp: String) {
        let offer = RTCSessionDescription::offer(sdp).expect("the server's offer parses");
        self.connection
            .set_remote_description(offer.clone())
            .await
            .expect("the server's offer applies");
        // webrtc-rs dials a passive TCP candidate only when it is trickled, not when it comes in
        // a description (a browser dials either): hand it the offer's own once more.
        for candidate in passive_tcp_candidates(&offer.sdp) {
            let _ = self.connection.add_ice_candidate(candidate).await;
        }
        let answer = self
            .connection
            .create_answer(None)
            .await
            .expect("an answer");
        self.connection
            .set_local_description(answer.clone())
            .await
            .expect("the answer applies");
        let _ = self.signal.send(SignalCommand::Answer {
            connection: ConnectionId::MAIN,
            sdp: answer.sdp,
        });
    }
}

/// The passive TCP candidates in `sdp`, as if trickled.
fn passive_tcp_candidates(sdp: &str) -> Vec<RTCIceCandidateInit> {
    sdp.lines()
        .filter_map(|line| line.trim_end().strip_prefix("a="))
        .filter(|attribute| {
            let fields: Vec<&str> = attribute.split(' ').collect();
            attribute.starts_with("candidate:")
                && fields
                    .get(2)
                    .is_some_and(|protocol| protocol.eq_ignore_ascii_case("tcp"))
                && attribute.contains(" tcptype passive")
        })
        .map(|attribute| RTCIceCandidateInit {
            candidate: attribute.to_owned(),
            sdp_mline_index: Some(0),
            ..RTCIceCandidateInit::default()
        })
        .collect()
}

/// Counts the RTP packets of one track.
async fn read(
    track: Arc<dyn TrackRemote>,
    packets: Arc<AtomicU64>,
    progress: Arc<watch::Sender<Progress>>,
) {
    while let Some(event) = track.poll().await {
        if let TrackRemoteEvent::OnRtpPacket(_) = event {
            let total = packets.fetch_add(1, Ordering::Relaxed) + 1;
            progress.send_modify(|seen| seen.packets = total);
        }
    }
}

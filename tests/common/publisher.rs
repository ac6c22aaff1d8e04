//! A publisher the test drives by hand: real WebRTC (ICE, DTLS, SRTP) through webrtc-rs, but
//! the test edits the offer before the server sees it and writes every RTP packet itself,
//! malformed ones included.

use std::sync::Arc;
use std::time::Duration;

use loadtest::peer_events::{EventForwarder, PeerEvent};
use loadtest::target::{JoinRequest, SignalCommand, SignalEvent, Target};
use loadtest::{ClientError, Switchyard};
use parking_lot::Mutex;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::rtp;
use switchyard::RunningServer;
use switchyard::rtc::Feedback;
use switchyard::rtc::feedback::FEEDBACK_QUEUE;
use switchyard::rtc::setup as engine;
use switchyard::signal::protocol::{ServerMessage, TrackKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, RTCConfigurationBuilder, RTCPeerConnectionState,
    RTCSessionDescription, SettingEngineBuilder,
};

use super::PATIENCE;

/// What the publisher saw of the server.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Every server message, in order.
    pub messages: Vec<ServerMessage>,
    /// The connection's latest state.
    pub state: Option<RTCPeerConnectionState>,
    /// Set once the socket closed, with the server's close code if it sent one.
    pub closed: Option<Option<u16>>,
    /// PLI and FIR the server sent.
    pub keyframe_requests: u64,
    /// NACKs the server sent (the publisher's interceptors answer them).
    pub nacks: u64,
}

/// One track the publisher sends.
pub struct HandTrack {
    /// The track id its offer announces.
    pub id: String,
    /// Its SSRC.
    pub ssrc: u32,
    pipe: Arc<TrackLocalStaticRTP>,
}

/// The publisher; see the module documentation.
pub struct HandPublisher {
    /// The participant id the server gave.
    pub id: String,
    /// The tracks, in the order of the offer's media sections.
    pub tracks: Vec<HandTrack>,
    connection: Arc<dyn PeerConnection>,
    signal: mpsc::UnboundedSender<SignalCommand>,
    seen: Arc<Mutex<Seen>>,
    changed: watch::Sender<u64>,
    tasks: Vec<JoinHandle<()>>,
}

impl HandPublisher {
    /// Joins `room` as `name` and offers one sending track per entry of `kinds`, passing the
    /// offer through `edit` on its way to the server (the connection itself keeps the offer
    /// it made).
    pub async fn join(
        server: &RunningServer,
        room: &str,
        name: &str,
        kinds: &[TrackKind],
        edit: impl FnOnce(&str) -> String,
    ) -> HandPublisher {
        Self::join_editing_answers(server, room, name, kinds, edit, str::to_owned).await
    }

    /// As [`join`](Self::join), and passes every answer to a server offer through
    /// `edit_answer` too.
    pub async fn join_editing_answers(
        server: &RunningServer,
        room: &str,
        name: &str,
        kinds: &[TrackKind],
        edit: impl FnOnce(&str) -> String,
        edit_answer: fn(&str) -> String,
    ) -> HandPublisher {
        let media_engine = engine::media_engine().expect("codecs");
        Self::start(server, room, name, kinds, edit, edit_answer, media_engine).await
    }

    /// As [`join`](Self::join), with the connection built on `media_engine` instead of the
    /// server's (to negotiate what a browser sends and the server's own engine does not).
    pub async fn join_with_engine(
        server: &RunningServer,
        room: &str,
        name: &str,
        kinds: &[TrackKind],
        media_engine: MediaEngine,
    ) -> HandPublisher {
        Self::start(
            server,
            room,
            name,
            kinds,
            str::to_owned,
            str::to_owned,
            media_engine,
        )
        .await
    }

    async fn start(
        server: &RunningServer,
        room: &str,
        name: &str,
        kinds: &[TrackKind],
        edit: impl FnOnce(&str) -> String,
        edit_answer: fn(&str) -> String,
        media_engine: MediaEngine,
    ) -> HandPublisher {
        let session = Switchyard
            .join(JoinRequest {
                url: server.websocket_url(),
                room: room.to_owned(),
                name: name.to_owned(),
                token: None,
                tls: None,
            })
            .await
            .expect("the publisher joins");
        let (events_tx, peer_events) = mpsc::unbounded_channel();
        let settings = engine::prompt_ice(
            SettingEngineBuilder::new()
                .with_include_loopback_candidate(true)
                .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled),
        )
        .build();
        let (feedback, feedback_rx) = mpsc::channel(FEEDBACK_QUEUE);
        let connection: Arc<dyn PeerConnection> = Arc::new(
            PeerConnectionBuilder::new()
                .with_configuration(RTCConfigurationBuilder::new().build())
                .with_media_engine(media_engine)
                .with_setting_engine(settings)
                .with_interceptor_registry(engine::interceptors(feedback))
                .with_handler(Arc::new(EventForwarder::new(events_tx)))
                .with_udp_addrs(vec![std::net::SocketAddr::from(([127, 0, 0, 1], 0))])
                .build()
                .await
                .expect("a peer connection"),
        );
        let mut tracks = Vec::new();
        for (index, kind) in kinds.iter().enumerate() {
            let id = format!("{}{index}", kind.as_str());
            let ssrc = rand::random::<u32>() | 1;
            let pipe = Arc::new(TrackLocalStaticRTP::new(engine::single_stream_track(
                format!("{name}-stream"),
                id.clone(),
                id.clone(),
                *kind,
                ssrc,
            )));
            connection
                .add_transceiver_from_track(
                    Arc::clone(&pipe) as Arc<dyn TrackLocal>,
                    engine::send_only(),
                )
                .await
                .expect("a sending transceiver");
            tracks.push(HandTrack { id, ssrc, pipe });
        }
        let offer = connection.create_offer(None).await.expect("an offer");
        connection
            .set_local_description(offer.clone())
            .await
            .expect("the offer applies locally");
        session
            .commands
            .send(SignalCommand::Offer {
                connection: loadtest::target::ConnectionId::MAIN,
                sdp: edit(&offer.sdp),
            })
            .expect("the signaling task runs");
        let seen = Arc::new(Mutex::new(Seen {
            messages: session.messages,
            ..Seen::default()
        }));
        let (changed, _) = watch::channel(0);
        let driver = Driver {
            connection: Arc::clone(&connection),
            edit_answer,
            signal: session.commands.clone(),
            seen: Arc::clone(&seen),
            changed: changed.clone(),
        };
        let driver = tokio::spawn(driver.run(session.events, peer_events, feedback_rx));
        HandPublisher {
            id: session.participant,
            tracks,
            connection,
            signal: session.commands,
            seen,
            changed,
            tasks: vec![session.task, driver],
        }
    }

    /// A copy of what the publisher saw so far.
    pub fn seen(&self) -> Seen {
        self.seen.lock().clone()
    }

    /// Waits until `condition` holds of what the publisher saw, for at most [`PATIENCE`].
    pub async fn wait_until(&self, what: &str, condition: impl Fn(&Seen) -> bool) {
        let mut changes = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if condition(&self.seen.lock()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {:#?}",
                self.seen()
            );
            let _ = tokio::time::timeout_at(deadline, changes.changed()).await;
        }
    }

    /// Sends `sdp` as a new offer.
    pub fn offer(&self, sdp: String) {
        let _ = self.signal.send(SignalCommand::Offer {
            connection: loadtest::target::ConnectionId::MAIN,
            sdp,
        });
    }

    /// The local description the connection applied, as the client made it.
    pub async fn local_sdp(&self) -> String {
        self.connection
            .local_description()
            .await
            .map(|description| description.sdp)
            .unwrap_or_default()
    }

    /// Writes `packet` on track `index`, as it is: its SSRC and payload type are the caller's.
    pub async fn write(&self, index: usize, packet: rtp::Packet) {
        self.tracks[index]
            .pipe
            .write_rtp(packet)
            .await
            .expect("the track takes the packet");
    }

    /// Leaves and closes the connection.
    pub async fn leave(self) {
        let _ = self.signal.send(SignalCommand::Leave);
        self.wait_until("the socket to close", |seen| seen.closed.is_some())
            .await;
        for task in &self.tasks {
            task.abort();
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.connection.close()).await;
    }
}

impl Drop for HandPublisher {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Applies what the server sends to the connection and trickles the connection's candidates,
/// recording everything in `seen`.
struct Driver {
    connection: Arc<dyn PeerConnection>,
    edit_answer: fn(&str) -> String,
    signal: mpsc::UnboundedSender<SignalCommand>,
    seen: Arc<Mutex<Seen>>,
    changed: watch::Sender<u64>,
}

impl Driver {
    async fn run(
        self,
        mut signal_events: mpsc::UnboundedReceiver<SignalEvent>,
        mut peer_events: mpsc::UnboundedReceiver<PeerEvent>,
        mut feedback: mpsc::Receiver<Feedback>,
    ) {
        loop {
            tokio::select! {
                event = signal_events.recv() => {
                    let event = event.unwrap_or(SignalEvent::Closed(None));
                    if let SignalEvent::Closed(code) = event {
                        self.update(|seen| seen.closed = Some(code));
                        return;
                    }
                    self.on_signal(event).await;
                }
                Some(event) = peer_events.recv() => match event {
                    PeerEvent::Candidate(candidate) => {
                        let _ = self.signal.send(SignalCommand::Candidate {
                            connection: loadtest::target::ConnectionId::MAIN,
                            candidate,
                        });
                    }
                    PeerEvent::State(state) => self.update(|seen| seen.state = Some(state)),
                    PeerEvent::Track(_) => {}
                },
                Some(feedback) = feedback.recv() => match feedback {
                    Feedback::KeyframeRequest { .. } => {
                        self.update(|seen| seen.keyframe_requests += 1);
                    }
                    Feedback::Nack => self.update(|seen| seen.nacks += 1),
                    Feedback::BitrateEstimate { .. } => {}
                },
            }
        }
    }

    fn update(&self, change: impl FnOnce(&mut Seen)) {
        change(&mut self.seen.lock());
        self.changed.send_modify(|version| *version += 1);
    }

    async fn on_signal(&self, event: SignalEvent) {
        match event {
            SignalEvent::Message(message) => self.update(|seen| seen.messages.push(message)),
            SignalEvent::Answer { sdp, .. } => {
                if let Ok(answer) = RTCSessionDescription::answer(sdp) {
                    let _ = self.connection.set_remote_description(answer).await;
                }
            }
            SignalEvent::Offer { sdp, .. } => {
                if let Err(error) = self.answer(sdp).await {
                    tracing::warn!(%error, "the hand publisher cannot answer");
                }
            }
            SignalEvent::Candidate { candidate, .. } => {
                let _ = self.connection.add_ice_candidate(candidate).await;
            }
            SignalEvent::TrackAnnounced { .. }
            | SignalEvent::TrackEnded { .. }
            | SignalEvent::Layers { .. }
            | SignalEvent::VideoPaused { .. }
            | SignalEvent::Closed(_) => {}
        }
    }

    async fn answer(&self, sdp: String) -> Result<(), ClientError> {
        let failed = |what: &'static str| {
            move |error: webrtc::error::Error| ClientError::WebRtc(format!("{what}: {error}"))
        };
        let offer = RTCSessionDescription::offer(sdp).map_err(failed("parsing the offer"))?;
        self.connection
            .set_remote_description(offer)
            .await
            .map_err(failed("applying the offer"))?;
        let answer = self
            .connection
            .create_answer(None)
            .await
            .map_err(failed("creating the answer"))?;
        self.connection
            .set_local_description(answer.clone())
            .await
            .map_err(failed("applying the answer"))?;
        self.signal
            .send(SignalCommand::Answer {
                connection: loadtest::target::ConnectionId::MAIN,
                sdp: (self.edit_answer)(&answer.sdp),
            })
            .map_err(|_| ClientError::Signaling("the signaling task ended".to_owned()))
    }
}

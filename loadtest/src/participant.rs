//! A synthetic participant: joins a room through a [`Target`]'s signaling, publishes synthetic
//! tracks, receives everybody else's, and measures what arrives.
//!
//! It speaks real WebRTC (ICE, DTLS, SRTP) through webrtc-rs and follows the same rules as the
//! browser client: its opening offer carries its tracks, it answers every server offer, and as
//! the polite peer it rolls back its own offer when the server's crosses it. Which server it
//! talks to only changes the signaling, and how many peer connections that takes (one for
//! Switchyard; for Janus one to publish and one to receive): the media, the checks and the
//! measurements are the same.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::peer_events::{EventForwarder, PeerEvent, mid_of_remote_track};
use futures::StreamExt;
use futures::stream::{BoxStream, SelectAll};
use parking_lot::{Mutex, MutexGuard};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::peer_connection::configuration::{
    RTCConfiguration, RTCIceServer, RTCIceTransportPolicy, RTCOfferOptions,
};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtp;
use rtc::rtp::extension::HeaderExtension;
use rtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use switchyard::media::audio_level::AUDIO_LEVEL_URI;
use switchyard::media::vp8;
use switchyard::rtc::Feedback;
use switchyard::rtc::feedback::FEEDBACK_QUEUE;
use switchyard::rtc::setup::{self as engine, OPUS_PAYLOAD_TYPE, VP8_PAYLOAD_TYPE};
use switchyard::signal::protocol::{IceServer, ServerMessage, TrackKind};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, RTCConfigurationBuilder, RTCPeerConnectionState,
    RTCSessionDescription, SettingEngineBuilder, StatsSelector,
};

use crate::ClientError;
use crate::downlink_estimate::{DownlinkEstimator, DownlinkMeter, DownlinkSample};
use crate::impairment::{Dropper, Handover, ImpairedRuntime, Impairment};
use crate::interval::{Interval, LOSS_JUDGING_DELAY_SECONDS, LossLedger};
use crate::received_layers::ReceivedLayers;
use crate::series::LossCounts;
use crate::simulcast::{LAYERS, Layer, LayerControl};
use crate::simulcast_sender::{self, SimulcastSender, SimulcastStream};
use crate::stats::TrackQuality;
use crate::synthetic::{self, VideoShape};
use crate::target::{ConnectionId, JoinRequest, SignalCommand, SignalEvent, Switchyard, Target};
use crate::view::{self, Tile, TileView};

/// A track to publish.
#[derive(Debug, Clone, PartialEq)]
pub enum TrackSpec {
    /// Opus-sized packets, 50 per second.
    Audio,
    /// VP8 frames of this shape.
    Video(VideoShape),
    /// VP8 in the three simulcast layers of [`simulcast::LAYERS`], at this shape's frame rate
    /// and keyframe interval (its bitrate and size are each layer's own).
    Simulcast(VideoShape),
}

impl TrackSpec {
    /// Audio or video.
    pub fn kind(&self) -> TrackKind {
        match self {
            TrackSpec::Audio => TrackKind::Audio,
            TrackSpec::Video(_) | TrackSpec::Simulcast(_) => TrackKind::Video,
        }
    }
}

/// How to join.
#[derive(Debug, Clone)]
pub struct ParticipantOptions {
    /// The server to join, which decides the signaling.
    pub target: Arc<dyn Target>,
    /// The signaling URL: `ws://host:port/ws` for Switchyard, `ws://host:8188` for Janus.
    pub url: String,
    /// The room to join.
    pub room: String,
    /// The display name.
    pub name: String,
    /// What to publish.
    pub tracks: Vec<TrackSpec>,
    /// The local address to gather media candidates on.
    pub media_ip: IpAddr,
    /// The network this participant is behind.
    pub impairment: Impairment,
    /// Datagrams the network loses on purpose, besides the impairment's random loss.
    pub dropper: Option<Dropper>,
    /// Moves the participant to a new local port when triggered.
    pub handover: Option<Handover>,
    /// A gap between received video frames longer than this counts as a freeze.
    pub freeze_threshold: Duration,
    /// The access token to join with, for a server that requires one.
    pub token: Option<String>,
    /// Whether the tracks carry packets; without, they are negotiated and stay silent.
    pub send_media: bool,
    /// TLS settings for a `wss://` URL; `None` trusts the system's certificate authorities.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Whether to use only relayed candidates, through the TURN servers the server names in
    /// `joined`, as a browser with `iceTransportPolicy: 'relay'` does.
    pub relay: bool,
    /// The tile every received video is shown in, declared to the server with `view`; `None`
    /// declares nothing (the server then sends what it would to a tile of any size).
    pub tile: Option<Tile>,
    /// Whether to estimate the downlink from what arrives and tell the server with REMB once
    /// a second, as a browser does (see [`crate::downlink_estimate`]).
    pub estimate_downlink: bool,
}

impl ParticipantOptions {
    /// Joins `room` on the Switchyard server at `url` as `name`, publishing one video and one
    /// audio track, with media on loopback.
    pub fn new(url: impl Into<String>, room: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            target: Arc::new(Switchyard),
            url: url.into(),
            room: room.into(),
            name: name.into(),
            tracks: vec![TrackSpec::Video(VideoShape::default()), TrackSpec::Audio],
            media_ip: IpAddr::from([127, 0, 0, 1]),
            impairment: Impairment::default(),
            dropper: None,
            handover: None,
            freeze_threshold: Duration::from_millis(100),
            token: None,
            send_media: true,
            tls: None,
            relay: false,
            tile: None,
            estimate_downlink: false,
        }
    }

    /// Publishes `tracks` instead.
    pub fn with_tracks(mut self, tracks: Vec<TrackSpec>) -> Self {
        self.tracks = tracks;
        self
    }

    /// Joins with an access token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Joins `target` instead.
    pub fn with_target(mut self, target: Arc<dyn Target>) -> Self {
        self.target = target;
        self
    }

    /// Loses the datagrams `dropper` chooses on the way to and from the server.
    pub fn with_dropper(mut self, dropper: Dropper) -> Self {
        self.dropper = Some(dropper);
        self
    }

    /// Moves to a new local port whenever `handover` is triggered.
    pub fn with_handover(mut self, handover: Handover) -> Self {
        self.handover = Some(handover);
        self
    }
}

/// What one received track delivered so far.
#[derive(Debug, Clone, Default)]
pub struct ReceivedTrack {
    /// The publisher, from `track_published`.
    pub participant: String,
    /// The publisher's track id, from `track_published`.
    pub track: String,
    /// Audio or video.
    pub kind: Option<TrackKind>,
    /// Whether the server still announces it (no `track_unpublished` yet).
    pub announced: bool,
    /// RTP packets received.
    pub packets: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// Packets whose payload hashed to its probe: the bytes arrived exactly as sent.
    pub intact: u64,
    /// Packets whose payload did not match its probe.
    pub corrupted: u64,
    /// Intact packets whose probe names a different track than the one announced on this mid.
    pub foreign: u64,
    /// Packets that started a VP8 keyframe.
    pub keyframes: u64,
    /// When the first packet arrived.
    pub first_packet: Option<Instant>,
    /// When the first keyframe arrived.
    pub first_keyframe: Option<Instant>,
    /// The tags of the tracks whose packets arrived here.
    pub tags: BTreeSet<u32>,
    /// Loss, latency, freezes and keyframe response.
    pub quality: TrackQuality,
    /// Which packets were due in which second, until the loss of each second is judged.
    pub loss_ledger: LossLedger,
    /// The simulcast layers it arrived on, and for how long.
    pub layers: ReceivedLayers,
    /// Whether the server says it paused this video for lack of downlink (`video_paused`).
    pub paused: bool,
    /// How many times the server paused it.
    pub pauses: u64,
    /// Bytes and time per layer when the measurement window opened and closed.
    pub window: WindowMarks,
}

/// What a received track had delivered at the two ends of the measurement window.
#[derive(Debug, Clone, Default)]
pub struct WindowMarks {
    /// When it opened.
    pub opened: Option<WindowMark>,
    /// When it closed.
    pub closed: Option<WindowMark>,
}

/// What a received track had delivered at one moment.
#[derive(Debug, Clone, Default)]
pub struct WindowMark {
    /// Payload bytes.
    pub bytes: u64,
    /// Time on each simulcast layer, by RID.
    pub layer_time: BTreeMap<String, Duration>,
}

impl ReceivedTrack {
    fn mark(&self) -> WindowMark {
        WindowMark {
            bytes: self.bytes,
            layer_time: self.layers.time_by_rid(),
        }
    }

    /// What it delivered during the measurement window (or since it started, if the window
    /// never opened; or until now, if it has not closed): payload bytes and time per layer.
    pub fn in_window(&self) -> WindowMark {
        let end = self.window.closed.clone().unwrap_or_else(|| self.mark());
        let start = self.window.opened.clone().unwrap_or_default();
        WindowMark {
            bytes: end.bytes.saturating_sub(start.bytes),
            layer_time: end
                .layer_time
                .into_iter()
                .map(|(rid, time)| {
                    let before = start.layer_time.get(&rid).copied().unwrap_or_default();
                    (rid, time.saturating_sub(before))
                })
                .filter(|(_, time)| !time.is_zero())
                .collect(),
        }
    }
}

/// Everything the participant observed, for tests and reports.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// When the participant started connecting its socket.
    pub started_at: Option<Instant>,
    /// When the server said `joined`.
    pub joined_at: Option<Instant>,
    /// The signaling URL the join was accepted at: on a cluster, the node hosting the room.
    pub joined_url: Option<String>,
    /// Every Switchyard server message, in order (other targets leave it empty).
    pub messages: Vec<ServerMessage>,
    /// Received tracks by the `mid` they arrive on; a track on another connection than the
    /// main one is keyed `CONNECTION:MID` (for Janus, `1:MID` on the receiving connection).
    pub received: HashMap<String, ReceivedTrack>,
    /// PLI/FIR the server sent about each published track, by the track's id.
    pub keyframe_requests: HashMap<String, u64>,
    /// Bitrates of the REMBs the server sent, in arrival order.
    pub rembs: Vec<u64>,
    /// The state of the peer connections in use, taken together: `Connected` once every one
    /// of them is.
    pub connection_state: Option<RTCPeerConnectionState>,
    /// Set once the socket is closed, with the close code if the server sent one.
    pub socket_closed: Option<Option<u16>>,
    /// When each answer to a server offer was sent.
    pub answers_sent: Vec<Instant>,
    /// When each keyframe request from the server arrived.
    pub keyframe_requests_at: Vec<Instant>,
    /// The SRTP protection profiles the connections negotiated, read once each connected.
    pub srtp_profiles: BTreeSet<String>,
    /// What arrived since the per-second sampler last looked.
    pub interval: Interval,
    /// The simulcast layers the server last asked for (`layers`), by the own track's id.
    pub layers_wanted: HashMap<String, Vec<String>>,
    /// The simulcast layers each own track sends now, by its id.
    pub layers_sending: HashMap<String, Vec<String>>,
    /// `view` messages sent.
    pub views_sent: u64,
    /// What arrived since the downlink estimator last looked.
    pub downlink: DownlinkMeter,
    /// The downlink estimates sent to the server as REMB, bits per second, in order.
    pub estimates_sent: Vec<u64>,
}

impl Observed {
    /// Errors the server sent, by code.
    pub fn errors(&self) -> Vec<switchyard::signal::protocol::ErrorCode> {
        self.messages
            .iter()
            .filter_map(|message| match message {
                ServerMessage::Error { code, .. } => Some(*code),
                _ => None,
            })
            .collect()
    }

    /// The received tracks the server still announces.
    pub fn live_tracks(&self) -> impl Iterator<Item = &ReceivedTrack> {
        self.received.values().filter(|track| track.announced)
    }

    /// How many live tracks have delivered intact packets.
    pub fn flowing_tracks(&self) -> usize {
        self.live_tracks().filter(|track| track.intact > 0).count()
    }
}

/// State shared between the participant's tasks.
struct Shared {
    observed: Mutex<Observed>,
    changed: watch::Sender<u64>,
    /// Every peer connection opened so far, to close them all however the participant ends.
    connections: Mutex<Vec<Arc<dyn PeerConnection>>>,
}

impl Shared {
    fn update<R>(&self, change: impl FnOnce(&mut Observed) -> R) -> R {
        let result = change(&mut self.lock());
        self.changed.send_modify(|version| *version += 1);
        result
    }

    fn lock(&self) -> MutexGuard<'_, Observed> {
        self.observed.lock()
    }

    fn connections(&self) -> Vec<Arc<dyn PeerConnection>> {
        self.connections.lock().clone()
    }
}

/// A request to the participant's driver.
enum Command {
    Raw(String),
    Leave,
    RestartIce,
    Pli { mid: String, count: usize },
    Remb { mid: String, bitrate: u64 },
}

/// A published track: what the media task writes to.
struct Outgoing {
    id: String,
    spec: TrackSpec,
    /// One stream, or one per simulcast layer (lowest first).
    streams: Vec<OutgoingStream>,
    pipe: Arc<TrackLocalStaticRTP>,
    /// Wakes the media task when a keyframe is wanted.
    keyframe_wanted: Arc<Notify>,
    /// The transceiver's mid, stamped on simulcast packets with their RID.
    mid: String,
    /// The server's wanted layers and the uplink estimate, for a simulcast track.
    control: watch::Receiver<LayerControl>,
}

/// One RTP stream of a published track.
struct OutgoingStream {
    ssrc: u32,
    /// Its simulcast layer, if the track is sent in layers.
    layer: Option<Layer>,
    /// Set when a keyframe of this stream is wanted.
    keyframe_wanted: Arc<AtomicBool>,
}

/// Where a keyframe request for one SSRC goes.
struct KeyframeSignal {
    track: String,
    wake: Arc<Notify>,
    stream: Arc<AtomicBool>,
}

/// A synthetic participant; see the module documentation.
pub struct Participant {
    id: String,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    tasks: Vec<JoinHandle<()>>,
}

impl Participant {
    /// Connects, joins and starts publishing. Returns once the server accepted the join and the
    /// opening offer is on its way; media follows as the connections come up.
    pub async fn join(options: ParticipantOptions) -> Result<Participant, ClientError> {
        let started_at = Instant::now();
        let session = options
            .target
            .join(JoinRequest {
                url: options.url.clone(),
                room: options.room.clone(),
                name: options.name.clone(),
                token: options.token.clone(),
                tls: options.tls.clone(),
            })
            .await?;
        let id = session.participant.clone();
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            observed: Mutex::new(Observed {
                started_at: Some(started_at),
                joined_at: Some(session.joined_at),
                joined_url: Some(session.url.clone()),
                messages: session.messages,
                ..Observed::default()
            }),
            changed,
            connections: Mutex::new(Vec::new()),
        });
        let (commands, command_rx) = mpsc::unbounded_channel();
        // From here on, a failure drops the participant, which stops its tasks and closes its
        // connections.
        let mut participant = Participant {
            id: id.clone(),
            shared: Arc::clone(&shared),
            commands,
            tasks: vec![session.task],
        };

        let (feedback_tx, feedback) = mpsc::channel(FEEDBACK_QUEUE);
        if options.relay && !offers_turn(&session.ice_servers) {
            return Err(ClientError::NoTurnServer);
        }
        let opener = Opener {
            ice_servers: session.ice_servers.iter().map(rtc_ice_server).collect(),
            relay: options.relay,
            media_ip: options.media_ip,
            impairment: options.impairment,
            dropper: options.dropper.clone(),
            handover: options.handover.clone(),
            feedback: feedback_tx,
            shared: Arc::clone(&shared),
            transport_cc: options
                .tracks
                .iter()
                .any(|track| matches!(track, TrackSpec::Simulcast(_))),
        };
        let (connection, events) = opener.open(ConnectionId::MAIN).await?;
        let mut outgoing = Vec::new();
        let mut transceivers = Vec::new();
        let mut layer_controls = HashMap::new();
        for (index, spec) in options.tracks.iter().enumerate() {
            let kind = spec.kind();
            let track_id = format!("{}{index}", kind.as_str());
            let layers: Vec<Option<Layer>> = match spec {
                TrackSpec::Simulcast(_) => LAYERS.iter().copied().map(Some).collect(),
                _ => vec![None],
            };
            let streams: Vec<OutgoingStream> = layers
                .into_iter()
                .map(|layer| OutgoingStream {
                    ssrc: rand::random::<u32>() | 1,
                    layer,
                    keyframe_wanted: Arc::new(AtomicBool::new(false)),
                })
                .collect();
            let pipe = Arc::new(TrackLocalStaticRTP::new(match spec {
                TrackSpec::Simulcast(_) => simulcast_sender::simulcast_track(
                    &id,
                    &track_id,
                    &streams
                        .iter()
                        .filter_map(|stream| Some((stream.ssrc, stream.layer?)))
                        .collect::<Vec<_>>(),
                ),
                _ => engine::single_stream_track(
                    format!("{id}-media"),
                    track_id.clone(),
                    track_id.clone(),
                    kind,
                    streams[0].ssrc,
                ),
            }));
            transceivers.push(
                connection
                    .add_transceiver_from_track(
                        Arc::clone(&pipe) as Arc<dyn TrackLocal>,
                        engine::send_only(),
                    )
                    .await
                    .map_err(webrtc_error("adding a track"))?,
            );
            let (control_tx, control) = watch::channel(LayerControl::default());
            if matches!(spec, TrackSpec::Simulcast(_)) {
                layer_controls.insert(track_id.clone(), control_tx);
            }
            outgoing.push(Outgoing {
                id: track_id,
                spec: spec.clone(),
                streams,
                pipe,
                keyframe_wanted: Arc::new(Notify::new()),
                mid: String::new(),
                control,
            });
        }
        let offer = connection
            .create_offer(None)
            .await
            .map_err(webrtc_error("creating the offer"))?;
        if !outgoing.is_empty() {
            connection
                .set_local_description(offer.clone())
                .await
                .map_err(webrtc_error("applying the offer"))?;
        }
        for (track, transceiver) in outgoing.iter_mut().zip(&transceivers) {
            track.mid = transceiver.mid().await.ok().flatten().unwrap_or_default();
        }
        // With nothing to publish the offer has no media sections. It is not applied locally:
        // it only tells the server to go ahead with its own offer, and applying it would make
        // webrtc-rs gather candidates for a negotiation that carries nothing.
        session
            .commands
            .send(SignalCommand::Offer {
                connection: ConnectionId::MAIN,
                sdp: offer.sdp,
            })
            .map_err(|_| ClientError::Signaling("the signaling task ended".to_owned()))?;

        let keyframe_signals: HashMap<u32, KeyframeSignal> = outgoing
            .iter()
            .flat_map(|track| {
                track.streams.iter().map(|stream| {
                    (
                        stream.ssrc,
                        KeyframeSignal {
                            track: track.id.clone(),
                            wake: Arc::clone(&track.keyframe_wanted),
                            stream: Arc::clone(&stream.keyframe_wanted),
                        },
                    )
                })
            })
            .collect();
        for track in outgoing.into_iter().filter(|_| options.send_media) {
            let task = if matches!(track.spec, TrackSpec::Simulcast(_)) {
                tokio::spawn(publish_simulcast(track, id.clone(), Arc::clone(&shared)))
            } else {
                tokio::spawn(publish(track, id.clone()))
            };
            participant.tasks.push(task);
        }
        let mut peer_events = SelectAll::new();
        peer_events.push(events);
        let driver = Driver {
            shared: Arc::clone(&shared),
            opener,
            connections: HashMap::from([(ConnectionId::MAIN, connection)]),
            states: BTreeMap::new(),
            signal_events: session.events,
            signal: session.commands,
            peer_events,
            feedback,
            commands: command_rx,
            keyframe_signals,
            layer_controls,
            remote_tracks: HashMap::new(),
            readers: Vec::new(),
            freeze_threshold: options.freeze_threshold,
            pli_sent: HashMap::new(),
            tile: options.tile,
            pending_views: Vec::new(),
            estimator: options.estimate_downlink.then(|| EstimatorState {
                estimator: DownlinkEstimator::default(),
                last: Instant::now(),
                marks: HashMap::new(),
            }),
        };
        participant.tasks.push(tokio::spawn(driver.run()));
        Ok(participant)
    }

    /// The participant id the server gave.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A copy of everything observed so far.
    pub fn observed(&self) -> Observed {
        self.shared.lock().clone()
    }

    /// RTP packets received so far, on all tracks.
    pub fn received_packets(&self) -> u64 {
        self.shared
            .lock()
            .received
            .values()
            .map(|track| track.packets)
            .sum()
    }

    /// What the run's per-second sampler reads this participant through; it outlives the
    /// participant, so what arrived before it left is still read.
    pub fn meter(&self) -> Meter {
        Meter(Arc::clone(&self.shared))
    }

    /// Whether every peer connection in use is connected.
    pub fn is_connected(&self) -> bool {
        self.shared.lock().connection_state == Some(RTCPeerConnectionState::Connected)
    }

    /// Video packets never received so far, and packets expected, over all video tracks.
    pub fn video_loss_counts(&self) -> (u64, u64) {
        self.shared
            .lock()
            .received
            .values()
            .filter(|track| track.kind == Some(TrackKind::Video))
            .fold((0, 0), |(missing, expected), track| {
                (
                    missing + track.quality.missing(),
                    expected + track.quality.expected(),
                )
            })
    }

    /// Starts judging loss on every track received so far: what was due until now does not
    /// count (see [`crate::stats::LossWindow`]).
    pub fn open_loss_window(&self) {
        self.shared.update(|observed| {
            for track in observed.received.values_mut() {
                track.quality.open_loss_window();
                track.window.opened = Some(track.mark());
            }
        });
    }

    /// Stops judging loss on what is sent from now on; what was sent before may still arrive.
    pub fn close_loss_window(&self) {
        self.shared.update(|observed| {
            for track in observed.received.values_mut() {
                track.quality.close_loss_window();
                track.window.closed = Some(track.mark());
            }
        });
    }

    /// The keys (see [`Observed::received`]) of the live received tracks of `kind`.
    pub fn received_mids(&self, kind: TrackKind) -> Vec<String> {
        self.shared
            .lock()
            .received
            .iter()
            .filter(|(_, track)| track.announced && track.kind == Some(kind) && track.packets > 0)
            .map(|(mid, _)| mid.clone())
            .collect()
    }

    /// Waits until `condition` holds, up to `timeout`; `what` names it in the error. The
    /// condition is checked on every change and, for conditions on elapsed time, every 50 ms.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        condition: impl Fn(&Observed) -> bool,
    ) -> Result<(), ClientError> {
        let mut changes = self.shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut recheck = tokio::time::interval(Duration::from_millis(50));
        loop {
            if condition(&self.shared.lock()) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::Timeout(what.to_owned()));
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = recheck.tick() => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Sends a raw text frame, valid or not.
    pub fn send_raw(&self, text: impl Into<String>) {
        let _ = self.commands.send(Command::Raw(text.into()));
    }

    /// Restarts ICE on the connection to the server: a new offer with new credentials, as a
    /// browser sends when its connection was interrupted.
    pub fn restart_ice(&self) {
        let _ = self.commands.send(Command::RestartIce);
    }

    /// Sends `count` PLIs, back to back, for the track received under `mid` (a key of
    /// [`Observed::received`]).
    pub fn send_pli(&self, mid: &str, count: usize) {
        let _ = self.commands.send(Command::Pli {
            mid: mid.to_owned(),
            count,
        });
    }

    /// Sends a REMB of `bitrate` for the track received under `mid` (a key of
    /// [`Observed::received`]).
    pub fn send_remb(&self, mid: &str, bitrate: u64) {
        let _ = self.commands.send(Command::Remb {
            mid: mid.to_owned(),
            bitrate,
        });
    }

    /// Leaves, waits for the server to close the socket, and closes the connections.
    pub async fn leave(self) {
        let _ = self.commands.send(Command::Leave);
        let _ = self
            .wait_until("the socket to close", Duration::from_secs(5), |observed| {
                observed.socket_closed.is_some()
            })
            .await;
        self.shutdown().await;
    }

    /// Drops the socket and the connections without a word, like a closed browser tab.
    pub async fn vanish(self) {
        self.shutdown().await;
    }

    async fn shutdown(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        let connections = self.shared.connections();
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            futures::future::join_all(connections.iter().map(|connection| connection.close())),
        )
        .await;
    }
}

/// A participant as the per-second sampler sees it: see [`Participant::meter`].
#[derive(Clone)]
pub struct Meter(Arc<Shared>);

impl Meter {
    /// Whether both read the same participant.
    pub fn same_as(&self, other: &Meter) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Adds what arrived since the last call to `into`, with the loss of the seconds that can
    /// be judged by now, and notes, for every received track, the highest packet index seen
    /// by the end of Unix second `second`. With `last`, judges every second left, whether or
    /// not retransmissions had time to come: the participant is leaving.
    pub fn take_interval(&self, second: u64, last: bool, into: &mut Interval) {
        let mut observed = self.0.lock();
        let observed = &mut *observed;
        observed.interval.take(into);
        let until = (!last).then(|| second.saturating_sub(LOSS_JUDGING_DELAY_SECONDS));
        for track in observed.received.values_mut() {
            if let Some(span) = track.quality.indices.span() {
                track.loss_ledger.checkpoint(second, *span.end());
            }
            let video = track.kind == Some(TrackKind::Video);
            for (judged, expected, missing) in
                track.loss_ledger.judge(&track.quality.indices, until)
            {
                let counts = if video {
                    LossCounts {
                        video_expected: expected,
                        video_missing: missing,
                        ..LossCounts::default()
                    }
                } else {
                    LossCounts {
                        audio_expected: expected,
                        audio_missing: missing,
                        ..LossCounts::default()
                    }
                };
                into.loss.entry(judged).or_default().add(&counts);
            }
        }
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        let connections = self.shared.connections();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                for connection in connections {
                    let _ = connection.close().await;
                }
            });
        }
    }
}

/// Whether `servers` include a TURN server, which `--relay` needs.
fn offers_turn(servers: &[IceServer]) -> bool {
    servers
        .iter()
        .flat_map(|server| &server.urls)
        .any(|url| url.starts_with("turn:") || url.starts_with("turns:"))
}

/// An ICE server from `joined` in webrtc-rs's terms.
fn rtc_ice_server(server: &IceServer) -> RTCIceServer {
    RTCIceServer {
        urls: server.urls.clone(),
        username: server.username.clone().unwrap_or_default(),
        credential: server.credential.clone().unwrap_or_default(),
    }
}

fn webrtc_error(what: &'static str) -> impl Fn(webrtc::error::Error) -> ClientError {
    move |error| ClientError::WebRtc(format!("{what}: {error}"))
}

/// The key of a received track in [`Observed::received`]: its mid, qualified with the
/// connection unless it arrives on the main one.
fn received_key(connection: ConnectionId, mid: &str) -> String {
    if connection == ConnectionId::MAIN {
        mid.to_owned()
    } else {
        format!("{connection}:{mid}")
    }
}

/// What a connection reports, labelled with the connection.
type PeerEvents = BoxStream<'static, (ConnectionId, PeerEvent)>;

/// How many times a receiver asks for one lost packet. webrtc-rs asks every 100 ms until the
/// packet comes, whatever the round trip; a browser waits about a round trip between asks and
/// gives up after ten. Over a full link (a queue of half a second) that is two or three asks,
/// and asking every 100 ms for every packet the link dropped would fill it with
/// retransmissions, which a browser never sees.
const NACKS_PER_PACKET: u16 = 3;

/// Opens the participant's peer connections, all alike.
struct Opener {
    ice_servers: Vec<RTCIceServer>,
    relay: bool,
    media_ip: IpAddr,
    impairment: Impairment,
    dropper: Option<Dropper>,
    handover: Option<Handover>,
    feedback: mpsc::Sender<Feedback>,
    shared: Arc<Shared>,
    /// Whether to stamp transport-wide sequence numbers on what is sent, as a browser does, so
    /// the server can estimate the uplink: done for simulcast publishers, whose layers follow
    /// the estimate the server sends back.
    transport_cc: bool,
}

impl Opener {
    /// The connection's ICE servers and policy, as a browser configures them from `joined`.
    fn configuration(&self) -> RTCConfiguration {
        let configuration =
            RTCConfigurationBuilder::new().with_ice_servers(self.ice_servers.clone());
        if self.relay {
            configuration.with_ice_transport_policy(RTCIceTransportPolicy::Relay)
        } else {
            configuration
        }
        .build()
    }

    /// The server's interceptors, but asking for a lost packet [`NACKS_PER_PACKET`] times
    /// at most, and with `transport_cc` the one that stamps transport-wide sequence numbers.
    fn interceptors(&self) -> rtc::interceptor::Registry {
        let registry = engine::interceptors(self.feedback.clone()).with(
            rtc::interceptor::Slot::NackGenerator,
            rtc::interceptor::NackGeneratorBuilder::new()
                .with_max_nacks_per_packet(NACKS_PER_PACKET)
                .build(),
        );
        if self.transport_cc {
            registry.with(
                rtc::interceptor::Slot::TwccSender,
                rtc::interceptor::TwccSenderBuilder::new().build(),
            )
        } else {
            registry
        }
    }

    async fn open(
        &self,
        id: ConnectionId,
    ) -> Result<(Arc<dyn PeerConnection>, PeerEvents), ClientError> {
        let (events_tx, events) = mpsc::unbounded_channel();
        // No mDNS, as on the server: it needs a multicast route, which a network namespace
        // with only a veth pair (where Janus is measured) does not have. ICE is as prompt as a
        // browser's, whichever server is measured.
        let settings = engine::prompt_ice(
            SettingEngineBuilder::new()
                .with_include_loopback_candidate(self.media_ip.is_loopback())
                .with_multicast_dns_mode(MulticastDnsMode::Disabled),
        )
        .build();
        let mut builder = PeerConnectionBuilder::new();
        if !self.impairment.is_none() || self.dropper.is_some() || self.handover.is_some() {
            builder = builder.with_runtime(Arc::new(
                ImpairedRuntime::new(self.impairment)
                    .with_dropper(self.dropper.clone())
                    .with_handover(self.handover.clone()),
            ));
        }
        let connection: Arc<dyn PeerConnection> = Arc::new(
            builder
                .with_configuration(self.configuration())
                .with_media_engine(
                    client_media_engine(self.transport_cc).map_err(webrtc_error("codecs"))?,
                )
                .with_setting_engine(settings)
                .with_interceptor_registry(self.interceptors())
                .with_handler(Arc::new(EventForwarder::new(events_tx)))
                .with_udp_addrs(vec![SocketAddr::new(self.media_ip, 0)])
                .build()
                .await
                .map_err(webrtc_error("building the connection"))?,
        );
        self.shared.connections.lock().push(Arc::clone(&connection));
        let labelled = futures::stream::unfold(events, move |mut events| async move {
            let event = events.recv().await?;
            Some(((id, event), events))
        })
        .boxed();
        Ok((connection, labelled))
    }
}

/// Owns the negotiation: acts on what the target reports, and on what the connections report.
struct Driver {
    shared: Arc<Shared>,
    opener: Opener,
    connections: HashMap<ConnectionId, Arc<dyn PeerConnection>>,
    /// The last state each connection reported; a connection that never reported one is not
    /// in use (yet).
    states: BTreeMap<ConnectionId, RTCPeerConnectionState>,
    signal_events: mpsc::UnboundedReceiver<SignalEvent>,
    signal: mpsc::UnboundedSender<SignalCommand>,
    peer_events: SelectAll<PeerEvents>,
    feedback: mpsc::Receiver<Feedback>,
    commands: mpsc::UnboundedReceiver<Command>,
    keyframe_signals: HashMap<u32, KeyframeSignal>,
    /// What each simulcast track's sender is told, by the track's id.
    layer_controls: HashMap<String, watch::Sender<LayerControl>>,
    /// Received tracks by their key in [`Observed::received`].
    remote_tracks: HashMap<String, Arc<dyn TrackRemote>>,
    readers: Vec<JoinHandle<()>>,
    freeze_threshold: Duration,
    /// When a PLI was last sent for each key still waiting for its keyframe.
    pli_sent: HashMap<String, Instant>,
    /// The tile every received video is shown in, if declared.
    tile: Option<Tile>,
    /// Received videos whose tile the server has not been told yet.
    pending_views: Vec<TileView>,
    /// With `estimate_downlink`, what estimates the downlink.
    estimator: Option<EstimatorState>,
}

/// The downlink estimator, and what it saw when it last looked.
struct EstimatorState {
    estimator: DownlinkEstimator,
    last: Instant,
    /// For each received video, the highest index and the intact packets it had by then.
    marks: HashMap<String, (u64, u64)>,
}

/// Like a browser's decoder, a receiver still waiting for a keyframe asks again this often.
const PLI_REPEAT: Duration = Duration::from_secs(1);
/// How often a receiver that estimates its downlink tells the server, as browsers do.
const ESTIMATE_INTERVAL: Duration = Duration::from_secs(1);

impl Driver {
    async fn run(mut self) {
        let mut repeat = tokio::time::interval(PLI_REPEAT / 4);
        let mut views = tokio::time::interval(view::VIEW_INTERVAL);
        let mut estimates = tokio::time::interval(ESTIMATE_INTERVAL);
        loop {
            tokio::select! {
                _ = estimates.tick(), if self.estimator.is_some() => self.estimate_downlink().await,
                _ = repeat.tick(), if !self.pli_sent.is_empty() => self.repeat_plis().await,
                _ = views.tick(), if !self.pending_views.is_empty() => self.send_views(),
                event = self.signal_events.recv() => {
                    // A target that ended without a word closed its socket all the same.
                    let event = event.unwrap_or(SignalEvent::Closed(None));
                    if let SignalEvent::Closed(code) = event {
                        self.shared.update(|observed| observed.socket_closed = Some(code));
                        break;
                    }
                    self.on_signal(event).await;
                }
                Some((connection, event)) = self.peer_events.next() => {
                    self.on_peer_event(connection, event).await;
                }
                Some(feedback) = self.feedback.recv() => self.on_feedback(feedback),
                Some(command) = self.commands.recv() => self.on_command(command).await,
            }
        }
        for reader in self.readers.drain(..) {
            reader.abort();
        }
    }

    /// The connection `id`, opened on first use.
    async fn connection(&mut self, id: ConnectionId) -> Option<Arc<dyn PeerConnection>> {
        if let Some(connection) = self.connections.get(&id) {
            return Some(Arc::clone(connection));
        }
        match self.opener.open(id).await {
            Ok((connection, events)) => {
                self.peer_events.push(events);
                self.connections.insert(id, Arc::clone(&connection));
                Some(connection)
            }
            Err(error) => {
                tracing::warn!(%error, connection = %id, "cannot open a connection");
                None
            }
        }
    }

    async fn on_signal(&mut self, event: SignalEvent) {
        match event {
            SignalEvent::Message(message) => {
                self.shared
                    .update(|observed| observed.messages.push(message));
            }
            SignalEvent::Offer { connection, sdp } => match self.answer(connection, sdp).await {
                Ok(()) => {}
                // An offer that crossed our leaving: nobody is listening for the answer.
                Err(ClientError::Signaling(_)) => {}
                Err(error) => {
                    tracing::warn!(%error, %connection, "cannot answer the server's offer");
                }
            },
            SignalEvent::Answer { connection, sdp } => {
                let Some(pc) = self.connections.get(&connection).cloned() else {
                    return;
                };
                // An answer to an offer that was rolled back (or never applied) is stale.
                if pc.pending_local_description().await.is_none() {
                    return;
                }
                let applied = match RTCSessionDescription::answer(sdp) {
                    Ok(answer) => pc.set_remote_description(answer).await.is_ok(),
                    Err(_) => false,
                };
                if !applied {
                    tracing::warn!(%connection, "cannot apply the server's answer");
                }
            }
            SignalEvent::Candidate {
                connection,
                candidate,
            } => {
                if let Some(pc) = self.connections.get(&connection) {
                    let _ = pc.add_ice_candidate(candidate).await;
                }
            }
            SignalEvent::TrackAnnounced {
                connection,
                mid,
                participant,
                track,
                kind,
            } => {
                if kind == TrackKind::Video
                    && let Some(tile) = self.tile
                {
                    self.pending_views.push(TileView {
                        participant: participant.clone(),
                        track: track.clone(),
                        tile,
                        visible: true,
                    });
                }
                self.shared.update(|observed| {
                    let received = observed
                        .received
                        .entry(received_key(connection, &mid))
                        .or_default();
                    received.participant = participant;
                    received.track = track;
                    received.kind = Some(kind);
                    received.announced = true;
                });
            }
            SignalEvent::Layers { track, active } => {
                if let Some(control) = self.layer_controls.get(&track) {
                    control.send_modify(|control| {
                        control.wanted = Some(active.iter().cloned().collect());
                    });
                }
                self.shared.update(|observed| {
                    observed.layers_wanted.insert(track, active);
                });
            }
            SignalEvent::VideoPaused {
                participant,
                track,
                paused,
            } => {
                self.shared.update(|observed| {
                    let received = observed.received.values_mut().find(|received| {
                        received.announced
                            && received.participant == participant
                            && received.track == track
                    });
                    if let Some(received) = received {
                        received.pauses += u64::from(paused && !received.paused);
                        received.paused = paused;
                        // What the server held back was never due, and the gap it leaves
                        // between frames is a pause the tile shows, not a freeze.
                        received.layers.restart();
                        received.quality.last_frame = None;
                    }
                });
            }
            SignalEvent::TrackEnded { connection, mid } => {
                self.shared.update(|observed| {
                    if let Some(received) =
                        observed.received.get_mut(&received_key(connection, &mid))
                    {
                        received.announced = false;
                    }
                });
            }
            SignalEvent::Closed(_) => {}
        }
    }

    /// Offers the server new ICE credentials on the main connection.
    async fn restart_ice(&mut self) -> Result<(), ClientError> {
        let connection = self
            .connection(ConnectionId::MAIN)
            .await
            .ok_or_else(|| ClientError::WebRtc("no connection to restart".to_owned()))?;
        let offer = connection
            .create_offer(Some(RTCOfferOptions { ice_restart: true }))
            .await
            .map_err(webrtc_error("creating the restart offer"))?;
        connection
            .set_local_description(offer.clone())
            .await
            .map_err(webrtc_error("applying the restart offer"))?;
        self.signal
            .send(SignalCommand::Offer {
                connection: ConnectionId::MAIN,
                sdp: offer.sdp,
            })
            .map_err(|_| ClientError::Signaling("the signaling task ended".to_owned()))
    }

    /// Abandons our outstanding offer on `connection`, if there is one.
    async fn rollback(connection: &Arc<dyn PeerConnection>) -> Result<(), ClientError> {
        if connection.pending_local_description().await.is_none() {
            return Ok(());
        }
        let rollback: RTCSessionDescription =
            serde_json::from_value(serde_json::json!({"type": "rollback", "sdp": ""}))
                .map_err(|error| ClientError::WebRtc(error.to_string()))?;
        connection
            .set_local_description(rollback)
            .await
            .map_err(webrtc_error("rolling back"))
    }

    /// Answers a server offer, rolling back our own offer first if the two crossed.
    async fn answer(&mut self, id: ConnectionId, sdp: String) -> Result<(), ClientError> {
        let connection = self
            .connection(id)
            .await
            .ok_or_else(|| ClientError::WebRtc(format!("no connection {id}")))?;
        Self::rollback(&connection).await?;
        let offer = RTCSessionDescription::offer(sdp).map_err(webrtc_error("parsing the offer"))?;
        connection
            .set_remote_description(offer)
            .await
            .map_err(webrtc_error("applying the offer"))?;
        let answer = connection
            .create_answer(None)
            .await
            .map_err(webrtc_error("creating the answer"))?;
        connection
            .set_local_description(answer.clone())
            .await
            .map_err(webrtc_error("applying the answer"))?;
        self.signal
            .send(SignalCommand::Answer {
                connection: id,
                sdp: answer.sdp,
            })
            .map_err(|_| ClientError::Signaling("the signaling task ended".to_owned()))?;
        self.shared
            .update(|observed| observed.answers_sent.push(Instant::now()));
        Ok(())
    }

    async fn on_peer_event(&mut self, id: ConnectionId, event: PeerEvent) {
        match event {
            PeerEvent::Candidate(candidate) => {
                let _ = self.signal.send(SignalCommand::Candidate {
                    connection: id,
                    candidate,
                });
            }
            PeerEvent::State(state) => {
                self.states.insert(id, state);
                let overall = overall_state(&self.states);
                let profile = match (state, self.connections.get(&id)) {
                    (RTCPeerConnectionState::Connected, Some(connection)) => {
                        srtp_profile(connection).await
                    }
                    _ => None,
                };
                self.shared.update(|observed| {
                    observed.connection_state = overall;
                    observed.srtp_profiles.extend(profile);
                });
            }
            PeerEvent::Track(remote) => {
                let Some(connection) = self.connections.get(&id) else {
                    return;
                };
                let track = remote.track_id().await;
                let Some(mid) = mid_of_remote_track(connection, &track).await else {
                    return;
                };
                let key = received_key(id, &mid);
                self.remote_tracks.insert(key.clone(), Arc::clone(&remote));
                self.readers.push(tokio::spawn(read_track(
                    remote,
                    key,
                    Arc::clone(&self.shared),
                    self.freeze_threshold,
                    self.estimator.is_some(),
                )));
            }
        }
    }

    /// Estimates the downlink from what arrived since the last time, and sends the estimate
    /// as a REMB about every received video.
    async fn estimate_downlink(&mut self) {
        let Some(EstimatorState {
            estimator,
            last,
            marks,
        }) = self.estimator.as_mut()
        else {
            return;
        };
        let now = Instant::now();
        let period = now.saturating_duration_since(*last);
        *last = now;
        let (bits, median_latency, expected, arrived, videos) = {
            let mut observed = self.shared.lock();
            let (bits, median_latency) = observed.downlink.take();
            let (mut expected, mut arrived) = (0, 0);
            let mut videos = Vec::new();
            for (key, track) in &observed.received {
                if track.kind != Some(TrackKind::Video) || !track.announced {
                    continue;
                }
                videos.push(key.clone());
                let highest = track.quality.indices.span().map_or(0, |span| *span.end());
                let (before_highest, before_intact) = marks
                    .insert(key.clone(), (highest, track.intact))
                    .unwrap_or((highest, track.intact));
                expected += highest.saturating_sub(before_highest);
                arrived += track.intact.saturating_sub(before_intact);
            }
            (bits, median_latency, expected, arrived, videos)
        };
        let sample = DownlinkSample {
            bits,
            period,
            median_latency,
            expected,
            arrived,
        };
        let Some(estimate) = estimator.update(sample) else {
            return;
        };
        let mut ssrcs = Vec::new();
        let mut via = None;
        for key in &videos {
            if let Some(remote) = self.remote_tracks.get(key) {
                ssrcs.extend(remote.ssrcs().await);
                via.get_or_insert_with(|| Arc::clone(remote));
            }
        }
        let Some(via) = via else {
            return;
        };
        let _ = via
            .write_rtcp(vec![Box::new(ReceiverEstimatedMaximumBitrate {
                sender_ssrc: 0,
                bitrate: estimate as f32,
                ssrcs,
            })])
            .await;
        self.shared
            .update(|observed| observed.estimates_sent.push(estimate));
    }

    /// Tells the server the tiles of the videos announced since the last `view`: one message
    /// per call, so at most one per [`view::VIEW_INTERVAL`].
    fn send_views(&mut self) {
        let count = self.pending_views.len().min(view::MAX_VIEW_ENTRIES);
        let batch: Vec<TileView> = self.pending_views.drain(..count).collect();
        for message in view::view_messages(&batch) {
            let _ = self.signal.send(SignalCommand::Raw(message));
            self.shared.update(|observed| observed.views_sent += 1);
        }
    }

    fn on_feedback(&mut self, feedback: Feedback) {
        match feedback {
            Feedback::KeyframeRequest { media_ssrc } => {
                if let Some(signal) = self.keyframe_signals.get(&media_ssrc.0) {
                    // The stream's flag first: the woken media task reads it.
                    signal.stream.store(true, Ordering::Release);
                    signal.wake.notify_one();
                    let track = signal.track.clone();
                    self.shared.update(|observed| {
                        *observed.keyframe_requests.entry(track).or_default() += 1;
                        observed.keyframe_requests_at.push(Instant::now());
                    });
                }
            }
            Feedback::BitrateEstimate { bitrate, .. } => {
                // One estimate of the uplink, for every simulcast track it carries.
                for control in self.layer_controls.values() {
                    control.send_modify(|control| control.estimate = Some(bitrate));
                }
                self.shared.update(|observed| observed.rembs.push(bitrate));
            }
            Feedback::Nack => {}
        }
    }

    /// Asks again for the keyframes that have not come within [`PLI_REPEAT`].
    async fn repeat_plis(&mut self) {
        let now = Instant::now();
        let waiting: Vec<String> = {
            let observed = self.shared.lock();
            self.pli_sent.retain(|key, _| {
                observed
                    .received
                    .get(key)
                    .is_some_and(|track| track.quality.keyframe_asked.is_some())
            });
            self.pli_sent
                .iter()
                .filter(|(_, sent)| now.saturating_duration_since(**sent) >= PLI_REPEAT)
                .map(|(key, _)| key.clone())
                .collect()
        };
        for key in waiting {
            self.write_pli(&key, 1).await;
        }
    }

    async fn write_pli(&mut self, key: &str, count: usize) {
        let Some(remote) = self.remote_tracks.get(key) else {
            return;
        };
        let Some(media_ssrc) = remote.ssrcs().await.first().copied() else {
            return;
        };
        for _ in 0..count {
            let _ = remote.write_rtcp(keyframe_request(media_ssrc)).await;
        }
        self.pli_sent.insert(key.to_owned(), Instant::now());
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Raw(text) => {
                let _ = self.signal.send(SignalCommand::Raw(text));
            }
            Command::Leave => {
                let _ = self.signal.send(SignalCommand::Leave);
            }
            Command::RestartIce => {
                if let Err(error) = self.restart_ice().await {
                    tracing::warn!(%error, "the ICE restart could not be offered");
                }
            }
            Command::Pli { mid, count } => {
                let asked = Instant::now();
                self.shared.update(|observed| {
                    if let Some(received) = observed.received.get_mut(&mid) {
                        received.quality.keyframe_asked.get_or_insert(asked);
                    }
                });
                self.write_pli(&mid, count).await;
            }
            Command::Remb { mid, bitrate } => {
                let Some(remote) = self.remote_tracks.get(&mid) else {
                    return;
                };
                let ssrcs = remote.ssrcs().await;
                let _ = remote
                    .write_rtcp(vec![Box::new(ReceiverEstimatedMaximumBitrate {
                        sender_ssrc: 0,
                        bitrate: bitrate as f32,
                        ssrcs,
                    })])
                    .await;
            }
        }
    }
}

/// The SRTP protection profile a connected connection negotiated.
async fn srtp_profile(connection: &Arc<dyn PeerConnection>) -> Option<String> {
    let stats = connection
        .get_stats(Instant::now(), StatsSelector::None)
        .await;
    let cipher = &stats.transport()?.srtp_cipher;
    (!cipher.is_empty()).then(|| cipher.clone())
}

/// One state for all the connections in use (those past `new`): connected when every one of
/// them is, failed or closed when one is, and otherwise the state of the first that is not
/// connected yet.
fn overall_state(
    states: &BTreeMap<ConnectionId, RTCPeerConnectionState>,
) -> Option<RTCPeerConnectionState> {
    use RTCPeerConnectionState::{Closed, Connected, Failed, New};
    let in_use: Vec<RTCPeerConnectionState> = states
        .values()
        .copied()
        .filter(|state| *state != New)
        .collect();
    [Failed, Closed]
        .into_iter()
        .find(|bad| in_use.contains(bad))
        .or_else(|| in_use.iter().copied().find(|state| *state != Connected))
        .or_else(|| in_use.first().copied())
        .or_else(|| states.values().next().copied())
}

/// Reads one received track, checking and counting every packet.
async fn read_track(
    remote: Arc<dyn TrackRemote>,
    mid: String,
    shared: Arc<Shared>,
    freeze_threshold: Duration,
    measure_downlink: bool,
) {
    let mut last_request: Option<Instant> = None;
    while let Some(event) = remote.poll().await {
        let TrackRemoteEvent::OnRtpPacket(packet) = event else {
            continue;
        };
        let now = Instant::now();
        let now_micros = synthetic::now_micros();
        let probe = synthetic::read_probe(&packet.payload);
        let waiting_for_keyframe = shared.update(|observed| {
            let received = observed.received.entry(mid.clone()).or_default();
            // The index on the track's one continuous sequence, whatever layer it came on.
            let probe = probe.map(|probe| {
                let index = received.layers.on_packet(probe.layer, probe.index, now);
                (probe, index)
            });
            received.packets += 1;
            received.bytes += packet.payload.len() as u64;
            let (freezes_before, latency_micros) = (
                received.quality.freezes,
                probe.map(|(probe, _)| now_micros.saturating_sub(probe.sent_at_micros)),
            );
            received.first_packet.get_or_insert(now);
            let video = received.kind == Some(TrackKind::Video);
            let keyframe_start = video && vp8::is_keyframe_start(&packet.payload);
            if keyframe_start {
                received.keyframes += 1;
                received.first_keyframe.get_or_insert(now);
            }
            match probe {
                Some((probe, index)) => {
                    received.intact += 1;
                    received.tags.insert(probe.tag);
                    if !received.participant.is_empty()
                        && probe.tag != synthetic::track_tag(&received.participant, &received.track)
                    {
                        received.foreign += 1;
                    }
                    received.quality.record(
                        probe,
                        index,
                        now,
                        now_micros,
                        packet.header.marker,
                        keyframe_start,
                        video.then_some(freeze_threshold),
                    );
                }
                None => received.corrupted += 1,
            }
            let waiting = video && received.first_keyframe.is_none();
            let freezes = received.quality.freezes - freezes_before;
            if measure_downlink {
                observed
                    .downlink
                    .record(packet.payload.len(), latency_micros);
            }
            let interval = &mut observed.interval;
            interval.count_packet(packet.payload.len());
            interval.freezes += freezes;
            if let Some(micros) = latency_micros {
                interval.record_latency(micros);
            }
            waiting
        });
        // Like a browser's decoder, a receiver whose video starts without a keyframe asks for
        // one, and asks again every PLI_REPEAT until it comes.
        if waiting_for_keyframe
            && last_request.is_none_or(|asked| now.saturating_duration_since(asked) >= PLI_REPEAT)
            && let Some(media_ssrc) = remote.ssrcs().await.first().copied()
        {
            last_request = Some(now);
            let _ = remote.write_rtcp(keyframe_request(media_ssrc)).await;
        }
    }
}

/// A keyframe request as a browser sends it: a PLI in a compound packet led by a receiver
/// report about the same stream (RFC 4585, section 3.1). A server may need the report to tell
/// which stream the request is about: Janus, for one, finds the stream of an incoming RTCP
/// packet from its sender or its first report block, never from a PLI's media SSRC, and drops a
/// lone PLI from a receiver that sends nothing.
fn keyframe_request(media_ssrc: u32) -> Vec<Box<dyn rtc::rtcp::Packet>> {
    vec![
        Box::new(ReceiverReport {
            ssrc: 0,
            reports: vec![ReceptionReport {
                ssrc: media_ssrc,
                ..Default::default()
            }],
            profile_extensions: bytes::Bytes::new(),
        }),
        Box::new(PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        }),
    ]
}

/// Sends one simulcast track until the task is aborted, noting the layers it sends.
async fn publish_simulcast(track: Outgoing, participant: String, shared: Arc<Shared>) {
    let TrackSpec::Simulcast(shape) = track.spec else {
        return;
    };
    let id = track.id.clone();
    let sender = SimulcastSender {
        tag: synthetic::track_tag(&participant, &track.id),
        shape,
        streams: track
            .streams
            .into_iter()
            .filter_map(|stream| {
                Some(SimulcastStream {
                    ssrc: stream.ssrc,
                    layer: stream.layer?,
                    keyframe_wanted: stream.keyframe_wanted,
                })
            })
            .collect(),
        pipe: track.pipe,
        mid: track.mid,
        wake: track.keyframe_wanted,
        control: track.control,
    };
    sender
        .run(|rids| {
            shared.update(|observed| {
                observed.layers_sending.insert(id.clone(), rids);
            });
        })
        .await;
}

/// The media engine of a synthetic participant: the server's, and the RTP stream id header
/// extensions in the sending direction too, which a simulcast publisher stamps on its packets
/// (the server negotiates them on what it receives only), and the audio level; with
/// `transport_cc`, the transport-wide sequence number likewise.
pub(crate) fn client_media_engine(
    transport_cc: bool,
) -> Result<rtc::peer_connection::configuration::media_engine::MediaEngine, rtc::shared::error::Error>
{
    use rtc::rtp_transceiver::rtp_sender::{RTCRtpHeaderExtensionCapability, RtpCodecKind};
    let mut engine = engine::media_engine()?;
    let mut extensions = vec![
        (
            rtc::sdp::extmap::SDES_RTP_STREAM_ID_URI,
            RtpCodecKind::Video,
        ),
        (
            rtc::sdp::extmap::SDES_REPAIR_RTP_STREAM_ID_URI,
            RtpCodecKind::Video,
        ),
        // Every microphone's loudness, as browsers stamp it: what the server finds the active
        // speaker by.
        (AUDIO_LEVEL_URI, RtpCodecKind::Audio),
    ];
    if transport_cc {
        extensions.extend([
            (rtc::sdp::extmap::TRANSPORT_CC_URI, RtpCodecKind::Video),
            (rtc::sdp::extmap::TRANSPORT_CC_URI, RtpCodecKind::Audio),
        ]);
    }
    for (uri, kind) in extensions {
        engine.register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: uri.to_owned(),
            },
            kind,
            None,
        )?;
    }
    Ok(engine)
}

/// Sends one synthetic track until the task is aborted.
async fn publish(track: Outgoing, participant: String) {
    let tag = synthetic::track_tag(&participant, &track.id);
    let mut sequence: u16 = rand::random();
    let mut timestamp: u32 = rand::random();
    let mut index = 0u64;
    let ssrc = track.streams[0].ssrc;
    match track.spec {
        TrackSpec::Audio => {
            let mut ticker = tokio::time::interval(Duration::from_millis(20));
            loop {
                ticker.tick().await;
                let packet = rtp_packet(
                    ssrc,
                    OPUS_PAYLOAD_TYPE,
                    sequence,
                    timestamp,
                    index == 0,
                    synthetic::opus_packet(tag, index),
                );
                let (level, voice) = synthetic::speech_level(tag, index);
                let loudness = HeaderExtension::AudioLevel(AudioLevelExtension { level, voice });
                let _ = track
                    .pipe
                    .write_rtp_with_extensions(packet, &[loudness])
                    .await;
                sequence = sequence.wrapping_add(1);
                timestamp = timestamp.wrapping_add(960);
                index += 1;
            }
        }
        TrackSpec::Video(shape) | TrackSpec::Simulcast(shape) => {
            let frame_interval = Duration::from_secs(1) / shape.fps.max(1);
            let mut ticker = tokio::time::interval(frame_interval);
            let mut last_keyframe: Option<Instant> = None;
            let ticks_per_frame = 90_000 / shape.fps.max(1);
            let mut requests_to_ignore = shape.ignored_keyframe_requests;
            loop {
                let keyframe_requested = tokio::select! {
                    _ = ticker.tick() => false,
                    () = track.keyframe_wanted.notified() => {
                        let ignored = requests_to_ignore > 0;
                        requests_to_ignore = requests_to_ignore.saturating_sub(1);
                        if ignored {
                            continue;
                        }
                        true
                    }
                };
                let now = Instant::now();
                let keyframe = keyframe_requested
                    || last_keyframe
                        .is_none_or(|last| now.duration_since(last) >= shape.keyframe_interval);
                if keyframe {
                    last_keyframe = Some(now);
                }
                for part in synthetic::vp8_frame(&shape, keyframe, tag, 0, &mut index) {
                    let packet = rtp_packet(
                        ssrc,
                        VP8_PAYLOAD_TYPE,
                        sequence,
                        timestamp,
                        part.last,
                        part.payload,
                    );
                    let _ = track.pipe.write_rtp(packet).await;
                    sequence = sequence.wrapping_add(1);
                }
                timestamp = timestamp.wrapping_add(ticks_per_frame);
            }
        }
    }
}

fn rtp_packet(
    ssrc: u32,
    payload_type: u8,
    sequence_number: u16,
    timestamp: u32,
    marker: bool,
    payload: bytes::Bytes,
) -> rtp::Packet {
    rtp::Packet {
        header: rtp::header::Header {
            version: 2,
            marker,
            payload_type,
            sequence_number,
            timestamp,
            ssrc,
            ..Default::default()
        },
        payload,
    }
}

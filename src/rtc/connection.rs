//! A participant's media connection: one sans-IO `RTCPeerConnection`, what the participant
//! publishes on it and what it receives on it.
//!
//! A [`Connection`] lives on one media worker, which feeds it datagrams and time and sends what
//! it writes. It never touches a socket, a clock or the wire protocol: negotiation returns
//! [`Notice`]s that the signaling session renders, and the packets and feedback that cross to
//! other connections leave through [`Effects`] for the worker to deliver. Its concepts live in
//! files of their own: `negotiation` (offers, answers, glare), `publishing` (the tracks it
//! sends), `subscriptions` (the slots it receives on) and `padding` (the packets its core
//! refuses after decrypting them).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtp;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::sansio::Protocol;
use rtc::shared::util::match_srtp;
use rtc::shared::{TaggedBytesMut, TransportContext};
use tokio::sync::mpsc;
use tracing::debug;

use crate::ids::{
    ConnectionId, LayerIndex, Mid, ParticipantId, PublicationKey, Ssrc, SubscriberKey,
    TransceiverIndex,
};
use crate::media::downlink::Downlink;
use crate::media::downtrack::DownTrack;
use crate::media::keyframe::{DEFAULT_ROUND_TRIP, KeyframeReason};
use crate::media::malformed::{self, Malformed};
use crate::media::publication::{Outgoing, Publication};
use crate::media::upstream::Upstream;
use crate::metrics::{Gauge, GaugeGuard, Metrics};
use crate::rtc::feedback::{FEEDBACK_QUEUE, Feedback};
use crate::rtc::negotiation::Phase;
use crate::rtc::padding::{PaddedPacket, PaddingWatch};
use crate::rtc::publishing::{Published, Receiving};
use crate::rtc::sdp::MediaSection;
use crate::rtc::setup::{self, MediaSettings};
use crate::rtc::subscriptions::{Slot, Subscription};

/// The most tracks one participant may publish at once: a camera, a microphone and a screen
/// with its sound are four.
pub const MAX_PUBLISHED_TRACKS: usize = 8;

/// How often the connection's round-trip time is read from its ICE statistics.
const ROUND_TRIP_INTERVAL: Duration = Duration::from_secs(5);

/// Why a client's message could not be applied to its connection.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The SDP did not parse or could not be applied.
    #[error("invalid SDP: {0}")]
    InvalidSdp(String),
    /// An answer arrived with no server offer outstanding.
    #[error("no offer from the server is waiting for an answer")]
    UnexpectedAnswer,
    /// The candidate did not parse or belongs to nothing.
    #[error("invalid candidate: {0}")]
    InvalidCandidate(String),
    /// `mute` named a track this participant does not publish.
    #[error("no published track `{0}`")]
    UnknownTrack(String),
    /// The connection failed in a way the client cannot fix.
    #[error("media connection failure: {0}")]
    Internal(String),
}

/// What a connection tells its participant's session, in the order it happened.
#[derive(Debug)]
pub enum Notice {
    /// Answer the client's offer with this SDP.
    Answer(String),
    /// Offer the client this SDP.
    Offer(String),
    /// A track now travels to the client in the media section `mid`.
    TrackPublished {
        /// The track.
        publication: Arc<Publication>,
        /// Its media section on the client's connection.
        mid: Mid,
    },
    /// A track no longer travels to the client in `mid`.
    TrackUnpublished {
        /// The track.
        publication: Arc<Publication>,
        /// The media section it used.
        mid: Mid,
    },
    /// The client may not publish: its offer's sending sections `mids` were answered inactive.
    PublishRefused {
        /// The refused sections.
        mids: Vec<Mid>,
    },
    /// Announce these tracks of the participant's to the room.
    Publish(Vec<Arc<Publication>>),
    /// End these tracks of the participant's in the room.
    Unpublish(Vec<Arc<Publication>>),
    /// The connection's state changed.
    State(RTCPeerConnectionState),
    /// A video the client receives is paused for want of bandwidth, or resumed.
    VideoPaused {
        /// The track.
        publication: Arc<Publication>,
        /// Whether it is now paused.
        paused: bool,
    },
    /// The client should send these layers (by rid) of its track `track`, and no others.
    Layers {
        /// The client's track id.
        track: String,
        /// The rids to send.
        active: Vec<String>,
    },
}

/// A request from a subscriber's connection to a publisher's, delivered by the worker.
#[derive(Debug)]
pub enum UpstreamRequest {
    /// A keyframe of `layer` of `publication`, on behalf of a subscriber with `round_trip` time.
    Keyframe {
        /// The track.
        publication: Arc<Publication>,
        /// Which of its layers.
        layer: LayerIndex,
        /// Why.
        reason: KeyframeReason,
        /// The subscriber's round-trip time.
        round_trip: Duration,
    },
    /// A subscriber's share of its bandwidth estimate for `publication`.
    Bitrate {
        /// The track.
        publication: Arc<Publication>,
        /// The subscriber's down-track.
        subscriber: SubscriberKey,
        /// Bits per second.
        bitrate: u64,
    },
    /// A subscriber of `publication` is gone.
    ForgetSubscriber {
        /// The track.
        publication: Arc<Publication>,
        /// The subscriber's down-track.
        subscriber: SubscriberKey,
    },
}

/// What a connection's work produced for other connections; the worker delivers it.
#[derive(Debug, Default)]
pub struct Effects {
    /// Forwarded packets, each for a down-track on some subscriber's connection.
    pub rtp: Vec<Outgoing>,
    /// Feedback for publishers.
    pub upstream: Vec<UpstreamRequest>,
}

impl Effects {
    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.rtp.is_empty() && self.upstream.is_empty()
    }
}

/// One participant's media; see the module documentation.
pub struct Connection {
    pub(crate) id: ConnectionId,
    pub(crate) participant: ParticipantId,
    pub(crate) pc: RTCPeerConnection,
    pub(crate) settings: Arc<MediaSettings>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) feedback: mpsc::Receiver<Feedback>,
    /// Whether the participant may publish; when not, its offers' tracks are refused.
    pub(crate) publishing_allowed: bool,
    /// Whether a negotiation with media happened, so that there is something to connect.
    pub(crate) opened: bool,
    /// Whether ICE and DTLS are up, so packets can reach the client.
    pub(crate) connected: bool,
    pub(crate) state: RTCPeerConnectionState,
    /// The connection's latest round-trip time, from ICE consent checks.
    pub(crate) round_trip: Duration,
    next_round_trip: Instant,
    pub(crate) phase: Phase,
    pub(crate) dirty: bool,
    pub(crate) remote_sections: Vec<MediaSection>,
    /// The id the client's offer gives the audio level extension, read before routing.
    pub(crate) audio_level_id: Option<u8>,
    pub(crate) published: HashMap<String, Published>,
    /// The streams whose packets arrive, by SSRC: the publication and layer each feeds.
    pub(crate) receiving: HashMap<Ssrc, Receiving>,
    /// Remote streams already reported open: the core reports them again after every
    /// renegotiation.
    pub(crate) opened_streams: HashSet<(usize, u32)>,
    pub(crate) mutes: HashMap<String, bool>,
    pub(crate) upstream: Upstream,
    pub(crate) wanted: BTreeMap<PublicationKey, Arc<Publication>>,
    pub(crate) subscriptions: BTreeMap<PublicationKey, Subscription>,
    pub(crate) free: Vec<Slot>,
    /// The subscriber's downlink, which its allocation shares out.
    pub(crate) downlink: Downlink,
    /// When the subscriber's allocation next runs; `None` while it receives no video.
    pub(crate) allocation_due: Option<Instant>,
    /// The room's active speaker.
    pub(crate) active_speaker: Option<ParticipantId>,
    /// The latest visible tile the client reported: a new video starts at that size, as tiles
    /// of one grid are alike, rather than at the largest layer and a switch once its own
    /// `view` comes.
    pub(crate) last_tile: Option<crate::media::allocation::View>,
    /// When the publisher's wanted layers are next gathered; `None` without simulcast tracks.
    pub(crate) layer_control_due: Option<Instant>,
    pub(crate) retiring: Vec<Slot>,
    pub(crate) by_ssrc: HashMap<Ssrc, Arc<DownTrack>>,
    /// Notices produced outside a command (a track's first packet, a state change).
    pub(crate) unsolicited: Vec<Notice>,
    /// Padded packets handed to the core in this pass, until they come out of it.
    pub(crate) padding: PaddingWatch,
    /// Counts the connection among the open ones from its first negotiation with media.
    peer_gauge: Option<GaugeGuard>,
    /// Names the participant in what the connection logs.
    pub(crate) span: tracing::Span,
    /// The ICE username fragment of the latest local description: binding requests to it
    /// belong to this connection.
    local_ufrag: Option<String>,
}

impl Connection {
    /// A connection for `participant`, announcing the media addresses of `settings`.
    pub fn new(
        id: ConnectionId,
        participant: ParticipantId,
        settings: Arc<MediaSettings>,
        metrics: Arc<Metrics>,
        now: Instant,
    ) -> Result<Self, MediaError> {
        let (feedback_tx, feedback) = mpsc::channel(FEEDBACK_QUEUE);
        let mut pc = setup::build(&settings, feedback_tx, now)
            .map_err(|error| MediaError::Internal(format!("building the connection: {error}")))?;
        for candidate in settings.local_candidates() {
            pc.add_local_candidate(candidate)
                .map_err(|error| MediaError::Internal(format!("adding a candidate: {error}")))?;
        }
        Ok(Self {
            id,
            pc,
            settings,
            metrics,
            feedback,
            publishing_allowed: true,
            opened: false,
            connected: false,
            state: RTCPeerConnectionState::New,
            round_trip: DEFAULT_ROUND_TRIP,
            next_round_trip: now + ROUND_TRIP_INTERVAL,
            phase: Phase::Idle,
            dirty: false,
            remote_sections: Vec::new(),
            audio_level_id: None,
            published: HashMap::new(),
            receiving: HashMap::new(),
            opened_streams: HashSet::new(),
            mutes: HashMap::new(),
            upstream: Upstream::default(),
            wanted: BTreeMap::new(),
            subscriptions: BTreeMap::new(),
            free: Vec::new(),
            downlink: Downlink::default(),
            allocation_due: None,
            active_speaker: None,
            last_tile: None,
            layer_control_due: None,
            retiring: Vec::new(),
            by_ssrc: HashMap::new(),
            unsolicited: Vec::new(),
            padding: PaddingWatch::default(),
            peer_gauge: None,
            span: tracing::info_span!("media", connection = %id, participant = %participant),
            local_ufrag: None,
            participant,
        })
    }

    /// The ICE username fragment the client's checks name, once a local description gave one.
    pub fn local_ufrag(&self) -> Option<&str> {
        self.local_ufrag.as_deref()
    }

    /// Reads the ufrag of the local description just applied: it changes with an ICE restart.
    pub(crate) fn note_local_description(&mut self, sdp: &str) {
        if let Some(ufrag) = sdp
            .lines()
            .find_map(|line| line.trim_end().strip_prefix("a=ice-ufrag:"))
        {
            self.local_ufrag = Some(ufrag.to_owned());
        }
    }

    /// Notes that a negotiation put media on the connection: from now on it connects.
    pub(crate) fn mark_open(&mut self) {
        self.opened = true;
        if self.peer_gauge.is_none() {
            self.peer_gauge = Some(GaugeGuard::new(&self.metrics, Gauge::Peers));
        }
    }

    /// The connection's id.
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// Whether the participant's offers or the server's put media on it, so that it connects.
    pub fn is_open(&self) -> bool {
        self.opened
    }

    /// Refuses every track the participant offers from now on: its offers are answered with
    /// their sending sections inactive.
    pub fn forbid_publishing(&mut self) {
        self.publishing_allowed = false;
    }

    /// Feeds one datagram that arrived on `transport`. An RTP packet whose header does not
    /// parse is dropped here, where its header is still in the clear (see `media::malformed`);
    /// one with padding is watched, in case the core refuses it (see `rtc::padding`).
    pub fn handle_read(&mut self, now: Instant, transport: TransportContext, datagram: BytesMut) {
        if match_srtp(&datagram) {
            if let Err(fault) = malformed::check_rtp_header(&datagram) {
                let ssrc = datagram
                    .get(8..12)
                    .and_then(|bytes| bytes.try_into().ok())
                    .map(|bytes| Ssrc(u32::from_be_bytes(bytes)));
                let stream = ssrc.and_then(|ssrc| self.receiving_on(ssrc));
                self.drop_malformed(Malformed::Header(fault), stream, now);
                return;
            }
            self.watch_padding(&datagram);
        }
        // The core logs and swallows what it cannot use.
        let _ = self.pc.handle_read(TaggedBytesMut {
            now,
            transport,
            message: datagram,
        });
    }

    /// The next datagram to send, with where it goes.
    pub fn poll_transmit(&mut self) -> Option<TaggedBytesMut> {
        self.pc.poll_write()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let media = [
            self.pc.poll_timeout(),
            self.upstream.deadline(),
            self.keyframe_check_due(),
            self.layers_due(),
            self.connected.then_some(self.next_round_trip),
        ];
        media.into_iter().flatten().min()
    }

    /// Runs whatever is due at `now`: the core's timers (ICE checks, DTLS retransmissions,
    /// RTCP reports, NACKs), deferred keyframe requests and bitrate reports, the allocation of
    /// layers, the watch on slots waiting for a keyframe and the round-trip measurement.
    pub fn handle_timeout(&mut self, now: Instant, effects: &mut Effects) {
        let _ = self.pc.handle_timeout(now);
        let mut due = Vec::new();
        self.upstream.poll(now, &mut due);
        for feedback in due {
            self.write_upstream(feedback, now);
        }
        self.run_layers(now);
        self.check_keyframes(now, effects);
        if self.connected && now >= self.next_round_trip {
            self.next_round_trip = now + ROUND_TRIP_INTERVAL;
            self.measure_round_trip(now);
        }
    }

    /// Takes in what the core reports after reads and timers: state changes, tracks that
    /// start, media to forward (and, by what did not come, the padded packets it refused) and
    /// subscriber feedback.
    pub fn process(&mut self, now: Instant, effects: &mut Effects) {
        while let Some(event) = self.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                    self.on_state(state, now, effects);
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    self.on_track_open(init, now);
                }
                _ => {}
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            if let RTCMessage::RtpPacket(_, packet) = message {
                if let Some(padded) = PaddedPacket::of(&packet.header) {
                    self.padding.came_out(padded);
                }
                self.on_rtp(packet, now, effects);
            }
        }
        self.count_refused_padding(now);
        while let Ok(feedback) = self.feedback.try_recv() {
            self.on_feedback(feedback, effects);
        }
    }

    fn on_state(&mut self, state: RTCPeerConnectionState, now: Instant, effects: &mut Effects) {
        let span = self.span.clone();
        let _entered = span.enter();
        debug!(%state, "connection state");
        self.state = state;
        let connected = state == RTCPeerConnectionState::Connected;
        if connected && !self.connected {
            self.connected = true;
            self.next_round_trip = now;
            self.start_accepted_subscriptions(now, effects);
        }
        self.connected = connected;
        self.unsolicited.push(Notice::State(state));
    }

    fn on_rtp(&mut self, packet: rtp::Packet, now: Instant, effects: &mut Effects) {
        let Some(stream) = self.receiving.get(&Ssrc(packet.header.ssrc)) else {
            return;
        };
        let size = packet.payload.len() as u64;
        if let Some(meter) = stream.publication.audio_level() {
            meter.observe(&packet.header, self.audio_level_id);
        }
        match stream
            .publication
            .route(packet, stream.layer, now, &mut effects.rtp)
        {
            Ok(true) => {
                self.upstream
                    .keyframe_seen(stream.publication.key(), stream.layer, now);
            }
            Ok(false) => {}
            Err(malformed) => {
                let stream = stream.clone();
                self.drop_malformed(malformed, Some(stream), now);
            }
        }
        self.metrics
            .packets_in
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.metrics
            .bytes_in
            .fetch_add(size, std::sync::atomic::Ordering::Relaxed);
    }

    /// Writes one forwarded packet into the slot `transceiver`; `false` when the core refused it.
    pub fn write_rtp(
        &mut self,
        transceiver: TransceiverIndex,
        packet: rtp::Packet,
        now: Instant,
    ) -> bool {
        self.pc
            .rtp_sender(RTCRtpSenderId::from(transceiver.0))
            .is_some_and(|mut sender| sender.write_rtp(now, packet).is_ok())
    }

    /// Handles a subscriber's request about one of this connection's publications.
    pub fn on_upstream_request(&mut self, request: UpstreamRequest, now: Instant) {
        let feedback = match request {
            UpstreamRequest::Keyframe {
                publication,
                layer,
                reason,
                round_trip,
            } => {
                self.metrics
                    .keyframe_requests_handled
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.upstream
                    .request_keyframe(publication.key(), layer, reason, round_trip, now)
            }
            UpstreamRequest::Bitrate {
                publication,
                subscriber,
                bitrate,
            } => {
                // Each subscriber of a simulcast track takes the layer that fits it, so none of
                // them caps what the publisher sends.
                let bitrate = if publication.layers().is_simulcast() {
                    crate::media::bitrate::SIMULCAST_CEILING
                } else {
                    bitrate
                };
                self.upstream
                    .record_bitrate(publication.key(), subscriber, bitrate, now)
            }
            UpstreamRequest::ForgetSubscriber {
                publication,
                subscriber,
            } => {
                self.upstream
                    .forget_subscriber(publication.key(), subscriber);
                None
            }
        };
        if let Some(feedback) = feedback {
            self.write_upstream(feedback, now);
        }
    }

    /// Reads the round-trip time of the connection's nominated candidate pair.
    fn measure_round_trip(&mut self, now: Instant) {
        let report = self.pc.get_stats(now, rtc::statistics::StatsSelector::None);
        let measured = report
            .candidate_pairs()
            .filter(|pair| pair.nominated && pair.current_round_trip_time > 0.0)
            .map(|pair| pair.current_round_trip_time)
            .fold(None, |best: Option<f64>, rtt| {
                Some(best.map_or(rtt, |best| best.min(rtt)))
            });
        if let Some(seconds) = measured.filter(|seconds| seconds.is_finite()) {
            self.round_trip = Duration::from_secs_f64(seconds.min(10.0));
        }
    }

    /// Takes the notices produced since the last call outside any command.
    pub fn take_unsolicited(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.unsolicited)
    }

    /// Ends every subscription and publication and closes the connection; what it still has to
    /// send (the DTLS close) comes out of [`poll_transmit`](Self::poll_transmit).
    pub fn close(&mut self, effects: &mut Effects) {
        for subscription in std::mem::take(&mut self.subscriptions).into_values() {
            self.end_subscription(subscription, effects);
        }
        for published in self.published.values() {
            published.publication.stop();
        }
        let _ = self.pc.close();
    }
}

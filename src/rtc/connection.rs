//! A participant's media: its one peer connection, what it publishes on it, what it receives on
//! it, and the negotiation that keeps the two in step with the room.
//!
//! # Negotiation
//!
//! The client's first offer carries what it publishes. From then on the server offers whenever
//! the set of tracks the participant should receive changes, one negotiation at a time: changes
//! that arrive while an offer is outstanding mark the connection dirty and go into the next one.
//! The client is the polite peer. An offer from the client that crosses one of the server's is
//! ignored; the client rolls its own back when the server's arrives and offers again later.
//!
//! # Slots
//!
//! Each received track travels in a [`DownTrack`] slot, a send-only transceiver with its own
//! SSRC. When a track ends its slot goes inactive, and once the subscriber has answered that,
//! the slot is free for the next track of the same kind. The SDP therefore grows only to the
//! largest number of tracks the participant ever received at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::RTCRtpTransceiverDirection;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tracing::{debug, warn};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    RTCIceCandidateInit, RTCPeerConnectionState, RTCSessionDescription, StatsSelector,
};
use webrtc::rtp_transceiver::RtpTransceiver;

use crate::media::bitrate::BitrateAggregator;
use crate::media::downtrack::DownTrack;
use crate::media::keyframe::{DEFAULT_ROUND_TRIP, KeyframeReason};
use crate::media::publication::{Publication, SharedBitrate, TrackInfo};
use crate::media::rewriter::SourceKey;
use crate::media::send_time::ABS_SEND_TIME_URI;
use crate::metrics::{Gauge, GaugeGuard, Metrics};
use crate::room::Room;
use crate::rtc::engine::{self, MediaSettings};
use crate::rtc::feedback::Feedback;
use crate::rtc::peer::{Peer, PeerChannels, PeerEvent};
use crate::rtc::sdp::{MediaSection, media_sections, refuse_sending};
use crate::signal::outbox::{Outbox, Unreachable};
use crate::signal::protocol::{ErrorCode, IceCandidate, ServerMessage, TrackKind};

/// How long the client has to answer a server offer before the session is given up.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// The answer to an offer without media sections: a session with nothing in it.
const EMPTY_SESSION: &str = "v=0\r\no=- 0 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";

/// How long one call into the connection may take before it counts as failed.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// The most tracks one participant may publish at once: a camera, a microphone and a screen
/// with its sound are four.
pub const MAX_PUBLISHED_TRACKS: usize = 8;

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
    /// The client stopped reading its messages.
    #[error(transparent)]
    Unreachable(#[from] Unreachable),
}

/// Runs one call into the connection with a time limit, labelling failures.
async fn call<T>(
    what: &str,
    future: impl Future<Output = webrtc::error::Result<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(OPERATION_TIMEOUT, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("{what}: {error}")),
        Err(_) => Err(format!("{what}: timed out")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the client's first offer.
    Idle,
    /// Nothing outstanding.
    Stable,
    /// The server's offer awaits the client's answer.
    AwaitingAnswer { since: Instant },
}

/// A track the participant publishes.
struct Published {
    publication: Arc<Publication>,
    mid: Option<String>,
}

/// A send-only transceiver on the participant's connection and the down-track that writes
/// into it.
#[derive(Clone)]
struct Slot {
    down: Arc<DownTrack>,
    transceiver: Arc<dyn RtpTransceiver>,
}

/// A track the participant receives.
struct Subscription {
    publication: Arc<Publication>,
    slot: Slot,
    mid: String,
    /// Set once the client has answered the offer that added it and packets flow.
    active: Option<GaugeGuard>,
    /// While a started video subscription waits for the keyframe it starts on.
    awaiting_keyframe: Option<KeyframeWait>,
}

/// A video subscription that has asked for its first keyframe and not forwarded a packet yet.
struct KeyframeWait {
    /// The slot's packet count when it started: more means the keyframe came.
    sent_before: u64,
    /// When the keyframe was last asked for.
    asked_at: Instant,
}

/// Something the participant's connection reports.
#[derive(Debug)]
pub enum MediaEvent {
    /// A connection event.
    Peer(PeerEvent),
    /// RTCP feedback from the client about tracks it receives.
    Feedback(Feedback),
    /// Time to refresh the connection's round-trip time.
    MeasureRoundTrip,
    /// Time to see whether started video subscriptions got their first keyframe.
    CheckKeyframes,
}

/// How often the connection's round-trip time is read from its ICE statistics.
const ROUND_TRIP_INTERVAL: Duration = Duration::from_secs(5);

/// How long a started video subscription waits for its first keyframe before asking again.
/// A browser asks for a keyframe only once packets arrive, so a subscription whose first
/// keyframe was lost, or never sent, would otherwise wait for the publisher's next periodic
/// one, which can be minutes away.
const KEYFRAME_RETRY: Duration = Duration::from_millis(500);

/// One participant's media; see the module documentation.
pub struct MediaConnection {
    participant: String,
    settings: MediaSettings,
    metrics: Arc<Metrics>,
    peer: Option<Peer>,
    channels: Option<PeerChannels>,
    /// Whether the participant may publish; when not, its offers' tracks are refused.
    publishing_allowed: bool,
    /// Whether ICE and DTLS are up, so packets can reach the client.
    connected: bool,
    /// The connection's latest round-trip time, from ICE consent checks.
    round_trip: Duration,
    round_trip_timer: tokio::time::Interval,
    keyframe_timer: tokio::time::Interval,
    phase: Phase,
    dirty: bool,
    remote_sections: Vec<MediaSection>,
    published: HashMap<String, Published>,
    mutes: HashMap<String, bool>,
    bitrate: SharedBitrate,
    wanted: BTreeMap<SourceKey, Arc<Publication>>,
    subscriptions: BTreeMap<SourceKey, Subscription>,
    free: Vec<Slot>,
    retiring: Vec<Slot>,
    by_ssrc: HashMap<u32, Arc<DownTrack>>,
}

impl MediaConnection {
    /// Media for `participant`, with no connection until its first offer.
    pub fn new(participant: String, settings: MediaSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            participant,
            settings,
            metrics,
            peer: None,
            channels: None,
            publishing_allowed: true,
            connected: false,
            round_trip: DEFAULT_ROUND_TRIP,
            round_trip_timer: tokio::time::interval(ROUND_TRIP_INTERVAL),
            keyframe_timer: {
                let mut timer = tokio::time::interval(KEYFRAME_RETRY / 2);
                timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                timer
            },
            phase: Phase::Idle,
            dirty: false,
            remote_sections: Vec::new(),
            published: HashMap::new(),
            mutes: HashMap::new(),
            bitrate: Arc::new(Mutex::new(BitrateAggregator::default())),
            wanted: BTreeMap::new(),
            subscriptions: BTreeMap::new(),
            free: Vec::new(),
            retiring: Vec::new(),
            by_ssrc: HashMap::new(),
        }
    }

    /// Whether the peer connection exists: it is opened by the first offer that carries media
    /// either way (the client's, or the server's once there is something to receive).
    pub fn has_connection(&self) -> bool {
        self.peer.is_some()
    }

    /// Refuses every track the participant offers from now on: its offers are answered with
    /// their sending sections inactive, and it is told `publish_not_allowed`.
    pub fn forbid_publishing(&mut self) {
        self.publishing_allowed = false;
    }

    /// When an outstanding offer is overdue, if one is outstanding.
    pub fn answer_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::AwaitingAnswer { since } => Some(since + ANSWER_TIMEOUT),
            _ => None,
        }
    }

    /// Waits for the next event of the connection; never resolves while there is none.
    pub async fn next_event(&mut self) -> MediaEvent {
        let Some(channels) = self.channels.as_mut() else {
            return std::future::pending().await;
        };
        let awaiting_keyframes = self
            .subscriptions
            .values()
            .any(|subscription| subscription.awaiting_keyframe.is_some());
        tokio::select! {
            Some(event) = channels.events.recv() => MediaEvent::Peer(event),
            Some(feedback) = channels.feedback.recv() => MediaEvent::Feedback(feedback),
            _ = self.round_trip_timer.tick(), if self.connected => MediaEvent::MeasureRoundTrip,
            _ = self.keyframe_timer.tick(), if awaiting_keyframes => MediaEvent::CheckKeyframes,
            else => std::future::pending().await,
        }
    }

    /// Asks again for the first keyframe of each started video subscription that has waited
    /// [`KEYFRAME_RETRY`] without one, and stops watching those whose keyframe came.
    pub fn check_keyframes(&mut self) {
        let now = Instant::now();
        for subscription in self.subscriptions.values_mut() {
            let Some(wait) = &mut subscription.awaiting_keyframe else {
                continue;
            };
            if subscription.slot.down.packets_sent() > wait.sent_before {
                subscription.awaiting_keyframe = None;
            } else if now.saturating_duration_since(wait.asked_at) >= KEYFRAME_RETRY
                && subscription.publication.is_reading()
            {
                debug!(
                    publication = subscription.publication.key(),
                    "no keyframe yet for a started subscription: asking again"
                );
                wait.asked_at = now;
                subscription
                    .publication
                    .request_keyframe(KeyframeReason::SubscriptionStart, self.round_trip);
            }
        }
    }

    /// Reads the round-trip time of the connection's active candidate pair.
    pub async fn measure_round_trip(&mut self) {
        let Some(peer) = &self.peer else {
            return;
        };
        let report = peer
            .connection()
            .get_stats(Instant::now(), StatsSelector::None)
            .await;
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

    /// Applies an offer from the client and answers it.
    pub async fn on_offer(
        &mut self,
        sdp: String,
        room: &Room,
        outbox: &Outbox,
    ) -> Result<(), MediaError> {
        if let Phase::AwaitingAnswer { .. } = self.phase {
            // Glare: the server never rolls back. The client, being polite, rolls its offer
            // back when ours reaches it, and offers again once it has answered.
            debug!("ignoring a client offer that crossed the server's");
            return Ok(());
        }
        let (sdp, refused) = if self.publishing_allowed {
            (sdp, Vec::new())
        } else {
            // Answering the offer as if it sent nothing refuses its tracks and keeps the
            // connection, so the participant can still receive.
            refuse_sending(&sdp)
        };
        let sections = media_sections(&sdp);
        let sending = sections.iter().filter(|section| section.sends).count();
        if sending > MAX_PUBLISHED_TRACKS {
            // Each announced track costs every subscriber a slot and a renegotiation.
            return Err(MediaError::InvalidSdp(format!(
                "an offer may send at most {MAX_PUBLISHED_TRACKS} tracks; this one sends {sending}"
            )));
        }
        if sections.is_empty() && self.peer.is_none() {
            // A client with nothing to publish: there is nothing to apply, so the answer is an
            // empty session too, and the server's own offers take it from here.
            if !sdp.trim_start().starts_with("v=0") {
                return Err(MediaError::InvalidSdp(
                    "not a session description".to_owned(),
                ));
            }
            outbox.send(&ServerMessage::Answer {
                sdp: EMPTY_SESSION.to_owned(),
            })?;
            self.phase = Phase::Stable;
            return self.negotiate(outbox).await;
        }
        let offer = RTCSessionDescription::offer(sdp)
            .map_err(|error| MediaError::InvalidSdp(error.to_string()))?;
        let created = self.peer.is_none();
        let connection = self.open().await?;
        if let Err(error) = call(
            "applying the offer",
            connection.set_remote_description(offer),
        )
        .await
        {
            if created {
                // A connection that never got a valid offer is of no use: start over next time.
                self.discard().await;
            }
            return Err(MediaError::InvalidSdp(error));
        }
        let answer = call("creating the answer", connection.create_answer(None))
            .await
            .map_err(MediaError::Internal)?;
        call(
            "applying the answer",
            connection.set_local_description(answer.clone()),
        )
        .await
        .map_err(MediaError::Internal)?;
        let sdp = connection
            .local_description()
            .await
            .map_or(answer.sdp, |description| description.sdp);
        let sdp = self.settings.public.rewrite_sdp(&sdp).into_owned();
        outbox.send(&ServerMessage::Answer { sdp })?;
        if !refused.is_empty() {
            debug!(mids = ?refused, "refused the tracks of a participant that may not publish");
            self.metrics
                .signaling_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            outbox.send(&ServerMessage::error(
                ErrorCode::PublishNotAllowed,
                format!(
                    "this participant may not publish: the offer was answered with its sending media sections (mid {}) inactive",
                    refused.join(", ")
                ),
            ))?;
        }
        self.phase = Phase::Stable;
        self.remote_sections = sections;
        self.end_stopped_publications(room);
        self.publish_offered_tracks(room);
        self.negotiate(outbox).await
    }

    /// The connection, built on first use.
    async fn open(
        &mut self,
    ) -> Result<Arc<dyn webrtc::peer_connection::PeerConnection>, MediaError> {
        if self.peer.is_none() {
            let (peer, channels) = Peer::new(&self.settings, &self.metrics)
                .await
                .map_err(|error| MediaError::Internal(error.to_string()))?;
            self.peer = Some(peer);
            self.channels = Some(channels);
        }
        self.connection().cloned()
    }

    /// Closes and forgets the connection.
    async fn discard(&mut self) {
        self.channels = None;
        if let Some(peer) = self.peer.take() {
            let _ = tokio::time::timeout(OPERATION_TIMEOUT, peer.close()).await;
        }
    }

    /// Applies the client's answer to the server's offer, and starts forwarding the tracks it
    /// accepted.
    pub async fn on_answer(&mut self, sdp: String, outbox: &Outbox) -> Result<(), MediaError> {
        let Phase::AwaitingAnswer { .. } = self.phase else {
            return Err(MediaError::UnexpectedAnswer);
        };
        let answer = RTCSessionDescription::answer(sdp)
            .map_err(|error| MediaError::InvalidSdp(error.to_string()))?;
        let connection = Arc::clone(self.connection()?);
        call(
            "applying the answer",
            connection.set_remote_description(answer),
        )
        .await
        .map_err(MediaError::InvalidSdp)?;
        debug!("applied the client's answer");
        self.phase = Phase::Stable;
        self.free.append(&mut self.retiring);
        for subscription in self.subscriptions.values_mut() {
            if subscription.active.is_some() {
                continue;
            }
            let publication = &subscription.publication;
            let Some(negotiated) = negotiated(&subscription.slot, publication).await else {
                warn!(mid = %subscription.mid, "the answer negotiated no codec for a track");
                continue;
            };
            let down = &subscription.slot.down;
            down.set_payload_type(negotiated.payload_type);
            down.set_abs_send_time_id(negotiated.abs_send_time_id);
            down.switch_to(publication.key());
            publication.attach(Arc::clone(down));
            subscription.active = Some(GaugeGuard::new(&self.metrics, Gauge::Subscriptions));
            if self.connected {
                start_forwarding(subscription, self.round_trip);
            }
        }
        self.negotiate(outbox).await
    }

    /// Tracks whether packets can reach the client. Subscriptions accepted before the
    /// connection came up start forwarding when it does, each asking for a keyframe.
    pub fn on_connection_state(&mut self, state: RTCPeerConnectionState) {
        let connected = state == RTCPeerConnectionState::Connected;
        if connected && !self.connected {
            for subscription in self.subscriptions.values_mut() {
                if subscription.active.is_some() {
                    start_forwarding(subscription, self.round_trip);
                }
            }
        }
        self.connected = connected;
    }

    /// Adds a trickled candidate from the client.
    pub async fn on_candidate(&mut self, candidate: IceCandidate) -> Result<(), MediaError> {
        let Some(peer) = &self.peer else {
            return Err(MediaError::InvalidCandidate(
                "there is no connection yet: send an offer first".to_owned(),
            ));
        };
        if candidate.candidate.is_empty() {
            // End of candidates: nothing to add.
            return Ok(());
        }
        if let Some(mid) = candidate.sdp_mid.as_deref().filter(|mid| !mid.is_empty())
            && !self
                .remote_sections
                .iter()
                .any(|section| section.mid == mid)
        {
            return Err(MediaError::InvalidCandidate(format!(
                "no media section with mid `{mid}`"
            )));
        }
        if let Some(index) = candidate.sdp_m_line_index
            && candidate.sdp_mid.is_none()
            && usize::from(index) >= self.remote_sections.len().max(1)
        {
            return Err(MediaError::InvalidCandidate(format!(
                "no media section with index {index}"
            )));
        }
        let init = RTCIceCandidateInit {
            candidate: candidate.candidate,
            sdp_mid: candidate.sdp_mid,
            sdp_mline_index: candidate.sdp_m_line_index,
            username_fragment: candidate.username_fragment,
            url: None,
        };
        call(
            "adding the candidate",
            peer.connection().add_ice_candidate(init),
        )
        .await
        .map_err(MediaError::InvalidCandidate)
    }

    /// Records a mute change from the client and tells the room.
    pub fn on_mute(&mut self, room: &Room, track: String, muted: bool) -> Result<(), MediaError> {
        if let Some(published) = self.published.get(&track) {
            room.set_muted(&published.publication, muted);
        } else if !self
            .remote_sections
            .iter()
            .any(|section| section.track.as_deref() == Some(track.as_str()))
        {
            return Err(MediaError::UnknownTrack(track));
        }
        self.mutes.insert(track, muted);
        Ok(())
    }

    /// Starts reading a track the client started sending: the publication its offer announced,
    /// or, for a track the offer did not name, a new one.
    pub async fn on_track(&mut self, room: &Room, remote: Arc<dyn TrackRemote>) {
        if !self.publishing_allowed {
            // Its offers were answered inactive, so no track should come; if one does anyway,
            // it reaches nobody.
            warn!("ignoring a track from a participant that may not publish");
            return;
        }
        let kind = match remote.kind().await {
            RtpCodecKind::Audio => TrackKind::Audio,
            RtpCodecKind::Video => TrackKind::Video,
            _ => return,
        };
        let ssrcs = remote.ssrcs().await;
        let media_ssrc = ssrcs.first().copied().unwrap_or_default();
        let track = remote.track_id().await;
        let mid = self.mid_of_remote_track(&track).await;
        // The publication the offer announced: the same track id, or else the same section.
        let announced = self.published.values().find(|published| {
            let info = published.publication.info();
            info.kind == kind && (info.track == track || (mid.is_some() && published.mid == mid))
        });
        if let Some(published) = announced
            && published.publication.begin(Arc::clone(&remote), media_ssrc)
        {
            debug!(
                publication = published.publication.key(),
                kind = kind.as_str(),
                "the first packets of a track"
            );
            return;
        }
        let codec = remote
            .codec(media_ssrc)
            .await
            .unwrap_or_else(|| engine::codec(kind));
        let stream = remote.stream_id().await;
        let info = TrackInfo {
            participant: self.participant.clone(),
            track: track.clone(),
            stream,
            kind,
            clock_rate: codec.clock_rate,
            mime_type: codec.mime_type,
        };
        let publication = self.new_publication(info);
        publication.begin(remote, media_ssrc);
        self.publish(room, vec![(publication, mid)]);
    }

    /// Announces the tracks the client's latest offer sends and the server does not know yet,
    /// before their first packets: subscribers negotiate for them meanwhile.
    fn publish_offered_tracks(&mut self, room: &Room) {
        let offered: Vec<(TrackInfo, String)> = self
            .remote_sections
            .iter()
            .filter(|section| section.sends)
            .filter_map(|section| {
                let kind = section.kind?;
                let track = section.track.clone()?;
                if self.published.contains_key(&track) {
                    return None;
                }
                let codec = engine::codec(kind);
                let info = TrackInfo {
                    participant: self.participant.clone(),
                    track,
                    stream: section.stream.clone().unwrap_or_default(),
                    kind,
                    clock_rate: codec.clock_rate,
                    mime_type: codec.mime_type,
                };
                Some((info, section.mid.clone()))
            })
            .collect();
        let publications = offered
            .into_iter()
            .map(|(info, mid)| (self.new_publication(info), Some(mid)))
            .collect();
        self.publish(room, publications);
    }

    fn new_publication(&self, info: TrackInfo) -> Arc<Publication> {
        let muted = self.mutes.get(&info.track).copied().unwrap_or(false);
        Publication::new(
            info,
            muted,
            Arc::clone(&self.bitrate),
            Arc::clone(&self.metrics),
        )
    }

    /// Makes `publications` (each with the media section it arrives on, if known) this
    /// participant's and announces them to the room together, ending the ones they replace.
    fn publish(&mut self, room: &Room, publications: Vec<(Arc<Publication>, Option<String>)>) {
        if publications.is_empty() {
            return;
        }
        let mut replaced = Vec::new();
        let mut announced = Vec::with_capacity(publications.len());
        for (publication, mid) in publications {
            let info = publication.info();
            debug!(
                publication = publication.key(),
                kind = info.kind.as_str(),
                "publishing a track"
            );
            let published = Published {
                publication: Arc::clone(&publication),
                mid,
            };
            if let Some(previous) = self.published.insert(info.track.clone(), published) {
                replaced.push(previous.publication);
            }
            announced.push(publication);
        }
        room.unpublish(replaced);
        room.publish(announced);
    }

    /// The participant should receive `publication`.
    pub fn want(&mut self, publication: Arc<Publication>) {
        self.wanted.insert(publication.key(), publication);
        self.dirty = true;
    }

    /// The participant should no longer receive `publication`.
    pub fn unwant(&mut self, publication: &Publication) {
        if self.wanted.remove(&publication.key()).is_some() {
            self.dirty = true;
        }
    }

    /// Acts on RTCP feedback the client sent about the tracks it receives.
    pub fn on_feedback(&self, feedback: Feedback) {
        match feedback {
            Feedback::KeyframeRequest { media_ssrc } => {
                if let Some(publication) = self.active_publication(media_ssrc) {
                    self.metrics
                        .keyframe_requests_received
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    publication
                        .request_keyframe(KeyframeReason::SubscriberRequest, self.round_trip);
                }
            }
            Feedback::BitrateEstimate { bitrate, ssrcs } => {
                self.metrics
                    .rembs_received
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let video: Vec<(&Arc<DownTrack>, &Arc<Publication>)> = ssrcs
                    .iter()
                    .filter_map(|ssrc| {
                        let down = self.by_ssrc.get(ssrc)?;
                        let publication = self.active_publication(*ssrc)?;
                        (down.kind() == TrackKind::Video).then_some((down, publication))
                    })
                    .collect();
                if video.is_empty() {
                    return;
                }
                // The estimate covers the whole downlink: each video track gets an equal share.
                let share = bitrate / video.len() as u64;
                for (down, publication) in video {
                    publication.report_bitrate(down.id(), share);
                }
            }
            Feedback::Nack => {
                self.metrics
                    .nacks_received
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Ends every subscription and closes the connection. The participant's own publications
    /// are ended by the room when it leaves.
    pub async fn close(mut self) {
        for subscription in std::mem::take(&mut self.subscriptions).into_values() {
            subscription.publication.detach(&subscription.slot.down);
            subscription.slot.down.detach();
        }
        for published in self.published.values() {
            published.publication.stop();
        }
        self.discard().await;
    }

    /// Starts the next negotiation if anything changed and none is outstanding. A participant
    /// that has published nothing gets its connection here, with the server's first offer.
    pub async fn negotiate(&mut self, outbox: &Outbox) -> Result<(), MediaError> {
        if self.phase != Phase::Stable || !self.dirty {
            return Ok(());
        }
        self.dirty = false;
        if self.peer.is_none() && self.wanted.is_empty() {
            return Ok(());
        }
        let connection = self.open().await?;
        let mut changed = false;

        let ended: Vec<SourceKey> = self
            .subscriptions
            .keys()
            .filter(|key| !self.wanted.contains_key(key))
            .copied()
            .collect();
        for key in ended {
            let Some(subscription) = self.subscriptions.remove(&key) else {
                continue;
            };
            let slot = subscription.slot;
            subscription.publication.detach(&slot.down);
            slot.down.detach();
            slot.down.set_ready(false);
            call(
                "deactivating a transceiver",
                slot.transceiver
                    .set_direction(RTCRtpTransceiverDirection::Inactive),
            )
            .await
            .map_err(MediaError::Internal)?;
            let info = subscription.publication.info();
            outbox.send(&ServerMessage::TrackUnpublished {
                participant: info.participant.clone(),
                track: info.track.clone(),
                mid: subscription.mid.clone(),
            })?;
            self.retiring.push(slot);
            changed = true;
        }

        let added: Vec<Arc<Publication>> = self
            .wanted
            .iter()
            .filter(|(key, _)| !self.subscriptions.contains_key(key))
            .map(|(_, publication)| Arc::clone(publication))
            .collect();
        let mut announced = Vec::new();
        for publication in added {
            let slot = self.slot_for(&publication).await?;
            self.subscriptions.insert(
                publication.key(),
                Subscription {
                    publication: Arc::clone(&publication),
                    slot,
                    mid: String::new(),
                    active: None,
                    awaiting_keyframe: None,
                },
            );
            announced.push(publication.key());
            changed = true;
        }
        if !changed {
            return Ok(());
        }

        let offer = call("creating an offer", connection.create_offer(None))
            .await
            .map_err(MediaError::Internal)?;
        call(
            "applying the offer",
            connection.set_local_description(offer.clone()),
        )
        .await
        .map_err(MediaError::Internal)?;
        for key in announced {
            let Some(subscription) = self.subscriptions.get_mut(&key) else {
                continue;
            };
            subscription.mid = subscription
                .slot
                .transceiver
                .mid()
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            let publication = &subscription.publication;
            let info = publication.info();
            outbox.send(&ServerMessage::TrackPublished {
                participant: info.participant.clone(),
                track: info.track.clone(),
                kind: info.kind,
                stream: info.stream.clone(),
                mid: subscription.mid.clone(),
                muted: publication.muted(),
            })?;
        }
        let sdp = connection
            .local_description()
            .await
            .map_or(offer.sdp, |description| description.sdp);
        let sdp = self.settings.public.rewrite_sdp(&sdp).into_owned();
        outbox.send(&ServerMessage::Offer { sdp })?;
        debug!(
            subscriptions = self.subscriptions.len(),
            "offered the client a renegotiation"
        );
        self.phase = Phase::AwaitingAnswer {
            since: Instant::now(),
        };
        Ok(())
    }

    /// A free slot of the right kind re-dressed for `publication`, or a new one.
    async fn slot_for(&mut self, publication: &Publication) -> Result<Slot, MediaError> {
        let info = publication.info();
        let connection = Arc::clone(self.connection()?);
        if let Some(index) = self
            .free
            .iter()
            .position(|slot| slot.down.kind() == info.kind)
        {
            let slot = self.free.swap_remove(index);
            // The core only hands out the sender of a transceiver that sends, so the slot is
            // reactivated before its track is replaced.
            call(
                "reactivating a transceiver",
                slot.transceiver
                    .set_direction(RTCRtpTransceiverDirection::Sendonly),
            )
            .await
            .map_err(MediaError::Internal)?;
            let sender = call("reading a sender", slot.transceiver.sender())
                .await
                .map_err(MediaError::Internal)?
                .ok_or_else(|| MediaError::Internal("a slot lost its sender".to_owned()))?;
            // Same SSRC, new stream and track ids: the subscriber's browser sees a new track on
            // the reused transceiver, and the interceptors bound to the SSRC carry on.
            let identity = TrackLocalStaticRTP::new(outgoing_track(publication, slot.down.ssrc()));
            call(
                "replacing a track",
                sender.replace_track(Arc::new(identity)),
            )
            .await
            .map_err(MediaError::Internal)?;
            return Ok(slot);
        }
        let ssrc = loop {
            let candidate: u32 = rand::random();
            if candidate != 0 && !self.by_ssrc.contains_key(&candidate) {
                break candidate;
            }
        };
        let pipe = Arc::new(TrackLocalStaticRTP::new(outgoing_track(publication, ssrc)));
        let transceiver = call(
            "adding a transceiver",
            connection.add_transceiver_from_track(
                Arc::clone(&pipe) as Arc<dyn TrackLocal>,
                engine::send_only(),
            ),
        )
        .await
        .map_err(MediaError::Internal)?;
        let down = Arc::new(DownTrack::new(
            info.kind,
            ssrc,
            info.clock_rate,
            pipe,
            Arc::clone(&self.metrics),
        ));
        self.by_ssrc.insert(ssrc, Arc::clone(&down));
        Ok(Slot { down, transceiver })
    }

    /// Ends the publications whose media sections the client's latest offer stopped sending.
    fn end_stopped_publications(&mut self, room: &Room) {
        let stopped: Vec<String> = self
            .published
            .iter()
            .filter(|(_, published)| {
                published.mid.as_ref().is_some_and(|mid| {
                    !self
                        .remote_sections
                        .iter()
                        .any(|section| &section.mid == mid && section.sends)
                })
            })
            .map(|(track, _)| track.clone())
            .collect();
        let ended: Vec<Arc<Publication>> = stopped
            .into_iter()
            .filter_map(|track| {
                let published = self.published.remove(&track)?;
                debug!(%track, "the client stopped publishing a track");
                Some(published.publication)
            })
            .collect();
        room.unpublish(ended);
    }

    /// The publication currently forwarded to the down-track with `ssrc`.
    fn active_publication(&self, ssrc: u32) -> Option<&Arc<Publication>> {
        let down = self.by_ssrc.get(&ssrc)?;
        let subscription = self.subscriptions.get(&down.source()?)?;
        subscription
            .active
            .is_some()
            .then_some(&subscription.publication)
    }

    async fn mid_of_remote_track(&self, track: &str) -> Option<String> {
        crate::rtc::peer::mid_of_remote_track(self.peer.as_ref()?.connection(), track).await
    }

    fn connection(&self) -> Result<&Arc<dyn webrtc::peer_connection::PeerConnection>, MediaError> {
        self.peer
            .as_ref()
            .map(Peer::connection)
            .ok_or_else(|| MediaError::Internal("no connection".to_owned()))
    }
}

/// Lets an accepted subscription's packets through and asks its publisher for a keyframe, so
/// the subscriber can start decoding at once instead of at the next periodic keyframe.
/// Video subscriptions are then watched until their first keyframe has passed (see
/// [`MediaConnection::check_keyframes`]).
fn start_forwarding(subscription: &mut Subscription, round_trip: Duration) {
    debug!(
        publication = subscription.publication.key(),
        ssrc = subscription.slot.down.ssrc(),
        "a subscription starts forwarding"
    );
    let down = &subscription.slot.down;
    down.set_ready(true);
    if subscription.publication.info().kind == TrackKind::Video {
        subscription.awaiting_keyframe = Some(KeyframeWait {
            sent_before: down.packets_sent(),
            asked_at: Instant::now(),
        });
        subscription
            .publication
            .request_keyframe(KeyframeReason::SubscriptionStart, round_trip);
    }
}

/// The identity a slot takes on while it carries `publication`: the publisher's participant id
/// as the stream, a fresh track id, and the slot's own SSRC.
fn outgoing_track(publication: &Publication, ssrc: u32) -> MediaStreamTrack {
    let info = publication.info();
    engine::single_stream_track(
        info.participant.clone(),
        format!("{}-{}-{ssrc:08x}", info.kind.as_str(), publication.key()),
        info.track.clone(),
        info.kind,
        ssrc,
    )
}

/// What the subscriber's SDP negotiated for a slot.
struct Negotiated {
    /// The payload type of the publication's codec.
    payload_type: u8,
    /// The abs-send-time header extension's id, if the subscriber accepted it.
    abs_send_time_id: Option<u8>,
}

/// What the subscriber's SDP negotiated for `publication` on this slot; `None` when it accepted
/// no codec for it.
async fn negotiated(slot: &Slot, publication: &Publication) -> Option<Negotiated> {
    let sender = slot.transceiver.sender().await.ok()??;
    let parameters = sender.get_parameters().await.ok()?;
    let mime_type = &publication.info().mime_type;
    let payload_type = parameters
        .rtp_parameters
        .codecs
        .iter()
        .find(|codec| codec.rtp_codec.mime_type.eq_ignore_ascii_case(mime_type))
        .map(|codec| codec.payload_type)?;
    let abs_send_time_id = parameters
        .rtp_parameters
        .header_extensions
        .iter()
        .find(|extension| extension.uri == ABS_SEND_TIME_URI)
        .and_then(|extension| u8::try_from(extension.id).ok())
        // One-byte header ids are 1 to 14; the server never negotiates two-byte headers.
        .filter(|id| (1..=14).contains(id));
    Some(Negotiated {
        payload_type,
        abs_send_time_id,
    })
}

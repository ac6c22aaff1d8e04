//! The tracks a participant receives, and the slots they travel in.
//!
//! Each received track travels in a [`DownTrack`] slot, a send-only transceiver with its own
//! SSRC. When a track ends its slot goes inactive, and once the subscriber has answered that,
//! the slot is free for the next track of the same kind: the transceiver is set `sendonly`
//! again and its sender's track replaced by one with the same SSRC (the core binds its
//! interceptors to the SSRC once) and new stream and track ids. The SDP therefore grows only
//! to the largest number of tracks the participant ever received at once.
//!
//! Subscriber feedback arrives here too: a keyframe request or a bandwidth estimate about one
//! of the slots becomes a request to the publication's own connection. Which layer each video
//! slot forwards is the allocation's (`rtc::allocating`); a slot waiting for its target
//! layer's keyframe is watched here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection};
use tracing::{debug, warn};

use crate::ids::{LayerIndex, Mid, PublicationKey, Ssrc, SubscriberKey, TransceiverIndex};
use crate::media::allocation::View;
use crate::media::downtrack::DownTrack;
use crate::media::keyframe::KeyframeReason;
use crate::media::publication::Publication;
use crate::media::send_time::ABS_SEND_TIME_URI;
use crate::metrics::{Gauge, GaugeGuard};
use crate::rtc::connection::{Connection, Effects, MediaError, Notice, UpstreamRequest};
use crate::rtc::feedback::Feedback;
use crate::rtc::setup;
use crate::signal::protocol::TrackKind;

/// How long a video slot waits for its target layer's keyframe (its first, or the one a layer
/// switch or a resume waits for) before asking again. A browser asks for a keyframe only once
/// packets arrive, so a slot whose keyframe was lost, or never sent, would otherwise wait for
/// the publisher's next periodic one, which can be minutes away.
const KEYFRAME_RETRY: Duration = Duration::from_millis(500);

/// A send-only transceiver on the participant's connection and the down-track that writes
/// into it.
#[derive(Clone)]
pub struct Slot {
    down: Arc<DownTrack>,
    transceiver: TransceiverIndex,
}

/// A track the participant receives.
pub struct Subscription {
    pub(crate) publication: Arc<Publication>,
    slot: Slot,
    mid: Mid,
    /// Set once the client has answered the offer that added it and packets flow.
    pub(crate) active: Option<GaugeGuard>,
    /// How the client shows it.
    pub(crate) view: View,
    /// Whether the client was told it is paused for want of bandwidth.
    pub(crate) paused: bool,
    /// When the keyframe its target layer waits for was last asked for.
    pub(crate) keyframe_asked: Option<Instant>,
}

impl Subscription {
    /// The slot's down-track.
    pub(crate) fn down(&self) -> &Arc<DownTrack> {
        &self.slot.down
    }
}

impl Connection {
    /// The participant should receive `publication`.
    pub fn want(&mut self, publication: Arc<Publication>) {
        self.wanted.insert(publication.key(), publication);
        self.dirty = true;
    }

    /// The participant should no longer receive `publication`.
    pub fn unwant(&mut self, publication: PublicationKey) {
        if self.wanted.remove(&publication).is_some() {
            self.dirty = true;
        }
    }

    /// Sets the slots of subscriptions that ended inactive, to be freed by the next answer.
    pub(crate) fn retire_unwanted_subscriptions(
        &mut self,
        notices: &mut Vec<Notice>,
        effects: &mut Effects,
    ) -> Result<bool, MediaError> {
        let ended: Vec<PublicationKey> = self
            .subscriptions
            .keys()
            .filter(|key| !self.wanted.contains_key(key))
            .copied()
            .collect();
        for key in &ended {
            let Some(subscription) = self.subscriptions.remove(key) else {
                continue;
            };
            let (publication, mid, slot) = (
                Arc::clone(&subscription.publication),
                subscription.mid.clone(),
                subscription.slot.clone(),
            );
            self.end_subscription(subscription, effects);
            self.pc
                .rtp_transceiver(slot.transceiver.0)
                .ok_or_else(|| MediaError::Internal("a slot lost its transceiver".to_owned()))?
                .set_direction(RTCRtpTransceiverDirection::Inactive);
            notices.push(Notice::TrackUnpublished { publication, mid });
            self.retiring.push(slot);
        }
        Ok(!ended.is_empty())
    }

    /// Gives every wanted publication without a subscription a slot; returns their keys.
    pub(crate) fn add_wanted_subscriptions(&mut self) -> Result<Vec<PublicationKey>, MediaError> {
        let added: Vec<Arc<Publication>> = self
            .wanted
            .iter()
            .filter(|(key, _)| !self.subscriptions.contains_key(key))
            .map(|(_, publication)| Arc::clone(publication))
            .collect();
        let mut keys = Vec::with_capacity(added.len());
        for publication in added {
            let slot = self.slot_for(&publication)?;
            keys.push(publication.key());
            self.subscriptions.insert(
                publication.key(),
                Subscription {
                    publication,
                    slot,
                    mid: Mid::default(),
                    active: None,
                    view: self.last_tile.unwrap_or_default(),
                    paused: false,
                    keyframe_asked: None,
                },
            );
        }
        Ok(keys)
    }

    /// Tells the client which media section each new subscription travels in, once the offer
    /// that adds them gave them one.
    pub(crate) fn announce_subscriptions(
        &mut self,
        added: &[PublicationKey],
        notices: &mut Vec<Notice>,
    ) {
        for key in added {
            let Some(subscription) = self.subscriptions.get_mut(key) else {
                continue;
            };
            subscription.mid = self
                .pc
                .rtp_transceiver(subscription.slot.transceiver.0)
                .and_then(|transceiver| transceiver.mid().clone())
                .map(Mid::from)
                .unwrap_or_default();
            notices.push(Notice::TrackPublished {
                publication: Arc::clone(&subscription.publication),
                mid: subscription.mid.clone(),
            });
        }
    }

    /// After the client's answer: attaches the subscriptions it accepted to their publications
    /// (they forward once the connection is up).
    pub(crate) fn activate_answered_subscriptions(&mut self, now: Instant, effects: &mut Effects) {
        let pending: Vec<PublicationKey> = self
            .subscriptions
            .iter()
            .filter(|(_, subscription)| subscription.active.is_none())
            .map(|(key, _)| *key)
            .collect();
        let mut activated = Vec::new();
        let round_trip = self.round_trip;
        let connected = self.connected;
        for key in pending {
            let Some((payload_type, abs_send_time_id)) = self.negotiated(key) else {
                warn!("the answer negotiated no codec for a track");
                continue;
            };
            let gauge = GaugeGuard::new(&self.metrics, Gauge::Subscriptions);
            let Some(subscription) = self.subscriptions.get_mut(&key) else {
                continue;
            };
            let down = &subscription.slot.down;
            down.set_payload_type(payload_type);
            down.set_abs_send_time_id(abs_send_time_id);
            down.switch_to(subscription.publication.key());
            subscription.publication.attach(Arc::clone(down));
            subscription.active = Some(gauge);
            activated.push(key);
        }
        // Each new video's layer is chosen before its first keyframe is asked for.
        self.allocate(now);
        if connected {
            for key in activated {
                if let Some(subscription) = self.subscriptions.get_mut(&key) {
                    start_forwarding(subscription, round_trip, now, effects);
                }
            }
        }
    }

    /// Once the connection is up, starts the subscriptions accepted before.
    pub(crate) fn start_accepted_subscriptions(&mut self, now: Instant, effects: &mut Effects) {
        let round_trip = self.round_trip;
        for subscription in self.subscriptions.values_mut() {
            if subscription.active.is_some() {
                start_forwarding(subscription, round_trip, now, effects);
            }
        }
    }

    /// When the watch on video slots waiting for a keyframe next looks.
    pub(crate) fn keyframe_check_due(&self) -> Option<Instant> {
        self.subscriptions
            .values()
            .filter(|subscription| awaits_keyframe(subscription).is_some())
            .map(|subscription| {
                subscription
                    .keyframe_asked
                    .map_or(Instant::now(), |asked| asked + KEYFRAME_RETRY)
            })
            .min()
    }

    /// Asks for the keyframe each started video slot waits for (the first of its target layer,
    /// after a start, a switch or a resume) when it has not been asked for in
    /// [`KEYFRAME_RETRY`], and stops watching the slots whose keyframe came.
    pub(crate) fn check_keyframes(&mut self, now: Instant, effects: &mut Effects) {
        let round_trip = self.round_trip;
        for subscription in self.subscriptions.values_mut() {
            let Some(layer) = awaits_keyframe(subscription) else {
                subscription.keyframe_asked = None;
                continue;
            };
            if subscription
                .keyframe_asked
                .is_some_and(|asked| now.saturating_duration_since(asked) < KEYFRAME_RETRY)
            {
                continue;
            }
            subscription.keyframe_asked = Some(now);
            if subscription.publication.is_reading() {
                debug!(
                    publication = %subscription.publication.key(),
                    %layer,
                    "a slot waits for a keyframe: asking"
                );
                effects.upstream.push(UpstreamRequest::Keyframe {
                    publication: Arc::clone(&subscription.publication),
                    layer,
                    reason: keyframe_reason(subscription),
                    round_trip,
                });
            }
        }
    }

    /// Acts on RTCP feedback the client sent about the tracks it receives.
    pub(crate) fn on_feedback(&mut self, feedback: Feedback, effects: &mut Effects) {
        use std::sync::atomic::Ordering::Relaxed;
        match feedback {
            Feedback::KeyframeRequest { media_ssrc } => {
                if let Some(publication) = self.active_publication(media_ssrc) {
                    self.metrics
                        .keyframe_requests_received
                        .fetch_add(1, Relaxed);
                    // The layer the subscriber decodes, or the one it is about to.
                    let layer = self
                        .by_ssrc
                        .get(&media_ssrc)
                        .and_then(|down| down.current().or(down.target()))
                        .unwrap_or(LayerIndex(0));
                    effects.upstream.push(UpstreamRequest::Keyframe {
                        publication: Arc::clone(publication),
                        layer,
                        reason: KeyframeReason::SubscriberRequest,
                        round_trip: self.round_trip,
                    });
                }
            }
            Feedback::BitrateEstimate { bitrate, ssrcs } => {
                self.metrics.rembs_received.fetch_add(1, Relaxed);
                self.downlink.on_estimate(bitrate, Instant::now());
                let video: Vec<(SubscriberKey, Arc<Publication>)> = ssrcs
                    .iter()
                    .filter_map(|ssrc| {
                        let down = self.by_ssrc.get(ssrc)?;
                        let publication = self.active_publication(*ssrc)?;
                        (down.kind() == TrackKind::Video)
                            .then(|| (down.id(), Arc::clone(publication)))
                    })
                    .collect();
                if video.is_empty() {
                    return;
                }
                // The estimate covers the whole downlink: each video track gets an equal share.
                let share = bitrate / video.len() as u64;
                for (subscriber, publication) in video {
                    effects.upstream.push(UpstreamRequest::Bitrate {
                        publication,
                        subscriber,
                        bitrate: share,
                    });
                }
            }
            Feedback::Nack => {
                self.metrics.nacks_received.fetch_add(1, Relaxed);
            }
        }
    }

    /// Detaches a subscription from its publication.
    pub(crate) fn end_subscription(&mut self, subscription: Subscription, effects: &mut Effects) {
        let down = &subscription.slot.down;
        subscription.publication.detach(down);
        down.detach();
        down.set_ready(false);
        effects.upstream.push(UpstreamRequest::ForgetSubscriber {
            publication: subscription.publication,
            subscriber: down.id(),
        });
    }

    /// A free slot of the right kind re-dressed for `publication`, or a new one.
    fn slot_for(&mut self, publication: &Publication) -> Result<Slot, MediaError> {
        let info = publication.info();
        if let Some(index) = self
            .free
            .iter()
            .position(|slot| slot.down.kind() == info.kind)
        {
            let slot = self.free.swap_remove(index);
            // The core only hands out the sender of a transceiver that sends, so the slot is
            // reactivated before its track is replaced.
            self.pc
                .rtp_transceiver(slot.transceiver.0)
                .ok_or_else(|| MediaError::Internal("a slot lost its transceiver".to_owned()))?
                .set_direction(RTCRtpTransceiverDirection::Sendonly);
            // Same SSRC, new stream and track ids: the subscriber's browser sees a new track on
            // the reused transceiver, and the interceptors bound to the SSRC carry on.
            self.pc
                .rtp_sender(RTCRtpSenderId::from(slot.transceiver.0))
                .ok_or_else(|| MediaError::Internal("a slot lost its sender".to_owned()))?
                .replace_track(outgoing_track(publication, slot.down.ssrc()))
                .map_err(|error| MediaError::Internal(format!("replacing a track: {error}")))?;
            return Ok(slot);
        }
        let ssrc = loop {
            let candidate = Ssrc(rand::random());
            if candidate.0 != 0 && !self.by_ssrc.contains_key(&candidate) {
                break candidate;
            }
        };
        let transceiver = self
            .pc
            .add_transceiver_from_track(outgoing_track(publication, ssrc), setup::send_only())
            .map_err(|error| MediaError::Internal(format!("adding a transceiver: {error}")))?;
        let down = Arc::new(DownTrack::new(
            info.kind,
            ssrc,
            info.clock_rate,
            self.id,
            TransceiverIndex(transceiver),
        ));
        self.by_ssrc.insert(ssrc, Arc::clone(&down));
        Ok(Slot {
            down,
            transceiver: TransceiverIndex(transceiver),
        })
    }

    /// What the subscriber's answer negotiated for the subscription `key`'s slot: the payload
    /// type of its publication's codec, and the abs-send-time id if it accepted one. `None` when
    /// it accepted no codec for it.
    fn negotiated(&mut self, key: PublicationKey) -> Option<(u8, Option<u8>)> {
        let subscription = self.subscriptions.get(&key)?;
        let mime_type = subscription.publication.info().mime_type.clone();
        let transceiver = subscription.slot.transceiver;
        let mut sender = self.pc.rtp_sender(RTCRtpSenderId::from(transceiver.0))?;
        let parameters = &sender.get_parameters().rtp_parameters;
        let payload_type = parameters
            .codecs
            .iter()
            .find(|codec| codec.rtp_codec.mime_type.eq_ignore_ascii_case(&mime_type))
            .map(|codec| codec.payload_type)?;
        let abs_send_time_id = parameters
            .header_extensions
            .iter()
            .find(|extension| extension.uri == ABS_SEND_TIME_URI)
            .and_then(|extension| u8::try_from(extension.id).ok())
            // One-byte header ids are 1 to 14; the server never negotiates two-byte headers.
            .filter(|id| (1..=14).contains(id));
        Some((payload_type, abs_send_time_id))
    }

    /// The publication currently forwarded to the down-track with `ssrc`.
    fn active_publication(&self, ssrc: Ssrc) -> Option<&Arc<Publication>> {
        let down = self.by_ssrc.get(&ssrc)?;
        let subscription = self.subscriptions.get(&down.source()?)?;
        subscription
            .active
            .is_some()
            .then_some(&subscription.publication)
    }
}

/// Lets an accepted subscription's packets through and asks its publisher for a keyframe, so
/// the subscriber can start decoding at once instead of at the next periodic keyframe. Video
/// subscriptions are then watched until their first keyframe has passed.
fn start_forwarding(
    subscription: &mut Subscription,
    round_trip: Duration,
    now: Instant,
    effects: &mut Effects,
) {
    debug!(
        publication = %subscription.publication.key(),
        ssrc = %subscription.slot.down.ssrc(),
        "a subscription starts forwarding"
    );
    let down = &subscription.slot.down;
    down.set_ready(true);
    if let Some(layer) = awaits_keyframe(subscription) {
        subscription.keyframe_asked = Some(now);
        effects.upstream.push(UpstreamRequest::Keyframe {
            publication: Arc::clone(&subscription.publication),
            layer,
            reason: KeyframeReason::SubscriptionStart,
            round_trip,
        });
    }
}

/// The layer a started video slot waits for a keyframe of, if it waits: its target, while it
/// forwards another layer or none.
fn awaits_keyframe(subscription: &Subscription) -> Option<LayerIndex> {
    let down = &subscription.slot.down;
    if subscription.publication.info().kind != TrackKind::Video
        || subscription.active.is_none()
        || !down.is_ready()
    {
        return None;
    }
    let target = down.target()?;
    (down.current() != Some(target)).then_some(target)
}

/// Why a slot waits: its first picture, or a change of layer (or a resume).
fn keyframe_reason(subscription: &Subscription) -> KeyframeReason {
    if subscription.slot.down.packets_sent() == 0 {
        KeyframeReason::SubscriptionStart
    } else {
        KeyframeReason::LayerSwitch
    }
}

/// The identity a slot takes on while it carries `publication`: the publisher's participant id
/// as the stream, a fresh track id, and the slot's own SSRC.
fn outgoing_track(publication: &Publication, ssrc: Ssrc) -> MediaStreamTrack {
    let info = publication.info();
    setup::single_stream_track(
        info.participant.to_string(),
        format!(
            "{}-{}-{:08x}",
            info.kind.as_str(),
            publication.key(),
            ssrc.0
        ),
        info.track.clone(),
        info.kind,
        ssrc.0,
    )
}

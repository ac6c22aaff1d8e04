//! The layers a participant's connection forwards and asks for.
//!
//! As a subscriber: every [`ALLOCATION_INTERVAL`], and as soon as the client reports how it
//! shows its videos, the connection runs `media::allocation` over the videos it receives (their
//! publishers' layers as measured now, the client's tiles, the active speaker) and its
//! downlink's budget, and sets each slot's target layer. A slot whose target changes waits for
//! that layer's keyframe (`rtc::subscriptions` asks for it); a video paused for want of
//! bandwidth is reported, so the client can say so on its tile.
//!
//! As a publisher: every [`LAYER_CONTROL_INTERVAL`] it gathers which layers of its simulcast
//! tracks its subscribers would like (`media::layer_switch`) and tells the client when the
//! layers it should send change.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::debug;

use crate::ids::{LayerIndex, ParticipantId};
use crate::media::allocation::{Candidate, Limit, View, allocate, sending};
use crate::rtc::connection::{Connection, Notice};
use crate::signal::protocol::TrackKind;

/// How often a subscriber's allocation runs when nothing prompts it sooner: layers start and
/// stop and estimates change about this often.
pub const ALLOCATION_INTERVAL: Duration = Duration::from_millis(500);

/// How often a publisher's wanted layers are gathered.
pub const LAYER_CONTROL_INTERVAL: Duration = Duration::from_secs(1);

/// How the client shows one video it receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewRequest {
    /// The publisher.
    pub participant: ParticipantId,
    /// The publisher's track id.
    pub track: String,
    /// The tile.
    pub view: View,
}

impl Connection {
    /// Records how the client shows the videos it receives, and reallocates at once. Views of
    /// tracks it does not receive are ignored: a track may end while its view travels.
    pub fn set_views(&mut self, views: Vec<ViewRequest>, now: Instant) {
        if let Some(last) = views.iter().rev().find(|request| request.view.visible) {
            self.last_tile = Some(last.view);
        }
        for request in views {
            if let Some(subscription) = self.subscriptions.values_mut().find(|subscription| {
                let info = subscription.publication.info();
                info.participant == request.participant && info.track == request.track
            }) {
                subscription.view = request.view;
            }
        }
        self.allocation_due = Some(now);
    }

    /// Records the room's active speaker, whose video comes first after screen shares.
    pub fn set_active_speaker(&mut self, speaker: Option<ParticipantId>, now: Instant) {
        if self.active_speaker != speaker {
            self.active_speaker = speaker;
            self.allocation_due = Some(now);
        }
    }

    /// Chooses the layer every video the participant receives forwards; see the module
    /// documentation.
    pub(crate) fn allocate(&mut self, now: Instant) {
        let videos: Vec<_> = self
            .subscriptions
            .values()
            .filter(|subscription| {
                subscription.active.is_some()
                    && subscription.publication.info().kind == TrackKind::Video
                    && !subscription.publication.muted()
            })
            .map(|subscription| subscription.publication.key())
            .collect();
        if videos.is_empty() {
            self.allocation_due = None;
            return;
        }
        let candidates: Vec<Candidate> = videos
            .iter()
            .filter_map(|key| self.subscriptions.get(key))
            .map(|subscription| {
                let info = subscription.publication.info();
                Candidate {
                    layers: subscription.publication.layers().snapshot(now),
                    view: subscription.view,
                    screen: info.screen,
                    speaker: self.active_speaker.as_ref() == Some(&info.participant),
                    current: subscription.down().current(),
                }
            })
            .collect();
        // Audio always goes: what it takes is not the video's.
        let audio: u64 = self
            .subscriptions
            .values()
            .filter(|subscription| {
                subscription.active.is_some()
                    && subscription.publication.info().kind == TrackKind::Audio
            })
            .map(|subscription| {
                subscription
                    .publication
                    .layers()
                    .snapshot(now)
                    .first()
                    .map_or(0, |layer| layer.bitrate)
            })
            .sum();
        let limit = match self.downlink.limit(sending(&candidates) + audio, now) {
            Limit::Budget(budget) => Limit::Budget(budget.saturating_sub(audio)),
            other => other,
        };
        let decisions = allocate(limit, &candidates);
        if limit == Limit::OneStep
            && candidates
                .iter()
                .zip(&decisions)
                .any(|(candidate, decision)| steps_up(candidate, decision.target))
        {
            self.downlink.stepped(now);
        }
        let span = self.span.clone();
        for (key, decision) in videos.iter().zip(decisions) {
            let Some(subscription) = self.subscriptions.get_mut(key) else {
                continue;
            };
            let down = Arc::clone(subscription.down());
            if down.target() != decision.target {
                debug!(
                    parent: &span,
                    publication = %key,
                    from = ?down.target(),
                    to = ?decision.target,
                    ?limit,
                    "a video changes layer"
                );
                subscription.keyframe_asked = None;
            }
            down.set_target(decision.target, decision.wanted);
            if subscription.paused != decision.paused {
                subscription.paused = decision.paused;
                self.unsolicited.push(Notice::VideoPaused {
                    publication: Arc::clone(&subscription.publication),
                    paused: decision.paused,
                });
            }
        }
        self.allocation_due = Some(now + ALLOCATION_INTERVAL);
    }

    /// When the subscriber's next allocation or the publisher's next gathering of wanted
    /// layers is due.
    pub(crate) fn layers_due(&self) -> Option<Instant> {
        [self.allocation_due, self.layer_control_due]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs what [`layers_due`](Self::layers_due) said is due.
    pub(crate) fn run_layers(&mut self, now: Instant) {
        if self.allocation_due.is_some_and(|due| now >= due) {
            self.allocate(now);
        }
        if self.layer_control_due.is_some_and(|due| now >= due) {
            self.control_layers(now);
        }
    }

    /// Tells the client which layers of its simulcast tracks to send, when that changed.
    fn control_layers(&mut self, now: Instant) {
        let mut any = false;
        let span = self.span.clone();
        for published in self.published.values_mut() {
            let layers = published.publication.layers();
            if !layers.is_simulcast() {
                continue;
            }
            any = true;
            // A layer somebody would like, is to switch to, or still receives stays on.
            let mut wanted = vec![false; layers.len()];
            for down in published.publication.down_tracks().iter() {
                for layer in [down.wanted(), down.target(), down.current()] {
                    if let Some(LayerIndex(index)) = layer
                        && let Some(slot) = wanted.get_mut(usize::from(index))
                    {
                        *slot = true;
                    }
                }
            }
            let lowest = lowest_layer(&layers.snapshot(now));
            let Some(on) = published.layer_switch.update(&wanted, lowest, now) else {
                continue;
            };
            let active: Vec<String> = on
                .iter()
                .enumerate()
                .filter(|(_, on)| **on)
                .filter_map(|(index, _)| layers.rid(LayerIndex(index as u8)).map(str::to_owned))
                .collect();
            debug!(
                parent: &span,
                publication = %published.publication.key(),
                ?active,
                "the layers the publisher should send"
            );
            self.unsolicited.push(Notice::Layers {
                track: published.publication.info().track.clone(),
                active,
            });
        }
        self.layer_control_due = any.then(|| now + LAYER_CONTROL_INTERVAL);
    }
}

/// Whether `target` is a layer above the one `candidate` forwards.
fn steps_up(candidate: &Candidate, target: Option<LayerIndex>) -> bool {
    let rate = |index: Option<LayerIndex>| {
        candidate
            .layers
            .iter()
            .find(|layer| Some(layer.index) == index)
            .map(|layer| layer.bitrate)
    };
    match (rate(candidate.current), rate(target)) {
        (Some(current), Some(target)) => target > current,
        _ => false,
    }
}

/// The position of the layer of least resolution, or the publisher's first while any layer
/// has not declared its size.
fn lowest_layer(layers: &[crate::media::layers::LayerSnapshot]) -> usize {
    if layers.iter().any(|layer| layer.resolution.is_none()) {
        return 0;
    }
    layers
        .iter()
        .enumerate()
        .min_by_key(|(_, layer)| {
            let (width, height) = layer.resolution.unwrap_or_default();
            u32::from(width) * u32::from(height)
        })
        .map_or(0, |(index, _)| index)
}

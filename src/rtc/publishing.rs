//! The tracks a participant publishes.
//!
//! The core reports a remote track only when its first packet arrives, and never reports that
//! one stopped (a client removing a track only changes its section's direction), so both come
//! from each offer: a track is announced to the room as soon as the offer that sends it is
//! answered, and ended when an offer stops sending it. Its first packet then only starts the
//! forwarding (or, for a track no offer named, publishes it then).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::peer_connection::event::RTCTrackEventInit;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use tracing::{debug, warn};

use crate::ids::{LayerIndex, Mid, Ssrc};
use crate::media::keyframe::KeyframeReason;
use crate::media::layer_switch::LayerSwitch;
use crate::media::malformed::Malformed;
use crate::media::publication::{Publication, TrackInfo};
use crate::metrics::{Gauge, GaugeGuard};
use crate::rtc::allocating::LAYER_CONTROL_INTERVAL;
use crate::rtc::connection::{Connection, MediaError, Notice};
use crate::rtc::setup;
use crate::signal::protocol::TrackKind;

/// A stream whose packets arrive: a publication, or one layer of it.
#[derive(Clone)]
pub struct Receiving {
    /// The track.
    pub publication: Arc<Publication>,
    /// Which of its layers.
    pub layer: LayerIndex,
}

/// A track the participant publishes.
pub struct Published {
    /// The track.
    pub publication: Arc<Publication>,
    /// The media section it arrives in, when an offer named it.
    pub mid: Option<Mid>,
    /// The transceiver it arrives on, once its first packet came: RTCP to the publisher about
    /// it is written there.
    pub receiver: Option<usize>,
    /// The SSRC its first layer to arrive came on.
    pub ssrc: Option<Ssrc>,
    /// Counts it among the publications being read, from its first packet on.
    pub reading: Option<GaugeGuard>,
    /// Which of its layers the client is asked to send.
    pub layer_switch: LayerSwitch,
}

impl Connection {
    /// Announces the tracks the client's latest offer sends and the server does not know yet,
    /// before their first packets: subscribers negotiate for them meanwhile.
    pub(crate) fn publish_offered_tracks(&mut self, notices: &mut Vec<Notice>) {
        let offered: Vec<(TrackInfo, Vec<String>, Mid)> = self
            .remote_sections
            .iter()
            .filter(|section| section.sends)
            .filter_map(|section| {
                let kind = section.kind?;
                let track = section.track.clone()?;
                if self.published.contains_key(&track) {
                    return None;
                }
                let stream = section.stream.clone().unwrap_or_default();
                let mut info = self.track_info(kind, track, stream);
                info.screen = section.slides;
                // Audio has one layer whatever the offer says.
                let rids = match kind {
                    TrackKind::Video => section.rids.clone(),
                    TrackKind::Audio => Vec::new(),
                };
                Some((info, rids, section.mid.clone()))
            })
            .collect();
        let now = Instant::now();
        let publications = offered
            .into_iter()
            .map(|(info, rids, mid)| (self.new_publication(info, &rids, now), Some(mid)))
            .collect();
        self.publish(publications, notices);
    }

    /// Ends the publications whose media sections the client's latest offer stopped sending.
    pub(crate) fn end_stopped_publications(&mut self, notices: &mut Vec<Notice>) {
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
                Some(self.forget_published(published))
            })
            .collect();
        if !ended.is_empty() {
            notices.push(Notice::Unpublish(ended));
        }
    }

    /// Starts forwarding a track whose first packet arrived: the publication its offer
    /// announced, or, for a track the offer did not name, a new one.
    pub(crate) fn on_track_open(&mut self, init: RTCTrackEventInit, now: Instant) {
        let receiver: usize = rtc::rtp_transceiver::RTCRtpTransceiverId::from(init.receiver_id);
        if !self.opened_streams.insert((receiver, init.ssrc)) {
            // The core reports every stream again after each renegotiation.
            return;
        }
        if !self.publishing_allowed {
            // Its offers were answered inactive, so no track should come; if one does anyway,
            // it reaches nobody.
            warn!("ignoring a track from a participant that may not publish");
            return;
        }
        let Some((kind, mid, stream)) = self.remote_track(receiver) else {
            return;
        };
        let announced = self.published.values_mut().find(|published| {
            let info = published.publication.info();
            info.kind == kind
                && (info.track == init.track_id || (mid.is_some() && published.mid == mid))
        });
        let publication = match announced {
            Some(published) => {
                published.receiver = Some(receiver);
                published.ssrc.get_or_insert(Ssrc(init.ssrc));
                if published.reading.is_none() {
                    published.reading = Some(GaugeGuard::new(&self.metrics, Gauge::Publications));
                }
                Arc::clone(&published.publication)
            }
            None => {
                let stream = init.stream_ids.first().cloned().unwrap_or(stream);
                let info = self.track_info(kind, init.track_id.clone(), stream);
                let publication = self.new_publication(info, &[], now);
                let mut notices = Vec::new();
                self.publish(vec![(Arc::clone(&publication), mid)], &mut notices);
                if let Some(published) = self.published.get_mut(&init.track_id) {
                    published.receiver = Some(receiver);
                    published.ssrc = Some(Ssrc(init.ssrc));
                    published.reading = Some(GaugeGuard::new(&self.metrics, Gauge::Publications));
                }
                self.unsolicited.extend(notices);
                publication
            }
        };
        let Some(layer) = publication.layers().index_of(init.rid.as_deref()) else {
            warn!(rid = ?init.rid, "ignoring a stream of a layer the offer did not name");
            return;
        };
        debug!(
            publication = %publication.key(),
            kind = kind.as_str(),
            ssrc = init.ssrc,
            %layer,
            "the first packets of a track"
        );
        publication.layers().set_ssrc(layer, Ssrc(init.ssrc));
        if let Some(pli) = self.upstream.track_started(
            publication.key(),
            layer,
            Ssrc(init.ssrc),
            kind == TrackKind::Audio,
            now,
        ) {
            self.write_upstream(pli, now);
        }
        publication.begin();
        self.receiving
            .insert(Ssrc(init.ssrc), Receiving { publication, layer });
    }

    /// The stream whose packets arrive on `ssrc`, if one does.
    pub(crate) fn receiving_on(&self, ssrc: Ssrc) -> Option<Receiving> {
        self.receiving.get(&ssrc).cloned()
    }

    /// Counts a malformed packet the client sent (of `stream`, when known) and, for video
    /// someone watches, asks the client for a keyframe: the gap the packet leaves in every
    /// subscriber's stream cannot be filled by a retransmission (see `media::malformed`).
    pub(crate) fn drop_malformed(
        &mut self,
        malformed: Malformed,
        stream: Option<Receiving>,
        now: Instant,
    ) {
        let counter = match malformed {
            Malformed::Header(_) => &self.metrics.malformed_headers,
            Malformed::Vp8(_) => &self.metrics.malformed_vp8,
            Malformed::Padding => &self.metrics.malformed_padding,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        debug!(parent: &self.span, %malformed, "dropped a malformed packet");
        let Some(Receiving { publication, layer }) = stream.filter(|stream| {
            stream.publication.info().kind == TrackKind::Video && stream.publication.is_watched()
        }) else {
            return;
        };
        if let Some(pli) = self.upstream.request_keyframe(
            publication.key(),
            layer,
            KeyframeReason::PacketDropped,
            Duration::ZERO,
            now,
        ) {
            self.write_upstream(pli, now);
        }
    }

    /// Records a mute change from the client: the publication the room should mark, if the
    /// track is published.
    pub fn on_mute(
        &mut self,
        track: String,
        muted: bool,
    ) -> Result<Option<Arc<Publication>>, MediaError> {
        let publication = self
            .published
            .get(&track)
            .map(|published| Arc::clone(&published.publication));
        if publication.is_none()
            && !self
                .remote_sections
                .iter()
                .any(|section| section.track.as_deref() == Some(track.as_str()))
        {
            return Err(MediaError::UnknownTrack(track));
        }
        self.mutes.insert(track, muted);
        if let Some(publication) = &publication {
            self.apply_mute(publication, muted, Instant::now());
        }
        Ok(publication)
    }

    /// Starts or stops forwarding `publication`. It is set here, on the thread that forwards
    /// its packets, before anything else can happen to it: the keyframe asked for on unmuting
    /// is then never dropped as muted. A video track resumes after a gap no retransmission
    /// fills, so its subscribers get a keyframe at once.
    fn apply_mute(&mut self, publication: &Arc<Publication>, muted: bool, now: Instant) {
        let was_muted = publication.muted();
        publication.set_muted(muted);
        if !was_muted
            || muted
            || publication.info().kind != TrackKind::Video
            || !publication.is_watched()
        {
            return;
        }
        for index in 0..publication.layers().len() {
            if let Some(pli) = self.upstream.request_keyframe(
                publication.key(),
                LayerIndex(index as u8),
                KeyframeReason::Resumed,
                Duration::ZERO,
                now,
            ) {
                self.write_upstream(pli, now);
            }
        }
    }

    /// Writes RTCP about one of this participant's tracks to it.
    pub(crate) fn write_upstream(
        &mut self,
        feedback: crate::media::upstream::Feedback,
        now: Instant,
    ) {
        let receiver = self
            .published
            .values()
            .find(|published| published.publication.key() == feedback.source)
            .and_then(|published| published.receiver)
            .or_else(|| {
                self.published
                    .values()
                    .find_map(|published| published.receiver)
            });
        let Some(receiver) = receiver else {
            return;
        };
        let is_pli = feedback
            .packet
            .as_any()
            .is::<rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication>(
        );
        let bitrate = feedback
            .packet
            .as_any()
            .downcast_ref::<ReceiverEstimatedMaximumBitrate>()
            .map_or(0, |remb| remb.bitrate as u64);
        let feedback_source = feedback.source;
        let written = self
            .pc
            .rtp_receiver(rtc::rtp_transceiver::RTCRtpReceiverId::from(receiver))
            .is_some_and(|mut receiver| receiver.write_rtcp(now, vec![feedback.packet]).is_ok());
        if !written {
            return;
        }
        let _entered = self.span.enter();
        if is_pli {
            self.metrics
                .plis_sent
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            debug!(source = %feedback_source, "sent the publisher a PLI");
        } else {
            self.metrics
                .rembs_sent
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            debug!(bitrate, "sent the publisher a bitrate cap");
        }
    }

    /// Kind, mid and stream of the remote track arriving on transceiver `receiver`.
    fn remote_track(&mut self, receiver: usize) -> Option<(TrackKind, Option<Mid>, String)> {
        let mid = self
            .pc
            .rtp_transceiver(receiver)?
            .mid()
            .clone()
            .map(Mid::from);
        let kind = mid
            .as_ref()
            .and_then(|mid| self.remote_sections.iter().find(|s| &s.mid == mid))
            .and_then(|section| section.kind)
            .or_else(|| {
                let receiver = self
                    .pc
                    .rtp_receiver(rtc::rtp_transceiver::RTCRtpReceiverId::from(receiver))?;
                Some(match receiver.track().kind() {
                    rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Audio => TrackKind::Audio,
                    _ => TrackKind::Video,
                })
            })?;
        let stream = mid
            .as_ref()
            .and_then(|mid| self.remote_sections.iter().find(|s| &s.mid == mid))
            .and_then(|section| section.stream.clone())
            .unwrap_or_default();
        Some((kind, mid, stream))
    }

    fn track_info(&self, kind: TrackKind, track: String, stream: String) -> TrackInfo {
        let codec = setup::codec(kind);
        TrackInfo {
            participant: self.participant.clone(),
            track,
            stream,
            kind,
            clock_rate: codec.clock_rate,
            mime_type: codec.mime_type,
            screen: false,
        }
    }

    fn new_publication(&self, info: TrackInfo, rids: &[String], now: Instant) -> Arc<Publication> {
        let muted = self.mutes.get(&info.track).copied().unwrap_or(false);
        Publication::new(info, rids, muted, self.id, now)
    }

    /// Makes `publications` (each with the media section it arrives on, if known) this
    /// participant's and announces them to the room together, ending the ones they replace.
    fn publish(
        &mut self,
        publications: Vec<(Arc<Publication>, Option<Mid>)>,
        notices: &mut Vec<Notice>,
    ) {
        if publications.is_empty() {
            return;
        }
        let mut replaced = Vec::new();
        let mut announced = Vec::with_capacity(publications.len());
        for (publication, mid) in publications {
            let info = publication.info();
            debug!(
                publication = %publication.key(),
                kind = info.kind.as_str(),
                "publishing a track"
            );
            if publication.layers().is_simulcast() {
                self.layer_control_due
                    .get_or_insert(Instant::now() + LAYER_CONTROL_INTERVAL);
            }
            let published = Published {
                layer_switch: LayerSwitch::new(publication.layers().len()),
                publication: Arc::clone(&publication),
                mid,
                receiver: None,
                ssrc: None,
                reading: None,
            };
            if let Some(previous) = self.published.insert(info.track.clone(), published) {
                replaced.push(self.forget_published(previous));
            }
            announced.push(publication);
        }
        if !replaced.is_empty() {
            notices.push(Notice::Unpublish(replaced));
        }
        notices.push(Notice::Publish(announced));
    }

    /// Stops reading a publication that ends.
    fn forget_published(&mut self, published: Published) -> Arc<Publication> {
        let publication = published.publication;
        self.receiving
            .retain(|_, receiving| !Arc::ptr_eq(&receiving.publication, &publication));
        self.upstream.track_ended(
            publication.key(),
            publication.info().kind == TrackKind::Audio,
        );
        publication.stop();
        publication
    }
}

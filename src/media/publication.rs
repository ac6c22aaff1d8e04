//! One published track: read once from the publisher, handed to every subscriber.
//!
//! A [`Publication`] is announced as soon as the publisher's offer says it sends the track, so
//! subscribers negotiate their slots for it while the publisher's camera and encoder start;
//! the first packets, a keyframe, then reach them without another round of negotiation and a
//! keyframe request. From its first packet on ([`begin`](Publication::begin)) the publication
//! owns a task that reads the publisher's [`TrackRemote`] and offers each packet to the current
//! set of [`DownTrack`]s. The set is an atomically swapped list, so the
//! packet path takes no lock that signaling ever holds. The same task is the only thing that
//! writes RTCP to the publisher: subscribers' keyframe requests and bandwidth estimates reach it
//! over a bounded channel, which is where they are throttled and aggregated.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{Instrument, debug};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use crate::media::bitrate::{BitrateAggregator, REPORT_INTERVAL, SubscriberKey};
use crate::media::downtrack::DownTrack;
use crate::media::keyframe::{KeyframeReason, KeyframeThrottle};
use crate::media::rewriter::SourceKey;
use crate::media::send_time::abs_send_time;
use crate::media::vp8;
use crate::metrics::{Gauge, GaugeGuard, Metrics};
use crate::signal::protocol::TrackKind;

/// How many control messages may wait for a publication's task before new ones are dropped.
const CONTROL_QUEUE: usize = 256;

/// A publisher's bandwidth estimates, shared by all of its publications.
pub type SharedBitrate = Arc<Mutex<BitrateAggregator>>;

/// What describes a published track to the rest of the room.
#[derive(Debug, Clone)]
pub struct TrackInfo {
    /// The publisher's participant id.
    pub participant: String,
    /// The publisher's track id (its SDP `msid` track id).
    pub track: String,
    /// The publisher's stream id.
    pub stream: String,
    /// Audio or video.
    pub kind: TrackKind,
    /// The codec's clock rate.
    pub clock_rate: u32,
    /// The codec's MIME type, e.g. `video/VP8`.
    pub mime_type: String,
}

/// A request for the publication's task.
#[derive(Debug)]
enum Control {
    Keyframe {
        reason: KeyframeReason,
        round_trip: Duration,
    },
    Bitrate {
        subscriber: SubscriberKey,
        bitrate: u64,
    },
    ForgetSubscriber(SubscriberKey),
}

/// A published track; see the module documentation.
pub struct Publication {
    key: SourceKey,
    info: TrackInfo,
    muted: AtomicBool,
    media_ssrc: AtomicU32,
    subscribers: ArcSwap<Vec<Arc<DownTrack>>>,
    control: mpsc::Sender<Control>,
    reading: Mutex<Reading>,
    packets: AtomicU64,
}

/// Where a publication's read task is in its life.
enum Reading {
    /// Announced; its first packet has not arrived. Requests queue up for the task.
    Awaiting {
        control: mpsc::Receiver<Control>,
        bitrate: SharedBitrate,
        metrics: Arc<Metrics>,
    },
    /// The task reads the publisher's packets.
    Running(JoinHandle<()>),
    /// Ended: no task runs, and none will.
    Stopped,
}

impl std::fmt::Debug for Publication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publication")
            .field("key", &self.key)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Publication {
    /// A publication announced before its first packet; [`begin`](Self::begin) starts reading.
    pub fn new(
        info: TrackInfo,
        muted: bool,
        bitrate: SharedBitrate,
        metrics: Arc<Metrics>,
    ) -> Arc<Publication> {
        static NEXT_KEY: AtomicU64 = AtomicU64::new(1);
        let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
        Arc::new(Publication {
            key: NEXT_KEY.fetch_add(1, Ordering::Relaxed),
            info,
            muted: AtomicBool::new(muted),
            media_ssrc: AtomicU32::new(0),
            subscribers: ArcSwap::from_pointee(Vec::new()),
            control,
            reading: Mutex::new(Reading::Awaiting {
                control: control_rx,
                bitrate,
                metrics,
            }),
            packets: AtomicU64::new(0),
        })
    }

    /// Starts forwarding `remote`, whose first packet came on `media_ssrc`. Returns `false`,
    /// and does nothing, when the publication already reads a track or has ended.
    pub fn begin(self: &Arc<Self>, remote: Arc<dyn TrackRemote>, media_ssrc: u32) -> bool {
        let mut reading = self.reading();
        if !matches!(*reading, Reading::Awaiting { .. }) {
            return false;
        }
        let Reading::Awaiting {
            control,
            bitrate,
            metrics,
        } = std::mem::replace(&mut *reading, Reading::Stopped)
        else {
            return false;
        };
        self.media_ssrc.store(media_ssrc, Ordering::Relaxed);
        let span = tracing::info_span!(
            "publication",
            key = self.key,
            participant = %self.info.participant,
            track = %self.info.track,
            kind = self.info.kind.as_str(),
        );
        let audio = (self.info.kind == TrackKind::Audio).then(|| AudioAllowance::new(&bitrate));
        let reader = Reader {
            publication: Arc::clone(self),
            remote,
            control,
            throttle: KeyframeThrottle::default(),
            bitrate,
            metrics: Arc::clone(&metrics),
            _gauge: GaugeGuard::new(&metrics, Gauge::Publications),
            _audio: audio,
        };
        *reading = Reading::Running(tokio::spawn(reader.run().instrument(span)));
        true
    }

    /// A process-wide unique key.
    pub fn key(&self) -> SourceKey {
        self.key
    }

    /// What the track is.
    pub fn info(&self) -> &TrackInfo {
        &self.info
    }

    /// Whether the publisher has muted it.
    pub fn muted(&self) -> bool {
        self.muted.load(Ordering::Relaxed)
    }

    /// Records the publisher's mute state.
    pub fn set_muted(&self, muted: bool) {
        self.muted.store(muted, Ordering::Relaxed);
    }

    /// Packets read from the publisher so far.
    pub fn packets_received(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    /// Starts offering packets to `down` (already switched to this publication). It forwards
    /// them from the first keyframe after it is [ready](DownTrack::set_ready).
    pub fn attach(&self, down: Arc<DownTrack>) {
        self.subscribers.rcu(|current| {
            let mut next = Vec::with_capacity(current.len() + 1);
            next.extend(current.iter().cloned());
            next.push(Arc::clone(&down));
            next
        });
    }

    /// Stops forwarding to `down`.
    pub fn detach(&self, down: &Arc<DownTrack>) {
        self.subscribers.rcu(|current| {
            current
                .iter()
                .filter(|existing| !Arc::ptr_eq(existing, down))
                .cloned()
                .collect::<Vec<_>>()
        });
        let _ = self.control.try_send(Control::ForgetSubscriber(down.id()));
    }

    /// Asks the publisher for a keyframe, subject to the throttle, on behalf of a subscriber
    /// whose connection has `round_trip` time.
    pub fn request_keyframe(&self, reason: KeyframeReason, round_trip: Duration) {
        let _ = self
            .control
            .try_send(Control::Keyframe { reason, round_trip });
    }

    /// Records one subscriber's share of its bandwidth estimate for this track.
    pub fn report_bitrate(&self, subscriber: SubscriberKey, bitrate: u64) {
        let _ = self.control.try_send(Control::Bitrate {
            subscriber,
            bitrate,
        });
    }

    /// Whether the publisher's packets are being read: it has begun and not ended.
    pub fn is_reading(&self) -> bool {
        matches!(*self.reading(), Reading::Running(_))
    }

    /// Stops the read loop, or keeps it from ever starting. Subscribers are told by the room,
    /// not here.
    pub fn stop(&self) {
        if let Reading::Running(handle) = std::mem::replace(&mut *self.reading(), Reading::Stopped)
        {
            handle.abort();
        }
    }

    fn reading(&self) -> std::sync::MutexGuard<'_, Reading> {
        self.reading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Publication {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The publication's task state.
struct Reader {
    publication: Arc<Publication>,
    remote: Arc<dyn TrackRemote>,
    control: mpsc::Receiver<Control>,
    throttle: KeyframeThrottle,
    bitrate: SharedBitrate,
    metrics: Arc<Metrics>,
    _gauge: GaugeGuard,
    _audio: Option<AudioAllowance>,
}

/// Counts an audio publication in its publisher's bitrate cap for as long as it lives; held by
/// the read task, so an aborted task gives the allowance back too.
struct AudioAllowance(SharedBitrate);

impl AudioAllowance {
    fn new(bitrate: &SharedBitrate) -> Self {
        lock(bitrate).add_audio_track();
        Self(Arc::clone(bitrate))
    }
}

impl Drop for AudioAllowance {
    fn drop(&mut self) {
        lock(&self.0).remove_audio_track();
    }
}

fn lock(bitrate: &SharedBitrate) -> std::sync::MutexGuard<'_, BitrateAggregator> {
    bitrate
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Reader {
    async fn run(mut self) {
        let mut next_bitrate_poll = Instant::now() + REPORT_INTERVAL;
        loop {
            let deadline = self
                .throttle
                .deadline()
                .map_or(next_bitrate_poll, |deferred| {
                    deferred.min(next_bitrate_poll)
                });
            tokio::select! {
                event = self.remote.poll() => match event {
                    Some(TrackRemoteEvent::OnRtpPacket(packet)) => self.forward(packet),
                    Some(TrackRemoteEvent::OnOpen(init)) => {
                        // A renegotiation re-opens existing tracks; only the SSRC may change.
                        self.publication.media_ssrc.store(init.ssrc, Ordering::Relaxed);
                    }
                    Some(TrackRemoteEvent::OnEnded) | None => break,
                    Some(_) => {}
                },
                Some(control) = self.control.recv() => self.handle(control).await,
                () = tokio::time::sleep_until(deadline.into()) => {
                    let now = Instant::now();
                    if self.throttle.poll_deferred(now) {
                        debug!("the deferred keyframe request falls due");
                        self.send_pli().await;
                    }
                    if now >= next_bitrate_poll {
                        next_bitrate_poll = now + REPORT_INTERVAL;
                        self.poll_bitrate(now).await;
                    }
                }
            }
        }
        let ssrc = self.publication.media_ssrc.load(Ordering::Relaxed);
        self.lock_bitrate().forget_publication(ssrc);
        debug!("publication ended");
    }

    fn forward(&mut self, mut packet: rtc::rtp::Packet) {
        let publication = &self.publication;
        publication.packets.fetch_add(1, Ordering::Relaxed);
        self.metrics.packets_in.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .bytes_in
            .fetch_add(packet.payload.len() as u64, Ordering::Relaxed);
        let now = Instant::now();
        let keyframe = route(
            publication.key,
            publication.info.kind,
            &mut packet,
            &publication.subscribers.load(),
            now,
        );
        if keyframe {
            debug!(ssrc = packet.header.ssrc, "a keyframe from the publisher");
            self.throttle.keyframe_seen(now);
        }
    }

    async fn handle(&mut self, control: Control) {
        let now = Instant::now();
        match control {
            Control::Keyframe { reason, round_trip } => {
                let send = self.throttle.request(reason, round_trip, now);
                self.metrics
                    .keyframe_requests_handled
                    .fetch_add(1, Ordering::Relaxed);
                if send {
                    self.send_pli().await;
                } else {
                    debug!(?reason, "keyframe request held back by the throttle");
                }
            }
            Control::Bitrate {
                subscriber,
                bitrate,
            } => {
                let ssrc = self.publication.media_ssrc.load(Ordering::Relaxed);
                self.lock_bitrate().record(ssrc, subscriber, bitrate, now);
                self.poll_bitrate(now).await;
            }
            Control::ForgetSubscriber(subscriber) => {
                let ssrc = self.publication.media_ssrc.load(Ordering::Relaxed);
                self.lock_bitrate().forget_subscriber(ssrc, subscriber);
            }
        }
    }

    async fn send_pli(&self) {
        let media_ssrc = self.publication.media_ssrc.load(Ordering::Relaxed);
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        if write_with_timeout(&self.remote, Box::new(pli)).await {
            self.metrics.plis_sent.fetch_add(1, Ordering::Relaxed);
            debug!(media_ssrc, "sent the publisher a PLI");
        } else {
            debug!(media_ssrc, "a PLI could not be written to the publisher");
        }
    }

    async fn poll_bitrate(&self, now: Instant) {
        let Some(cap) = self.lock_bitrate().poll(now) else {
            return;
        };
        let remb = ReceiverEstimatedMaximumBitrate {
            sender_ssrc: 0,
            bitrate: cap.bitrate as f32,
            ssrcs: cap.ssrcs,
        };
        if write_with_timeout(&self.remote, Box::new(remb)).await {
            self.metrics.rembs_sent.fetch_add(1, Ordering::Relaxed);
            debug!(bitrate = cap.bitrate, "sent the publisher a bitrate cap");
        }
    }

    fn lock_bitrate(&self) -> std::sync::MutexGuard<'_, BitrateAggregator> {
        lock(&self.bitrate)
    }
}

/// The router's per-packet work: prepares one packet of publication `source` and offers it to
/// every down-track. Returns whether it starts a keyframe.
///
/// Header extensions go here, once: their ids are negotiated per connection and differ between
/// the publisher's and each subscriber's, a sender refuses ids it did not negotiate, and none of
/// the publisher's extensions mean anything downstream. Each down-track stamps the server's own
/// send time on video instead.
pub fn route(
    source: SourceKey,
    kind: TrackKind,
    packet: &mut rtc::rtp::Packet,
    subscribers: &[Arc<DownTrack>],
    now: Instant,
) -> bool {
    packet.header.extensions.clear();
    packet.header.extension = false;
    packet.header.extension_profile = 0;
    packet.header.extensions_padding = 0;
    let (can_start, keyframe) = match kind {
        TrackKind::Audio => (true, false),
        TrackKind::Video => {
            let keyframe = vp8::is_keyframe_start(&packet.payload);
            (keyframe, keyframe)
        }
    };
    // Subscribers estimate their downlink from video packets only (see `send_time`); one stamp
    // serves them all.
    let send_time = (kind == TrackKind::Video).then(|| abs_send_time(now));
    for down in subscribers {
        down.forward(source, packet, can_start, now, send_time.as_ref());
    }
    keyframe
}

/// Writes one RTCP packet to the publisher, giving up after a short while: feedback that cannot
/// be delivered promptly is worthless, and the read loop must not stall behind it.
async fn write_with_timeout(
    remote: &Arc<dyn TrackRemote>,
    packet: Box<dyn rtc::rtcp::Packet>,
) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_millis(200), remote.write_rtcp(vec![packet])).await,
        Ok(Ok(()))
    )
}

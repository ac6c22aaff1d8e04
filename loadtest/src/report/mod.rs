//! The numbers a run produces: as a readable table and as JSON. The JSON carries, besides the
//! figures, what it takes to merge the reports of several shards of one run
//! ([`crate::merge`]): the histograms behind every percentile, the loss counts behind every
//! loss fraction, the server's readings, and the run second by second.

pub mod receivers;
mod server;
mod text;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use switchyard::signal::protocol::TrackKind;

pub use self::receivers::ReceiverTotals;
pub use self::server::{Reading, Readings, ServerReport};
pub use self::text::{failure_summary, video_description};
use crate::histogram::EncodedHistogram;
use crate::participant::Observed;
use crate::scenario::Scenario;
use crate::series::Series;
use crate::shard::Shard;
use crate::stats::{Percentiles, new_histogram};

/// Everything one run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// The server it ran against: `switchyard` or `janus`.
    pub target: String,
    /// What ran.
    pub scenario: Scenario,
    /// The length of the measurement window, in seconds; it starts once everybody has joined
    /// and every remote track flows (or the settling time ran out).
    pub window_seconds: f64,
    /// Who took part.
    pub participants: ParticipantCounts,
    /// How long joining took.
    pub join: JoinTimes,
    /// How many received tracks there should have been and were.
    pub tracks: TrackCounts,
    /// Every received video track, summarized.
    pub video: MediaSummary,
    /// Every received audio track, summarized.
    pub audio: MediaSummary,
    /// From a receiver's PLI to the next keyframe it received, in milliseconds.
    pub keyframe_response_ms: Percentiles,
    /// What receivers counted during the window.
    pub received: Throughput,
    /// What the server cost and counted during the window, when it could be observed.
    pub server: ServerReport,
    /// The SRTP protection profiles the participants' connections negotiated.
    pub srtp_profiles: Vec<String>,
    /// Every received track.
    pub per_track: Vec<TrackReport>,
    /// What each participant received during the window: bytes, and seconds on each
    /// simulcast layer.
    #[serde(default)]
    pub per_receiver: Vec<ReceiverTotals>,
    /// Seconds of video received on each simulcast layer, by RID, over every receiver (empty
    /// when no video arrived in layers).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub layer_seconds: BTreeMap<String, f64>,
    /// Which run this was, and how it went.
    #[serde(default)]
    pub run: RunInfo,
    /// The distributions behind the percentiles above.
    #[serde(default)]
    pub histograms: Histograms,
    /// The server at the two ends of the window, when it could be read.
    #[serde(default)]
    pub server_readings: Option<Readings>,
    /// The run second by second, from the first participant's start to the window's end.
    #[serde(default)]
    pub series: Series,
    /// How joining went for the churners, in a scenario with churn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub churn: Option<ChurnReport>,
}

/// Which run this was, and how it went.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The server's signaling URL.
    pub url: String,
    /// The run's id, in its room names; the shards of one run share it.
    pub run_id: String,
    /// The share of the scenario this report covers; `1/1` for all of it (merged reports
    /// too).
    pub shard: Shard,
    /// How many shards' reports this one merges (1 when it is one machine's).
    pub merged_shards: u32,
    /// When the first participant started, Unix seconds.
    pub started_unix: f64,
    /// When the measurement window opened and closed, Unix seconds.
    pub window_unix: (f64, f64),
    /// Whether the run was stopped early (Ctrl-C): the figures cover what it measured.
    pub interrupted: bool,
    /// Why the server's metrics could not be read, when they could not.
    #[serde(default)]
    pub metrics_problem: Option<String>,
}

/// The distributions behind the report's percentiles, microseconds, for merging.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Histograms {
    /// [`JoinTimes::to_joined_ms`].
    pub join_to_joined_us: EncodedHistogram,
    /// [`JoinTimes::to_all_tracks_ms`].
    pub join_to_all_tracks_us: EncodedHistogram,
    /// [`JoinTimes::to_all_keyframes_ms`].
    pub join_to_all_keyframes_us: EncodedHistogram,
    /// The video [`MediaSummary::latency_ms`].
    pub video_latency_us: EncodedHistogram,
    /// The audio [`MediaSummary::latency_ms`].
    pub audio_latency_us: EncodedHistogram,
    /// [`Report::keyframe_response_ms`].
    pub keyframe_response_us: EncodedHistogram,
}

/// A participant that could not join, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Its name in the run.
    pub participant: String,
    /// Its room.
    pub room: String,
    /// The server's error code, when the server refused it.
    pub code: Option<String>,
    /// Why, in words.
    pub reason: String,
}

/// How joining went for the churners.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChurnReport {
    /// Churners started.
    pub started: usize,
    /// Churners the server accepted.
    pub joined: usize,
    /// Churners that could not join.
    pub failed: usize,
    /// Why each of them could not.
    pub failures: Vec<Failure>,
    /// Churners that left before receiving every remote track.
    pub incomplete: usize,
    /// Socket open to `joined`, milliseconds.
    pub to_joined_ms: Percentiles,
    /// To the first packet of every track of the room's publishers, milliseconds.
    pub to_all_tracks_ms: Percentiles,
    /// The distribution of `to_joined_ms`, microseconds.
    pub to_joined_us: EncodedHistogram,
    /// The distribution of `to_all_tracks_ms`, microseconds.
    pub to_all_tracks_us: EncodedHistogram,
}

/// Who took part.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ParticipantCounts {
    /// Participants the scenario asked for.
    pub planned: usize,
    /// Participants the server accepted.
    pub joined: usize,
    /// Participants that could not join.
    pub failed: usize,
    /// Participants whose peer connection reached `connected`.
    pub connected: usize,
    /// Participants never started, or whose join was abandoned, because the run was stopped
    /// early.
    #[serde(default)]
    pub skipped: usize,
    /// Why each participant that could not join could not.
    #[serde(default)]
    pub failures: Vec<Failure>,
}

/// Join times over participants, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct JoinTimes {
    /// WebSocket open to `joined`.
    pub to_joined_ms: Percentiles,
    /// Until the first packet of every remote track, each track timed from the later of the
    /// receiver's and the publisher's start (so a ramp-up's waiting is not counted).
    pub to_all_tracks_ms: Percentiles,
    /// The same, to the first keyframe of every remote video track.
    pub to_all_keyframes_ms: Percentiles,
    /// Participants that never received some remote track.
    pub incomplete: usize,
}

/// Received tracks, expected and actual.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct TrackCounts {
    /// Remote tracks each participant should receive, summed.
    pub expected: usize,
    /// Remote tracks that delivered at least one intact packet.
    pub received: usize,
    /// Packets whose payload did not match what was sent.
    pub corrupted_packets: u64,
    /// Packets that arrived on the wrong track.
    pub foreign_packets: u64,
}

/// One kind of received track, summarized over all of them.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct MediaSummary {
    /// How many tracks.
    pub tracks: usize,
    /// Mean received bitrate per track, bits per second.
    pub bitrate_mean_bps: f64,
    /// Lowest received bitrate of a track.
    pub bitrate_min_bps: f64,
    /// Packets never received, retransmissions included, over all packets sent.
    pub loss: f64,
    /// The worst track's loss.
    pub loss_worst: f64,
    /// Publisher send to receiver arrival, all packets of all tracks, milliseconds.
    pub latency_ms: Percentiles,
    /// Gaps between frames longer than three frame intervals (video).
    pub freezes: u64,
    /// Their total length, milliseconds.
    pub frozen_ms: f64,
    /// Packets sent during the window.
    #[serde(default)]
    pub packets_expected: u64,
    /// Of those, packets never received, retransmissions included.
    #[serde(default)]
    pub packets_missing: u64,
}

/// Packets receivers got during the window.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Throughput {
    /// Packets all receivers got.
    pub packets: u64,
    /// Per second.
    pub packets_per_second: f64,
}

/// One received track.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrackReport {
    /// The receiver.
    pub receiver: String,
    /// The publisher.
    pub publisher: String,
    /// The publisher's track id.
    pub track: String,
    /// Audio or video.
    pub kind: Option<TrackKind>,
    /// Packets received.
    pub packets: u64,
    /// Received bitrate, bits per second.
    pub bitrate_bps: f64,
    /// Packets never received, retransmissions included.
    pub loss: f64,
    /// Latency percentiles, milliseconds.
    pub latency_ms: Percentiles,
    /// Freezes.
    pub freezes: u64,
    /// Frozen time, milliseconds.
    pub frozen_ms: f64,
    /// Payload bytes received during the window.
    #[serde(default)]
    pub window_bytes: u64,
    /// Seconds received on each simulcast layer during the window, by RID.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub layer_seconds: BTreeMap<String, f64>,
    /// Times the server paused it for lack of downlink.
    #[serde(default)]
    pub pauses: u64,
    /// The simulcast layer its last packet came on, by RID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_at_end: Option<String>,
}

/// A participant that joined, as the report sees it.
pub struct Attendee {
    /// Its participant id.
    pub id: String,
    /// Its name in the run.
    pub name: String,
    /// The room it joined.
    pub room: String,
    /// Whether it was behind the scenario's impairment.
    pub impaired: bool,
    /// What it observed.
    pub observed: Observed,
    /// How many remote tracks it should receive.
    pub expected_tracks: usize,
}

/// What the runner hands over for the report.
pub struct RunRecord<'a> {
    /// The server's name.
    pub target: &'a str,
    /// The scenario.
    pub scenario: &'a Scenario,
    /// Which run, and how it went.
    pub run: RunInfo,
    /// The participants that could not join, and why.
    pub failures: Vec<Failure>,
    /// Participants not started, or abandoned, because the run was stopped early.
    pub skipped: usize,
    /// Each participant that joined.
    pub participants: &'a [Attendee],
    /// The server at the two ends of the window.
    pub readings: Readings,
    /// The highest RSS seen during the run.
    pub rss_max: Option<u64>,
    /// Packets received by all participants at the start and end of the window.
    pub received_packets: (u64, u64),
    /// The run second by second.
    pub series: Series,
    /// The churners' joins, in a scenario with churn.
    pub churn: Option<ChurnReport>,
}

impl Report {
    /// Builds the report.
    pub fn build(record: RunRecord<'_>) -> Report {
        let window_seconds = (record.readings.closed.unix - record.readings.opened.unix).max(1e-9);
        let started: HashMap<&str, Instant> = record
            .participants
            .iter()
            .filter_map(|attendee| Some((attendee.id.as_str(), attendee.observed.started_at?)))
            .collect();

        let mut join_ms = Vec::new();
        let mut all_tracks = Vec::new();
        let mut all_keyframes = Vec::new();
        let mut incomplete = 0;
        let mut tracks = TrackCounts::default();
        let mut per_track = Vec::new();
        let mut video = Accumulator::default();
        let mut audio = Accumulator::default();
        let mut keyframe_response = Vec::new();
        let mut connected = 0;
        let mut srtp_profiles = std::collections::BTreeSet::new();
        let mut per_receiver = Vec::new();

        for attendee in record.participants {
            let (id, observed, expected) =
                (&attendee.id, &attendee.observed, &attendee.expected_tracks);
            per_receiver.push(ReceiverTotals::of(
                id,
                &attendee.name,
                &attendee.room,
                attendee.impaired,
                observed,
                window_seconds,
            ));
            tracks.expected += expected;
            if observed.connection_state
                == Some(webrtc::peer_connection::RTCPeerConnectionState::Connected)
            {
                connected += 1;
            }
            srtp_profiles.extend(observed.srtp_profiles.iter().cloned());
            let Some(own_start) = observed.started_at else {
                continue;
            };
            if let Some(joined) = observed.joined_at {
                join_ms.push(joined.saturating_duration_since(own_start));
            }
            let mut received_here = 0;
            let mut slowest_track = Duration::ZERO;
            let mut slowest_keyframe = Duration::ZERO;
            for track in observed.received.values() {
                tracks.corrupted_packets += track.corrupted;
                tracks.foreign_packets += track.foreign;
                if track.intact == 0 || track.participant.is_empty() {
                    continue;
                }
                received_here += 1;
                let origin = started
                    .get(track.participant.as_str())
                    .map_or(own_start, |publisher| (*publisher).max(own_start));
                if let Some(first) = track.first_packet {
                    slowest_track = slowest_track.max(first.saturating_duration_since(origin));
                }
                if track.kind == Some(TrackKind::Video)
                    && let Some(first) = track.first_keyframe
                {
                    slowest_keyframe =
                        slowest_keyframe.max(first.saturating_duration_since(origin));
                }
                keyframe_response.extend_from_slice(&track.quality.keyframe_response);
                let span = match (track.first_packet, track.quality.last_packet) {
                    (Some(first), Some(last)) => last.saturating_duration_since(first),
                    _ => Duration::ZERO,
                };
                let bitrate = if span.is_zero() {
                    0.0
                } else {
                    track.bytes as f64 * 8.0 / span.as_secs_f64()
                };
                let report = TrackReport {
                    receiver: id.clone(),
                    publisher: track.participant.clone(),
                    track: track.track.clone(),
                    kind: track.kind,
                    packets: track.packets,
                    bitrate_bps: bitrate,
                    loss: track.quality.loss(),
                    latency_ms: Percentiles::from_micros(&track.quality.latency),
                    freezes: track.quality.freezes,
                    frozen_ms: track.quality.frozen.as_secs_f64() * 1000.0,
                    window_bytes: 0,
                    layer_seconds: BTreeMap::new(),
                    pauses: track.pauses,
                    layer_at_end: track.layers.current_rid(),
                };
                let window = track.in_window();
                let report = TrackReport {
                    window_bytes: window.bytes,
                    layer_seconds: window
                        .layer_time
                        .into_iter()
                        .map(|(rid, time)| (rid, time.as_secs_f64()))
                        .collect(),
                    ..report
                };
                let accumulator = match track.kind {
                    Some(TrackKind::Video) => &mut video,
                    _ => &mut audio,
                };
                accumulator.add(track, &report);
                per_track.push(report);
            }
            tracks.received += received_here;
            if received_here >= *expected {
                all_tracks.push(slowest_track);
                if record.scenario.video_bitrate > 0 {
                    all_keyframes.push(slowest_keyframe);
                }
            } else {
                incomplete += 1;
            }
        }

        let received_packets = record
            .received_packets
            .1
            .saturating_sub(record.received_packets.0);
        let join_to_joined = histogram_of(&join_ms);
        let join_to_all_tracks = histogram_of(&all_tracks);
        let join_to_all_keyframes = histogram_of(&all_keyframes);
        let keyframe_response = histogram_of(&keyframe_response);
        let (video, video_latency) = video.finish();
        let (audio, audio_latency) = audio.finish();
        Report {
            target: record.target.to_owned(),
            scenario: record.scenario.clone(),
            window_seconds,
            participants: ParticipantCounts {
                planned: record.participants.len() + record.failures.len() + record.skipped,
                joined: record.participants.len(),
                failed: record.failures.len(),
                connected,
                skipped: record.skipped,
                failures: record.failures,
            },
            join: JoinTimes {
                to_joined_ms: Percentiles::from_micros(&join_to_joined),
                to_all_tracks_ms: Percentiles::from_micros(&join_to_all_tracks),
                to_all_keyframes_ms: Percentiles::from_micros(&join_to_all_keyframes),
                incomplete,
            },
            tracks,
            video,
            audio,
            keyframe_response_ms: Percentiles::from_micros(&keyframe_response),
            received: Throughput {
                packets: received_packets,
                packets_per_second: received_packets as f64 / window_seconds,
            },
            server: ServerReport::between(&record.readings, record.rss_max, received_packets),
            srtp_profiles: srtp_profiles.into_iter().collect(),
            per_track,
            layer_seconds: receivers::layer_totals(&per_receiver),
            per_receiver,
            run: record.run,
            histograms: Histograms {
                join_to_joined_us: EncodedHistogram::encode(&join_to_joined),
                join_to_all_tracks_us: EncodedHistogram::encode(&join_to_all_tracks),
                join_to_all_keyframes_us: EncodedHistogram::encode(&join_to_all_keyframes),
                video_latency_us: EncodedHistogram::encode(&video_latency),
                audio_latency_us: EncodedHistogram::encode(&audio_latency),
                keyframe_response_us: EncodedHistogram::encode(&keyframe_response),
            },
            server_readings: Some(record.readings),
            series: record.series,
            churn: record.churn,
        }
    }
}

#[derive(Default)]
struct Accumulator {
    tracks: usize,
    bitrate_sum: f64,
    bitrate_min: Option<f64>,
    missing: u64,
    expected: u64,
    loss_worst: f64,
    latency: Option<hdrhistogram::Histogram<u64>>,
    freezes: u64,
    frozen_ms: f64,
}

impl Accumulator {
    fn add(&mut self, track: &crate::participant::ReceivedTrack, report: &TrackReport) {
        self.tracks += 1;
        self.bitrate_sum += report.bitrate_bps;
        self.bitrate_min = Some(
            self.bitrate_min
                .map_or(report.bitrate_bps, |min: f64| min.min(report.bitrate_bps)),
        );
        self.missing += track.quality.missing();
        self.expected += track.quality.expected();
        self.loss_worst = self.loss_worst.max(report.loss);
        let _ = self
            .latency
            .get_or_insert_with(new_histogram)
            .add(&track.quality.latency);
        self.freezes += report.freezes;
        self.frozen_ms += report.frozen_ms;
    }

    fn finish(self) -> (MediaSummary, Histogram<u64>) {
        let summary = MediaSummary {
            tracks: self.tracks,
            bitrate_mean_bps: if self.tracks == 0 {
                0.0
            } else {
                self.bitrate_sum / self.tracks as f64
            },
            bitrate_min_bps: self.bitrate_min.unwrap_or(0.0),
            loss: if self.expected == 0 {
                0.0
            } else {
                self.missing as f64 / self.expected as f64
            },
            loss_worst: self.loss_worst,
            latency_ms: self
                .latency
                .as_ref()
                .map(Percentiles::from_micros)
                .unwrap_or_default(),
            freezes: self.freezes,
            frozen_ms: self.frozen_ms,
            packets_expected: self.expected,
            packets_missing: self.missing,
        };
        (summary, self.latency.unwrap_or_else(new_histogram))
    }
}

/// The histogram of `samples`, in microseconds.
fn histogram_of(samples: &[Duration]) -> Histogram<u64> {
    let mut histogram = new_histogram();
    for sample in samples {
        histogram.saturating_record((sample.as_micros() as u64).max(1));
    }
    histogram
}

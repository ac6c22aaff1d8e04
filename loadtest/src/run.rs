//! One load test run: start the participants at the ramp-up rate, measure for the duration,
//! take everybody out, report. Every loop here is bounded in count and time.

use std::io::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::ClientError;
use crate::participant::{Participant, ParticipantOptions, TrackSpec};
use crate::report::{Report, RunRecord};
use crate::scenario::Scenario;
use crate::server_probe::{self, Sample};
use crate::target::{Switchyard, Target};
use switchyard::signal::protocol::TrackKind;
use webrtc::peer_connection::RTCPeerConnectionState;

/// How long one participant may take to join before it counts as failed.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long everybody may take to leave at the end.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the media of everybody who joined may take to start flowing before measuring
/// begins anyway. Over a lossy link ICE and DTLS retransmit on timers of a second and more.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the packets sent in the measurement window's last moments may take to be
/// retransmitted once it closes: several NACK rounds (webrtc-rs NACKs every 100 ms) over both
/// hops, publisher to server and server to subscriber.
const RETRANSMISSION_GRACE: Duration = Duration::from_secs(1);

/// How to run a scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The server, which decides the signaling.
    pub target: Arc<dyn Target>,
    /// The server's signaling URL: `ws://host:port/ws` for Switchyard, `ws://host:8188` for
    /// Janus.
    pub url: String,
    /// What to run.
    pub scenario: Scenario,
    /// The server's process id, to sample its CPU time and memory from `/proc`.
    pub server_pid: Option<u32>,
    /// The local address participants gather media candidates on.
    pub media_ip: IpAddr,
    /// Room names start with this (a random suffix keeps runs apart).
    pub room_prefix: String,
    /// Whether to print a live progress line on stderr.
    pub progress: bool,
}

impl RunOptions {
    /// Runs `scenario` against the Switchyard server at `url`, quietly, with media on loopback.
    pub fn new(url: impl Into<String>, scenario: Scenario) -> Self {
        Self {
            target: Arc::new(Switchyard),
            url: url.into(),
            scenario,
            server_pid: None,
            media_ip: IpAddr::from([127, 0, 0, 1]),
            room_prefix: "load".to_owned(),
            progress: false,
        }
    }
}

/// One participant the scenario asks for.
struct Planned {
    room: String,
    name: String,
    publishes: bool,
    expected_tracks: usize,
}

/// Runs one scenario to its end and reports.
pub async fn run(options: RunOptions) -> Result<Report, ClientError> {
    let scenario = &options.scenario;
    scenario.validate().map_err(ClientError::Scenario)?;
    let plan = plan(&options);
    let metrics = options.target.metrics_url(&options.url).and_then(|url| {
        match server_probe::MetricsEndpoint::new(url, None) {
            Ok(endpoint) => Some(endpoint),
            Err(error) => {
                tracing::warn!(%error, "the server's metrics will not be read");
                None
            }
        }
    });
    let mut rss_max = None;

    // Ramp up: one participant per tick, each joining in its own task.
    let mut joins = JoinSet::new();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / scenario.ramp_up));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for (index, planned) in plan.iter().enumerate() {
        ticker.tick().await;
        let participant_options = participant_options(&options, planned);
        joins.spawn(async move {
            let joined =
                tokio::time::timeout(JOIN_TIMEOUT, Participant::join(participant_options)).await;
            (index, joined)
        });
        if options.progress {
            progress_line(&format!(
                "starting participants {}/{}",
                index + 1,
                plan.len()
            ));
        }
    }
    let mut participants: Vec<Option<Participant>> = plan.iter().map(|_| None).collect();
    let mut failed = 0;
    while let Some(result) = joins.join_next().await {
        match result {
            Ok((index, Ok(Ok(participant)))) => participants[index] = Some(participant),
            Ok((_, Ok(Err(error)))) => {
                failed += 1;
                tracing::warn!(%error, "a participant could not join");
            }
            Ok((_, Err(_))) | Err(_) => failed += 1,
        }
    }
    let joined: Vec<(usize, Participant)> = participants
        .into_iter()
        .enumerate()
        .filter_map(|(index, participant)| Some((index, participant?)))
        .collect();

    // Wait until every remote track flows everywhere, so the window measures the steady state.
    if options.progress {
        progress_line("waiting for every track to flow");
    }
    let _ = tokio::time::timeout(
        SETTLE_TIMEOUT,
        futures::future::join_all(joined.iter().map(|(index, participant)| {
            let expected = plan[*index].expected_tracks;
            participant.wait_until("every remote track", SETTLE_TIMEOUT, move |observed| {
                observed
                    .received
                    .values()
                    .filter(|track| track.intact > 0 && !track.participant.is_empty())
                    .count()
                    >= expected
                    && (expected > 0
                        || observed.connection_state == Some(RTCPeerConnectionState::Connected))
            })
        })),
    )
    .await;

    // Measure for the duration, asking for keyframes on the way.
    for (_, participant) in &joined {
        participant.open_loss_window();
    }
    let before = server_probe::sample(options.server_pid, metrics.as_ref()).await;
    track_rss(&mut rss_max, &before);
    let received_before = received_packets(&joined);
    let deadline = Instant::now() + scenario.duration;
    let mut next_pli: Vec<Instant> = joined
        .iter()
        .map(|_| Instant::now() + scenario.pli_interval.mul_f64(rand::random::<f64>()))
        .collect();
    let mut second = tokio::time::interval(Duration::from_secs(1));
    second.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_progress = (Instant::now(), received_before);
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let next = next_pli
            .iter()
            .copied()
            .min()
            .unwrap_or(deadline)
            .min(deadline);
        tokio::select! {
            _ = second.tick() => {
                if options.server_pid.is_some() {
                    track_rss(&mut rss_max, &Sample {
                        at: std::time::Instant::now(),
                        cpu_seconds: None,
                        rss_bytes: options.server_pid.and_then(server_probe::rss_bytes),
                        metrics: Default::default(),
                    });
                }
                if options.progress {
                    let received = received_packets(&joined);
                    let elapsed = now.saturating_duration_since(last_progress.0).as_secs_f64().max(1e-3);
                    let rate = (received - last_progress.1) as f64 / elapsed;
                    last_progress = (now, received);
                    progress_line(&format!(
                        "{:>4.0} s left | {}/{} connected | {:.0} packets/s received | video loss so far {:.3}%",
                        deadline.saturating_duration_since(now).as_secs_f64(),
                        connected(&joined),
                        plan.len(),
                        rate,
                        video_loss(&joined) * 100.0
                    ));
                }
            }
            () = tokio::time::sleep_until(next), if !scenario.pli_interval.is_zero() => {
                for (slot, (_, participant)) in next_pli.iter_mut().zip(&joined) {
                    if *slot <= Instant::now() {
                        *slot += scenario.pli_interval;
                        if let Some(mid) = random_video_mid(participant) {
                            participant.send_pli(&mid, 1);
                        }
                    }
                }
            }
            () = tokio::time::sleep_until(deadline) => break,
        }
    }
    let after = server_probe::sample(options.server_pid, metrics.as_ref()).await;
    track_rss(&mut rss_max, &after);
    let received_after = received_packets(&joined);
    for (_, participant) in &joined {
        participant.close_loss_window();
    }
    // What was lost just before the window closed may still be retransmitted. Only video is
    // (nobody NACKs Opus), so waiting on audio would always take the whole grace.
    let _ = futures::future::join_all(joined.iter().map(|(_, participant)| {
        participant.wait_until("retransmissions", RETRANSMISSION_GRACE, |observed| {
            observed
                .received
                .values()
                .filter(|track| track.kind == Some(TrackKind::Video))
                .all(|track| track.quality.missing() == 0)
        })
    }))
    .await;
    if options.progress {
        progress_line("leaving");
        eprintln!();
    }

    let observed: Vec<(String, crate::Observed, usize)> = joined
        .iter()
        .map(|(index, participant)| {
            (
                participant.id().to_owned(),
                participant.observed(),
                plan[*index].expected_tracks,
            )
        })
        .collect();
    let mut leaving = JoinSet::new();
    for (_, participant) in joined {
        leaving.spawn(participant.leave());
    }
    let _ = tokio::time::timeout(LEAVE_TIMEOUT, async {
        while leaving.join_next().await.is_some() {}
    })
    .await;
    leaving.abort_all();

    Ok(Report::build(RunRecord {
        target: options.target.name(),
        scenario,
        failed,
        participants: &observed,
        before: &before,
        after: &after,
        rss_max,
        received_packets: (received_before, received_after),
    }))
}

fn plan(options: &RunOptions) -> Vec<Planned> {
    let scenario = &options.scenario;
    let run_id: u32 = rand::random();
    let per_publisher = scenario.tracks_per_publisher();
    // Silent tracks never flow: only the connections are waited for.
    let flowing = usize::from(scenario.send_media);
    let mut plan = Vec::with_capacity(scenario.participants());
    for room in 0..scenario.rooms {
        let room_name = format!("{}-{run_id:08x}-{room}", options.room_prefix);
        for publisher in 0..scenario.publishers {
            plan.push(Planned {
                room: room_name.clone(),
                name: format!("publisher-{room}-{publisher}"),
                publishes: true,
                expected_tracks: (scenario.publishers - 1) * per_publisher * flowing,
            });
        }
        for subscriber in 0..scenario.subscribers {
            plan.push(Planned {
                room: room_name.clone(),
                name: format!("subscriber-{room}-{subscriber}"),
                publishes: false,
                expected_tracks: scenario.publishers * per_publisher * flowing,
            });
        }
    }
    plan
}

fn participant_options(options: &RunOptions, planned: &Planned) -> ParticipantOptions {
    let scenario = &options.scenario;
    let mut tracks = Vec::new();
    if planned.publishes {
        if let Some(video) = scenario.video() {
            tracks.push(TrackSpec::Video(video));
        }
        if scenario.audio {
            tracks.push(TrackSpec::Audio);
        }
    }
    let mut participant = ParticipantOptions::new(
        options.url.clone(),
        planned.room.clone(),
        planned.name.clone(),
    )
    .with_tracks(tracks)
    .with_target(Arc::clone(&options.target));
    participant.media_ip = options.media_ip;
    participant.send_media = scenario.send_media;
    participant.impairment = scenario.impairment;
    // A freeze is a gap of more than three frame intervals.
    participant.freeze_threshold = Duration::from_secs(3) / scenario.fps.max(1);
    participant
}

fn received_packets(participants: &[(usize, Participant)]) -> u64 {
    participants
        .iter()
        .map(|(_, participant)| participant.received_packets())
        .sum()
}

fn connected(participants: &[(usize, Participant)]) -> usize {
    participants
        .iter()
        .filter(|(_, participant)| participant.is_connected())
        .count()
}

fn video_loss(participants: &[(usize, Participant)]) -> f64 {
    let (missing, expected) = participants
        .iter()
        .map(|(_, participant)| participant.video_loss_counts())
        .fold((0, 0), |(missing, expected), (m, e)| {
            (missing + m, expected + e)
        });
    if expected == 0 {
        0.0
    } else {
        missing as f64 / expected as f64
    }
}

fn random_video_mid(participant: &Participant) -> Option<String> {
    let mids = participant.received_mids(TrackKind::Video);
    if mids.is_empty() {
        return None;
    }
    let pick = rand::random::<u64>() as usize % mids.len();
    mids.into_iter().nth(pick)
}

fn track_rss(maximum: &mut Option<u64>, sample: &Sample) {
    if let Some(rss) = sample.rss_bytes {
        *maximum = Some(maximum.map_or(rss, |current| current.max(rss)));
    }
}

fn progress_line(text: &str) {
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "\r\x1b[2K{text}");
    let _ = stderr.flush();
}

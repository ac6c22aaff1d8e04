//! One load test run: start the participants on the ramp-up's schedule, wait for their media to
//! flow, measure for the duration (with churn, if the scenario has it), take everybody out,
//! report. A participant that cannot join is reported with its reason and the run goes on; a
//! refused access token stops the run, since every participant's would be refused alike; a
//! press of the stop button (Ctrl-C) ends the run where it is, and the report covers what was
//! measured. Every loop here is bounded in count and time.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use switchyard::signal::protocol::TrackKind;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use webrtc::peer_connection::RTCPeerConnectionState;

use crate::churn::{self, Tally};
use crate::joining::{churner_options, failure, is_token_code, participant_options};
use crate::participant::Participant;
use crate::plan::{self, Planned};
use crate::progress;
use crate::recorder::Recorder;
use crate::report::{Attendee, Failure, Readings, Report, RunInfo, RunRecord};
use crate::scenario::Scenario;
use crate::server_probe::{self, MetricsEndpoint};
use crate::shard::Shard;
use crate::start::{self, unix_seconds};
use crate::stop::{Stop, stop_button};
use crate::target::{Switchyard, Target};
use crate::tokens::Admission;
use crate::{ClientError, error_code_name};

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
    /// The server's signaling URL: `ws://host:port/ws` or `wss://...` for Switchyard,
    /// `ws://host:8188` for Janus.
    pub url: String,
    /// What to run.
    pub scenario: Scenario,
    /// The server's process id, to sample its CPU time and memory from `/proc`; without it
    /// they come from the server's own metrics.
    pub server_pid: Option<u32>,
    /// The local address participants gather media candidates on.
    pub media_ip: IpAddr,
    /// Room names start with this (the run's id follows, to keep runs apart).
    pub room_prefix: String,
    /// Whether to print a live progress line on stderr.
    pub progress: bool,
    /// TLS settings for `wss://` and `https://`; `None` trusts the system's certificate
    /// authorities.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// How participants get into rooms: no token, minted ones, or given ones.
    pub admission: Admission,
    /// Whether participants use only relayed candidates, through the server's TURN servers.
    pub relay: bool,
    /// Where the server's metrics are read; `None`: next to the signaling URL.
    pub metrics_url: Option<String>,
    /// The share of the scenario this machine runs.
    pub shard: Shard,
    /// When to start, shared by the shards of one run; `None`: at once.
    pub start_at: Option<SystemTime>,
    /// Ends the run early when pressed.
    pub stop: Stop,
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
            tls: None,
            admission: Admission::Open,
            relay: false,
            metrics_url: None,
            shard: Shard::WHOLE,
            start_at: None,
            stop: Stop::never(),
        }
    }
}

/// Who joined, and who could not.
#[derive(Default)]
struct Crowd {
    /// Each participant that joined, with its index in the plan.
    joined: Vec<(usize, Participant)>,
    failures: Vec<Failure>,
    skipped: usize,
}

/// Runs one scenario to its end and reports.
pub async fn run(options: RunOptions) -> Result<Report, ClientError> {
    let scenario = &options.scenario;
    scenario.validate().map_err(ClientError::Scenario)?;
    if scenario.churn.is_some() && matches!(options.admission, Admission::Given(_)) {
        return Err(ClientError::Scenario(
            "churners need tokens of their own: give --token-key to mint them".to_owned(),
        ));
    }
    let run_id = start::run_id(options.start_at);
    let mut plan = plan::plan(scenario, &options.room_prefix, run_id, options.shard);
    let seats: Vec<_> = plan.iter().map(Planned::seat).collect();
    let rooms = options
        .admission
        .rooms(&seats)
        .map_err(|error| ClientError::Scenario(error.to_string()))?;
    for (planned, room) in plan.iter_mut().zip(rooms) {
        planned.room = room;
    }
    let metrics = metrics_endpoint(&options);
    let metrics_problem = match &metrics {
        Some(endpoint) => endpoint.scrape().await.err().map(|error| {
            let problem = format!("{}: {error}", endpoint.url);
            tracing::warn!(
                "the server's metrics cannot be read ({problem}): its cost will be missing from the report; give --metrics-url where they can be (docs/load-testing.md)"
            );
            problem
        }),
        None => None,
    };
    let mut stop = options.stop.clone();

    if let Some(start_at) = options.start_at {
        let wait = start_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        if options.progress {
            progress::line(&format!("starting in {:.0} s", wait.as_secs_f64()));
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.pressed() => {}
        }
    }
    // Participants start on the schedule of the whole run from the shared start time, so a
    // shard that started late catches up rather than lagging the others.
    let now = SystemTime::now();
    let late = options
        .start_at
        .and_then(|start_at| now.duration_since(start_at).ok())
        .unwrap_or_default();
    if late > Duration::from_secs(1) {
        tracing::warn!(
            "started {:.1} s after --start-at: the participants due meanwhile start at once",
            late.as_secs_f64()
        );
    }
    let started = (
        Instant::now()
            .checked_sub(late)
            .unwrap_or_else(Instant::now),
        now.checked_sub(late).unwrap_or(now),
    );
    let recorder = Arc::new(Recorder::start(metrics.clone(), options.server_pid));
    let mut crowd = ramp_up(&options, &plan, started.0, &recorder, &mut stop).await?;

    // Wait until every remote track flows everywhere, so the window measures the steady state.
    if options.progress {
        progress::line("waiting for every track to flow");
    }
    tokio::select! {
        _ = tokio::time::timeout(SETTLE_TIMEOUT, settled(&crowd.joined, &plan)) => {}
        () = stop.pressed() => {}
    }

    // Measure for the duration, asking for keyframes on the way, with churn if asked for.
    for (_, participant) in &crowd.joined {
        participant.open_loss_window();
    }
    let before = server_probe::sample(options.server_pid, metrics.as_ref()).await;
    let received_before = received_packets(&crowd.joined);
    let tally = Arc::new(Mutex::new(Tally::default()));
    measure(
        &options, &plan, &crowd, &recorder, &tally, run_id, &mut stop,
    )
    .await;
    let after = server_probe::sample(options.server_pid, metrics.as_ref()).await;
    let received_after = received_packets(&crowd.joined);
    for (_, participant) in &crowd.joined {
        participant.close_loss_window();
    }
    // What was lost just before the window closed may still be retransmitted. Only video is
    // (nobody NACKs Opus), so waiting on audio would always take the whole grace.
    if !stop.is_pressed() {
        let _ = futures::future::join_all(crowd.joined.iter().map(|(_, participant)| {
            participant.wait_until("retransmissions", RETRANSMISSION_GRACE, |observed| {
                observed
                    .received
                    .values()
                    .filter(|track| track.kind == Some(TrackKind::Video))
                    .all(|track| track.quality.missing() == 0)
            })
        }))
        .await;
    }
    if options.progress {
        progress::line("leaving");
        progress::end();
    }

    let observed: Vec<Attendee> = crowd
        .joined
        .iter()
        .map(|(index, participant)| Attendee {
            id: participant.id().to_owned(),
            name: plan[*index].name.clone(),
            room: plan[*index].room.clone(),
            impaired: plan[*index].impaired && !scenario.impairment.is_none(),
            observed: participant.observed(),
            expected_tracks: plan[*index].expected_tracks,
        })
        .collect();
    let series = recorder.finish();
    let rss_max = recorder
        .rss_max()
        .max(before.rss_bytes)
        .max(after.rss_bytes);
    let mut leaving = JoinSet::new();
    for (_, participant) in std::mem::take(&mut crowd.joined) {
        leaving.spawn(participant.leave());
    }
    let _ = tokio::time::timeout(LEAVE_TIMEOUT, async {
        while leaving.join_next().await.is_some() {}
    })
    .await;
    leaving.abort_all();

    let readings = Readings {
        opened: (&before).into(),
        closed: (&after).into(),
    };
    let churn = scenario.churn.map(|_| tally.lock().report());
    Ok(Report::build(RunRecord {
        target: options.target.name(),
        scenario,
        run: RunInfo {
            url: options.url.clone(),
            run_id: format!("{run_id:08x}"),
            shard: options.shard,
            merged_shards: 1,
            started_unix: unix_seconds(started.1),
            window_unix: (readings.opened.unix, readings.closed.unix),
            interrupted: stop.is_pressed(),
            metrics_problem,
        },
        failures: crowd.failures,
        skipped: crowd.skipped,
        participants: &observed,
        readings,
        rss_max,
        received_packets: (received_before, received_after),
        series,
        churn,
    }))
}

/// Where the server's metrics are read, if they can be.
fn metrics_endpoint(options: &RunOptions) -> Option<MetricsEndpoint> {
    let url = options
        .metrics_url
        .clone()
        .or_else(|| options.target.metrics_url(&options.url))?;
    let endpoint = match (&options.tls, url.starts_with("https:")) {
        (Some(tls), true) => MetricsEndpoint::with_tls(url, Arc::clone(tls)),
        _ => MetricsEndpoint::new(url, None),
    };
    endpoint
        .inspect_err(|error| tracing::warn!(%error, "the server's metrics will not be read"))
        .ok()
}

/// Starts every planned participant at its moment, and waits for each to join or fail.
async fn ramp_up(
    options: &RunOptions,
    plan: &[Planned],
    start: Instant,
    recorder: &Recorder,
    stop: &mut Stop,
) -> Result<Crowd, ClientError> {
    let mut crowd = Crowd::default();
    let mut joins = JoinSet::new();
    let mut next = 0;
    let mut second = tokio::time::interval(Duration::from_secs(1));
    second.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let due = plan
            .get(next)
            .map(|planned| start + planned.start_offset(&options.scenario));
        if due.is_none() && joins.is_empty() {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep_until(due.unwrap_or(start)), if due.is_some() => {
                let planned = &plan[next];
                let joining = participant_options(options, next, planned);
                joins.spawn(async move {
                    let joining = match joining {
                        Ok(joining) => joining,
                        Err(error) => return (next, Err(error)),
                    };
                    let joined = tokio::time::timeout(JOIN_TIMEOUT, Participant::join(joining))
                        .await
                        .unwrap_or_else(|_| {
                            Err(ClientError::Timeout(format!("`joined` within {JOIN_TIMEOUT:?}")))
                        });
                    (next, joined)
                });
                next += 1;
            }
            Some(result) = joins.join_next() => {
                let Ok((index, joined)) = result else { continue };
                let planned = &plan[index];
                match joined {
                    Ok(participant) => {
                        let observed = participant.observed();
                        if let (Some(started), Some(joined)) = (observed.started_at, observed.joined_at) {
                            recorder.joined(joined.saturating_duration_since(started));
                        }
                        recorder.add(participant.meter());
                        crowd.joined.push((index, participant));
                    }
                    Err(ClientError::Refused(code, message)) if is_token_code(code) => {
                        joins.abort_all();
                        return Err(ClientError::TokenRefused {
                            participant: planned.name.clone(),
                            code: error_code_name(code),
                            message,
                        });
                    }
                    Err(error) => {
                        tracing::warn!(%error, participant = %planned.name, "could not join");
                        crowd.failures.push(failure(&planned.name, &planned.room, &error));
                    }
                }
            }
            _ = second.tick(), if options.progress => {
                progress::line(&format!(
                    "starting participants: {}/{} started, {} joined, {} failed",
                    next,
                    plan.len(),
                    crowd.joined.len(),
                    crowd.failures.len()
                ));
            }
            () = stop.pressed() => {
                crowd.skipped = plan.len() - next + joins.len();
                joins.abort_all();
                break;
            }
        }
    }
    crowd.joined.sort_by_key(|(index, _)| *index);
    Ok(crowd)
}

/// Measures for the scenario's duration, sends PLIs, runs the churn, shows progress.
async fn measure(
    options: &RunOptions,
    plan: &[Planned],
    crowd: &Crowd,
    recorder: &Arc<Recorder>,
    tally: &Arc<Mutex<Tally>>,
    run_id: u32,
    stop: &mut Stop,
) {
    let scenario = &options.scenario;
    let opened = Instant::now();
    let deadline = opened + scenario.duration;
    let churners = churn::churners(scenario, options.shard, |room| {
        plan::room_name(&options.room_prefix, run_id, room)
    });
    let mut next_churner = 0;
    let mut churning = JoinSet::new();
    let (close_window, window_closed) = stop_button();
    let mut next_pli: Vec<Instant> = crowd
        .joined
        .iter()
        .map(|_| opened + scenario.pli_interval.mul_f64(rand::random::<f64>()))
        .collect();
    let mut second = tokio::time::interval(Duration::from_secs(1));
    second.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        if Instant::now() >= deadline || stop.is_pressed() {
            break;
        }
        let next = next_pli
            .iter()
            .copied()
            .min()
            .unwrap_or(deadline)
            .min(deadline);
        let churn_due = churners
            .get(next_churner)
            .map(|churner| opened + churner.offset);
        tokio::select! {
            _ = second.tick(), if options.progress => {
                progress::line(&format!(
                    "{:>4.0} s left | {}/{} connected | {} packets/s received (last {} s) | video loss so far {:.3}%",
                    deadline.saturating_duration_since(Instant::now()).as_secs_f64(),
                    connected(&crowd.joined),
                    plan.len(),
                    recorder.recent_rate().map_or("…".to_owned(), |rate| format!("{rate:.0}")),
                    progress::RATE_WINDOW.as_secs(),
                    video_loss(&crowd.joined) * 100.0
                ));
            }
            () = tokio::time::sleep_until(next), if !scenario.pli_interval.is_zero() => {
                for (slot, (_, participant)) in next_pli.iter_mut().zip(&crowd.joined) {
                    if *slot <= Instant::now() {
                        *slot += scenario.pli_interval;
                        if let Some(mid) = random_video_mid(participant) {
                            participant.send_pli(&mid, 1);
                        }
                    }
                }
            }
            () = tokio::time::sleep_until(churn_due.unwrap_or(deadline)), if churn_due.is_some() => {
                let churner = churners[next_churner].clone();
                next_churner += 1;
                let joining = churner_options(options, &churner);
                let expected = scenario.publishers
                    * scenario.tracks_per_publisher()
                    * usize::from(scenario.send_media);
                let stay = scenario.churn.map_or(Duration::ZERO, |churn| churn.stay);
                churning.spawn(churn::churn_once(
                    churner,
                    joining,
                    expected,
                    stay,
                    Arc::clone(recorder),
                    Arc::clone(tally),
                    window_closed.clone(),
                ));
            }
            Some(_) = churning.join_next(), if !churning.is_empty() => {}
            () = tokio::time::sleep_until(deadline) => break,
            () = stop.pressed() => break,
        }
    }
    // Churners still in the rooms leave with the window.
    close_window.press();
    let _ = tokio::time::timeout(LEAVE_TIMEOUT, async {
        while churning.join_next().await.is_some() {}
    })
    .await;
    churning.abort_all();
}

/// Waits until every participant receives every remote track it should.
async fn settled(joined: &[(usize, Participant)], plan: &[Planned]) {
    futures::future::join_all(joined.iter().map(|(index, participant)| {
        let expected = plan[*index].expected_tracks;
        participant.wait_until("every remote track", SETTLE_TIMEOUT, move |observed| {
            // A video the server paused for lack of downlink will not flow until there is room.
            observed
                .received
                .values()
                .filter(|track| (track.intact > 0 || track.paused) && !track.participant.is_empty())
                .count()
                >= expected
                && (expected > 0
                    || observed.connection_state == Some(RTCPeerConnectionState::Connected))
        })
    }))
    .await;
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

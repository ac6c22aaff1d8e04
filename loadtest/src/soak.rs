//! The soak: thousands of join/leave cycles against a running server, with and without media,
//! and what the server holds between them (resident memory, file descriptors, threads, live
//! counts), read from its own `/metrics` and `/api/counts`. A server that leaks a task, a
//! socket or a buffer per session shows it here as a line that climbs.
//!
//! Every cycle has a deadline and every phase a fixed count, so the soak stops by itself.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;
use switchyard::Counts;
use switchyard::signal::protocol::{ClientMessage, ServerMessage};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};

use crate::ClientError;
use crate::participant::{Participant, ParticipantOptions, TrackSpec};
use crate::server_probe::{self, MetricsEndpoint};
use crate::signaling::{self, Received};

/// How long one signaling cycle (connect, join, leave, close) may take.
const SIGNALING_CYCLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one media cycle may take to get the subscriber receiving both tracks.
const MEDIA_CYCLE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the server may take to bring every count back to zero after a phase.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// The server's signaling URL.
    pub url: String,
    /// Join/leave cycles without media.
    pub signaling_cycles: usize,
    /// Cycles of a publisher and a subscriber that get media flowing, then leave.
    pub media_cycles: usize,
    /// Signaling cycles at once (media cycles run at a quarter of it, at least one).
    pub concurrency: usize,
    /// Where the participants gather media candidates.
    pub media_ip: IpAddr,
    /// Whether to print progress on stderr.
    pub progress: bool,
}

/// What the server holds at one moment.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Footprint {
    /// Resident memory, bytes.
    pub rss_bytes: f64,
    /// Open file descriptors.
    pub open_fds: f64,
    /// Threads.
    pub threads: f64,
    /// Rooms, participants, connections, publications, subscriptions.
    pub counts: Counts,
}

/// One phase's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    /// What it did.
    pub name: String,
    /// Cycles run.
    pub cycles: usize,
    /// Cycles that failed, with the first few reasons.
    pub failed: usize,
    /// The first distinct failure reasons.
    pub reasons: Vec<String>,
    /// Wall time of the phase, seconds.
    pub seconds: f64,
    /// The server after the phase, once every count was back to zero (or the wait ran out).
    pub after: Footprint,
}

/// The soak's result.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    /// The server before anything ran.
    pub start: Footprint,
    /// The phases in order: a short warm-up, the signaling cycles, the media cycles.
    pub phases: Vec<Phase>,
}

impl SoakReport {
    /// Cycles that failed in any phase.
    pub fn failed(&self) -> usize {
        self.phases.iter().map(|phase| phase.failed).sum()
    }

    /// What changed from the end of the warm-up to the end, in one sentence; `None` without a
    /// warm-up or without cycles after it.
    pub fn after_warm_up(&self) -> Option<String> {
        let warmed = self
            .phases
            .iter()
            .rev()
            .find(|phase| phase.name.starts_with("warm-up"))?;
        let measured: Vec<&Phase> = self
            .phases
            .iter()
            .filter(|phase| !phase.name.starts_with("warm-up"))
            .collect();
        let end = measured.last()?;
        let cycles: usize = measured.iter().map(|phase| phase.cycles).sum();
        let rss = end.after.rss_bytes - warmed.after.rss_bytes;
        Some(format!(
            "From the end of the warm-up to the end, over {cycles} cycles: resident memory {:+.1} MiB \
             ({:+.0} bytes a cycle), file descriptors {:+}, threads {:+}.",
            rss / (1024.0 * 1024.0),
            rss / cycles.max(1) as f64,
            end.after.open_fds - warmed.after.open_fds,
            end.after.threads - warmed.after.threads,
        ))
    }

    /// A Markdown table: one row per moment, then each phase's failures.
    pub fn markdown(&self) -> String {
        let mut table = String::from(
            "| After | Cycles | Failed | Seconds | RSS (MiB) | File descriptors | Threads | Live counts |\n\
             |---|---:|---:|---:|---:|---:|---:|---|\n",
        );
        let row = |table: &mut String,
                   name: &str,
                   cycles: &str,
                   failed: &str,
                   seconds: &str,
                   at: &Footprint| {
            let _ = writeln!(
                table,
                "| {name} | {cycles} | {failed} | {seconds} | {:.1} | {} | {} | {} |",
                at.rss_bytes / (1024.0 * 1024.0),
                at.open_fds,
                at.threads,
                if at.counts.is_zero() {
                    "all zero".to_owned()
                } else {
                    format!("{:?}", at.counts)
                }
            );
        };
        row(&mut table, "start", "", "", "", &self.start);
        for phase in &self.phases {
            row(
                &mut table,
                &phase.name,
                &phase.cycles.to_string(),
                &phase.failed.to_string(),
                &format!("{:.1}", phase.seconds),
                &phase.after,
            );
        }
        if let Some(change) = self.after_warm_up() {
            let _ = writeln!(table, "\n{change}");
        }
        for phase in self.phases.iter().filter(|phase| phase.failed > 0) {
            let _ = writeln!(table, "\n{}: {}", phase.name, phase.reasons.join("; "));
        }
        table
    }
}

/// Runs the soak.
pub async fn soak(options: SoakOptions) -> Result<SoakReport, ClientError> {
    let metrics_url = server_probe::metrics_url(&options.url)
        .ok_or_else(|| ClientError::Scenario(format!("no metrics URL next to {}", options.url)))?;
    let server = Server::new(metrics_url)?;
    let start = server.footprint().await?;
    let concurrency = options.concurrency.max(1);
    let media_concurrency = (concurrency / 4).max(1);
    let mut phases = Vec::new();
    // The first sessions fill pools and caches that stay (worker buffers, allocator arenas):
    // the warm-up keeps them out of the comparison.
    let plan = [
        (
            "warm-up: signaling",
            options.signaling_cycles.min(200),
            false,
        ),
        ("warm-up: media", options.media_cycles.min(20), true),
        ("signaling cycles", options.signaling_cycles, false),
        ("media cycles", options.media_cycles, true),
    ];
    for (name, cycles, media) in plan {
        if cycles == 0 {
            continue;
        }
        let started = Instant::now();
        let outcome = if media {
            run_cycles(&options, name, cycles, media_concurrency, media_cycle).await
        } else {
            run_cycles(&options, name, cycles, concurrency, signaling_cycle).await
        };
        let seconds = started.elapsed().as_secs_f64();
        let after = server.settled().await?;
        phases.push(Phase {
            name: name.to_owned(),
            cycles,
            failed: outcome.failed,
            reasons: outcome.reasons,
            seconds,
            after,
        });
    }
    Ok(SoakReport { start, phases })
}

/// Failures of one phase.
#[derive(Debug, Default)]
struct Outcome {
    failed: usize,
    reasons: Vec<String>,
}

/// Runs `cycles` cycles of `cycle`, `concurrency` at a time.
async fn run_cycles<F, Fut>(
    options: &SoakOptions,
    name: &str,
    cycles: usize,
    concurrency: usize,
    cycle: F,
) -> Outcome
where
    F: Fn(Arc<SoakOptions>, usize) -> Fut,
    Fut: Future<Output = Result<(), ClientError>> + Send + 'static,
{
    let options = Arc::new(options.clone());
    let next = Arc::new(AtomicUsize::new(0));
    let mut running = JoinSet::new();
    let mut outcome = Outcome::default();
    let mut done = 0;
    let mut started = 0;
    while done < cycles {
        while started < cycles && running.len() < concurrency {
            let index = next.fetch_add(1, Ordering::Relaxed);
            running.spawn(cycle(Arc::clone(&options), index));
            started += 1;
        }
        let Some(result) = running.join_next().await else {
            break;
        };
        done += 1;
        let error = match result {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(error) => Some(format!("the cycle's task failed: {error}")),
        };
        if let Some(error) = error {
            outcome.failed += 1;
            if outcome.reasons.len() < 5 && !outcome.reasons.contains(&error) {
                outcome.reasons.push(error);
            }
        }
        if options.progress && done % 100 == 0 {
            eprint!("\r{name}: {done}/{cycles}, {} failed   ", outcome.failed);
        }
    }
    if options.progress {
        eprintln!("\r{name}: {done}/{cycles}, {} failed   ", outcome.failed);
    }
    outcome
}

/// Connects, joins one of a few shared rooms (so the others see people come and go), leaves,
/// and waits for the server to close the socket.
async fn signaling_cycle(options: Arc<SoakOptions>, index: usize) -> Result<(), ClientError> {
    let room = format!("soak-signaling-{}", index % options.concurrency.max(1));
    let work = async {
        let (mut sender, mut receiver) = signaling::connect(&options.url).await?;
        sender
            .send(&ClientMessage::Join {
                room,
                name: format!("soak {index}"),
                token: None,
            })
            .await?;
        loop {
            match receiver.next().await {
                Some(Received::Message(ServerMessage::Joined { .. })) => break,
                Some(Received::Message(ServerMessage::Error { code, message })) => {
                    return Err(ClientError::Refused(code, message));
                }
                Some(Received::Closed(code)) => {
                    return Err(ClientError::Signaling(format!(
                        "closed with {code:?} before joined"
                    )));
                }
                None => return Err(ClientError::Signaling("closed before joined".to_owned())),
                Some(_) => {}
            }
        }
        sender.send(&ClientMessage::Leave {}).await?;
        loop {
            match receiver.next().await {
                Some(Received::Closed(Some(1000))) => return Ok(()),
                Some(Received::Closed(code)) => {
                    return Err(ClientError::Signaling(format!(
                        "leave closed with {code:?}, not 1000"
                    )));
                }
                None => {
                    return Err(ClientError::Signaling(
                        "no close frame after leave".to_owned(),
                    ));
                }
                Some(_) => {}
            }
        }
    };
    timeout(SIGNALING_CYCLE_TIMEOUT, work)
        .await
        .map_err(|_| ClientError::Timeout("a signaling cycle".to_owned()))?
}

/// A publisher with a camera and a microphone and a subscriber meet in a fresh room; once the
/// subscriber receives both tracks intact, both leave.
async fn media_cycle(options: Arc<SoakOptions>, index: usize) -> Result<(), ClientError> {
    let room = format!("soak-media-{index}");
    let join = |name: &str, tracks: Vec<TrackSpec>| {
        let mut participant = ParticipantOptions::new(options.url.clone(), room.clone(), name);
        participant.media_ip = options.media_ip;
        Participant::join(participant.with_tracks(tracks))
    };
    let publisher = join(
        "publisher",
        vec![TrackSpec::Video(Default::default()), TrackSpec::Audio],
    )
    .await?;
    let subscriber = match join("subscriber", Vec::new()).await {
        Ok(subscriber) => subscriber,
        Err(error) => {
            publisher.leave().await;
            return Err(error);
        }
    };
    let flowing = subscriber
        .wait_until("both tracks flowing", MEDIA_CYCLE_TIMEOUT, |observed| {
            observed.flowing_tracks() == 2
        })
        .await;
    publisher.leave().await;
    subscriber.leave().await;
    flowing
}

/// The server's metrics and counts endpoints.
struct Server {
    metrics: MetricsEndpoint,
    counts_url: String,
}

impl Server {
    fn new(metrics_url: String) -> Result<Self, ClientError> {
        let counts_url = metrics_url.replace("/metrics", "/api/counts");
        let metrics = MetricsEndpoint::new(metrics_url, None)
            .map_err(|error| ClientError::Scenario(format!("metrics client: {error}")))?;
        Ok(Self {
            metrics,
            counts_url,
        })
    }

    async fn footprint(&self) -> Result<Footprint, ClientError> {
        let unreadable = |error: reqwest::Error| {
            ClientError::Scenario(format!("reading the server's metrics: {error}"))
        };
        let metrics = self.metrics.scrape().await.map_err(unreadable)?;
        let counts = self
            .metrics
            .client
            .get(&self.counts_url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unreadable)?
            .text()
            .await
            .map_err(unreadable)?;
        let counts: Counts = serde_json::from_str(&counts).map_err(|error| {
            ClientError::Scenario(format!("reading the server's counts: {error}"))
        })?;
        let read = |name: &str| {
            metrics.get(name).copied().ok_or_else(|| {
                ClientError::Scenario(format!("the server's metrics have no `{name}`"))
            })
        };
        Ok(Footprint {
            rss_bytes: read("process_resident_memory_bytes")?,
            open_fds: read("process_open_fds")?,
            threads: read("process_threads")?,
            counts,
        })
    }

    /// The footprint once every count is back to zero, or after [`SETTLE_TIMEOUT`].
    async fn settled(&self) -> Result<Footprint, ClientError> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let footprint = self.footprint().await?;
            if footprint.counts.is_zero() || Instant::now() >= deadline {
                return Ok(footprint);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

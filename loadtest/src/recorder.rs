//! The run's per-second sampler: on every wall-clock second it takes what each participant
//! received during the second that just ended, and, on its own task so that a slow scrape
//! never delays the participants' sampling, reads the server's CPU time and forwarded-packet
//! counter. [`Recorder::finish`] turns it all into the report's [`Series`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::histogram::EncodedHistogram;
use crate::interval::{Interval, interval_histogram};
use crate::participant::Meter;
use crate::progress::RecentRate;
use crate::series::{LossCounts, Quantiles, SecondPoint, Series};
use crate::server_probe::{self, MetricsEndpoint};
use crate::start::unix_seconds;

/// The server counter the forwarded-packets series is read from.
const FORWARDED_COUNTER: &str = "switchyard_rtp_packets_out_total";

/// One second, while it is being filled.
struct Filling {
    participants: usize,
    joins: Histogram<u64>,
    received: Interval,
}

impl Default for Filling {
    fn default() -> Self {
        Self {
            participants: 0,
            joins: interval_histogram(),
            received: Interval::default(),
        }
    }
}

/// The server's running totals at the end of a second.
#[derive(Debug, Clone, Copy, Default)]
struct ServerTotals {
    cpu_seconds: Option<f64>,
    forwarded: Option<f64>,
}

#[derive(Default)]
struct State {
    meters: Vec<Meter>,
    seconds: BTreeMap<u64, Filling>,
    loss: BTreeMap<u64, LossCounts>,
    server: BTreeMap<u64, ServerTotals>,
    received_total: u64,
    recent: RecentRate,
    rss_max: Option<u64>,
    /// When sampling started, Unix seconds.
    started: f64,
}

impl State {
    fn second(&mut self, unix: u64) -> &mut Filling {
        self.seconds.entry(unix).or_default()
    }

    /// Takes what `meter` holds into `second`.
    fn take(&mut self, meter: &Meter, second: u64, last: bool) {
        let mut taken = Interval::default();
        meter.take_interval(second, last, &mut taken);
        self.received_total += taken.packets;
        for (judged, loss) in std::mem::take(&mut taken.loss) {
            self.loss.entry(judged).or_default().add(&loss);
        }
        taken.take(&mut self.second(second).received);
    }

    fn sample_participants(&mut self, second: u64) {
        let meters = std::mem::take(&mut self.meters);
        for meter in &meters {
            self.take(meter, second, false);
        }
        self.meters = meters;
        let present = self.meters.len();
        self.second(second).participants = present;
        let total = self.received_total;
        self.recent.push(Instant::now(), total);
    }
}

/// The per-second sampler of one run; see the module documentation.
pub struct Recorder {
    state: Arc<Mutex<State>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Recorder {
    /// Starts sampling; the server is read from `metrics`, or its CPU time from `/proc` when
    /// `server_pid` is given.
    pub fn start(metrics: Option<MetricsEndpoint>, server_pid: Option<u32>) -> Self {
        let state = Arc::new(Mutex::new(State {
            started: unix_seconds(SystemTime::now()),
            ..State::default()
        }));
        let participants = {
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                loop {
                    let second = next_whole_second().await;
                    state.lock().sample_participants(second);
                }
            })
        };
        let server = {
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                loop {
                    let second = next_whole_second().await;
                    let sample = server_probe::sample(server_pid, metrics.as_ref()).await;
                    let totals = ServerTotals {
                        cpu_seconds: sample.cpu_seconds,
                        forwarded: sample.metrics.get(FORWARDED_COUNTER).copied(),
                    };
                    let mut state = state.lock();
                    state.server.insert(second, totals);
                    state.rss_max = state.rss_max.max(sample.rss_bytes);
                }
            })
        };
        Self {
            state,
            tasks: vec![participants, server],
        }
    }

    /// Samples `meter` from now on.
    pub fn add(&self, meter: Meter) {
        self.state.lock().meters.push(meter);
    }

    /// Takes what `meter` still holds, and stops sampling it: its participant is leaving.
    pub fn remove(&self, meter: &Meter) {
        let second = current_second();
        let mut state = self.state.lock();
        state.meters.retain(|kept| !kept.same_as(meter));
        state.take(meter, second, true);
    }

    /// Counts a participant that joined now, after `took` from socket to `joined`.
    pub fn joined(&self, took: Duration) {
        let micros = (took.as_micros() as u64).max(1);
        self.state
            .lock()
            .second(current_second())
            .joins
            .saturating_record(micros);
    }

    /// Packets received per second lately, for the progress line.
    pub fn recent_rate(&self) -> Option<f64> {
        self.state.lock().recent.per_second()
    }

    /// The highest resident memory of the server seen so far.
    pub fn rss_max(&self) -> Option<u64> {
        self.state.lock().rss_max
    }

    /// Stops sampling, takes what every participant still holds, and returns the series.
    pub fn finish(&self) -> Series {
        for task in &self.tasks {
            task.abort();
        }
        let finished = unix_seconds(SystemTime::now());
        let second = finished as u64;
        let mut state = self.state.lock();
        let meters = std::mem::take(&mut state.meters);
        for meter in &meters {
            state.take(meter, second, true);
        }
        let present = meters.len();
        state.second(second).participants = present;
        let state = &mut *state;
        let mut points = Vec::with_capacity(state.seconds.len());
        for (unix, filling) in std::mem::take(&mut state.seconds) {
            // The server's totals are read at the end of each second: a second's share is
            // the difference from the end of the one before.
            let (end, start) = (
                state.server.get(&unix),
                state.server.get(&unix.wrapping_sub(1)),
            );
            let delta = |read: fn(&ServerTotals) -> Option<f64>| Some(read(end?)? - read(start?)?);
            let start = (unix as f64).max(state.started);
            let end = ((unix + 1) as f64).min(finished);
            points.push(SecondPoint {
                unix,
                covered: (end - start).clamp(0.0, 1.0),
                participants: filling.participants,
                joins: filling.joins.len(),
                join_us: EncodedHistogram::encode(&filling.joins),
                join_ms: Quantiles::of(&filling.joins),
                received_packets: filling.received.packets,
                received_bytes: filling.received.bytes,
                loss: state.loss.get(&unix).copied().unwrap_or_default(),
                latency_us: EncodedHistogram::encode(&filling.received.latency),
                latency_ms: Quantiles::of(&filling.received.latency),
                freezes: filling.received.freezes,
                server_forwarded_packets: delta(|totals| totals.forwarded),
                server_cpu_seconds: delta(|totals| totals.cpu_seconds),
            });
        }
        Series(points)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The wall-clock second now in progress.
fn current_second() -> u64 {
    unix_seconds(SystemTime::now()) as u64
}

/// Sleeps until the next whole wall-clock second, and returns the one that just ended. Ticks
/// fall on whole seconds on every machine, so the shards' seconds line up.
async fn next_whole_second() -> u64 {
    let now = unix_seconds(SystemTime::now());
    let next = now.floor() + 1.0;
    tokio::time::sleep(Duration::from_secs_f64((next - now).max(0.0))).await;
    next as u64 - 1
}

//! The worker loop: commands, crossings, sockets and timers in; datagrams out, in batches.
//!
//! One pass: wait for a command, a crossing from another worker, a readable socket (on the
//! reader) or the earliest deadline; feed what came to the connections it belongs to; let each
//! touched connection report what its core produced, delivering forwarded packets and feedback
//! to the connections they are for (which may touch more connections, or wait for another
//! worker); then hand each other worker what is theirs in one message, collect every touched
//! connection's datagrams into one batch per socket and send each batch with one system call.

mod delivery;
mod requests;

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

use rtc::shared::{TransportContext, TransportProtocol};
use tokio::sync::mpsc;

use crate::engine::busy::{Busy, BusyMeter, thread_cpu_time};
use crate::engine::command::Command;
use crate::engine::crew::{Arrival, Crew, Crossing, READER};
use crate::engine::egress::{Egress, Streams};
use crate::engine::ingress::{Ingress, Reading, Ready};
use crate::engine::timers::Timers;
use crate::ids::ConnectionId;
use crate::metrics::Metrics;
use crate::net::demux::{Path, Transport};
use crate::rtc::MediaSettings;
use crate::rtc::connection::{Connection, Effects, Notice};

/// Rounds of delivering effects in one pass: a packet may cause feedback, feedback an RTCP
/// packet; nothing needs more.
const EFFECT_ROUNDS: usize = 4;

/// What one worker is given to start.
pub struct Setup {
    /// The media settings every connection is built with.
    pub settings: Arc<MediaSettings>,
    /// The process's counters.
    pub metrics: Arc<Metrics>,
    /// Duplicates of the media sockets, to write.
    pub writers: Vec<std::net::UdpSocket>,
    /// For the reader only: the media sockets and ICE-TCP listeners to read.
    pub reading: Option<Reading>,
    /// The ICE-TCP streams, shared by the crew.
    pub streams: Arc<Streams>,
    /// The way to the other workers.
    pub crew: Crew,
    /// Where the worker says how busy it is.
    pub busy: Arc<Busy>,
    /// What the other workers send this one.
    pub crossings: mpsc::UnboundedReceiver<Crossing>,
    /// What signaling asks of this worker's connections.
    pub commands: mpsc::UnboundedReceiver<Command>,
}

/// A connection and where its session hears from it.
struct Peer {
    connection: Connection,
    events: mpsc::UnboundedSender<Vec<Notice>>,
    /// The ufrag the media port routes to it.
    ufrag: Option<String>,
}

struct Worker {
    settings: Arc<MediaSettings>,
    metrics: Arc<Metrics>,
    /// The sockets and the table, on the reader only.
    ingress: Option<Ingress>,
    egress: Egress,
    crew: Crew,
    busy: BusyMeter,
    peers: HashMap<ConnectionId, Peer>,
    timers: Timers,
    touched: HashSet<ConnectionId>,
    /// Connections whose core panicked this pass: dropped once the pass ends.
    failed: Vec<ConnectionId>,
    effects: Effects,
    arrivals: Vec<Arrival>,
    due: Vec<ConnectionId>,
}

/// Runs a worker on this thread until [`Command::Stop`] or until the engine is gone; says on
/// `started` whether it could start.
pub fn run(setup: Setup, started: std::sync::mpsc::Sender<io::Result<()>>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = started.send(Err(error));
            return;
        }
    };
    runtime.block_on(async move {
        let Setup {
            settings,
            metrics,
            writers,
            reading,
            streams,
            crew,
            busy,
            crossings,
            commands,
        } = setup;
        let ingress = reading
            .map(|reading| Ingress::new(reading, Arc::clone(&streams), Arc::clone(&metrics)))
            .transpose();
        let egress = Egress::new(writers, streams, Arc::clone(&metrics));
        let (ingress, egress) = match (ingress, egress) {
            (Ok(ingress), Ok(egress)) => (ingress, egress),
            (Err(error), _) | (_, Err(error)) => {
                let _ = started.send(Err(error));
                return;
            }
        };
        let _ = started.send(Ok(()));
        let mut worker = Worker {
            settings,
            metrics,
            ingress,
            egress,
            crew,
            busy: BusyMeter::new(busy, Instant::now(), thread_cpu_time()),
            peers: HashMap::new(),
            timers: Timers::default(),
            touched: HashSet::new(),
            failed: Vec::new(),
            effects: Effects::default(),
            arrivals: Vec::new(),
            due: Vec::new(),
        };
        worker.serve(commands, crossings).await;
    });
}

/// What woke the worker.
enum Wake {
    Command(Option<Command>),
    Crossing(Crossing),
    Ready(Ready),
    Timer,
}

impl Worker {
    async fn serve(
        &mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut crossings: mpsc::UnboundedReceiver<Crossing>,
    ) {
        let sleep = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(sleep);
        loop {
            // Wake at least once a window, so that an idle worker says it is idle.
            let window_end = self.busy.window_end();
            let deadline = self
                .timers
                .next()
                .map_or(window_end, |next| next.min(window_end));
            sleep.as_mut().reset(deadline.into());
            let wake = std::future::poll_fn(|cx| {
                if let Poll::Ready(command) = commands.poll_recv(cx) {
                    return Poll::Ready(Wake::Command(command));
                }
                if let Poll::Ready(Some(crossing)) = crossings.poll_recv(cx) {
                    return Poll::Ready(Wake::Crossing(crossing));
                }
                if let Some(ingress) = &mut self.ingress
                    && let Poll::Ready(ready) = ingress.poll_ready(cx)
                {
                    return Poll::Ready(Wake::Ready(ready));
                }
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::Timer);
                }
                Poll::Pending
            })
            .await;
            let now = Instant::now();
            match wake {
                Wake::Command(None) | Wake::Command(Some(Command::Stop)) => break,
                Wake::Command(Some(command)) => {
                    self.on_command(command, now);
                    // Take whatever else is waiting: one pass sends for all of it.
                    while let Ok(command) = commands.try_recv() {
                        if matches!(command, Command::Stop) {
                            self.end_pass(now);
                            return;
                        }
                        self.on_command(command, now);
                    }
                }
                Wake::Crossing(crossing) => {
                    self.on_crossing(crossing, now);
                    while let Ok(crossing) = crossings.try_recv() {
                        self.on_crossing(crossing, now);
                    }
                }
                Wake::Ready(ready) => self.on_ready(ready, now),
                Wake::Timer => self.on_timers(now),
            }
            self.end_pass(now);
        }
        for (_, mut peer) in std::mem::take(&mut self.peers) {
            peer.connection.close(&mut self.effects);
        }
    }

    /// Settles the pass, hands the other workers what is theirs and sends the datagrams.
    fn end_pass(&mut self, now: Instant) {
        self.settle(now);
        let crossed = self.crew.ship();
        if crossed > 0 {
            self.metrics
                .worker_crossings
                .fetch_add(crossed as u64, Ordering::Relaxed);
        }
        self.egress.flush();
        self.busy.tick(now, thread_cpu_time);
    }

    fn on_ready(&mut self, ready: Ready, now: Instant) {
        let Some(ingress) = &mut self.ingress else {
            return;
        };
        let mut arrivals = std::mem::take(&mut self.arrivals);
        match ready {
            Ready::Socket(first) => ingress.receive(first, &mut arrivals),
            Ready::Stream(event) => ingress.on_stream(event, &mut arrivals),
        }
        for arrival in arrivals.drain(..) {
            if self.crew.owns(arrival.connection) {
                self.read(arrival, now);
            } else {
                self.crew.pass_arrival(arrival);
            }
        }
        self.arrivals = arrivals;
    }

    /// Feeds a datagram to the connection it is for, on this worker.
    fn read(&mut self, arrival: Arrival, now: Instant) {
        let Arrival {
            connection: id,
            path,
            datagram,
        } = arrival;
        if let Some(peer) = self.peers.get_mut(&id) {
            guarded(id, &mut self.failed, || {
                peer.connection
                    .handle_read(now, transport_of(path), datagram);
            });
            self.touched.insert(id);
        }
    }

    fn on_crossing(&mut self, crossing: Crossing, now: Instant) {
        match crossing {
            Crossing::Arrivals(arrivals) => {
                for arrival in arrivals {
                    self.read(arrival, now);
                }
            }
            Crossing::Effects(effects) => {
                self.effects.rtp.extend(effects.rtp);
                self.effects.upstream.extend(effects.upstream);
            }
            Crossing::Issue { ufrag, connection } => {
                if let Some(ingress) = &mut self.ingress {
                    ingress.issue(ufrag, connection);
                }
            }
            Crossing::Forget(connection) => {
                if let Some(ingress) = &mut self.ingress {
                    ingress.forget(connection);
                }
            }
        }
    }

    /// Tells the reader about a table change, directly when this worker is the reader.
    fn tell_reader(&mut self, crossing: Crossing) {
        match &mut self.ingress {
            Some(ingress) => match crossing {
                Crossing::Issue { ufrag, connection } => ingress.issue(ufrag, connection),
                Crossing::Forget(connection) => ingress.forget(connection),
                Crossing::Arrivals(_) | Crossing::Effects(_) => {}
            },
            None => self.crew.tell(READER, crossing),
        }
    }

    fn on_timers(&mut self, now: Instant) {
        self.timers.due(now, &mut self.due);
        for id in std::mem::take(&mut self.due) {
            if let Some(peer) = self.peers.get_mut(&id) {
                let effects = &mut self.effects;
                guarded(id, &mut self.failed, || {
                    peer.connection.handle_timeout(now, effects);
                });
                self.touched.insert(id);
            }
        }
    }
}

/// What the connection's core is told about where a packet came in.
fn transport_of(path: Path) -> TransportContext {
    TransportContext {
        local_addr: path.local,
        peer_addr: path.remote,
        transport_protocol: match path.transport {
            Transport::Udp => TransportProtocol::UDP,
            Transport::Tcp => TransportProtocol::TCP,
        },
        ecn: None,
    }
}

/// Runs `work` for connection `id`; a panic inside the WebRTC core marks the connection failed
/// instead of ending the worker and every other connection with it.
fn guarded<T>(
    id: ConnectionId,
    failed: &mut Vec<ConnectionId>,
    work: impl FnOnce() -> T,
) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
        Ok(value) => Some(value),
        Err(_) => {
            failed.push(id);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::WorkerIndex;

    #[test]
    fn a_panic_marks_only_its_connection_failed() {
        let (calm, troubled) = (
            ConnectionId::next(WorkerIndex(0)),
            ConnectionId::next(WorkerIndex(0)),
        );
        let mut failed = Vec::new();
        assert_eq!(guarded(calm, &mut failed, || 7), Some(7));
        let outcome: Option<()> = guarded(troubled, &mut failed, || panic!("a core bug"));
        assert_eq!(outcome, None);
        assert_eq!(failed, vec![troubled]);
    }
}

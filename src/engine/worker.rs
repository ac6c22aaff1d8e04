//! The worker loop: sockets, commands and timers in; datagrams out, in batches.
//!
//! One pass: wait for a command, a readable socket or the earliest deadline; feed what came to
//! the connections it belongs to; let each touched connection report what its core produced,
//! delivering forwarded packets and feedback to the connections they are for (which may touch
//! more connections); then collect every touched connection's datagrams into one batch per
//! socket and send each batch with one system call.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::shared::{TransportContext, TransportProtocol};
use tokio::sync::mpsc;
use tracing::{debug, error, warn};

use crate::engine::EngineConfig;
use crate::engine::command::{Command, Reply, Status};
use crate::engine::timers::Timers;
use crate::ids::ConnectionId;
use crate::metrics::Metrics;
use crate::net::demux::{Demux, Path, Transport, Verdict};
use crate::net::tcp::{self, TcpEvent};
use crate::net::udp::{ReceiveBatch, SendBatch, UdpPort};
use crate::rtc::MediaSettings;
use crate::rtc::connection::{Connection, Effects, MediaError, Notice};

/// Read calls per socket per pass, so that one busy socket cannot starve the rest.
const READS_PER_PASS: usize = 8;

/// Rounds of delivering effects in one pass: a packet may cause feedback, feedback an RTCP
/// packet; nothing needs more.
const EFFECT_ROUNDS: usize = 4;

/// A connection and where its session hears from it.
struct Peer {
    connection: Connection,
    events: mpsc::UnboundedSender<Vec<Notice>>,
    /// The ufrag the media port routes to it.
    ufrag: Option<String>,
}

/// One socket with its buffers.
struct Port {
    socket: UdpPort,
    received: ReceiveBatch,
    outgoing: SendBatch,
}

struct Worker {
    settings: Arc<MediaSettings>,
    metrics: Arc<Metrics>,
    ports: Vec<Port>,
    port_of: HashMap<SocketAddr, usize>,
    demux: Demux<ConnectionId>,
    peers: HashMap<ConnectionId, Peer>,
    /// ICE-TCP streams, by path: what the worker sends them goes through these.
    streams: HashMap<Path, mpsc::Sender<BytesMut>>,
    tcp_events: mpsc::UnboundedReceiver<TcpEvent>,
    timers: Timers,
    touched: HashSet<ConnectionId>,
    /// Connections whose core panicked this pass: dropped once the pass ends.
    failed: Vec<ConnectionId>,
    effects: Effects,
    due: Vec<ConnectionId>,
}

/// Runs a worker on this thread until [`Command::Stop`] or until every handle is gone.
pub fn run(
    config: EngineConfig,
    metrics: Arc<Metrics>,
    inbox: mpsc::UnboundedReceiver<Command>,
    bound: std::sync::mpsc::Sender<io::Result<MediaSettings>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = bound.send(Err(error));
            return;
        }
    };
    runtime.block_on(async move {
        let mut worker = match Worker::bind(&config, metrics) {
            Ok(worker) => worker,
            Err(error) => {
                let _ = bound.send(Err(error));
                return;
            }
        };
        let _ = bound.send(Ok(MediaSettings::clone(&worker.settings)));
        worker.serve(inbox).await;
    });
}

/// What woke the worker.
enum Wake {
    Command(Option<Command>),
    Readable(usize),
    Tcp(TcpEvent),
    Timer,
}

impl Worker {
    fn bind(config: &EngineConfig, metrics: Arc<Metrics>) -> io::Result<Worker> {
        let mut ports = Vec::new();
        let mut port_of = HashMap::new();
        for address in &config.udp {
            let socket = UdpPort::bind(*address).map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("media.udp_port: binding {address}: {error}"),
                )
            })?;
            port_of.insert(socket.local_addr(), ports.len());
            ports.push(Port {
                received: ReceiveBatch::new(&socket),
                outgoing: SendBatch::default(),
                socket,
            });
        }
        let (tcp_events_tx, tcp_events) = mpsc::unbounded_channel();
        let mut tcp_addresses = Vec::new();
        for address in &config.tcp {
            let listener = tcp::bind(*address).map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("media.tcp_port: listening on {address}: {error}"),
                )
            })?;
            tcp_addresses.push(listener.local_addr()?);
            tokio::spawn(tcp::accept(listener, tcp_events_tx.clone()));
        }
        let settings = MediaSettings {
            udp: ports.iter().map(|port| port.socket.local_addr()).collect(),
            tcp: tcp_addresses,
            public: config.public.clone(),
        };
        Ok(Worker {
            settings: Arc::new(settings),
            metrics,
            ports,
            port_of,
            demux: Demux::default(),
            peers: HashMap::new(),
            streams: HashMap::new(),
            tcp_events,
            timers: Timers::default(),
            touched: HashSet::new(),
            failed: Vec::new(),
            effects: Effects::default(),
            due: Vec::new(),
        })
    }

    async fn serve(&mut self, mut inbox: mpsc::UnboundedReceiver<Command>) {
        let sleep = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(sleep);
        loop {
            let deadline = self
                .timers
                .next()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            sleep.as_mut().reset(deadline.into());
            let wake = std::future::poll_fn(|cx| {
                if let Poll::Ready(command) = inbox.poll_recv(cx) {
                    return Poll::Ready(Wake::Command(command));
                }
                for (index, port) in self.ports.iter().enumerate() {
                    if port.socket.poll_readable(cx).is_ready() {
                        return Poll::Ready(Wake::Readable(index));
                    }
                }
                if let Poll::Ready(Some(event)) = self.tcp_events.poll_recv(cx) {
                    return Poll::Ready(Wake::Tcp(event));
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
                    while let Ok(command) = inbox.try_recv() {
                        if matches!(command, Command::Stop) {
                            self.settle(now);
                            self.flush().await;
                            return;
                        }
                        self.on_command(command, now);
                    }
                }
                Wake::Readable(first) => {
                    for index in (first..self.ports.len()).chain(0..first) {
                        self.receive(index, now);
                    }
                }
                Wake::Tcp(event) => {
                    self.on_tcp(event, now);
                    while let Ok(event) = self.tcp_events.try_recv() {
                        self.on_tcp(event, now);
                    }
                }
                Wake::Timer => self.on_timers(now),
            }
            self.settle(now);
            self.flush().await;
        }
        for (_, mut peer) in std::mem::take(&mut self.peers) {
            peer.connection.close(&mut self.effects);
        }
    }

    fn receive(&mut self, index: usize, now: Instant) {
        for _ in 0..READS_PER_PASS {
            let port = &mut self.ports[index];
            match port.socket.try_receive(&mut port.received) {
                Ok(0) => return,
                Ok(_) => {}
                Err(error) => {
                    debug!(%error, "media socket read failed");
                    return;
                }
            }
            let local = port.socket.local_addr();
            for (remote, datagram) in port.received.datagrams() {
                let path = Path {
                    transport: Transport::Udp,
                    local,
                    remote,
                };
                let Some(id) = Self::route(&mut self.demux, &self.metrics, path, datagram) else {
                    continue;
                };
                if let Some(peer) = self.peers.get_mut(&id) {
                    let datagram = BytesMut::from(datagram);
                    guarded(id, &mut self.failed, || {
                        peer.connection
                            .handle_read(now, transport_of(path), datagram);
                    });
                    self.touched.insert(id);
                }
            }
        }
    }

    /// The connection a packet on `path` belongs to; strangers are counted.
    fn route(
        demux: &mut Demux<ConnectionId>,
        metrics: &Metrics,
        path: Path,
        packet: &[u8],
    ) -> Option<ConnectionId> {
        match demux.classify(path, packet) {
            Verdict::Known(id) | Verdict::Learned(id) => Some(id),
            Verdict::UnknownUfrag => {
                metrics
                    .datagrams_unknown_ufrag
                    .fetch_add(1, Ordering::Relaxed);
                None
            }
            Verdict::Unknown => {
                metrics.datagrams_unknown.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    fn on_tcp(&mut self, event: TcpEvent, now: Instant) {
        match event {
            TcpEvent::Opened { path, outgoing } => {
                self.streams.insert(path, outgoing);
            }
            TcpEvent::Packet { path, packet } => {
                match Self::route(&mut self.demux, &self.metrics, path, &packet)
                    .and_then(|id| Some((id, self.peers.get_mut(&id)?)))
                {
                    Some((id, peer)) => {
                        guarded(id, &mut self.failed, || {
                            peer.connection.handle_read(now, transport_of(path), packet);
                        });
                        self.touched.insert(id);
                    }
                    // A stream that does not begin as ICE for a connection here is closed.
                    None => {
                        self.streams.remove(&path);
                        self.demux.forget_path(path);
                    }
                }
            }
            TcpEvent::Closed { path } => {
                self.streams.remove(&path);
                self.demux.forget_path(path);
            }
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

    fn on_command(&mut self, command: Command, now: Instant) {
        match command {
            Command::Open {
                id,
                participant,
                events,
            } => {
                match Connection::new(
                    id,
                    participant,
                    Arc::clone(&self.settings),
                    Arc::clone(&self.metrics),
                    now,
                ) {
                    Ok(connection) => {
                        self.peers.insert(
                            id,
                            Peer {
                                connection,
                                events,
                                ufrag: None,
                            },
                        );
                        self.touched.insert(id);
                    }
                    Err(error) => {
                        warn!(%error, "a connection could not be made");
                        let _ = events.send(vec![Notice::State(
                            rtc::peer_connection::state::RTCPeerConnectionState::Failed,
                        )]);
                    }
                }
            }
            Command::ForbidPublishing { id } => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.connection.forbid_publishing();
                }
            }
            Command::Offer { id, sdp, reply } => {
                self.answer(id, reply, |connection, effects| {
                    connection.on_offer(sdp, now, effects)
                });
            }
            Command::Answer { id, sdp, reply } => {
                self.answer(id, reply, |connection, effects| {
                    connection.on_answer(sdp, now, effects)
                });
            }
            Command::Candidate {
                id,
                candidate,
                reply,
            } => {
                self.answer(id, reply, |connection, _| {
                    connection.on_candidate(candidate)
                });
            }
            Command::Mute {
                id,
                track,
                muted,
                reply,
            } => {
                self.answer(id, reply, |connection, _| connection.on_mute(track, muted));
            }
            Command::Want { id, publication } => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.connection.want(publication);
                }
            }
            Command::Unwant { id, key } => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.connection.unwant(key);
                }
            }
            Command::Negotiate { id, reply } => {
                self.answer(id, reply, |connection, effects| {
                    let mut notices = Vec::new();
                    connection.negotiate(now, &mut notices, effects)?;
                    Ok(notices)
                });
            }
            Command::Close { id } => self.close(id),
            Command::Stop => {}
        }
    }

    /// Runs `act` on connection `id` and replies with its result and the connection's status.
    fn answer<T>(
        &mut self,
        id: ConnectionId,
        reply: Reply<T>,
        act: impl FnOnce(&mut Connection, &mut Effects) -> Result<T, MediaError>,
    ) {
        let Some(peer) = self.peers.get_mut(&id) else {
            let _ = reply.send((
                Err(MediaError::Internal("the connection is closed".to_owned())),
                Status::default(),
            ));
            return;
        };
        let effects = &mut self.effects;
        let result = guarded(id, &mut self.failed, || act(&mut peer.connection, effects))
            .unwrap_or_else(|| Err(MediaError::Internal("the connection failed".to_owned())));
        if peer.connection.local_ufrag() != peer.ufrag.as_deref()
            && let Some(ufrag) = peer.connection.local_ufrag()
        {
            peer.ufrag = Some(ufrag.to_owned());
            self.demux.issue(ufrag.to_owned(), id);
        }
        let status = Status {
            open: peer.connection.is_open(),
            answer_deadline: peer.connection.answer_deadline(),
        };
        self.touched.insert(id);
        let _ = reply.send((result, status));
    }

    /// Forgets a connection whose core panicked, without touching it again, and tells its
    /// session that it failed: one participant's connection ends, not the worker.
    fn drop_failed(&mut self, id: ConnectionId) {
        let Some(peer) = self.peers.remove(&id) else {
            return;
        };
        error!(connection = %id, "a connection's WebRTC core panicked; the connection is dropped");
        let _ = peer.events.send(vec![Notice::State(
            rtc::peer_connection::state::RTCPeerConnectionState::Failed,
        )]);
        self.demux.forget(id);
        self.timers.schedule(id, None);
        self.touched.remove(&id);
        // Its state may be half-updated: dropping it unwinds nothing further.
        drop(peer);
    }

    fn close(&mut self, id: ConnectionId) {
        let Some(mut peer) = self.peers.remove(&id) else {
            return;
        };
        peer.connection.close(&mut self.effects);
        collect_transmits(
            &mut self.ports,
            &self.port_of,
            &self.streams,
            &self.metrics,
            &mut peer.connection,
        );
        self.demux.forget(id);
        self.timers.schedule(id, None);
        self.touched.remove(&id);
    }

    /// Lets every touched connection report, delivers what crosses between connections, and
    /// collects their datagrams.
    fn settle(&mut self, now: Instant) {
        for _ in 0..EFFECT_ROUNDS {
            let touched: Vec<ConnectionId> = self.touched.iter().copied().collect();
            for id in &touched {
                if let Some(peer) = self.peers.get_mut(id) {
                    let effects = &mut self.effects;
                    guarded(*id, &mut self.failed, || {
                        peer.connection.process(now, effects)
                    });
                    let notices = peer.connection.take_unsolicited();
                    if !notices.is_empty() {
                        let _ = peer.events.send(notices);
                    }
                }
            }
            if self.effects.is_empty() {
                break;
            }
            self.deliver(now);
        }
        for id in std::mem::take(&mut self.failed) {
            self.drop_failed(id);
        }
        for id in self.touched.drain() {
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            collect_transmits(
                &mut self.ports,
                &self.port_of,
                &self.streams,
                &self.metrics,
                &mut peer.connection,
            );
            self.timers.schedule(id, peer.connection.poll_timeout());
        }
    }

    /// Writes forwarded packets into their subscribers' connections and feedback into their
    /// publishers'.
    fn deliver(&mut self, now: Instant) {
        let mut effects = std::mem::take(&mut self.effects);
        for (down, packet) in effects.rtp.drain(..) {
            let outlet = down.outlet();
            let Some(peer) = self.peers.get_mut(&outlet.connection) else {
                continue;
            };
            let size = packet.payload.len() as u64;
            let written = guarded(outlet.connection, &mut self.failed, || {
                peer.connection.write_rtp(outlet.transceiver, packet, now)
            });
            if written == Some(true) {
                self.metrics.packets_out.fetch_add(1, Ordering::Relaxed);
                self.metrics.bytes_out.fetch_add(size, Ordering::Relaxed);
            } else {
                self.metrics.packets_dropped.fetch_add(1, Ordering::Relaxed);
            }
            self.touched.insert(outlet.connection);
        }
        for request in effects.upstream.drain(..) {
            let publisher = match &request {
                crate::rtc::connection::UpstreamRequest::Keyframe { publication, .. }
                | crate::rtc::connection::UpstreamRequest::Bitrate { publication, .. }
                | crate::rtc::connection::UpstreamRequest::ForgetSubscriber {
                    publication, ..
                } => publication.publisher(),
            };
            if let Some(peer) = self.peers.get_mut(&publisher) {
                guarded(publisher, &mut self.failed, || {
                    peer.connection.on_upstream_request(request, now);
                });
                self.touched.insert(publisher);
            }
        }
        // Keep the vectors' capacity for the next pass.
        self.effects.rtp = effects.rtp;
        self.effects.upstream = effects.upstream;
    }

    async fn flush(&mut self) {
        for port in &mut self.ports {
            // A full socket buffer: wait for room rather than drop, but not for long.
            for _ in 0..16 {
                match port.socket.send(&mut port.outgoing) {
                    Ok(()) => break,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                        let _ =
                            tokio::time::timeout(Duration::from_millis(5), port.socket.writable())
                                .await;
                    }
                    Err(_) => break,
                }
            }
            let failed = port.outgoing.take_failed() + port.outgoing.discard();
            if failed > 0 {
                self.metrics
                    .datagrams_send_failed
                    .fetch_add(failed, Ordering::Relaxed);
            }
        }
    }
}

/// Takes what `connection` has to send: UDP datagrams into their socket's batch, TCP packets to
/// their stream.
fn collect_transmits(
    ports: &mut [Port],
    port_of: &HashMap<SocketAddr, usize>,
    streams: &HashMap<Path, mpsc::Sender<BytesMut>>,
    metrics: &Metrics,
    connection: &mut Connection,
) {
    while let Some(transmit) = connection.poll_transmit() {
        let context = transmit.transport;
        if context.transport_protocol == TransportProtocol::TCP {
            let path = Path {
                transport: Transport::Tcp,
                local: context.local_addr,
                remote: context.peer_addr,
            };
            let sent = streams
                .get(&path)
                .is_some_and(|stream| stream.try_send(transmit.message).is_ok());
            if !sent {
                metrics
                    .datagrams_send_failed
                    .fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        let Some(&index) = port_of.get(&context.local_addr) else {
            continue;
        };
        ports[index]
            .outgoing
            .push(context.peer_addr, transmit.message);
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

    #[test]
    fn a_panic_marks_only_its_connection_failed() {
        let (calm, troubled) = (ConnectionId::next(), ConnectionId::next());
        let mut failed = Vec::new();
        assert_eq!(guarded(calm, &mut failed, || 7), Some(7));
        let outcome: Option<()> = guarded(troubled, &mut failed, || panic!("a core bug"));
        assert_eq!(outcome, None);
        assert_eq!(failed, vec![troubled]);
    }
}

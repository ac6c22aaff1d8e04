//! Network impairment in user space: loss, delay, jitter and a bandwidth limit applied to one
//! participant's UDP packets, in both directions.
//!
//! This machine's kernel has no `netem`, so the load test impairs its own sockets. webrtc-rs
//! takes its sockets from a [`Runtime`]; [`ImpairedRuntime`] is the tokio runtime with every UDP
//! socket wrapped in a small link emulator. Each wrapped socket has one task that receives from
//! the real socket and sends to it, holding every datagram in a per-direction queue until its
//! release time:
//!
//! - **loss** drops a datagram with the given probability;
//! - **delay** and **jitter** add `delay ± jitter` (uniform), so jitter can reorder packets;
//! - **bandwidth** serializes datagrams at the given rate, dropping the tail when the queue
//!   holds more than [`MAX_QUEUE_DELAY`] worth of data, as a router's buffer would.
//!
//! A [`Dropper`] loses chosen datagrams on top of that, for a test that needs one exact packet
//! lost (a handshake flight, say), and a [`Handover`] moves the link to a new local port
//! mid-call, as a phone moving from one network to another does: the connection still thinks
//! it sends from its old address, and the server sees its packets arrive from a new one.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime,
    TokioRuntime, Transmit,
};

/// The most data a bandwidth-limited direction queues, in time to drain it.
pub const MAX_QUEUE_DELAY: Duration = Duration::from_millis(500);

/// The impairment of one participant's link, applied in each direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Impairment {
    /// Probability of dropping a datagram, 0 to 1.
    pub loss: f64,
    /// Added one-way delay.
    #[serde(with = "crate::scenario::duration_ms")]
    pub delay: Duration,
    /// Uniform variation of the delay, plus or minus.
    #[serde(with = "crate::scenario::duration_ms")]
    pub jitter: Duration,
    /// Bits per second the link carries, if limited.
    pub bandwidth: Option<u64>,
}

impl Impairment {
    /// Whether this impairs nothing at all.
    pub fn is_none(&self) -> bool {
        self.loss <= 0.0
            && self.delay.is_zero()
            && self.jitter.is_zero()
            && self.bandwidth.is_none()
    }
}

/// Which way a datagram crosses the participant's link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// From the participant to the network.
    Outgoing,
    /// From the network to the participant.
    Incoming,
}

/// Whether to lose a datagram, given its way and bytes.
type Choice = dyn Fn(Way, &[u8]) -> bool + Send + Sync;

/// Chooses datagrams to lose: called with every datagram's way and bytes, `true` drops it.
#[derive(Clone)]
pub struct Dropper(Arc<Choice>);

impl Dropper {
    /// A dropper that loses the datagrams `choose` returns `true` for.
    pub fn new(choose: impl Fn(Way, &[u8]) -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(choose))
    }

    fn drops(&self, way: Way, bytes: &[u8]) -> bool {
        (self.0)(way, bytes)
    }
}

impl fmt::Debug for Dropper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Dropper")
    }
}

/// Moves a participant's link to a new local port when triggered.
#[derive(Debug, Clone, Default)]
pub struct Handover(Arc<tokio::sync::Notify>);

impl Handover {
    /// From now on the participant's datagrams leave from (and return to) a new port.
    pub fn trigger(&self) {
        self.0.notify_one();
    }
}

/// The tokio runtime with impaired UDP sockets.
#[derive(Debug)]
pub struct ImpairedRuntime {
    impairment: Impairment,
    dropper: Option<Dropper>,
    handover: Option<Handover>,
    inner: TokioRuntime,
}

impl ImpairedRuntime {
    /// A runtime whose sockets suffer `impairment`.
    pub fn new(impairment: Impairment) -> Self {
        Self {
            impairment,
            dropper: None,
            handover: None,
            inner: TokioRuntime,
        }
    }

    /// Moves the link to a new port whenever `handover` is triggered.
    pub fn with_handover(mut self, handover: Option<Handover>) -> Self {
        self.handover = handover;
        self
    }

    /// Also loses the datagrams `dropper` chooses.
    pub fn with_dropper(mut self, dropper: Option<Dropper>) -> Self {
        self.dropper = dropper;
        self
    }
}

impl Runtime for ImpairedRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.inner.spawn(future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let inner = self.inner.wrap_udp_socket(socket)?;
        Ok(Arc::new(ImpairedSocket::start(
            inner,
            self.impairment,
            self.dropper.clone(),
            self.handover.clone().unwrap_or_default(),
        )?))
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.inner.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.inner.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.inner.resolve_host(host)
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.inner.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.inner.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.inner.block_on(future)
    }

    fn name(&self) -> &'static str {
        "tokio+impairment"
    }
}

/// One datagram in flight through the emulated link.
struct Datagram {
    bytes: Vec<u8>,
    peer: SocketAddr,
}

/// A datagram waiting for its release time; ordered by time, then by arrival.
struct Held {
    release: Instant,
    order: u64,
    datagram: Datagram,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.release, self.order) == (other.release, other.order)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.release, self.order).cmp(&(other.release, other.order))
    }
}

/// One direction of the link: its rules and its queue.
struct Direction {
    way: Way,
    impairment: Impairment,
    dropper: Option<Dropper>,
    queue: BinaryHeap<Reverse<Held>>,
    wire_free_at: Instant,
    order: u64,
}

impl Direction {
    fn new(way: Way, impairment: Impairment, dropper: Option<Dropper>) -> Self {
        Self {
            way,
            impairment,
            dropper,
            queue: BinaryHeap::new(),
            wire_free_at: Instant::now(),
            order: 0,
        }
    }

    /// Takes a datagram onto the link: drops it, or queues it for its release time.
    fn admit(&mut self, datagram: Datagram, now: Instant) {
        let rules = self.impairment;
        if rules.loss > 0.0 && rand::random::<f64>() < rules.loss {
            return;
        }
        if let Some(dropper) = &self.dropper
            && dropper.drops(self.way, &datagram.bytes)
        {
            return;
        }
        let mut release = now;
        if let Some(bandwidth) = rules.bandwidth.filter(|bits| *bits > 0) {
            let start = self.wire_free_at.max(now);
            if start.saturating_duration_since(now) > MAX_QUEUE_DELAY {
                return;
            }
            let wire_time =
                Duration::from_secs_f64(datagram.bytes.len() as f64 * 8.0 / bandwidth as f64);
            self.wire_free_at = start + wire_time;
            release = self.wire_free_at;
        }
        release += rules.delay;
        if !rules.jitter.is_zero() {
            let spread = rules.jitter.as_secs_f64() * (2.0 * rand::random::<f64>() - 1.0);
            release = if spread >= 0.0 {
                release + Duration::from_secs_f64(spread)
            } else {
                release
                    .checked_sub(Duration::from_secs_f64(-spread))
                    .unwrap_or(release)
                    .max(now)
            };
        }
        self.order += 1;
        self.queue.push(Reverse(Held {
            release,
            order: self.order,
            datagram,
        }));
    }

    fn next_release(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(held)| held.release)
    }

    fn pop_due(&mut self, now: Instant) -> Option<Datagram> {
        if self.next_release()? <= now {
            self.queue.pop().map(|Reverse(held)| held.datagram)
        } else {
            None
        }
    }
}

/// Datagrams released towards the connection, and who to wake for them.
#[derive(Default)]
struct Inbox {
    ready: VecDeque<Datagram>,
    waker: Option<Waker>,
}

/// A UDP socket behind an emulated link.
struct ImpairedSocket {
    local: SocketAddr,
    outbound: mpsc::UnboundedSender<Datagram>,
    inbox: Arc<Mutex<Inbox>>,
    link: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for ImpairedSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImpairedSocket")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl ImpairedSocket {
    fn start(
        inner: Arc<dyn AsyncUdpSocket>,
        impairment: Impairment,
        dropper: Option<Dropper>,
        handover: Handover,
    ) -> io::Result<Self> {
        let local = inner.local_addr()?;
        let (outbound, outbound_rx) = mpsc::unbounded_channel();
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let link = tokio::spawn(run_link(
            inner,
            [
                Direction::new(Way::Outgoing, impairment, dropper.clone()),
                Direction::new(Way::Incoming, impairment, dropper),
            ],
            outbound_rx,
            Arc::clone(&inbox),
            handover,
        ));
        Ok(Self {
            local,
            outbound,
            inbox,
            link,
        })
    }

    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock()
    }
}

impl Drop for ImpairedSocket {
    fn drop(&mut self) {
        self.link.abort();
    }
}

impl AsyncUdpSocket for ImpairedSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    fn poll_send(&self, _cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        let datagram = Datagram {
            bytes: transmit.contents.to_vec(),
            peer: transmit.destination,
        };
        match self.outbound.send(datagram) {
            Ok(()) => Poll::Ready(Ok(transmit.contents.len())),
            Err(_) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the emulated link stopped",
            ))),
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let mut inbox = self.inbox();
        let mut filled = 0;
        while filled < bufs.len().min(meta.len()) {
            let Some(datagram) = inbox.ready.pop_front() else {
                break;
            };
            let len = datagram.bytes.len().min(bufs[filled].len());
            bufs[filled][..len].copy_from_slice(&datagram.bytes[..len]);
            let mut received = RecvMeta::default();
            received.addr = datagram.peer;
            received.len = len;
            received.stride = len.max(1);
            meta[filled] = received;
            filled += 1;
        }
        if filled > 0 {
            Poll::Ready(Ok(filled))
        } else {
            inbox.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// The link emulator: moves datagrams between the connection and the real socket, each after
/// its direction's impairment.
async fn run_link(
    mut socket: Arc<dyn AsyncUdpSocket>,
    [mut outgoing, mut incoming]: [Direction; 2],
    mut outbound_rx: mpsc::UnboundedReceiver<Datagram>,
    inbox: Arc<Mutex<Inbox>>,
    handover: Handover,
) {
    let mut buffer = vec![0u8; 4096];
    loop {
        let next = [outgoing.next_release(), incoming.next_release()]
            .into_iter()
            .flatten()
            .min();
        tokio::select! {
            datagram = outbound_rx.recv() => match datagram {
                Some(datagram) => outgoing.admit(datagram, Instant::now()),
                None => return,
            },
            received = socket.recv_from(&mut buffer) => match received {
                Ok((len, peer)) => incoming.admit(
                    Datagram { bytes: buffer[..len].to_vec(), peer },
                    Instant::now(),
                ),
                Err(error) if is_transient(&error) => {}
                Err(_) => return,
            },
            () = sleep_until_optional(next) => {}
            () = handover.0.notified() => match rebind(&socket) {
                Ok(moved) => socket = moved,
                Err(_) => return,
            },
        }
        let now = Instant::now();
        while let Some(datagram) = outgoing.pop_due(now) {
            let _ = socket.send_to(&datagram.bytes, datagram.peer).await;
        }
        let mut released = false;
        {
            let mut inbox = inbox.lock();
            while let Some(datagram) = incoming.pop_due(now) {
                inbox.ready.push_back(datagram);
                released = true;
            }
            if released && let Some(waker) = inbox.waker.take() {
                waker.wake();
            }
        }
    }
}

/// A new socket on the same address as `socket`, on a port the system picks.
fn rebind(socket: &Arc<dyn AsyncUdpSocket>) -> io::Result<Arc<dyn AsyncUdpSocket>> {
    let mut address = socket.local_addr()?;
    address.set_port(0);
    let moved = std::net::UdpSocket::bind(address)?;
    moved.set_nonblocking(true)?;
    TokioRuntime.wrap_udp_socket(moved)
}

fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
    )
}

async fn sleep_until_optional(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direction(impairment: Impairment) -> Direction {
        Direction::new(Way::Incoming, impairment, None)
    }

    fn datagram(len: usize) -> Datagram {
        Datagram {
            bytes: vec![0; len],
            peer: SocketAddr::from(([127, 0, 0, 1], 9)),
        }
    }

    #[test]
    fn loss_drops_about_the_given_fraction() {
        let mut direction = direction(Impairment {
            loss: 0.05,
            ..Default::default()
        });
        let now = Instant::now();
        for _ in 0..20_000 {
            direction.admit(datagram(100), now);
        }
        let kept = direction.queue.len() as f64 / 20_000.0;
        assert!((0.94..0.96).contains(&kept), "kept {kept}");
    }

    #[test]
    fn delay_holds_and_bandwidth_paces() {
        let mut direction = direction(Impairment {
            delay: Duration::from_millis(40),
            bandwidth: Some(8_000_000),
            ..Default::default()
        });
        let now = Instant::now();
        // 1000 bytes at 8 Mbit/s take 1 ms on the wire.
        direction.admit(datagram(1000), now);
        direction.admit(datagram(1000), now);
        assert!(direction.pop_due(now + Duration::from_millis(40)).is_none());
        assert!(direction.pop_due(now + Duration::from_millis(41)).is_some());
        assert!(direction.pop_due(now + Duration::from_millis(41)).is_none());
        assert!(direction.pop_due(now + Duration::from_millis(42)).is_some());
    }

    #[test]
    fn a_full_queue_drops_the_tail() {
        let mut direction = direction(Impairment {
            bandwidth: Some(80_000),
            ..Default::default()
        });
        let now = Instant::now();
        // 1000 bytes at 80 kbit/s take 100 ms: the queue holds about six of them.
        for _ in 0..20 {
            direction.admit(datagram(1000), now);
        }
        assert_eq!(direction.queue.len(), 6);
    }

    #[test]
    fn a_dropper_loses_what_it_chooses_in_its_way_only() {
        let dropper = Dropper::new(|way, bytes| way == Way::Incoming && bytes.len() == 7);
        let now = Instant::now();
        let mut incoming =
            Direction::new(Way::Incoming, Impairment::default(), Some(dropper.clone()));
        let mut outgoing = Direction::new(Way::Outgoing, Impairment::default(), Some(dropper));
        for len in [7, 8, 7] {
            incoming.admit(datagram(len), now);
            outgoing.admit(datagram(len), now);
        }
        assert_eq!(incoming.queue.len(), 1);
        assert_eq!(outgoing.queue.len(), 3);
    }
}

//! One UDP socket per media address, read and written in batches: `recvmmsg` (with GRO where
//! the kernel offers it) through `quinn-udp`, and `sendmmsg` through `nix`, so a worker pays one
//! system call for up to [`BATCH`] datagrams in either direction, whatever their destinations.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, setsockopt, sockopt};
use quinn_udp::{RecvMeta, UdpSockRef, UdpSocketState};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Datagrams per system call, both ways.
pub const BATCH: usize = quinn_udp::BATCH_SIZE;

/// The largest datagram the media port takes: an Ethernet MTU, which no WebRTC peer exceeds.
const MAX_DATAGRAM: usize = 1500;

/// The kernel buffers asked for: bursts of keyframes to many subscribers must not overflow them.
const SOCKET_BUFFER_BYTES: usize = 8 << 20;

/// Binds the media socket for `address` (port 0 picks one): non-blocking, with large kernel
/// buffers. The one socket is then shared: one [`UdpReader`] reads it, and every worker writes
/// it through its own [`UdpWriter`] (a duplicate of the descriptor, still the same socket).
pub fn bind(address: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    let socket: std::net::UdpSocket = socket.into();
    enlarge_buffers(&socket);
    Ok(socket)
}

/// The reading side of a media socket, on the current tokio runtime.
#[derive(Debug)]
pub struct UdpReader {
    socket: AsyncFd<std::net::UdpSocket>,
    state: UdpSocketState,
    local: SocketAddr,
}

impl UdpReader {
    /// Reads `socket` (from [`bind`]). It registers only read interest: interest in writability
    /// would wake the reader each time the kernel frees a sent datagram's buffer.
    pub fn new(socket: std::net::UdpSocket) -> io::Result<Self> {
        let state = UdpSocketState::new(UdpSockRef::from(&socket))?;
        let local = socket.local_addr()?;
        Ok(Self {
            socket: register(socket, Interest::READABLE)?,
            state,
            local,
        })
    }

    /// The address bound, with the port the system chose.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Ready when a datagram may be waiting.
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.socket.poll_read_ready(cx).map_ok(|_| ())
    }

    /// Waits until a datagram may be waiting.
    pub async fn readable(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_readable(cx)).await
    }

    /// Reads what is waiting, up to [`BATCH`] system buffers, into `batch`; `Ok(0)` when
    /// nothing was.
    pub fn try_receive(&self, batch: &mut ReceiveBatch) -> io::Result<usize> {
        batch.filled = 0;
        let mut slices: Vec<IoSliceMut<'_>> = batch
            .buffers
            .iter_mut()
            .map(|buffer| IoSliceMut::new(buffer))
            .collect();
        match self.socket.try_io(Interest::READABLE, |socket| {
            self.state
                .recv(UdpSockRef::from(socket), &mut slices, &mut batch.meta)
        }) {
            Ok(count) => {
                batch.filled = count;
                Ok(count)
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(error) => Err(error),
        }
    }
}

/// The writing side of a media socket. It is not registered with any reactor: a UDP socket is
/// writable nearly always, and a registration for writability would wake its thread each time
/// the kernel frees a sent datagram's buffer. A full buffer is waited for with `poll(2)`.
#[derive(Debug)]
pub struct UdpWriter {
    socket: std::net::UdpSocket,
    local: SocketAddr,
}

impl UdpWriter {
    /// Writes `socket` (from [`bind`], or a `try_clone` of it).
    pub fn new(socket: std::net::UdpSocket) -> io::Result<Self> {
        let local = socket.local_addr()?;
        Ok(Self { socket, local })
    }

    /// The address bound: every datagram leaves from it.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Blocks the calling thread until the socket can take more datagrams or `patience` has
    /// passed; says whether it can.
    pub fn wait_writable(&self, patience: Duration) -> bool {
        let millis = u16::try_from(patience.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLOUT)];
        matches!(poll(&mut fds, PollTimeout::from(millis)), Ok(ready) if ready > 0)
    }

    /// Sends what `batch` holds, [`BATCH`] datagrams per system call. Datagrams the kernel
    /// would not take now stay in the batch and the error is `WouldBlock`: wait for
    /// [`wait_writable`](Self::wait_writable) and send again.
    pub fn send(&self, batch: &mut SendBatch) -> io::Result<()> {
        while batch.sent < batch.payloads.len() {
            let pending = batch.sent..batch.payloads.len().min(batch.sent + BATCH);
            let slices: Vec<[IoSlice<'_>; 1]> = batch.payloads[pending.clone()]
                .iter()
                .map(|payload| [IoSlice::new(payload)])
                .collect();
            let result = nix::sys::socket::sendmmsg(
                self.socket.as_raw_fd(),
                &mut batch.headers,
                &slices,
                &batch.destinations[pending.clone()],
                [],
                MsgFlags::empty(),
            )
            .map(|results| results.count())
            .map_err(io::Error::from);
            match result {
                Ok(sent) => batch.sent += sent.max(1),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Err(error),
                // A datagram the kernel refuses (an unreachable destination, say) is dropped;
                // the rest of the batch still goes.
                Err(_) => {
                    batch.failed += 1;
                    batch.sent += 1;
                }
            }
        }
        batch.clear();
        Ok(())
    }
}

/// Registers `socket` with the current runtime for `interest` only.
fn register(
    socket: std::net::UdpSocket,
    interest: Interest,
) -> io::Result<AsyncFd<std::net::UdpSocket>> {
    // SAFETY: the `AsyncFd` owns the socket, and so its descriptor, which stays open and the
    // same until the `AsyncFd` drops it; nothing here swaps the socket inside.
    Ok(unsafe { AsyncFd::register_with_interest(socket, interest) }?)
}

/// Asks for large kernel buffers, beyond the system's default cap where the process may.
fn enlarge_buffers(socket: &std::net::UdpSocket) {
    if setsockopt(socket, sockopt::SndBufForce, &SOCKET_BUFFER_BYTES).is_err() {
        let _ = setsockopt(socket, sockopt::SndBuf, &SOCKET_BUFFER_BYTES);
    }
    if setsockopt(socket, sockopt::RcvBufForce, &SOCKET_BUFFER_BYTES).is_err() {
        let _ = setsockopt(socket, sockopt::RcvBuf, &SOCKET_BUFFER_BYTES);
    }
}

/// Buffers for one batched read, reused for every read.
pub struct ReceiveBatch {
    buffers: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
    filled: usize,
}

impl ReceiveBatch {
    /// Buffers for `port`, sized for the datagrams GRO may coalesce into one.
    pub fn new(port: &UdpReader) -> Self {
        let buffer = MAX_DATAGRAM * port.state.gro_segments().max(1);
        Self {
            buffers: vec![vec![0; buffer]; BATCH],
            meta: vec![RecvMeta::default(); BATCH],
            filled: 0,
        }
    }

    /// The datagrams of the last read, each with the address it came from.
    pub fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.meta[..self.filled]
            .iter()
            .zip(&self.buffers)
            .flat_map(|(meta, buffer)| {
                let stride = meta.stride.max(1);
                buffer[..meta.len.min(buffer.len())]
                    .chunks(stride)
                    .map(move |datagram| (meta.addr, datagram))
            })
    }
}

/// Datagrams waiting to leave one socket.
pub struct SendBatch {
    payloads: Vec<Bytes>,
    destinations: Vec<Option<SockaddrStorage>>,
    headers: MultiHeaders<SockaddrStorage>,
    sent: usize,
    failed: u64,
}

impl Default for SendBatch {
    fn default() -> Self {
        Self {
            payloads: Vec::with_capacity(BATCH),
            destinations: Vec::with_capacity(BATCH),
            headers: MultiHeaders::preallocate(BATCH, None),
            sent: 0,
            failed: 0,
        }
    }
}

impl SendBatch {
    /// Queues one datagram.
    pub fn push(&mut self, destination: SocketAddr, payload: impl Into<Bytes>) {
        self.destinations
            .push(Some(SockaddrStorage::from(destination)));
        self.payloads.push(payload.into());
    }

    /// Datagrams queued and not sent yet.
    pub fn len(&self) -> usize {
        self.payloads.len() - self.sent
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Datagrams the kernel refused since the last call, and resets the count.
    pub fn take_failed(&mut self) -> u64 {
        std::mem::take(&mut self.failed)
    }

    /// Gives up on what is still queued; returns how many datagrams that was.
    pub fn discard(&mut self) -> u64 {
        let left = self.len() as u64;
        self.clear();
        left
    }

    fn clear(&mut self) {
        self.payloads.clear();
        self.destinations.clear();
        self.sent = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader() -> UdpReader {
        UdpReader::new(bind("127.0.0.1:0".parse().unwrap()).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn sends_a_batch_to_many_destinations_and_reads_it_back_in_one_batch() {
        let socket = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        // A duplicate of the descriptor writes for the one socket.
        let server = UdpWriter::new(socket.try_clone().unwrap()).unwrap();
        let receivers: Vec<UdpReader> = (0..40).map(|_| reader()).collect();
        let mut batch = SendBatch::default();
        for (index, receiver) in receivers.iter().enumerate() {
            batch.push(receiver.local_addr(), Bytes::from(vec![index as u8; 100]));
        }
        assert_eq!(batch.len(), 40);
        server.send(&mut batch).unwrap();
        assert!(batch.is_empty());
        for (index, receiver) in receivers.iter().enumerate() {
            let mut read = ReceiveBatch::new(receiver);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while receiver.try_receive(&mut read).unwrap() == 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "datagram {index} never came"
                );
                receiver.readable().await.unwrap();
            }
            let datagrams: Vec<_> = read.datagrams().collect();
            assert_eq!(datagrams.len(), 1);
            assert_eq!(datagrams[0].0, socket.local_addr().unwrap());
            assert_eq!(datagrams[0].1, &[index as u8; 100][..]);
        }
    }

    #[tokio::test]
    async fn reads_many_datagrams_with_one_call() {
        let server = reader();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for index in 0..10u8 {
            client.send_to(&[index; 50], server.local_addr()).unwrap();
        }
        let mut read = ReceiveBatch::new(&server);
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while seen.len() < 10 {
            assert!(std::time::Instant::now() < deadline);
            server.readable().await.unwrap();
            server.try_receive(&mut read).unwrap();
            seen.extend(read.datagrams().map(|(from, datagram)| {
                assert_eq!(from, client.local_addr().unwrap());
                datagram[0]
            }));
        }
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
    }
}

//! ICE over TCP (RFC 6544): a passive listener on each media address, and RFC 4571 framing
//! (each packet behind its 16-bit length) on every stream it accepts.
//!
//! A stream is only a pipe: each one gets a small task that cuts what arrives into packets for
//! the worker and frames what the worker sends. Which connection a stream belongs to is the
//! demultiplexer's business, exactly as for a UDP datagram: its first packet must be a binding
//! request to an issued ufrag, or the worker closes it.
//!
//! The port is open to the internet, so every stream costs its sender something before it costs
//! the server: each accepted stream asks the listeners' [`Admission`] for a permit (so many per
//! source address, so many in all) and is closed at once without one; its first whole packet
//! must arrive within [`FIRST_PACKET_TIMEOUT`] of its accepting, however its bytes trickle in;
//! and when `accept` itself fails (the process out of descriptors), the listener waits before
//! it tries again ([`AcceptFailures`]).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

use crate::metrics::Metrics;
use crate::net::accept_failures::AcceptFailures;
use crate::net::admission::{Admission, ConnectionPermit};
use crate::net::demux::{Path, Transport};

/// How long an accepted stream has to deliver its first whole packet.
pub const FIRST_PACKET_TIMEOUT: Duration = Duration::from_secs(10);

/// Packets queued towards one stream before further ones are dropped (a stalled client).
const OUTGOING_QUEUE: usize = 1024;

/// What every stream the listeners accept is held to.
#[derive(Debug, Clone)]
pub struct StreamLimits {
    /// Which streams are taken: so many per source address, so many in all.
    pub admission: Admission,
    /// How long a stream has, from its accepting, to deliver its first whole packet.
    pub first_packet_timeout: Duration,
}

impl StreamLimits {
    /// Streams within `admission`, with the [`FIRST_PACKET_TIMEOUT`].
    pub fn new(admission: Admission) -> Self {
        Self {
            admission,
            first_packet_timeout: FIRST_PACKET_TIMEOUT,
        }
    }
}

/// What the streams tell the worker.
#[derive(Debug)]
pub enum TcpEvent {
    /// A stream was accepted; send to it through `outgoing`.
    Opened {
        /// Its two ends.
        path: Path,
        /// Packets (unframed) for it.
        outgoing: mpsc::Sender<BytesMut>,
    },
    /// A packet arrived.
    Packet {
        /// The stream.
        path: Path,
        /// The packet, without its length.
        packet: BytesMut,
    },
    /// The stream ended.
    Closed {
        /// The stream.
        path: Path,
    },
}

/// Binds the listener for `address` (port 0 picks one); [`accept`] serves it.
pub fn bind(address: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Accepts streams on `listener` within `limits` until the worker goes away, counting what it
/// refuses in `metrics`.
pub async fn accept(
    listener: std::net::TcpListener,
    events: mpsc::UnboundedSender<TcpEvent>,
    limits: StreamLimits,
    metrics: Arc<Metrics>,
) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    let Ok(local) = listener.local_addr() else {
        return;
    };
    let mut failures = AcceptFailures::new("ICE-TCP", local);
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => {
                failures.accepted();
                accepted
            }
            // Retrying at once would spin while the process is out of descriptors.
            Err(error) => {
                if let Some(wait) = failures.failed(&error) {
                    tokio::time::sleep(wait).await;
                }
                continue;
            }
        };
        if events.is_closed() {
            return;
        }
        let permit = match limits.admission.admit(remote.ip()) {
            Ok(permit) => permit,
            Err(refusal) => {
                metrics.ice_tcp.refused(refusal);
                debug!(%remote, %refusal, "ICE-TCP stream refused");
                // Dropping the stream closes it.
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let path = Path {
            transport: Transport::Tcp,
            local,
            remote,
        };
        let first_packet_by = Instant::now() + limits.first_packet_timeout;
        tokio::spawn(carry(
            stream,
            path,
            events.clone(),
            permit,
            first_packet_by,
            Arc::clone(&metrics),
        ));
    }
}

/// Moves packets between one stream and the worker until either side ends, or until
/// `first_packet_by` if no whole packet came by then. The stream holds its `_permit` until it
/// closes.
async fn carry(
    mut stream: TcpStream,
    path: Path,
    events: mpsc::UnboundedSender<TcpEvent>,
    _permit: ConnectionPermit,
    first_packet_by: Instant,
    metrics: Arc<Metrics>,
) {
    let (outgoing, mut to_send) = mpsc::channel::<BytesMut>(OUTGOING_QUEUE);
    if events.send(TcpEvent::Opened { path, outgoing }).is_err() {
        return;
    }
    let mut received = BytesMut::with_capacity(4096);
    let mut framed = BytesMut::with_capacity(4096);
    let mut first = true;
    loop {
        let read = async {
            if !first {
                return stream.read_buf(&mut received).await;
            }
            // A deadline, not a timeout per read: a byte every few seconds does not hold a
            // stream open.
            match tokio::time::timeout_at(first_packet_by, stream.read_buf(&mut received)).await {
                Ok(read) => read,
                Err(_) => {
                    metrics
                        .ice_tcp
                        .first_packet_timeouts
                        .fetch_add(1, Ordering::Relaxed);
                    debug!(remote = %path.remote, "ICE-TCP stream sent no packet in time");
                    Ok(0)
                }
            }
        };
        tokio::select! {
            result = read => {
                if !matches!(result, Ok(read) if read > 0) {
                    break;
                }
                while let Some(packet) = next_packet(&mut received) {
                    first = false;
                    if events.send(TcpEvent::Packet { path, packet }).is_err() {
                        return;
                    }
                }
            }
            packet = to_send.recv() => {
                // The worker dropped the stream's sender: it closes the stream.
                let Some(packet) = packet else { break };
                framed.clear();
                frame(&packet, &mut framed);
                while let Ok(more) = to_send.try_recv() {
                    frame(&more, &mut framed);
                }
                if stream.write_all(&framed).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = events.send(TcpEvent::Closed { path });
}

/// Appends `packet` with its RFC 4571 length. Packets longer than 65,535 bytes cannot be framed
/// and are left out (none is: they come from UDP-sized WebRTC packets).
pub fn frame(packet: &[u8], out: &mut BytesMut) {
    if let Ok(length) = u16::try_from(packet.len()) {
        out.reserve(2 + packet.len());
        out.put_u16(length);
        out.put_slice(packet);
    }
}

/// Takes the next whole packet out of `buffer`, if one has fully arrived.
pub fn next_packet(buffer: &mut BytesMut) -> Option<BytesMut> {
    if buffer.len() < 2 {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([buffer[0], buffer[1]]));
    if buffer.len() < 2 + length {
        return None;
    }
    buffer.advance(2);
    Some(buffer.split_to(length))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_come_out_whole_however_the_bytes_arrive() {
        let mut wire = BytesMut::new();
        frame(b"first", &mut wire);
        frame(b"", &mut wire);
        frame(&[7u8; 1300], &mut wire);
        let mut buffer = BytesMut::new();
        let mut packets = Vec::new();
        for chunk in wire.chunks(3) {
            buffer.extend_from_slice(chunk);
            while let Some(packet) = next_packet(&mut buffer) {
                packets.push(packet.to_vec());
            }
        }
        assert_eq!(
            packets,
            vec![b"first".to_vec(), Vec::new(), vec![7u8; 1300]]
        );
        assert!(buffer.is_empty());
    }

    use crate::net::admission::{Caps, Refusal};

    /// How long anything in these tests may take.
    const PATIENCE: Duration = Duration::from_secs(10);

    /// A listener on loopback serving streams within `caps` and `first_packet_timeout`.
    struct Served {
        local: SocketAddr,
        from_streams: mpsc::UnboundedReceiver<TcpEvent>,
        metrics: Arc<Metrics>,
        acceptor: tokio::task::JoinHandle<()>,
    }

    fn serve(caps: Caps, first_packet_timeout: Duration) -> Served {
        let listener = bind("127.0.0.1:0".parse().expect("an address")).expect("bound");
        let local = listener.local_addr().expect("its address");
        let metrics = Arc::new(Metrics::default());
        let limits = StreamLimits {
            admission: Admission::new(caps, metrics.ice_tcp.streams.clone()),
            first_packet_timeout,
        };
        let (events, from_streams) = mpsc::unbounded_channel();
        let acceptor = tokio::spawn(accept(listener, events, limits, Arc::clone(&metrics)));
        Served {
            local,
            from_streams,
            metrics,
            acceptor,
        }
    }

    fn caps(per_source: Option<usize>, total: usize) -> Caps {
        Caps { per_source, total }
    }

    /// A stream to `server` from `source` (a loopback address).
    async fn connect_from(source: [u8; 4], server: SocketAddr) -> TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .bind(SocketAddr::from((source, 0)))
            .expect("bound to the source");
        socket.connect(server).await.expect("connected")
    }

    /// Whether the server closed `stream` (end of stream or reset) within [`PATIENCE`].
    async fn closed_by_server(stream: &mut TcpStream) -> bool {
        let mut buffer = [0u8; 64];
        matches!(
            tokio::time::timeout(PATIENCE, stream.read(&mut buffer)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    /// The next event, which must be `Opened`: the stream's sender, which keeps it open (as
    /// the worker's table of streams does).
    async fn opened(served: &mut Served) -> mpsc::Sender<BytesMut> {
        match tokio::time::timeout(PATIENCE, served.from_streams.recv()).await {
            Ok(Some(TcpEvent::Opened { outgoing, .. })) => outgoing,
            other => panic!("expected a stream to open, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn streams_over_the_per_address_cap_are_closed_at_once_and_counted() {
        let mut served = serve(caps(Some(2), 100), PATIENCE);
        let first = connect_from([127, 0, 0, 1], served.local).await;
        let _second = connect_from([127, 0, 0, 1], served.local).await;
        let mut kept = vec![opened(&mut served).await, opened(&mut served).await];
        let mut third = connect_from([127, 0, 0, 1], served.local).await;
        assert!(closed_by_server(&mut third).await, "over the cap");
        assert_eq!(served.metrics.ice_tcp.refusals(Refusal::PerSource), 1);
        assert_eq!(served.metrics.ice_tcp.refusals(Refusal::Total), 0);
        // Another address is not held back.
        let _other = connect_from([127, 0, 0, 2], served.local).await;
        kept.push(opened(&mut served).await);
        assert_eq!(served.metrics.ice_tcp.open_streams(), 3);
        // A stream that closes gives its place back.
        drop(first);
        assert!(matches!(
            served.from_streams.recv().await,
            Some(TcpEvent::Closed { .. })
        ));
        assert_eq!(served.metrics.ice_tcp.open_streams(), 2);
        let _fourth = connect_from([127, 0, 0, 1], served.local).await;
        kept.push(opened(&mut served).await);
        assert_eq!(served.metrics.ice_tcp.refusals(Refusal::PerSource), 1);
        served.acceptor.abort();
    }

    #[tokio::test]
    async fn the_total_cap_holds_whatever_the_addresses() {
        let mut served = serve(caps(None, 2), PATIENCE);
        let _first = connect_from([127, 0, 0, 2], served.local).await;
        let _second = connect_from([127, 0, 0, 3], served.local).await;
        let _kept = [opened(&mut served).await, opened(&mut served).await];
        let mut third = connect_from([127, 0, 0, 4], served.local).await;
        assert!(closed_by_server(&mut third).await, "over the total");
        assert_eq!(served.metrics.ice_tcp.refusals(Refusal::Total), 1);
        assert_eq!(served.metrics.ice_tcp.open_streams(), 2);
        served.acceptor.abort();
    }

    #[tokio::test]
    async fn a_trickle_of_bytes_does_not_hold_a_stream_past_its_first_packet_deadline() {
        let timeout = Duration::from_millis(300);
        let mut served = serve(caps(None, 10), timeout);
        let mut stream = connect_from([127, 0, 0, 1], served.local).await;
        let accepted = Instant::now();
        let _kept = opened(&mut served).await;
        // A frame announcing 1000 bytes, sent a byte every 50 ms: each read comes well within
        // the timeout, the whole packet never does.
        stream.write_all(&[0x03, 0xe8]).await.expect("sent");
        let mut ticker = tokio::time::interval(Duration::from_millis(50));
        let mut buffer = [0u8; 64];
        let closed = loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if stream.write_all(&[0]).await.is_err() {
                        break Instant::now();
                    }
                }
                read = stream.read(&mut buffer) => {
                    assert!(matches!(read, Ok(0) | Err(_)), "the server sends nothing");
                    break Instant::now();
                }
            }
            assert!(accepted.elapsed() < PATIENCE, "the trickle held the stream");
        };
        assert!(
            closed - accepted >= timeout - Duration::from_millis(50),
            "closed after {:?}, before its deadline",
            closed - accepted
        );
        assert!(matches!(
            served.from_streams.recv().await,
            Some(TcpEvent::Closed { .. })
        ));
        assert_eq!(
            served
                .metrics
                .ice_tcp
                .first_packet_timeouts
                .load(Ordering::Relaxed),
            1
        );
        assert_eq!(served.metrics.ice_tcp.open_streams(), 0);
        served.acceptor.abort();
    }

    #[tokio::test]
    async fn a_stream_carries_framed_packets_both_ways() {
        let mut served = serve(caps(Some(4), 10), PATIENCE);
        let local = served.local;
        let mut client = TcpStream::connect(local).await.unwrap();
        let mut wire = BytesMut::new();
        frame(b"hello", &mut wire);
        client.write_all(&wire).await.unwrap();
        let Some(TcpEvent::Opened { path, outgoing }) = served.from_streams.recv().await else {
            panic!("no stream");
        };
        assert_eq!(path.local, local);
        assert_eq!(path.remote, client.local_addr().unwrap());
        assert_eq!(served.metrics.ice_tcp.open_streams(), 1);
        let Some(TcpEvent::Packet { packet, .. }) = served.from_streams.recv().await else {
            panic!("no packet");
        };
        assert_eq!(&packet[..], b"hello");
        outgoing.send(BytesMut::from(&b"back"[..])).await.unwrap();
        let mut reply = [0u8; 6];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"\x00\x04back");
        drop(outgoing);
        assert!(matches!(
            served.from_streams.recv().await,
            Some(TcpEvent::Closed { .. })
        ));
        assert_eq!(served.metrics.ice_tcp.open_streams(), 0);
        served.acceptor.abort();
    }
}

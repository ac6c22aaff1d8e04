//! The reading side, which one worker (the reader) runs: the media sockets and ICE-TCP streams
//! in, and the table that says which connection each packet is for.
//!
//! One reader keeps every datagram of a path on one thread, in order, and the socket count at
//! one per media address; the packets for other workers' connections leave it in batches (see
//! [`crew`](super::crew)). Reading is the cheap half of forwarding: one packet in, one out per
//! subscriber.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::sync::mpsc;

use crate::engine::crew::Arrival;
use crate::engine::egress::Streams;
use crate::ids::ConnectionId;
use crate::metrics::Metrics;
use crate::net::demux::{Demux, Path, Transport, Verdict};
use crate::net::tcp::{self, StreamLimits, TcpEvent};
use crate::net::udp::{ReceiveBatch, UdpReader};

/// Read calls per socket per pass, so that one busy socket cannot starve the rest.
const READS_PER_PASS: usize = 8;

/// One socket to read, with its buffers.
struct Inlet {
    reader: UdpReader,
    received: ReceiveBatch,
}

/// What is ready to read.
pub enum Ready {
    /// The socket at this index.
    Socket(usize),
    /// Something happened on an ICE-TCP stream.
    Stream(TcpEvent),
}

/// What the reader is given to read.
pub struct Reading {
    /// The media sockets.
    pub sockets: Vec<std::net::UdpSocket>,
    /// The ICE-TCP listeners.
    pub listeners: Vec<std::net::TcpListener>,
    /// What the listeners' streams are held to, all listeners together.
    pub stream_limits: StreamLimits,
}

/// See the module documentation.
pub struct Ingress {
    inlets: Vec<Inlet>,
    demux: Demux<ConnectionId>,
    tcp_events: mpsc::UnboundedReceiver<TcpEvent>,
    streams: Arc<Streams>,
    metrics: Arc<Metrics>,
}

impl Ingress {
    /// Reads the sockets and serves the listeners of `reading` on the current runtime.
    pub fn new(reading: Reading, streams: Arc<Streams>, metrics: Arc<Metrics>) -> io::Result<Self> {
        let Reading {
            sockets,
            listeners,
            stream_limits,
        } = reading;
        let mut inlets = Vec::new();
        for socket in sockets {
            let reader = UdpReader::new(socket)?;
            inlets.push(Inlet {
                received: ReceiveBatch::new(&reader),
                reader,
            });
        }
        let (events, tcp_events) = mpsc::unbounded_channel();
        for listener in listeners {
            tokio::spawn(tcp::accept(
                listener,
                events.clone(),
                stream_limits.clone(),
                Arc::clone(&metrics),
            ));
        }
        Ok(Self {
            inlets,
            demux: Demux::default(),
            tcp_events,
            streams,
            metrics,
        })
    }

    /// Ready when a socket or a stream has something.
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Ready> {
        for (index, inlet) in self.inlets.iter().enumerate() {
            if inlet.reader.poll_readable(cx).is_ready() {
                return Poll::Ready(Ready::Socket(index));
            }
        }
        if let Poll::Ready(Some(event)) = self.tcp_events.poll_recv(cx) {
            return Poll::Ready(Ready::Stream(event));
        }
        Poll::Pending
    }

    /// Reads what waits on every socket, starting at `first`, into `arrivals`.
    pub fn receive(&mut self, first: usize, arrivals: &mut Vec<Arrival>) {
        let count = self.inlets.len();
        for index in (first..count).chain(0..first.min(count)) {
            self.receive_from(index, arrivals);
        }
    }

    fn receive_from(&mut self, index: usize, arrivals: &mut Vec<Arrival>) {
        let inlet = &mut self.inlets[index];
        let local = inlet.reader.local_addr();
        for _ in 0..READS_PER_PASS {
            match inlet.reader.try_receive(&mut inlet.received) {
                Ok(0) => return,
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(%error, "media socket read failed");
                    return;
                }
            }
            for (remote, datagram) in inlet.received.datagrams() {
                let path = Path {
                    transport: Transport::Udp,
                    local,
                    remote,
                };
                if let Some(connection) = route(&mut self.demux, &self.metrics, path, datagram) {
                    arrivals.push(Arrival {
                        connection,
                        path,
                        datagram: BytesMut::from(datagram),
                    });
                }
            }
        }
    }

    /// Takes `event` and whatever else the streams have, into `arrivals`.
    pub fn on_stream(&mut self, event: TcpEvent, arrivals: &mut Vec<Arrival>) {
        self.on_stream_event(event, arrivals);
        while let Ok(event) = self.tcp_events.try_recv() {
            self.on_stream_event(event, arrivals);
        }
    }

    fn on_stream_event(&mut self, event: TcpEvent, arrivals: &mut Vec<Arrival>) {
        match event {
            TcpEvent::Opened { path, outgoing } => {
                self.streams.insert(path, outgoing);
            }
            TcpEvent::Packet { path, packet } => {
                match route(&mut self.demux, &self.metrics, path, &packet) {
                    Some(connection) => arrivals.push(Arrival {
                        connection,
                        path,
                        datagram: packet,
                    }),
                    // A stream that does not begin as ICE for a known connection is closed:
                    // dropping its sender ends it.
                    None => self.close_stream(path),
                }
            }
            TcpEvent::Closed { path } => self.close_stream(path),
        }
    }

    fn close_stream(&mut self, path: Path) {
        self.streams.remove(&path);
        self.demux.forget_path(path);
    }

    /// Binding requests to `ufrag` go to `connection` from now on.
    pub fn issue(&mut self, ufrag: String, connection: ConnectionId) {
        self.demux.issue(ufrag, connection);
    }

    /// Forgets `connection`, its ufrag and its paths, and closes its ICE-TCP streams: nobody
    /// reads them any more, and each holds a descriptor and a place under the stream caps.
    pub fn forget(&mut self, connection: ConnectionId) {
        for path in self.demux.forget(connection) {
            if path.transport == Transport::Tcp {
                // Dropping its sender ends the stream, once what was queued for it is sent.
                self.streams.remove(&path);
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::sync::mpsc::error::TryRecvError;

    use super::*;
    use crate::ids::WorkerIndex;
    use crate::net::admission::{Admission, Caps};

    /// A reader with no sockets and no listeners: streams are handed to it by hand.
    fn ingress() -> Ingress {
        let metrics = Arc::new(Metrics::default());
        let admission = Admission::new(
            Caps {
                per_source: None,
                total: 10,
            },
            metrics.ice_tcp.streams.clone(),
        );
        let reading = Reading {
            sockets: Vec::new(),
            listeners: Vec::new(),
            stream_limits: StreamLimits::new(admission),
        };
        Ingress::new(reading, Arc::default(), metrics).expect("a reader")
    }

    fn stream_path(port: u16) -> Path {
        Path {
            transport: Transport::Tcp,
            local: SocketAddr::from(([127, 0, 0, 1], 50_000)),
            remote: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// A binding request whose USERNAME is `username`: all the reader looks at.
    fn binding_request(username: &str) -> BytesMut {
        let value = username.as_bytes();
        let padded = value.len().next_multiple_of(4);
        let mut request = BytesMut::new();
        request.extend_from_slice(&[0x00, 0x01]);
        request.extend_from_slice(&((4 + padded) as u16).to_be_bytes());
        request.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        request.extend_from_slice(&[7; 12]);
        request.extend_from_slice(&[0x00, 0x06]);
        request.extend_from_slice(&(value.len() as u16).to_be_bytes());
        request.extend_from_slice(value);
        request.resize(20 + 4 + padded, 0);
        request
    }

    #[test]
    fn a_connection_forgotten_takes_its_streams_with_it() {
        let mut ingress = ingress();
        let connection = ConnectionId::next(WorkerIndex(0));
        let other = ConnectionId::next(WorkerIndex(0));
        ingress.issue("mine".to_owned(), connection);
        ingress.issue("theirs".to_owned(), other);
        let mut arrivals = Vec::new();
        let mut open = |ingress: &mut Ingress, port, ufrag: &str| {
            let (outgoing, stream) = mpsc::channel(4);
            let path = stream_path(port);
            ingress.on_stream(TcpEvent::Opened { path, outgoing }, &mut arrivals);
            let packet = binding_request(&format!("{ufrag}:client"));
            ingress.on_stream(TcpEvent::Packet { path, packet }, &mut arrivals);
            stream
        };
        let mut first = open(&mut ingress, 40_001, "mine");
        let mut second = open(&mut ingress, 40_002, "mine");
        let mut theirs = open(&mut ingress, 40_003, "theirs");
        assert_eq!(
            arrivals.len(),
            3,
            "every stream began as ICE for its connection"
        );
        assert_eq!(ingress.streams.len(), 3);

        ingress.forget(connection);
        // The senders are gone: each stream's task closes its stream.
        assert_eq!(first.try_recv().err(), Some(TryRecvError::Disconnected));
        assert_eq!(second.try_recv().err(), Some(TryRecvError::Disconnected));
        assert_eq!(theirs.try_recv().err(), Some(TryRecvError::Empty));
        assert_eq!(ingress.streams.len(), 1);
    }
}

//! The sending side of a worker: what its connections have to send, gathered into one batch
//! per media socket and sent with as few system calls as the batch allows; ICE-TCP packets go
//! to their stream.
//!
//! Every worker writes the same sockets the reader reads, each through its own duplicate of
//! the descriptor, so a datagram leaves from the media port whichever worker sends it.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use dashmap::DashMap;
use rtc::shared::TransportProtocol;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::net::demux::{Path, Transport};
use crate::net::udp::{SendBatch, UdpWriter};
use crate::rtc::connection::Connection;

/// The ICE-TCP streams open now, by path: the reader adds and removes them, any worker sends
/// through them. Only ICE-TCP packets look here.
pub type Streams = DashMap<Path, mpsc::Sender<BytesMut>>;

/// How long a flush waits for a full socket buffer to drain before it gives the rest up.
const FULL_SOCKET_PATIENCE: Duration = Duration::from_millis(50);

/// One socket to write, with what waits to leave it.
struct Outlet {
    writer: UdpWriter,
    batch: SendBatch,
}

/// See the module documentation.
pub struct Egress {
    outlets: Vec<Outlet>,
    by_address: HashMap<SocketAddr, usize>,
    streams: Arc<Streams>,
    metrics: Arc<Metrics>,
}

impl Egress {
    /// Writes `sockets` (duplicates of the media sockets) on the current runtime.
    pub fn new(
        sockets: Vec<std::net::UdpSocket>,
        streams: Arc<Streams>,
        metrics: Arc<Metrics>,
    ) -> io::Result<Self> {
        let mut outlets = Vec::new();
        let mut by_address = HashMap::new();
        for socket in sockets {
            let writer = UdpWriter::new(socket)?;
            by_address.insert(writer.local_addr(), outlets.len());
            outlets.push(Outlet {
                writer,
                batch: SendBatch::default(),
            });
        }
        Ok(Self {
            outlets,
            by_address,
            streams,
            metrics,
        })
    }

    /// Takes what `connection` has to send: UDP datagrams into their socket's batch, ICE-TCP
    /// packets to their stream.
    pub fn collect(&mut self, connection: &mut Connection) {
        while let Some(transmit) = connection.poll_transmit() {
            let context = transmit.transport;
            if context.transport_protocol == TransportProtocol::TCP {
                let path = Path {
                    transport: Transport::Tcp,
                    local: context.local_addr,
                    remote: context.peer_addr,
                };
                let sent = self
                    .streams
                    .get(&path)
                    .is_some_and(|stream| stream.try_send(transmit.message).is_ok());
                if !sent {
                    self.metrics
                        .datagrams_send_failed
                        .fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
            let Some(&index) = self.by_address.get(&context.local_addr) else {
                continue;
            };
            self.outlets[index]
                .batch
                .push(context.peer_addr, transmit.message);
        }
    }

    /// Sends every batch. A full socket buffer is waited for, briefly and blocking the worker
    /// (it has nothing better to do than send): past that, what is left is dropped and counted,
    /// as a router drops what its queue cannot hold.
    pub fn flush(&mut self) {
        for outlet in &mut self.outlets {
            let deadline = Instant::now() + FULL_SOCKET_PATIENCE;
            loop {
                match outlet.writer.send(&mut outlet.batch) {
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() || !outlet.writer.wait_writable(left) {
                            break;
                        }
                    }
                    _ => break,
                }
            }
            let failed = outlet.batch.take_failed() + outlet.batch.discard();
            if failed > 0 {
                self.metrics
                    .datagrams_send_failed
                    .fetch_add(failed, Ordering::Relaxed);
            }
        }
    }
}

//! The media engine: worker threads (one per core by default) that own the media sockets,
//! every participant's connection and their timers, and move packets between them in batches.
//! Each connection lives on one worker, its room's where it can; one worker reads the sockets;
//! every worker writes them.
//!
//! Signaling reaches a connection only through a [`ConnectionHandle`], by message; the packet
//! path never takes a lock that signaling holds. See docs/architecture.md for the picture.

mod busy;
mod command;
mod crew;
mod egress;
mod handle;
mod ingress;
mod placement;
mod timers;
mod worker;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc;

pub use command::Status;
pub use handle::ConnectionHandle;

use crate::ids::{ConnectionId, ParticipantId, WorkerIndex};
use crate::metrics::Metrics;
use crate::net::admission::{Admission, Caps};
use crate::net::tcp::StreamLimits;
use crate::net::{tcp, udp};
use crate::rtc::MediaSettings;
use crate::rtc::public_address::PublicAddresses;
use command::Command;
use crew::{Crew, READER};
use placement::Placement;

/// What the engine binds, and how many workers share the work.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// One UDP socket per address, all on one port (0 lets the system pick one per address).
    pub udp: Vec<SocketAddr>,
    /// One ICE-TCP listener per address.
    pub tcp: Vec<SocketAddr>,
    /// The caps on ICE-TCP streams, all listeners together.
    pub tcp_caps: Caps,
    /// The public addresses announced for the local ones (1:1 NAT).
    pub public: PublicAddresses,
    /// Worker threads; at least one.
    pub workers: usize,
    /// The busy share, in thousandths, from which a worker takes no more connections while a
    /// less busy one would (see [`placement`]).
    pub spread_when_busy_permille: u32,
}

/// The running engine; stops its workers when dropped.
#[derive(Debug)]
pub struct Engine {
    /// One command channel per worker, in worker order.
    commands: Vec<mpsc::UnboundedSender<Command>>,
    settings: Arc<MediaSettings>,
    placement: Arc<Placement>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Engine {
    /// Binds the media sockets and starts the workers.
    pub fn start(config: EngineConfig, metrics: Arc<Metrics>) -> io::Result<Engine> {
        let sockets = bind_each(&config.udp, "media.udp_port", udp::bind)?;
        let listeners = bind_each(&config.tcp, "media.tcp_port", tcp::bind)?;
        let settings = Arc::new(MediaSettings {
            udp: sockets
                .iter()
                .map(std::net::UdpSocket::local_addr)
                .collect::<io::Result<_>>()?,
            tcp: listeners
                .iter()
                .map(std::net::TcpListener::local_addr)
                .collect::<io::Result<_>>()?,
            public: config.public.clone(),
        });
        let workers = config.workers.max(1);
        let (mates, crossings): (Vec<_>, Vec<_>) =
            (0..workers).map(|_| mpsc::unbounded_channel()).unzip();
        let writers = (0..workers)
            .map(|_| {
                sockets
                    .iter()
                    .map(std::net::UdpSocket::try_clone)
                    .collect::<io::Result<Vec<_>>>()
            })
            .collect::<io::Result<Vec<_>>>()?;
        let streams = Arc::new(egress::Streams::default());
        let busy: Vec<Arc<busy::Busy>> = (0..workers).map(|_| Arc::default()).collect();
        let mut reading = Some(ingress::Reading {
            sockets,
            listeners,
            stream_limits: StreamLimits::new(Admission::new(
                config.tcp_caps,
                metrics.ice_tcp.streams.clone(),
            )),
        });
        let mut engine = Engine {
            commands: Vec::new(),
            settings: Arc::clone(&settings),
            placement: Placement::new(busy.clone(), config.spread_when_busy_permille),
            threads: Vec::new(),
        };
        let (started_tx, started) = std::sync::mpsc::channel();
        for (index, (crossings, writers)) in crossings.into_iter().zip(writers).enumerate() {
            let index = WorkerIndex(index);
            let (commands_tx, commands) = mpsc::unbounded_channel();
            let setup = worker::Setup {
                settings: Arc::clone(&settings),
                metrics: Arc::clone(&metrics),
                writers,
                reading: if index == READER {
                    reading.take()
                } else {
                    None
                },
                streams: Arc::clone(&streams),
                crew: Crew::new(index, mates.clone()),
                busy: Arc::clone(&busy[index.0]),
                crossings,
                commands,
            };
            engine.commands.push(commands_tx);
            let started_tx = started_tx.clone();
            engine.threads.push(
                std::thread::Builder::new()
                    .name(format!("media-{index}"))
                    .spawn(move || worker::run(setup, started_tx))?,
            );
        }
        for _ in 0..workers {
            started
                .recv()
                .map_err(|_| io::Error::other("a media worker stopped while starting"))??;
        }
        Ok(engine)
    }

    /// Where media flows, as bound.
    pub fn settings(&self) -> &MediaSettings {
        &self.settings
    }

    /// Media workers running.
    pub fn workers(&self) -> usize {
        self.commands.len()
    }

    /// Connections per worker, in worker order.
    pub fn load(&self) -> Vec<usize> {
        self.placement.load()
    }

    /// A new connection for `participant` of `room`, on the worker [`placement`] gives it,
    /// reporting what happens on it outside any command to `events`.
    pub fn connect(
        &self,
        room: &str,
        participant: &ParticipantId,
        events: mpsc::UnboundedSender<Vec<crate::rtc::connection::Notice>>,
    ) -> ConnectionHandle {
        let seat = self.placement.place(room);
        let worker = seat.worker();
        ConnectionHandle::open(
            ConnectionId::next(worker),
            seat,
            self.commands[worker.0].clone(),
            participant.clone(),
            events,
        )
    }
}

/// Binds every one of `addresses` with `bind`; an error names the setting `key` and the address.
fn bind_each<T>(
    addresses: &[SocketAddr],
    key: &str,
    bind: impl Fn(SocketAddr) -> io::Result<T>,
) -> io::Result<Vec<T>> {
    addresses
        .iter()
        .map(|address| {
            bind(*address).map_err(|error| {
                io::Error::new(error.kind(), format!("{key}: binding {address}: {error}"))
            })
        })
        .collect()
}

impl Drop for Engine {
    fn drop(&mut self) {
        for commands in &self.commands {
            let _ = commands.send(Command::Stop);
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

//! The media engine: a worker thread that owns the media sockets, every participant's
//! connection and their timers, and moves packets between them in batches.
//!
//! Signaling reaches a connection only through a [`ConnectionHandle`], by message; the packet
//! path never takes a lock that signaling holds. See docs/architecture.md for the picture.

mod command;
mod handle;
mod timers;
mod worker;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc;

pub use command::Status;
pub use handle::ConnectionHandle;

use crate::metrics::Metrics;
use crate::rtc::MediaSettings;
use crate::rtc::public_address::PublicAddresses;
use command::Command;

/// What the engine binds.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// One UDP socket per address, all on one port (0 lets the system pick one per address).
    pub udp: Vec<SocketAddr>,
    /// One ICE-TCP listener per address.
    pub tcp: Vec<SocketAddr>,
    /// The public addresses announced for the local ones (1:1 NAT).
    pub public: PublicAddresses,
}

/// The running engine; stops its worker when dropped.
#[derive(Debug)]
pub struct Engine {
    commands: mpsc::UnboundedSender<Command>,
    settings: Arc<MediaSettings>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Engine {
    /// Binds the media sockets and starts the worker.
    pub fn start(config: EngineConfig, metrics: Arc<Metrics>) -> io::Result<Engine> {
        let (commands, inbox) = mpsc::unbounded_channel();
        let (bound_tx, bound) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("media-worker".to_owned())
            .spawn(move || worker::run(config, metrics, inbox, bound_tx))?;
        let settings = bound
            .recv()
            .map_err(|_| io::Error::other("the media worker stopped while starting"))??;
        Ok(Engine {
            commands,
            settings: Arc::new(settings),
            thread: Some(thread),
        })
    }

    /// Where media flows, as bound.
    pub fn settings(&self) -> &MediaSettings {
        &self.settings
    }

    /// A new connection for `participant`, reporting what happens on it outside any command to
    /// `events`.
    pub fn connect(
        &self,
        participant: &str,
        events: mpsc::UnboundedSender<Vec<crate::rtc::connection::Notice>>,
    ) -> ConnectionHandle {
        ConnectionHandle::open(self.commands.clone(), participant.to_owned(), events)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

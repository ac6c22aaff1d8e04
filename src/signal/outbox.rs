//! The queue of frames waiting to be written to one WebSocket.
//!
//! A writer task owns the socket's sending half; everything else queues through an [`Outbox`].
//! The queue is bounded: a client that stops reading its socket while the room keeps changing
//! would otherwise grow it forever, so a full queue ends the session instead.

use tokio::sync::mpsc;

use crate::signal::protocol::ServerMessage;

/// How many frames may wait for a slow client before its session is ended.
pub const OUTBOX_CAPACITY: usize = 1024;

/// A frame for the writer task.
#[derive(Debug)]
pub enum Outgoing {
    /// A JSON text frame.
    Text(String),
    /// A close frame; the writer stops after it.
    Close {
        /// The WebSocket close code.
        code: u16,
        /// A short reason.
        reason: String,
    },
}

/// The client's outgoing queue is full or gone: the session must end.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the client is not reading its messages")]
pub struct Unreachable;

/// Queues frames for one client.
#[derive(Debug, Clone)]
pub struct Outbox {
    sender: mpsc::Sender<Outgoing>,
}

impl Outbox {
    /// A new outbox and the receiving end for the writer task.
    pub fn new() -> (Outbox, mpsc::Receiver<Outgoing>) {
        let (sender, receiver) = mpsc::channel(OUTBOX_CAPACITY);
        (Outbox { sender }, receiver)
    }

    /// Queues a message.
    pub fn send(&self, message: &ServerMessage) -> Result<(), Unreachable> {
        self.sender
            .try_send(Outgoing::Text(message.to_json()))
            .map_err(|_| Unreachable)
    }

    /// Queues a close frame.
    pub fn close(&self, code: u16, reason: &str) {
        let _ = self.sender.try_send(Outgoing::Close {
            code,
            reason: reason.to_owned(),
        });
    }
}

//! The queue of frames waiting to be written to one WebSocket.
//!
//! A writer task owns the socket's sending half; everything else queues through an [`Outbox`].
//! The queue is bounded in frames and in bytes: a client that stops reading its socket while
//! the room keeps changing would otherwise grow it forever, so a full queue ends the session
//! instead. Pings and a close that must not wait (the client stopped reading) take a separate,
//! urgent path that the writer serves first.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::signal::protocol::ServerMessage;

/// How many frames may wait for a slow client before its session is ended.
pub const OUTBOX_CAPACITY: usize = 1024;

/// Room on the urgent path: one ping outstanding at a time, and one close.
const URGENT_CAPACITY: usize = 4;

/// A frame for the writer task.
#[derive(Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// A JSON text frame.
    Text(String),
    /// A ping.
    Ping(Bytes),
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
#[derive(Debug)]
pub struct Outbox {
    frames: mpsc::Sender<Outgoing>,
    urgent: mpsc::Sender<Outgoing>,
    /// Bytes of text queued on `frames` and not yet taken by the writer.
    queued_bytes: Arc<AtomicUsize>,
    max_bytes: usize,
}

/// The writer's end: urgent frames first, then the others in order.
#[derive(Debug)]
pub struct Queue {
    frames: mpsc::Receiver<Outgoing>,
    urgent: mpsc::Receiver<Outgoing>,
    queued_bytes: Arc<AtomicUsize>,
}

impl Outbox {
    /// A new outbox that holds at most `max_bytes` of text (a single message larger than that
    /// still passes when it finds less than that waiting), and the writer's end of it.
    pub fn new(max_bytes: usize) -> (Outbox, Queue) {
        let (frames_tx, frames) = mpsc::channel(OUTBOX_CAPACITY);
        let (urgent_tx, urgent) = mpsc::channel(URGENT_CAPACITY);
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        (
            Outbox {
                frames: frames_tx,
                urgent: urgent_tx,
                queued_bytes: Arc::clone(&queued_bytes),
                max_bytes,
            },
            Queue {
                frames,
                urgent,
                queued_bytes,
            },
        )
    }

    /// Queues a message.
    pub fn send(&self, message: &ServerMessage) -> Result<(), Unreachable> {
        let text = message.to_json();
        let bytes = text.len();
        let waiting = self.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        if waiting >= self.max_bytes || self.frames.try_send(Outgoing::Text(text)).is_err() {
            self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            return Err(Unreachable);
        }
        Ok(())
    }

    /// Sends a ping ahead of the queued frames.
    pub fn ping(&self, payload: Bytes) -> Result<(), Unreachable> {
        self.urgent
            .try_send(Outgoing::Ping(payload))
            .map_err(|_| Unreachable)
    }

    /// Queues a close frame after the frames already queued; if there is no room for it, it
    /// goes at once instead.
    pub fn close(&self, code: u16, reason: &str) {
        let close = Outgoing::Close {
            code,
            reason: reason.to_owned(),
        };
        if let Err(refused) = self.frames.try_send(close) {
            let _ = self.urgent.try_send(refused.into_inner());
        }
    }

    /// Sends a close frame ahead of the queued frames, which are dropped.
    pub fn close_now(&self, code: u16, reason: &str) {
        let _ = self.urgent.try_send(Outgoing::Close {
            code,
            reason: reason.to_owned(),
        });
    }
}

impl Queue {
    /// The next frame to write: an urgent one if any waits, else the oldest other one. `None`
    /// once the outbox is gone and nothing waits.
    pub async fn next(&mut self) -> Option<Outgoing> {
        tokio::select! {
            biased;
            Some(urgent) = self.urgent.recv() => Some(urgent),
            frame = self.frames.recv() => {
                if let Some(Outgoing::Text(text)) = &frame {
                    self.queued_bytes.fetch_sub(text.len(), Ordering::Relaxed);
                }
                frame
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::protocol::ErrorCode;

    fn message(bytes: usize) -> ServerMessage {
        ServerMessage::error(ErrorCode::Internal, "x".repeat(bytes))
    }

    fn text_len(message: &ServerMessage) -> usize {
        message.to_json().len()
    }

    #[tokio::test]
    async fn a_full_outbox_in_bytes_refuses_until_the_writer_takes_some() {
        let (outbox, mut queue) = Outbox::new(1000);
        let big = message(600);
        outbox.send(&big).expect("room for the first");
        outbox
            .send(&big)
            .expect("600 bytes waiting: still under 1000");
        assert!(outbox.send(&message(1)).is_err(), "1200 bytes waiting");
        assert!(matches!(queue.next().await, Some(Outgoing::Text(_))));
        outbox.send(&message(1)).expect("600 bytes waiting again");
        assert_eq!(
            queue.queued_bytes.load(Ordering::Relaxed),
            text_len(&big) + text_len(&message(1))
        );
    }

    #[tokio::test]
    async fn one_message_larger_than_the_bound_passes_an_empty_outbox() {
        let (outbox, mut queue) = Outbox::new(100);
        outbox.send(&message(5000)).expect("nothing waits");
        assert!(outbox.send(&message(1)).is_err());
        assert!(matches!(queue.next().await, Some(Outgoing::Text(_))));
        assert_eq!(queue.queued_bytes.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_full_outbox_in_frames_refuses() {
        let (outbox, _queue) = Outbox::new(usize::MAX / 2);
        for _ in 0..OUTBOX_CAPACITY {
            outbox.send(&message(1)).expect("room");
        }
        assert!(outbox.send(&message(1)).is_err());
    }

    #[tokio::test]
    async fn urgent_frames_overtake_the_queue() {
        let (outbox, mut queue) = Outbox::new(1 << 20);
        outbox.send(&message(1)).expect("room");
        outbox.ping(Bytes::from_static(b"1")).expect("room");
        outbox.close_now(4002, "not reading");
        assert_eq!(
            queue.next().await,
            Some(Outgoing::Ping(Bytes::from_static(b"1")))
        );
        assert_eq!(
            queue.next().await,
            Some(Outgoing::Close {
                code: 4002,
                reason: "not reading".to_owned()
            })
        );
    }

    #[tokio::test]
    async fn a_close_goes_after_the_queue_or_at_once_when_the_queue_is_full() {
        let (outbox, mut queue) = Outbox::new(1 << 20);
        outbox.send(&message(1)).expect("room");
        outbox.close(1000, "bye");
        drop(outbox);
        assert!(matches!(queue.next().await, Some(Outgoing::Text(_))));
        assert!(matches!(
            queue.next().await,
            Some(Outgoing::Close { code: 1000, .. })
        ));
        assert_eq!(queue.next().await, None);

        let (outbox, mut queue) = Outbox::new(usize::MAX / 2);
        while outbox.send(&message(1)).is_ok() {}
        outbox.close(4003, "replaced");
        assert!(matches!(
            queue.next().await,
            Some(Outgoing::Close { code: 4003, .. })
        ));
    }
}

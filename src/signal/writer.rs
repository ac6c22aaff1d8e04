//! The writer task: the one owner of a socket's sending half.

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::SinkExt;
use futures::stream::SplitSink;

use crate::signal::outbox::{Outgoing, Queue};

/// Sends what the outbox queues, urgent frames first, until a close frame, a failed write or
/// the end of the queue. Whatever is still queued behind a close is dropped with the queue.
pub async fn write_frames(mut sink: SplitSink<WebSocket, Message>, mut queue: Queue) {
    while let Some(outgoing) = queue.next().await {
        let result = match outgoing {
            Outgoing::Text(text) => sink.send(Message::Text(text.into())).await,
            Outgoing::Ping(payload) => sink.send(Message::Ping(payload)).await,
            Outgoing::Close { code, reason } => {
                // Sent and flushed; the session waits, briefly, for the client's close frame.
                let _ = sink
                    .send(Message::Close(Some(CloseFrame {
                        code,
                        reason: reason.into(),
                    })))
                    .await;
                break;
            }
        };
        if result.is_err() {
            break;
        }
    }
}

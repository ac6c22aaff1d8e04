//! The client side of Switchyard's signaling WebSocket.

use std::sync::Arc;

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use switchyard::signal::protocol::{ClientMessage, ServerMessage};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{
    Connector, MaybeTlsStream, WebSocketStream, connect_async_tls_with_config,
};

use crate::ClientError;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a closed socket is read on for the closing handshake to complete.
const CLOSE_REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Sends client messages (or, for tests, raw frames).
pub struct SignalingSender {
    sink: SplitSink<Socket, Message>,
}

/// Receives what the server says.
pub struct SignalingReceiver {
    stream: SplitStream<Socket>,
}

/// One received frame, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// A server message.
    Message(ServerMessage),
    /// A frame that is not a known server message (kept for diagnosis).
    Unknown(String),
    /// The server closed the socket with this code.
    Closed(Option<u16>),
}

/// Opens the signaling socket at `url` (`ws://host:port/ws`, or `wss://` trusting the system's
/// certificate authorities).
pub async fn connect(url: &str) -> Result<(SignalingSender, SignalingReceiver), ClientError> {
    connect_with(url, None).await
}

/// Opens the signaling socket at `url` with these TLS settings for `wss://` (`None`: the
/// system's certificate authorities).
pub async fn connect_with(
    url: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<(SignalingSender, SignalingReceiver), ClientError> {
    let connector = connector(url, tls)?;
    let (socket, _) = connect_async_tls_with_config(url, None, false, Some(connector))
        .await
        .map_err(|error| ClientError::Signaling(format!("connecting to {url}: {error}")))?;
    let (sink, stream) = socket.split();
    Ok((SignalingSender { sink }, SignalingReceiver { stream }))
}

/// How to open a socket to `url`: plain for `ws://`, rustls with `tls` (or the system's
/// certificate authorities) for `wss://`.
pub fn connector(
    url: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<Connector, ClientError> {
    if !url.starts_with("wss:") {
        return Ok(Connector::Plain);
    }
    let config = match tls {
        Some(config) => config,
        None => crate::tls::system_default()
            .map_err(|error| ClientError::Signaling(format!("connecting to {url}: {error}")))?,
    };
    Ok(Connector::Rustls(config))
}

impl SignalingSender {
    /// Sends one message.
    pub async fn send(&mut self, message: &ClientMessage) -> Result<(), ClientError> {
        let text = serde_json::to_string(message)
            .map_err(|error| ClientError::Signaling(error.to_string()))?;
        self.send_raw(text).await
    }

    /// Sends any text frame, valid or not.
    pub async fn send_raw(&mut self, text: String) -> Result<(), ClientError> {
        self.sink
            .send(Message::Text(text.into()))
            .await
            .map_err(|error| ClientError::Signaling(format!("sending: {error}")))
    }

    /// Closes the socket politely.
    pub async fn close(&mut self) {
        let _ = self
            .sink
            .send(Message::Close(Some(CloseFrame {
                code: 1000.into(),
                reason: "bye".into(),
            })))
            .await;
        let _ = self.sink.close().await;
    }
}

impl SignalingReceiver {
    /// The next frame, or `None` once the socket is gone.
    pub async fn next(&mut self) -> Option<Received> {
        loop {
            let frame = match self.stream.next().await? {
                Ok(frame) => frame,
                Err(_) => return Some(Received::Closed(None)),
            };
            match frame {
                Message::Text(text) => {
                    return Some(match serde_json::from_str::<ServerMessage>(&text) {
                        Ok(message) => Received::Message(message),
                        Err(_) => Received::Unknown(text.to_string()),
                    });
                }
                Message::Close(frame) => {
                    // Reading on sends the close frame tungstenite queued in reply, completing
                    // the closing handshake the server waits for, and sees the socket end.
                    let _ = tokio::time::timeout(CLOSE_REPLY_TIMEOUT, self.stream.next()).await;
                    return Some(Received::Closed(frame.map(|frame| u16::from(frame.code))));
                }
                _ => continue,
            }
        }
    }
}

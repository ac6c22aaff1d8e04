//! The servers a synthetic participant can talk to, each behind the same small interface.
//!
//! A [`Target`] knows one signaling dialect: how to join a room on that server, and how to turn
//! its messages into the few things a WebRTC participant acts on (a remote offer or answer, a
//! remote candidate, a track about to arrive or gone) and back. Everything else — the peer
//! connections, the synthetic media, what is measured and how it is reported — is the same code
//! for every server, in [`crate::participant`], [`crate::run`] and [`crate::report`].
//!
//! A joined participant and its target talk over two channels: the target's task reads the
//! server and sends [`SignalEvent`]s; the participant sends [`SignalCommand`]s back. The task
//! owns the socket, so whatever the dialect needs on its own (keepalives, follow-up requests)
//! never waits on the participant.
//!
//! Servers differ in how many peer connections a participant needs: Switchyard uses one for
//! everything; Janus's VideoRoom one to publish and one to receive. Events and commands name
//! the connection they are about with a [`ConnectionId`], and the participant opens each one
//! the first time it is named.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use ::switchyard::signal::protocol::{IceServer, ServerMessage, TrackKind};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use webrtc::peer_connection::RTCIceCandidateInit;

use crate::ClientError;

pub mod janus;
pub mod switchyard;

pub use self::janus::Janus;
pub use self::switchyard::Switchyard;

/// One of a participant's peer connections, numbered by its target.
///
/// [`ConnectionId::MAIN`] carries the participant's own tracks: the participant's opening offer
/// is made on it. A target may name more connections, for receiving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u8);

impl ConnectionId {
    /// The connection the participant publishes on.
    pub const MAIN: ConnectionId = ConnectionId(0);
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Who joins where.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// The server's signaling URL.
    pub url: String,
    /// The room.
    pub room: String,
    /// The display name.
    pub name: String,
    /// The access token, for a server that requires one.
    pub token: Option<String>,
    /// TLS settings for a `wss://` URL; `None` trusts the system's certificate authorities.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// What the server said, in the terms a participant acts on.
#[derive(Debug)]
pub enum SignalEvent {
    /// A session description offered for `connection`: apply it and answer.
    Offer {
        /// The connection it is for.
        connection: ConnectionId,
        /// The SDP.
        sdp: String,
    },
    /// The answer to the participant's own offer on `connection`.
    Answer {
        /// The connection it is for.
        connection: ConnectionId,
        /// The SDP.
        sdp: String,
    },
    /// A trickled ICE candidate of the server's, for `connection`.
    Candidate {
        /// The connection it is for.
        connection: ConnectionId,
        /// The candidate.
        candidate: RTCIceCandidateInit,
    },
    /// A track will arrive on `mid` of `connection`, sent by `participant`.
    TrackAnnounced {
        /// The connection that receives it.
        connection: ConnectionId,
        /// The receiving transceiver's mid.
        mid: String,
        /// The publisher's participant id, as the server names it.
        participant: String,
        /// The publisher's own id for the track (its SDP `msid` track id).
        track: String,
        /// Audio or video.
        kind: TrackKind,
    },
    /// The track on `mid` of `connection` ended.
    TrackEnded {
        /// The connection that received it.
        connection: ConnectionId,
        /// The receiving transceiver's mid.
        mid: String,
    },
    /// The server wants these simulcast layers of the participant's own `track` sent
    /// (Switchyard's `layers`).
    Layers {
        /// The participant's own track id.
        track: String,
        /// The RIDs to send.
        active: Vec<String>,
    },
    /// The server stopped (or resumed) sending a received video because the participant's
    /// downlink has no room for it (Switchyard's `video_paused`).
    VideoPaused {
        /// The publisher.
        participant: String,
        /// The publisher's track id.
        track: String,
        /// Paused, or resumed.
        paused: bool,
    },
    /// A Switchyard message, kept in the participant's log for tests to read.
    Message(ServerMessage),
    /// The signaling socket is gone, with the server's close code if it sent one.
    Closed(Option<u16>),
}

/// What the participant asks its target to tell the server.
#[derive(Debug)]
pub enum SignalCommand {
    /// The participant's opening offer on [`ConnectionId::MAIN`], carrying the tracks it
    /// publishes. It is sent even when there are none (the description then has no media
    /// section); a dialect in which that means nothing ignores it.
    Offer {
        /// The connection it is for.
        connection: ConnectionId,
        /// The SDP.
        sdp: String,
    },
    /// The answer to a [`SignalEvent::Offer`].
    Answer {
        /// The connection it is for.
        connection: ConnectionId,
        /// The SDP.
        sdp: String,
    },
    /// One of the participant's ICE candidates for `connection`.
    Candidate {
        /// The connection it is for.
        connection: ConnectionId,
        /// The candidate.
        candidate: RTCIceCandidateInit,
    },
    /// Leave the room; the target closes the socket afterwards.
    Leave,
    /// Send this text frame as it is (tests send invalid ones on purpose).
    Raw(String),
}

/// A participant the server accepted, and the channels to its target's task.
pub struct Session {
    /// The participant's id on the server: what others see as the publisher of its tracks.
    pub participant: String,
    /// The signaling URL the join was accepted at: a node of a cluster may have redirected it
    /// from the one asked.
    pub url: String,
    /// When the server accepted the join.
    pub joined_at: Instant,
    /// Switchyard messages received up to and including the acceptance (empty elsewhere).
    pub messages: Vec<ServerMessage>,
    /// The STUN and TURN servers the server told the participant to use (Switchyard's
    /// `joined`), as a browser would configure its `RTCPeerConnection` with them.
    pub ice_servers: Vec<IceServer>,
    /// What the server says from now on, in order.
    pub events: mpsc::UnboundedReceiver<SignalEvent>,
    /// What to tell the server.
    pub commands: mpsc::UnboundedSender<SignalCommand>,
    /// The task that owns the socket; it ends after [`SignalEvent::Closed`].
    pub task: JoinHandle<()>,
}

/// A server the load test can drive; see the module documentation.
#[async_trait::async_trait]
pub trait Target: fmt::Debug + Send + Sync {
    /// The server's name, for reports.
    fn name(&self) -> &'static str;

    /// Where the server's Prometheus counters are, next to its signaling `url`, if it has any.
    fn metrics_url(&self, url: &str) -> Option<String>;

    /// Connects and joins; returns once the server accepted the participant.
    async fn join(&self, request: JoinRequest) -> Result<Session, ClientError>;
}

/// The target named `name`: `switchyard` or `janus`.
pub fn by_name(name: &str) -> Option<Arc<dyn Target>> {
    match name {
        "switchyard" => Some(Arc::new(Switchyard)),
        "janus" => Some(Arc::new(Janus::default())),
        _ => None,
    }
}

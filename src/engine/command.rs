//! What signaling asks of a connection, carried to its worker.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::ids::PublicationKey;
use crate::ids::{ConnectionId, ParticipantId};
use crate::media::publication::Publication;
use crate::rtc::allocating::ViewRequest;
use crate::rtc::connection::{MediaError, Notice};
use crate::signal::protocol::IceCandidate;

/// Where the connection stands after a command, for the session's own timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Status {
    /// Whether there is media to connect.
    pub open: bool,
    /// When the server's outstanding offer is overdue.
    pub answer_deadline: Option<Instant>,
}

/// A command's answer: what to tell the client and the room, in order.
pub type Reply<T> = oneshot::Sender<(Result<T, MediaError>, Status)>;

/// One request to the worker.
pub enum Command {
    /// Make a connection.
    Open {
        id: ConnectionId,
        participant: ParticipantId,
        events: mpsc::UnboundedSender<Vec<Notice>>,
    },
    /// Refuse what the participant offers to publish.
    ForbidPublishing { id: ConnectionId },
    /// Apply and answer a client's offer.
    Offer {
        id: ConnectionId,
        sdp: String,
        reply: Reply<Vec<Notice>>,
    },
    /// Apply a client's answer.
    Answer {
        id: ConnectionId,
        sdp: String,
        reply: Reply<Vec<Notice>>,
    },
    /// Add a client's candidate.
    Candidate {
        id: ConnectionId,
        candidate: IceCandidate,
        reply: Reply<()>,
    },
    /// Record a mute change.
    Mute {
        id: ConnectionId,
        track: String,
        muted: bool,
        reply: Reply<Option<Arc<Publication>>>,
    },
    /// Start receiving a publication, at the next negotiation.
    Want {
        id: ConnectionId,
        publication: Arc<Publication>,
    },
    /// Stop receiving a publication, at the next negotiation.
    Unwant {
        id: ConnectionId,
        key: PublicationKey,
    },
    /// Record how the client shows the videos it receives.
    View {
        id: ConnectionId,
        views: Vec<ViewRequest>,
    },
    /// Record the room's active speaker.
    ActiveSpeaker {
        id: ConnectionId,
        speaker: Option<ParticipantId>,
    },
    /// Offer what changed, if nothing is outstanding.
    Negotiate {
        id: ConnectionId,
        reply: Reply<Vec<Notice>>,
    },
    /// Close the connection.
    Close { id: ConnectionId },
    /// Stop the worker.
    Stop,
}

//! The signaling session's side of a connection: every call is a message to the worker that
//! owns it, answered with what to tell the client and the room.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::engine::command::{Command, Reply, Status};
use crate::engine::placement::Seat;
use crate::ids::PublicationKey;
use crate::ids::{ConnectionId, ParticipantId};
use crate::media::publication::Publication;
use crate::rtc::allocating::ViewRequest;
use crate::rtc::connection::{MediaError, Notice};
use crate::signal::protocol::IceCandidate;

/// A connection on a media worker; closes it when dropped.
#[derive(Debug)]
pub struct ConnectionHandle {
    id: ConnectionId,
    commands: mpsc::UnboundedSender<Command>,
    status: Status,
    /// Its place on the worker, given back when the handle goes.
    _seat: Seat,
}

impl ConnectionHandle {
    pub(super) fn open(
        id: ConnectionId,
        seat: Seat,
        commands: mpsc::UnboundedSender<Command>,
        participant: ParticipantId,
        events: mpsc::UnboundedSender<Vec<Notice>>,
    ) -> Self {
        let _ = commands.send(Command::Open {
            id,
            participant,
            events,
        });
        Self {
            id,
            commands,
            status: Status::default(),
            _seat: seat,
        }
    }

    /// The connection's id.
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// Where the connection stood after the last command.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Refuses every track the participant offers from now on.
    pub fn forbid_publishing(&self) {
        let _ = self
            .commands
            .send(Command::ForbidPublishing { id: self.id });
    }

    /// Applies and answers a client's offer.
    pub async fn offer(&mut self, sdp: String) -> Result<Vec<Notice>, MediaError> {
        let id = self.id;
        self.ask(|reply| Command::Offer { id, sdp, reply }).await
    }

    /// Applies a client's answer.
    pub async fn answer(&mut self, sdp: String) -> Result<Vec<Notice>, MediaError> {
        let id = self.id;
        self.ask(|reply| Command::Answer { id, sdp, reply }).await
    }

    /// Adds a client's candidate.
    pub async fn candidate(&mut self, candidate: IceCandidate) -> Result<(), MediaError> {
        let id = self.id;
        self.ask(|reply| Command::Candidate {
            id,
            candidate,
            reply,
        })
        .await
    }

    /// Records a mute change: the publication the room should mark, if published.
    pub async fn mute(
        &mut self,
        track: String,
        muted: bool,
    ) -> Result<Option<Arc<Publication>>, MediaError> {
        let id = self.id;
        self.ask(|reply| Command::Mute {
            id,
            track,
            muted,
            reply,
        })
        .await
    }

    /// The participant should receive `publication` from the next negotiation on.
    pub fn want(&self, publication: Arc<Publication>) {
        let _ = self.commands.send(Command::Want {
            id: self.id,
            publication,
        });
    }

    /// The participant should no longer receive the publication `key`.
    pub fn unwant(&self, key: PublicationKey) {
        let _ = self.commands.send(Command::Unwant { id: self.id, key });
    }

    /// Records how the client shows the videos it receives.
    pub fn view(&self, views: Vec<ViewRequest>) {
        let _ = self.commands.send(Command::View { id: self.id, views });
    }

    /// Records the room's active speaker, whose video the allocation puts first.
    pub fn set_active_speaker(&self, speaker: Option<ParticipantId>) {
        let _ = self.commands.send(Command::ActiveSpeaker {
            id: self.id,
            speaker,
        });
    }

    /// Offers the client what changed, if anything did and nothing is outstanding.
    pub async fn negotiate(&mut self) -> Result<Vec<Notice>, MediaError> {
        let id = self.id;
        self.ask(|reply| Command::Negotiate { id, reply }).await
    }

    async fn ask<T>(&mut self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, MediaError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).map_err(|_| stopped())?;
        let (result, status) = answer.await.map_err(|_| stopped())?;
        self.status = status;
        result
    }
}

impl Drop for ConnectionHandle {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Close { id: self.id });
    }
}

fn stopped() -> MediaError {
    MediaError::Internal("the media engine has stopped".to_owned())
}

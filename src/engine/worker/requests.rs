//! What signaling asks of a worker's connections: open, negotiate, mute, subscribe, close. Each
//! request runs on the connection it names and is answered with what to tell the client and
//! the room; a connection whose core panics is dropped, and its session told.

use std::sync::Arc;
use std::time::Instant;

use tracing::{error, warn};

use super::{Peer, Worker, guarded};
use crate::engine::command::{Command, Reply, Status};
use crate::engine::crew::Crossing;
use crate::ids::ConnectionId;
use crate::rtc::connection::{Connection, Effects, MediaError, Notice};

impl Worker {
    pub(super) fn on_command(&mut self, command: Command, now: Instant) {
        match command {
            Command::Open {
                id,
                participant,
                events,
            } => {
                match Connection::new(
                    id,
                    participant,
                    Arc::clone(&self.settings),
                    Arc::clone(&self.metrics),
                    now,
                ) {
                    Ok(connection) => {
                        self.peers.insert(
                            id,
                            Peer {
                                connection,
                                events,
                                ufrag: None,
                            },
                        );
                        self.touched.insert(id);
                    }
                    Err(error) => {
                        warn!(%error, "a connection could not be made");
                        let _ = events.send(vec![Notice::State(
                            rtc::peer_connection::state::RTCPeerConnectionState::Failed,
                        )]);
                    }
                }
            }
            Command::ForbidPublishing { id } => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.connection.forbid_publishing();
                }
            }
            Command::Offer { id, sdp, reply } => {
                self.answer(id, reply, |connection, effects| {
                    connection.on_offer(sdp, now, effects)
                });
            }
            Command::Answer { id, sdp, reply } => {
                self.answer(id, reply, |connection, effects| {
                    connection.on_answer(sdp, now, effects)
                });
            }
            Command::Candidate {
                id,
                candidate,
                reply,
            } => {
                self.answer(id, reply, |connection, _| {
                    connection.on_candidate(candidate)
                });
            }
            Command::Mute {
                id,
                track,
                muted,
                reply,
            } => {
                self.answer(id, reply, |connection, _| connection.on_mute(track, muted));
            }
            Command::Want { id, publication } => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.connection.want(publication);
                }
            }
            Command::Unwant { id, key } => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.connection.unwant(key);
                }
            }
            Command::View { id, views } => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.connection.set_views(views, now);
                    self.touched.insert(id);
                }
            }
            Command::ActiveSpeaker { id, speaker } => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.connection.set_active_speaker(speaker, now);
                    self.touched.insert(id);
                }
            }
            Command::Negotiate { id, reply } => {
                self.answer(id, reply, |connection, effects| {
                    let mut notices = Vec::new();
                    connection.negotiate(now, &mut notices, effects)?;
                    Ok(notices)
                });
            }
            Command::Close { id } => self.close(id),
            Command::Stop => {}
        }
    }

    /// Runs `act` on connection `id` and replies with its result and the connection's status.
    fn answer<T>(
        &mut self,
        id: ConnectionId,
        reply: Reply<T>,
        act: impl FnOnce(&mut Connection, &mut Effects) -> Result<T, MediaError>,
    ) {
        let Some(peer) = self.peers.get_mut(&id) else {
            let _ = reply.send((
                Err(MediaError::Internal("the connection is closed".to_owned())),
                Status::default(),
            ));
            return;
        };
        let effects = &mut self.effects;
        let result = guarded(id, &mut self.failed, || act(&mut peer.connection, effects))
            .unwrap_or_else(|| Err(MediaError::Internal("the connection failed".to_owned())));
        let status = Status {
            open: peer.connection.is_open(),
            answer_deadline: peer.connection.answer_deadline(),
        };
        let issued = match peer.connection.local_ufrag() {
            Some(ufrag) if peer.ufrag.as_deref() != Some(ufrag) => {
                peer.ufrag = Some(ufrag.to_owned());
                Some(ufrag.to_owned())
            }
            _ => None,
        };
        // The reader learns the ufrag before the client can hear of it in this reply.
        if let Some(ufrag) = issued {
            self.tell_reader(Crossing::Issue {
                ufrag,
                connection: id,
            });
        }
        self.touched.insert(id);
        let _ = reply.send((result, status));
    }

    /// Forgets a connection whose core panicked, without touching it again, and tells its
    /// session that it failed: one participant's connection ends, not the worker.
    pub(super) fn drop_failed(&mut self, id: ConnectionId) {
        let Some(peer) = self.peers.remove(&id) else {
            return;
        };
        error!(connection = %id, "a connection's WebRTC core panicked; the connection is dropped");
        let _ = peer.events.send(vec![Notice::State(
            rtc::peer_connection::state::RTCPeerConnectionState::Failed,
        )]);
        self.tell_reader(Crossing::Forget(id));
        self.timers.schedule(id, None);
        self.touched.remove(&id);
        // Its state may be half-updated: dropping it unwinds nothing further.
        drop(peer);
    }

    fn close(&mut self, id: ConnectionId) {
        let Some(mut peer) = self.peers.remove(&id) else {
            return;
        };
        peer.connection.close(&mut self.effects);
        self.egress.collect(&mut peer.connection);
        self.tell_reader(Crossing::Forget(id));
        self.timers.schedule(id, None);
        self.touched.remove(&id);
    }
}

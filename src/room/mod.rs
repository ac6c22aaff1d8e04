//! Rooms: who is in one, what they publish, and the events that tell everybody else.
//!
//! A [`Room`] is shared by the sessions of its participants. Its state sits behind a plain
//! mutex that is never held across an `await`; events go out to each member over its own
//! channel while the lock is held, so every member sees the room's changes in the same order;
//! the webhooks hear them in that order too ([`hooks`]), without the lock waiting on them.
//! Nothing on the packet path touches a room.

pub mod hooks;
pub mod registry;
mod speakers;
pub mod view;

use std::sync::{Arc, Weak};
use std::time::SystemTime;

use parking_lot::{Mutex, MutexGuard};

use tokio::sync::mpsc;

use crate::ids::ParticipantId;
use crate::media::publication::Publication;
use crate::media::speaker::{Detector, Speakers};
use crate::room::speakers::told_speakers;
use crate::signal::protocol::ParticipantInfo;
use crate::webhook::{EventKind, ParticipantRef, Webhooks};
use hooks::RoomHooks;

pub use registry::{JoinRefusal, Registry};
pub use view::{MuteRefusal, ParticipantView, RoomView, TrackView};

/// A change in a room, delivered to every member but the one who caused it (a chat message
/// goes to its sender too).
#[derive(Debug, Clone)]
pub enum RoomEvent {
    /// Somebody joined.
    ParticipantJoined(ParticipantInfo),
    /// Somebody left; their publications were announced as unpublished first.
    ParticipantLeft(ParticipantId),
    /// Tracks are now published, all by one participant. Tracks announced together (a
    /// camera and its microphone) arrive together, so a subscriber takes them in one
    /// negotiation rather than one each.
    Published(Vec<Arc<Publication>>),
    /// Tracks are no longer published, all by one participant.
    Unpublished(Vec<Arc<Publication>>),
    /// A published track was muted or unmuted.
    Muted {
        /// The publisher.
        participant: ParticipantId,
        /// The publisher's track id.
        track: String,
        /// The new state.
        muted: bool,
    },
    /// A chat message.
    Chat {
        /// The sender.
        participant: ParticipantId,
        /// The message.
        text: String,
        /// When the room received it, in milliseconds since the Unix epoch.
        at: u64,
    },
    /// Who speaks now, and who the active speaker is; sent to every member when it changes.
    Speakers(Speakers),
    /// A newer session with this member's identity joined; this member has been removed
    /// (the others were told it left) and its session must end. Sent to that member only.
    Replaced,
    /// An operator removed this member through the API, alone or with its whole room; the
    /// others were told it left and its session must end. Sent to that member only.
    Removed,
    /// The room now lives on another node of the cluster (this node lost its placement while
    /// it could not reach Redis): every member's session ends, for its client to join again
    /// and find the room where it lives.
    Moved,
    /// An operator asked that this member's track be muted or unmuted. Sent to that member
    /// only: its session applies it as it applies the client's own `mute`.
    MuteRequested {
        /// The member's track id.
        track: String,
        /// The state asked for.
        muted: bool,
    },
}

/// What a new member finds in the room.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Everybody already there, in the order they joined.
    pub participants: Vec<ParticipantInfo>,
    /// Everything already published.
    pub publications: Vec<Arc<Publication>>,
    /// What the room was last told of its speakers.
    pub speakers: Speakers,
}

struct Member {
    info: ParticipantInfo,
    /// The identity from the member's access token; `None` on an open server.
    identity: Option<String>,
    events: mpsc::UnboundedSender<RoomEvent>,
    joined_at: SystemTime,
    /// The media connection's state, as its session last reported it.
    connection: String,
}

impl Member {
    /// The member as webhook events name it.
    fn reference(&self) -> ParticipantRef {
        ParticipantRef {
            id: self.info.id.clone(),
            identity: self.identity.clone(),
            name: self.info.name.clone(),
        }
    }
}

/// A newcomer to a room.
#[derive(Debug, Clone)]
pub struct Newcomer {
    /// Its id and display name.
    pub info: ParticipantInfo,
    /// The identity from its access token, if it has one. A member with the same identity is
    /// replaced by the newcomer.
    pub identity: Option<String>,
    /// Where its room events go.
    pub events: mpsc::UnboundedSender<RoomEvent>,
}

/// Why [`Room::try_join`] did not add a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinFailure {
    /// The room closed as its last member left; the registry replaces it.
    Closed,
    /// The room holds its maximum of members.
    Full,
}

struct RoomState {
    /// Set when the last member leaves; a closed room accepts nobody and is about to be
    /// removed from the registry.
    closed: bool,
    members: Vec<Member>,
    publications: Vec<Arc<Publication>>,
    /// The room's speaker detection, and whether its task runs (see `speakers`).
    speakers: Detector,
    speaker_task: bool,
    /// Where the room's events go, in the order the lock serializes them.
    hooks: RoomHooks,
}

impl RoomState {
    /// Closes the room, once.
    fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.hooks.room_finished();
        }
    }

    /// Tells the webhooks that `publications`, all by `publisher`, were published or
    /// unpublished.
    fn track_events(
        &mut self,
        kind: EventKind,
        publisher: &ParticipantId,
        publications: &[Arc<Publication>],
    ) {
        let Some(publisher) = self
            .members
            .iter()
            .find(|member| member.info.id == *publisher)
            .map(Member::reference)
        else {
            return;
        };
        for publication in publications {
            self.hooks.track(kind, publisher.clone(), publication);
        }
    }
}

/// One room; see the module documentation.
pub struct Room {
    /// The room itself, for the task it starts.
    this: Weak<Room>,
    name: String,
    created_at: SystemTime,
    state: Mutex<RoomState>,
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Room")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Room {
    fn new(name: String, webhooks: Webhooks) -> Arc<Self> {
        Arc::new_cyclic(|this| Self {
            this: this.clone(),
            created_at: SystemTime::now(),
            state: Mutex::new(RoomState {
                closed: false,
                members: Vec::new(),
                publications: Vec::new(),
                speakers: Detector::default(),
                speaker_task: false,
                hooks: RoomHooks::new(webhooks, name.clone()),
            }),
            name,
        })
    }

    /// The room's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many participants are in the room.
    pub fn len(&self) -> usize {
        self.state().members.len()
    }

    /// Whether the room has nobody in it.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a member, unless the room has just closed or already holds `max_members`. A
    /// member with the newcomer's identity is removed first, as if it had left, and told it
    /// was replaced: the newcomer takes its place, so it does not count against the maximum.
    fn try_join(&self, newcomer: Newcomer, max_members: usize) -> Result<Snapshot, JoinFailure> {
        let mut state = self.state();
        if state.closed {
            return Err(JoinFailure::Closed);
        }
        let replaced = newcomer.identity.as_ref().and_then(|identity| {
            state
                .members
                .iter()
                .find(|member| member.identity.as_ref() == Some(identity))
                .map(|member| member.info.id.clone())
        });
        if replaced.is_none() && state.members.len() >= max_members {
            return Err(JoinFailure::Full);
        }
        if let Some(old) = replaced
            && let Some(member) = remove_member(&mut state, &old)
        {
            let _ = member.events.send(RoomEvent::Replaced);
            self.speaker_left(&mut state, &old);
        }
        let Newcomer {
            info,
            identity,
            events,
        } = newcomer;
        let snapshot = Snapshot {
            participants: state
                .members
                .iter()
                .map(|member| member.info.clone())
                .collect(),
            publications: state.publications.clone(),
            speakers: told_speakers(&state),
        };
        broadcast(&state, &info.id, RoomEvent::ParticipantJoined(info.clone()));
        let member = Member {
            info,
            identity,
            events,
            joined_at: SystemTime::now(),
            connection: "new".to_owned(),
        };
        state.hooks.joining();
        state
            .hooks
            .participant(EventKind::ParticipantJoined, member.reference());
        state.members.push(member);
        Ok(snapshot)
    }

    /// Removes a member and everything it published. Returns whether the room is now closed.
    fn leave(&self, participant: &ParticipantId) -> bool {
        let mut state = self.state();
        if remove_member(&mut state, participant).is_some() && state.members.is_empty() {
            state.close();
        }
        self.speaker_left(&mut state, participant);
        state.closed
    }

    /// Announces new publications, all by one participant, to everybody but their publisher.
    pub fn publish(&self, publications: Vec<Arc<Publication>>) {
        let Some(publisher) = publications
            .first()
            .map(|publication| publication.info().participant.clone())
        else {
            return;
        };
        let mut state = self.state();
        if !state
            .members
            .iter()
            .any(|member| member.info.id == publisher)
        {
            // The publisher left while its tracks were starting.
            publications
                .iter()
                .for_each(|publication| publication.stop());
            return;
        }
        state.publications.extend(publications.iter().cloned());
        state.track_events(EventKind::TrackPublished, &publisher, &publications);
        if publications
            .iter()
            .any(|publication| publication.audio_level().is_some())
        {
            self.watch_speakers(&mut state);
        }
        broadcast(&state, &publisher, RoomEvent::Published(publications));
    }

    /// Ends publications, all by one participant, and tells everybody but their publisher.
    pub fn unpublish(&self, publications: Vec<Arc<Publication>>) {
        let mut state = self.state();
        let mut ended = Vec::with_capacity(publications.len());
        for publication in publications {
            publication.stop();
            let before = state.publications.len();
            state
                .publications
                .retain(|existing| !Arc::ptr_eq(existing, &publication));
            if state.publications.len() != before {
                ended.push(publication);
            }
        }
        let Some(publisher) = ended
            .first()
            .map(|publication| publication.info().participant.clone())
        else {
            return;
        };
        state.track_events(EventKind::TrackUnpublished, &publisher, &ended);
        broadcast(&state, &publisher, RoomEvent::Unpublished(ended));
    }

    /// Records a mute change on a publication and tells everybody but its publisher.
    pub fn set_muted(&self, publication: &Arc<Publication>, muted: bool) {
        let state = self.state();
        publication.set_muted(muted);
        let info = publication.info();
        broadcast(
            &state,
            &info.participant,
            RoomEvent::Muted {
                participant: info.participant.clone(),
                track: info.track.clone(),
                muted,
            },
        );
    }

    /// Sends a chat message to every member, the sender included, stamped with the time the
    /// room received it. Stamping under the lock keeps the stamps in the order members see.
    pub fn chat(&self, participant: &ParticipantId, text: String) {
        let state = self.state();
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        let event = RoomEvent::Chat {
            participant: participant.clone(),
            text,
            at,
        };
        for member in &state.members {
            let _ = member.events.send(event.clone());
        }
    }

    /// Every track published in the room.
    pub fn publications(&self) -> Vec<Arc<Publication>> {
        self.state().publications.clone()
    }

    /// The room and its participant count.
    pub fn view(&self) -> RoomView {
        RoomView {
            name: self.name.clone(),
            participants: self.len(),
            created_at: self.created_at,
        }
    }

    /// Every participant, in the order they joined, with what each publishes.
    pub fn participants(&self) -> Vec<ParticipantView> {
        let state = self.state();
        state
            .members
            .iter()
            .map(|member| ParticipantView {
                id: member.info.id.clone(),
                identity: member.identity.clone(),
                name: member.info.name.clone(),
                joined_at: member.joined_at,
                connection: member.connection.clone(),
                tracks: state
                    .publications
                    .iter()
                    .filter(|publication| publication.info().participant == member.info.id)
                    .map(|publication| TrackView {
                        id: publication.info().track.clone(),
                        kind: publication.info().kind,
                        muted: publication.muted(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// Records the state of a member's media connection, for [`Room::participants`].
    pub fn set_connection_state(&self, participant: &ParticipantId, connection: String) {
        let mut state = self.state();
        if let Some(member) = state
            .members
            .iter_mut()
            .find(|member| member.info.id == *participant)
        {
            member.connection = connection;
        }
    }

    /// Removes a member as if it had left, and tells it it was removed. Returns whether it
    /// was there, and whether the room is now closed.
    fn remove(&self, participant: &ParticipantId) -> (bool, bool) {
        let mut state = self.state();
        let Some(member) = remove_member(&mut state, participant) else {
            return (false, state.closed);
        };
        let _ = member.events.send(RoomEvent::Removed);
        if state.members.is_empty() {
            state.close();
        }
        self.speaker_left(&mut state, participant);
        (true, state.closed)
    }

    /// Removes every member, each sent `farewell` (`Removed` or `Moved`), and closes the
    /// room. Nobody stays to hear of the others leaving, so nobody is told (it would only start
    /// renegotiations on sessions about to end).
    fn remove_everyone(&self, farewell: RoomEvent) {
        let mut guard = self.state();
        let state = &mut *guard;
        let publications = std::mem::take(&mut state.publications);
        publications
            .iter()
            .for_each(|publication| publication.stop());
        // The webhooks hear every departure, as if each had left on its own.
        for member in &state.members {
            state.hooks.left(
                member.reference(),
                publications
                    .iter()
                    .filter(|publication| publication.info().participant == member.info.id),
            );
        }
        for member in std::mem::take(&mut state.members) {
            let _ = member.events.send(farewell.clone());
        }
        state.close();
    }

    /// Asks a member's session to mute or unmute one of its published tracks.
    pub fn request_mute(
        &self,
        participant: &ParticipantId,
        track: &str,
        muted: bool,
    ) -> Result<(), MuteRefusal> {
        let state = self.state();
        let member = state
            .members
            .iter()
            .find(|member| member.info.id == *participant)
            .ok_or(MuteRefusal::UnknownParticipant)?;
        if !state.publications.iter().any(|publication| {
            publication.info().participant == *participant && publication.info().track == track
        }) {
            return Err(MuteRefusal::UnknownTrack);
        }
        let _ = member.events.send(RoomEvent::MuteRequested {
            track: track.to_owned(),
            muted,
        });
        Ok(())
    }

    fn state(&self) -> MutexGuard<'_, RoomState> {
        self.state.lock()
    }
}

/// Removes a member and everything it published, telling everybody else. Returns the member,
/// if it was there.
fn remove_member(state: &mut RoomState, participant: &ParticipantId) -> Option<Member> {
    let index = state
        .members
        .iter()
        .position(|member| member.info.id == *participant)?;
    let member = state.members.remove(index);
    let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut state.publications)
        .into_iter()
        .partition(|publication| publication.info().participant == *participant);
    state.publications = kept;
    gone.iter().for_each(|publication| publication.stop());
    state.hooks.left(member.reference(), &gone);
    if !gone.is_empty() {
        broadcast(state, participant, RoomEvent::Unpublished(gone));
    }
    broadcast(
        state,
        participant,
        RoomEvent::ParticipantLeft(participant.clone()),
    );
    Some(member)
}

/// Sends `event` to every member but `origin`. A member whose session has ended is skipped;
/// it is about to leave.
fn broadcast(state: &RoomState, origin: &ParticipantId, event: RoomEvent) {
    for member in state
        .members
        .iter()
        .filter(|member| member.info.id != *origin)
    {
        let _ = member.events.send(event.clone());
    }
}

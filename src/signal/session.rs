//! One WebSocket: parse and validate what the client says, drive its participant, relay what
//! the room and the connection report.
//!
//! A session is a single task that owns everything about its participant, so nothing in it
//! needs a lock: it waits on the socket, the room's events, the connection's events and the
//! subscriber feedback together, and handles one thing at a time. Whatever way it ends (a
//! `leave`, a closed socket, a failed connection, a client that stopped reading or answering,
//! a step of its setup not taken in time, the server shutting down) it leaves the room and
//! closes the connection on the way out.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::ws::{Message, WebSocket};
use futures::StreamExt;
use rtc::peer_connection::state::RTCPeerConnectionState;
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info};

use crate::ServerContext;
use crate::auth::{Grants, TokenError};
use crate::cluster::{Cluster, Placement, PlacementError};
use crate::drain::SessionGuard;
use crate::engine::ConnectionHandle;
use crate::http::unjoined::UnjoinedGuard;
use crate::ids::{Mid, ParticipantId};
use crate::media::speaker::Speakers;
use crate::metrics::{Gauge, GaugeGuard};
use crate::room::{JoinRefusal, Newcomer, Room, RoomEvent};
use crate::rtc::connection::{MediaError, Notice};
use crate::rtc::negotiation::ANSWER_TIMEOUT;
use crate::signal::admit;
use crate::signal::closing::{Ending, FLUSH_TIMEOUT, Overdue};
use crate::signal::liveness::{Due, Liveness};
use crate::signal::outbox::{Outbox, Unreachable};
use crate::signal::protocol::{
    ClientMessage, ErrorCode, ParticipantInfo, ServerMessage, check_chat_text, is_valid_room_name,
    normalize_display_name,
};
use crate::signal::rate::{RateLimiter, Verdict};
use crate::signal::setup::Setup;
use crate::signal::views::view_requests;
use crate::signal::writer::write_frames;

/// The largest text frame a client may send; larger ones close the socket with 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// How many waiting room events one negotiation may gather: enough for everybody in a large
/// room publishing at once, few enough that the socket and the media are not kept waiting.
const MAX_ROOM_EVENTS_AT_ONCE: usize = 64;

/// Runs one client's session to its end; `_guard` counts it in the server's drain until then,
/// and `unjoined` among the sockets waiting to join until it joins.
pub async fn run(
    socket: WebSocket,
    context: Arc<ServerContext>,
    _guard: SessionGuard,
    unjoined: UnjoinedGuard,
) {
    let span = tracing::info_span!(
        "session",
        room = tracing::field::Empty,
        participant = tracing::field::Empty,
        identity = tracing::field::Empty
    );
    async move {
        let (sink, mut stream) = socket.split();
        let signaling = &context.config.signaling;
        let (outbox, queue) = Outbox::new(signaling.outbox_bytes);
        let writer = tokio::spawn(write_frames(sink, queue));
        let now = Instant::now();
        let setup = Setup::new(signaling, now);
        let liveness = Liveness::new(signaling.ping_interval, signaling.ping_timeout, now);
        let limits = &context.config.limits;
        let rate = RateLimiter::new(limits.messages_per_second, limits.message_burst, now);
        let mut session = Session {
            context,
            outbox,
            rate,
            setup,
            liveness,
            joined: None,
            unjoined,
        };
        let ending = session.drive(&mut stream).await;
        let context = Arc::clone(&session.context);
        session.finish(ending).await;
        // Dropping the session dropped the outbox: the writer sends what is queued, the close
        // frame last (first, dropping the rest, for a client that stopped reading), and stops.
        // Then the client's own close frame is awaited, reading and discarding whatever it
        // still sent: a socket torn down with data unread is reset, and a reset can cost the
        // client our last frames. A client that does not read or never closes is not waited
        // for any longer (nor past the end of a shutdown's grace period).
        let mut closed_by = tokio::time::Instant::now() + FLUSH_TIMEOUT;
        if let Some(deadline) = context.drain.deadline() {
            closed_by = closed_by.min(deadline);
        }
        let abort = writer.abort_handle();
        let closing = async {
            let _ = writer.await;
            while let Some(Ok(frame)) = stream.next().await {
                if matches!(frame, Message::Close(_)) {
                    break;
                }
            }
        };
        if tokio::time::timeout_at(closed_by, closing).await.is_err() {
            abort.abort();
        }
    }
    .instrument(span)
    .await;
}

impl From<Unreachable> for Ending {
    fn from(_: Unreachable) -> Self {
        Ending::NotReading
    }
}

/// What the session waits on, one at a time.
enum Input {
    Frame(Option<Result<Message, axum::Error>>),
    Room(RoomEvent),
    Media(Vec<Notice>),
    Overdue(Overdue, Duration),
    Liveness,
    ShuttingDown,
}

/// A participant that has joined.
struct Joined {
    id: ParticipantId,
    grants: Grants,
    room: Arc<Room>,
    room_events: mpsc::UnboundedReceiver<RoomEvent>,
    media: ConnectionHandle,
    /// What the connection reports on its own: state changes, tracks that start.
    media_events: mpsc::UnboundedReceiver<Vec<Notice>>,
    /// When the `join` arrived, until the media connection first connects and the join
    /// latency is recorded. Cleared unmeasured when the participant's first offer left
    /// nothing to connect (it publishes nothing and there is nothing to receive yet): its wait
    /// for somebody else to publish is no measure of the server.
    join_started: Option<Instant>,
    /// The room's active speaker as the connection last heard it, so that it hears only of
    /// changes.
    active_speaker: Option<ParticipantId>,
    _gauge: GaugeGuard,
}

struct Session {
    context: Arc<ServerContext>,
    outbox: Outbox,
    rate: RateLimiter,
    /// The deadlines of the way in: `join`, the first `offer`, the media connection.
    setup: Setup,
    /// The pings that show the client is still there.
    liveness: Liveness,
    joined: Option<Joined>,
    unjoined: UnjoinedGuard,
}

impl Session {
    async fn drive(&mut self, stream: &mut futures::stream::SplitStream<WebSocket>) -> Ending {
        loop {
            let input = self.next_input(stream).await;
            let result = match input {
                Input::Frame(frame) => match self.on_frame(frame).await {
                    Ok(Some(ending)) => return ending,
                    Ok(None) => Ok(()),
                    Err(unreachable) => Err(unreachable.into()),
                },
                Input::Room(event) => self.on_room_events(event).await,
                Input::Media(notices) => self.apply(notices),
                Input::Overdue(overdue, after) => Err(Ending::TimedOut { overdue, after }),
                Input::Liveness => self.check_liveness(),
                Input::ShuttingDown => Err(Ending::ShuttingDown),
            };
            if let Err(ending) = result {
                return ending;
            }
        }
    }

    async fn next_input(&mut self, stream: &mut futures::stream::SplitStream<WebSocket>) -> Input {
        let (room_events, media_events, answer_deadline) = match self.joined.as_mut() {
            Some(joined) => (
                Some(&mut joined.room_events),
                Some(&mut joined.media_events),
                joined.media.status().answer_deadline,
            ),
            None => (None, None, None),
        };
        let answer_deadline =
            answer_deadline.map(|deadline| (deadline, Overdue::Answer, ANSWER_TIMEOUT));
        let setup_deadline = self.setup.deadline();
        // A shutdown goes before anything else: whatever else is waiting would only be undone.
        // A deadline goes before frames, which a busy client could otherwise keep coming.
        tokio::select! {
            biased;
            _ = self.context.drain.begun() => Input::ShuttingDown,
            (overdue, after) = overdue_at(setup_deadline) => Input::Overdue(overdue, after),
            (overdue, after) = overdue_at(answer_deadline) => Input::Overdue(overdue, after),
            () = tokio::time::sleep_until(self.liveness.wake_at().into()) => Input::Liveness,
            frame = stream.next() => Input::Frame(frame),
            Some(event) = recv_optional(room_events) => Input::Room(event),
            Some(notices) = recv_optional(media_events) => Input::Media(notices),
        }
    }

    /// Pings the client when a ping is due; ends the session when one went unanswered.
    fn check_liveness(&mut self) -> Result<(), Ending> {
        match self.liveness.on_wake(Instant::now()) {
            None => Ok(()),
            Some(Due::Ping(payload)) => Ok(self.outbox.ping(payload)?),
            Some(Due::Unresponsive) => Err(Ending::TimedOut {
                overdue: Overdue::Pong,
                after: self.liveness.timeout(),
            }),
        }
    }

    /// Handles one frame; `Some` ends the session.
    async fn on_frame(
        &mut self,
        frame: Option<Result<Message, axum::Error>>,
    ) -> Result<Option<Ending>, Unreachable> {
        let text = match frame {
            None | Some(Ok(Message::Close(_))) => return Ok(Some(Ending::SocketClosed)),
            Some(Err(error)) => {
                debug!(%error, "socket error");
                return Ok(Some(Ending::from_socket_error(error)));
            }
            // Answered by the WebSocket layer itself; it carries no message.
            Some(Ok(Message::Ping(_))) => return Ok(None),
            Some(Ok(Message::Pong(payload))) => {
                self.liveness.on_pong(&payload);
                return Ok(None);
            }
            Some(Ok(message)) => message,
        };
        match self.rate.check(Instant::now()) {
            Verdict::Allowed => {}
            Verdict::Limited => {
                let limits = &self.context.config.limits;
                self.refuse(
                    ErrorCode::RateLimited,
                    format!(
                        "too many messages: at most {} a second, {} at once; this one was dropped",
                        limits.messages_per_second, limits.message_burst
                    ),
                )?;
                return Ok(None);
            }
            Verdict::Abusive => return Ok(Some(Ending::RateAbuse)),
        }
        let text = match text {
            Message::Text(text) => text,
            _ => {
                self.refuse(
                    ErrorCode::MalformedMessage,
                    "messages are JSON text frames".to_owned(),
                )?;
                return Ok(None);
            }
        };
        if text.len() > MAX_FRAME_BYTES {
            return Ok(Some(Ending::FrameTooBig));
        }
        let message = match ClientMessage::parse(text.as_str()) {
            Ok(message) => message,
            Err((code, message)) => {
                self.refuse(code, message)?;
                return Ok(None);
            }
        };
        match self.on_message(message).await {
            Ok(ending) => Ok(ending),
            Err(MessageError::Refused(code, message)) => {
                self.refuse(code, message)?;
                Ok(None)
            }
            Err(MessageError::End(Ending::NotReading)) => Err(Unreachable),
            Err(MessageError::End(ending)) => Ok(Some(ending)),
        }
    }

    async fn on_message(&mut self, message: ClientMessage) -> Result<Option<Ending>, MessageError> {
        if let ClientMessage::Join { room, name, token } = message {
            self.join(room, name, token).await?;
            return Ok(None);
        }
        let Some(joined) = self.joined.as_mut() else {
            return Err(MessageError::Refused(
                ErrorCode::NotJoined,
                "send `join` first".to_owned(),
            ));
        };
        match message {
            ClientMessage::Join { .. } => unreachable!("handled above"),
            ClientMessage::Leave {} => return Ok(Some(Ending::Left)),
            ClientMessage::Offer { sdp } => {
                let notices = joined.media.offer(sdp).await?;
                let open = joined.media.status().open;
                if !open {
                    joined.join_started = None;
                }
                // An offer that crossed the server's own is ignored, not answered.
                if notices
                    .iter()
                    .any(|notice| matches!(notice, Notice::Answer(_)))
                {
                    self.setup.offer_answered();
                    if open {
                        self.setup.media_to_connect(Instant::now());
                    }
                }
                self.apply(notices).map_err(MessageError::End)?;
            }
            ClientMessage::Answer { sdp } => {
                let notices = joined.media.answer(sdp).await?;
                self.setup.media_to_connect(Instant::now());
                self.apply(notices).map_err(MessageError::End)?;
            }
            ClientMessage::Candidate { candidate } => {
                joined.media.candidate(candidate).await?;
            }
            ClientMessage::Mute { track, muted } => {
                if let Some(publication) = joined.media.mute(track, muted).await? {
                    joined.room.set_muted(&publication, muted);
                }
            }
            ClientMessage::View { tracks } => {
                let views = view_requests(tracks).map_err(|problem| {
                    MessageError::Refused(ErrorCode::InvalidView, problem.to_string())
                })?;
                joined.media.view(views);
            }
            ClientMessage::Chat { text } => {
                if !joined.grants.chat {
                    return Err(MessageError::Refused(
                        ErrorCode::ChatNotAllowed,
                        "this participant's access token does not grant `chat`".to_owned(),
                    ));
                }
                check_chat_text(&text).map_err(|problem| {
                    MessageError::Refused(ErrorCode::InvalidChat, problem.to_string())
                })?;
                let max_bytes = self.context.config.limits.max_chat_bytes;
                if text.len() > max_bytes {
                    return Err(MessageError::Refused(
                        ErrorCode::ChatTooLong,
                        format!(
                            "a chat message is at most {max_bytes} bytes of UTF-8 on this server; this one is {}",
                            text.len()
                        ),
                    ));
                }
                joined.room.chat(&joined.id, text);
            }
        }
        Ok(None)
    }

    async fn join(
        &mut self,
        room: String,
        name: String,
        token: Option<String>,
    ) -> Result<(), MessageError> {
        let started = Instant::now();
        if self.joined.is_some() {
            return Err(MessageError::Refused(
                ErrorCode::AlreadyJoined,
                "this session has already joined a room".to_owned(),
            ));
        }
        if self.context.drain.is_draining() {
            return Err(MessageError::Refused(
                ErrorCode::ShuttingDown,
                "the server is shutting down; join again in a moment".to_owned(),
            ));
        }
        if !is_valid_room_name(&room) {
            return Err(MessageError::Refused(
                ErrorCode::InvalidRoom,
                "a room name is 1 to 64 characters of A-Z, a-z, 0-9, `_` and `-`".to_owned(),
            ));
        }
        let name = normalize_display_name(&name).map_err(|problem| {
            MessageError::Refused(ErrorCode::InvalidName, problem.to_string())
        })?;
        let context = Arc::clone(&self.context);
        if let Some(cluster) = &context.cluster {
            find_room(&context, cluster, &room, token.as_deref()).await?;
        }
        let admitted = admit::admit(&context, &room, name, token)?;
        let (identity, name, grants) = (
            admitted.identity.clone(),
            admitted.name.clone(),
            admitted.grants,
        );
        let id = ParticipantId::random();
        let info = ParticipantInfo {
            id: id.clone(),
            name: name.clone(),
        };
        let (events, room_events) = mpsc::unbounded_channel();
        let joining = context.registry.join(
            &room,
            Newcomer {
                info,
                identity: identity.clone(),
                events,
            },
        );
        let (room, snapshot) = joining.inspect_err(|_| admit::give_back(&context, &admitted))?;
        let guest_token = admit::guest_token(&context, room.name(), &admitted);
        let span = tracing::Span::current();
        span.record("room", room.name());
        span.record("participant", id.as_str());
        if let Some(identity) = &identity {
            span.record("identity", identity.as_str());
        }
        let (media_events_tx, media_events) = mpsc::unbounded_channel();
        let media = context.engine.connect(room.name(), &id, media_events_tx);
        if !grants.publish {
            media.forbid_publishing();
        }
        if grants.subscribe {
            for publication in snapshot.publications {
                media.want(publication);
            }
        }
        let gauge = GaugeGuard::new(&context.metrics, Gauge::Participants);
        context.metrics.joins.fetch_add(1, Ordering::Relaxed);
        info!(others = snapshot.participants.len(), %grants, "joined");
        let turn_user = identity.as_deref().unwrap_or(id.as_str());
        let joined_message = ServerMessage::Joined {
            participant: id.clone(),
            room: room.name().to_owned(),
            name,
            grants,
            token: guest_token,
            participants: snapshot.participants,
            ice_servers: crate::turn::ice_servers(
                &context.config.ice,
                turn_user,
                SystemTime::now(),
            ),
        };
        // Somebody has the floor: a speaker view shows them from the start, and the allocation
        // puts their video first.
        let active_speaker = snapshot.speakers.active.clone();
        if active_speaker.is_some() {
            media.set_active_speaker(active_speaker.clone());
        }
        let speakers = active_speaker
            .is_some()
            .then(|| speakers_message(snapshot.speakers));
        self.joined = Some(Joined {
            id,
            grants,
            room,
            room_events,
            media,
            media_events,
            join_started: Some(started),
            active_speaker,
            _gauge: gauge,
        });
        self.setup.joined(Instant::now());
        self.unjoined.release();
        self.outbox
            .send(&joined_message)
            .map_err(|unreachable| MessageError::End(unreachable.into()))?;
        match speakers {
            Some(speakers) => self
                .outbox
                .send(&speakers)
                .map_err(|unreachable| MessageError::End(unreachable.into())),
            None => Ok(()),
        }
    }

    /// Handles `first` and the room events already waiting behind it, negotiating once for
    /// all the media changes among them: when several people publish or leave at the same
    /// moment (a meeting's start), the client gets one offer rather than one per change, and
    /// fewer of its own offers cross the server's.
    async fn on_room_events(&mut self, first: RoomEvent) -> Result<(), Ending> {
        let mut next = Some(first);
        let mut handled = 0;
        // Who speaks changes no media: a batch of only that (several times a second in a
        // conversation) does not wake the media worker.
        let mut only_speakers = true;
        while let Some(event) = next.take() {
            only_speakers &= matches!(event, RoomEvent::Speakers(_));
            self.on_room_event(event).await?;
            handled += 1;
            if handled < MAX_ROOM_EVENTS_AT_ONCE {
                next = self
                    .joined
                    .as_mut()
                    .and_then(|joined| joined.room_events.try_recv().ok());
            }
        }
        if only_speakers {
            return Ok(());
        }
        self.negotiate().await
    }

    /// Applies one room event. A change of the tracks the client receives waits for the next
    /// negotiation; anything else is passed on at once, after the media changes before it, so
    /// the client hears of them in the order they happened.
    async fn on_room_event(&mut self, event: RoomEvent) -> Result<(), Ending> {
        let Some(joined) = self.joined.as_mut() else {
            return Ok(());
        };
        let message = match event {
            RoomEvent::Published(publications) => {
                if joined.grants.subscribe {
                    for publication in publications {
                        joined.media.want(publication);
                    }
                }
                return Ok(());
            }
            RoomEvent::Unpublished(publications) => {
                for publication in &publications {
                    joined.media.unwant(publication.key());
                }
                return Ok(());
            }
            RoomEvent::Replaced => return Err(Ending::Replaced),
            RoomEvent::Removed => return Err(Ending::Removed),
            RoomEvent::Moved => return Err(Ending::Moved),
            RoomEvent::MuteRequested { track, muted } => {
                // The same path as the client's own `mute`; the client is told too, as it did
                // not ask.
                match joined.media.mute(track.clone(), muted).await {
                    Ok(Some(publication)) => joined.room.set_muted(&publication, muted),
                    Ok(None) => {}
                    Err(error) => {
                        debug!(%error, "an operator's mute did not apply");
                        return Ok(());
                    }
                }
                ServerMessage::Mute {
                    participant: joined.id.clone(),
                    track,
                    muted,
                }
            }
            RoomEvent::ParticipantJoined(participant) => {
                ServerMessage::ParticipantJoined { participant }
            }
            RoomEvent::Speakers(speakers) => {
                // It names participants, not tracks: no media change need go before it.
                if joined.active_speaker != speakers.active {
                    joined.active_speaker = speakers.active.clone();
                    joined.media.set_active_speaker(speakers.active.clone());
                }
                self.outbox.send(&speakers_message(speakers))?;
                return Ok(());
            }
            RoomEvent::ParticipantLeft(participant) => {
                ServerMessage::ParticipantLeft { participant }
            }
            RoomEvent::Muted {
                participant,
                track,
                muted,
            } => ServerMessage::Mute {
                participant,
                track,
                muted,
            },
            RoomEvent::Chat {
                participant,
                text,
                at,
            } => ServerMessage::Chat {
                participant,
                text,
                at,
            },
        };
        self.negotiate().await?;
        self.outbox.send(&message)?;
        Ok(())
    }

    /// Offers the client what changed in the tracks it receives, if anything did and no
    /// negotiation is under way (the answer's arrival offers the rest).
    async fn negotiate(&mut self) -> Result<(), Ending> {
        let Some(joined) = self.joined.as_mut() else {
            return Ok(());
        };
        let notices = joined.media.negotiate().await.map_err(fatal)?;
        self.apply(notices)
    }

    /// Carries out what the connection reports, in order: messages to the client, changes to
    /// the room, and what its state means for the session.
    fn apply(&mut self, notices: Vec<Notice>) -> Result<(), Ending> {
        let Some(joined) = self.joined.as_mut() else {
            return Ok(());
        };
        for notice in notices {
            let message = match notice {
                Notice::Answer(sdp) => ServerMessage::Answer { sdp },
                Notice::Offer(sdp) => ServerMessage::Offer { sdp },
                Notice::TrackPublished { publication, mid } => {
                    let info = publication.info();
                    ServerMessage::TrackPublished {
                        participant: info.participant.clone(),
                        track: info.track.clone(),
                        kind: info.kind,
                        stream: info.stream.clone(),
                        mid: mid.into(),
                        muted: publication.muted(),
                    }
                }
                Notice::TrackUnpublished { publication, mid } => {
                    let info = publication.info();
                    ServerMessage::TrackUnpublished {
                        participant: info.participant.clone(),
                        track: info.track.clone(),
                        mid: mid.into(),
                    }
                }
                Notice::PublishRefused { mids } => {
                    self.context
                        .metrics
                        .signaling_errors
                        .fetch_add(1, Ordering::Relaxed);
                    ServerMessage::error(
                        ErrorCode::PublishNotAllowed,
                        format!(
                            "this participant may not publish: the offer was answered with its sending media sections (mid {}) inactive",
                            mids.iter().map(Mid::as_str).collect::<Vec<_>>().join(", ")
                        ),
                    )
                }
                Notice::Publish(publications) => {
                    joined.room.publish(publications);
                    continue;
                }
                Notice::Unpublish(publications) => {
                    joined.room.unpublish(publications);
                    continue;
                }
                Notice::VideoPaused {
                    publication,
                    paused,
                } => {
                    let info = publication.info();
                    ServerMessage::VideoPaused {
                        participant: info.participant.clone(),
                        track: info.track.clone(),
                        paused,
                    }
                }
                Notice::Layers { track, active } => ServerMessage::Layers { track, active },
                Notice::State(state) => {
                    debug!(%state, "connection state");
                    joined
                        .room
                        .set_connection_state(&joined.id, state.to_string());
                    if state == RTCPeerConnectionState::Connected {
                        self.setup.connected();
                        if let Some(started) = joined.join_started.take() {
                            let latency = started.elapsed();
                            self.context
                                .metrics
                                .join_seconds
                                .observe(latency.as_secs_f64());
                            info!(seconds = latency.as_secs_f64(), "media connected");
                        }
                    }
                    if matches!(
                        state,
                        RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
                    ) {
                        return Err(Ending::MediaFailed(format!("the connection is {state}")));
                    }
                    continue;
                }
            };
            self.outbox.send(&message)?;
        }
        Ok(())
    }

    fn refuse(&self, code: ErrorCode, message: String) -> Result<(), Unreachable> {
        debug!(?code, %message, "refused a message");
        self.context
            .metrics
            .signaling_errors
            .fetch_add(1, Ordering::Relaxed);
        self.outbox.send(&ServerMessage::error(code, message))
    }

    /// Leaves the room, closes the connection and says goodbye on the socket.
    async fn finish(mut self, ending: Ending) {
        let farewell = ending.farewell();
        // The socket's last word goes out before the media connection closes: a client that
        // sees its connection end first may give up on the socket before reading why.
        if farewell.at_once {
            self.outbox.close_now(farewell.code, farewell.reason);
        } else {
            if let Some(message) = &farewell.message {
                let _ = self.outbox.send(message);
            }
            self.outbox.close(farewell.code, farewell.reason);
        }
        if let Some(joined) = self.joined.take() {
            info!(?ending, "leaving");
            self.context.registry.leave(&joined.room, &joined.id);
            // Dropping the handle closes the connection on its worker.
            drop(joined);
        } else {
            debug!(?ending, "session ended before joining");
        }
    }
}

/// On a node of a cluster: goes on when `room` lives here (it already does, or the directory
/// places it here); ends the session with a redirect when it lives on another node. A room
/// this node hosts is served without asking Redis, so its calls go on while Redis is down.
async fn find_room(
    context: &ServerContext,
    cluster: &Cluster,
    room: &str,
    token: Option<&str>,
) -> Result<(), MessageError> {
    if context.registry.room(room).is_some() {
        return Ok(());
    }
    admit::check(context, room, token)?;
    match cluster.place(room).await {
        Ok(Placement::Here) => Ok(()),
        Ok(Placement::Elsewhere(url)) => {
            context
                .metrics
                .cluster
                .redirects
                .fetch_add(1, Ordering::Relaxed);
            debug!(%room, %url, "the room lives on another node: redirected");
            Err(MessageError::End(Ending::Redirected(url)))
        }
        Err(error @ PlacementError::Full(_)) => Err(MessageError::Refused(
            ErrorCode::TooManyRooms,
            error.to_string(),
        )),
        Err(error @ PlacementError::Unavailable(_)) => {
            info!(%room, %error, "cannot place the room");
            Err(MessageError::End(Ending::ClusterUnavailable(
                error.to_string(),
            )))
        }
    }
}

/// A client message that could not be applied.
pub(crate) enum MessageError {
    /// Refuse it with an `error`; the session goes on.
    Refused(ErrorCode, String),
    /// End the session.
    End(Ending),
}

impl From<MediaError> for MessageError {
    fn from(error: MediaError) -> Self {
        let message = error.to_string();
        match error {
            MediaError::InvalidSdp(_) => MessageError::Refused(ErrorCode::InvalidSdp, message),
            MediaError::UnexpectedAnswer => {
                MessageError::Refused(ErrorCode::UnexpectedAnswer, message)
            }
            MediaError::InvalidCandidate(_) => {
                MessageError::Refused(ErrorCode::InvalidCandidate, message)
            }
            MediaError::UnknownTrack(_) => MessageError::Refused(ErrorCode::UnknownTrack, message),
            MediaError::Internal(_) => MessageError::End(Ending::MediaFailed(message)),
        }
    }
}

impl From<TokenError> for MessageError {
    fn from(error: TokenError) -> Self {
        MessageError::Refused(error.code(), error.to_string())
    }
}

impl From<JoinRefusal> for MessageError {
    fn from(refusal: JoinRefusal) -> Self {
        let code = match refusal {
            JoinRefusal::RoomFull { .. } => ErrorCode::RoomFull,
            JoinRefusal::TooManyRooms { .. } => ErrorCode::TooManyRooms,
        };
        MessageError::Refused(code, refusal.to_string())
    }
}

/// A failure while renegotiating on the room's behalf ends the session.
fn speakers_message(speakers: Speakers) -> ServerMessage {
    ServerMessage::Speakers {
        active: speakers.active,
        speaking: speakers.speaking,
    }
}

fn fatal(error: MediaError) -> Ending {
    Ending::MediaFailed(error.to_string())
}

/// Waits for `deadline`, if there is one, and says what it was for.
async fn overdue_at(deadline: Option<(Instant, Overdue, Duration)>) -> (Overdue, Duration) {
    match deadline {
        Some((deadline, overdue, after)) => {
            tokio::time::sleep_until(deadline.into()).await;
            (overdue, after)
        }
        None => std::future::pending().await,
    }
}

/// The next item of `receiver`, if there is a receiver; otherwise never.
async fn recv_optional<T>(receiver: Option<&mut mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match receiver {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

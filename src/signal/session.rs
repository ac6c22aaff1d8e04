//! One WebSocket: parse and validate what the client says, drive its participant, relay what
//! the room and the connection report.
//!
//! A session is a single task that owns everything about its participant, so nothing in it
//! needs a lock: it waits on the socket, the room's events, the connection's events and the
//! subscriber feedback together, and handles one thing at a time. Whatever way it ends (a
//! `leave`, a closed socket, a failed connection, a client that stopped reading, the server
//! shutting down) it leaves the room and closes the connection on the way out.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};
use rtc::peer_connection::state::RTCPeerConnectionState;
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info};

use crate::ServerContext;
use crate::auth::{Access, Grants, TokenError};
use crate::drain::SessionGuard;
use crate::engine::ConnectionHandle;
use crate::http::unjoined::UnjoinedGuard;
use crate::ids::{Mid, ParticipantId};
use crate::metrics::{Gauge, GaugeGuard};
use crate::room::{JoinRefusal, Newcomer, Room, RoomEvent};
use crate::rtc::connection::{MediaError, Notice};
use crate::signal::outbox::{Outbox, Outgoing, Unreachable};
use crate::signal::protocol::{
    ClientMessage, ErrorCode, MAX_CHAT_CHARS, ParticipantInfo, ServerMessage, is_valid_chat_text,
    is_valid_room_name, normalize_display_name,
};
use crate::signal::rate::{RateLimiter, Verdict};

/// The largest text frame a client may send; larger ones close the socket with 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// WebSocket close codes the server uses.
pub mod close_code {
    /// The session ended normally (`leave`).
    pub const NORMAL: u16 = 1000;
    /// A frame was larger than [`MAX_FRAME_BYTES`](super::MAX_FRAME_BYTES).
    pub const TOO_BIG: u16 = 1009;
    /// The media connection failed or the client stopped cooperating.
    pub const MEDIA_FAILED: u16 = 4001;
    /// The client did not read its messages.
    pub const NOT_READING: u16 = 4002;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A newer session with the same identity joined the room.
    pub const REPLACED: u16 = 4003;
    /// The client kept sending faster than allowed after being told `rate_limited`.
    pub const POLICY_VIOLATION: u16 = 1008;
}

/// How long the session waits for its last frames to reach the client and for the client to
/// close the socket in turn.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

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
        let (outbox, queue) = Outbox::new();
        let writer = tokio::spawn(write_frames(sink, queue));
        let limits = &context.config.limits;
        let rate = RateLimiter::new(
            limits.messages_per_second,
            limits.message_burst,
            Instant::now(),
        );
        let mut session = Session {
            context,
            outbox,
            rate,
            joined: None,
            unjoined,
        };
        let ending = session.drive(&mut stream).await;
        let context = Arc::clone(&session.context);
        session.finish(ending).await;
        // Dropping the session dropped the last outbox: the writer sends what is queued, the
        // close frame last, and stops. Then the client's own close frame is awaited, reading
        // and discarding whatever it still sent: a socket torn down with data unread is reset,
        // and a reset can cost the client our last frames. A client that stopped reading or
        // never closes is not waited for any longer (nor past the end of a shutdown's grace
        // period).
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

/// Why the session ends.
#[derive(Debug)]
enum Ending {
    /// The client said `leave`.
    Left,
    /// The socket closed or failed.
    SocketClosed,
    /// A frame exceeded the size limit.
    FrameTooBig,
    /// The media connection failed, or the client stopped answering offers.
    MediaFailed(String),
    /// The client stopped reading.
    NotReading,
    /// The server is shutting down.
    ShuttingDown,
    /// A newer session with the same identity took this one's place in the room.
    Replaced,
    /// The client kept sending after being rate limited.
    RateAbuse,
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
    AnswerOverdue,
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
    _gauge: GaugeGuard,
}

struct Session {
    context: Arc<ServerContext>,
    outbox: Outbox,
    rate: RateLimiter,
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
                Input::AnswerOverdue => Err(Ending::MediaFailed(
                    "the client did not answer the server's offer".to_owned(),
                )),
                Input::ShuttingDown => Err(Ending::ShuttingDown),
            };
            if let Err(ending) = result {
                return ending;
            }
        }
    }

    async fn next_input(&mut self, stream: &mut futures::stream::SplitStream<WebSocket>) -> Input {
        // A shutdown goes before anything else: whatever else is waiting would only be undone.
        let drain = &self.context.drain;
        let Some(joined) = self.joined.as_mut() else {
            return tokio::select! {
                biased;
                _ = drain.begun() => Input::ShuttingDown,
                frame = stream.next() => Input::Frame(frame),
            };
        };
        let deadline = joined.media.status().answer_deadline;
        tokio::select! {
            biased;
            _ = drain.begun() => Input::ShuttingDown,
            frame = stream.next() => Input::Frame(frame),
            Some(event) = joined.room_events.recv() => Input::Room(event),
            Some(notices) = joined.media_events.recv() => Input::Media(notices),
            () = sleep_until_optional(deadline) => Input::AnswerOverdue,
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
                return Ok(Some(if is_too_big(error) {
                    Ending::FrameTooBig
                } else {
                    Ending::SocketClosed
                }));
            }
            // Answered by the WebSocket layer itself; they carry no message.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => return Ok(None),
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
            self.join(room, name, token)?;
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
            ClientMessage::Leave => return Ok(Some(Ending::Left)),
            ClientMessage::Offer { sdp } => {
                let notices = joined.media.offer(sdp).await?;
                if !joined.media.status().open {
                    joined.join_started = None;
                }
                self.apply(notices).map_err(MessageError::End)?;
            }
            ClientMessage::Answer { sdp } => {
                let notices = joined.media.answer(sdp).await?;
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
            ClientMessage::Chat { text } => {
                if !joined.grants.chat {
                    return Err(MessageError::Refused(
                        ErrorCode::ChatNotAllowed,
                        "this participant's access token does not grant `chat`".to_owned(),
                    ));
                }
                if !is_valid_chat_text(&text) {
                    return Err(MessageError::Refused(
                        ErrorCode::InvalidChat,
                        format!(
                            "a chat message is 1 to {MAX_CHAT_CHARS} characters, not only white space"
                        ),
                    ));
                }
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

    fn join(
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
        let Some(name) = normalize_display_name(&name) else {
            return Err(MessageError::Refused(
                ErrorCode::InvalidName,
                "a display name is 1 to 64 characters, without control characters".to_owned(),
            ));
        };
        let context = Arc::clone(&self.context);
        let access = match &context.token_key {
            // An open server: everybody may do everything, and a token is not looked at.
            None => None,
            Some(key) => {
                let token = token.ok_or(TokenError::Missing)?;
                Some(key.verify(&token, &room)?)
            }
        };
        let (identity, name, grants) = match access {
            None => (None, name, Grants::ALL),
            Some(Access {
                identity,
                name: token_name,
                grants,
            }) => (Some(identity), token_name.unwrap_or(name), grants),
        };
        let id = ParticipantId::random();
        let info = ParticipantInfo {
            id: id.clone(),
            name: name.clone(),
        };
        let (events, room_events) = mpsc::unbounded_channel();
        let (room, snapshot) = context.registry.join(
            &room,
            Newcomer {
                info,
                identity: identity.clone(),
                events,
            },
        )?;
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
            participants: snapshot.participants,
            ice_servers: crate::turn::ice_servers(
                &context.config.ice,
                turn_user,
                SystemTime::now(),
            ),
        };
        self.joined = Some(Joined {
            id,
            grants,
            room,
            room_events,
            media,
            media_events,
            join_started: Some(started),
            _gauge: gauge,
        });
        self.unjoined.release();
        self.outbox
            .send(&joined_message)
            .map_err(|unreachable| MessageError::End(unreachable.into()))
    }

    /// Handles `first` and the room events already waiting behind it, negotiating once for
    /// all the media changes among them: when several people publish or leave at the same
    /// moment (a meeting's start), the client gets one offer rather than one per change, and
    /// fewer of its own offers cross the server's.
    async fn on_room_events(&mut self, first: RoomEvent) -> Result<(), Ending> {
        let mut next = Some(first);
        let mut handled = 0;
        while let Some(event) = next.take() {
            self.on_room_event(event).await?;
            handled += 1;
            if handled < MAX_ROOM_EVENTS_AT_ONCE {
                next = self
                    .joined
                    .as_mut()
                    .and_then(|joined| joined.room_events.try_recv().ok());
            }
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
            RoomEvent::ParticipantJoined(participant) => {
                ServerMessage::ParticipantJoined { participant }
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
                Notice::State(state) => {
                    debug!(%state, "connection state");
                    if state == RTCPeerConnectionState::Connected
                        && let Some(started) = joined.join_started.take()
                    {
                        let latency = started.elapsed();
                        self.context
                            .metrics
                            .join_seconds
                            .observe(latency.as_secs_f64());
                        info!(seconds = latency.as_secs_f64(), "media connected");
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
        let (code, reason) = match &ending {
            Ending::Left | Ending::SocketClosed => (close_code::NORMAL, "bye".to_owned()),
            Ending::FrameTooBig => (close_code::TOO_BIG, "message too big".to_owned()),
            Ending::MediaFailed(reason) => {
                let _ = self
                    .outbox
                    .send(&ServerMessage::error(ErrorCode::Internal, reason.clone()));
                (
                    close_code::MEDIA_FAILED,
                    "media connection failed".to_owned(),
                )
            }
            Ending::NotReading => (close_code::NOT_READING, "not reading".to_owned()),
            Ending::ShuttingDown => {
                let _ = self.outbox.send(&ServerMessage::Shutdown {
                    reason: "the server is shutting down".to_owned(),
                });
                (close_code::GOING_AWAY, "server shutting down".to_owned())
            }
            Ending::Replaced => {
                let _ = self.outbox.send(&ServerMessage::error(
                    ErrorCode::Replaced,
                    "a newer session with the same identity joined the room; this one has left",
                ));
                (close_code::REPLACED, "replaced".to_owned())
            }
            Ending::RateAbuse => {
                let _ = self.outbox.send(&ServerMessage::error(
                    ErrorCode::RateLimited,
                    "too many messages after being told to slow down: closing the connection",
                ));
                (close_code::POLICY_VIOLATION, "too many messages".to_owned())
            }
        };
        // The socket's last word goes out before the media connection closes: a client that
        // sees its connection end first may give up on the socket before reading why.
        self.outbox.close(code, &reason);
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

/// A client message that could not be applied.
enum MessageError {
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
fn fatal(error: MediaError) -> Ending {
    Ending::MediaFailed(error.to_string())
}

/// Whether a socket error means the client sent a frame over the size limit.
fn is_too_big(error: axum::Error) -> bool {
    matches!(
        error.into_inner().downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(_))
    )
}

async fn sleep_until_optional(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// The writer task: sends queued frames until a close frame or the end of the queue.
async fn write_frames(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Outgoing>,
) {
    while let Some(outgoing) = queue.recv().await {
        let result = match outgoing {
            Outgoing::Text(text) => sink.send(Message::Text(text.into())).await,
            Outgoing::Close { code, reason } => {
                // Sent and flushed; `run` waits, briefly, for the client's close frame.
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

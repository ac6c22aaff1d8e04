//! Janus's VideoRoom plugin, over the Janus WebSocket API (subprotocol `janus-protocol`).
//!
//! A Janus participant needs two peer connections, as VideoRoom never publishes and receives on
//! the same one:
//!
//! - [`ConnectionId::MAIN`] on a *publisher* handle: the participant joins the room with it
//!   (which also brings the room's events: who starts publishing, who leaves), and when it has
//!   tracks, publishes them with a `publish` request carrying its offer. Each published stream
//!   gets its track id as its description, so that receivers learn it as they would from
//!   Switchyard's `track_published`.
//! - [`SUBSCRIBER`] on a *subscriber* handle, opened when the first feed appears: one
//!   multistream subscription (Janus 1.x) to every publisher in the room. New feeds are added
//!   with `subscribe`; Janus offers, and the participant answers with `start`. This is the
//!   closest match to Switchyard's one connection receiving everybody, and it is how Janus's
//!   own multistream demo receives a room.
//!
//! Janus sends its candidates inside its session descriptions (half trickle); the participant's
//! are trickled. The session is kept alive every [`KEEPALIVE`]. Rooms are created on demand,
//! numbered by a hash of the room name, with VP8 and Opus and a bitrate cap no scenario reaches.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use ::switchyard::signal::protocol::TrackKind;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_tls_with_config};
use webrtc::peer_connection::RTCIceCandidateInit;

use super::{ConnectionId, JoinRequest, Session, SignalCommand, SignalEvent, Target};
use crate::ClientError;

/// The connection a Janus participant receives on.
pub const SUBSCRIBER: ConnectionId = ConnectionId(1);

/// The WebSocket subprotocol of the Janus API.
const SUBPROTOCOL: &str = "janus-protocol";
/// The plugin every handle attaches to.
const PLUGIN: &str = "janus.plugin.videoroom";
/// How often the session is kept alive; Janus drops sessions silent for 60 s by default.
pub const KEEPALIVE: Duration = Duration::from_secs(25);
/// How long Janus may take to answer one request while joining.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// VideoRoom's error code for creating a room that already exists.
const ROOM_EXISTS: u64 = 427;

/// A Janus server, and how the rooms it creates there are set up.
#[derive(Debug, Clone)]
pub struct Janus {
    /// The room's cap on concurrent publishers.
    pub max_publishers: u64,
    /// The bitrate cap Janus announces to publishers (REMB), bits per second.
    pub bitrate_cap: u64,
}

impl Default for Janus {
    fn default() -> Self {
        Self {
            max_publishers: crate::scenario::MAX_PARTICIPANTS as u64,
            // Far above any scenario's video, so the cap never shapes a measurement.
            bitrate_cap: 10_000_000,
        }
    }
}

#[async_trait::async_trait]
impl Target for Janus {
    fn name(&self) -> &'static str {
        "janus"
    }

    fn metrics_url(&self, _url: &str) -> Option<String> {
        None
    }

    async fn join(&self, request: JoinRequest) -> Result<Session, ClientError> {
        let mut socket = Socket::connect(&request.url, request.tls.clone()).await?;
        let created = socket.call(json!({"janus": "create"})).await?;
        let session = id_in(&created["data"], "id", "the session id")?;
        let attached = socket
            .call(json!({"janus": "attach", "session_id": session, "plugin": PLUGIN}))
            .await?;
        let publisher = id_in(&attached["data"], "id", "the publisher handle id")?;
        let room = room_id(&request.room);
        let create = json!({
            "request": "create",
            "room": room,
            "description": request.room,
            "publishers": self.max_publishers,
            "bitrate": self.bitrate_cap,
            "videocodec": "vp8",
            "audiocodec": "opus",
        });
        let response = socket
            .call(plugin_message(session, publisher, create, None))
            .await?;
        let data = plugin_data(&response);
        if data["videoroom"] != "created" && data["error_code"].as_u64() != Some(ROOM_EXISTS) {
            return Err(ClientError::Rejected(format!(
                "creating room {room}: {}",
                data["error"].as_str().unwrap_or("no reason given")
            )));
        }
        let join = json!({
            "request": "join",
            "ptype": "publisher",
            "room": room,
            "display": request.name,
        });
        let response = socket
            .call(plugin_message(session, publisher, join, None))
            .await?;
        let data = plugin_data(&response);
        if data["videoroom"] != "joined" {
            return Err(ClientError::Rejected(format!(
                "joining room {room}: {}",
                data["error"].as_str().unwrap_or("no reason given")
            )));
        }
        let me = id_in(data, "id", "the participant id")?;
        let joined_at = Instant::now();

        let (events_tx, events) = mpsc::unbounded_channel();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (sink, stream) = socket.socket.split();
        let mut driver = Driver {
            sink,
            stream,
            early: socket.early,
            transactions: socket.transactions,
            session,
            publisher,
            room,
            private_id: data["private_id"].as_u64(),
            me,
            subscriber: Subscriber::None,
            feeds: HashMap::new(),
            wanted: BTreeSet::new(),
            announced: HashMap::new(),
            events: events_tx,
            commands: commands_rx,
        };
        driver.on_publishers(&data["publishers"]);
        let task = tokio::spawn(driver.run());
        Ok(Session {
            participant: me.to_string(),
            url: request.url.clone(),
            joined_at,
            messages: Vec::new(),
            ice_servers: Vec::new(),
            events,
            commands,
            task,
        })
    }
}

type WebSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The socket while joining: one request at a time, each waiting for its response.
struct Socket {
    socket: WebSocket,
    transactions: u64,
    /// Frames that arrived while waiting for a response, for the driver to handle first.
    early: Vec<Value>,
}

impl Socket {
    async fn connect(
        url: &str,
        tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    ) -> Result<Socket, ClientError> {
        let connector = crate::signaling::connector(url, tls)?;
        let mut request = url
            .into_client_request()
            .map_err(|error| ClientError::Signaling(format!("{url}: {error}")))?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(SUBPROTOCOL),
        );
        let (socket, _) = connect_async_tls_with_config(request, None, false, Some(connector))
            .await
            .map_err(|error| ClientError::Signaling(format!("connecting to {url}: {error}")))?;
        Ok(Socket {
            socket,
            transactions: 0,
            early: Vec::new(),
        })
    }

    /// Sends `request` and waits for its response: a `success`, or the `event` that ends an
    /// asynchronous plugin request (after its `ack`).
    async fn call(&mut self, mut request: Value) -> Result<Value, ClientError> {
        self.transactions += 1;
        let transaction = format!("j{}", self.transactions);
        request["transaction"] = json!(transaction);
        let what = request["body"]["request"]
            .as_str()
            .or_else(|| request["janus"].as_str())
            .unwrap_or("request")
            .to_owned();
        self.socket
            .send(Message::Text(request.to_string().into()))
            .await
            .map_err(|error| ClientError::Signaling(format!("sending `{what}`: {error}")))?;
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .map_err(|_| ClientError::Timeout(format!("Janus to answer `{what}`")))?;
            let text = match frame {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    return Err(ClientError::Signaling(format!(
                        "Janus closed the socket before answering `{what}`"
                    )));
                }
                Some(Ok(_)) => continue,
            };
            let Ok(message) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if message["transaction"] != json!(transaction) {
                self.early.push(message);
                continue;
            }
            match message["janus"].as_str() {
                Some("ack") => continue,
                Some("success" | "event") => return Ok(message),
                Some("error") => {
                    return Err(ClientError::Rejected(format!(
                        "`{what}`: {}",
                        message["error"]["reason"]
                            .as_str()
                            .unwrap_or("no reason given")
                    )));
                }
                _ => continue,
            }
        }
    }
}

/// Where the subscriber handle stands.
#[derive(Debug, Clone, PartialEq)]
enum Subscriber {
    /// Not needed yet: no feed to receive.
    None,
    /// `attach` sent with this transaction.
    Attaching(String),
    /// `join` sent on this handle; the first offer has not come yet.
    Joining(u64),
    /// Subscribed; later feeds are added with `subscribe`.
    Joined(u64),
}

impl Subscriber {
    fn handle(&self) -> Option<u64> {
        match self {
            Subscriber::Joining(handle) | Subscriber::Joined(handle) => Some(*handle),
            _ => None,
        }
    }
}

/// A stream one publisher sends, as the room announced it.
#[derive(Debug, Clone, PartialEq)]
struct Published {
    kind: TrackKind,
    description: Option<String>,
}

/// The task that owns a joined participant's socket.
struct Driver {
    sink: SplitSink<WebSocket, Message>,
    stream: SplitStream<WebSocket>,
    early: Vec<Value>,
    transactions: u64,
    session: u64,
    publisher: u64,
    room: u64,
    private_id: Option<u64>,
    me: u64,
    subscriber: Subscriber,
    /// Every publisher in the room and its streams, by publisher mid.
    feeds: HashMap<u64, HashMap<String, Published>>,
    /// Feeds to subscribe to that have not been asked for yet.
    wanted: BTreeSet<u64>,
    /// The subscriber's mids announced to the participant, with their feed.
    announced: HashMap<String, u64>,
    events: mpsc::UnboundedSender<SignalEvent>,
    commands: mpsc::UnboundedReceiver<SignalCommand>,
}

impl Driver {
    async fn run(mut self) {
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.tick().await;
        for message in std::mem::take(&mut self.early) {
            self.on_message(message).await;
        }
        self.subscribe_wanted().await;
        let closed = loop {
            tokio::select! {
                frame = self.stream.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        if let Ok(message) = serde_json::from_str::<Value>(&text)
                            && let Some(code) = self.on_message(message).await
                        {
                            break code;
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        break frame.map(|frame| u16::from(frame.code));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break None,
                },
                Some(command) = self.commands.recv() => {
                    if let Some(code) = self.on_command(command).await {
                        break code;
                    }
                }
                _ = keepalive.tick() => {
                    let keepalive = json!({"janus": "keepalive", "session_id": self.session});
                    self.send(keepalive).await;
                }
            }
        };
        let _ = self.events.send(SignalEvent::Closed(closed));
    }

    /// Sends a Janus API request with a fresh transaction; returns the transaction.
    async fn send(&mut self, mut request: Value) -> String {
        self.transactions += 1;
        let transaction = format!("j{}", self.transactions);
        request["transaction"] = json!(transaction);
        tracing::trace!(%request, "to Janus");
        // A failed send shows up as the socket closing on the reading side.
        let _ = self
            .sink
            .send(Message::Text(request.to_string().into()))
            .await;
        transaction
    }

    /// Handles one message from Janus; returns `Some` when the session is over.
    async fn on_message(&mut self, message: Value) -> Option<Option<u16>> {
        tracing::trace!(%message, "from Janus");
        match message["janus"].as_str() {
            Some("success") => {
                if let Subscriber::Attaching(transaction) = &self.subscriber
                    && message["transaction"] == json!(transaction)
                {
                    match message["data"]["id"].as_u64() {
                        Some(handle) => self.join_subscriber(handle).await,
                        None => tracing::warn!("Janus attached a subscriber handle without an id"),
                    }
                }
            }
            Some("event") => self.on_event(&message).await,
            Some("trickle") => {
                let candidate = &message["candidate"];
                if let (Some(connection), Some(text)) = (
                    self.connection_of(message["sender"].as_u64()),
                    candidate["candidate"].as_str(),
                ) {
                    let _ = self.events.send(SignalEvent::Candidate {
                        connection,
                        candidate: RTCIceCandidateInit {
                            candidate: text.to_owned(),
                            sdp_mid: candidate["sdpMid"].as_str().map(str::to_owned),
                            sdp_mline_index: candidate["sdpMLineIndex"]
                                .as_u64()
                                .and_then(|index| u16::try_from(index).ok()),
                            username_fragment: None,
                            url: None,
                        },
                    });
                }
            }
            Some("error") => {
                tracing::warn!(
                    room = self.room,
                    participant = self.me,
                    error = %message["error"],
                    "Janus refused a request"
                );
            }
            Some("timeout") => return Some(None),
            // `ack`, `webrtcup`, `media`, `slowlink`, `hangup`, `detached`: nothing to do.
            _ => {}
        }
        None
    }

    fn connection_of(&self, handle: Option<u64>) -> Option<ConnectionId> {
        match handle {
            Some(handle) if handle == self.publisher => Some(ConnectionId::MAIN),
            Some(handle) if Some(handle) == self.subscriber.handle() => Some(SUBSCRIBER),
            _ => None,
        }
    }

    async fn on_event(&mut self, message: &Value) {
        let data = plugin_data(message);
        if let Some(error) = data["error"].as_str() {
            tracing::warn!(
                room = self.room,
                participant = self.me,
                code = data["error_code"].as_u64(),
                error,
                "VideoRoom refused a request"
            );
        }
        let jsep = &message["jsep"];
        match self.connection_of(message["sender"].as_u64()) {
            Some(ConnectionId::MAIN) => {
                self.on_publishers(&data["publishers"]);
                for gone in ["unpublished", "leaving"] {
                    if let Some(feed) = data[gone].as_u64() {
                        self.feeds.remove(&feed);
                        self.wanted.remove(&feed);
                    }
                }
                if jsep["type"] == "answer"
                    && let Some(sdp) = jsep["sdp"].as_str()
                {
                    let _ = self.events.send(SignalEvent::Answer {
                        connection: ConnectionId::MAIN,
                        sdp: sdp.to_owned(),
                    });
                }
                self.subscribe_wanted().await;
            }
            Some(SUBSCRIBER) => {
                if matches!(data["videoroom"].as_str(), Some("attached" | "updated")) {
                    if let Subscriber::Joining(handle) = self.subscriber {
                        self.subscriber = Subscriber::Joined(handle);
                    }
                    self.on_streams(&data["streams"]);
                }
                if jsep["type"] == "offer"
                    && let Some(sdp) = jsep["sdp"].as_str()
                {
                    let _ = self.events.send(SignalEvent::Offer {
                        connection: SUBSCRIBER,
                        sdp: sdp.to_owned(),
                    });
                }
                self.subscribe_wanted().await;
            }
            _ => {}
        }
    }

    /// Notes the publishers the room announced (in `joined` or a later event) and wants them.
    fn on_publishers(&mut self, publishers: &Value) {
        for publisher in publishers.as_array().into_iter().flatten() {
            let Some(feed) = publisher["id"].as_u64() else {
                continue;
            };
            if feed == self.me {
                continue;
            }
            let streams = published_streams(&publisher["streams"]);
            if streams.is_empty() {
                continue;
            }
            if !self.feeds.contains_key(&feed) {
                self.wanted.insert(feed);
            }
            self.feeds.insert(feed, streams);
        }
    }

    /// Announces the streams of the subscription as it now stands, and ends those gone.
    fn on_streams(&mut self, streams: &Value) {
        let mut live = HashMap::new();
        for stream in streams.as_array().into_iter().flatten() {
            let (Some(mid), Some(feed), Some(kind)) = (
                stream["mid"].as_str(),
                stream["feed_id"].as_u64(),
                kind_of(&stream["type"]),
            ) else {
                continue;
            };
            if stream["active"] == false {
                continue;
            }
            let feed_mid = stream["feed_mid"].as_str().unwrap_or_default();
            let track = self
                .feeds
                .get(&feed)
                .and_then(|streams| streams.get(feed_mid))
                .and_then(|published| published.description.clone())
                .or_else(|| stream["feed_description"].as_str().map(str::to_owned))
                .unwrap_or_else(|| feed_mid.to_owned());
            live.insert(mid.to_owned(), feed);
            if self.announced.get(mid) != Some(&feed) {
                let _ = self.events.send(SignalEvent::TrackAnnounced {
                    connection: SUBSCRIBER,
                    mid: mid.to_owned(),
                    participant: feed.to_string(),
                    track,
                    kind,
                });
            }
        }
        for mid in self.announced.keys() {
            if !live.contains_key(mid) {
                let _ = self.events.send(SignalEvent::TrackEnded {
                    connection: SUBSCRIBER,
                    mid: mid.clone(),
                });
            }
        }
        self.announced = live;
    }

    /// Asks for the feeds wanted so far, opening the subscriber handle the first time.
    async fn subscribe_wanted(&mut self) {
        if self.wanted.is_empty() {
            return;
        }
        match self.subscriber.clone() {
            Subscriber::None => {
                let attach = json!({
                    "janus": "attach",
                    "session_id": self.session,
                    "plugin": PLUGIN,
                });
                let transaction = self.send(attach).await;
                self.subscriber = Subscriber::Attaching(transaction);
            }
            // The feeds wait for the subscription's first offer.
            Subscriber::Attaching(_) | Subscriber::Joining(_) => {}
            Subscriber::Joined(handle) => {
                let streams = self.take_wanted();
                let subscribe = json!({"request": "subscribe", "streams": streams});
                self.send(plugin_message(self.session, handle, subscribe, None))
                    .await;
            }
        }
    }

    async fn join_subscriber(&mut self, handle: u64) {
        let mut join = json!({
            "request": "join",
            "ptype": "subscriber",
            "room": self.room,
            "streams": self.take_wanted(),
        });
        if let Some(private_id) = self.private_id {
            join["private_id"] = json!(private_id);
        }
        self.subscriber = Subscriber::Joining(handle);
        self.send(plugin_message(self.session, handle, join, None))
            .await;
    }

    fn take_wanted(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.wanted)
            .into_iter()
            .filter(|feed| self.feeds.contains_key(feed))
            .map(|feed| json!({"feed": feed}))
            .collect()
    }

    /// Carries out one command; returns `Some` when the session is over.
    async fn on_command(&mut self, command: SignalCommand) -> Option<Option<u16>> {
        match command {
            SignalCommand::Offer { connection, sdp } => {
                let tracks = sdp_tracks(&sdp);
                // An offer without media publishes nothing: the participant only receives.
                if connection == ConnectionId::MAIN && !tracks.is_empty() {
                    let descriptions: Vec<Value> = tracks
                        .into_iter()
                        .map(|(mid, track)| json!({"mid": mid, "description": track}))
                        .collect();
                    let publish = json!({"request": "publish", "descriptions": descriptions});
                    let jsep = json!({"type": "offer", "sdp": sdp});
                    self.send(plugin_message(
                        self.session,
                        self.publisher,
                        publish,
                        Some(jsep),
                    ))
                    .await;
                }
            }
            SignalCommand::Answer { connection, sdp } => {
                if let (SUBSCRIBER, Some(handle)) = (connection, self.subscriber.handle()) {
                    let start = json!({"request": "start"});
                    let jsep = json!({"type": "answer", "sdp": sdp});
                    self.send(plugin_message(self.session, handle, start, Some(jsep)))
                        .await;
                }
            }
            SignalCommand::Candidate {
                connection,
                candidate,
            } => {
                let handle = match connection {
                    ConnectionId::MAIN => Some(self.publisher),
                    SUBSCRIBER => self.subscriber.handle(),
                    _ => None,
                };
                if let Some(handle) = handle {
                    let mut shaped = json!({"candidate": candidate.candidate});
                    if let Some(mid) = candidate.sdp_mid {
                        shaped["sdpMid"] = json!(mid);
                    }
                    shaped["sdpMLineIndex"] = json!(candidate.sdp_mline_index.unwrap_or(0));
                    let trickle = json!({
                        "janus": "trickle",
                        "session_id": self.session,
                        "handle_id": handle,
                        "candidate": shaped,
                    });
                    self.send(trickle).await;
                }
            }
            SignalCommand::Leave => {
                let leave = json!({"request": "leave"});
                self.send(plugin_message(self.session, self.publisher, leave, None))
                    .await;
                // Destroying the session detaches every handle and hangs up their connections.
                let destroy = json!({"janus": "destroy", "session_id": self.session});
                self.send(destroy).await;
                let _ = self.sink.close().await;
                return Some(Some(1000));
            }
            SignalCommand::Raw(text) => {
                let _ = self.sink.send(Message::Text(text.into())).await;
            }
        }
        None
    }
}

/// A VideoRoom request on `handle`, with an optional JSEP.
fn plugin_message(session: u64, handle: u64, body: Value, jsep: Option<Value>) -> Value {
    let mut message = json!({
        "janus": "message",
        "session_id": session,
        "handle_id": handle,
        "body": body,
    });
    if let Some(jsep) = jsep {
        message["jsep"] = jsep;
    }
    message
}

/// The plugin's part of a response or event.
fn plugin_data(message: &Value) -> &Value {
    &message["plugindata"]["data"]
}

fn id_in(value: &Value, field: &str, what: &str) -> Result<u64, ClientError> {
    value[field]
        .as_u64()
        .ok_or_else(|| ClientError::Signaling(format!("Janus sent no {what}: {value}")))
}

fn kind_of(value: &Value) -> Option<TrackKind> {
    match value.as_str()? {
        "audio" => Some(TrackKind::Audio),
        "video" => Some(TrackKind::Video),
        _ => None,
    }
}

/// A publisher's streams from the room's announcement, by publisher mid (disabled ones left
/// out).
fn published_streams(streams: &Value) -> HashMap<String, Published> {
    streams
        .as_array()
        .into_iter()
        .flatten()
        .filter(|stream| stream["disabled"] != true)
        .filter_map(|stream| {
            Some((
                stream["mid"].as_str()?.to_owned(),
                Published {
                    kind: kind_of(&stream["type"])?,
                    description: stream["description"].as_str().map(str::to_owned),
                },
            ))
        })
        .collect()
}

/// The VideoRoom room number for a room name: a hash below 2^53, so it survives any JSON
/// parser, and never 0.
pub fn room_id(name: &str) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in name.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash & ((1 << 53) - 1)).max(1)
}

/// The media sections of an SDP that send a track: each one's mid and `msid` track id.
pub fn sdp_tracks(sdp: &str) -> Vec<(String, String)> {
    let mut tracks = Vec::new();
    for section in sdp.split("\nm=").skip(1) {
        let attribute = |name: &str| {
            section
                .lines()
                .find_map(|line| line.trim_end().strip_prefix(name).map(str::to_owned))
        };
        let sends = section
            .lines()
            .any(|line| matches!(line.trim_end(), "a=sendonly" | "a=sendrecv"));
        let mid = attribute("a=mid:");
        let track =
            attribute("a=msid:").and_then(|msid| msid.split_whitespace().nth(1).map(str::to_owned));
        if let (true, Some(mid), Some(track)) = (sends, mid, track) {
            tracks.push((mid, track));
        }
    }
    tracks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_numbers_are_stable_small_and_distinct() {
        assert_eq!(room_id("load-1-0"), room_id("load-1-0"));
        assert_ne!(room_id("load-1-0"), room_id("load-1-1"));
        for name in ["", "a", "load-ffffffff-19"] {
            let id = room_id(name);
            assert!(id > 0 && id < 1 << 53, "{name}: {id}");
        }
    }

    #[test]
    fn finds_the_tracks_an_offer_sends() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=sendonly\r\na=msid:s video0\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=msid:s audio1\r\na=sendonly\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=recvonly\r\n";
        assert_eq!(
            sdp_tracks(sdp),
            vec![
                ("0".to_owned(), "video0".to_owned()),
                ("1".to_owned(), "audio1".to_owned())
            ]
        );
        assert!(sdp_tracks("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n").is_empty());
    }

    #[test]
    fn reads_published_streams() {
        let streams = json!([
            {"type": "video", "mid": "0", "description": "video0", "codec": "vp8"},
            {"type": "audio", "mid": "1", "description": "audio1"},
            {"type": "video", "mid": "2", "disabled": true},
            {"type": "data", "mid": "3"}
        ]);
        let published = published_streams(&streams);
        assert_eq!(published.len(), 2);
        assert_eq!(published["0"].kind, TrackKind::Video);
        assert_eq!(published["1"].description.as_deref(), Some("audio1"));
    }
}

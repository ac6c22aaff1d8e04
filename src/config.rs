//! Configuration, with defaults that run with no file.
//!
//! The settings are grouped the way the TOML file groups them: `[http]`, `[media]`, `[ice]`,
//! `[auth]`, `[limits]`, `[signaling]`, `[webhooks]` and `[log]`. [`keys`] lists every key; [`load`] reads them from a file,
//! the environment and flags into the types of `settings`, and `check` makes the checks on
//! keys that only make sense together.

mod check;
pub mod keys;
pub mod load;
mod settings;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub use load::{ConfigError, Origin};

use crate::client::ClientFiles;
use crate::http::origin::WebOrigin;
use crate::ids::NodeId;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The HTTP server: client page, signaling WebSocket, metrics.
    pub http: HttpConfig,
    /// Where and how media flows.
    pub media: MediaConfig,
    /// The STUN/TURN servers clients are told to use.
    pub ice: IceConfig,
    /// Who may join.
    pub auth: AuthConfig,
    /// Bounds on what clients may use.
    pub limits: Limits,
    /// How long a signaling session may take to set up, how its liveness is checked, and how
    /// much may wait for a client that reads slowly.
    pub signaling: SignalingConfig,
    /// Where room events are POSTed, and how hard the server tries.
    pub webhooks: WebhookConfig,
    /// The cluster this server is a node of; `None` for a single server.
    pub cluster: Option<ClusterConfig>,
    /// What is logged, and how.
    pub log: LogConfig,
    /// How long a graceful shutdown may take before connections are cut.
    pub shutdown_grace: Duration,
    /// Where the browser client's files come from.
    pub client: ClientFiles,
}

/// `[http]`: the HTTP listener.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Where the HTTP server listens.
    pub listen: SocketAddr,
    /// Where a second, plain HTTP listener serves `/metrics` and `/api/` (which `listen` then
    /// answers with 404); `None` serves everything on `listen`.
    pub internal_listen: Option<SocketAddr>,
    /// Serve HTTPS with these files instead of plain HTTP.
    pub tls: Option<TlsFiles>,
    /// How long a connection has to send a request's headers, from when it is ready (TLS
    /// done) or its previous response ended; one that sends nothing is closed then.
    pub header_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request; `None` keeps no
    /// connection alive after its response.
    pub idle_timeout: Option<Duration>,
    /// How long a client may take over its TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// The pages besides the server's own that may open the signaling WebSocket; empty lets
    /// every page.
    pub allowed_origins: Vec<WebOrigin>,
}

/// How long a connection has to send its request headers unless `http.header_timeout_secs`
/// says otherwise.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a kept-alive connection may wait for its next request unless
/// `http.idle_timeout_secs` says otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a TLS handshake may take unless `http.tls_handshake_timeout_secs` says otherwise.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A certificate chain and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// `[media]`: the UDP side.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Local addresses media flows on: one UDP socket each, shared by every connection.
    pub ips: Vec<IpAddr>,
    /// The one UDP port every connection's media uses, on each address; 0 lets the system
    /// pick one per address (tests).
    pub udp_port: u16,
    /// The one TCP port ICE-TCP listens on, on each address; 0 as for UDP.
    pub tcp_port: u16,
    /// Which of the two carry media: UDP, TCP or both.
    pub transports: Vec<MediaTransport>,
    /// The public addresses announced instead of the local ones (1:1 NAT), if any.
    pub public_ips: Vec<PublicIp>,
    /// Media worker threads; connections are dealt among them.
    pub workers: usize,
    /// The busy share of a worker, in percent, from which new connections go to the least busy
    /// worker instead of their room's.
    pub spread_when_busy: u8,
    /// ICE-TCP streams from one IP address (IPv6: one /64) at once; `None` is no cap.
    pub tcp_streams_per_ip: Option<usize>,
    /// ICE-TCP streams at once; `None` takes a share of the open-file limit
    /// ([`crate::file_limit::FileLimit::ice_tcp_share`]).
    pub max_tcp_streams: Option<usize>,
}

/// Media workers when none are configured: one per core the process may use.
pub fn default_media_workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// A worker's busy share, in percent, from which its room's new connections go elsewhere.
pub const DEFAULT_SPREAD_WHEN_BUSY: u8 = 75;

/// The media port, UDP and TCP alike, when none is configured.
pub const DEFAULT_MEDIA_PORT: u16 = 50_000;

/// ICE-TCP streams one address may hold when not configured: a browser holds one or two per
/// peer connection while ICE runs (one per server address it tries), so this lets a few dozen
/// people behind one NAT join at the same moment.
pub const DEFAULT_TCP_STREAMS_PER_IP: usize = 64;

/// A way media reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaTransport {
    /// Datagrams on `media.udp_port`: what every client uses when it can.
    Udp,
    /// ICE over TCP on `media.tcp_port`: for clients whose network blocks UDP.
    Tcp,
}

impl std::str::FromStr for MediaTransport {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "udp" => Ok(Self::Udp),
            "tcp" => Ok(Self::Tcp),
            _ => Err("udp or tcp".to_owned()),
        }
    }
}

impl MediaConfig {
    /// The addresses to bind for `transport`: one per media IP on its port, none when it is
    /// off.
    pub fn addresses(&self, transport: MediaTransport) -> Vec<SocketAddr> {
        if !self.transports.contains(&transport) {
            return Vec::new();
        }
        let port = match transport {
            MediaTransport::Udp => self.udp_port,
            MediaTransport::Tcp => self.tcp_port,
        };
        self.ips
            .iter()
            .map(|ip| SocketAddr::new(*ip, port))
            .collect()
    }
}

/// A public address the server is reached at through 1:1 NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicIp {
    /// The address clients are told.
    pub public: IpAddr,
    /// The local address it stands for; `None` stands for every local address.
    pub local: Option<IpAddr>,
}

impl FromStr for PublicIp {
    type Err = std::net::AddrParseError;

    /// `203.0.113.7` or `203.0.113.7/10.0.0.7` (public/local).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once('/') {
            Some((public, local)) => Ok(Self {
                public: public.trim().parse()?,
                local: Some(local.trim().parse()?),
            }),
            None => Ok(Self {
                public: text.trim().parse()?,
                local: None,
            }),
        }
    }
}

impl fmt::Display for PublicIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.local {
            Some(local) => write!(f, "{}/{local}", self.public),
            None => write!(f, "{}", self.public),
        }
    }
}

/// `[ice]`: what clients are told in `joined`.
#[derive(Debug, Clone, Default)]
pub struct IceConfig {
    /// STUN (or credential-less TURN) URLs.
    pub urls: Vec<String>,
    /// A TURN server sharing a secret with this one, if any.
    pub turn: Option<TurnConfig>,
}

/// A TURN server that accepts short-lived credentials derived from a shared secret (the TURN
/// REST convention, coturn's `use-auth-secret`).
#[derive(Debug, Clone)]
pub struct TurnConfig {
    /// The TURN URLs (`turn:host:3478`, `turns:host:5349?transport=tcp`, ...).
    pub urls: Vec<String>,
    /// The secret shared with the TURN server.
    pub secret: String,
    /// How long each credential stays valid.
    pub credential_ttl: Duration,
}

/// `[auth]`: access tokens.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The HS256 key join tokens are signed with. `None` runs the server open: anybody may
    /// join any room.
    pub token_key: Option<String>,
    /// The longest a token may be valid (from `iat`, and from now, to `exp`).
    pub max_token_lifetime: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            token_key: None,
            max_token_lifetime: crate::auth::DEFAULT_MAX_TOKEN_LIFETIME,
        }
    }
}

/// `[limits]`: bounds on rooms and clients. Going over one gets the client a clear error.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Rooms open at once.
    pub max_rooms: usize,
    /// Participants in one room.
    pub max_participants_per_room: usize,
    /// Sustained signaling messages per second from one WebSocket.
    pub messages_per_second: u32,
    /// Messages one WebSocket may send in a burst above the sustained rate.
    pub message_burst: u32,
    /// Bytes of text in one chat message.
    pub max_chat_bytes: usize,
    /// HTTP connections from one IP address (IPv6: one /64) at once; `None` is no cap.
    pub connections_per_ip: Option<usize>,
    /// HTTP connections at once; `None` takes a share of the open-file limit
    /// ([`crate::file_limit::FileLimit::connection_share`]).
    pub max_connections: Option<usize>,
    /// Signaling WebSockets open at once that have not joined a room yet.
    pub max_unjoined_sockets: usize,
}

/// `[signaling]`: the deadlines a session meets and the bounds on what waits for its client.
///
/// Each deadline ends a session that would otherwise hold a socket, a task and, once joined, a
/// place in a room for a client that is not coming: a socket that never joins, a participant
/// that never sets up media, a socket whose client has gone without a word.
#[derive(Debug, Clone)]
pub struct SignalingConfig {
    /// From the socket's opening to its `join`.
    pub join_timeout: Duration,
    /// From `joined` to the client's first `offer` (the empty one, when it publishes nothing).
    pub offer_timeout: Duration,
    /// From the first answer that gives the media connection something to connect to the
    /// connection first being connected.
    pub media_timeout: Duration,
    /// How often the server pings the socket.
    pub ping_interval: Duration,
    /// How long a ping may go unanswered before the socket is closed.
    pub ping_timeout: Duration,
    /// Bytes of messages that may wait for a client that reads slowly; more ends its session.
    pub outbox_bytes: usize,
}

impl Default for SignalingConfig {
    fn default() -> Self {
        Self {
            join_timeout: Duration::from_secs(10),
            offer_timeout: Duration::from_secs(30),
            media_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(15),
            ping_timeout: Duration::from_secs(15),
            outbox_bytes: 1024 * 1024,
        }
    }
}

/// `[webhooks]`: room events POSTed to the application around the server.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Where events go and the key that signs them; `None` sends no events.
    pub targets: Option<WebhookTargets>,
    /// Times an event is sent to a URL before it is given up, the first included.
    pub attempts: u32,
    /// The wait before the first retry; each later one waits twice as long.
    pub first_retry: Duration,
    /// How long a receiver has to answer one attempt, connecting included.
    pub timeout: Duration,
    /// Events that may wait to be delivered; more are dropped and counted.
    pub queue_events: usize,
}

/// `[cluster]`: the Redis the nodes share, and how this node is known there.
#[derive(Clone)]
pub struct ClusterConfig {
    /// `redis://...`; it may hold a password, so it stays out of logs.
    pub redis_url: String,
    /// Where clients reach this node's signaling; `None`: from the bound HTTP address.
    pub signaling_url: Option<reqwest::Url>,
    /// This node's name.
    pub node_id: NodeId,
    /// How long entries last in Redis unless renewed.
    pub lease: Duration,
}

impl fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("signaling_url", &self.signaling_url)
            .field("node_id", &self.node_id)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// How long cluster entries last unless `cluster.lease_secs` says otherwise.
pub const DEFAULT_CLUSTER_LEASE: Duration = Duration::from_secs(5);

/// The receivers of the events, and the key they check the signatures with.
#[derive(Clone)]
pub struct WebhookTargets {
    /// Every event goes to each of them.
    pub urls: Vec<reqwest::Url>,
    /// The HMAC-SHA256 key.
    pub key: String,
}

impl fmt::Debug for WebhookTargets {
    // The key stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookTargets")
            .field("urls", &self.urls)
            .finish_non_exhaustive()
    }
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            targets: None,
            attempts: 5,
            first_retry: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            queue_events: 10_000,
        }
    }
}

/// `[log]`: what is logged, and how.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// JSON lines instead of text.
    pub json: bool,
    /// A `tracing` filter (`RUST_LOG` syntax).
    pub filter: String,
}

/// Default log filter: the server's own information, and only warnings from the WebRTC stack,
/// which logs per packet at lower levels; from its core (`rtc`) only errors, since it warns for
/// every packet it refuses, which a publisher could flood the log with (the server counts those
/// packets instead: `rtc::padding`, `media::malformed`).
pub const DEFAULT_LOG_FILTER: &str = "info,webrtc=warn,rtc=error,rtc_ice=warn,rtc_dtls=warn";

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            json: false,
            filter: DEFAULT_LOG_FILTER.to_owned(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_rooms: 1_000,
            max_participants_per_room: 500,
            messages_per_second: 50,
            message_burst: 200,
            max_chat_bytes: 4_096,
            connections_per_ip: Some(200),
            max_connections: None,
            max_unjoined_sockets: 1_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http: HttpConfig {
                listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
                internal_listen: None,
                tls: None,
                header_timeout: DEFAULT_HEADER_TIMEOUT,
                idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
                tls_handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
                allowed_origins: Vec::new(),
            },
            media: MediaConfig {
                ips: crate::rtc::setup::default_media_ips(),
                udp_port: DEFAULT_MEDIA_PORT,
                tcp_port: DEFAULT_MEDIA_PORT,
                transports: vec![MediaTransport::Udp, MediaTransport::Tcp],
                public_ips: Vec::new(),
                workers: default_media_workers(),
                spread_when_busy: DEFAULT_SPREAD_WHEN_BUSY,
                tcp_streams_per_ip: Some(DEFAULT_TCP_STREAMS_PER_IP),
                max_tcp_streams: None,
            },
            ice: IceConfig::default(),
            auth: AuthConfig::default(),
            limits: Limits::default(),
            signaling: SignalingConfig::default(),
            webhooks: WebhookConfig::default(),
            cluster: None,
            log: LogConfig::default(),
            shutdown_grace: Duration::from_secs(3),
            client: ClientFiles::Embedded,
        }
    }
}

impl Config {
    /// A configuration for tests and tools on this machine: HTTP on an ephemeral loopback
    /// port, media on loopback only.
    pub fn loopback() -> Self {
        let mut config = Self::default();
        config.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.media.ips = vec![IpAddr::from([127, 0, 0, 1])];
        config.media.udp_port = 0;
        config.media.tcp_port = 0;
        config
    }
}

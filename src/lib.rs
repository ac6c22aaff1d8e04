//! Switchyard: a selective forwarding unit for multi-party WebRTC video rooms.
//!
//! Every participant holds one peer connection to the server. It publishes its tracks on it
//! and receives every other participant's tracks on it; the server renegotiates that same
//! connection as people come and go. [`Server`] runs the whole thing, in `main` and in tests.

#![warn(missing_docs)]

pub mod api;
pub mod auth;
pub mod client;
pub mod cluster;
pub mod config;
pub mod drain;
pub mod engine;
pub mod file_limit;
pub mod http;
pub mod ids;
pub mod media;
pub mod metrics;
pub mod net;
pub mod room;
pub mod rtc;
pub mod signal;
pub mod tls;
pub mod turn;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use config::Config;
use config::MediaTransport;
pub use metrics::{Counts, Metrics};

use crate::auth::{InviteUses, TokenKey, WeakKey};
use crate::cluster::{Cluster, DirectoryError};
use crate::drain::Drain;
use crate::engine::{Engine, EngineConfig};
use crate::file_limit::FileLimit;
use crate::http::Surface;
use crate::http::serve::{HttpListener, Timeouts};
use crate::http::unjoined::UnjoinedSockets;
use crate::net::admission::{Admission, Caps};
use crate::room::Registry;
use crate::rtc::public_address::PublicAddresses;
use crate::tls::{Tls, TlsError};
use crate::webhook::{ClientError, Dispatcher, Webhooks};

/// What every session shares.
#[derive(Debug)]
pub struct ServerContext {
    /// The rooms.
    pub registry: Registry,
    /// Counts and counters.
    pub metrics: Arc<Metrics>,
    /// The media engine: every participant's connection, the media sockets.
    pub engine: Engine,
    /// The key access tokens are checked with; `None` runs the server open.
    pub token_key: Option<TokenKey>,
    /// The joins each invite link has made.
    pub invite_uses: InviteUses,
    /// The configuration the server started with.
    pub config: Config,
    /// Graceful shutdown: begun by [`RunningServer::shutdown`], watched by every session.
    pub drain: Drain,
    /// The signaling sockets that have not joined yet, within `limits.max_unjoined_sockets`.
    pub unjoined: UnjoinedSockets,
    /// This node's part in a cluster; `None` for a single server.
    pub cluster: Option<Arc<Cluster>>,
}

impl ServerContext {
    /// The live counts.
    pub fn counts(&self) -> Counts {
        self.metrics.counts(self.registry.len())
    }
}

/// Failure to start the server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The HTTP address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The configured token key cannot be used.
    #[error("auth.token_key: {0}")]
    TokenKey(#[from] WeakKey),
    /// The media sockets could not be bound; the message names the setting.
    #[error("{0}")]
    Media(std::io::Error),
    /// The configured certificate or key cannot be used.
    #[error("http.tls_cert/http.tls_key: {0}")]
    Tls(#[from] TlsError),
    /// The webhooks' HTTP client could not be made.
    #[error("{0}")]
    Webhooks(#[from] ClientError),
    /// The cluster's Redis URL cannot be used.
    #[error("cluster.redis_url: {0}")]
    Cluster(#[from] DirectoryError),
}

/// The connections the internal listener (`/metrics`, `/api/`) takes at once: Prometheus, a
/// dashboard and a few operators, with room to spare.
pub const INTERNAL_MAX_CONNECTIONS: usize = 64;

/// How long a shutdown waits for Redis to hear that this node is draining.
const CLUSTER_CALL_AT_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(1);

/// The server, before it runs.
#[derive(Debug)]
pub struct Server {
    config: Config,
}

impl Server {
    /// A server with `config`.
    pub fn new(config: Config) -> Self {
        Self { config }
    }

    /// Binds the HTTP listener and starts serving in the background.
    pub async fn start(self) -> Result<RunningServer, StartError> {
        let config = self.config;
        let token_key = config
            .auth
            .token_key
            .as_deref()
            .map(TokenKey::new)
            .transpose()?
            .map(|key| key.with_max_lifetime(config.auth.max_token_lifetime));
        // Read before binding, so a bad file is reported as such and not after a bind.
        let tls = config.http.tls.as_ref().map(Tls::load).transpose()?;
        let file_limit = FileLimit::raise();
        let (listener, local_addr) = bind(config.http.listen).await?;
        let internal = match config.http.internal_listen {
            Some(address) => Some(bind(address).await?),
            None => None,
        };
        let metrics = Arc::new(Metrics::default());
        let http_caps = connection_caps(&config, file_limit);
        let engine = Engine::start(
            EngineConfig {
                udp: config.media.addresses(MediaTransport::Udp),
                tcp: config.media.addresses(MediaTransport::Tcp),
                tcp_caps: ice_tcp_caps(&config, file_limit, http_caps),
                public: PublicAddresses::new(config.media.public_ips.clone()),
                workers: config.media.workers,
                spread_when_busy_permille: u32::from(config.media.spread_when_busy) * 10,
            },
            Arc::clone(&metrics),
        )
        .map_err(StartError::Media)?;
        let admission = Admission::new(http_caps, metrics.http.connections.clone());
        warn_of_open_origins(&config, local_addr);
        let (webhooks, dispatcher) = Webhooks::start(&config.webhooks, Arc::clone(&metrics))?;
        if let Some(targets) = &config.webhooks.targets {
            // Origins only: a receiver's path or query may hold a secret of its own.
            let receivers: Vec<String> = targets
                .urls
                .iter()
                .map(|url| url.origin().ascii_serialization())
                .collect();
            info!(?receivers, "room events go to webhooks");
        }
        let cluster = match &config.cluster {
            Some(cluster) => Some(Arc::new(Cluster::new(
                cluster,
                signaling_url(cluster, local_addr, tls.is_some()),
                engine_addresses(&engine),
                config.limits.max_rooms,
                Arc::clone(&metrics),
            )?)),
            None => None,
        };
        let context = Arc::new(ServerContext {
            registry: Registry::new(
                config.limits.max_rooms,
                config.limits.max_participants_per_room,
            )
            .with_webhooks(webhooks),
            unjoined: UnjoinedSockets::new(
                config.limits.max_unjoined_sockets,
                metrics.http.unjoined_sockets.clone(),
            ),
            metrics,
            engine,
            token_key,
            invite_uses: InviteUses::default(),
            config,
            drain: Drain::default(),
            cluster,
        });
        let leases = context
            .cluster
            .as_ref()
            .map(|cluster| cluster::lease::keep(Arc::clone(cluster), Arc::downgrade(&context)));
        let (stop, stopped) = watch::channel(false);
        let settings = &context.config.http;
        let timeouts = Timeouts {
            header: settings.header_timeout,
            idle: settings.idle_timeout,
            tls_handshake: settings.tls_handshake_timeout,
        };
        let public = HttpListener {
            listener,
            app: http::router(
                Arc::clone(&context),
                if internal.is_some() {
                    Surface::Public
                } else {
                    Surface::Everything
                },
            ),
            tls: tls.clone(),
            admission,
            timeouts,
            metrics: Arc::clone(&context.metrics),
        };
        // Plain HTTP: it is reached from the host or a private network, not by browsers. Its
        // connections have a small cap of their own, so that a flood that fills the public
        // listener's does not stop Prometheus and operators from looking.
        let internal_admission = Admission::new(
            Caps {
                per_source: None,
                total: INTERNAL_MAX_CONNECTIONS,
            },
            context.metrics.http.connections.clone(),
        );
        let internal_addr = internal.as_ref().map(|(_, address)| *address);
        let internal = internal.map(|(listener, _)| HttpListener {
            listener,
            app: http::router(Arc::clone(&context), Surface::Internal),
            tls: None,
            admission: internal_admission,
            timeouts,
            metrics: Arc::clone(&context.metrics),
        });
        let task = tokio::spawn(serve_listeners(public, internal, stopped));
        Ok(RunningServer {
            local_addr,
            internal_addr,
            tls,
            context,
            stop,
            task,
            dispatcher,
            leases,
        })
    }
}

/// Where clients reach this node's signaling: the configured URL, or the bound address's.
fn signaling_url(cluster: &config::ClusterConfig, bound: SocketAddr, tls: bool) -> String {
    match &cluster.signaling_url {
        Some(url) => url.to_string(),
        None => format!("{}://{bound}/ws", if tls { "wss" } else { "ws" }),
    }
}

/// The media sockets' addresses, as a node lists them for operators.
fn engine_addresses(engine: &Engine) -> Vec<String> {
    let settings = engine.settings();
    let udp = settings.udp.iter().map(|address| format!("udp {address}"));
    let tcp = settings.tcp.iter().map(|address| format!("tcp {address}"));
    udp.chain(tcp).collect()
}

/// Binds an HTTP listener to `address`; returns it and the address it got (the port the
/// system picked for port 0).
async fn bind(address: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| StartError::Bind { address, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| StartError::Bind { address, source })?;
    Ok((listener, bound))
}

/// Serves the public listener and, if there is one, the internal one, until both have shut
/// down; an error on either ends both.
async fn serve_listeners(
    public: HttpListener,
    internal: Option<HttpListener>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    match internal {
        None => public.serve(stop).await,
        Some(internal) => {
            tokio::try_join!(public.serve(stop.clone()), internal.serve(stop)).map(|_| ())
        }
    }
}

/// The caps on HTTP connections: the configured ones, the total taken from the open-file
/// limit unless set.
fn connection_caps(config: &Config, file_limit: FileLimit) -> Caps {
    let share = file_limit.connection_share();
    let total = config.limits.max_connections.unwrap_or(share);
    if total > share {
        warn!(
            max_connections = total,
            open_file_limit = file_limit.now,
            "limits.max_connections leaves too few file descriptors for media; \
             a flood of connections may stop ICE-TCP and new media sockets"
        );
    }
    let caps = Caps {
        per_source: config.limits.connections_per_ip,
        total,
    };
    info!(
        per_ip = ?caps.per_source,
        total = caps.total,
        unjoined_sockets = config.limits.max_unjoined_sockets,
        "HTTP connection caps"
    );
    caps
}

/// The caps on ICE-TCP streams: the configured ones, the total taken from the open-file limit
/// unless set. Warns when they and the HTTP connections' `http` caps together could take more
/// descriptors than the limit leaves.
fn ice_tcp_caps(config: &Config, file_limit: FileLimit, http: Caps) -> Caps {
    let total = config
        .media
        .max_tcp_streams
        .unwrap_or_else(|| file_limit.ice_tcp_share());
    let caps = Caps {
        per_source: config.media.tcp_streams_per_ip,
        total,
    };
    if !config.media.transports.contains(&MediaTransport::Tcp) {
        return caps;
    }
    let configured =
        config.media.max_tcp_streams.is_some() || config.limits.max_connections.is_some();
    let left = file_limit.left_for_connections();
    if configured && (http.total as u64).saturating_add(total as u64) > left {
        warn!(
            max_tcp_streams = total,
            max_connections = http.total,
            open_file_limit = file_limit.now,
            "media.max_tcp_streams and limits.max_connections together leave the server too few \
             file descriptors; a flood on one port may stop accepting on the other"
        );
    }
    info!(
        per_ip = ?caps.per_source,
        total = caps.total,
        "ICE-TCP stream caps"
    );
    caps
}

/// Warns when a server that others can reach lets any web page open its signaling socket.
fn warn_of_open_origins(config: &Config, listening: SocketAddr) {
    if config.http.allowed_origins.is_empty() && !listening.ip().is_loopback() {
        warn!(
            %listening,
            "any web page may open the signaling WebSocket: set http.allowed_origins \
             (--allowed-origin, SWITCHYARD_HTTP_ALLOWED_ORIGINS) to the origins your pages are \
             served from (the server's own name included: only its own address is allowed unlisted)"
        );
    }
}

/// A server serving in the background.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    /// Where the internal listener (`/metrics`, `/api/`) is bound, if there is one.
    internal_addr: Option<SocketAddr>,
    /// What it serves HTTPS with, if it does.
    tls: Option<Tls>,
    context: Arc<ServerContext>,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
    /// The webhook dispatcher, when there are receivers.
    dispatcher: Option<Dispatcher>,
    /// The renewals of this node's leases, on a node of a cluster.
    leases: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// The address the (public) HTTP listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address the internal listener (`/metrics`, `/api/`) is bound to, when
    /// `http.internal_listen` is set.
    pub fn internal_addr(&self) -> Option<SocketAddr> {
        self.internal_addr
    }

    /// The signaling WebSocket's URL: `ws://` or, with TLS, `wss://`.
    pub fn websocket_url(&self) -> String {
        let scheme = if self.is_tls() { "wss" } else { "ws" };
        format!("{scheme}://{}/ws", self.local_addr)
    }

    /// Whether it serves HTTPS (and `wss://`).
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Reads the TLS certificate and key again, for the handshakes from now on (renewals
    /// without a restart; `main` calls it on SIGHUP). Connections already open keep what they
    /// have. Returns the files read, or `None` when the server does not serve TLS; on error the
    /// previous certificate stays.
    pub fn reload_tls(&self) -> Result<Option<&config::TlsFiles>, TlsError> {
        self.tls.as_ref().map(Tls::reload).transpose()
    }

    /// The URL of the client page: `http://` or, with TLS, `https://`.
    pub fn url(&self) -> String {
        let scheme = if self.is_tls() { "https" } else { "http" };
        format!("{scheme}://{}/", self.local_addr)
    }

    /// The live counts.
    pub fn counts(&self) -> Counts {
        self.context.counts()
    }

    /// The shared state, for inspection.
    pub fn context(&self) -> &Arc<ServerContext> {
        &self.context
    }

    /// Serves until the listeners' task ends (it ends only on error or
    /// [`shutdown`](Self::shutdown)).
    pub async fn wait(self) -> std::io::Result<()> {
        self.task.await.unwrap_or(Ok(()))
    }

    /// Shuts down gracefully within the configured `shutdown_grace`: stops taking
    /// connections and joins, tells every client (`shutdown`), closes every session's media
    /// connection and WebSocket (1001, going away), and waits for the sessions and the HTTP
    /// listener to end, but never past the grace period: whatever is left then is cut off.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let started = tokio::time::Instant::now();
        // First, so that the clients told to go are not placed back on this node; within the
        // grace period, and briefly, as Redis may be what is failing.
        if let Some(cluster) = &self.context.cluster {
            let (rooms, participants) = cluster::lease::hosted(&self.context);
            let announce = CLUSTER_CALL_AT_SHUTDOWN.min(self.context.config.shutdown_grace);
            let _ = tokio::time::timeout(announce, cluster.drain(rooms, participants)).await;
        }
        let grace = self
            .context
            .config
            .shutdown_grace
            .saturating_sub(started.elapsed());
        let deadline = self.context.drain.begin(grace);
        info!(
            sessions = self.context.drain.sessions(),
            grace = ?self.context.config.shutdown_grace,
            "draining: telling every client and closing its session"
        );
        let _ = self.stop.send(true);
        if tokio::time::timeout_at(deadline, self.context.drain.sessions_ended())
            .await
            .is_err()
        {
            warn!(
                sessions = self.context.drain.sessions(),
                "sessions still open at the end of the grace period are cut off"
            );
        }
        let mut task = self.task;
        let result = match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(result) => result.unwrap_or(Ok(())),
            Err(_) => {
                warn!("HTTP connections still open at the end of the grace period are cut off");
                task.abort();
                Ok(())
            }
        };
        if let Some(cluster) = &self.context.cluster {
            if let Some(leases) = self.leases {
                leases.abort();
                let _ = leases.await;
            }
            // Past the deadline too, briefly: entries left behind lapse with the lease anyway.
            let (rooms, _) = cluster::lease::hosted(&self.context);
            let _ = tokio::time::timeout(CLUSTER_CALL_AT_SHUTDOWN / 4, cluster.leave(rooms)).await;
        }
        // Last, so the events of the sessions' leaving (down to `room_finished`) are queued.
        if let Some(dispatcher) = self.dispatcher {
            dispatcher.finish(deadline).await;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_tcp_streams_take_the_other_half_of_the_file_limit_unless_set() {
        let file_limit = FileLimit {
            before: 1024,
            now: 20_000,
        };
        let mut config = Config::loopback();
        let http = connection_caps(&config, file_limit);
        let caps = ice_tcp_caps(&config, file_limit, http);
        assert_eq!(caps.total, file_limit.ice_tcp_share());
        assert_eq!(caps.per_source, Some(config::DEFAULT_TCP_STREAMS_PER_IP));
        assert!((http.total + caps.total) as u64 <= file_limit.left_for_connections());

        config.media.max_tcp_streams = Some(300);
        config.media.tcp_streams_per_ip = None;
        let caps = ice_tcp_caps(&config, file_limit, http);
        assert_eq!((caps.per_source, caps.total), (None, 300));
    }
}

//! Switchyard: a selective forwarding unit for multi-party WebRTC video rooms.
//!
//! Every participant holds one peer connection to the server. It publishes its tracks on it
//! and receives every other participant's tracks on it; the server renegotiates that same
//! connection as people come and go. [`Server`] runs the whole thing, in `main` and in tests.

#![warn(missing_docs)]

pub mod auth;
pub mod client;
pub mod config;
pub mod drain;
pub mod engine;
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

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use config::Config;
use config::MediaTransport;
pub use metrics::{Counts, Metrics};

use crate::auth::{TokenKey, WeakKey};
use crate::drain::Drain;
use crate::engine::{Engine, EngineConfig};
use crate::room::Registry;
use crate::rtc::public_address::PublicAddresses;
use crate::tls::{Tls, TlsError};

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
    /// The configuration the server started with.
    pub config: Config,
    /// Graceful shutdown: begun by [`RunningServer::shutdown`], watched by every session.
    pub drain: Drain,
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
}

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
        let address = config.http.listen;
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| StartError::Bind { address, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StartError::Bind { address, source })?;
        let metrics = Arc::new(Metrics::default());
        let engine = Engine::start(
            EngineConfig {
                udp: config.media.addresses(MediaTransport::Udp),
                tcp: config.media.addresses(MediaTransport::Tcp),
                public: PublicAddresses::new(config.media.public_ips.clone()),
                workers: config.media.workers,
                spread_when_busy_permille: u32::from(config.media.spread_when_busy) * 10,
            },
            Arc::clone(&metrics),
        )
        .map_err(StartError::Media)?;
        let context = Arc::new(ServerContext {
            registry: Registry::new(
                config.limits.max_rooms,
                config.limits.max_participants_per_room,
            ),
            metrics,
            engine,
            token_key,
            config,
            drain: Drain::default(),
        });
        let (stop, mut stopped) = watch::channel(false);
        let app = http::router(Arc::clone(&context));
        let shutdown = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let task = match tls.clone() {
            None => tokio::spawn(
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .into_future(),
            ),
            Some(tls) => {
                let grace = context.config.shutdown_grace;
                tokio::spawn(async move { tls.serve(listener, app, shutdown, grace).await })
            }
        };
        Ok(RunningServer {
            local_addr,
            tls,
            context,
            stop,
            task,
        })
    }
}

/// A server serving in the background.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    /// What it serves HTTPS with, if it does.
    tls: Option<Tls>,
    context: Arc<ServerContext>,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// The address the HTTP listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
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

    /// Serves until the task ends (it ends only on error or [`shutdown`](Self::shutdown)).
    pub async fn wait(self) -> std::io::Result<()> {
        self.task.await.unwrap_or(Ok(()))
    }

    /// Shuts down gracefully within the configured `shutdown_grace`: stops taking
    /// connections and joins, tells every client (`shutdown`), closes every session's media
    /// connection and WebSocket (1001, going away), and waits for the sessions and the HTTP
    /// listener to end, but never past the grace period: whatever is left then is cut off.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let deadline = self.context.drain.begin(self.context.config.shutdown_grace);
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
        match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(result) => result.unwrap_or(Ok(())),
            Err(_) => {
                warn!("HTTP connections still open at the end of the grace period are cut off");
                task.abort();
                Ok(())
            }
        }
    }
}

//! The `switchyard` command: runs the server until Ctrl-C or SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use switchyard::client::ClientFiles;
use switchyard::{Config, Server};
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

/// A selective forwarding unit for multi-party WebRTC video rooms.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address the HTTP server (client page, WebSocket at /ws, /metrics) listens on.
    #[arg(long, env = "SWITCHYARD_HTTP", default_value = "0.0.0.0:8080")]
    http: SocketAddr,
    /// Local IP to gather media candidates on; repeat for several. Default: every IPv4
    /// interface, loopback included.
    #[arg(long = "media-ip", env = "SWITCHYARD_MEDIA_IPS", value_delimiter = ',')]
    media_ips: Vec<IpAddr>,
    /// STUN or TURN URL handed to clients; repeat for several.
    #[arg(long = "ice-url", env = "SWITCHYARD_ICE_URLS", value_delimiter = ',')]
    ice_urls: Vec<String>,
    /// Serve the browser client from this folder instead of the copy built into the binary
    /// (for working on the client: edits show on reload).
    #[arg(long, env = "SWITCHYARD_CLIENT_DIR")]
    client_dir: Option<PathBuf>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "SWITCHYARD_JSON_LOGS")]
    json_logs: bool,
    /// Seconds a graceful shutdown (SIGTERM, Ctrl-C) may take before connections are cut.
    #[arg(
        long = "shutdown-grace",
        env = "SWITCHYARD_SHUTDOWN_GRACE_SECS",
        value_name = "SECS"
    )]
    shutdown_grace: Option<u64>,
}

/// How much longer than the grace period the shutdown may take before the process exits
/// regardless.
const SHUTDOWN_MARGIN: Duration = Duration::from_millis(500);

/// Default log filter: the server's own information, and only warnings from the WebRTC stack,
/// which logs per packet at lower levels.
const DEFAULT_LOG_FILTER: &str = "info,webrtc=warn,rtc=error,rtc_ice=warn,rtc_dtls=warn";

/// How long the runtime may take, once the server has shut down, to stop what is left.
const RUNTIME_STOP_TIMEOUT: Duration = Duration::from_millis(500);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("switchyard: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(cli));
    // Dropping a runtime waits for every blocking task it started, without a bound; a process
    // told to stop must stop.
    runtime.shutdown_timeout(RUNTIME_STOP_TIMEOUT);
    code
}

async fn run(cli: Cli) -> ExitCode {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    if cli.json_logs {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }

    let mut config = Config::default();
    config.http.listen = cli.http;
    config.ice.urls = cli.ice_urls;
    config.client = cli
        .client_dir
        .map_or(ClientFiles::Embedded, ClientFiles::Directory);
    if !cli.media_ips.is_empty() {
        config.media.ips = cli.media_ips;
    }
    if let Some(seconds) = cli.shutdown_grace {
        config.shutdown_grace = Duration::from_secs(seconds);
    }
    let grace = config.shutdown_grace;
    let media_ips = config.media.ips.clone();
    let server = match Server::new(config).start().await {
        Ok(server) => server,
        Err(error) => {
            error!(%error, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    info!(
        http = %server.local_addr(),
        media = ?media_ips,
        "switchyard is serving: open http://localhost:{}/ in a browser",
        server.local_addr().port()
    );
    tokio::select! {
        result = wait_for_signal() => {
            if let Err(error) = result {
                error!(%error, "cannot listen for signals");
            }
            info!("shutting down");
            // The server bounds its own shutdown by the grace period; this bounds it again, in
            // case something in it does not return.
            match tokio::time::timeout(grace.saturating_add(SHUTDOWN_MARGIN), server.shutdown()).await {
                Ok(Ok(())) => info!("shut down"),
                Ok(Err(error)) => {
                    error!(%error, "shutdown failed");
                    return ExitCode::FAILURE;
                }
                Err(_) => warn!("the shutdown overran its grace period; exiting anyway"),
            }
        }
    }
    ExitCode::SUCCESS
}

async fn wait_for_signal() -> std::io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}

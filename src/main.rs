//! The `switchyard` command: runs the server until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use switchyard::{Config, Server, config};
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

/// A selective forwarding unit for multi-party WebRTC video rooms.
///
/// Every setting has a default, so `switchyard` alone serves http://localhost:8080. Settings
/// come from a TOML file (--config), then SWITCHYARD_* environment variables, then flags, each
/// overriding the one before; docs/deployment.md describes them all.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {}

#[tokio::main]
async fn main() -> ExitCode {
    let matches = Cli::command().args(config::load::args()).get_matches();
    let config = match config::load::from_matches(&matches) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("switchyard: refusing to start: {error}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);

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
    if let Err(error) = wait_for_signal().await {
        error!(%error, "cannot listen for signals");
    }
    info!("shutting down");
    if let Err(error) = server.shutdown().await {
        error!(%error, "shutdown failed");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Logs as the configuration says; `RUST_LOG`, when set, wins over `log.filter`.
fn init_logging(config: &Config) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.filter));
    if config.log.json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
}

async fn wait_for_signal() -> std::io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}

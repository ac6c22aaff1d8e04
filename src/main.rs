//! The `switchyard` command: runs the server until Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use switchyard::auth::{Claims, Grants, TokenKey, unix_seconds};
use switchyard::{Config, RunningServer, Server, config};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

/// A selective forwarding unit for multi-party WebRTC video rooms.
///
/// Every setting has a default, so `switchyard` alone serves http://localhost:8080. Settings
/// come from a TOML file (--config), then SWITCHYARD_* environment variables, then flags, each
/// overriding the one before; docs/deployment.md describes them all.
#[derive(Debug, Parser)]
#[command(version, about, long_about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mints an access token for development and prints it.
    Token(TokenArgs),
}

/// `switchyard token`: with none of --publish, --subscribe and --chat, the token grants all
/// three; with any of them, only those given. `--invite` adds the `invite` grant to them.
/// `--admin` mints a token for the room service API instead (`/api/`), granting `admin` only.
#[derive(Debug, Args)]
struct TokenArgs {
    /// The room the token admits to (with --admin, not looked at; `api` by default).
    #[arg(long, required_unless_present = "admin")]
    room: Option<String>,
    /// The participant's identity (the token's `sub`): unique in the room. With --admin, who
    /// uses the API (`admin` by default).
    #[arg(long, required_unless_present = "admin")]
    identity: Option<String>,
    /// Grant the room service API (`/api/`) only: list rooms and participants, remove, mute,
    /// close.
    #[arg(long, conflicts_with_all = ["publish", "subscribe", "chat", "invite"])]
    admin: bool,
    /// The display name; without it, the name the client sends is used.
    #[arg(long)]
    name: Option<String>,
    /// Grant publishing tracks.
    #[arg(long)]
    publish: bool,
    /// Grant receiving the others' tracks.
    #[arg(long)]
    subscribe: bool,
    /// Grant sending chat messages.
    #[arg(long)]
    chat: bool,
    /// Grant asking the server for invite links to the room (beside the other grants).
    #[arg(long)]
    invite: bool,
    /// How long the token is valid, in seconds.
    #[arg(long, default_value_t = 6 * 3600)]
    ttl: u64,
    /// The server's token key. Without it, the key the server is configured with: the
    /// SWITCHYARD_AUTH_TOKEN_KEY environment variable, or `[auth] token_key` in the
    /// configuration file (--config or SWITCHYARD_CONFIG).
    #[arg(long, env = "SWITCHYARD_AUTH_TOKEN_KEY", hide_env_values = true)]
    key: Option<String>,
    /// The server's configuration file, to read the token key from.
    #[arg(long, value_name = "FILE", env = "SWITCHYARD_CONFIG")]
    config: Option<PathBuf>,
}

impl TokenArgs {
    /// The key to sign with, and where it came from.
    fn key(&self) -> Result<(String, String), String> {
        if let Some(key) = &self.key {
            return Ok((key.clone(), "--key or SWITCHYARD_AUTH_TOKEN_KEY".to_owned()));
        }
        let Some(path) = &self.config else {
            return Err("no token key: give --key, or configure the server's \
                        (SWITCHYARD_AUTH_TOKEN_KEY, or [auth] token_key in the --config file)"
                .to_owned());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let config = config::load::from_toml(path, &text).map_err(|error| error.to_string())?;
        match config.auth.token_key {
            Some(key) => Ok((key, format!("[auth] token_key in {}", path.display()))),
            None => Err(format!("{} sets no [auth] token_key", path.display())),
        }
    }
}

/// How much longer than the grace period the shutdown may take before the process exits
/// regardless.
const SHUTDOWN_MARGIN: Duration = Duration::from_millis(500);

/// How long the runtime may take, once the server has shut down, to stop what is left.
const RUNTIME_STOP_TIMEOUT: Duration = Duration::from_millis(500);

fn main() -> ExitCode {
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
    let code = runtime.block_on(run());
    // Dropping a runtime waits for every blocking task it started, without a bound; a process
    // told to stop must stop.
    runtime.shutdown_timeout(RUNTIME_STOP_TIMEOUT);
    code
}

async fn run() -> ExitCode {
    let matches = Cli::command().args(config::load::args()).get_matches();
    match Cli::from_arg_matches(&matches) {
        Ok(Cli {
            command: Some(Command::Token(args)),
        }) => return mint_token(args),
        Ok(Cli { command: None }) => {}
        Err(error) => error.exit(),
    }
    let config = match config::load::from_matches(&matches) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("switchyard: refusing to start: {error}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);

    let media_ips = config.media.ips.clone();
    let grace = config.shutdown_grace;
    let open = config.auth.token_key.is_none();
    // Listening before saying "serving", so a signal sent from then on is never the default
    // action (SIGHUP's would end the process).
    let mut signals = match Signals::new() {
        Ok(signals) => signals,
        Err(error) => {
            error!(%error, "cannot listen for signals");
            return ExitCode::FAILURE;
        }
    };
    let server = match Server::new(config).start().await {
        Ok(server) => server,
        Err(error) => {
            error!(%error, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    let serving = format!(
        "switchyard is serving: open {}://localhost:{}/ in a browser",
        if server.is_tls() { "https" } else { "http" },
        server.local_addr().port()
    );
    match &server.context().cluster {
        Some(cluster) => info!(
            http = %server.local_addr(),
            internal = ?server.internal_addr(),
            media = ?media_ips,
            node = %cluster.node(),
            signaling = %cluster.url(),
            "{serving}"
        ),
        None => info!(
            http = %server.local_addr(),
            internal = ?server.internal_addr(),
            media = ?media_ips,
            "{serving}"
        ),
    }
    if open {
        warn!(
            "NO ACCESS CONTROL: no token key is configured (--token-key, SWITCHYARD_AUTH_TOKEN_KEY \
             or [auth] token_key), so anybody who can reach this server may join any room"
        );
    }
    signals.serve_until_stopped(&server).await;
    info!("shutting down");
    // The server bounds its own shutdown by the grace period; this bounds it again, in case
    // something in it does not return.
    match tokio::time::timeout(grace.saturating_add(SHUTDOWN_MARGIN), server.shutdown()).await {
        Ok(Ok(())) => info!("shut down"),
        Ok(Err(error)) => {
            error!(%error, "shutdown failed");
            return ExitCode::FAILURE;
        }
        Err(_) => warn!("the shutdown overran its grace period; exiting anyway"),
    }
    ExitCode::SUCCESS
}

/// Prints a token for `args` on standard output.
fn mint_token(args: TokenArgs) -> ExitCode {
    let (key, key_source) = match args.key() {
        Ok(found) => found,
        Err(problem) => {
            eprintln!("switchyard token: {problem}");
            return ExitCode::FAILURE;
        }
    };
    let key = match TokenKey::new(&key) {
        Ok(key) => key,
        Err(error) => {
            eprintln!("switchyard token: the key from {key_source}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let grants = if args.admin {
        Grants::ADMIN
    } else if args.publish || args.subscribe || args.chat {
        Grants {
            publish: args.publish,
            subscribe: args.subscribe,
            chat: args.chat,
            admin: false,
            invite: args.invite,
        }
    } else {
        Grants {
            invite: args.invite,
            ..Grants::ALL
        }
    };
    let now = SystemTime::now();
    let mut claims = Claims::new(
        args.room.unwrap_or_else(|| "api".to_owned()),
        args.identity.unwrap_or_else(|| "admin".to_owned()),
        grants,
        now,
        Duration::from_secs(args.ttl),
    );
    claims.name = args.name;
    if let Err(problem) = claims.check() {
        eprintln!("switchyard token: {problem}");
        return ExitCode::FAILURE;
    }
    match key.mint(&claims) {
        Ok(token) => {
            println!("{token}");
            eprintln!(
                "a token for `{}` in room `{}`, granting {grants}, valid for {} s (until Unix time {}), signed with the key from {key_source}",
                claims.sub,
                claims.room,
                claims.exp.saturating_sub(unix_seconds(now)),
                claims.exp
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("switchyard token: {error}");
            ExitCode::FAILURE
        }
    }
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

/// The signals the server acts on.
struct Signals {
    terminate: Signal,
    hangup: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for Ctrl-C or SIGTERM, reloading the TLS certificate and key on every SIGHUP
    /// meanwhile.
    async fn serve_until_stopped(&mut self, server: &RunningServer) {
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return,
                _ = self.terminate.recv() => return,
                _ = self.hangup.recv() => match server.reload_tls() {
                    Ok(Some(files)) => info!(
                        cert = %files.cert.display(),
                        key = %files.key.display(),
                        "reloaded the TLS certificate and key"
                    ),
                    Ok(None) => info!("SIGHUP: no TLS certificate to reload"),
                    Err(error) => error!(
                        %error,
                        "cannot reload the TLS certificate and key; still serving the previous ones"
                    ),
                },
            }
        }
    }
}

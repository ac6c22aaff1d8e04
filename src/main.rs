//! The `switchyard` command: runs the server until Ctrl-C or SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};
use switchyard::auth::{Claims, Grants, TokenKey, unix_seconds};
use switchyard::client::ClientFiles;
use switchyard::config::TurnConfig;
use switchyard::{Config, Server};
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

/// A selective forwarding unit for multi-party WebRTC video rooms.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
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
    /// URL of a TURN server that shares --turn-secret with this one (coturn's
    /// `use-auth-secret`); each client gets its own short-lived credential. Repeat for several.
    #[arg(
        long = "turn-url",
        env = "SWITCHYARD_ICE_TURN_URLS",
        value_delimiter = ','
    )]
    turn_urls: Vec<String>,
    /// The secret shared with the TURN server (coturn's `static-auth-secret`).
    #[arg(long, env = "SWITCHYARD_ICE_TURN_SECRET", hide_env_values = true)]
    turn_secret: Option<String>,
    /// How long each client's TURN credential stays valid, in seconds. TURN servers check it
    /// on every refresh, so it must outlast the longest call.
    #[arg(
        long = "turn-credential-ttl",
        env = "SWITCHYARD_ICE_TURN_CREDENTIAL_TTL_SECS",
        default_value_t = 86_400
    )]
    turn_credential_ttl_secs: u64,
    /// HS256 key (at least 32 bytes) that access tokens are signed with. Without one the
    /// server is open: anybody who reaches it may join any room.
    #[arg(long, env = "SWITCHYARD_AUTH_TOKEN_KEY", hide_env_values = true)]
    token_key: Option<String>,
    /// Serve the browser client from this folder instead of the copy built into the binary
    /// (for working on the client: edits show on reload).
    #[arg(long, env = "SWITCHYARD_CLIENT_DIR")]
    client_dir: Option<PathBuf>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "SWITCHYARD_JSON_LOGS")]
    json_logs: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mints an access token for development and prints it.
    Token(TokenArgs),
}

/// `switchyard token`: with none of --publish, --subscribe and --chat, the token grants all
/// three; with any of them, only those given.
#[derive(Debug, Args)]
struct TokenArgs {
    /// The room the token admits to.
    #[arg(long)]
    room: String,
    /// The participant's identity (the token's `sub`): unique in the room.
    #[arg(long)]
    identity: String,
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
    /// How long the token is valid, in seconds.
    #[arg(long, default_value_t = 6 * 3600)]
    ttl: u64,
    /// The server's token key.
    #[arg(long, env = "SWITCHYARD_AUTH_TOKEN_KEY", hide_env_values = true)]
    key: String,
}

/// Prints a token for `args` on standard output.
fn mint_token(args: TokenArgs) -> ExitCode {
    let key = match TokenKey::new(&args.key) {
        Ok(key) => key,
        Err(error) => {
            eprintln!("switchyard token: --key: {error}");
            return ExitCode::FAILURE;
        }
    };
    let grants = if args.publish || args.subscribe || args.chat {
        Grants {
            publish: args.publish,
            subscribe: args.subscribe,
            chat: args.chat,
        }
    } else {
        Grants::ALL
    };
    let now = SystemTime::now();
    let mut claims = Claims::new(
        args.room,
        args.identity,
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
                "a token for `{}` in room `{}`, granting {grants}, valid for {} s (until Unix time {})",
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

/// Default log filter: the server's own information, and only warnings from the WebRTC stack,
/// which logs per packet at lower levels.
const DEFAULT_LOG_FILTER: &str = "info,webrtc=warn,rtc=error,rtc_ice=warn,rtc_dtls=warn";

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Token(args)) = cli.command {
        return mint_token(args);
    }
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
    if !cli.turn_urls.is_empty() {
        let Some(secret) = cli.turn_secret else {
            error!("--turn-url needs --turn-secret: the secret shared with the TURN server");
            return ExitCode::FAILURE;
        };
        config.ice.turn = Some(TurnConfig {
            urls: cli.turn_urls,
            secret,
            credential_ttl: Duration::from_secs(cli.turn_credential_ttl_secs),
        });
    }
    config.auth.token_key = cli.token_key;
    config.client = cli
        .client_dir
        .map_or(ClientFiles::Embedded, ClientFiles::Directory);
    if !cli.media_ips.is_empty() {
        config.media.ips = cli.media_ips;
    }
    let media_ips = config.media.ips.clone();
    let open = config.auth.token_key.is_none();
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
    if open {
        warn!(
            "NO ACCESS CONTROL: no token key is configured (--token-key, SWITCHYARD_AUTH_TOKEN_KEY \
             or [auth] token_key), so anybody who can reach this server may join any room"
        );
    }
    tokio::select! {
        result = wait_for_signal() => {
            if let Err(error) = result {
                error!(%error, "cannot listen for signals");
            }
            info!("shutting down");
            if let Err(error) = server.shutdown().await {
                error!(%error, "shutdown failed");
                return ExitCode::FAILURE;
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

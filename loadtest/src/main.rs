//! The `loadtest` command: synthetic publishers and subscribers against a running server.
//!
//! ```text
//! cargo run -p loadtest --release -- --rooms 1 --publishers 4 --subscribers 4 --duration 20s
//! cargo run -p loadtest --release -- --scenario room-of-ten --server-pid "$(pidof switchyard)"
//! cargo run -p loadtest --release -- --target janus --url ws://10.0.0.1:8188 --scenario smoke
//! cargo run -p loadtest --release -- --url wss://sfu.example.org/ws --token-key "$KEY" --scenario smoke
//! cargo run -p loadtest --release -- --scenario webinar --shard 2/4 --start-at 1767600000 --json 2.json
//! cargo run -p loadtest --release -- merge 1.json 2.json 3.json 4.json --html webinar.html
//! cargo run -p loadtest --release -- compare switchyard-1.json janus-1.json switchyard-2.json
//! cargo run -p loadtest --release -- soak --signaling-cycles 10000 --media-cycles 500
//! ```

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand, ValueEnum};
use loadtest::output::{Outputs, read_report};
use loadtest::scenario::{self, Churn, Scenario};
use loadtest::shard::Shard;
use loadtest::soak::{SoakOptions, soak};
use loadtest::stop::{StopButton, stop_button};
use loadtest::tls::{CertificateCheck, client_config};
use loadtest::tokens::Admission;
use loadtest::{Janus, Report, RunOptions, Switchyard, Target, compare, merge, run};

/// Loads a Switchyard (or Janus) server with synthetic participants speaking real WebRTC, and
/// reports join times, loss, latency, freezes, keyframe response and the server's cost per
/// packet.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Something else than a load test run.
    #[command(subcommand)]
    command: Option<Command>,
    /// The server's signaling dialect.
    #[arg(long, value_enum, default_value_t = TargetName::Switchyard)]
    target: TargetName,
    /// The server's signaling URL, ws:// or wss:// [default: ws://127.0.0.1:8080/ws, or for
    /// Janus its WebSocket transport, ws://127.0.0.1:8188].
    #[arg(long, global = true)]
    url: Option<String>,
    /// Accept any TLS certificate (a test deployment's self-signed one) for wss:// and the
    /// metrics over https://. The connection is encrypted, but the server is not
    /// authenticated.
    #[arg(long, global = true)]
    insecure: bool,
    /// The server's token key: mint one access token per participant, each its own identity,
    /// granting what its role needs.
    #[arg(long, env = "SWITCHYARD_AUTH_TOKEN_KEY", hide_env_values = true)]
    token_key: Option<String>,
    /// An access token minted elsewhere; give one per participant of this machine, in the order
    /// of the plan (room by room, publishers first). Each names its participant's room. Given
    /// tokens are used rather than a key.
    #[arg(long)]
    token: Vec<String>,
    /// Use only relayed candidates, through the TURN servers the server names in `joined`, as
    /// a browser does with iceTransportPolicy 'relay': load-tests a TURN deployment too.
    #[arg(long)]
    relay: bool,
    /// Where the server's Prometheus metrics are [default: /metrics next to --url, over
    /// https:// for wss://].
    #[arg(long)]
    metrics_url: Option<String>,
    /// Run the I-th of N shares of the scenario, e.g. 2/4, for N load machines at once; merge
    /// their reports with `loadtest merge`.
    #[arg(long, default_value = "1/1")]
    shard: Shard,
    /// Start at this wall-clock time, Unix seconds (e.g. `$(( $(date +%s) + 30 ))`) or
    /// +DURATION; shards of one run need the same one (it also names their rooms).
    #[arg(long, value_parser = loadtest::start::parse_start_at)]
    start_at: Option<SystemTime>,
    /// A named scenario from the scenarios file; the flags below override it.
    #[arg(long)]
    scenario: Option<String>,
    /// The TOML file of named scenarios.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios.toml"))]
    scenarios: PathBuf,
    /// Number of rooms.
    #[arg(long)]
    rooms: Option<usize>,
    /// Publishing participants per room (they also receive everybody else).
    #[arg(long)]
    publishers: Option<usize>,
    /// Receive-only participants per room.
    #[arg(long)]
    subscribers: Option<usize>,
    /// Video bitrate per publisher, e.g. 1.5M or 800k; 0 sends no video.
    #[arg(long, value_parser = scenario::parse_bitrate)]
    video_bitrate: Option<u64>,
    /// Publish video in three simulcast layers, as the browser client does: q 320x180 at
    /// 150 kbit/s, h 640x360 at 500 kbit/s, f 1280x720 at 1.5 Mbit/s (true/false).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    simulcast: Option<bool>,
    /// The tile every participant shows each received video in, device pixels, e.g. 384x216
    /// (a 5x5 grid on 1920x1080): told to the server with `view`.
    #[arg(long)]
    tile: Option<loadtest::view::Tile>,
    /// Put only the last N participants of each room (subscribers first) behind --loss,
    /// --delay, --jitter and --bandwidth, e.g. 1 for one viewer on a weak link.
    #[arg(long)]
    impaired: Option<usize>,
    /// Video frames per second.
    #[arg(long)]
    fps: Option<u32>,
    /// Time between periodic keyframes, e.g. 3s.
    #[arg(long, value_parser = scenario::parse_duration)]
    keyframe_interval: Option<Duration>,
    /// Publish audio too (true/false).
    #[arg(long)]
    audio: Option<bool>,
    /// Send packets on the published tracks (true/false); false negotiates them and sends
    /// nothing.
    #[arg(long)]
    send_media: Option<bool>,
    /// Participants started per second.
    #[arg(long)]
    ramp_up: Option<f64>,
    /// How long to measure once everybody has joined, e.g. 20s.
    #[arg(long, value_parser = scenario::parse_duration)]
    duration: Option<Duration>,
    /// How often each participant asks for a keyframe (0s: never).
    #[arg(long, value_parser = scenario::parse_duration)]
    pli_interval: Option<Duration>,
    /// Packet loss on every participant's link, both ways, e.g. 3%.
    #[arg(long, value_parser = scenario::parse_fraction)]
    loss: Option<f64>,
    /// One-way delay added to every participant's link, e.g. 40ms.
    #[arg(long, value_parser = scenario::parse_duration)]
    delay: Option<Duration>,
    /// Uniform delay variation, plus or minus, e.g. 10ms.
    #[arg(long, value_parser = scenario::parse_duration)]
    jitter: Option<Duration>,
    /// Bandwidth of every participant's link, each way, e.g. 2M.
    #[arg(long, value_parser = scenario::parse_bitrate)]
    bandwidth: Option<u64>,
    /// Churn: participants joining per second during the measurement window.
    #[arg(long)]
    churn_rate: Option<f64>,
    /// Churn: how long each churner stays, e.g. 10s.
    #[arg(long, value_parser = scenario::parse_duration)]
    churn_stay: Option<Duration>,
    /// The server's process id, to measure its CPU and memory from /proc. Without it they
    /// come from the server's own process metrics (`process_cpu_seconds_total`, ...).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Local address the participants gather media candidates on.
    #[arg(long, default_value = "127.0.0.1", global = true)]
    media_ip: IpAddr,
    /// Also write the report as JSON to this file.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// Also write the headline figures as a Markdown table to this file.
    #[arg(long, global = true)]
    markdown: Option<PathBuf>,
    /// Also write the report as one self-contained HTML page with plots to this file.
    #[arg(long, global = true)]
    html: Option<PathBuf>,
    /// No live progress line.
    #[arg(long, global = true)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Merges the JSON reports (`--json`) of the shards of one run (`--shard`) into the report
    /// one machine would have made, and prints it (percentiles from the merged histograms).
    Merge {
        /// The shards' reports.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
    },
    /// Prints one Markdown table comparing two servers, from the JSON reports (`--json`) of the
    /// same scenario run against each; the ratio is the first server's over the second's.
    Compare {
        /// The reports, in the order they ran.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        /// The floor benchmark's time per packet for an SRTP profile, in nanoseconds, e.g.
        /// `SRTP_AEAD_AES_128_GCM=950`; may be repeated.
        #[arg(long = "floor", value_parser = parse_floor)]
        floors: Vec<(String, f64)>,
        /// The batched floor's time per packet (32 packets, one `sendmmsg`), likewise.
        #[arg(long = "batched-floor", value_parser = parse_floor)]
        batched_floors: Vec<(String, f64)>,
    },
    /// Runs join/leave cycles with and without media against the server at `--url`, and
    /// prints what the server holds before and after them (resident memory, file descriptors,
    /// threads, live counts), read from its `/metrics` and `/api/counts`.
    Soak {
        /// Join/leave cycles without media.
        #[arg(long, default_value_t = 10_000)]
        signaling_cycles: usize,
        /// Cycles of a publisher and a subscriber that get media flowing, then leave.
        #[arg(long, default_value_t = 500)]
        media_cycles: usize,
        /// Signaling cycles at once; media cycles run a quarter as many at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
}

/// The servers the load test speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TargetName {
    /// Switchyard's own signaling.
    Switchyard,
    /// Janus's VideoRoom plugin over its WebSocket API.
    Janus,
}

impl TargetName {
    fn target(self) -> Arc<dyn Target> {
        match self {
            TargetName::Switchyard => Arc::new(Switchyard),
            TargetName::Janus => Arc::new(Janus::default()),
        }
    }

    /// Where the server listens when it runs with its defaults on this machine.
    fn default_url(self) -> &'static str {
        match self {
            TargetName::Switchyard => "ws://127.0.0.1:8080/ws",
            TargetName::Janus => "ws://127.0.0.1:8188",
        }
    }
}

/// Parses `PROFILE=NANOSECONDS`.
fn parse_floor(text: &str) -> Result<(String, f64), String> {
    let (profile, nanoseconds) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not PROFILE=NANOSECONDS"))?;
    let nanoseconds: f64 = nanoseconds
        .trim()
        .parse()
        .map_err(|_| format!("`{nanoseconds}` is not a number of nanoseconds"))?;
    if !(nanoseconds > 0.0 && nanoseconds.is_finite()) {
        return Err(format!("`{nanoseconds}` is not a positive time"));
    }
    Ok((profile.trim().to_owned(), nanoseconds))
}

/// `loadtest compare`: reads the reports, prints the table, and fails when a run did not
/// measure everything it should have.
fn compare_reports(
    paths: &[PathBuf],
    floors: &[(String, f64)],
    batched_floors: &[(String, f64)],
) -> ExitCode {
    let mut reports = Vec::new();
    for path in paths {
        let read = std::fs::read_to_string(path)
            .map_err(|error| error.to_string())
            .and_then(|text| {
                serde_json::from_str::<Report>(&text).map_err(|error| error.to_string())
            });
        match read {
            Ok(report) => reports.push(report),
            Err(error) => {
                eprintln!("loadtest: {}: {error}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    let set = |name: &str, floors: &[(String, f64)]| compare::FloorSet {
        name: name.to_owned(),
        floors: floors
            .iter()
            .map(|(profile, nanoseconds)| (profile.clone(), 1e9 / nanoseconds))
            .collect(),
    };
    let floors = [
        set("the floor", floors),
        set("the batched floor", batched_floors),
    ];
    let mut short = false;
    for (path, report) in paths.iter().zip(&reports) {
        for problem in compare::shortfalls(report) {
            eprintln!("loadtest: {}: {problem}", path.display());
            short = true;
        }
    }
    match compare::markdown(&compare::group(reports), &floors) {
        Ok(table) => print!("{table}"),
        Err(error) => {
            eprintln!("loadtest: {error}");
            return ExitCode::from(2);
        }
    }
    if short {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

impl Cli {
    fn scenario(&self) -> Result<Scenario, String> {
        let mut scenario = match &self.scenario {
            Some(name) => {
                let text = std::fs::read_to_string(&self.scenarios)
                    .map_err(|error| format!("{}: {error}", self.scenarios.display()))?;
                let mut scenarios = scenario::parse_scenarios(&text)
                    .map_err(|error| format!("{}: {error}", self.scenarios.display()))?;
                scenarios.remove(name).ok_or_else(|| {
                    format!(
                        "no scenario `{name}` in {} (there are: {})",
                        self.scenarios.display(),
                        scenarios.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                })?
            }
            None => Scenario::default(),
        };
        macro_rules! apply {
            ($($flag:ident),*) => { $( if let Some(value) = self.$flag { scenario.$flag = value; } )* };
        }
        apply!(
            rooms,
            publishers,
            subscribers,
            video_bitrate,
            fps,
            keyframe_interval,
            audio,
            send_media,
            ramp_up,
            duration,
            pli_interval
        );
        if let Some(loss) = self.loss {
            scenario.impairment.loss = loss;
        }
        if let Some(delay) = self.delay {
            scenario.impairment.delay = delay;
        }
        if let Some(jitter) = self.jitter {
            scenario.impairment.jitter = jitter;
        }
        if self.bandwidth.is_some() {
            scenario.impairment.bandwidth = self.bandwidth;
        }
        if let Some(simulcast) = self.simulcast {
            scenario.simulcast = simulcast;
        }
        if self.tile.is_some() {
            scenario.tile = self.tile;
        }
        if self.impaired.is_some() {
            scenario.impaired = self.impaired;
        }
        match (self.churn_rate, self.churn_stay, &mut scenario.churn) {
            (None, None, _) => {}
            (rate, stay, Some(churn)) => {
                churn.rate = rate.unwrap_or(churn.rate);
                churn.stay = stay.unwrap_or(churn.stay);
            }
            (Some(rate), Some(stay), None) => scenario.churn = Some(Churn { rate, stay }),
            (_, _, None) => return Err("churn needs both --churn-rate and --churn-stay".to_owned()),
        }
        scenario.validate()?;
        Ok(scenario)
    }

    /// How to run it, besides the scenario.
    fn run_options(
        &self,
        scenario: Scenario,
        stop: loadtest::stop::Stop,
    ) -> Result<RunOptions, String> {
        let check = if self.insecure {
            CertificateCheck::AcceptAnything
        } else {
            CertificateCheck::SystemRoots
        };
        let url = self
            .url
            .clone()
            .unwrap_or_else(|| self.target.default_url().to_owned());
        // One set of TLS settings for the signaling and the metrics, made only when one of
        // them uses TLS (or --insecure says it will).
        let https_metrics = self
            .metrics_url
            .as_deref()
            .is_some_and(|metrics| metrics.starts_with("https:"));
        let tls = (self.insecure || url.starts_with("wss:") || https_metrics)
            .then(|| client_config(check))
            .transpose()
            .map_err(|error| error.to_string())?;
        let admission = match (self.token.is_empty(), &self.token_key) {
            (false, _) => Admission::given(&self.token).map_err(|error| error.to_string())?,
            (true, Some(key)) => Admission::mint(key).map_err(|error| error.to_string())?,
            (true, None) => Admission::Open,
        };
        if self.shard.count > 1 && self.start_at.is_none() {
            return Err(format!(
                "--shard {} needs --start-at: the shards of one run start together, and the start time names their rooms",
                self.shard
            ));
        }
        Ok(RunOptions {
            target: self.target.target(),
            url,
            scenario,
            server_pid: self.server_pid,
            media_ip: self.media_ip,
            room_prefix: "load".to_owned(),
            progress: !self.quiet,
            tls,
            admission,
            relay: self.relay,
            metrics_url: self.metrics_url.clone(),
            shard: self.shard,
            start_at: self.start_at,
            stop,
        })
    }

    /// Where to write the report.
    fn outputs(&self) -> Outputs {
        Outputs {
            json: self.json.clone(),
            markdown: self.markdown.clone(),
            html: self.html.clone(),
        }
    }
}

/// Ctrl-C stops the run, which still reports what it measured; a second one quits at once.
fn stop_on_ctrl_c(button: StopButton) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        eprintln!(
            "\nloadtest: stopping; the report covers what was measured (Ctrl-C again quits at once)"
        );
        button.press();
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
}

/// `loadtest merge`: reads the shards' reports, merges, prints and writes the whole.
fn merge_reports(cli: &Cli, paths: &[PathBuf]) -> ExitCode {
    let mut reports = Vec::new();
    for path in paths {
        match read_report(path) {
            Ok(report) => reports.push(report),
            Err(error) => {
                eprintln!("loadtest: {error}");
                return ExitCode::from(2);
            }
        }
    }
    match merge::merge(&reports) {
        Ok(report) => finish(&report, &cli.outputs()),
        Err(error) => {
            eprintln!("loadtest: merging: {error}");
            ExitCode::from(2)
        }
    }
}

/// Prints `report`, writes it where asked, and says how the run went in the exit code: 130
/// when it was stopped early, 1 when participants could not join.
fn finish(report: &Report, outputs: &Outputs) -> ExitCode {
    print!("{}", report.table());
    if let Err(error) = outputs.write(report) {
        eprintln!("loadtest: {error}");
        return ExitCode::FAILURE;
    }
    if report.run.interrupted {
        eprintln!("loadtest: stopped early");
        return ExitCode::from(130);
    }
    if report.participants.failed > 0 {
        eprintln!(
            "loadtest: {} participants could not join",
            report.participants.failed
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Compare {
            reports,
            floors,
            batched_floors,
        }) => return compare_reports(reports, floors, batched_floors),
        Some(Command::Merge { reports }) => return merge_reports(&cli, reports),
        _ => {}
    }
    init_tracing();
    if let Some(Command::Soak {
        signaling_cycles,
        media_cycles,
        concurrency,
    }) = &cli.command
    {
        return run_soak(&cli, *signaling_cycles, *media_cycles, *concurrency).await;
    }
    let (button, stop) = stop_button();
    let options = match cli
        .scenario()
        .and_then(|scenario| cli.run_options(scenario, stop))
    {
        Ok(options) => options,
        Err(error) => {
            eprintln!("loadtest: {error}");
            return ExitCode::from(2);
        }
    };
    stop_on_ctrl_c(button);
    match run(options).await {
        Ok(report) => finish(&report, &cli.outputs()),
        Err(error) => {
            eprintln!("loadtest: {error}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rtc=off,webrtc=off")),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// `loadtest soak`: runs the cycles, prints the table, and fails when a cycle failed.
async fn run_soak(
    cli: &Cli,
    signaling_cycles: usize,
    media_cycles: usize,
    concurrency: usize,
) -> ExitCode {
    let options = SoakOptions {
        url: cli
            .url
            .clone()
            .unwrap_or_else(|| TargetName::Switchyard.default_url().to_owned()),
        signaling_cycles,
        media_cycles,
        concurrency,
        media_ip: cli.media_ip,
        progress: !cli.quiet,
    };
    let report = match soak(options).await {
        Ok(report) => report,
        Err(error) => {
            eprintln!("loadtest: {error}");
            return ExitCode::FAILURE;
        }
    };
    let table = report.markdown();
    print!("{table}");
    let written = write_optional(cli.json.as_deref(), || {
        serde_json::to_string_pretty(&report).map_err(|error| error.to_string())
    })
    .and_then(|()| write_optional(cli.markdown.as_deref(), || Ok(table.clone())));
    if let Err(error) = written {
        eprintln!("loadtest: {error}");
        return ExitCode::FAILURE;
    }
    if report.failed() > 0 {
        eprintln!("loadtest: {} soak cycles failed", report.failed());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Writes `contents()` to `path` when a path was given.
fn write_optional(
    path: Option<&std::path::Path>,
    contents: impl FnOnce() -> Result<String, String>,
) -> Result<(), String> {
    let Some(path) = path else { return Ok(()) };
    contents()
        .and_then(|text| std::fs::write(path, text).map_err(|error| error.to_string()))
        .map_err(|error| format!("writing {}: {error}", path.display()))
}

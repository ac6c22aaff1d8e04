//! The `loadtest` command: synthetic publishers and subscribers against a running server.
//!
//! ```text
//! cargo run -p loadtest --release -- --rooms 1 --publishers 4 --subscribers 4 --duration 20s
//! cargo run -p loadtest --release -- --scenario room-of-ten --server-pid "$(pidof switchyard)"
//! ```

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use loadtest::scenario::{self, Scenario};
use loadtest::{RunOptions, run};

/// Loads a Switchyard server with synthetic participants speaking real WebRTC, and reports
/// join times, loss, latency, freezes, keyframe response and the server's cost per packet.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The server's signaling URL.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    url: String,
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
    /// Video frames per second.
    #[arg(long)]
    fps: Option<u32>,
    /// Time between periodic keyframes, e.g. 3s.
    #[arg(long, value_parser = scenario::parse_duration)]
    keyframe_interval: Option<Duration>,
    /// Publish audio too (true/false).
    #[arg(long)]
    audio: Option<bool>,
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
    /// The server's process id, to measure its CPU and memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Local address the participants gather media candidates on.
    #[arg(long, default_value = "127.0.0.1")]
    media_ip: IpAddr,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also write the headline figures as a Markdown table to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// No live progress line.
    #[arg(long)]
    quiet: bool,
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
        scenario.validate()?;
        Ok(scenario)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rtc=off,webrtc=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let scenario = match cli.scenario() {
        Ok(scenario) => scenario,
        Err(error) => {
            eprintln!("loadtest: {error}");
            return ExitCode::from(2);
        }
    };
    let options = RunOptions {
        url: cli.url.clone(),
        scenario,
        server_pid: cli.server_pid,
        media_ip: cli.media_ip,
        room_prefix: "load".to_owned(),
        progress: !cli.quiet,
    };
    let report = match run(options).await {
        Ok(report) => report,
        Err(error) => {
            eprintln!("loadtest: {error}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", report.table());
    if let Some(path) = &cli.json {
        let written = serde_json::to_string_pretty(&report)
            .map_err(|error| error.to_string())
            .and_then(|json| std::fs::write(path, json).map_err(|error| error.to_string()));
        if let Err(error) = written {
            eprintln!("loadtest: writing {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if let Some(path) = &cli.markdown
        && let Err(error) = std::fs::write(path, report.markdown())
    {
        eprintln!("loadtest: writing {}: {error}", path.display());
        return ExitCode::FAILURE;
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

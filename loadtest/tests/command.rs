//! The `loadtest` command itself, as a person runs it, against a server in this process: a
//! wrong token key is refused with the server's error code and a non-zero exit; Ctrl-C (SIGINT)
//! ends a run early, which still prints its table and writes its reports; `merge` refuses
//! reports that are not the shards of one run.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use switchyard::{Config, RunningServer, Server};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const SERVER_KEY: &str = "the-server-s-own-key-of-32-bytes-at-least";
const OTHER_KEY: &str = "another-key-that-is-also-32-bytes-long!!";
/// How long any one step may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);

async fn server(token_key: Option<&str>) -> RunningServer {
    let mut config = Config::loopback();
    config.auth.token_key = token_key.map(str::to_owned);
    Server::new(config)
        .start()
        .await
        .expect("the server starts")
}

/// The command with `args`, none of the environment's keys, and a quiet log.
fn loadtest(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_loadtest"));
    command
        .args(args)
        .env_remove("SWITCHYARD_AUTH_TOKEN_KEY")
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

fn temp_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "loadtest-{name}-{}-{:x}",
        std::process::id(),
        rand::random::<u64>()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_key_is_refused_naming_the_server_s_error_code() {
    let server = server(Some(SERVER_KEY)).await;
    let url = server.websocket_url();
    let output = loadtest(&[
        "--url",
        &url,
        "--token-key",
        OTHER_KEY,
        "--publishers",
        "2",
        "--subscribers",
        "1",
        "--duration",
        "2s",
        "--quiet",
    ])
    .output();
    let output = tokio::time::timeout(PATIENCE, output)
        .await
        .expect("the command stops by itself")
        .expect("the command runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`token_invalid`"),
        "names the code: {stderr}"
    );
    assert!(
        stderr.contains("refused the access token") && stderr.contains("--token-key"),
        "says what to check: {stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "no report for a run that never started"
    );
    assert_eq!(server.counts().participants, 0);
}

/// Reads `child`'s standard error until `count` lines contain `needle`.
async fn wait_for_lines(child: &mut Child, needle: &str, count: usize) -> Vec<String> {
    let stderr = child.stderr.take().expect("piped");
    let mut lines = BufReader::new(stderr).split(b'\r');
    let mut seen = Vec::new();
    let mut matching = 0;
    let found = tokio::time::timeout(PATIENCE, async {
        while let Ok(Some(line)) = lines.next_segment().await {
            let line = String::from_utf8_lossy(&line).into_owned();
            matching += usize::from(line.contains(needle));
            seen.push(line);
            if matching == count {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(found, Ok(true)),
        "never printed `{needle}`: {seen:?}"
    );
    // Keep draining, so the command never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_segment().await {} });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_ends_the_run_early_and_still_reports() {
    let server = server(None).await;
    let url = server.websocket_url();
    let json = temp_file("interrupted.json");
    let html = temp_file("interrupted.html");
    let mut child = loadtest(&[
        "--url",
        &url,
        "--publishers",
        "2",
        "--subscribers",
        "1",
        "--duration",
        "10m",
        "--json",
        json.to_str().expect("a UTF-8 path"),
        "--html",
        html.to_str().expect("a UTF-8 path"),
    ])
    .spawn()
    .expect("the command starts");
    // Measuring for a few seconds: the progress line counts down the window, once a second.
    wait_for_lines(&mut child, "s left", 3).await;
    let pid = child.id().expect("running").to_string();
    let signalled = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .expect("kill runs");
    assert!(signalled.success());
    let output = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("the command stops soon after Ctrl-C")
        .expect("it ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("joined     3/3 participants"), "{stdout}");
    assert!(stdout.contains("STOPPED"), "{stdout}");
    let report: loadtest::Report =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON report"))
            .expect("a report");
    assert!(report.run.interrupted);
    assert!(report.window_seconds < 300.0, "the window ended early");
    assert!(report.received.packets > 0, "it measured until stopped");
    let page = std::fs::read_to_string(&html).expect("the HTML report");
    assert!(page.contains("Stopped early"));
    let _ = std::fs::remove_file(&json);
    let _ = std::fs::remove_file(&html);
    server.shutdown().await.expect("the server shuts down");
}

/// The named scenario of the simulcast room of 25, shrunk to three participants and two
/// seconds, with one viewer behind a bandwidth limit: the table, the JSON and the HTML show
/// what each participant received on which layer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulcast_run_shows_the_layers_each_participant_received() {
    let server = server(None).await;
    let url = server.websocket_url();
    let json = temp_file("simulcast.json");
    let html = temp_file("simulcast.html");
    let output = loadtest(&[
        "--url",
        &url,
        "--scenario",
        "room-of-25-simulcast",
        "--publishers",
        "2",
        "--subscribers",
        "1",
        "--tile",
        "320x180",
        "--impaired",
        "1",
        "--bandwidth",
        "50M",
        "--ramp-up",
        "20",
        "--duration",
        "2s",
        "--quiet",
        "--json",
        json.to_str().expect("a UTF-8 path"),
        "--html",
        html.to_str().expect("a UTF-8 path"),
    ])
    .output();
    let output = tokio::time::timeout(PATIENCE, output)
        .await
        .expect("the command stops by itself")
        .expect("the command runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("video simulcast q/h/f"), "{stdout}");
    assert!(
        stdout.contains("every received video shown at 320x180"),
        "{stdout}"
    );
    assert!(
        stdout.contains("layers     video received, share of time:"),
        "{stdout}"
    );
    assert!(stdout.contains("subscriber-0-0 (impaired)"), "{stdout}");
    let report: loadtest::Report =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON report"))
            .expect("a report");
    assert!(report.scenario.simulcast);
    assert_eq!(report.per_receiver.len(), 3);
    assert!(
        report
            .per_receiver
            .iter()
            .all(|receiver| receiver.bytes > 0 && !receiver.layer_seconds.is_empty()),
        "{stdout}"
    );
    let page = std::fs::read_to_string(&html).expect("the HTML report");
    assert!(page.contains("What each participant received"));
    assert!(page.contains("subscriber-0-0 (impaired)"));
    let _ = std::fs::remove_file(&json);
    let _ = std::fs::remove_file(&html);
    server.shutdown().await.expect("the server shuts down");
}

#[tokio::test]
async fn merge_refuses_reports_that_are_not_the_shards_of_one_run() {
    let report = loadtest::Report::default();
    let path = temp_file("unsharded.json");
    std::fs::write(&path, serde_json::to_string(&report).expect("JSON")).expect("written");
    let path_text = path.to_str().expect("a UTF-8 path");
    let output = loadtest(&["merge", path_text, path_text])
        .output()
        .await
        .expect("the command runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("given twice"), "{stderr}");
    let _ = std::fs::remove_file(&path);
}

/// The README's command for testing a deployment, as written but for the addresses (this
/// test's server, over plain `ws://`: TLS has its own test) and a shorter run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_s_deployment_command_works() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let command = readme
        .lines()
        .find(|line| line.starts_with("cargo run -p loadtest") && line.contains("wss://"))
        .expect("the deployment command in README.md");
    let server = server(Some(SERVER_KEY)).await;
    let address = server.local_addr();
    let html = temp_file("readme.html");
    let command = command
        .replace(
            "cargo run -p loadtest --release --",
            env!("CARGO_BIN_EXE_loadtest"),
        )
        .replace("wss://sfu.example.org/ws", &format!("ws://{address}/ws"))
        .replace(
            "http://127.0.0.1:9180/metrics",
            &format!("http://{address}/metrics"),
        )
        .replace("smoke.html", html.to_str().expect("a UTF-8 path"));
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!("{command} --duration 2s --quiet"))
        .env("SWITCHYARD_AUTH_TOKEN_KEY", SERVER_KEY)
        .env("RUST_LOG", "error")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(PATIENCE, output)
        .await
        .expect("the command stops by itself")
        .expect("sh runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("joined     8/8 participants"), "{stdout}");
    assert!(
        !stdout.contains("METRICS"),
        "the metrics were read: {stdout}"
    );
    assert!(
        std::fs::read_to_string(&html).is_ok_and(|page| page.contains("<svg")),
        "the page is written"
    );
    let _ = std::fs::remove_file(&html);
}

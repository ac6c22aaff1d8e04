//! The `switchyard` command refuses a configuration it cannot use, naming the key, and starts
//! with one it can: the file, the environment and flags, in that order.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_switchyard");

/// A configuration file in a folder of its own, removed on drop.
struct ConfigFile {
    dir: PathBuf,
    path: PathBuf,
}

impl ConfigFile {
    fn new(name: &str, text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "switchyard-config-test-{}-{name}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("temporary folder");
        let path = dir.join("switchyard.toml");
        std::fs::write(&path, text).expect("write the file");
        Self { dir, path }
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The command with `args` and `env`, its output captured.
fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs the command with `args` and `env` to completion: a refused configuration exits at once.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let child = command(args, env).spawn().expect("the binary runs");
    wait_with_deadline(child, Duration::from_secs(20))
}

fn wait_with_deadline(mut child: Child, patience: Duration) -> Output {
    let deadline = Instant::now() + patience;
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "the command did not exit; it printed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts the configuration is refused with a message holding every one of `needles`.
fn assert_refused(output: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "a bad configuration exits with status 2; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("refusing to start"),
        "stderr says it refuses: {stderr}"
    );
    for needle in needles {
        assert!(stderr.contains(needle), "stderr names `{needle}`: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
}

#[test]
fn a_value_of_the_wrong_type_is_refused_naming_the_key_and_the_file() {
    let cases = [
        (
            "[limits]\nmax_rooms = \"many\"\n",
            "limits.max_rooms",
            "must be an integer",
        ),
        ("[http]\nlisten = 8080\n", "http.listen", "must be a string"),
        (
            "[media]\nips = \"127.0.0.1\"\n",
            "media.ips",
            "must be an array",
        ),
        (
            "[media]\nips = [\"localhost\"]\n",
            "media.ips",
            "IP addresses",
        ),
        ("[log]\njson = \"yes\"\n", "log.json", "true or false"),
        ("[ice]\nurls = [\"http://x\"]\n", "ice.urls", "stun:"),
        (
            "shutdown_grace_secs = -1\n",
            "shutdown_grace_secs",
            "between 0 and 60",
        ),
    ];
    for (index, (text, key, reason)) in cases.into_iter().enumerate() {
        let file = ConfigFile::new(&format!("type-{index}"), text);
        let path = file.path.to_str().expect("UTF-8 path");
        let output = run(&["--config", path], &[]);
        assert_refused(&output, &[key, reason, path]);
    }
}

#[test]
fn an_unknown_key_is_refused_with_a_suggestion() {
    let file = ConfigFile::new("unknown", "[limits]\nmax_room = 3\n");
    let output = run(&["--config", file.path.to_str().expect("UTF-8 path")], &[]);
    assert_refused(
        &output,
        &[
            "unknown key `limits.max_room`",
            "did you mean `limits.max_rooms`",
        ],
    );

    let file = ConfigFile::new("unknown-section", "[turn]\nsecret = \"x\"\n");
    let output = run(&["--config", file.path.to_str().expect("UTF-8 path")], &[]);
    assert_refused(&output, &["unknown key `turn`"]);
}

#[test]
fn a_media_port_or_transport_it_cannot_use_is_refused() {
    let file = ConfigFile::new("ports", "[media]\nudp_port = 70000\n");
    let output = run(&["--config", file.path.to_str().expect("UTF-8 path")], &[]);
    assert_refused(&output, &["media.udp_port", "between 0 and 65535", "70000"]);

    let output = run(&["--media-tcp-port", "65536"], &[]);
    assert_refused(
        &output,
        &["media.tcp_port", "--media-tcp-port", "between 0"],
    );

    let output = run(&["--media-transport", "sctp"], &[]);
    assert_refused(
        &output,
        &["media.transports", "--media-transport", "udp or tcp"],
    );

    let output = run(&[], &[("SWITCHYARD_MEDIA_TRANSPORTS", "")]);
    assert_refused(
        &output,
        &[
            "media.transports",
            "SWITCHYARD_MEDIA_TRANSPORTS",
            "udp, tcp or both",
        ],
    );
}

#[test]
fn the_environment_and_flags_name_themselves_when_refused() {
    let output = run(&[], &[("SWITCHYARD_LIMITS_MAX_ROOMS", "many")]);
    assert_refused(
        &output,
        &[
            "limits.max_rooms",
            "environment variable SWITCHYARD_LIMITS_MAX_ROOMS",
        ],
    );
    let output = run(&["--http", "nowhere"], &[]);
    assert_refused(&output, &["http.listen", "flag --http"]);
    let output = run(&["--token-key", "short"], &[]);
    assert_refused(&output, &["auth.token_key", "at least 32 bytes"]);
    let output = run(&["--config", "/nonexistent/switchyard.toml"], &[]);
    assert_refused(&output, &["/nonexistent/switchyard.toml"]);
}

#[test]
fn webhook_urls_without_a_key_are_refused() {
    let output = run(
        &[],
        &[("SWITCHYARD_WEBHOOKS_URLS", "https://app.example.com/hooks")],
    );
    assert_refused(
        &output,
        &[
            "`webhooks.key` is needed with webhooks.urls",
            "environment variable SWITCHYARD_WEBHOOKS_URLS",
        ],
    );
    let output = run(
        &[
            "--webhook-url",
            "https://app.example.com/hooks",
            "--webhook-key",
            "short",
        ],
        &[],
    );
    assert_refused(&output, &["webhooks.key", "at least 32 bytes"]);
    let file = ConfigFile::new(
        "webhook-url",
        "[webhooks]\nurls = [\"app.example.com/hooks\"]\nkey = \"0123456789abcdef0123456789abcdef\"\n",
    );
    let path = file.path.to_str().expect("UTF-8 path");
    let output = run(&["--config", path], &[]);
    assert_refused(&output, &["webhooks.urls", "app.example.com/hooks", path]);
}

/// Starts the command and waits for the line saying where it serves.
fn start(args: &[&str], env: &[(&str, &str)]) -> (Child, String) {
    let mut child = command(args, env)
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary runs");
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Ok(line) = lines_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.contains("switchyard is serving") {
            return (child, line);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server did not say it is serving");
}

#[test]
fn flags_override_the_environment_which_overrides_the_file() {
    let file = ConfigFile::new(
        "layers",
        "[http]\nlisten = \"127.0.0.1:1\"\n[log]\njson = true\n",
    );
    let path = file.path.to_str().expect("UTF-8 path");
    // The file says port 1, the environment says port 2, the flag says any free port: the
    // flag wins. The file's `log.json` stands, as nothing overrides it.
    let (mut child, line) = start(
        &[
            "--config",
            path,
            "--http",
            "127.0.0.1:0",
            "--media-ip",
            "127.0.0.1",
        ],
        &[("SWITCHYARD_HTTP_LISTEN", "127.0.0.1:2")],
    );
    let _ = child.kill();
    let _ = child.wait();
    let record: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    let http = record["fields"]["http"].as_str().expect("the http field");
    assert!(http.starts_with("127.0.0.1:"), "serving on {http}");
    assert!(
        !http.ends_with(":1") && !http.ends_with(":2"),
        "the flag won over the environment and the file: {http}"
    );
}

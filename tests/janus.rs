//! The load test's Janus adapter against a real Janus (Debian's `janus`), so that it cannot rot
//! unnoticed: one publisher and one subscriber for 5 s through Janus's VideoRoom, and the
//! subscriber must receive both tracks, intact, with less than 1 % loss.
//!
//! Janus gathers no ICE candidates on loopback, so the test needs a real interface: it runs
//! itself again inside a PID namespace and a network namespace of its own (`unshare`), where it
//! makes a second network namespace for Janus and joins the two with a veth pair, as
//! `bench/compare-janus.sh` does. Every packet stays on this machine, and when the test ends,
//! however it ends, the kernel stops Janus and removes the namespaces.
//!
//! Without Janus installed the test says so and passes; `scripts/test.sh` installs it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use loadtest::{Janus, RunOptions, Scenario, run};

/// Set in the copy of the test that runs inside the namespaces.
const INSIDE: &str = "SWITCHYARD_JANUS_TEST_INSIDE";
/// How long the whole test may take, namespaces and Janus included.
const DEADLINE: Duration = Duration::from_secs(120);
const JANUS_IP: &str = "10.98.0.1";
const LOADTEST_IP: &str = "10.98.0.2";
const JANUS_INTERFACE: &str = "janus0";
const LOADTEST_INTERFACE: &str = "loadtest0";
const JANUS_PORT: u16 = 8188;

#[test]
fn one_publisher_and_one_subscriber_through_janus() {
    if std::env::var_os(INSIDE).is_some() {
        inside();
        return;
    }
    let Some(janus) = find_janus() else {
        eprintln!("janus is not installed: the Janus adapter was not tested");
        return;
    };
    eprintln!("testing against {}", janus.display());
    // Into a file rather than a pipe, which could fill up while nobody reads it.
    let folder = TempFolder::new();
    let output = folder.path().join("output");
    let log = std::fs::File::create(&output).expect("an output file");
    let mut namespaces = Command::new("unshare");
    if !is_root() {
        namespaces.arg("--map-root-user");
    }
    let mut child = namespaces
        .args(["--net", "--pid", "--fork", "--kill-child", "--mount-proc"])
        .arg(std::env::current_exe().expect("the test binary's path"))
        .args([
            "--exact",
            "one_publisher_and_one_subscriber_through_janus",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INSIDE, "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("the output file"))
        .stderr(log)
        .spawn()
        .expect("unshare runs (util-linux)");
    let status = wait_for(&mut child, DEADLINE);
    // Indented, so that the inner run's own `test result:` line is not counted as a second test.
    let text: String = std::fs::read_to_string(&output)
        .unwrap_or_default()
        .lines()
        .map(|line| format!("    | {line}\n"))
        .collect();
    assert!(
        status.is_some_and(|status| status.success()),
        "the test inside the namespaces failed ({status:?}):\n{text}"
    );
    eprint!("{text}");
}

/// The test proper, inside a PID and a network namespace of its own.
fn inside() {
    let janus = find_janus().expect("janus, found outside");
    let network = Network::build();
    let folder = TempFolder::new();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/janus-config.sh");
    run_checked(
        Command::new("bash")
            .arg(&config)
            .arg(folder.path())
            .args([JANUS_IP, &JANUS_PORT.to_string()]),
    );
    let log = std::fs::File::create(folder.path().join("janus.log")).expect("a log file");
    let server = Server(
        network
            .in_janus_namespace(&janus)
            .arg("--configs-folder")
            .arg(folder.path())
            .arg("--config")
            .arg(folder.path().join("janus.jcfg"))
            .args(["--ice-enforce-list", JANUS_INTERFACE, "--disable-colors"])
            .stdout(log.try_clone().expect("the log file"))
            .stderr(log)
            .spawn()
            .expect("janus starts"),
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let report = runtime.block_on(async {
        wait_for_port(JANUS_IP, JANUS_PORT, Duration::from_secs(20)).await;
        let scenario = Scenario {
            rooms: 1,
            publishers: 1,
            subscribers: 1,
            video_bitrate: 500_000,
            duration: Duration::from_secs(5),
            pli_interval: Duration::from_secs(2),
            ..Scenario::default()
        };
        let mut options = RunOptions::new(format!("ws://{JANUS_IP}:{JANUS_PORT}"), scenario);
        options.target = Arc::new(Janus::default());
        options.media_ip = LOADTEST_IP.parse::<IpAddr>().expect("an address");
        options.server_pid = Some(server.0.id());
        run(options).await
    });
    let janus_log = std::fs::read_to_string(folder.path().join("janus.log")).unwrap_or_default();
    let report = report.unwrap_or_else(|error| panic!("the run failed: {error}\n{janus_log}"));
    let table = format!("{}\nJanus's log:\n{janus_log}", report.table());

    assert_eq!(report.target, "janus");
    assert_eq!(report.participants.joined, 2, "{table}");
    assert_eq!(report.participants.connected, 2, "{table}");
    assert_eq!(
        report.tracks.expected, 2,
        "the subscriber expects the publisher's video and audio"
    );
    assert_eq!(report.tracks.received, 2, "{table}");
    assert_eq!(report.tracks.corrupted_packets, 0, "{table}");
    assert_eq!(report.tracks.foreign_packets, 0, "{table}");
    for media in [&report.video, &report.audio] {
        assert_eq!(media.tracks, 1, "{table}");
        assert!(
            media.loss_worst < 0.01,
            "loss {}\n{table}",
            media.loss_worst
        );
        assert!(media.latency_ms.count > 0, "{table}");
        assert!(media.bitrate_mean_bps > 0.0, "{table}");
    }
    assert!(report.received.packets > 0, "{table}");
    assert!(
        report.server.cpu_seconds.is_some() && report.server.rss_bytes.is_some(),
        "Janus's CPU and memory were read from /proc\n{table}"
    );
    assert!(!report.srtp_profiles.is_empty(), "{table}");
    eprint!("{}", report.table());
}

/// Janus's namespace and the test's, joined by a veth pair.
struct Network {
    /// Holds Janus's network namespace open.
    holder: Child,
}

impl Network {
    fn build() -> Network {
        run_checked(Command::new("ip").args(["link", "set", "lo", "up"]));
        let holder = Command::new("unshare")
            .args(["--net", "sleep", "infinity"])
            .spawn()
            .expect("unshare runs");
        let network = Network { holder };
        let ours = std::fs::read_link("/proc/self/ns/net").expect("our network namespace");
        let theirs = format!("/proc/{}/ns/net", network.holder.id());
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_link(&theirs).ok().as_ref() == Some(&ours) {
            assert!(Instant::now() < deadline, "no network namespace for Janus");
            std::thread::sleep(Duration::from_millis(10));
        }
        let pid = network.holder.id().to_string();
        run_checked(Command::new("ip").args([
            "link",
            "add",
            LOADTEST_INTERFACE,
            "type",
            "veth",
            "peer",
            "name",
            JANUS_INTERFACE,
        ]));
        run_checked(Command::new("ip").args(["link", "set", JANUS_INTERFACE, "netns", &pid]));
        let janus_address = format!("{JANUS_IP}/30");
        let loadtest_address = format!("{LOADTEST_IP}/30");
        for (janus_side, command) in [
            (true, vec!["link", "set", "lo", "up"]),
            (
                true,
                vec!["addr", "add", &janus_address, "dev", JANUS_INTERFACE],
            ),
            (true, vec!["link", "set", JANUS_INTERFACE, "up"]),
            (
                false,
                vec!["addr", "add", &loadtest_address, "dev", LOADTEST_INTERFACE],
            ),
            (false, vec!["link", "set", LOADTEST_INTERFACE, "up"]),
        ] {
            let mut ip = if janus_side {
                network.in_janus_namespace(Path::new("ip"))
            } else {
                Command::new("ip")
            };
            run_checked(ip.args(command));
        }
        network
    }

    /// `program` to be run in Janus's network namespace.
    fn in_janus_namespace(&self, program: &Path) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net=/proc/{}/ns/net", self.holder.id()))
            .arg(program);
        command
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// A server process, stopped when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A folder removed when dropped.
struct TempFolder(PathBuf);

impl TempFolder {
    fn new() -> TempFolder {
        let path = std::env::temp_dir().join(format!(
            "switchyard-janus-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&path).expect("a temporary folder");
        TempFolder(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn find_janus() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|folder| folder.join("janus"))
        .find(|candidate| candidate.is_file())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("Uid:"))
                .map(|line| line.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn run_checked(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Waits for `child` to exit, up to `timeout`; kills it if it does not.
fn wait_for(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn wait_for_port(ip: &str, port: u16, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut retry = tokio::time::interval(Duration::from_millis(50));
    loop {
        if tokio::net::TcpStream::connect((ip, port)).await.is_ok() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Janus did not listen on {ip}:{port}"
        );
        retry.tick().await;
    }
}

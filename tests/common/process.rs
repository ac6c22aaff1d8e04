//! The real `switchyard` binary as a child process, for what only a process shows: signals,
//! exit codes and what it prints.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::PATIENCE;

/// A running `switchyard` process.
pub struct ServerProcess {
    child: Child,
    /// The HTTP address it serves on.
    pub address: SocketAddr,
    output: Arc<Mutex<String>>,
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("an ephemeral port")
        .port()
}

impl ServerProcess {
    /// Starts the binary with `args` and `env` (and no other `SWITCHYARD_*` variable), and
    /// waits until `/healthz` answers at
    /// `address` (which the arguments or environment must make it listen on).
    pub async fn start(address: SocketAddr, args: &[String], env: &[(String, String)]) -> Self {
        let mut server = Self::spawn(address, args, env);
        server.wait_until_healthy().await;
        server
    }

    /// Starts the binary as [`start`](Self::start) does, and waits until it says it serves
    /// (for a server that serves HTTPS, which `/healthz` over plain HTTP does not reach).
    pub async fn start_serving(
        address: SocketAddr,
        args: &[String],
        env: &[(String, String)],
    ) -> Self {
        let mut server = Self::spawn(address, args, env);
        server.wait_for_output("switchyard is serving").await;
        server
    }

    fn spawn(address: SocketAddr, args: &[String], env: &[(String, String)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
        command
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info,webrtc=warn,rtc=error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Only the settings the test gives: none leaks in from the environment it runs in.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SWITCHYARD_") {
                command.env_remove(key);
            }
        }
        // Media on ports the system picks, so that servers started side by side do not meet
        // on the default one; a test that cares sets its own.
        command
            .env("SWITCHYARD_MEDIA_UDP_PORT", "0")
            .env("SWITCHYARD_MEDIA_TCP_PORT", "0");
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("the server binary starts");
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|out| Box::new(out) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|err| Box::new(err) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = Arc::clone(&output);
            std::thread::spawn(move || collect(stream, &output));
        }
        ServerProcess {
            child,
            address,
            output,
        }
    }

    /// Waits until the process has printed `needle`.
    pub async fn wait_for_output(&mut self, needle: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !self.output().contains(needle) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the server exited with {status}:\n{}", self.output());
            }
            assert!(
                Instant::now() < deadline,
                "the server did not print `{needle}`:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_until_healthy(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok((200, _)) = super::http::get(self.address, "/healthz").await {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the server exited with {status}:\n{}", self.output());
            }
            assert!(
                Instant::now() < deadline,
                "the server did not answer /healthz at {}:\n{}",
                self.address,
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The signaling URL.
    pub fn websocket_url(&self) -> String {
        format!("ws://{}/ws", self.address)
    }

    /// Everything the process printed so far, stdout and stderr.
    pub fn output(&self) -> String {
        self.output.lock().clone()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Sends `signal`.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) with a valid signal number has no memory-safety requirements.
        let result = unsafe { libc::kill(pid, signal) };
        assert_eq!(result, 0, "signal {signal} was delivered");
    }

    /// Waits up to `timeout` for the process to exit; `None` if it is still running.
    pub async fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("the child can be waited for") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // A test that failed half-way must not leave a server behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn collect(mut stream: Box<dyn Read + Send>, output: &Mutex<String>) {
    let mut buffer = [0u8; 4096];
    while let Ok(read) = stream.read(&mut buffer) {
        if read == 0 {
            break;
        }
        output
            .lock()
            .push_str(&String::from_utf8_lossy(&buffer[..read]));
    }
}

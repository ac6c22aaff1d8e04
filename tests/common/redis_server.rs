//! A real `redis-server` on a loopback port, for the cluster tests: started, stopped and started
//! again on the same port, holding nothing on disk.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::PATIENCE;
use super::process::free_port;

/// A running `redis-server`.
pub struct RedisProcess {
    child: Option<Child>,
    /// The port it listens on, kept across restarts.
    pub port: u16,
    dir: PathBuf,
}

impl RedisProcess {
    /// Starts one on a free port and waits until it answers.
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("switchyard-redis-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("a directory for redis");
        let mut redis = Self {
            child: None,
            port: free_port(),
            dir,
        };
        redis.restart().await;
        redis
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills it at once, as a crash or a lost network would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) on the same port, empty, and waits until it answers.
    pub async fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (Debian's redis-server package)");
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while self.ping().await.is_err() {
            assert!(Instant::now() < deadline, "redis-server did not answer");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A connection for the test's own reads.
    pub async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await
    }

    /// The keys under the cluster's prefix, sorted.
    pub async fn keys(&self) -> Vec<String> {
        let mut connection = self.connection().await.expect("redis answers");
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg("switchyard:*")
            .query_async(&mut connection)
            .await
            .expect("KEYS");
        keys.sort();
        keys
    }

    async fn ping(&self) -> redis::RedisResult<String> {
        let mut connection = self.connection().await?;
        redis::cmd("PING").query_async(&mut connection).await
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

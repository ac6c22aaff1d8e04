//! What the server costs while it forwards: CPU time and memory from `/proc`, and its own
//! counters from `/metrics`.

use std::collections::HashMap;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Linux reports process CPU time in clock ticks of `USER_HZ`, which is 100 on every
/// architecture Linux supports today.
const TICKS_PER_SECOND: f64 = 100.0;

/// One look at the server.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it was taken.
    pub at: Instant,
    /// CPU seconds the process used so far (user + system), when a PID was given.
    pub cpu_seconds: Option<f64>,
    /// Resident memory in bytes, when a PID was given.
    pub rss_bytes: Option<u64>,
    /// The server's counters, when its metrics endpoint answered.
    pub metrics: HashMap<String, f64>,
}

/// Reads CPU time and RSS of `pid` and scrapes `metrics_url`.
pub async fn sample(pid: Option<u32>, metrics_url: Option<&str>) -> Sample {
    let at = Instant::now();
    let (cpu_seconds, rss_bytes) = match pid {
        Some(pid) => (cpu_seconds(pid), rss_bytes(pid)),
        None => (None, None),
    };
    let metrics = match metrics_url {
        Some(url) => scrape(url).await.unwrap_or_default(),
        None => HashMap::new(),
    };
    Sample {
        at,
        cpu_seconds,
        rss_bytes,
        metrics,
    }
}

/// User plus system CPU seconds of a process, from `/proc/PID/stat`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces; fields follow the last `)`.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15 (1-based in proc(5)).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// Resident set size of a process in bytes, from `/proc/PID/status`.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

/// Fetches a Prometheus text endpoint over plain HTTP and reads its unlabelled series.
pub async fn scrape(url: &str) -> Option<HashMap<String, f64>> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(index) => (&rest[..index], &rest[index..]),
        None => (rest, "/"),
    };
    let mut stream = TcpStream::connect(authority).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    Some(parse_prometheus(body))
}

/// The unlabelled series of a Prometheus text body.
pub fn parse_prometheus(body: &str) -> HashMap<String, f64> {
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.split_once(' ')?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// The metrics URL next to a signaling URL: `ws://host:port/ws` → `http://host:port/metrics`.
pub fn metrics_url(signaling_url: &str) -> Option<String> {
    let rest = signaling_url.strip_prefix("ws://")?;
    let authority = rest.split('/').next()?;
    Some(format!("http://{authority}/metrics"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_process() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).is_some());
        assert!(rss_bytes(pid).is_some_and(|bytes| bytes > 0));
        assert_eq!(cpu_seconds(u32::MAX), None);
    }

    #[test]
    fn parses_prometheus_text() {
        let metrics = parse_prometheus(
            "# HELP x y\n# TYPE x counter\nswitchyard_rtp_packets_out_total 42\nswitchyard_rooms 1\n",
        );
        assert_eq!(metrics["switchyard_rtp_packets_out_total"], 42.0);
        assert_eq!(metrics["switchyard_rooms"], 1.0);
    }

    #[test]
    fn metrics_live_next_to_signaling() {
        assert_eq!(
            metrics_url("ws://127.0.0.1:8080/ws").as_deref(),
            Some("http://127.0.0.1:8080/metrics")
        );
        assert_eq!(metrics_url("wss://example.org/ws"), None);
    }
}

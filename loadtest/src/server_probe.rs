//! What the server costs while it forwards: CPU time and memory from `/proc` when it runs on
//! this machine (or from its `process_` metrics when it does not), and its own counters from
//! `/metrics`, over HTTP or HTTPS.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Linux reports process CPU time in clock ticks of `USER_HZ`, which is 100 on every
/// architecture Linux supports today.
const TICKS_PER_SECOND: f64 = 100.0;

/// One look at the server.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it was taken.
    pub at: Instant,
    /// The same moment on the wall clock.
    pub wall: SystemTime,
    /// CPU seconds the process used so far (user + system): from `/proc` when a PID was given,
    /// else from the server's `process_cpu_seconds_total`.
    pub cpu_seconds: Option<f64>,
    /// Resident memory in bytes, from `/proc` or `process_resident_memory_bytes` likewise.
    pub rss_bytes: Option<u64>,
    /// The server's counters, when its metrics endpoint answered.
    pub metrics: HashMap<String, f64>,
}

/// Where the server's metrics are read from.
#[derive(Debug, Clone)]
pub struct MetricsEndpoint {
    /// The client, HTTP and HTTPS (rustls with ring).
    pub client: reqwest::Client,
    /// `http://host:port/metrics` or `https://...`.
    pub url: String,
}

impl MetricsEndpoint {
    /// An endpoint at `url`, trusting the system's certificate authorities and, when given,
    /// the PEM certificate `extra_root` (a test's self-signed one).
    pub fn new(url: String, extra_root: Option<&[u8]>) -> reqwest::Result<Self> {
        // reqwest leaves the choice of rustls provider to the program; this one uses ring,
        // as the server does. An error only means a provider is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder().timeout(SCRAPE_TIMEOUT);
        if let Some(pem) = extra_root {
            builder = builder.tls_certs_merge([reqwest::Certificate::from_pem(pem)?]);
        }
        Ok(Self {
            client: builder.build()?,
            url,
        })
    }

    /// An endpoint at `url`, over HTTPS with these TLS settings (the ones the signaling uses:
    /// the system's certificate authorities, or any certificate with `--insecure`).
    pub fn with_tls(url: String, tls: Arc<rustls::ClientConfig>) -> reqwest::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(SCRAPE_TIMEOUT)
            .tls_backend_preconfigured(Arc::unwrap_or_clone(tls))
            .build()?;
        Ok(Self { client, url })
    }

    /// Fetches and reads the endpoint.
    pub async fn scrape(&self) -> reqwest::Result<HashMap<String, f64>> {
        let body = self
            .client
            .get(&self.url)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(parse_prometheus(&body))
    }
}

/// How long one scrape of `/metrics` may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads CPU time and RSS of `pid` and scrapes `metrics`.
pub async fn sample(pid: Option<u32>, metrics: Option<&MetricsEndpoint>) -> Sample {
    let at = Instant::now();
    let wall = SystemTime::now();
    let metrics = match metrics {
        Some(endpoint) => endpoint.scrape().await.unwrap_or_default(),
        None => HashMap::new(),
    };
    let (cpu_seconds, rss_bytes) = match pid {
        Some(pid) => (cpu_seconds(pid), rss_bytes(pid)),
        None => (
            metrics.get("process_cpu_seconds_total").copied(),
            metrics
                .get("process_resident_memory_bytes")
                .map(|bytes| *bytes as u64),
        ),
    };
    Sample {
        at,
        wall,
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

/// The unlabelled series of a Prometheus or OpenMetrics text body, by the name of the sample
/// (a counter's ends in `_total`).
pub fn parse_prometheus(body: &str) -> HashMap<String, f64> {
    let lines = body.lines().map(|line| Ok(line.to_owned()));
    let Ok(scrape) = prometheus_parse::Scrape::parse(lines) else {
        return HashMap::new();
    };
    scrape
        .samples
        .into_iter()
        .filter(|sample| sample.labels.is_empty())
        .filter_map(|sample| match sample.value {
            prometheus_parse::Value::Counter(value)
            | prometheus_parse::Value::Gauge(value)
            | prometheus_parse::Value::Untyped(value) => Some((sample.metric, value)),
            _ => None,
        })
        .collect()
}

/// The metrics URL next to a signaling URL: `ws://host:port/ws` → `http://host:port/metrics`,
/// `wss://` → `https://`.
pub fn metrics_url(signaling_url: &str) -> Option<String> {
    let (scheme, rest) = match signaling_url.split_once("://")? {
        ("ws", rest) => ("http", rest),
        ("wss", rest) => ("https", rest),
        _ => return None,
    };
    let authority = rest.split('/').next()?;
    Some(format!("{scheme}://{authority}/metrics"))
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
            "# HELP x y\n# TYPE x counter\nswitchyard_rtp_packets_out_total 42\nswitchyard_rooms 1\n\
             x_bucket{le=\"1\"} 3\n# EOF\n",
        );
        assert_eq!(metrics["switchyard_rtp_packets_out_total"], 42.0);
        assert_eq!(metrics["switchyard_rooms"], 1.0);
        assert!(
            !metrics.contains_key("x_bucket"),
            "labelled series are left out"
        );
    }

    #[test]
    fn metrics_live_next_to_signaling() {
        assert_eq!(
            metrics_url("ws://127.0.0.1:8080/ws").as_deref(),
            Some("http://127.0.0.1:8080/metrics")
        );
        assert_eq!(
            metrics_url("wss://example.org/ws").as_deref(),
            Some("https://example.org/metrics")
        );
        assert_eq!(metrics_url("http://example.org/ws"), None);
    }
}

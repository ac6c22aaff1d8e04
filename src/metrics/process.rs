//! The standard `process_` series every Prometheus client library exports, read from `/proc`
//! at each scrape: what the server costs, for a remote load test or a Prometheus to read.

use std::fmt;

use procfs::process::{LimitValue, Process};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Reads this process's CPU time, memory, threads and file descriptors when scraped. Where
/// `/proc` is missing (not Linux), it adds nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessCollector;

/// One look at the process.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessSample {
    /// User plus system CPU seconds.
    pub cpu_seconds: f64,
    /// Resident memory in bytes.
    pub resident_memory_bytes: u64,
    /// Virtual memory in bytes.
    pub virtual_memory_bytes: u64,
    /// Threads.
    pub threads: i64,
    /// Open file descriptors.
    pub open_fds: usize,
    /// The soft limit on open file descriptors; `None` when unlimited.
    pub max_fds: Option<u64>,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time_seconds: u64,
}

impl ProcessSample {
    /// This process, now.
    pub fn read() -> procfs::ProcResult<Self> {
        let me = Process::myself()?;
        let stat = me.stat()?;
        let ticks = procfs::ticks_per_second() as f64;
        let max_fds = match me.limits()?.max_open_files.soft_limit {
            LimitValue::Value(limit) => Some(limit),
            LimitValue::Unlimited => None,
        };
        Ok(Self {
            cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
            resident_memory_bytes: stat.rss * procfs::page_size(),
            virtual_memory_bytes: stat.vsize,
            threads: stat.num_threads,
            open_fds: me.fd_count()?,
            max_fds,
            start_time_seconds: procfs::boot_time_secs()?
                + stat.starttime / procfs::ticks_per_second(),
        })
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let Ok(sample) = ProcessSample::read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(sample.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                Some(sample.resident_memory_bytes as i64),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                Some(sample.virtual_memory_bytes as i64),
            ),
            (
                "process_threads",
                "Number of OS threads",
                Some(sample.threads),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                Some(sample.open_fds as i64),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                sample.max_fds.map(|limit| limit as i64),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                Some(sample.start_time_seconds as i64),
            ),
        ];
        for (name, help, value) in gauges {
            let Some(value) = value else { continue };
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let sample = ProcessSample::read().expect("/proc/self");
        assert!(sample.resident_memory_bytes > 0);
        assert!(sample.virtual_memory_bytes >= sample.resident_memory_bytes);
        assert!(sample.threads >= 1);
        assert!(sample.open_fds >= 3, "stdin, stdout and stderr at least");
    }
}

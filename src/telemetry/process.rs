//! `otelcol_process_*`: the agent's own uptime, RSS and CPU time, read from
//! `/proc/self` at scrape time.

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub(super) struct ProcessMetrics {
    started: Instant,
    uptime: Counter<f64, AtomicU64>,
    cpu_seconds: Counter<f64, AtomicU64>,
    memory_rss: Gauge,
}

impl ProcessMetrics {
    pub(super) fn register(registry: &mut Registry) -> ProcessMetrics {
        let metrics = ProcessMetrics {
            started: Instant::now(),
            uptime: Counter::default(),
            cpu_seconds: Counter::default(),
            memory_rss: Gauge::default(),
        };
        registry.register("otelcol_process_uptime", "Uptime of the process in seconds", metrics.uptime.clone());
        registry.register(
            "otelcol_process_cpu_seconds",
            "Total CPU user and system time in seconds",
            metrics.cpu_seconds.clone(),
        );
        registry.register(
            "otelcol_process_memory_rss",
            "Total physical memory (resident set size) in bytes",
            metrics.memory_rss.clone(),
        );
        metrics
    }

    pub(super) fn refresh(&self) {
        advance_to(&self.uptime, self.started.elapsed().as_secs_f64());
        if let Some(usage) = read_self_usage() {
            advance_to(&self.cpu_seconds, usage.cpu_seconds);
            self.memory_rss.set(usage.rss_bytes as i64);
        }
    }
}

/// Counters only go up: add the difference to a reading that grows.
fn advance_to(counter: &Counter<f64, AtomicU64>, value: f64) {
    let delta = value - counter.get();
    if delta > 0.0 {
        counter.inc_by(delta);
    }
}

pub(crate) struct Usage {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
}

/// Reads CPU time and RSS from `/proc/self/stat`, with the hostmetrics receiver's parser.
pub(crate) fn read_self_usage() -> Option<Usage> {
    use crate::receivers::hostmetrics::{memory::page_size, procfs::parse_pid_stat};
    let stat = parse_pid_stat(&std::fs::read("/proc/self/stat").ok()?)?;
    // USER_HZ is 100 on every Linux architecture ocelot targets.
    Some(Usage {
        cpu_seconds: stat.utime.saturating_add(stat.stime) as f64 / 100.0,
        rss_bytes: stat.rss_pages.saturating_mul(page_size()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_usage() {
        let usage = read_self_usage().unwrap();
        assert!(usage.rss_bytes > 1 << 20, "rss {}", usage.rss_bytes);
        assert!(usage.cpu_seconds >= 0.0);
    }
}

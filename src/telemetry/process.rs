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

/// Reads CPU time from `/proc/self/stat` and RSS from `/proc/self/status`.
pub(crate) fn read_self_usage() -> Option<Usage> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let rss_kib: u64 =
        status.lines().find_map(|line| line.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()?;
    // USER_HZ is 100 on every Linux architecture ocelot targets.
    Some(Usage { cpu_seconds: ticks as f64 / 100.0, rss_bytes: rss_kib * 1024 })
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

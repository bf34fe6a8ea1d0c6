//! The `processes` scraper: processes by status (from the process table's state
//! letters, with `running` and `blocked` from `/proc/stat` as upstream) and
//! processes created since boot.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::metrics::v1::Metric;

use super::procfs::Table;
use super::{Tick, Toggles, attribute, int_point, sum};

pub const METRICS: &[(&str, bool)] = &[("system.processes.count", true), ("system.processes.created", true)];

/// The upstream status for a state letter.
pub fn status(state: u8) -> &'static str {
    match state {
        b'D' | b'U' => "blocked",
        b'R' => "running",
        b'S' => "sleeping",
        b'T' | b't' => "stopped",
        b'Z' => "zombies",
        b'I' => "idle",
        b'W' => "paging",
        b'A' => "daemon",
        b'E' => "detached",
        b'L' => "locked",
        b'O' => "orphan",
        b'Y' => "system",
        _ => "unknown",
    }
}

pub struct Scraper {
    toggles: Toggles,
}

impl Scraper {
    pub fn new(toggles: Toggles) -> Scraper {
        Scraper { toggles }
    }

    /// Whether this scraper needs the process table.
    pub fn needs_table(&self) -> bool {
        self.toggles.on("system.processes.count")
    }

    pub fn scrape(&mut self, tick: &Tick, table: &Table) -> Result<Vec<Metric>, String> {
        let stat = tick.stat()?;
        let field = |name: &str| -> Result<i64, String> {
            stat.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| format!("/proc/stat has no {name} line"))
        };
        let mut out = Vec::new();
        if self.toggles.on("system.processes.count") {
            let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
            for entry in &table.entries {
                *counts.entry(status(entry.state)).or_default() += 1;
            }
            // The kernel's own counts of runnable and uninterruptible tasks.
            counts.insert("running", field("procs_running")?);
            counts.insert("blocked", field("procs_blocked")?);
            let points = counts
                .into_iter()
                .map(|(status, n)| int_point(n, vec![attribute("status", status)], tick.boot, tick.now))
                .collect();
            out.push(sum(
                "system.processes.count",
                "Total number of processes in each state.",
                "{processes}",
                false,
                points,
            ));
        }
        if self.toggles.on("system.processes.created") {
            let created = field("processes")?;
            out.push(sum(
                "system.processes.created",
                "Total number of created processes.",
                "{processes}",
                true,
                vec![int_point(created, vec![], tick.boot, tick.now)],
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::MetricToggles;
    use super::super::procfs::Walker;
    use super::super::{fixture, values};
    use super::*;

    #[test]
    fn golden_process_counts() {
        let mut walker = Walker::new(&fixture());
        let mut table = Table::default();
        walker.walk(&mut table).unwrap();
        let mut s = Scraper::new(Toggles::new(METRICS, &MetricToggles::new()));
        let m = s.scrape(&Tick::new(&fixture(), 1, 2), &table).unwrap();
        let counts: Vec<(String, f64)> = values(&m[0]).into_iter().map(|(a, v)| (a[0].1.clone(), v)).collect();
        let expected = [("blocked", 1.0), ("idle", 1.0), ("running", 3.0), ("sleeping", 3.0)];
        assert_eq!(counts, expected.map(|(s, v)| (s.to_string(), v)), "running and blocked from /proc/stat");
        assert_eq!(values(&m[1])[0].1, 4242.0);
        assert_eq!(status(b'Z'), "zombies");
        assert_eq!(status(b'X'), "unknown");
    }
}

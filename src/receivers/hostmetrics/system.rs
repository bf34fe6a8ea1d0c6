//! The `system` scraper: `system.uptime`, the seconds since the host booted (the
//! `btime` of its `/proc/stat`, as upstream takes it through gopsutil).

use opentelemetry_proto::tonic::metrics::v1::Metric;

use super::{Tick, Toggles, gauge, point};

pub const METRICS: &[(&str, bool)] = &[("system.uptime", true)];

pub struct Scraper {
    toggles: Toggles,
}

impl Scraper {
    pub fn new(toggles: Toggles) -> Scraper {
        Scraper { toggles }
    }

    pub fn scrape(&mut self, tick: &Tick) -> Result<Vec<Metric>, String> {
        let mut out = vec![uptime(tick.boot, tick.now)];
        out.retain(|m| self.toggles.on(&m.name));
        Ok(out)
    }
}

/// Seconds from `boot` to `now` (both ns since the epoch), whole as upstream reports them.
fn uptime(boot: u64, now: u64) -> Metric {
    let seconds = now.saturating_sub(boot) / 1_000_000_000;
    gauge("system.uptime", "The time the system has been running", "s", vec![point(seconds as f64, vec![], 0, now)])
}

#[cfg(test)]
mod tests {
    use super::super::{boot_time, fixture, values};
    use super::*;

    #[test]
    fn golden_uptime_from_the_fixture_hosts_boot_time() {
        let boot = boot_time(&fixture()).unwrap();
        let metric = uptime(boot, boot + 3_600_500_000_000);
        assert_eq!((metric.name.as_str(), metric.unit.as_str()), ("system.uptime", "s"));
        assert_eq!(values(&metric), vec![(vec![], 3600.0)]);
        assert_eq!(values(&uptime(boot, boot - 1))[0].1, 0.0, "a clock behind the boot time is 0, not a wrap");
    }
}

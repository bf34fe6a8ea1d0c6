//! The `load` scraper: `system.cpu.load_average.{1m,5m,15m}` from `/proc/loadavg`,
//! divided by the number of CPUs with `cpu_average`.

use opentelemetry_proto::tonic::metrics::v1::Metric;

use super::{Tick, Toggles, gauge, point, read_proc};

/// The three load averages.
pub fn parse_loadavg(text: &str) -> Result<[f64; 3], String> {
    let mut fields = text.split_ascii_whitespace().map(|f| f.parse::<f64>());
    let mut next = |which: &str| match fields.next() {
        Some(Ok(v)) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("/proc/loadavg: no valid {which} average")),
    };
    Ok([next("1m")?, next("5m")?, next("15m")?])
}

pub const METRICS: &[(&str, bool)] = &[
    ("system.cpu.load_average.1m", true),
    ("system.cpu.load_average.5m", true),
    ("system.cpu.load_average.15m", true),
];

pub struct Scraper {
    toggles: Toggles,
    cpu_average: bool,
}

impl Scraper {
    pub fn new(toggles: Toggles, cpu_average: bool) -> Scraper {
        Scraper { toggles, cpu_average }
    }

    pub fn scrape(&mut self, tick: &Tick) -> Result<Vec<Metric>, String> {
        let load = parse_loadavg(&read_proc(tick.root, "loadavg")?)?;
        // The host's CPUs (the cpuN lines of its /proc/stat), not the agent's share.
        let cpus = match self.cpu_average {
            true => Some(super::cpu::parse_stat(tick.stat()?)?.len()),
            false => None,
        };
        let mut out = metrics(load, cpus, tick.now);
        out.retain(|m| self.toggles.on(&m.name));
        Ok(out)
    }
}

pub fn metrics(load: [f64; 3], cpus: Option<usize>, now: u64) -> Vec<Metric> {
    let divisor = cpus.filter(|n| *n > 0).map_or(1.0, |n| n as f64);
    ["1m", "5m", "15m"]
        .iter()
        .zip(load)
        .map(|(window, value)| {
            gauge(
                &format!("system.cpu.load_average.{window}"),
                &format!("Average CPU Load over {}.", window.replace('m', " minute(s)")),
                "{thread}",
                vec![point(value / divisor, vec![], 0, now)],
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{fixture, read_proc, values};
    use super::*;

    #[test]
    fn golden_load_averages() {
        let load = parse_loadavg(&read_proc(&fixture(), "loadavg").unwrap()).unwrap();
        assert_eq!(load, [0.52, 0.58, 0.59]);
        let m = metrics(load, Some(2), 5);
        assert_eq!(m[2].name, "system.cpu.load_average.15m");
        assert_eq!(values(&m[0])[0].1, 0.26);
        assert!(parse_loadavg("0.5 x 1").is_err());
        assert!(parse_loadavg("").is_err());
    }
}

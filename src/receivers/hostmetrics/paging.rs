//! The `paging` scraper: swap space per device from `/proc/swaps`, paging and fault
//! counters from `/proc/vmstat`. Both are read under `root_path` (upstream reads the
//! agent's own `/proc/swaps`), and the counters are the kernel's, not multiplied by
//! 4096 as upstream's gopsutil does.

use std::collections::HashMap;

use opentelemetry_proto::tonic::metrics::v1::Metric;

use super::{Tick, Toggles, attribute, gauge, int_point, point, read_proc, sum};

pub const METRICS: &[(&str, bool)] = &[
    ("system.paging.usage", true),
    ("system.paging.operations", true),
    ("system.paging.faults", true),
    ("system.paging.utilization", false),
];

/// One swap area: (device, size, used) in bytes.
pub type Swap = (String, u64, u64);

/// The swap areas of `/proc/swaps`.
pub fn parse_swaps(text: &str) -> Result<Vec<Swap>, String> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split_ascii_whitespace().collect();
    if header.get(..4) != Some(&["Filename", "Type", "Size", "Used"][..]) {
        return Err(format!("/proc/swaps: unexpected header {header:?}"));
    }
    let mut out = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let (Some(name), Some(Ok(size)), Some(Ok(used))) =
            (fields.first(), fields.get(2).map(|f| f.parse::<u64>()), fields.get(3).map(|f| f.parse::<u64>()))
        else {
            return Err(format!("/proc/swaps: malformed line `{line}`"));
        };
        out.push((super::filesystem::unescape(name), size.saturating_mul(1024), used.saturating_mul(1024)));
    }
    Ok(out)
}

/// `/proc/vmstat` as name → count.
pub fn parse_vmstat(text: &str) -> HashMap<&str, u64> {
    text.lines().filter_map(|l| l.split_once(' ')).filter_map(|(k, v)| v.trim().parse().ok().map(|v| (k, v))).collect()
}

pub struct Scraper {
    toggles: Toggles,
}

impl Scraper {
    pub fn new(toggles: Toggles) -> Scraper {
        Scraper { toggles }
    }

    /// The metrics that could be read, and what could not: swap usage and the paging
    /// counters fail apart.
    pub fn scrape(&mut self, tick: &Tick) -> (Vec<Metric>, Vec<String>) {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        if let Err(e) = self.usage(tick, &mut out) {
            errors.push(e);
        }
        if let Err(e) = self.counters(tick, &mut out) {
            errors.push(e);
        }
        (out, errors)
    }

    fn usage(&self, tick: &Tick, out: &mut Vec<Metric>) -> Result<(), String> {
        let (start, now) = (tick.boot, tick.now);
        let (usage, utilization) =
            (self.toggles.on("system.paging.usage"), self.toggles.on("system.paging.utilization"));
        if !usage && !utilization {
            return Ok(());
        }
        // A kernel built without swap has no /proc/swaps: no swap devices.
        let swaps = match super::proc_path(tick.root).join("swaps").exists() {
            true => parse_swaps(&read_proc(tick.root, "swaps")?)?,
            false => Vec::new(),
        };
        if swaps.is_empty() {
            return Ok(());
        }
        let states = |(device, size, used): &Swap| {
            [("used", *used), ("free", size.saturating_sub(*used))].map(|(state, v)| (device.clone(), state, v, *size))
        };
        let labels = |device: &str, state: &str| vec![attribute("device", device), attribute("state", state)];
        if usage {
            let points = swaps
                .iter()
                .flat_map(states)
                .map(|(d, s, v, _)| int_point(v.min(i64::MAX as u64) as i64, labels(&d, s), start, now))
                .collect();
            out.push(sum("system.paging.usage", "Swap (unix) or pagefile (windows) usage.", "By", false, points));
        }
        if utilization {
            let points = swaps
                .iter()
                .flat_map(states)
                .map(|(d, s, v, size)| {
                    let ratio = if size > 0 { v as f64 / size as f64 } else { 0.0 };
                    point(ratio, labels(&d, s), 0, now)
                })
                .collect();
            out.push(gauge("system.paging.utilization", "Swap (unix) or pagefile (windows) utilization.", "1", points));
        }
        Ok(())
    }

    fn counters(&self, tick: &Tick, out: &mut Vec<Metric>) -> Result<(), String> {
        let (start, now) = (tick.boot, tick.now);
        let (operations, faults) =
            (self.toggles.on("system.paging.operations"), self.toggles.on("system.paging.faults"));
        if !operations && !faults {
            return Ok(());
        }
        let text = read_proc(tick.root, "vmstat")?;
        let vm = parse_vmstat(&text);
        let get = |k: &str| vm.get(k).copied().unwrap_or(0).min(i64::MAX as u64) as i64;
        if operations {
            let points = [
                ("page_in", "major", get("pswpin")),
                ("page_out", "major", get("pswpout")),
                ("page_in", "minor", get("pgpgin")),
                ("page_out", "minor", get("pgpgout")),
            ]
            .map(|(dir, kind, v)| int_point(v, vec![attribute("direction", dir), attribute("type", kind)], start, now));
            out.push(sum(
                "system.paging.operations",
                "The number of paging operations.",
                "{operations}",
                true,
                points.into(),
            ));
        }
        if faults {
            let major = get("pgmajfault");
            let points = [("major", major), ("minor", get("pgfault").saturating_sub(major).max(0))]
                .map(|(kind, v)| int_point(v, vec![attribute("type", kind)], start, now));
            out.push(sum("system.paging.faults", "The number of page faults.", "{faults}", true, points.into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::{Enabled, MetricToggles};
    use super::super::{fixture, values};
    use super::*;

    #[test]
    fn golden_swap_and_counters() {
        let toggles: MetricToggles = [("system.paging.utilization".to_string(), Enabled { enabled: true })].into();
        let mut s = Scraper::new(Toggles::new(METRICS, &toggles));
        let (m, errors) = s.scrape(&Tick::new(&fixture(), 1, 2));
        assert!(errors.is_empty(), "{errors:?}");
        let usage = values(&m[0]);
        assert_eq!(usage.len(), 4);
        assert_eq!(usage[0].0, [("device".into(), "/dev/sda3".into()), ("state".into(), "used".into())]);
        assert_eq!((usage[0].1, usage[1].1), (1024.0 * 1024.0, (8_388_604.0 - 1024.0) * 1024.0));
        assert_eq!(usage[2].0[0].1, "/swap file");
        assert_eq!(values(&m[1])[0].1, 1024.0 / 8_388_604.0);
        let ops: Vec<f64> = values(&m[2]).into_iter().map(|(_, v)| v).collect();
        assert_eq!(ops, [11.0, 22.0, 3333.0, 4444.0]);
        let faults: Vec<f64> = values(&m[3]).into_iter().map(|(_, v)| v).collect();
        assert_eq!(faults, [55.0, 99_945.0]);
        assert!(parse_swaps("Name Size\n").is_err());
        assert!(parse_swaps("Filename Type Size Used Priority\n/dev/x partition x 1 -2\n").is_err());
    }
}

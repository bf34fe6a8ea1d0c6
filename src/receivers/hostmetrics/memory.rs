//! The `memory` scraper: `system.memory.usage{state}` (and optional utilization and
//! limit) from `/proc/meminfo`, with upstream's states: `used` is MemTotal −
//! MemAvailable, `cached` includes SReclaimable as gopsutil counts it.

use std::collections::HashMap;

use opentelemetry_proto::tonic::metrics::v1::Metric;

use super::{Tick, Toggles, attribute, gauge, int_point, point, read_proc, sum};

/// `/proc/meminfo` as bytes, by key.
pub fn parse_meminfo(text: &str) -> Result<HashMap<String, u64>, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else { continue };
        let mut fields = rest.split_ascii_whitespace();
        let Some(number) = fields.next() else { continue };
        let value: u64 = number.parse().map_err(|e| format!("/proc/meminfo `{key}`: {e}"))?;
        let bytes = if fields.next() == Some("kB") { value.saturating_mul(1024) } else { value };
        out.insert(key.to_string(), bytes);
    }
    if !out.contains_key("MemTotal") {
        return Err("/proc/meminfo has no MemTotal".into());
    }
    Ok(out)
}

pub const METRICS: &[(&str, bool)] = &[
    ("system.memory.usage", true),
    ("system.memory.utilization", false),
    ("system.memory.limit", false),
    ("system.memory.page_size", false),
    ("system.linux.memory.available", false),
    ("system.linux.memory.dirty", false),
    ("system.memory.linux.shared", false),
    ("system.memory.linux.hugepages.limit", false),
    ("system.memory.linux.hugepages.usage", false),
    ("system.memory.linux.hugepages.reserved", false),
    ("system.memory.linux.hugepages.surplus", false),
    ("system.memory.linux.hugepages.page_size", false),
    ("system.memory.linux.hugepages.utilization", false),
];

pub struct Scraper {
    toggles: Toggles,
}

impl Scraper {
    pub fn new(toggles: Toggles) -> Scraper {
        Scraper { toggles }
    }

    pub fn scrape(&mut self, tick: &Tick) -> Result<Vec<Metric>, String> {
        let info = parse_meminfo(&read_proc(tick.root, "meminfo")?)?;
        Ok(metrics(&info, &self.toggles, tick.boot, tick.now))
    }
}

/// The memory metrics that are on, from `/proc/meminfo` values in bytes (huge page
/// counts stay counts).
pub fn metrics(info: &HashMap<String, u64>, toggles: &Toggles, start: u64, now: u64) -> Vec<Metric> {
    let get = |key: &str| info.get(key).copied().unwrap_or(0);
    let total = get("MemTotal");
    let available = info
        .get("MemAvailable")
        .copied()
        .unwrap_or(get("MemFree").saturating_add(get("Buffers")).saturating_add(get("Cached")));
    let states = [
        ("used", total.saturating_sub(available)),
        ("free", get("MemFree")),
        ("buffered", get("Buffers")),
        ("cached", get("Cached").saturating_add(get("SReclaimable"))),
        ("slab_reclaimable", get("SReclaimable")),
        ("slab_unreclaimable", get("SUnreclaim")),
    ];
    let one = |value: u64| vec![int_point(value as i64, vec![], start, now)];
    let now_only = |value: u64| vec![int_point(value as i64, vec![], 0, now)];
    let mut out = Vec::new();
    for name in toggles.0.iter().copied() {
        let metric = match name {
            "system.memory.usage" => sum(
                name,
                "Bytes of memory in use.",
                "By",
                false,
                states.iter().map(|(s, v)| int_point(*v as i64, vec![attribute("state", s)], start, now)).collect(),
            ),
            "system.memory.utilization" if total > 0 => gauge(
                name,
                "Percentage of memory bytes in use.",
                "1",
                states
                    .iter()
                    .map(|(s, v)| point(*v as f64 / total as f64, vec![attribute("state", s)], 0, now))
                    .collect(),
            ),
            "system.memory.limit" => sum(name, "Total bytes of memory available.", "By", false, one(total)),
            "system.memory.page_size" => gauge(name, "The size of a memory page.", "By", now_only(page_size())),
            "system.linux.memory.available" => sum(
                name,
                "An estimate of how much memory is available for starting new applications, without swapping.",
                "By",
                false,
                one(available),
            ),
            "system.linux.memory.dirty" => {
                sum(name, "The amount of dirty memory according to `/proc/meminfo`.", "By", false, one(get("Dirty")))
            }
            "system.memory.linux.shared" => {
                sum(name, "Shared memory used (mostly by tmpfs).", "By", false, one(get("Shmem")))
            }
            "system.memory.linux.hugepages.limit" => {
                sum(name, "Total numer of available pages.", "{page}", false, one(get("HugePages_Total")))
            }
            "system.memory.linux.hugepages.usage" | "system.memory.linux.hugepages.utilization" => {
                let (total, free) = (get("HugePages_Total"), get("HugePages_Free"));
                let states = [("free", free), ("used", total.saturating_sub(free))];
                let key = "system.memory.linux.hugepages.state";
                if name.ends_with("usage") {
                    sum(
                        name,
                        "Number of hugepages in use by state.",
                        "{page}",
                        false,
                        states.iter().map(|(s, v)| int_point(*v as i64, vec![attribute(key, s)], start, now)).collect(),
                    )
                } else if total > 0 {
                    gauge(
                        name,
                        "Percentage of hugepages in use by state.",
                        "1",
                        states
                            .iter()
                            .map(|(s, v)| point(*v as f64 / total as f64, vec![attribute(key, s)], 0, now))
                            .collect(),
                    )
                } else {
                    continue;
                }
            }
            "system.memory.linux.hugepages.reserved" => gauge(
                name,
                "Number of hugepages reserved but not yet allocated.",
                "{page}",
                now_only(get("HugePages_Rsvd")),
            ),
            "system.memory.linux.hugepages.surplus" => gauge(
                name,
                "Number of hugepages above the configured limit.",
                "{page}",
                now_only(get("HugePages_Surp")),
            ),
            "system.memory.linux.hugepages.page_size" => {
                gauge(name, "The size of a hugepage.", "By", now_only(get("Hugepagesize")))
            }
            _ => continue,
        };
        out.push(metric);
    }
    out
}

/// The size of a memory page in bytes.
pub fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant of the running kernel and has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as u64 } else { 4096 }
}

#[cfg(test)]
mod tests {
    use super::super::{fixture, read_proc, values};
    use super::*;

    #[test]
    fn golden_memory_states() {
        let info = parse_meminfo(&read_proc(&fixture(), "meminfo").unwrap()).unwrap();
        let on = |n: &str| (n.to_string(), super::super::config::Enabled { enabled: true });
        let toggles = Toggles::new(
            METRICS,
            &[
                on("system.memory.utilization"),
                on("system.memory.limit"),
                on("system.memory.linux.hugepages.usage"),
                on("system.linux.memory.dirty"),
            ]
            .into(),
        );
        let m = metrics(&info, &toggles, 1, 2);
        assert_eq!(
            m.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            [
                "system.memory.usage",
                "system.memory.utilization",
                "system.memory.limit",
                "system.linux.memory.dirty",
                "system.memory.linux.hugepages.usage",
            ]
        );
        let usage: std::collections::BTreeMap<String, f64> =
            values(&m[0]).into_iter().map(|(a, v)| (a[0].1.clone(), v)).collect();
        assert_eq!(usage["used"], (16_384_000.0 - 8_192_000.0) * 1024.0);
        assert_eq!(usage["free"], 2_048_000.0 * 1024.0);
        assert_eq!(usage["buffered"], 512_000.0 * 1024.0);
        assert_eq!(usage["cached"], (4_096_000.0 + 640_000.0) * 1024.0);
        assert_eq!(usage["slab_unreclaimable"], 128_000.0 * 1024.0);
        assert_eq!(values(&m[1]).iter().find(|(a, _)| a[0].1 == "used").unwrap().1, 0.5);
        assert_eq!(values(&m[2])[0].1, 16_384_000.0 * 1024.0);
        assert_eq!(values(&m[3])[0].1, 1024.0 * 1024.0);
        let huge: Vec<f64> = values(&m[4]).into_iter().map(|(_, v)| v).collect();
        assert_eq!(huge, [6.0, 4.0], "free, used of 10 huge pages");
        assert!(parse_meminfo("MemFree: x kB\n").is_err());
        assert!(parse_meminfo("MemFree: 1 kB\n").is_err(), "no MemTotal");
    }
}

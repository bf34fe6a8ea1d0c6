//! The `memory` scraper: `system.memory.usage{state}` (and optional utilization and
//! limit) from `/proc/meminfo`, with upstream's states: `used` is MemTotal −
//! MemAvailable, `cached` includes SReclaimable as gopsutil counts it.

use std::collections::HashMap;

use opentelemetry_proto::tonic::metrics::v1::Metric;

use super::{attribute, gauge, int_point, point, sum};

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

/// `system.memory.usage`, plus `system.memory.utilization` and `system.memory.limit`
/// when enabled.
pub fn metrics(info: &HashMap<String, u64>, utilization: bool, limit: bool, start: u64, now: u64) -> Vec<Metric> {
    let get = |key: &str| info.get(key).copied().unwrap_or(0);
    let total = get("MemTotal");
    let available = info.get("MemAvailable").copied().unwrap_or(get("MemFree") + get("Buffers") + get("Cached"));
    let states = [
        ("used", total.saturating_sub(available)),
        ("free", get("MemFree")),
        ("buffered", get("Buffers")),
        ("cached", get("Cached") + get("SReclaimable")),
        ("slab_reclaimable", get("SReclaimable")),
        ("slab_unreclaimable", get("SUnreclaim")),
    ];
    let mut out = vec![sum(
        "system.memory.usage",
        "Bytes of memory in use.",
        "By",
        false,
        states.iter().map(|(s, v)| int_point(*v as i64, vec![attribute("state", s)], start, now)).collect(),
    )];
    if utilization && total > 0 {
        out.push(gauge(
            "system.memory.utilization",
            "Percentage of memory bytes in use.",
            "1",
            states.iter().map(|(s, v)| point(*v as f64 / total as f64, vec![attribute("state", s)], 0, now)).collect(),
        ));
    }
    if limit {
        out.push(sum(
            "system.memory.limit",
            "Total bytes of memory available.",
            "By",
            false,
            vec![int_point(total as i64, vec![], start, now)],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{fixture, read_proc, values};
    use super::*;

    #[test]
    fn golden_memory_states() {
        let info = parse_meminfo(&read_proc(&fixture(), "meminfo").unwrap()).unwrap();
        let m = metrics(&info, true, true, 1, 2);
        let usage: std::collections::BTreeMap<String, f64> =
            values(&m[0]).into_iter().map(|(a, v)| (a[0].1.clone(), v)).collect();
        assert_eq!(usage["used"], (16_384_000.0 - 8_192_000.0) * 1024.0);
        assert_eq!(usage["free"], 2_048_000.0 * 1024.0);
        assert_eq!(usage["buffered"], 512_000.0 * 1024.0);
        assert_eq!(usage["cached"], (4_096_000.0 + 640_000.0) * 1024.0);
        assert_eq!(usage["slab_unreclaimable"], 128_000.0 * 1024.0);
        assert_eq!(values(&m[1]).iter().find(|(a, _)| a[0].1 == "used").unwrap().1, 0.5);
        assert_eq!(values(&m[2])[0].1, 16_384_000.0 * 1024.0);
        assert!(parse_meminfo("MemFree: x kB\n").is_err());
        assert!(parse_meminfo("MemFree: 1 kB\n").is_err(), "no MemTotal");
    }
}

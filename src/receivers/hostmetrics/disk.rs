//! The `disk` scraper: per-device I/O counters from `/proc/diskstats` (whole disks
//! and partitions alike, as upstream; devices whose counters are all zero skipped).

use opentelemetry_proto::tonic::metrics::v1::Metric;

use super::filter::Filter;
use super::{Tick, Toggles, attribute, int_point, point, read_proc, sum};

pub const METRICS: &[(&str, bool)] = &[
    ("system.disk.io", true),
    ("system.disk.operations", true),
    ("system.disk.io_time", true),
    ("system.disk.operation_time", true),
    ("system.disk.weighted_io_time", true),
    ("system.disk.pending_operations", true),
    ("system.disk.merged", true),
];

/// Bytes per sector in `/proc/diskstats`, whatever the device's own sector size.
const SECTOR: u64 = 512;

/// One line of `/proc/diskstats`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DiskStats {
    pub device: String,
    pub reads: u64,
    pub reads_merged: u64,
    pub sectors_read: u64,
    pub read_ms: u64,
    pub writes: u64,
    pub writes_merged: u64,
    pub sectors_written: u64,
    pub write_ms: u64,
    pub in_progress: u64,
    pub io_ms: u64,
    pub weighted_ms: u64,
}

/// The devices of `/proc/diskstats`. Lines with fewer than 14 fields or a field that
/// is not a number are skipped, as are devices with no I/O at all.
pub fn parse_diskstats(text: &str) -> Vec<DiskStats> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if fields.len() < 14 {
            continue;
        }
        let Ok(n) = fields[3..14].iter().map(|f| f.parse::<u64>()).collect::<Result<Vec<u64>, _>>() else {
            continue;
        };
        if n.iter().all(|v| *v == 0) {
            continue;
        }
        out.push(DiskStats {
            device: fields[2].to_string(),
            reads: n[0],
            reads_merged: n[1],
            sectors_read: n[2],
            read_ms: n[3],
            writes: n[4],
            writes_merged: n[5],
            sectors_written: n[6],
            write_ms: n[7],
            in_progress: n[8],
            io_ms: n[9],
            weighted_ms: n[10],
        });
    }
    out
}

pub struct Scraper {
    toggles: Toggles,
    filter: Filter,
}

impl Scraper {
    pub fn new(toggles: Toggles, filter: Filter) -> Scraper {
        Scraper { toggles, filter }
    }

    pub fn scrape(&mut self, tick: &Tick) -> Result<Vec<Metric>, String> {
        let mut disks = parse_diskstats(&read_proc(tick.root, "diskstats")?);
        disks.retain(|d| self.filter.keeps(&d.device));
        Ok(metrics(&disks, &self.toggles, tick.boot, tick.now))
    }
}

pub fn metrics(disks: &[DiskStats], toggles: &Toggles, start: u64, now: u64) -> Vec<Metric> {
    let mut out = Vec::new();
    if disks.is_empty() {
        return out;
    }
    let device = |d: &DiskStats| attribute("device", &d.device);
    fn both(d: &DiskStats) -> [(&DiskStats, &'static str); 2] {
        [(d, "read"), (d, "write")]
    }
    let int_rw = |f: &dyn Fn(&DiskStats, &str) -> u64| {
        disks
            .iter()
            .flat_map(both)
            .map(|(d, dir)| int_point(f(d, dir) as i64, vec![device(d), attribute("direction", dir)], start, now))
            .collect()
    };
    let secs = |ms: u64| ms as f64 / 1000.0;
    for name in toggles.0.iter().copied() {
        out.push(match name {
            "system.disk.io" => sum(
                name,
                "Disk bytes transferred.",
                "By",
                true,
                int_rw(&|d, dir| if dir == "read" { d.sectors_read } else { d.sectors_written }.saturating_mul(SECTOR)),
            ),
            "system.disk.operations" => sum(
                name,
                "Disk operations count.",
                "{operations}",
                true,
                int_rw(&|d, dir| if dir == "read" { d.reads } else { d.writes }),
            ),
            "system.disk.merged" => sum(
                name,
                "The number of disk reads/writes merged into single physical disk access operations.",
                "{operations}",
                true,
                int_rw(&|d, dir| if dir == "read" { d.reads_merged } else { d.writes_merged }),
            ),
            "system.disk.operation_time" => sum(
                name,
                "Time spent in disk operations.",
                "s",
                true,
                disks
                    .iter()
                    .flat_map(both)
                    .map(|(d, dir)| {
                        let ms = if dir == "read" { d.read_ms } else { d.write_ms };
                        point(secs(ms), vec![device(d), attribute("direction", dir)], start, now)
                    })
                    .collect(),
            ),
            "system.disk.io_time" => sum(
                name,
                "Time disk spent activated. On Windows, this is calculated as the inverse of disk idle time.",
                "s",
                true,
                disks.iter().map(|d| point(secs(d.io_ms), vec![device(d)], start, now)).collect(),
            ),
            "system.disk.weighted_io_time" => sum(
                name,
                "Time disk spent activated multiplied by the queue length.",
                "s",
                true,
                disks.iter().map(|d| point(secs(d.weighted_ms), vec![device(d)], start, now)).collect(),
            ),
            "system.disk.pending_operations" => sum(
                name,
                "The queue size of pending I/O operations.",
                "{operations}",
                false,
                disks.iter().map(|d| int_point(d.in_progress as i64, vec![device(d)], start, now)).collect(),
            ),
            _ => continue,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::config::{Devices, Match, MatchType, MetricToggles};
    use super::super::{fixture, values};
    use super::*;

    #[test]
    fn golden_disks() {
        let mut s = Scraper::new(
            Toggles::new(METRICS, &MetricToggles::new()),
            Filter::new(None, Some(&Match::<Devices>::new(&["^loop"], MatchType::Regexp))).unwrap(),
        );
        let m = s.scrape(&Tick::new(&fixture(), 1, 2)).unwrap();
        assert_eq!(m.len(), 7);
        let io = values(&m[0]);
        // sda, sda1, nvme0n1 (loop0 excluded, ram0 all zero), read and write each.
        assert_eq!(io.len(), 6);
        assert_eq!(io[0].0, [("device".into(), "sda".into()), ("direction".into(), "read".into())]);
        assert_eq!(io[0].1, 2_000_000.0 * 512.0);
        assert_eq!(io[1].1, 3_000_000.0 * 512.0);
        assert_eq!(io[4].0[0].1, "nvme0n1");
        let ops = values(&m[1]);
        assert_eq!((ops[0].1, ops[1].1), (50_000.0, 60_000.0));
        assert_eq!(values(&m[2])[0].1, 120.0, "io_time: 120000 ms");
        assert_eq!((values(&m[3])[0].1, values(&m[3])[1].1), (30.0, 90.0));
        assert_eq!(values(&m[4])[0].1, 200.0);
        assert_eq!(values(&m[5])[0].1, 2.0);
        assert_eq!((values(&m[6])[0].1, values(&m[6])[1].1), (1000.0, 4000.0));
    }

    #[test]
    fn short_or_garbled_lines_are_skipped() {
        assert!(parse_diskstats("8 0 sda 1 2 3\n8 0 sdb x 0 0 0 0 0 0 0 0 0 0 0\n").is_empty());
    }
}

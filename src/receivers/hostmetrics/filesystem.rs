//! The `filesystem` scraper: space and inodes of each mount of the host, from the
//! host's mount table (`/proc/1/mountinfo` under `root_path`) and `statvfs` on the
//! mount point under `root_path`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::Metric;

use super::filter::Filter;
use super::{Tick, Toggles, attribute, gauge, int_point, point, proc_path, sum};

pub const METRICS: &[(&str, bool)] = &[
    ("system.filesystem.usage", true),
    ("system.filesystem.inodes.usage", true),
    ("system.filesystem.utilization", false),
];

/// One mount: where, what, and how.
#[derive(Clone, Debug, PartialEq)]
pub struct Mount {
    pub device: String,
    pub mountpoint: String,
    pub fs_type: String,
    /// `rw`, `ro`, or `unknown`.
    pub mode: &'static str,
}

/// `statvfs` figures, blocks in bytes already.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Space {
    pub total: u64,
    pub free: u64,
    pub available: u64,
    pub inodes: u64,
    pub inodes_free: u64,
}

/// The mounts of a `mountinfo` file, in order. Malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else { continue };
        if dash < 6 || fields.len() < dash + 3 {
            continue;
        }
        out.push(Mount {
            device: unescape(fields[dash + 2]),
            mountpoint: unescape(fields[4]),
            fs_type: unescape(fields[dash + 1]),
            mode: mode(fields[5]),
        });
    }
    out
}

/// The mounts of a `mounts` file (`device mountpoint type options 0 0`), for kernels
/// or sandboxes without `mountinfo`.
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let (device, mountpoint, fs_type, options) =
                (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
            Some(Mount {
                device: unescape(device),
                mountpoint: unescape(mountpoint),
                fs_type: unescape(fs_type),
                mode: mode(options),
            })
        })
        .collect()
}

/// `rw` or `ro` from mount options, as upstream reads them.
fn mode(options: &str) -> &'static str {
    if options.split(',').any(|o| o == "rw") {
        "rw"
    } else if options.split(',').any(|o| o == "ro") {
        "ro"
    } else {
        "unknown"
    }
}

/// Undoes the kernel's octal escapes (`\040` for a space) in mount table fields.
pub fn unescape(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_string();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal =
            bytes.get(i + 1..i + 4).filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(((d[0] - b'0') << 6) | ((d[1] - b'0') << 3) | (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// File system types backed by a device (the lines of `/proc/filesystems` without
/// `nodev`), plus zfs, as gopsutil keeps it.
pub fn parse_device_filesystems(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("nodev"))
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    out.push("zfs".into());
    out
}

/// Reads a mount's space; `statvfs` in production, a table in tests.
pub trait StatFs: Send {
    fn stat(&self, path: &Path) -> Result<Space, String>;
}

pub struct Statvfs;

impl StatFs for Statvfs {
    fn stat(&self, path: &Path) -> Result<Space, String> {
        use std::os::unix::ffi::OsStrExt;
        let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
        // SAFETY: statvfs fills the zeroed struct from a NUL-terminated path we own.
        let mut raw: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c_path.as_ptr(), &mut raw) } != 0 {
            return Err(format!("statvfs {}: {}", path.display(), std::io::Error::last_os_error()));
        }
        let unit = raw.f_frsize as u64;
        Ok(Space {
            total: (raw.f_blocks as u64).saturating_mul(unit),
            free: (raw.f_bfree as u64).saturating_mul(unit),
            available: (raw.f_bavail as u64).saturating_mul(unit),
            inodes: raw.f_files as u64,
            inodes_free: raw.f_ffree as u64,
        })
    }
}

/// How long a mount may take to answer `statvfs`, as node_exporter's mount timeout:
/// a hung network file system blocks the call without end.
pub const STATFS_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs each `statvfs` on its own thread and waits at most `timeout` for it. A mount
/// that does not answer is skipped, in this scrape and the next ones, until its call
/// returns; the scrape goes on with the other mounts.
pub struct Bounded<S> {
    inner: Arc<S>,
    timeout: Duration,
    waiting: Arc<Mutex<HashSet<PathBuf>>>,
}

impl<S> Bounded<S> {
    pub fn new(inner: S, timeout: Duration) -> Bounded<S> {
        Bounded { inner: Arc::new(inner), timeout, waiting: Arc::default() }
    }
}

impl<S: StatFs + Sync + 'static> StatFs for Bounded<S> {
    fn stat(&self, path: &Path) -> Result<Space, String> {
        if !self.waiting.lock().unwrap_or_else(|e| e.into_inner()).insert(path.to_path_buf()) {
            return Err(format!("statvfs {}: still no answer from an earlier scrape; skipped", path.display()));
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let (inner, waiting, owned) = (self.inner.clone(), self.waiting.clone(), path.to_path_buf());
        let spawned = std::thread::Builder::new().name("statvfs".into()).spawn(move || {
            let result = inner.stat(&owned);
            waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(&owned);
            let _ = tx.send(result);
        });
        if let Err(e) = spawned {
            self.waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(path);
            return Err(format!("statvfs {}: cannot start a thread: {e}", path.display()));
        }
        rx.recv_timeout(self.timeout).unwrap_or_else(|_| {
            Err(format!(
                "statvfs {}: no answer within {:?} (a hung network file system?); skipped until it answers",
                path.display(),
                self.timeout
            ))
        })
    }
}

pub struct Filters {
    pub devices: Filter,
    pub fs_types: Filter,
    pub mount_points: Filter,
    pub include_virtual: bool,
}

pub struct Scraper {
    toggles: Toggles,
    filters: Filters,
    statfs: Box<dyn StatFs>,
}

impl Scraper {
    pub fn new(toggles: Toggles, filters: Filters, statfs: Box<dyn StatFs>) -> Scraper {
        Scraper { toggles, filters, statfs }
    }

    /// The mounts that pass the filters, the last one of each mount point (the one
    /// that is visible), with their space. A mount whose `statvfs` fails is left out
    /// and named in the error that comes back with the rest.
    pub fn scrape(&mut self, tick: &Tick) -> (Vec<Metric>, Vec<String>) {
        self.mounts(tick).unwrap_or_else(|e| (Vec::new(), vec![e]))
    }

    fn mounts(&self, tick: &Tick) -> Result<(Vec<Metric>, Vec<String>), String> {
        let proc = proc_path(tick.root);
        // The host's mount table (pid 1's), else the agent's, as upstream's gopsutil.
        let mounts = ["1/mountinfo", "1/mounts", "self/mountinfo", "self/mounts"]
            .iter()
            .find_map(|name| {
                let text = super::read_text(&proc.join(name)).ok()?;
                Some(if name.ends_with("mountinfo") { parse_mountinfo(&text) } else { parse_mounts(&text) })
            })
            .ok_or_else(|| format!("cannot read any of {}/{{1,self}}/{{mountinfo,mounts}}", proc.display()))?;
        let device_types = match self.filters.include_virtual {
            true => None,
            false => Some(parse_device_filesystems(&super::read_proc(tick.root, "filesystems")?)),
        };
        // Of mounts stacked at one mount point only the last is visible (statvfs sees
        // it), so the others are dropped before filtering.
        let mut seen = std::collections::HashSet::new();
        let mut visible: Vec<&Mount> = mounts.iter().rev().filter(|m| seen.insert(m.mountpoint.as_str())).collect();
        visible.reverse();
        visible.retain(|m| {
            device_types.as_ref().is_none_or(|types| m.device != "none" && types.contains(&m.fs_type))
                && self.filters.devices.keeps(&m.device)
                && self.filters.fs_types.keeps(&m.fs_type)
                && self.filters.mount_points.keeps(&m.mountpoint)
        });
        let mut spaces = Vec::new();
        let mut errors = Vec::new();
        for mount in visible {
            match self.statfs.stat(&under_root(tick.root, &mount.mountpoint)) {
                Ok(space) => spaces.push((mount.clone(), space)),
                Err(e) => errors.push(e),
            }
        }
        Ok((metrics(&spaces, &self.toggles, tick.boot, tick.now), errors))
    }
}

/// A host mount point as seen from here: `/var` under root `/hostfs` is `/hostfs/var`.
fn under_root(root: &Path, mountpoint: &str) -> PathBuf {
    root.join(mountpoint.trim_start_matches('/'))
}

pub fn metrics(mounts: &[(Mount, Space)], toggles: &Toggles, start: u64, now: u64) -> Vec<Metric> {
    let labels = |m: &Mount| -> Vec<KeyValue> {
        vec![
            attribute("device", &m.device),
            attribute("mode", m.mode),
            attribute("mountpoint", &m.mountpoint),
            attribute("type", &m.fs_type),
        ]
    };
    let with_state = |m: &Mount, state: &str| {
        let mut l = labels(m);
        l.push(attribute("state", state));
        l
    };
    let mut out = Vec::new();
    if mounts.is_empty() {
        return out;
    }
    for name in toggles.0.iter().copied() {
        out.push(match name {
            "system.filesystem.usage" => sum(
                name,
                "Filesystem bytes used.",
                "By",
                false,
                mounts
                    .iter()
                    .flat_map(|(m, s)| {
                        let used = s.total.saturating_sub(s.free);
                        let reserved = s.free.saturating_sub(s.available);
                        [("used", used), ("free", s.available), ("reserved", reserved)]
                            .map(|(state, v)| int_point(v as i64, with_state(m, state), start, now))
                    })
                    .collect(),
            ),
            "system.filesystem.inodes.usage" => sum(
                name,
                "FileSystem inodes used.",
                "{inodes}",
                false,
                mounts
                    .iter()
                    .flat_map(|(m, s)| {
                        let used = s.inodes.saturating_sub(s.inodes_free);
                        [("used", used), ("free", s.inodes_free)]
                            .map(|(state, v)| int_point(v as i64, with_state(m, state), start, now))
                    })
                    .collect(),
            ),
            "system.filesystem.utilization" => gauge(
                name,
                "Fraction of filesystem bytes used.",
                "1",
                mounts
                    .iter()
                    .map(|(m, s)| {
                        // As df: used over what users can have (used + available).
                        let used = s.total.saturating_sub(s.free);
                        let denominator = used + s.available;
                        let value = if denominator > 0 { used as f64 / denominator as f64 } else { 0.0 };
                        point(value, labels(m), 0, now)
                    })
                    .collect(),
            ),
            _ => continue,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::config::{Match, MatchType, MetricToggles, MountPoints};
    use super::super::{fixture, values};
    use super::*;

    /// Space by mount point (under the fixture root), as the fixture's disks would have.
    struct Table;
    impl StatFs for Table {
        fn stat(&self, path: &Path) -> Result<Space, String> {
            let gib = 1 << 30;
            match path.strip_prefix(fixture()).map_err(|e| e.to_string())?.to_str() {
                Some("") => {
                    Ok(Space { total: 100 * gib, free: 40 * gib, available: 35 * gib, inodes: 1000, inodes_free: 600 })
                }
                Some("data dir") => {
                    Ok(Space { total: 10 * gib, free: 10 * gib, available: 10 * gib, inodes: 10, inodes_free: 10 })
                }
                other => Err(format!("statvfs {other:?}: no such mount")),
            }
        }
    }

    fn on_all() -> MetricToggles {
        [("system.filesystem.utilization".to_string(), super::super::config::Enabled { enabled: true })].into()
    }

    fn filters(mount_points: Option<&Match<MountPoints>>, include_virtual: bool) -> Filters {
        Filters {
            devices: Filter::default(),
            fs_types: Filter::default(),
            mount_points: Filter::new(None, mount_points).unwrap(),
            include_virtual,
        }
    }

    #[test]
    fn golden_filesystems() {
        let mut s = Scraper::new(Toggles::new(METRICS, &on_all()), filters(None, false), Box::new(Table));
        let (m, errors) = s.scrape(&Tick::new(&fixture(), 1, 2));
        // `/boot` has no space in the table: reported, the others still scraped.
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("boot"), "{errors:?}");
        let usage = values(&m[0]);
        assert_eq!(usage.len(), 6, "/ and /data dir (proc, tmpfs, overlay are virtual; /boot failed)");
        let attrs: Vec<(String, String)> = usage[0].0.clone();
        assert_eq!(
            attrs,
            [("device", "/dev/sda1"), ("mode", "rw"), ("mountpoint", "/"), ("type", "ext4"), ("state", "used")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        let gib = (1u64 << 30) as f64;
        assert_eq!((usage[0].1, usage[1].1, usage[2].1), (60.0 * gib, 35.0 * gib, 5.0 * gib));
        assert_eq!(usage[3].0[2].1, "/data dir", "octal escape decoded");
        assert_eq!(usage[3].0[0].1, "/dev/sdc1", "the second mount at /data dir hides the first");
        assert_eq!(usage[3].0[1].1, "ro");
        let inodes = values(&m[1]);
        assert_eq!((inodes[0].1, inodes[1].1), (400.0, 600.0));
        assert_eq!(values(&m[2])[0].1, 60.0 / 95.0);
    }

    #[test]
    fn mounts_is_read_where_there_is_no_mountinfo() {
        let mounts = parse_mounts("/dev/sda1 / ext4 rw,relatime 0 0\n/dev/sdb1 /data\\040dir xfs ro 0 0\nshort\n");
        assert_eq!(mounts.len(), 2);
        assert_eq!(
            mounts[1],
            Mount { device: "/dev/sdb1".into(), mountpoint: "/data dir".into(), fs_type: "xfs".into(), mode: "ro" }
        );
        let info = parse_mountinfo(&super::super::read_proc(&fixture(), "1/mountinfo").unwrap());
        assert_eq!(
            info[0],
            Mount { device: "/dev/sda1".into(), mountpoint: "/".into(), fs_type: "ext4".into(), mode: "rw" }
        );
    }

    #[test]
    fn a_mount_that_does_not_answer_is_skipped_until_it_does() {
        struct Hangs(std::sync::atomic::AtomicBool);
        impl StatFs for Hangs {
            fn stat(&self, _: &Path) -> Result<Space, String> {
                if !self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(300));
                }
                Ok(Space { total: 1, ..Space::default() })
            }
        }
        let bounded = Bounded::new(Hangs(false.into()), Duration::from_millis(50));
        let nfs = Path::new("/mnt/nfs");
        let first = bounded.stat(nfs).unwrap_err();
        assert!(first.contains("no answer within 50ms"), "{first}");
        assert!(bounded.stat(nfs).unwrap_err().contains("still no answer"));
        assert_eq!(bounded.stat(Path::new("/")).unwrap().total, 1, "other mounts go on");
        // Once the hung call returns (300 ms in), the mount is asked again.
        let started = std::time::Instant::now();
        let answer = loop {
            match bounded.stat(nfs) {
                Ok(space) => break space,
                Err(e) if started.elapsed() < Duration::from_secs(10) => {
                    assert!(e.contains("still no answer") || e.contains("no answer within"), "{e}");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(answer.total, 1, "answered at last");
        assert!(started.elapsed() >= Duration::from_millis(150), "not before the hung call returned");
    }

    #[test]
    fn virtual_filesystems_and_mount_point_filter() {
        let exclude = Match::<MountPoints>::new(&["/boot", "/data dir"], MatchType::Strict);
        let mut s =
            Scraper::new(Toggles::new(METRICS, &MetricToggles::new()), filters(Some(&exclude), true), Box::new(Table));
        let (m, errors) = s.scrape(&Tick::new(&fixture(), 1, 2));
        let points: Vec<String> = values(&m[0]).iter().map(|(a, _)| a[2].1.clone()).collect();
        // With virtual file systems: /proc, /run and the overlay come in (the table
        // knows only / and "data dir", so they fail statvfs).
        assert!(points.iter().all(|p| p == "/"), "{points:?}");
        assert_eq!(values(&m[0])[0].0[3].1, "ext4");
        assert_eq!(errors.len(), 3, "{errors:?}");
    }
}

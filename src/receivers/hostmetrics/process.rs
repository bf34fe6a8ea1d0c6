//! The `process` scraper, bounded: per-process metrics for at most `max_processes`
//! processes per scrape (the top by CPU, then resident memory), skipping processes
//! under every threshold that is set (`min_cpu_percent`, `min_memory_mib`,
//! `min_age`).
//!
//! Cost: ranking needs only `/proc/<pid>/stat`, read once per process by the shared
//! process table. The other files are read for the emitted processes only, and only
//! those the enabled metrics and attributes need; names, command lines, owners and
//! cgroups are read once per process lifetime and kept while it stays emitted. State
//! is kept per live process (for CPU rates) and dropped with it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::filter::Filter;
use super::procfs::{PidStat, Table, Unread, Walker, classify};
use super::{Tick, Toggles, attribute, gauge, int_point, point, sum};

pub const METRICS: &[(&str, bool)] = &[
    ("process.cpu.time", true),
    ("process.cpu.utilization", false),
    ("process.memory.usage", true),
    ("process.memory.virtual", true),
    ("process.memory.utilization", false),
    ("process.disk.io", true),
    ("process.disk.operations", false),
    ("process.paging.faults", false),
    ("process.context_switches", false),
    ("process.threads", false),
    ("process.open_file_descriptors", false),
    ("process.signals_pending", false),
    ("process.handles", false),
    ("process.uptime", false),
];

pub const RESOURCE_ATTRIBUTES: &[(&str, bool)] = &[
    ("process.pid", true),
    ("process.parent_pid", true),
    ("process.executable.name", true),
    ("process.executable.path", true),
    ("process.command", true),
    ("process.command_line", true),
    ("process.owner", true),
    ("process.cgroup", false),
];

/// `/proc/<pid>/stat` counts CPU time in 1/100 s, so a tick is 10 ms.
const NS_PER_TICK: u64 = 10_000_000;

/// Which read failures are reported (muted ones only leave their metric or
/// attribute out).
#[derive(Clone, Copy, Debug, Default)]
pub struct Mute {
    pub all: bool,
    pub name: bool,
    pub exe: bool,
    pub io: bool,
    pub user: bool,
    pub cgroup: bool,
}

pub struct Settings {
    pub filter: Filter,
    /// `always_include`: these are kept whatever their thresholds, rank and filter.
    pub always: Filter,
    pub max_processes: usize,
    /// Percent of one core.
    pub min_cpu_percent: f64,
    pub min_memory_bytes: u64,
    pub min_age_ns: u64,
    /// `scrape_process_delay`: younger processes are always skipped.
    pub delay_ns: u64,
    pub mute: Mute,
}

/// What one scrape did, for the self-metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    pub seen: u64,
    pub emitted: u64,
    pub vanished: u64,
    pub malformed: u64,
    pub filtered: u64,
    pub below_thresholds: u64,
    pub over_max: u64,
    /// Read failures that were not muted, and the first of them.
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Counts {
    fn error(&mut self, message: impl FnOnce() -> String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(message());
        }
    }
}

/// What does not change while a process lives (unless it execs, which changes its
/// name): read once, kept while the process stays emitted.
#[derive(Clone, Debug, Default)]
struct Meta {
    comm: Box<[u8]>,
    name: String,
    path: Option<String>,
    command: Option<String>,
    command_line: Option<String>,
    owner: Option<String>,
    cgroup: Option<String>,
}

/// A live process as of the last scrape.
struct Known {
    starttime: u64,
    ticks: [u64; 3],
    at: u64,
    /// The whole name of a process whose kernel name is cut, once read for a filter.
    name: Option<String>,
    meta: Option<Box<Meta>>,
}

struct Candidate {
    index: usize,
    /// Named by `always_include`: ranked before every other.
    always: bool,
    /// Cores in use (1.0 = one core).
    cpu: f64,
    rss: u64,
}

pub struct Scraper {
    metrics: Toggles,
    attributes: Toggles,
    settings: Settings,
    /// Processes seen last scrape, by pid; rebuilt every scrape, so exited ones go.
    known: HashMap<u32, Known>,
    next: HashMap<u32, Known>,
    candidates: Vec<Candidate>,
    users: Users,
    page_size: u64,
    cores: f64,
}

impl Scraper {
    pub fn new(
        metrics: Toggles,
        attributes: Toggles,
        settings: Settings,
        root: &std::path::Path,
        cores: usize,
    ) -> Scraper {
        Scraper {
            metrics,
            attributes,
            settings,
            known: HashMap::new(),
            next: HashMap::new(),
            candidates: Vec::new(),
            users: Users::new(root.join("etc/passwd")),
            page_size: super::memory::page_size(),
            cores: cores.max(1) as f64,
        }
    }

    /// Processes tracked between scrapes (one per live process).
    pub fn tracked(&self) -> usize {
        self.known.len()
    }

    pub fn scrape(&mut self, tick: &Tick, table: &Table, walker: &mut Walker) -> (Vec<ResourceMetrics>, Counts) {
        let now = tick.now;
        let mut counts = Counts {
            seen: table.entries.len() as u64 + table.vanished + table.malformed,
            vanished: table.vanished,
            malformed: table.malformed,
            ..Counts::default()
        };
        if self.attributes.on("process.owner") {
            self.users.refresh();
        }
        let s = &self.settings;
        self.next.clear();
        self.candidates.clear();
        for (index, p) in table.entries.iter().enumerate() {
            let created = created_at(tick.boot, p);
            let age = now.saturating_sub(created);
            let ticks = [p.utime, p.stime, p.blkio];
            let previous = self.known.get(&p.pid).filter(|k| k.starttime == p.starttime);
            // Cores in use since the last scrape, or over its life if it is new.
            let used = p.utime.saturating_add(p.stime);
            let (busy, over) = match previous {
                Some(k) if now > k.at => (used.saturating_sub(k.ticks[0].saturating_add(k.ticks[1])), now - k.at),
                _ => (used, age),
            };
            let cpu = if over > 0 { busy.saturating_mul(NS_PER_TICK) as f64 / over as f64 } else { 0.0 };
            // A cut name completed from the command line is kept for the process's life.
            let long_name = previous.and_then(|k| k.name.clone()).filter(|n| n.as_bytes().starts_with(p.comm()));
            self.next.insert(p.pid, Known { starttime: p.starttime, ticks, at: now, name: None, meta: None });
            if age < s.delay_ns {
                counts.below_thresholds += 1;
                continue;
            }
            // The thresholds first: they cost nothing, the name may cost a read.
            let rss = p.rss_pages.saturating_mul(self.page_size);
            let thresholds = [
                (s.min_cpu_percent > 0.0, cpu * 100.0 < s.min_cpu_percent),
                (s.min_memory_bytes > 0, rss < s.min_memory_bytes),
                (s.min_age_ns > 0, age < s.min_age_ns),
            ];
            let below = thresholds.iter().any(|(set, _)| *set) && thresholds.iter().all(|(set, under)| !set || *under);
            if below && s.always.is_empty() {
                counts.below_thresholds += 1;
                continue;
            }
            let mut always = false;
            if !s.filter.is_empty() || !s.always.is_empty() {
                let name = match long_name {
                    Some(name) => name,
                    None if !p.comm_maybe_cut() || is_kernel_thread(p) => {
                        String::from_utf8_lossy(p.comm()).into_owned()
                    }
                    None => match name_of(p, walker) {
                        Ok(name) => name,
                        Err(Unread::Vanished) => {
                            counts.vanished += 1;
                            continue;
                        }
                        Err(Unread::Malformed) => String::from_utf8_lossy(p.comm()).into_owned(),
                    },
                };
                always = !s.always.is_empty() && s.always.keeps(&name);
                let keep = always || (!below && s.filter.keeps(&name));
                if p.comm_maybe_cut()
                    && let Some(k) = self.next.get_mut(&p.pid)
                {
                    k.name = Some(name);
                }
                if !keep {
                    if below {
                        counts.below_thresholds += 1;
                    } else {
                        counts.filtered += 1;
                    }
                    continue;
                }
            }
            self.candidates.push(Candidate { index, always, cpu, rss });
        }
        let rank = |a: &Candidate, b: &Candidate| {
            b.always
                .cmp(&a.always)
                .then(b.cpu.total_cmp(&a.cpu))
                .then(b.rss.cmp(&a.rss))
                .then(table.entries[a.index].pid.cmp(&table.entries[b.index].pid))
        };
        // All candidates in rank order, not just the first `max_processes`: one that
        // exits before it is read gives its place to the next one.
        self.candidates.sort_unstable_by(rank);
        let max_processes = s.max_processes;

        let memory_total = match self.metrics.on("process.memory.utilization") {
            true => super::read_proc(tick.root, "meminfo")
                .ok()
                .and_then(|t| super::memory::parse_meminfo(&t).ok())
                .and_then(|m| m.get("MemTotal").copied()),
            false => None,
        };
        let mut out = Vec::with_capacity(self.candidates.len().min(max_processes));
        let candidates = std::mem::take(&mut self.candidates);
        for (tried, c) in candidates.iter().enumerate() {
            if out.len() >= max_processes {
                counts.over_max = (candidates.len() - tried) as u64;
                break;
            }
            let p = &table.entries[c.index];
            let kept = self
                .known
                .get_mut(&p.pid)
                .filter(|k| k.starttime == p.starttime)
                .and_then(|k| k.meta.take())
                .filter(|m| *m.comm == *p.comm());
            let meta = match kept {
                Some(meta) => meta,
                None => match self.read_meta(p, walker, &mut counts) {
                    Ok(meta) => Box::new(meta),
                    Err(()) => {
                        counts.vanished += 1;
                        continue;
                    }
                },
            };
            let previous = self.known.get(&p.pid).filter(|k| k.starttime == p.starttime).map(|k| (k.ticks, k.at));
            let Some(metrics) = self.metrics_of(p, c, previous, memory_total, tick, walker, &mut counts) else {
                counts.vanished += 1;
                continue;
            };
            out.push(ResourceMetrics {
                resource: Some(Resource { attributes: self.resource(p, &meta), ..Default::default() }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(super::scope("process")),
                    metrics,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            });
            counts.emitted += 1;
            if let Some(k) = self.next.get_mut(&p.pid) {
                k.meta = Some(meta);
            }
        }
        self.candidates = candidates;
        std::mem::swap(&mut self.known, &mut self.next);
        self.next.clear();
        if self.settings.mute.all {
            counts.errors = 0;
            counts.first_error = None;
        }
        (out, counts)
    }

    /// Reads what the enabled attributes need once. `Err` when the process is gone.
    fn read_meta(&mut self, p: &PidStat, walker: &mut Walker, counts: &mut Counts) -> Result<Meta, ()> {
        let on = |name| self.attributes.on(name);
        let pid = p.pid;
        let comm = String::from_utf8_lossy(p.comm()).into_owned();
        let mut meta = Meta { comm: p.comm().into(), name: comm.clone(), ..Meta::default() };
        let kernel_thread = is_kernel_thread(p);
        let wants_args = on("process.command") || on("process.command_line");
        if wants_args || (p.comm_maybe_cut() && on("process.executable.name")) {
            match walker.read(pid, "cmdline") {
                Ok(bytes) => {
                    // NUL-separated with a NUL at the end; empty arguments are kept.
                    let args: Vec<String> = match bytes.strip_suffix(&[0]).unwrap_or(bytes) {
                        [] => Vec::new(),
                        args => args.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect(),
                    };
                    if p.comm_maybe_cut() {
                        meta.name = extended_name(&comm, args.first().map(String::as_str));
                    }
                    if let Some(first) = args.first() {
                        meta.command = Some(first.clone());
                        meta.command_line = Some(args.join(" "));
                    }
                }
                Err(e) if classify(&e) == Unread::Vanished => return Err(()),
                Err(e) => {
                    if p.comm_maybe_cut() && !self.settings.mute.name {
                        counts.error(|| format!("process {pid}: reading cmdline for its name: {e}"));
                    }
                }
            }
        }
        if on("process.executable.path") && !kernel_thread {
            match std::fs::read_link(walker.path(pid, "exe")) {
                Ok(path) => meta.path = Some(path.to_string_lossy().into_owned()),
                // Gone since it was listed, or a zombie (exited, not yet reaped: its
                // `exe` link is gone while its `stat` is still there): it has exited.
                Err(e) if classify(&e) == Unread::Vanished && exited(walker, pid) => return Err(()),
                Err(e) if !self.settings.mute.exe => {
                    counts.error(|| format!("process {pid} ({comm}): reading its executable path: {e}"));
                }
                Err(_) => {}
            }
        }
        if on("process.owner") {
            let uid = match walker.read(pid, "status") {
                Ok(bytes) => status_field(bytes, b"Uid:"),
                Err(e) if classify(&e) == Unread::Vanished => return Err(()),
                Err(_) => None,
            };
            meta.owner = uid.and_then(|uid| self.users.name(uid as u32));
            if meta.owner.is_none() && !self.settings.mute.user {
                counts.error(|| format!("process {pid} ({comm}): no user name for uid {uid:?}"));
            }
        }
        if on("process.cgroup") {
            match walker.read(pid, "cgroup") {
                Ok(bytes) => meta.cgroup = Some(String::from_utf8_lossy(bytes).trim_end_matches('\n').to_string()),
                Err(e) if !self.settings.mute.cgroup => {
                    counts.error(|| format!("process {pid} ({comm}): reading its cgroup: {e}"));
                }
                Err(_) => {}
            }
        }
        Ok(meta)
    }

    fn resource(&self, p: &PidStat, meta: &Meta) -> Vec<KeyValue> {
        let on = |name| self.attributes.on(name);
        let mut out = Vec::with_capacity(8);
        let int = |key: &str, v: i64| KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(Value::IntValue(v)) }),
            ..Default::default()
        };
        if on("process.pid") {
            out.push(int("process.pid", p.pid.into()));
        }
        if on("process.parent_pid") {
            out.push(int("process.parent_pid", p.ppid.into()));
        }
        if on("process.executable.name") {
            out.push(attribute("process.executable.name", &meta.name));
        }
        for (key, value) in [
            ("process.executable.path", &meta.path),
            ("process.command", &meta.command),
            ("process.command_line", &meta.command_line),
            ("process.owner", &meta.owner),
            ("process.cgroup", &meta.cgroup),
        ] {
            if let (true, Some(value)) = (on(key), value) {
                out.push(attribute(key, value));
            }
        }
        out
    }

    /// The metrics of one process; `None` when it is gone.
    #[allow(clippy::too_many_arguments)]
    fn metrics_of(
        &self,
        p: &PidStat,
        c: &Candidate,
        previous: Option<([u64; 3], u64)>,
        memory_total: Option<u64>,
        tick: &Tick,
        walker: &mut Walker,
        counts: &mut Counts,
    ) -> Option<Vec<Metric>> {
        let on = |name| self.metrics.on(name);
        let now = tick.now;
        let start = created_at(tick.boot, p);
        let pid = p.pid;
        let mut out = Vec::new();
        let states = [("user", p.utime), ("system", p.stime), ("wait", p.blkio)];
        if on("process.cpu.time") {
            let points = states
                .iter()
                .map(|(state, t)| point(*t as f64 / 100.0, vec![attribute("state", state)], start, now))
                .collect();
            out.push(sum("process.cpu.time", "Total CPU seconds broken down by different states.", "s", true, points));
        }
        if let (true, Some((before, at))) = (on("process.cpu.utilization"), previous) {
            let elapsed = now.saturating_sub(at) as f64;
            let points = states
                .iter()
                .zip(before)
                .map(|((state, t), b)| {
                    let used = t.saturating_sub(b).saturating_mul(NS_PER_TICK) as f64;
                    let value = if elapsed > 0.0 { used / elapsed / self.cores } else { 0.0 };
                    point(value, vec![attribute("state", state)], 0, now)
                })
                .collect();
            out.push(gauge(
                "process.cpu.utilization",
                "Percentage of total CPU time used by the process since last scrape, expressed as a value between 0 and 1.",
                "1",
                points,
            ));
        }
        let one = |v: u64| vec![int_point(v as i64, vec![], start, now)];
        if on("process.memory.usage") {
            out.push(sum("process.memory.usage", "The amount of physical memory in use.", "By", false, one(c.rss)));
        }
        if on("process.memory.virtual") {
            out.push(sum("process.memory.virtual", "Virtual memory size.", "By", false, one(p.vsize)));
        }
        if let (true, Some(total)) = (on("process.memory.utilization"), memory_total.filter(|t| *t > 0)) {
            out.push(gauge(
                "process.memory.utilization",
                "Fraction of total physical memory that is used by the process.",
                "1",
                vec![point(c.rss as f64 / total as f64, vec![], 0, now)],
            ));
        }
        if on("process.disk.io") || on("process.disk.operations") {
            match walker.read(pid, "io") {
                Ok(bytes) => {
                    let field = |name: &[u8]| status_field(bytes, name).unwrap_or(0);
                    let rw = |r: u64, w: u64| {
                        [("read", r), ("write", w)]
                            .map(|(d, v)| int_point(v as i64, vec![attribute("direction", d)], start, now))
                            .into()
                    };
                    if on("process.disk.io") {
                        let points = rw(field(b"read_bytes:"), field(b"write_bytes:"));
                        out.push(sum("process.disk.io", "Disk bytes transferred.", "By", true, points));
                    }
                    if on("process.disk.operations") {
                        let points = rw(field(b"syscr:"), field(b"syscw:"));
                        out.push(sum(
                            "process.disk.operations",
                            "Number of disk operations performed by the process.",
                            "{operations}",
                            true,
                            points,
                        ));
                    }
                }
                Err(e) if classify(&e) == Unread::Vanished => return None,
                Err(e) if !self.settings.mute.io => {
                    counts.error(|| format!("process {pid}: reading its I/O counters: {e}"));
                }
                Err(_) => {}
            }
        }
        if on("process.paging.faults") {
            let points = [("major", p.majflt), ("minor", p.minflt)]
                .map(|(kind, v)| int_point(v as i64, vec![attribute("type", kind)], start, now))
                .into();
            out.push(sum(
                "process.paging.faults",
                "Number of page faults the process has made.",
                "{faults}",
                true,
                points,
            ));
        }
        if on("process.context_switches") || on("process.signals_pending") {
            let bytes = match walker.read(pid, "status") {
                Ok(bytes) => bytes,
                Err(e) if classify(&e) == Unread::Vanished => return None,
                Err(_) => b"",
            };
            if on("process.context_switches") {
                let points = [
                    ("involuntary", b"nonvoluntary_ctxt_switches:".as_slice()),
                    ("voluntary", b"voluntary_ctxt_switches:"),
                ]
                .map(|(kind, key)| {
                    int_point(status_field(bytes, key).unwrap_or(0) as i64, vec![attribute("type", kind)], start, now)
                })
                .into();
                out.push(sum(
                    "process.context_switches",
                    "Number of times the process has been context switched.",
                    "{count}",
                    true,
                    points,
                ));
            }
            if on("process.signals_pending") {
                let pending = status_mask(bytes, b"SigPnd:") | status_mask(bytes, b"ShdPnd:");
                out.push(sum(
                    "process.signals_pending",
                    "Number of pending signals for the process.",
                    "{signals}",
                    false,
                    one(pending.count_ones().into()),
                ));
            }
        }
        if on("process.threads") {
            out.push(sum("process.threads", "Process threads count.", "{threads}", false, one(p.threads)));
        }
        if on("process.open_file_descriptors") {
            match std::fs::read_dir(walker.path(pid, "fd")) {
                Ok(dir) => {
                    let open = dir
                        .flatten()
                        .filter(|e| e.file_name().as_encoded_bytes().iter().all(u8::is_ascii_digit))
                        .count() as u64;
                    out.push(sum(
                        "process.open_file_descriptors",
                        "Number of file descriptors in use by the process.",
                        "{count}",
                        false,
                        one(open),
                    ));
                }
                Err(e) if classify(&e) == Unread::Vanished && !walker.alive(pid) => return None,
                Err(e) => counts.error(|| format!("process {pid}: counting its open files: {e}")),
            }
        }
        if on("process.uptime") {
            let uptime = now.saturating_sub(start) as f64 / 1e9;
            out.push(gauge(
                "process.uptime",
                "The time the process has been running.",
                "s",
                vec![point(uptime, vec![], 0, now)],
            ));
        }
        Some(out)
    }
}

/// The process name when the kernel's is cut at 15 bytes: the base name of the
/// first argument if it starts with the kernel's name, else the kernel's name.
fn extended_name(comm: &str, first_arg: Option<&str>) -> String {
    let base = first_arg.map(|a| a.rsplit('/').next().unwrap_or(a));
    match base {
        Some(base) if base.starts_with(comm) => base.to_string(),
        _ => comm.to_string(),
    }
}

/// When a process started, in ns since the epoch.
fn created_at(boot: u64, p: &PidStat) -> u64 {
    boot.saturating_add(p.starttime.saturating_mul(NS_PER_TICK))
}

/// Kernel threads are kthreadd (pid 2) and its children: no command line, no executable.
fn is_kernel_thread(p: &PidStat) -> bool {
    p.pid == 2 || p.ppid == 2
}

/// The name of a process for filters: the kernel's, or from its command line when the
/// kernel's was cut.
fn name_of(p: &PidStat, walker: &mut Walker) -> Result<String, Unread> {
    let comm = String::from_utf8_lossy(p.comm()).into_owned();
    if !p.comm_maybe_cut() {
        return Ok(comm);
    }
    let first = match walker.read(p.pid, "cmdline") {
        Ok(bytes) => bytes.split(|b| *b == 0).next().map(|a| String::from_utf8_lossy(a).into_owned()),
        Err(e) if classify(&e) == Unread::Vanished => return Err(Unread::Vanished),
        Err(_) => return Err(Unread::Malformed),
    };
    Ok(extended_name(&comm, first.as_deref()))
}

/// The first number after `key` on its line of a `key: value` file (`status`, `io`).
pub fn status_field(bytes: &[u8], key: &[u8]) -> Option<u64> {
    let line = bytes.split(|b| *b == b'\n').find_map(|l| l.strip_prefix(key))?;
    let text = std::str::from_utf8(line).ok()?;
    text.split_ascii_whitespace().next()?.parse().ok()
}

/// A hex signal mask of `status`.
pub fn status_mask(bytes: &[u8], key: &[u8]) -> u64 {
    bytes
        .split(|b| *b == b'\n')
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

/// uid → user name from the host's `/etc/passwd` (under `root_path`), re-read when
/// it changes.
struct Users {
    path: PathBuf,
    modified: Option<SystemTime>,
    names: HashMap<u32, String>,
}

impl Users {
    fn new(path: PathBuf) -> Users {
        Users { path, modified: None, names: HashMap::new() }
    }

    /// Re-reads the file if it changed since the last scrape.
    fn refresh(&mut self) {
        let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        if modified != self.modified {
            self.modified = modified;
            self.names = super::read_text(&self.path).map(|t| parse_passwd(&t)).unwrap_or_default();
        }
    }

    fn name(&self, uid: u32) -> Option<String> {
        self.names.get(&uid).cloned()
    }
}

pub fn parse_passwd(text: &str) -> HashMap<u32, String> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?.parse().ok()?;
            Some((uid, name.to_string()))
        })
        .collect()
}

/// Whether `pid` has exited since it was listed: its `stat` is gone, or says zombie.
fn exited(walker: &mut Walker, pid: u32) -> bool {
    match walker.read(pid, "stat") {
        Ok(bytes) => {
            let after = bytes.iter().rposition(|b| *b == b')').map_or(bytes, |i| &bytes[i + 1..]);
            after.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'Z')
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::{Enabled, Match, MatchType, MetricToggles, Names};
    use super::super::{boot_time, fixture, values};
    use super::*;

    fn all_on(known: &[(&str, bool)]) -> MetricToggles {
        known
            .iter()
            .filter(|(n, _)| *n != "process.handles")
            .map(|(n, _)| (n.to_string(), Enabled { enabled: true }))
            .collect()
    }

    fn settings() -> Settings {
        Settings {
            filter: Filter::default(),
            always: Filter::default(),
            max_processes: 1000,
            min_cpu_percent: 0.0,
            min_memory_bytes: 0,
            min_age_ns: 0,
            delay_ns: 0,
            mute: Mute::default(),
        }
    }

    /// A scraper of the fixture host (2 CPUs) with every metric on, its process table,
    /// and the host's boot time.
    fn fixture_scraper(settings: Settings, attributes: &MetricToggles) -> (Scraper, Table, Walker, u64) {
        let root = fixture();
        let mut walker = Walker::new(&root);
        let mut table = Table::default();
        walker.walk(&mut table).unwrap();
        let metrics = Toggles::new(METRICS, &all_on(METRICS));
        let scraper = Scraper::new(metrics, Toggles::new(RESOURCE_ATTRIBUTES, attributes), settings, &root, 2);
        (scraper, table, walker, boot_time(&root).unwrap())
    }

    /// The fixture host 10,000 s after its boot.
    fn scrape_fixture(settings: Settings) -> (Vec<ResourceMetrics>, Counts) {
        let (mut s, table, mut walker, boot) = fixture_scraper(settings, &all_on(RESOURCE_ATTRIBUTES));
        s.scrape(&Tick::new(&fixture(), boot, boot + 10_000_000_000_000), &table, &mut walker)
    }

    fn attrs(r: &ResourceMetrics) -> Vec<(String, String)> {
        r.resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .map(|kv| (kv.key.clone(), crate::pdata::prometheus::text(kv.value.as_ref())))
            .collect()
    }

    fn metric<'a>(r: &'a ResourceMetrics, name: &str) -> &'a Metric {
        r.scope_metrics[0].metrics.iter().find(|m| m.name == name).unwrap_or_else(|| panic!("no {name}"))
    }

    fn pids(out: &[ResourceMetrics]) -> Vec<String> {
        out.iter().map(|r| attrs(r)[0].1.clone()).collect()
    }

    #[test]
    fn a_process_that_exits_before_it_is_read_gives_its_place_to_the_next() {
        let copy = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("cp").arg("-a").arg(fixture()).arg(copy.path()).status().unwrap();
        assert!(status.success());
        let root = copy.path().join("hostfs");
        let mut walker = Walker::new(&root);
        let mut table = Table::default();
        walker.walk(&mut table).unwrap();
        // postgres (pid 100), first by CPU, exits between the table walk and its reads.
        std::fs::remove_dir_all(root.join("proc/100")).unwrap();
        let metrics = Toggles::new(METRICS, &all_on(METRICS));
        let settings = Settings { max_processes: 3, ..settings() };
        let mut scraper =
            Scraper::new(metrics, Toggles::new(RESOURCE_ATTRIBUTES, &all_on(RESOURCE_ATTRIBUTES)), settings, &root, 2);
        let boot = boot_time(&root).unwrap();
        let (out, counts) = scraper.scrape(&Tick::new(&root, boot, boot + 10_000_000_000_000), &table, &mut walker);
        assert_eq!(pids(&out).len(), 3, "max_processes is filled from the next ranked: {:?}", pids(&out));
        assert_eq!(pids(&out)[..2], ["1", "3"]);
        assert_eq!((counts.emitted, counts.vanished, counts.over_max), (3, 2, 1));
    }

    #[test]
    fn golden_processes_top_n() {
        let (out, counts) = scrape_fixture(Settings { max_processes: 3, ..settings() });
        // Lifetime CPU on a first scrape: postgres 10%, systemd 0.23%, the kworker
        // 0.005%, then the long-named process and kthreadd (cut by max_processes).
        assert_eq!(pids(&out), ["100", "1", "3"]);
        assert_eq!(
            counts,
            Counts { seen: 7, emitted: 3, vanished: 1, malformed: 1, over_max: 2, ..Counts::default() },
            "pid 400 has a garbled stat, pid 500 no stat"
        );
        let pg = &out[0];
        assert_eq!(
            attrs(pg),
            [
                ("process.pid", "100"),
                ("process.parent_pid", "1"),
                ("process.executable.name", "postgres"),
                ("process.executable.path", "/usr/lib/postgresql/16/bin/postgres"),
                ("process.command", "/usr/lib/postgresql/16/bin/postgres"),
                ("process.command_line", "/usr/lib/postgresql/16/bin/postgres -D /var/lib/postgresql/16/main"),
                ("process.owner", "postgres"),
                ("process.cgroup", "0::/system.slice/p100.service"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        let cpu = values(metric(pg, "process.cpu.time"));
        assert_eq!(cpu.iter().map(|(_, v)| *v).collect::<Vec<_>>(), [900.0, 100.0, 2.5]);
        assert_eq!(cpu[2].0[0].1, "wait");
        let page = super::super::memory::page_size() as f64;
        assert_eq!(values(metric(pg, "process.memory.usage"))[0].1, 100_000.0 * page);
        assert_eq!(values(metric(pg, "process.memory.virtual"))[0].1, 4e9);
        assert_eq!(values(metric(pg, "process.memory.utilization"))[0].1, 100_000.0 * page / (16_384_000.0 * 1024.0));
        let io = values(metric(pg, "process.disk.io"));
        assert_eq!((io[0].1, io[1].1), (1e9, 2e9));
        let ops = values(metric(pg, "process.disk.operations"));
        assert_eq!((ops[0].1, ops[1].1), (50_000.0, 60_000.0));
        let faults = values(metric(pg, "process.paging.faults"));
        assert_eq!((faults[0].1, faults[1].1), (300.0, 900_000.0));
        let switches = values(metric(pg, "process.context_switches"));
        assert_eq!((switches[0].1, switches[1].1), (3000.0, 200_000.0));
        assert_eq!(values(metric(pg, "process.threads"))[0].1, 8.0);
        assert_eq!(values(metric(pg, "process.open_file_descriptors"))[0].1, 5.0);
        assert_eq!(values(metric(pg, "process.signals_pending"))[0].1, 2.0);
        assert_eq!(values(metric(pg, "process.uptime"))[0].1, 9995.0);
        assert!(pg.scope_metrics[0].metrics.iter().all(|m| m.name != "process.cpu.utilization"), "first scrape");
        // The kernel worker: its long name kept whole, no executable path asked of it.
        let kworker = attrs(&out[2]);
        assert_eq!(kworker[2].1, "kworker/u8:2-events_unbound");
        assert!(kworker.iter().all(|(k, _)| k != "process.executable.path" && k != "process.command"));
    }

    #[test]
    fn long_names_owners_and_errors() {
        let (out, counts) = scrape_fixture(settings());
        assert_eq!(out.len(), 5);
        let long = out.iter().find(|r| attrs(r)[0].1 == "200").unwrap();
        let a = attrs(long);
        assert_eq!(a[2], ("process.executable.name".into(), "very-long-process-name".into()));
        assert!(a.iter().all(|(k, _)| k != "process.owner"), "uid 1000 is not in the host's passwd");
        assert_eq!(counts.errors, 1, "{:?}", counts.first_error);
        assert!(counts.first_error.unwrap().contains("uid Some(1000)"));
        let (_, counts) = scrape_fixture(Settings { mute: Mute { user: true, ..Mute::default() }, ..settings() });
        assert_eq!(counts.errors, 0);
    }

    #[test]
    fn thresholds_filters_and_delay() {
        let gib = 1 << 30;
        let (out, c) = scrape_fixture(Settings { min_memory_bytes: 100 << 20, ..settings() });
        assert_eq!((pids(&out), c.below_thresholds), (vec!["100".to_string()], 4));
        // Under every threshold that is set: young (< 9500 s) and idle (< 5 %).
        let (out, c) = scrape_fixture(Settings { min_age_ns: 9_500_000_000_000, min_cpu_percent: 5.0, ..settings() });
        assert_eq!((out.len(), c.below_thresholds), (4, 1), "only the 9000 s old idle process");
        let (out, _) = scrape_fixture(Settings { min_age_ns: 9_500_000_000_000, min_memory_bytes: gib, ..settings() });
        assert!(!pids(&out).contains(&"200".to_string()));
        let (out, c) = scrape_fixture(Settings { delay_ns: 9_500_000_000_000, ..settings() });
        assert_eq!((out.len(), c.below_thresholds), (4, 1));
        let include = Match::<Names>::new(&["post*", "very-long-*"], MatchType::Glob);
        let exclude = Match::<Names>::new(&["very-long-process-name"], MatchType::Strict);
        let (out, c) =
            scrape_fixture(Settings { filter: Filter::new(Some(&include), Some(&exclude)).unwrap(), ..settings() });
        assert_eq!((pids(&out), c.filtered), (vec!["100".to_string()], 4), "the long name is matched whole");
    }

    #[test]
    fn always_include_beats_thresholds_rank_and_exclude() {
        let always = Match::<Names>::new(&["system*"], MatchType::Glob);
        let exclude = Match::<Names>::new(&["systemd"], MatchType::Strict);
        let settings = || Settings {
            always: Filter::new(Some(&always), None).unwrap(),
            filter: Filter::new(None, Some(&exclude)).unwrap(),
            min_memory_bytes: 1 << 40,
            ..settings()
        };
        // postgres (most CPU) is under the memory threshold; systemd is kept anyway.
        let (out, c) = scrape_fixture(settings());
        assert_eq!(pids(&out), ["1"]);
        assert_eq!(c.below_thresholds, 4);
        // With room for one, the always-included process takes it.
        let (out, _) = scrape_fixture(Settings { max_processes: 1, min_memory_bytes: 0, ..settings() });
        assert_eq!(pids(&out), ["1"]);
    }

    #[test]
    fn rates_follow_the_last_scrape_and_state_goes_with_the_process() {
        let root = fixture();
        let (mut s, mut table, mut walker, boot) =
            fixture_scraper(Settings { max_processes: 1, ..settings() }, &MetricToggles::new());
        let t0 = boot + 10_000_000_000_000;
        let (out, _) = s.scrape(&Tick::new(&root, boot, t0), &table, &mut walker);
        assert_eq!(pids(&out), ["100"]);
        assert_eq!(s.tracked(), 5);
        // Ten seconds later the long-named process used a whole core; postgres nothing.
        let busy = table.entries.iter_mut().find(|p| p.pid == 200).unwrap();
        busy.utime += 600;
        busy.stime += 400;
        let (out, _) = s.scrape(&Tick::new(&root, boot, t0 + 10_000_000_000), &table, &mut walker);
        assert_eq!(pids(&out), ["200"]);
        let util = values(metric(&out[0], "process.cpu.utilization"));
        assert_eq!(util.iter().map(|(_, v)| *v).collect::<Vec<_>>(), [0.3, 0.2, 0.0], "of 2 cores");
        // Processes that exit are forgotten; a reused pid starts over.
        table.entries.retain(|p| p.pid != 100);
        table.entries.iter_mut().find(|p| p.pid == 200).unwrap().starttime += 1;
        let (out, _) = s.scrape(&Tick::new(&root, boot, t0 + 20_000_000_000), &table, &mut walker);
        assert_eq!(s.tracked(), 4);
        assert!(out[0].scope_metrics[0].metrics.iter().all(|m| m.name != "process.cpu.utilization"));
    }
}

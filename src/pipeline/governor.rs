//! The memory governor: one per process, shared by every pipeline and every
//! `memory_limiter` instance. It reads what the kernel charges the process (the
//! resident set, from `/proc/self/statm`: one `pread` of an open file) every
//! `check_interval` (the shortest any instance asks for) and works out, for each
//! instance, its degradation level and whether it is at its soft limit.
//!
//! Two places act on it. Receivers consult it at their door ([`Gate`]): from an
//! instance's soft limit on, the pipelines behind it refuse new data exactly as a
//! full pipeline does, so OTLP clients are told to retry, a file tail waits and a
//! scraper skips its tick. Inside the pipeline, the `memory_limiter` processor reads
//! the level and sheds by importance. The governor itself never drops anything.
//!
//! It must never take a lock on the data path: the door and the processor read
//! atomics the governor's task writes.

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::ComponentId;
use crate::pdata::Signal;
use crate::telemetry::MemoryLimiterMetrics;

/// Levels are left only when memory falls this many points of the limit below the
/// level's threshold, so the agent does not flap at a boundary.
pub const HYSTERESIS_PERCENT: f64 = 5.0;

/// One `memory_limiter` instance's limits, resolved to bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// `limit_mib`: never crossed.
    pub hard: u64,
    /// `limit_mib - spike_limit_mib`: from here on receivers refuse.
    pub soft: u64,
    /// Each drop level's `threshold_percent` of `hard`, ascending.
    pub levels: Vec<f64>,
    pub check_interval: Duration,
    /// How often the allocator is asked to return freed memory while at the soft limit
    /// or a drop level.
    pub collect_when_soft: Duration,
    /// … and at the hard limit.
    pub collect_when_hard: Duration,
}

/// One instance's view of the governor's reading.
pub struct Limiter {
    id: ComponentId,
    limits: Limits,
    /// 0: nothing shed; 1..=levels.len(): that many drop levels apply; one more:
    /// at the soft limit (every level applies and receivers refuse).
    level: AtomicUsize,
    refusing: AtomicBool,
    metrics: MemoryLimiterMetrics,
}

impl Limiter {
    fn new(id: &ComponentId, limits: Limits, metrics: MemoryLimiterMetrics) -> Arc<Limiter> {
        metrics.limit.set(i64::try_from(limits.hard).unwrap_or(i64::MAX));
        Arc::new(Limiter {
            id: id.clone(),
            limits,
            level: AtomicUsize::new(0),
            refusing: AtomicBool::new(false),
            metrics,
        })
    }

    pub fn id(&self) -> &ComponentId {
        &self.id
    }

    /// The drop levels that apply now (0 = none).
    pub fn drop_levels(&self) -> usize {
        self.level.load(Ordering::Relaxed).min(self.limits.levels.len())
    }

    /// Memory is at or over the soft limit: receivers refuse.
    pub fn refusing(&self) -> bool {
        self.refusing.load(Ordering::Relaxed)
    }

    pub fn metrics(&self) -> &MemoryLimiterMetrics {
        &self.metrics
    }

    /// The level for a reading, from the current one: up to every threshold reached,
    /// down only past a threshold less the hysteresis.
    fn next_level(&self, current: usize, used: u64) -> usize {
        let percent = used as f64 * 100.0 / self.limits.hard.max(1) as f64;
        let thresholds = &self.limits.levels;
        let soft_level = thresholds.len() + 1;
        if used >= self.limits.soft {
            return soft_level;
        }
        let mut level = current.min(thresholds.len());
        while level < thresholds.len() && percent >= thresholds[level] {
            level += 1;
        }
        while level > 0 && percent < thresholds[level - 1] - HYSTERESIS_PERCENT {
            level -= 1;
        }
        level
    }

    pub(crate) fn update(&self, used: u64, elapsed: Duration) {
        let current = self.level.load(Ordering::Relaxed);
        self.metrics.level_seconds(current).inc_by(elapsed.as_secs_f64());
        let next = self.next_level(current, used);
        let refusing = used >= self.limits.soft;
        self.refusing.store(refusing, Ordering::Relaxed);
        if next != current {
            self.level.store(next, Ordering::Relaxed);
            self.metrics.level.set(next as i64);
            let used_mib = used >> 20;
            if refusing {
                warn!(processor = %self.id, used_mib, soft_limit_mib = self.limits.soft >> 20,
                    "Memory is at the soft limit; receivers refuse new data until it falls.");
            } else if next > current {
                // `from`: a busy host may pass more than one level between readings.
                warn!(processor = %self.id, from = current, level = next, used_mib, "Memory rises; shedding by importance at a higher level.");
            } else {
                info!(processor = %self.id, from = current, level = next, used_mib, "Memory falls; shedding less.");
            }
        }
    }

    /// Counts a refusal of `items` of `signal` at the door.
    pub fn count_refused(&self, signal: Signal, items: u64) {
        self.metrics.refused[signal.index()].inc_by(items);
    }
}

/// The process's memory as the kernel charges it.
struct Meter {
    statm: Option<std::fs::File>,
    page_size: u64,
}

impl Meter {
    fn open() -> Meter {
        let statm = std::fs::File::open("/proc/self/statm").ok();
        if statm.is_none() {
            warn!("Cannot open /proc/self/statm; the memory governor reads the allocator's figure instead.");
        }
        Meter { statm, page_size: page_size() }
    }

    fn read(&self) -> u64 {
        if let Some(file) = &self.statm {
            let mut buf = [0u8; 128];
            if let Ok(n) = file.read_at(&mut buf, 0)
                && let Some(pages) = parse_statm_resident(&buf[..n])
            {
                return pages * self.page_size;
            }
        }
        allocator_rss()
    }
}

/// The second field of `/proc/self/statm`: resident pages.
fn parse_statm_resident(text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?;
    text.split_ascii_whitespace().nth(1)?.parse().ok()
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as u64 } else { 4096 }
}

fn allocator_rss() -> u64 {
    let (mut elapsed, mut user, mut system) = (0usize, 0usize, 0usize);
    let (mut rss, mut peak_rss, mut commit, mut peak_commit, mut faults) = (0usize, 0usize, 0usize, 0usize, 0usize);
    // SAFETY: mi_process_info only writes the eight numbers it is given pointers to.
    unsafe {
        libmimalloc_sys::mi_process_info(
            &mut elapsed,
            &mut user,
            &mut system,
            &mut rss,
            &mut peak_rss,
            &mut commit,
            &mut peak_commit,
            &mut faults,
        )
    };
    rss as u64
}

/// Asks the allocator to give freed memory back to the kernel now: what upstream's
/// limiter does by forcing a GC. mimalloc frees a thread's pages only on that thread
/// (blocks another thread freed wait there), so this collects the calling thread and
/// asks every runtime worker to collect its own the next time it parks
/// ([`on_worker_park`]). Without that, memory a quiet worker holds keeps the resident
/// set, and so the level, high after the data that filled it is gone.
fn collect() {
    COLLECT_EPOCH.fetch_add(1, Ordering::Relaxed);
    collect_this_thread();
}

fn collect_this_thread() {
    COLLECTED_EPOCH.set(COLLECT_EPOCH.load(Ordering::Relaxed));
    // SAFETY: mi_collect has no preconditions.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// Raised by [`collect`]; each thread collects once per raise.
static COLLECT_EPOCH: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COLLECTED_EPOCH: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// For the runtime's `on_thread_park`: a worker about to sleep collects its own
/// allocator pages if the governor asked since it last did. One atomic load
/// otherwise.
pub fn on_worker_park() {
    if COLLECTED_EPOCH.get() != COLLECT_EPOCH.load(Ordering::Relaxed) {
        collect_this_thread();
    }
}

/// The memory `*_percentage` options are shares of: the cgroup's limit when there is
/// one, else the machine's total, as upstream.
pub fn total_memory() -> io::Result<u64> {
    if let Some(limit) = cgroup_limit() {
        return Ok(limit);
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo")?;
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "/proc/meminfo has no MemTotal"))
}

fn cgroup_limit() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let limit = if controllers.is_empty() {
            std::fs::read_to_string(format!("/sys/fs/cgroup{path}/memory.max")).ok()
        } else if controllers.split(',').any(|c| c == "memory") {
            std::fs::read_to_string(format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")).ok()
        } else {
            None
        };
        // "max" (v2) or a huge number (v1) mean no limit.
        if let Some(limit) = limit.and_then(|l| l.trim().parse::<u64>().ok()).filter(|&l| l < 1 << 60) {
            return Some(limit);
        }
    }
    None
}

/// The governor: made once per graph, run while any `memory_limiter` exists.
///
/// A reload stages the limiters of the graph being built ([`Governor::begin`]) while
/// the running ones go on: an instance whose limits did not change is carried over,
/// with its level, and [`Governor::commit`] makes the staged set the running one.
pub struct Governor {
    limiters: Mutex<Vec<Arc<Limiter>>>,
    staged: Mutex<Option<Vec<Arc<Limiter>>>>,
    changes: watch::Sender<u64>,
    used: AtomicU64,
}

impl Default for Governor {
    fn default() -> Self {
        Governor {
            limiters: Mutex::new(Vec::new()),
            staged: Mutex::new(None),
            changes: watch::channel(0).0,
            used: AtomicU64::new(0),
        }
    }
}

impl Governor {
    pub fn new() -> Arc<Governor> {
        Arc::new(Governor::default())
    }

    fn active(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Limiter>>> {
        self.limiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn staging(&self) -> std::sync::MutexGuard<'_, Option<Vec<Arc<Limiter>>>> {
        self.staged.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The instance `id`, made on first use: a processor id listed in several
    /// pipelines is one limiter, as upstream shares it. While staging, a running
    /// instance with the same limits is carried over.
    pub fn limiter(&self, id: &ComponentId, limits: Limits, metrics: MemoryLimiterMetrics) -> Arc<Limiter> {
        let mut staging = self.staging();
        if let Some(staged) = staging.as_mut() {
            if let Some(existing) = staged.iter().find(|l| &l.id == id) {
                return existing.clone();
            }
            let running = self.active().iter().find(|l| &l.id == id && l.limits == limits).cloned();
            let limiter = running.unwrap_or_else(|| Limiter::new(id, limits, metrics));
            staged.push(limiter.clone());
            return limiter;
        }
        let mut limiters = self.active();
        if let Some(existing) = limiters.iter().find(|l| &l.id == id) {
            return existing.clone();
        }
        let limiter = Limiter::new(id, limits, metrics);
        limiters.push(limiter.clone());
        limiter
    }

    /// The instance `id`: the staged one while a reload is being built.
    pub fn find(&self, id: &ComponentId) -> Option<Arc<Limiter>> {
        if let Some(staged) = self.staging().as_ref() {
            return staged.iter().find(|l| &l.id == id).cloned();
        }
        self.active().iter().find(|l| &l.id == id).cloned()
    }

    /// Starts staging the limiters of a graph being built.
    pub fn begin(&self) {
        *self.staging() = Some(Vec::new());
    }

    /// A processor kept by the reload keeps its running limiter.
    pub fn keep(&self, id: &ComponentId) {
        let running = self.active().iter().find(|l| &l.id == id).cloned();
        if let (Some(staged), Some(limiter)) = (self.staging().as_mut(), running)
            && !staged.iter().any(|l| &l.id == id)
        {
            staged.push(limiter);
        }
    }

    /// The staged limiters become the running ones.
    pub fn commit(&self) {
        if let Some(staged) = self.staging().take() {
            *self.active() = staged;
        }
    }

    /// The reload was abandoned: the running limiters stay.
    pub fn rollback(&self) {
        *self.staging() = None;
    }

    pub fn is_empty(&self) -> bool {
        self.active().is_empty()
    }

    /// The last reading, in bytes.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes a first reading, so the door is right before any data arrives.
    pub fn prime(&self) {
        self.sample(&Meter::open(), Duration::ZERO);
    }

    fn sample(&self, meter: &Meter, elapsed: Duration) -> u64 {
        let used = meter.read();
        self.used.store(used, Ordering::Relaxed);
        let limiters = self.active().clone();
        for limiter in &limiters {
            limiter.metrics.memory.set(i64::try_from(used).unwrap_or(i64::MAX));
            limiter.update(used, elapsed);
        }
        self.changes.send_replace(used);
        used
    }

    /// Reads memory every shortest `check_interval` until `stop`.
    pub async fn run(self: Arc<Governor>, stop: CancellationToken) {
        let limiters = self.active().clone();
        let Some(period) = limiters.iter().map(|l| l.limits.check_interval).min() else {
            return;
        };
        let meter = Meter::open();
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last = Instant::now();
        let mut last_collect: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let now = Instant::now();
            let used = self.sample(&meter, now.duration_since(last));
            last = now;
            // At a limit, or shedding at a level below it, give freed memory back, no
            // more often than asked. At a level: once the data that raised memory is
            // gone, what the allocator keeps would hold the level up.
            let pacing = limiters
                .iter()
                .filter_map(|l| {
                    if used >= l.limits.hard {
                        Some(l.limits.collect_when_hard)
                    } else if used >= l.limits.soft || l.level.load(Ordering::Relaxed) > 0 {
                        Some(l.limits.collect_when_soft)
                    } else {
                        None
                    }
                })
                .min();
            if let Some(pacing) = pacing
                && last_collect.is_none_or(|at| now.duration_since(at) >= pacing)
            {
                last_collect = Some(now);
                collect();
            }
        }
    }

    /// A gate for the door of pipelines behind `limiters`.
    pub fn gate(&self, limiters: Vec<Arc<Limiter>>) -> Option<Gate> {
        if limiters.is_empty() {
            return None;
        }
        Some(Gate { limiters: limiters.into(), changes: self.changes.subscribe() })
    }
}

/// The receivers' side of the governor: whether the pipelines behind a source may
/// take more.
#[derive(Clone, Debug)]
pub struct Gate {
    limiters: Arc<[Arc<Limiter>]>,
    changes: watch::Receiver<u64>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("id", &self.id).field("limits", &self.limits).finish()
    }
}

impl Gate {
    /// Joins two gates (a source feeding pipelines behind different limiters).
    pub fn join(a: Option<Gate>, b: Option<Gate>) -> Option<Gate> {
        match (a, b) {
            (Some(a), Some(b)) => {
                let mut limiters: Vec<Arc<Limiter>> = a.limiters.iter().cloned().collect();
                for l in b.limiters.iter() {
                    if !limiters.iter().any(|x| Arc::ptr_eq(x, l)) {
                        limiters.push(l.clone());
                    }
                }
                Some(Gate { limiters: limiters.into(), changes: a.changes })
            }
            (a, b) => a.or(b),
        }
    }

    /// Whether some limiter is at its soft limit; if so, counts the refusal there.
    pub fn refuses(&self, signal: Signal, items: u64) -> bool {
        let mut refused = false;
        for limiter in self.limiters.iter().filter(|l| l.refusing()) {
            limiter.count_refused(signal, items);
            refused = true;
        }
        refused
    }

    /// Resolves once no limiter refuses (or the governor is gone).
    pub async fn open(&self) {
        let mut changes = self.changes.clone();
        while self.limiters.iter().any(|l| l.refusing()) {
            if changes.changed().await.is_err() {
                return;
            }
        }
    }
}

impl crate::component::Door for Gate {
    fn refuses(&self, signal: Signal, items: u64) -> bool {
        Gate::refuses(self, signal, items)
    }

    fn open(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(Gate::open(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(levels: Vec<f64>) -> Arc<Limiter> {
        let telemetry = crate::telemetry::Telemetry::new();
        let id = ComponentId::parse("memory_limiter").unwrap();
        let limits = Limits {
            hard: 1000,
            soft: 800,
            levels,
            check_interval: Duration::from_millis(100),
            collect_when_soft: Duration::from_secs(10),
            collect_when_hard: Duration::ZERO,
        };
        Governor::new().limiter(&id, limits, telemetry.memory_limiter(&id))
    }

    #[test]
    fn levels_rise_at_once_and_fall_with_hysteresis() {
        let l = limiter(vec![50.0, 60.0, 70.0]);
        assert_eq!(l.next_level(0, 490), 0);
        assert_eq!(l.next_level(0, 500), 1);
        assert_eq!(l.next_level(0, 720), 3, "levels are cumulative: a jump reaches every one passed");
        // From 3: stays until under 70 - 5.
        assert_eq!(l.next_level(3, 660), 3);
        assert_eq!(l.next_level(3, 640), 2);
        assert_eq!(l.next_level(3, 300), 0);
        assert_eq!(l.next_level(1, 460), 1, "45 % is within the hysteresis of level 1");
        assert_eq!(l.next_level(1, 440), 0);
        assert_eq!(l.next_level(0, 800), 4, "the soft limit is the level past the last");
        assert_eq!(l.next_level(4, 790), 3);
    }

    #[test]
    fn refusal_follows_the_soft_limit() {
        let l = limiter(vec![]);
        l.update(799, Duration::ZERO);
        assert!(!l.refusing());
        l.update(800, Duration::ZERO);
        assert!(l.refusing());
        assert_eq!(l.drop_levels(), 0);
        l.update(100, Duration::from_secs(1));
        assert!(!l.refusing());
    }

    #[test]
    fn statm() {
        assert_eq!(parse_statm_resident(b"4520 1234 300 10 0 900 0\n"), Some(1234));
        assert_eq!(parse_statm_resident(b"4520"), None);
        let meter = Meter::open();
        assert!(meter.read() > 1 << 20, "this test process has more than 1 MiB resident");
    }

    #[tokio::test]
    async fn gate_opens_when_memory_falls() {
        let governor = Governor::new();
        let telemetry = crate::telemetry::Telemetry::new();
        let id = ComponentId::parse("memory_limiter").unwrap();
        let limits = Limits {
            hard: 1000,
            soft: 800,
            levels: vec![],
            check_interval: Duration::from_millis(100),
            collect_when_soft: Duration::from_secs(10),
            collect_when_hard: Duration::ZERO,
        };
        let l = governor.limiter(&id, limits, telemetry.memory_limiter(&id));
        let gate = governor.gate(vec![l.clone()]).unwrap();
        l.update(900, Duration::ZERO);
        assert!(gate.refuses(Signal::Logs, 3));
        assert_eq!(l.metrics().refused[Signal::Logs.index()].get(), 3);
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.open().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        l.update(100, Duration::ZERO);
        governor.changes.send_replace(100);
        waiting.await.unwrap();
        assert!(!gate.refuses(Signal::Logs, 1));
    }
}

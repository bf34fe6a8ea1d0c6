//! One receiver's scrapers and the loop that runs them every `collection_interval`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{Metric, ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use super::config::HostmetricsConfig;
use super::filter::Filter;
use super::procfs::{Table, Walker};
use super::{Tick, Toggles, cpu, disk, filesystem, load, memory, network, paging, process, processes, system};
use crate::component::Consumer;
use crate::config::ComponentId;
use crate::pdata::{Batch, Payload, Signal};
use crate::receivers::{StartError, unix_nanos};
use crate::telemetry::{HostmetricsMetrics, Telemetry};

/// Every scraper of one receiver, with the state they keep between scrapes.
pub struct Scrape {
    root: PathBuf,
    boot: u64,
    cpu: Option<cpu::Scraper>,
    memory: Option<memory::Scraper>,
    load: Option<load::Scraper>,
    disk: Option<disk::Scraper>,
    filesystem: Option<filesystem::Scraper>,
    network: Option<network::Scraper>,
    paging: Option<paging::Scraper>,
    processes: Option<processes::Scraper>,
    process: Option<process::Scraper>,
    system: Option<system::Scraper>,
    walker: Walker,
    table: Table,
}

/// What one scrape did besides its data: time and failures per scraper, and the
/// process scraper's counts.
#[derive(Debug, Default)]
pub struct Report {
    pub durations: Vec<(&'static str, Duration)>,
    pub errors: Vec<(&'static str, u64, String)>,
    pub process: Option<process::Counts>,
    pub tracked: usize,
}

impl Scrape {
    pub fn new(config: &HostmetricsConfig) -> Result<Scrape, String> {
        // Unset or empty is the agent's own `/`, as upstream.
        let root = config.root_path.clone().filter(|p| !p.as_os_str().is_empty()).unwrap_or_else(|| PathBuf::from("/"));
        if !root.is_dir() {
            return Err(format!("root_path {}: not a directory", root.display()));
        }
        let boot = super::boot_time(&root)?;
        let s = &config.scrapers;
        let filesystem = match &s.filesystem {
            Some(f) => Some(filesystem::Scraper::new(
                Toggles::new(filesystem::METRICS, &f.metrics),
                filesystem::Filters {
                    devices: Filter::new(f.include_devices.as_ref(), f.exclude_devices.as_ref())?,
                    fs_types: Filter::new(f.include_fs_types.as_ref(), f.exclude_fs_types.as_ref())?,
                    mount_points: Filter::new(f.include_mount_points.as_ref(), f.exclude_mount_points.as_ref())?,
                    include_virtual: f.include_virtual_filesystems,
                },
                Box::new(filesystem::Bounded::new(filesystem::Statvfs, filesystem::STATFS_TIMEOUT)),
            )),
            None => None,
        };
        let process = match &s.process {
            Some(p) => {
                let cores = cpu::parse_stat(&super::read_proc(&root, "stat")?)?.len();
                let delay = p.scrape_process_delay.0;
                let settings = process::Settings {
                    filter: Filter::new(p.include.as_ref(), p.exclude.as_ref())?,
                    always: Filter::new(p.always_include.as_ref(), None)?,
                    max_processes: p.max_processes,
                    min_cpu_percent: p.min_cpu_percent,
                    min_memory_bytes: (p.min_memory_mib * 1024.0 * 1024.0) as u64,
                    min_age_ns: p.min_age.0.as_nanos() as u64,
                    delay_ns: delay.as_nanos() as u64,
                    mute: process::Mute {
                        all: p.mute_process_all_errors,
                        name: p.mute_process_name_error,
                        exe: p.mute_process_exe_error,
                        io: p.mute_process_io_error,
                        user: p.mute_process_user_error,
                        cgroup: p.mute_process_cgroup_error,
                    },
                };
                Some(process::Scraper::new(
                    Toggles::new(process::METRICS, &p.metrics),
                    Toggles::new(process::RESOURCE_ATTRIBUTES, &p.resource_attributes),
                    settings,
                    &root,
                    cores,
                ))
            }
            None => None,
        };
        Ok(Scrape {
            boot,
            cpu: s.cpu.as_ref().map(|c| cpu::Scraper::new(Toggles::new(cpu::METRICS, &c.metrics))),
            memory: s.memory.as_ref().map(|c| memory::Scraper::new(Toggles::new(memory::METRICS, &c.metrics))),
            load: s.load.as_ref().map(|c| load::Scraper::new(Toggles::new(load::METRICS, &c.metrics), c.cpu_average)),
            disk: match &s.disk {
                Some(d) => Some(disk::Scraper::new(
                    Toggles::new(disk::METRICS, &d.metrics),
                    Filter::new(d.include.as_ref(), d.exclude.as_ref())?,
                )),
                None => None,
            },
            filesystem,
            network: match &s.network {
                Some(n) => Some(network::Scraper::new(
                    Toggles::new(network::METRICS, &n.metrics),
                    Filter::new(n.include.as_ref(), n.exclude.as_ref())?,
                )),
                None => None,
            },
            paging: s.paging.as_ref().map(|c| paging::Scraper::new(Toggles::new(paging::METRICS, &c.metrics))),
            processes: s
                .processes
                .as_ref()
                .map(|c| processes::Scraper::new(Toggles::new(processes::METRICS, &c.metrics))),
            process,
            system: s.system.as_ref().map(|c| system::Scraper::new(Toggles::new(system::METRICS, &c.metrics))),
            walker: Walker::new(&root),
            table: Table::default(),
            root,
        })
    }

    /// Runs every scraper once at `now` (ns since the epoch).
    pub fn run(&mut self, now: u64) -> (ExportMetricsServiceRequest, Report) {
        let run_started = Instant::now();
        let tick = Tick::new(&self.root, self.boot, now);
        let mut report = Report::default();
        let mut scopes = Vec::new();
        let mut system = |name: &'static str,
                          result: Result<Vec<Metric>, String>,
                          started: Instant,
                          report: &mut Report| {
            report.durations.push((name, started.elapsed()));
            match result {
                Ok(metrics) if !metrics.is_empty() => {
                    scopes.push(ScopeMetrics { scope: Some(super::scope(name)), metrics, schema_url: String::new() })
                }
                Ok(_) => {}
                Err(e) => report.errors.push((name, 1, e)),
            }
        };
        macro_rules! simple {
            ($field:ident, $name:literal) => {
                if let Some(s) = &mut self.$field {
                    let started = Instant::now();
                    system($name, s.scrape(&tick), started, &mut report);
                }
            };
        }
        simple!(cpu, "cpu");
        simple!(memory, "memory");
        simple!(load, "load");
        simple!(disk, "disk");
        simple!(system, "system");
        // Scrapers whose parts fail apart: what was read goes out, the failures are counted.
        macro_rules! partial {
            ($field:ident, $name:literal) => {
                if let Some(s) = &mut self.$field {
                    let started = Instant::now();
                    let (metrics, errors) = s.scrape(&tick);
                    if let Some(first) = errors.first() {
                        report.errors.push(($name, errors.len() as u64, first.clone()));
                    }
                    system($name, Ok(metrics), started, &mut report);
                }
            };
        }
        partial!(filesystem, "filesystem");
        partial!(network, "network");
        partial!(paging, "paging");
        // One pass over the process table serves both process scrapers.
        let table_wanted = self.process.is_some() || self.processes.as_ref().is_some_and(|s| s.needs_table());
        let started = Instant::now();
        // Process CPU rates are over the time between walks, so the walk has its own time.
        let walked_at = now.saturating_add(run_started.elapsed().as_nanos() as u64);
        let table = match table_wanted {
            true => self.walker.walk(&mut self.table),
            false => Ok(()),
        };
        let table_time = started.elapsed();
        if let Some(s) = &mut self.processes {
            let started = Instant::now();
            let result = match &table {
                Ok(()) => s.scrape(&tick, &self.table),
                Err(e) => Err(e.clone()),
            };
            // The table walk is the process scraper's cost when it runs, else this one's.
            let started = if self.process.is_some() { started } else { started - table_time };
            system("processes", result, started, &mut report);
        }
        let mut resources = Vec::new();
        if !scopes.is_empty() {
            resources.push(ResourceMetrics {
                resource: Some(Resource::default()),
                scope_metrics: scopes,
                schema_url: String::new(),
            });
        }
        if let Some(s) = &mut self.process {
            let started = Instant::now();
            match &table {
                Ok(()) => {
                    let tick = tick.at(walked_at);
                    let (processes, counts) = s.scrape(&tick, &self.table, &mut self.walker);
                    resources.extend(processes);
                    if let Some(first) = &counts.first_error {
                        report.errors.push(("process", counts.errors, first.clone()));
                    }
                    report.process = Some(counts);
                    report.tracked = s.tracked();
                }
                Err(e) => report.errors.push(("process", 1, e.clone())),
            }
            report.durations.push(("process", started.elapsed() + table_time));
        }
        (ExportMetricsServiceRequest { resource_metrics: resources }, report)
    }
}

/// Scrape failures are logged once a minute per scraper; all are counted.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(60);

pub async fn start(
    id: &ComponentId,
    config: &HostmetricsConfig,
    consumer: Consumer,
    telemetry: &Telemetry,
    stop: CancellationToken,
    tracker: &TaskTracker,
) -> Result<(), StartError> {
    let scrape = Scrape::new(config).map_err(|e| StartError::Config(format!("receiver {id}: {e}")))?;
    let looper = Loop {
        id: id.clone(),
        config: config.clone(),
        interval: config.collection_interval.0,
        consumer,
        metrics: telemetry.hostmetrics(id),
        accepted: telemetry.receiver(id, "").accepted(Signal::Metrics).clone(),
        refused: telemetry.receiver(id, "").refused(Signal::Metrics).clone(),
        logged: HashMap::new(),
    };
    let initial_delay = config.initial_delay.0;
    tracker.spawn(async move {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(initial_delay) => {}
        }
        looper.run(scrape, stop).await;
    });
    Ok(())
}

struct Loop {
    id: ComponentId,
    config: HostmetricsConfig,
    interval: Duration,
    consumer: Consumer,
    metrics: HostmetricsMetrics,
    accepted: crate::telemetry::Tally,
    refused: prometheus_client::metrics::counter::Counter,
    logged: HashMap<&'static str, Instant>,
}

impl Loop {
    async fn run(mut self, mut scrape: Scrape, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            // Reading /proc is blocking file I/O: off the async workers.
            let done = tokio::task::spawn_blocking(move || {
                let (request, report) = scrape.run(unix_nanos());
                (scrape, request, report)
            })
            .await;
            let Ok((back, request, report)) = done else {
                // A bug, not bad input (readers do not panic on any bytes): start over
                // with fresh state rather than stop collecting.
                warn!(receiver = %self.id, "A scrape panicked; its state is rebuilt and the next scrape goes on.");
                match Scrape::new(&self.config) {
                    Ok(fresh) => scrape = fresh,
                    Err(e) => {
                        warn!(receiver = %self.id, error = %e, "The receiver cannot start over; it stops.");
                        return;
                    }
                }
                continue;
            };
            scrape = back;
            self.record(&report);
            let payload = Payload::Metrics(request);
            let points = payload.item_count() as u64;
            if points == 0 {
                continue;
            }
            // A scrape that cannot be delivered before the next one is due is stale:
            // it is dropped and counted as refused.
            match tokio::time::timeout(self.interval, self.consumer.consume(Batch::new(payload))).await {
                Ok(Ok(())) => {
                    self.accepted.inc_by(points);
                }
                _ => {
                    self.refused.inc_by(points);
                    self.log_once("pipeline", || {
                        "The pipeline did not take a scrape before the next was due; it was dropped \
                         (counted in otelcol_receiver_refused_metric_points)."
                            .to_string()
                    });
                }
            }
        }
    }

    fn record(&mut self, report: &Report) {
        for (scraper, took) in &report.durations {
            self.metrics.duration(scraper).observe(took.as_secs_f64());
        }
        for (scraper, count, first) in &report.errors {
            self.metrics.errors(scraper).inc_by(*count);
            self.log_once(scraper, || format!("{scraper} scraper: {first} ({count} failures this scrape)."));
        }
        if let Some(c) = &report.process {
            self.metrics.processes_seen.inc_by(c.seen);
            self.metrics.processes_emitted.inc_by(c.emitted);
            for (reason, n) in [
                ("vanished", c.vanished),
                ("malformed", c.malformed),
                ("filtered", c.filtered),
                ("below_thresholds", c.below_thresholds),
                ("max_processes", c.over_max),
            ] {
                if n > 0 {
                    self.metrics.processes_skipped(reason).inc_by(n);
                }
            }
            self.metrics.processes_tracked.set(report.tracked as i64);
        }
    }

    fn log_once(&mut self, key: &'static str, message: impl FnOnce() -> String) {
        let due = self.logged.get(key).is_none_or(|at| at.elapsed() >= ERROR_LOG_EVERY);
        if due {
            self.logged.insert(key, Instant::now());
            warn!(receiver = %self.id, "{} Repeats are counted and logged once a minute.", message());
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;

    use super::*;

    fn config(yaml: &str) -> HostmetricsConfig {
        let node = crate::config::node::parse("t.yaml", yaml).unwrap();
        crate::component::parse_config(&node).unwrap()
    }

    const ALL: &str = "scrapers:
  cpu:
    metrics:
      system.cpu.utilization: {enabled: true}
  memory:
  load:
  disk:
  filesystem:
  network:
    metrics:
      system.network.conntrack.count: {enabled: true}
      system.network.conntrack.max: {enabled: true}
  paging:
  processes:
  process:
";

    /// A copy of the fixture host to break.
    fn fixture_copy() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(super::super::fixture().join("."))
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        dir
    }

    #[test]
    fn start_times_units_and_temporality() {
        let mut scrape =
            Scrape::new(&config(&format!("root_path: {}\n{ALL}", super::super::fixture().display()))).unwrap();
        let boot = 1_763_790_000 * 1_000_000_000;
        let now = boot + 10_000 * 1_000_000_000;
        let (request, _) = scrape.run(now);
        assert_eq!(request.resource_metrics.len(), 6, "the system resource and 5 processes");
        let mut checked = 0;
        for resource in &request.resource_metrics {
            let pid = resource.resource.as_ref().and_then(|r| r.attributes.first()).map(|kv| kv.key.clone());
            for m in resource.scope_metrics.iter().flat_map(|s| &s.metrics) {
                assert!(!m.unit.is_empty() && !m.description.is_empty(), "{}", m.name);
                match &m.data {
                    Some(Data::Sum(sum)) => {
                        assert_eq!(sum.aggregation_temporality, 2, "{} is cumulative", m.name);
                        for p in &sum.data_points {
                            match pid {
                                // Process series start when the process did.
                                // at the time of the walk over the process table.
                                Some(_) => {
                                    assert!(p.start_time_unix_nano >= boot, "{}", m.name);
                                    assert!(p.time_unix_nano >= now, "{}", m.name);
                                }
                                None => {
                                    assert_eq!(p.start_time_unix_nano, boot, "{}", m.name);
                                    assert_eq!(p.time_unix_nano, now, "{}", m.name);
                                }
                            }
                        }
                    }
                    Some(Data::Gauge(g)) => assert!(g.data_points.iter().all(|p| p.start_time_unix_nano == 0)),
                    other => panic!("{}: {other:?}", m.name),
                }
                checked += 1;
            }
        }
        assert!(checked > 40, "{checked}");
        let find = |name: &str| {
            request.resource_metrics[0].scope_metrics.iter().flat_map(|s| &s.metrics).find(|m| m.name == name).cloned()
        };
        let monotonic = |name: &str| match find(name).and_then(|m| m.data) {
            Some(Data::Sum(s)) => s.is_monotonic,
            other => panic!("{name}: {other:?}"),
        };
        assert!(monotonic("system.cpu.time") && monotonic("system.disk.io") && monotonic("system.paging.faults"));
        assert!(!monotonic("system.memory.usage") && !monotonic("system.disk.pending_operations"));
        assert!(!monotonic("system.filesystem.usage") && !monotonic("system.processes.count"));
        assert_eq!(find("system.disk.io_time").unwrap().unit, "s");
        assert_eq!(find("system.network.io").unwrap().unit, "By");
        // The busiest process, postgres, started 500 ticks (5 s) after boot.
        let postgres = &request.resource_metrics[1].scope_metrics[0].metrics[0];
        let Some(Data::Sum(cpu)) = &postgres.data else { panic!("{postgres:?}") };
        assert_eq!(cpu.data_points[0].start_time_unix_nano, boot + 5_000_000_000);
    }

    #[test]
    fn missing_and_garbled_files_lose_only_their_part() {
        let host = fixture_copy();
        let root = host.path();
        for gone in ["proc/swaps", "proc/100/io", "proc/sys/net/netfilter/nf_conntrack_count"] {
            std::fs::remove_file(root.join(gone)).unwrap();
        }
        // Bytes that are not UTF-8 in a mount point, an interface name and a passwd comment.
        let mut mountinfo = std::fs::read(root.join("proc/1/mountinfo")).unwrap();
        mountinfo.extend_from_slice(b"30 22 8:49 / /m\xff rw - ext4 /dev/sdd1 rw\n");
        std::fs::write(root.join("proc/1/mountinfo"), mountinfo).unwrap();
        std::fs::create_dir(root.join("m\u{fffd}")).unwrap();
        let mut dev = std::fs::read(root.join("proc/net/dev")).unwrap();
        dev.extend_from_slice(b"  w\xfe0: 1 2 0 0 0 0 0 0 3 4 0 0 0 0 0 0\n");
        std::fs::write(root.join("proc/net/dev"), dev).unwrap();
        std::fs::write(root.join("etc/passwd"), b"root:x:0:0:r\xf6\xf6t:/root:/bin/sh\n").unwrap();

        let mut scrape = Scrape::new(&config(&format!("root_path: {}\n{ALL}", root.display()))).unwrap();
        let (request, report) = scrape.run(1_763_800_000 * 1_000_000_000);
        let names: Vec<&str> = request.resource_metrics[0]
            .scope_metrics
            .iter()
            .flat_map(|s| &s.metrics)
            .map(|m| m.name.as_str())
            .collect();
        assert!(!names.contains(&"system.paging.usage"), "no /proc/swaps: no swap devices");
        assert!(names.contains(&"system.paging.faults") && names.contains(&"system.paging.operations"));
        assert!(names.contains(&"system.network.io") && names.contains(&"system.network.conntrack.max"));
        assert!(!names.contains(&"system.network.conntrack.count"));
        let failed: Vec<&str> = report.errors.iter().map(|(s, _, _)| *s).collect();
        assert!(!failed.contains(&"paging"), "{:?}", report.errors);
        assert!(failed.contains(&"network"), "{:?}", report.errors);
        assert!(failed.contains(&"process"), "the missing io file is reported: {:?}", report.errors);
        let text = format!("{request:?}");
        assert!(text.contains("w\u{fffd}0") && text.contains("/m\u{fffd}"), "lossy, not dropped");
        // pid 100 has no io file but lives: emitted without its disk I/O, not vanished.
        let counts = report.process.unwrap();
        assert_eq!((counts.emitted, counts.vanished), (5, 1), "{counts:?}");
        let postgres = request.resource_metrics.iter().find(|r| format!("{r:?}").contains("postgresql")).unwrap();
        let metrics: Vec<&str> = postgres.scope_metrics[0].metrics.iter().map(|m| m.name.as_str()).collect();
        assert!(metrics.contains(&"process.cpu.time") && !metrics.contains(&"process.disk.io"));
        assert!(text.contains("\"root\""), "the owner still resolves");
    }
}

//! One receiver's scrapers and the loop that runs them every `collection_interval`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{Metric, ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use super::config::HostmetricsConfig;
use super::filter::Filter;
use super::procfs::{Table, Walker};
use super::{Tick, Toggles, cpu, disk, filesystem, load, memory, network, paging, process, processes};
use crate::config::ComponentId;
use crate::pdata::{Batch, Payload, Signal};
use crate::pipeline::Consumer;
use crate::receivers::StartError;
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
        let root = config.root_path.clone().unwrap_or_else(|| PathBuf::from("/"));
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
                Box::new(filesystem::Statvfs),
            )),
            None => None,
        };
        let process = match &s.process {
            Some(p) => {
                let cores = cpu::parse_stat(&super::read_proc(&root, "stat")?)?.len();
                let delay = p.scrape_process_delay.0;
                let settings = process::Settings {
                    filter: Filter::new(p.include.as_ref(), p.exclude.as_ref())?,
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
            walker: Walker::new(&root),
            table: Table::default(),
            root,
        })
    }

    /// Runs every scraper once at `now` (ns since the epoch).
    pub fn run(&mut self, now: u64) -> (ExportMetricsServiceRequest, Report) {
        let tick = Tick { root: &self.root, boot: self.boot, now };
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
        if let Some(s) = &mut self.filesystem {
            let started = Instant::now();
            let result = s.scrape(&tick).map(|(metrics, errors)| {
                if let Some(first) = errors.first() {
                    report.errors.push(("filesystem", errors.len() as u64, first.clone()));
                }
                metrics
            });
            system("filesystem", result, started, &mut report);
        }
        simple!(network, "network");
        simple!(paging, "paging");
        // One pass over the process table serves both process scrapers.
        let table_wanted = self.process.is_some() || self.processes.as_ref().is_some_and(|s| s.needs_table());
        let started = Instant::now();
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

fn unix_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
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
    interval: Duration,
    consumer: Consumer,
    metrics: HostmetricsMetrics,
    accepted: prometheus_client::metrics::counter::Counter,
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
                warn!(receiver = %self.id, "A scrape panicked; the receiver stops.");
                return;
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

//! The agent's lifecycle: load and validate the config, start the admin endpoints and
//! the pipeline graph, reload on SIGHUP (or a request), wait for SIGTERM or SIGINT,
//! drain, stop.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::cli::LogFormat;
use crate::component::Kind;
use crate::config::telemetry::{LogEncoding, MetricsLevel};
use crate::config::{self, ComponentId, Fingerprint, Severity, Source};
use crate::extensions::{ExtensionConfig, health_check};
use crate::pipeline::{ApplyError, Changes, Graph};
use crate::registry::{self, Config, Loaded};
use crate::reload;
use crate::telemetry::{self, ReloadResult, Telemetry};

/// Reads the given files, or the embedded default when there are none.
pub fn load_config(paths: &[PathBuf]) -> Loaded {
    if paths.is_empty() {
        return registry::load_default();
    }
    let mut sources = Vec::new();
    let mut unreadable = Vec::new();
    for path in paths {
        match std::fs::read_to_string(path) {
            Ok(text) => sources.push(Source { name: path.display().to_string(), text }),
            Err(e) => unreadable.push(config::Diagnostic {
                severity: Severity::Error,
                location: None,
                message: format!("cannot read config file `{}`: {e}", path.display()),
            }),
        }
    }
    if !unreadable.is_empty() {
        return Loaded { config: None, diagnostics: unreadable };
    }
    registry::load(&sources, &|name| std::env::var(name).ok())
}

/// `ocelot validate`: prints every diagnostic; 0 when valid, 1 otherwise.
pub fn validate(paths: &[PathBuf]) -> i32 {
    let loaded = load_config(paths);
    for diagnostic in &loaded.diagnostics {
        eprintln!("{diagnostic}");
    }
    let errors = loaded.errors().count();
    if errors == 0 && loaded.config.is_some() {
        let what = if paths.is_empty() {
            "the embedded default config".to_string()
        } else {
            format!("{} file(s)", paths.len())
        };
        println!("config is valid ({what})");
        0
    } else {
        eprintln!("config is invalid: {errors} error(s)");
        1
    }
}

/// `ocelot validate --storage DIR`: checks every persistent queue (`exporter_*`) and
/// state file (`*.state`) in `dir`; 0 when all are sound, 1 otherwise.
pub fn validate_storage(dir: &std::path::Path) -> i32 {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            eprintln!("cannot read storage directory {}: {e}", dir.display());
            return 1;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    let mut problems = 0;
    for path in paths {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if path.is_dir() && name.starts_with("exporter_") {
            match crate::exporters::helper::disk::inspect(&path) {
                Ok((scan, found)) => {
                    println!(
                        "{}: persistent queue, {} records ({} bytes) in {} segments",
                        path.display(),
                        scan.records,
                        scan.bytes,
                        scan.segments
                    );
                    for problem in &found {
                        eprintln!("{problem}");
                    }
                    problems += found.len();
                    if let Err(e) = crate::storage::StateFile::new(&path, "head").load() {
                        eprintln!("{e} (the queue is replayed from its first segment)");
                        problems += 1;
                    }
                }
                Err(e) => {
                    eprintln!("{}: {e}", path.display());
                    problems += 1;
                }
            }
        } else if let Some(stem) = name.strip_suffix(".state") {
            match crate::storage::StateFile::new(dir, stem).load() {
                Ok(_) => println!("{}: state file, sound", path.display()),
                Err(e) => {
                    eprintln!("{e}");
                    problems += 1;
                }
            }
        }
    }
    if problems == 0 {
        println!("storage is sound ({})", dir.display());
        0
    } else {
        eprintln!(
            "storage has {problems} problem(s); the agent quarantines corrupt queue parts and ignores corrupt state files when it starts"
        );
        1
    }
}

/// `ocelot components`: every component type by kind, with its signals.
pub fn components() -> String {
    let mut out = String::new();
    for kind in Kind::ALL {
        let _ = writeln!(out, "{}:", kind.section());
        let rows: Vec<(String, Vec<&str>)> = match kind {
            Kind::Receiver => signals_of(crate::receivers::FACTORIES),
            Kind::Processor => signals_of(crate::processors::FACTORIES),
            Kind::Exporter => signals_of(crate::exporters::FACTORIES),
            Kind::Connector => signals_of(crate::connectors::FACTORIES),
            Kind::Extension => signals_of(crate::extensions::FACTORIES),
        };
        for (name, signals) in rows {
            if signals.is_empty() {
                let _ = writeln!(out, "  {name}");
            } else {
                let _ = writeln!(out, "  {name:<52} {}", signals.join(", "));
            }
        }
    }
    out
}

/// Each type's name, with its aliases in parentheses, and its signals.
fn signals_of<C>(factories: &[crate::component::Factory<C>]) -> Vec<(String, Vec<&'static str>)> {
    factories
        .iter()
        .map(|f| {
            let name = match f.aliases {
                [] => f.type_name.to_string(),
                aliases => format!("{} (also {})", f.type_name, aliases.join(", ")),
            };
            (name, f.signals.iter().map(|s| s.as_str()).collect())
        })
        .collect()
}

/// Sets up `tracing` on stderr. `RUST_LOG` wins over `--log-level`, which wins over
/// `service.telemetry.logs.level`.
pub fn init_logging(cli_level: Option<&str>, cli_format: Option<LogFormat>, config: Option<&Config>) {
    let config_logs = config.map(|c| c.service.telemetry.logs.clone()).unwrap_or_default();
    let level = cli_level.unwrap_or(&config_logs.level).to_string();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = match cli_format {
        Some(format) => format == LogFormat::Json,
        None => config_logs.encoding == LogEncoding::Json,
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    // A second initialisation (tests) keeps the first subscriber.
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

pub struct RunOptions {
    pub shutdown_timeout: Duration,
    pub storage_dir: PathBuf,
    /// The config files, read again on each reload (none: the embedded default).
    pub config_paths: Vec<PathBuf>,
    /// Reload when a config file changes.
    pub watch_config: bool,
}

/// Runs the agent until SIGTERM or SIGINT, then drains and stops. SIGHUP,
/// `POST /-/reload` and (with `--watch-config`) a changed config file reload it.
pub async fn run(config: Config, options: RunOptions) -> anyhow::Result<()> {
    raise_open_files_limit();
    let telemetry = Telemetry::new();
    let health = health_check::Health::default();
    let config = Arc::new(config);
    let (control, mut requests) = reload::Control::new(&config);
    let mut admin = Admin::new(telemetry.clone(), health.clone(), control.clone());
    admin.start_telemetry(&config).await?;
    admin.apply(&config).await?;
    let mut graph =
        Graph::start(config.clone(), &telemetry, &options.storage_dir).await.context("starting the pipelines")?;
    telemetry.reloads.running(config.fingerprint, SystemTime::now());
    health.set_ready();
    info!(pipelines = config.service.pipelines.len(), hash = %config.fingerprint, "ocelot is running.");
    let notifier = Arc::new(crate::systemd::Notifier::from_env());
    notifier.ready(&format!("running config {}", config.fingerprint));
    if let Some(every) = notifier.watchdog_interval() {
        tokio::spawn(crate::systemd::keep_alive(notifier.clone(), every));
    }
    let _watch = match options.watch_config {
        true => Some(crate::reload::watch(&options.config_paths, control.clone())?),
        false => None,
    };

    let mut signals = Signals::install();
    // A reload under `service.reload.verify`, until its window closes.
    let mut verifying: Option<Verifying> = None;
    loop {
        let window = verifying.as_ref().map(|v| v.until);
        tokio::select! {
            signal = signals.next() => match signal {
                Some(Signal::Reload) => control.request(reload::Trigger::Signal),
                None => break,
            },
            Some(request) = requests.recv() => {
                let before = graph.config().cloned();
                notifier.reloading();
                let answer = reload(&mut graph, &mut admin, &options, request.trigger).await;
                notifier.ready(&format!("running config {}", answer.hash));
                if answer.result == ReloadResult::Success
                    && let (Some(before), Some(now)) = (before, graph.config().cloned())
                {
                    // The config to go back to is the last one that passed its window.
                    let previous = verifying.take().map(|v| v.previous).unwrap_or(before);
                    verifying = now.service.reload.verify.then(|| {
                        Verifying::begin(&now, previous, answer.changes.as_ref(), &admin)
                    });
                }
                if let Some(reply) = request.reply {
                    let _ = reply.send(answer);
                }
            }
            _ = async { tokio::time::sleep_until(window.unwrap_or_else(tokio::time::Instant::now)).await }, if window.is_some() => {
                if let Some(verify) = verifying.take() {
                    verify.finish(&mut graph, &mut admin, &notifier).await;
                }
            }
        }
    }
    info!("Shutting down: stopping receivers and draining pipelines.");
    // The watchdog goes on pinging through the drain, which --shutdown-timeout bounds.
    notifier.stopping();
    health.set_stopping();
    graph.shutdown(options.shutdown_timeout).await;
    admin.stop().await;
    info!("ocelot stopped.");
    Ok(())
}

/// Reads the config files again and makes the graph and extensions run them. The
/// running config stays when the new one is invalid or a node cannot start; it comes
/// back when the new one fails while taking over.
async fn reload(
    graph: &mut Graph,
    admin: &mut Admin,
    options: &RunOptions,
    trigger: reload::Trigger,
) -> reload::Answer {
    let telemetry = admin.telemetry.clone();
    let Some(old) = graph.config().cloned() else {
        return reload::Answer {
            result: ReloadResult::Failure,
            error: Some("no config runs".into()),
            hash: String::new(),
            changes: None,
        };
    };
    info!(trigger = trigger.as_str(), "Reloading the config.");
    let answer = |result, error: Option<String>, config: &Config, changes| {
        telemetry.reloads.count(result);
        match (&error, result) {
            (Some(e), ReloadResult::Rollback) => {
                error!(error = %e, hash = %config.fingerprint, "The new config failed while taking over; the previous config runs again.")
            }
            (Some(e), _) => {
                error!(error = %e, hash = %config.fingerprint, "The new config is refused; the running config stays.")
            }
            (None, _) => info!(hash = %config.fingerprint, "The new config runs."),
        }
        reload::Answer { result, error, hash: config.fingerprint.to_string(), changes }
    };
    let loaded = load_config(&options.config_paths);
    for diagnostic in loaded.diagnostics.iter().filter(|d| d.severity == Severity::Warning) {
        warn!("{diagnostic}");
    }
    let new = match loaded.config {
        Some(new) if loaded.errors().count() == 0 => Arc::new(new),
        _ => {
            let errors: Vec<String> = loaded.errors().map(|d| d.to_string()).collect();
            return answer(ReloadResult::Failure, Some(errors.join("; ")), &old, None);
        }
    };
    if new.service.telemetry != old.service.telemetry {
        warn!("service.telemetry changed; the agent's own logs and metrics settings take effect at the next restart.");
    }
    admin.health.set_reloading();
    let outcome = match admin.apply(&new).await {
        Err(e) => {
            let _ = admin.apply(&old).await;
            answer(ReloadResult::Failure, Some(format!("{e:#}")), &old, None)
        }
        Ok(extension_changes) => match graph.apply(new.clone()).await {
            Ok(mut changes) => {
                changes.merge(extension_changes);
                admin.control.running(&new, SystemTime::now());
                telemetry.reloads.running(new.fingerprint, SystemTime::now());
                answer(ReloadResult::Success, None, &new, Some(changes))
            }
            Err(ApplyError::Prepare(e)) => {
                let _ = admin.apply(&old).await;
                answer(ReloadResult::Failure, Some(e.to_string()), &old, None)
            }
            Err(ApplyError::Commit(e)) => {
                if let Err(again) = graph.apply(old.clone()).await {
                    error!(error = %again, "The previous config cannot be fully restored either; what could start runs.");
                }
                let _ = admin.apply(&old).await;
                answer(ReloadResult::Rollback, Some(e.to_string()), &old, None)
            }
        },
    };
    admin.health.set_ready();
    outcome
}

/// A reload's verify window: what the agent looked like right after it applied.
struct Verifying {
    until: tokio::time::Instant,
    previous: Arc<Config>,
    /// Exporters the reload started or restarted.
    changed: Vec<ComponentId>,
    /// Each exporter's status, and each receiver's accepted and refused counts, at the
    /// start of the window.
    exporters: BTreeMap<ComponentId, Option<crate::telemetry::status::Entry>>,
    receivers: BTreeMap<ComponentId, (u64, u64)>,
}

impl Verifying {
    fn begin(now: &Config, previous: Arc<Config>, changes: Option<&Changes>, admin: &Admin) -> Verifying {
        let window = now.service.reload.verify_window.0;
        info!(window = ?window, "Verifying the new config: it is rolled back if trouble shows within the window.");
        let touched = |id: &ComponentId| {
            let name = format!("exporter/{id}");
            changes.is_some_and(|c| c.started.contains(&name) || c.restarted.contains(&name))
        };
        let statuses = &admin.telemetry.statuses;
        Verifying {
            until: tokio::time::Instant::now() + window,
            previous,
            changed: now.exporters.keys().filter(|id| touched(id)).cloned().collect(),
            exporters: now.exporters.keys().map(|id| (id.clone(), statuses.get(&format!("exporter:{id}")))).collect(),
            receivers: now.receivers.keys().map(|id| (id.clone(), admin.telemetry.receiver_totals(id))).collect(),
        }
    }

    /// What went wrong in the window: an exporter failing that the reload changed or
    /// that was not failing before, a receiver refusing and accepting nothing, the
    /// health check's component health not OK.
    fn trouble(&self, admin: &Admin) -> Vec<String> {
        let mut trouble = Vec::new();
        for (id, before) in &self.exporters {
            let Some(now) = admin.telemetry.statuses.get(&format!("exporter:{id}")) else {
                continue;
            };
            let was_failing = before.as_ref().is_some_and(|b| b.status.is_error());
            if now.status.is_error() && (self.changed.contains(id) || !was_failing) {
                trouble.push(format!("exporter `{id}` is failing: {}", now.error.unwrap_or_default()));
            }
        }
        for (id, (accepted, refused)) in &self.receivers {
            let (accepted_now, refused_now) = admin.telemetry.receiver_totals(id);
            if refused_now > *refused && accepted_now == *accepted {
                trouble.push(format!("receiver `{id}` refused {} items and accepted none", refused_now - refused));
            }
        }
        let config = admin.control.config();
        for id in &config.service.extensions {
            if let Some(ExtensionConfig::HealthCheck(c)) = config.extensions.get(id) {
                let view = admin.health_view();
                if !health_check::status_json(&view, &c.component_health).0 {
                    trouble.push(format!("health check `{id}` is not OK"));
                }
            }
        }
        trouble
    }

    async fn finish(self, graph: &mut Graph, admin: &mut Admin, notifier: &crate::systemd::Notifier) {
        let trouble = self.trouble(admin);
        if trouble.is_empty() {
            info!("The new config passed its verify window.");
            return;
        }
        let trouble = trouble.join("; ");
        error!(trouble = %trouble, hash = %self.previous.fingerprint, "The new config failed its verify window; rolling back to the previous one.");
        admin.health.set_reloading();
        notifier.reloading();
        let restored = graph.apply(self.previous.clone()).await;
        let _ = admin.apply(&self.previous).await;
        admin.health.set_ready();
        notifier.ready(&format!("running config {} (rolled back)", self.previous.fingerprint));
        if let Err(e) = restored {
            error!(error = %e, "The previous config cannot be fully restored; what could start runs.");
        }
        admin.control.running(&self.previous, SystemTime::now());
        admin.telemetry.reloads.running(self.previous.fingerprint, SystemTime::now());
        admin.telemetry.reloads.count(ReloadResult::Rollback);
    }
}

/// Self-metrics and extensions, which run outside the pipelines and must be up first.
/// Extensions are restarted on a reload when their settings change, on the same
/// listening sockets.
struct Admin {
    telemetry: Arc<Telemetry>,
    health: health_check::Health,
    control: reload::Control,
    listeners: crate::net::Listeners,
    next_instance: u64,
    telemetry_servers: (CancellationToken, TaskTracker),
    extensions: BTreeMap<ComponentId, RunningExtension>,
}

struct RunningExtension {
    fingerprint: Fingerprint,
    instance: u64,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Admin {
    fn new(telemetry: Arc<Telemetry>, health: health_check::Health, control: reload::Control) -> Admin {
        Admin {
            telemetry,
            health,
            control,
            listeners: crate::net::Listeners::default(),
            next_instance: 0,
            telemetry_servers: (CancellationToken::new(), TaskTracker::new()),
            extensions: BTreeMap::new(),
        }
    }

    async fn start_telemetry(&mut self, config: &Config) -> anyhow::Result<()> {
        let metrics = &config.service.telemetry.metrics;
        if metrics.address.is_some() {
            warn!(
                "service.telemetry.metrics.address is deprecated (upstream refuses it now); use metrics.readers: [{{pull: {{exporter: {{prometheus: {{host, port}}}}}}}}]."
            );
        }
        self.telemetry.set_resource(&config.service.telemetry.resource);
        if metrics.level != MetricsLevel::None {
            let (stop, tracker) = &self.telemetry_servers;
            for endpoint in metrics.endpoints() {
                let listener = crate::net::bind(&endpoint).await.context("self-metrics (service.telemetry.metrics)")?;
                info!(address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "Self-metrics at /metrics.");
                tracker.spawn(telemetry::serve(
                    self.telemetry.clone(),
                    listener,
                    Some(self.control.clone()),
                    stop.clone(),
                ));
            }
        }
        Ok(())
    }

    /// Starts the extensions of `config` that are new or changed (the new instance
    /// first, sharing the old one's socket), then stops those replaced or gone.
    async fn apply(&mut self, config: &Config) -> anyhow::Result<Changes> {
        let mut changes = Changes::default();
        let mut started = BTreeMap::new();
        let mut failed = None;
        for id in &config.service.extensions {
            let Some(extension) = config.extensions.get(id) else {
                continue;
            };
            let mut fingerprint = config.fingerprint_of(Kind::Extension, id).unwrap_or_default();
            // zPages shows the whole config: any change is one for it.
            if matches!(extension, ExtensionConfig::Zpages(_)) {
                fingerprint = Fingerprint::chain(&[fingerprint, config.fingerprint]);
            }
            if self.extensions.get(id).is_some_and(|running| running.fingerprint == fingerprint) {
                changes.kept.push(format!("extension/{id}"));
                continue;
            }
            self.next_instance += 1;
            let instance = self.next_instance;
            match self.start_extension(config, id, extension, instance) {
                Ok(Some((stop, tasks))) => {
                    started.insert(id.clone(), RunningExtension { fingerprint, instance, stop, tasks });
                }
                Ok(None) => {}
                Err(e) => {
                    self.listeners.release(instance);
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            for (_, extension) in started {
                self.stop_extension(extension);
            }
            return Err(e);
        }
        for (id, extension) in started {
            match self.extensions.insert(id.clone(), extension) {
                Some(old) => {
                    self.stop_extension(old);
                    changes.restarted.push(format!("extension/{id}"));
                }
                None => changes.started.push(format!("extension/{id}")),
            }
        }
        let gone: Vec<ComponentId> = self
            .extensions
            .keys()
            .filter(|id| !config.service.extensions.contains(id) || !config.extensions.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(old) = self.extensions.remove(&id) {
                self.stop_extension(old);
                changes.stopped.push(format!("extension/{id}"));
            }
        }
        Ok(changes)
    }

    /// Starts one extension's server; `None` for those that only hold settings.
    fn start_extension(
        &self,
        config: &Config,
        id: &ComponentId,
        extension: &ExtensionConfig,
        instance: u64,
    ) -> anyhow::Result<Option<(CancellationToken, TaskTracker)>> {
        let owner = crate::net::Owner { listeners: &self.listeners, instance };
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let bind = |endpoint: &str| owner.bind(endpoint).with_context(|| format!("extension `{id}`"));
        match extension {
            ExtensionConfig::HealthCheck(c) => {
                let listener = bind(&c.endpoint)?;
                info!(extension = %id, endpoint = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "Health check listening.");
                if c.check_collector_pipeline.is_some() {
                    warn!(extension = %id, "health_check.check_collector_pipeline is ignored (as upstream ignores it now); use component_health and /status.");
                }
                tasks.spawn(health_check::serve(c.clone(), self.health_view(), listener, stop.clone()));
            }
            ExtensionConfig::Zpages(c) => {
                let listener = bind(&c.endpoint)?;
                info!(extension = %id, endpoint = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "zPages at /debug/servicez and /debug/pipelinez.");
                tasks.spawn(crate::extensions::zpages::serve(
                    config.clone(),
                    self.telemetry.clone(),
                    listener,
                    stop.clone(),
                ));
            }
            ExtensionConfig::Pprof(c) => {
                let listener = bind(&c.endpoint)?;
                info!(extension = %id, endpoint = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "pprof at /debug/pprof/.");
                tasks.spawn(crate::extensions::pprof::serve(c.clone(), listener, stop.clone()));
            }
            // A directory that the components naming it check when they start; or
            // credentials read by the components naming them, when they start.
            ExtensionConfig::FileStorage(_)
            | ExtensionConfig::BearerTokenAuth(_)
            | ExtensionConfig::BasicAuth(_)
            | ExtensionConfig::HeadersSetter(_) => return Ok(None),
        }
        tasks.close();
        Ok(Some((stop, tasks)))
    }

    fn health_view(&self) -> health_check::View {
        health_check::View {
            health: self.health.clone(),
            statuses: self.telemetry.statuses.clone(),
            control: self.control.clone(),
        }
    }

    fn stop_extension(&self, extension: RunningExtension) {
        extension.stop.cancel();
        self.listeners.release(extension.instance);
    }

    async fn stop(mut self) {
        self.telemetry_servers.0.cancel();
        let tasks: Vec<TaskTracker> = std::mem::take(&mut self.extensions)
            .into_values()
            .map(|extension| {
                let tasks = extension.tasks.clone();
                self.stop_extension(extension);
                tasks
            })
            .collect();
        self.telemetry_servers.1.close();
        let all = async {
            self.telemetry_servers.1.wait().await;
            for tasks in tasks {
                tasks.wait().await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(6), all).await;
    }
}

enum Signal {
    Reload,
}

/// SIGTERM and SIGINT stop the agent; SIGHUP reloads its config.
struct Signals {
    handlers: Option<[tokio::signal::unix::Signal; 3]>,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers =
            match (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup())) {
                (Ok(term), Ok(int), Ok(hup)) => Some([term, int, hup]),
                _ => {
                    warn!("Cannot install signal handlers; running until killed.");
                    None
                }
            };
        Signals { handlers }
    }

    /// The next reload signal, or `None` once the agent should stop.
    async fn next(&mut self) -> Option<Signal> {
        let Some([term, int, hup]) = &mut self.handlers else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => { info!(signal = "SIGTERM", "Signal received."); None }
            _ = int.recv() => { info!(signal = "SIGINT", "Signal received."); None }
            _ = hup.recv() => { info!(signal = "SIGHUP", "Signal received."); Some(Signal::Reload) }
        }
    }
}

/// Raises the soft limit on open files to the hard limit, as the Go runtime does for
/// otelcol: a tail of many files and many client connections needs more than the
/// usual soft 1024, and the hard limit is what the operator allowed.
pub fn raise_open_files_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            warn!(soft = before, hard = limit.rlim_max, error = %std::io::Error::last_os_error(),
                "Cannot raise the open files limit.");
            return;
        }
    }
    if limit.rlim_cur < 1024 {
        warn!(
            limit = limit.rlim_cur,
            "The open files limit is low; tailing many files or serving many clients will fail (raise LimitNOFILE)."
        );
    } else {
        tracing::debug!(before, now = limit.rlim_cur, "Open files limit.");
    }
}

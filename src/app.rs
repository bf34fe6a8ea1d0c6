//! The agent's lifecycle: load and validate the config, start the admin endpoints and
//! the pipeline graph, wait for SIGTERM or SIGINT, drain, stop.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::cli::LogFormat;
use crate::component::Kind;
use crate::config::{self, Config, Loaded, Severity, Source};
use crate::extensions::{ExtensionConfig, health_check};
use crate::telemetry::{self, LogEncoding, MetricsLevel, Telemetry};

/// Reads the given files, or the embedded default when there are none.
pub fn load_config(paths: &[PathBuf]) -> Loaded {
    if paths.is_empty() {
        return config::load_default();
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
    config::load(&sources, &|name| std::env::var(name).ok())
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
}

/// Runs the agent until SIGTERM or SIGINT, then drains and stops.
pub async fn run(config: Config, options: RunOptions) -> anyhow::Result<()> {
    raise_open_files_limit();
    let telemetry = Telemetry::new();
    let health = health_check::Health::default();
    let admin_stop = CancellationToken::new();
    let admin = TaskTracker::new();
    start_admin(&config, &telemetry, &health, &admin_stop, &admin).await?;
    let running =
        crate::pipeline::start(&config, &telemetry, &options.storage_dir).await.context("starting the pipelines")?;
    health.set_ready();
    info!(pipelines = config.service.pipelines.len(), "ocelot is running.");

    wait_for_signal().await;
    info!("Shutting down: stopping receivers and draining pipelines.");
    health.set_stopping();
    running.shutdown(options.shutdown_timeout).await;
    admin_stop.cancel();
    admin.close();
    let _ = tokio::time::timeout(Duration::from_secs(6), admin.wait()).await;
    info!("ocelot stopped.");
    Ok(())
}

/// Self-metrics and extensions, which run outside the pipelines and must be up first.
async fn start_admin(
    config: &Config,
    telemetry: &Arc<Telemetry>,
    health: &health_check::Health,
    stop: &CancellationToken,
    tracker: &TaskTracker,
) -> anyhow::Result<()> {
    let metrics = &config.service.telemetry.metrics;
    if metrics.address.is_some() {
        warn!(
            "service.telemetry.metrics.address is deprecated (upstream refuses it now); use metrics.readers: [{{pull: {{exporter: {{prometheus: {{host, port}}}}}}}}]."
        );
    }
    telemetry.set_resource(&config.service.telemetry.resource);
    if metrics.level != MetricsLevel::None {
        for endpoint in metrics.endpoints() {
            let listener = crate::net::bind(&endpoint).await.context("self-metrics (service.telemetry.metrics)")?;
            info!(address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "Self-metrics at /metrics.");
            tracker.spawn(telemetry::serve(telemetry.clone(), listener, stop.clone()));
        }
    }
    for id in &config.service.extensions {
        let Some(extension) = config.extensions.get(id) else {
            continue;
        };
        match extension {
            ExtensionConfig::HealthCheck(c) => {
                let listener = crate::net::bind(&c.endpoint).await.with_context(|| format!("extension `{id}`"))?;
                info!(extension = %id, endpoint = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "Health check listening.");
                tracker.spawn(health_check::serve(c.clone(), health.clone(), listener, stop.clone()));
            }
            // A directory that the components naming it check when they start.
            ExtensionConfig::FileStorage(_) => {}
            ExtensionConfig::Zpages(c) => {
                let listener = crate::net::bind(&c.endpoint).await.with_context(|| format!("extension `{id}`"))?;
                info!(extension = %id, endpoint = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "zPages at /debug/servicez and /debug/pipelinez.");
                tracker.spawn(crate::extensions::zpages::serve(
                    config.clone(),
                    telemetry.clone(),
                    listener,
                    stop.clone(),
                ));
            }
            ExtensionConfig::Pprof(c) => {
                let listener = crate::net::bind(&c.endpoint).await.with_context(|| format!("extension `{id}`"))?;
                info!(extension = %id, endpoint = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "pprof at /debug/pprof/.");
                tracker.spawn(crate::extensions::pprof::serve(c.clone(), listener, stop.clone()));
            }
            // Read by the exporters naming them, when they start.
            ExtensionConfig::BearerTokenAuth(_) | ExtensionConfig::BasicAuth(_) | ExtensionConfig::HeadersSetter(_) => {
            }
        }
    }
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
        warn!("Cannot install signal handlers; running until killed.");
        std::future::pending::<()>().await;
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return info!(signal = "SIGTERM", "Signal received."),
            _ = int.recv() => return info!(signal = "SIGINT", "Signal received."),
            // SIGHUP's default action would kill the agent without draining; reloading
            // the config is not part of this version, so it is logged and ignored.
            _ = hup.recv() => warn!(signal = "SIGHUP", "Config reload is not available in this version; SIGHUP ignored, restart to apply a new config."),
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

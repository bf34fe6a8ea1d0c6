//! Exporters: where data leaves ocelot. Each one implements only
//! [`helper::Export`]; the queue, retry, timeout and acknowledgements are
//! [`helper::spawn`]'s.

pub mod debug;
pub mod file;
pub mod helper;
pub mod http;
pub mod loadbalancing;
pub mod loki;
pub mod otlp;
pub mod prometheus;
pub mod prometheusremotewrite;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::component::{Factory, parse_config};
use crate::config::ComponentId;
use crate::pdata::Signal;
use crate::telemetry::Telemetry;
use helper::{ExporterSettings, QueueConfig, RetryConfig};

#[derive(Clone, Debug, PartialEq)]
pub enum ExporterConfig {
    Otlp(otlp::OtlpGrpcExporterConfig),
    OtlpHttp(otlp::OtlpHttpExporterConfig),
    Debug(debug::DebugConfig),
    File(file::FileConfig),
    PrometheusRemoteWrite(prometheusremotewrite::PrwConfig),
    Prometheus(prometheus::PrometheusConfig),
    Loki(loki::LokiConfig),
    LoadBalancing(Box<loadbalancing::LoadBalancingConfig>),
}

pub static FACTORIES: &[Factory<ExporterConfig>] = &[
    Factory {
        type_name: otlp::GRPC_TYPE,
        aliases: &["otlp_grpc"],
        signals: &Signal::ALL,
        parse: |node| parse_config(node).map(ExporterConfig::Otlp),
    },
    Factory {
        type_name: otlp::HTTP_TYPE,
        aliases: &["otlp_http"],
        signals: &Signal::ALL,
        parse: |node| parse_config(node).map(ExporterConfig::OtlpHttp),
    },
    Factory {
        type_name: debug::TYPE,
        aliases: &[],
        signals: &Signal::ALL,
        parse: |node| parse_config(node).map(ExporterConfig::Debug),
    },
    Factory {
        type_name: file::TYPE,
        aliases: &[],
        signals: &Signal::ALL,
        parse: |node| parse_config(node).map(ExporterConfig::File),
    },
    Factory {
        type_name: prometheusremotewrite::TYPE,
        aliases: &["prometheus_remote_write"],
        signals: &[Signal::Metrics],
        parse: |node| parse_config(node).map(ExporterConfig::PrometheusRemoteWrite),
    },
    Factory {
        type_name: prometheus::TYPE,
        aliases: &[],
        signals: &[Signal::Metrics],
        parse: |node| parse_config(node).map(ExporterConfig::Prometheus),
    },
    Factory {
        type_name: loki::TYPE,
        aliases: &[],
        signals: &[Signal::Logs],
        parse: |node| parse_config(node).map(ExporterConfig::Loki),
    },
    Factory {
        type_name: loadbalancing::TYPE,
        aliases: loadbalancing::ALIASES,
        signals: &Signal::ALL,
        parse: |node| parse_config(node).map(|c| ExporterConfig::LoadBalancing(Box::new(c))),
    },
];

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("invalid endpoint `{endpoint}`: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error(transparent)]
    Bind(#[from] crate::net::BindError),
    #[error("cannot open `{path}`: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("authenticator `{id}`: {reason}")]
    Auth { id: String, reason: String },
    #[error("sending_queue.storage: {0}")]
    Storage(String),
}

/// The client side of the authenticator `auth` names, if any.
fn client_auth(
    auth: &Option<crate::extensions::auth::AuthSettings>,
    extensions: &std::collections::BTreeMap<ComponentId, crate::extensions::ExtensionConfig>,
) -> Result<Option<std::sync::Arc<crate::extensions::auth::ClientAuth>>, BuildError> {
    let Some(auth) = auth else { return Ok(None) };
    let fail = |reason: String| BuildError::Auth { id: auth.authenticator.clone(), reason };
    let id = ComponentId::parse(&auth.authenticator).map_err(|e| fail(e.to_string()))?;
    let config = extensions.get(&id).ok_or_else(|| fail("not defined".into()))?;
    crate::extensions::auth::ClientAuth::new(config).map(|a| Some(std::sync::Arc::new(a))).map_err(fail)
}

impl crate::config::StorageUser for ExporterConfig {
    fn storage(&self) -> Option<&str> {
        let queue = match self {
            ExporterConfig::Otlp(c) => Some(&c.sending_queue),
            ExporterConfig::OtlpHttp(c) => Some(&c.sending_queue),
            ExporterConfig::Loki(c) => Some(&c.sending_queue),
            ExporterConfig::PrometheusRemoteWrite(c) => c.sending_queue.as_ref(),
            ExporterConfig::LoadBalancing(c) => Some(&c.protocol.otlp.sending_queue),
            ExporterConfig::Debug(_) | ExporterConfig::File(_) | ExporterConfig::Prometheus(_) => None,
        };
        queue.and_then(|q| q.storage.as_deref())
    }
}

impl crate::config::AuthUser for ExporterConfig {
    fn authenticators(&self) -> Vec<&str> {
        let auth = match self {
            ExporterConfig::Otlp(c) => &c.auth,
            ExporterConfig::OtlpHttp(c) => &c.auth,
            ExporterConfig::PrometheusRemoteWrite(c) => &c.auth,
            ExporterConfig::Loki(c) => &c.auth,
            ExporterConfig::LoadBalancing(c) => &c.protocol.otlp.auth,
            ExporterConfig::Debug(_) | ExporterConfig::File(_) | ExporterConfig::Prometheus(_) => return Vec::new(),
        };
        auth.iter().map(|a| a.authenticator.as_str()).collect()
    }
}

/// A queue for exporters that write locally and keep order (debug, file): one
/// consumer, no retry.
fn local_settings(id: &ComponentId, telemetry: &Telemetry, give_up: CancellationToken) -> ExporterSettings {
    ExporterSettings {
        id: id.clone(),
        // They keep up or fail at once; waiting for room keeps them lossless.
        queue: QueueConfig { num_consumers: 1, block_on_overflow: true, ..QueueConfig::default() },
        retry: RetryConfig { enabled: false, ..RetryConfig::default() },
        timeout: None,
        metrics: telemetry.exporter(id),
        give_up,
        disk: None,
    }
}

/// What an exporter may need of the running agent to start.
pub struct Environment<'a> {
    pub telemetry: &'a std::sync::Arc<Telemetry>,
    /// Cancelled when the shutdown deadline passes.
    pub give_up: CancellationToken,
    pub tracker: &'a TaskTracker,
    /// For `auth.authenticator` and `sending_queue.storage`.
    pub extensions: &'a std::collections::BTreeMap<ComponentId, crate::extensions::ExtensionConfig>,
    /// Its listening sockets (the prometheus exporter's), kept across reloads.
    pub owner: crate::net::Owner<'a>,
    /// `--storage-dir`, for a `file_storage` with no directory of its own.
    pub storage_dir: &'a std::path::Path,
}

/// The queue on disk that `sending_queue.storage` names, opened (and checked).
fn open_disk_queue(
    id: &ComponentId,
    queue: &QueueConfig,
    env: &Environment<'_>,
) -> Result<Option<std::sync::Arc<helper::disk::DiskQueue>>, BuildError> {
    let Some(name) = &queue.storage else { return Ok(None) };
    let fail = |reason: String| BuildError::Storage(format!("`{name}`: {reason}"));
    let ext = ComponentId::parse(name).map_err(|e| fail(e.to_string()))?;
    let Some(crate::extensions::ExtensionConfig::FileStorage(storage)) = env.extensions.get(&ext) else {
        return Err(fail("not a file_storage extension".into()));
    };
    let directory = storage.prepare(env.storage_dir).map_err(fail)?;
    let settings = helper::disk::DiskSettings {
        directory: directory.join(format!("exporter_{}", id.to_string().replace('/', "_"))),
        fsync: storage.fsync_policy(),
        max_bytes: queue.max_bytes.map(|b| b.0).unwrap_or(helper::DEFAULT_QUEUE_MAX_BYTES),
        sizer: queue.sizer(),
        queue_size: queue.queue_size as u64,
    };
    let metrics = env.telemetry.exporter(id);
    let disk_metrics = helper::disk::DiskMetrics {
        quarantined: metrics.queue_quarantined.clone(),
        bytes: metrics.queue_bytes.clone(),
    };
    let (queue, opened) = helper::disk::DiskQueue::open(id, settings, disk_metrics).map_err(|e| fail(e.to_string()))?;
    if opened {
        env.tracker.spawn(helper::disk::DiskQueue::run(std::sync::Arc::downgrade(&queue)));
    }
    Ok(Some(queue))
}

/// Starts an exporter; returns its queue's sending end.
pub fn start(
    id: &ComponentId,
    config: &ExporterConfig,
    env: Environment<'_>,
) -> Result<helper::ExporterInput, BuildError> {
    let Environment { telemetry, tracker, extensions, owner, .. } = env;
    let give_up = env.give_up.clone();
    // `timeout` bounds each request. HTTP exporters apply it per request themselves
    // (a batch may be several requests); for gRPC one export is one request.
    // `timeout: 0` means no timeout, as upstream.
    let remote = |queue: &QueueConfig,
                  retry: &RetryConfig,
                  timeout: Option<std::time::Duration>|
     -> Result<ExporterSettings, BuildError> {
        Ok(ExporterSettings {
            id: id.clone(),
            queue: queue.clone(),
            retry: retry.clone(),
            timeout: timeout.filter(|t| !t.is_zero()),
            metrics: telemetry.exporter(id),
            give_up: give_up.clone(),
            disk: open_disk_queue(id, queue, &env)?,
        })
    };
    Ok(match config {
        ExporterConfig::Otlp(c) => {
            let settings = remote(&c.sending_queue, &c.retry_on_failure, Some(c.timeout.0))?;
            helper::spawn(
                otlp::grpc::OtlpGrpcExporter::new(c)?.with_auth(client_auth(&c.auth, extensions)?),
                settings,
                tracker,
            )
        }
        ExporterConfig::OtlpHttp(c) => {
            let settings = remote(&c.sending_queue, &c.retry_on_failure, None)?;
            helper::spawn(
                otlp::http::OtlpHttpExporter::new(c)?.with_auth(client_auth(&c.auth, extensions)?),
                settings,
                tracker,
            )
        }
        ExporterConfig::Debug(c) => {
            helper::spawn(debug::DebugExporter::new(id, c), local_settings(id, telemetry, give_up), tracker)
        }
        ExporterConfig::File(c) => {
            let ungrouped = telemetry.exporter_dropped(id, "no_group_by_attribute");
            helper::spawn(file::FileExporter::new(c, ungrouped)?, local_settings(id, telemetry, give_up), tracker)
        }
        ExporterConfig::PrometheusRemoteWrite(c) => {
            let settings = remote(&c.queue(), &c.retry_on_failure, None)?;
            let exporter =
                prometheusremotewrite::PrwExporter::new(id, c, telemetry)?.with_auth(client_auth(&c.auth, extensions)?);
            helper::spawn_in_parts(exporter, settings, tracker)
        }
        ExporterConfig::Loki(c) => {
            let settings = remote(&c.sending_queue, &c.retry_on_failure, None)?;
            let exporter = loki::LokiExporter::new(id, c, telemetry)?.with_auth(client_auth(&c.auth, extensions)?);
            helper::spawn_in_parts(exporter, settings, tracker)
        }
        ExporterConfig::Prometheus(c) => {
            let exporter = prometheus::PrometheusExporter::new(id, c, telemetry, owner, tracker)?;
            helper::spawn(exporter, local_settings(id, telemetry, give_up), tracker)
        }
        // It starts exporters of its own, one per backend, with what `env` holds.
        ExporterConfig::LoadBalancing(c) => return loadbalancing::start(id, c, env),
    })
}

//! Exporters: where data leaves ocelot. Each one implements only
//! [`helper::Export`]; the queue, retry, timeout and acknowledgements are
//! [`helper::spawn`]'s.

pub mod debug;
pub mod file;
pub mod helper;
pub mod http;
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
    }
}

/// Starts an exporter; returns its queue's sending end.
pub fn start(
    id: &ComponentId,
    config: &ExporterConfig,
    telemetry: &std::sync::Arc<Telemetry>,
    give_up: CancellationToken,
    tracker: &TaskTracker,
) -> Result<helper::ExporterInput, BuildError> {
    // `timeout` bounds each request. HTTP exporters apply it per request themselves
    // (a batch may be several requests); for gRPC one export is one request.
    // `timeout: 0` means no timeout, as upstream.
    let remote = |queue: &QueueConfig, retry: &RetryConfig, timeout: Option<std::time::Duration>| ExporterSettings {
        id: id.clone(),
        queue: queue.clone(),
        retry: retry.clone(),
        timeout: timeout.filter(|t| !t.is_zero()),
        metrics: telemetry.exporter(id),
        give_up: give_up.clone(),
    };
    Ok(match config {
        ExporterConfig::Otlp(c) => {
            let settings = remote(&c.sending_queue, &c.retry_on_failure, Some(c.timeout.0));
            helper::spawn(otlp::grpc::OtlpGrpcExporter::new(c)?, settings, tracker)
        }
        ExporterConfig::OtlpHttp(c) => {
            let settings = remote(&c.sending_queue, &c.retry_on_failure, None);
            helper::spawn(otlp::http::OtlpHttpExporter::new(c)?, settings, tracker)
        }
        ExporterConfig::Debug(c) => {
            helper::spawn(debug::DebugExporter::new(id, c), local_settings(id, telemetry, give_up), tracker)
        }
        ExporterConfig::File(c) => {
            helper::spawn(file::FileExporter::new(c)?, local_settings(id, telemetry, give_up), tracker)
        }
        ExporterConfig::PrometheusRemoteWrite(c) => {
            let settings = remote(&c.remote_write_queue.queue(), &c.retry_on_failure, None);
            helper::spawn_in_parts(prometheusremotewrite::PrwExporter::new(id, c, telemetry)?, settings, tracker)
        }
        ExporterConfig::Loki(c) => {
            let settings = remote(&c.sending_queue, &c.retry_on_failure, None);
            helper::spawn_in_parts(loki::LokiExporter::new(id, c, telemetry)?, settings, tracker)
        }
        ExporterConfig::Prometheus(c) => {
            let exporter = prometheus::PrometheusExporter::new(id, c, telemetry, tracker)?;
            helper::spawn(exporter, local_settings(id, telemetry, give_up), tracker)
        }
    })
}

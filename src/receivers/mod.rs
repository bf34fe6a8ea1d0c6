//! Receivers: where data enters ocelot.

pub mod filelog;
pub mod hostmetrics;
pub mod journald;
pub mod kubeletstats;
pub mod otlp;
pub mod prometheus;

use crate::component::{Factory, parse_config};
use crate::pdata::Signal;

#[derive(Clone, Debug, PartialEq)]
pub enum ReceiverConfig {
    Otlp(Box<otlp::OtlpReceiverConfig>),
    Filelog(Box<filelog::FilelogConfig>),
    Hostmetrics(Box<hostmetrics::HostmetricsConfig>),
    Journald(Box<journald::JournaldConfig>),
    Prometheus(Box<prometheus::PrometheusReceiverConfig>),
    KubeletStats(Box<kubeletstats::KubeletStatsConfig>),
}

pub static FACTORIES: &[Factory<ReceiverConfig>] = &[
    Factory {
        type_name: otlp::TYPE,
        aliases: &[],
        signals: &Signal::ALL,
        parse: |node| parse_config(node).map(|c| ReceiverConfig::Otlp(Box::new(c))),
    },
    Factory {
        type_name: filelog::TYPE,
        aliases: &["file_log"],
        signals: &[Signal::Logs],
        parse: |node| parse_config(node).map(|c| ReceiverConfig::Filelog(Box::new(c))),
    },
    Factory {
        type_name: hostmetrics::TYPE,
        aliases: &["host_metrics"],
        signals: &[Signal::Metrics],
        parse: |node| parse_config(node).map(|c| ReceiverConfig::Hostmetrics(Box::new(c))),
    },
    Factory {
        type_name: journald::TYPE,
        aliases: &[],
        signals: &[Signal::Logs],
        parse: |node| parse_config(node).map(|c| ReceiverConfig::Journald(Box::new(c))),
    },
    Factory {
        type_name: prometheus::TYPE,
        aliases: &[],
        signals: &[Signal::Metrics],
        parse: |node| parse_config(node).map(|c| ReceiverConfig::Prometheus(Box::new(c))),
    },
    Factory {
        type_name: kubeletstats::TYPE,
        aliases: kubeletstats::ALIASES,
        signals: &[Signal::Metrics],
        parse: |node| parse_config(node).map(|c| ReceiverConfig::KubeletStats(Box::new(c))),
    },
];

impl crate::config::AuthUser for ReceiverConfig {
    fn authenticators(&self) -> Vec<&str> {
        match self {
            ReceiverConfig::Otlp(c) => {
                let grpc = c.protocols.grpc.as_ref().and_then(|g| g.auth.as_ref());
                let http = c.protocols.http.as_ref().and_then(|h| h.auth.as_ref());
                grpc.into_iter().chain(http).map(|a| a.authenticator.as_str()).collect()
            }
            ReceiverConfig::Filelog(_)
            | ReceiverConfig::Hostmetrics(_)
            | ReceiverConfig::Journald(_)
            | ReceiverConfig::Prometheus(_)
            | ReceiverConfig::KubeletStats(_) => Vec::new(),
        }
    }
}

impl crate::config::StorageUser for ReceiverConfig {
    fn storage(&self) -> Option<&str> {
        match self {
            ReceiverConfig::Filelog(c) => c.storage.as_deref(),
            ReceiverConfig::Journald(c) => c.storage.as_deref(),
            ReceiverConfig::Otlp(_)
            | ReceiverConfig::Hostmetrics(_)
            | ReceiverConfig::Prometheus(_)
            | ReceiverConfig::KubeletStats(_) => None,
        }
    }
}

impl ReceiverConfig {
    /// Two instances cannot run side by side during a reload: a file tail's offsets
    /// and a journal cursor belong to one reader, so the old one stops (and commits
    /// them) before the new one starts. Others start first and share the listening
    /// sockets.
    pub fn exclusive(&self) -> bool {
        matches!(self, ReceiverConfig::Filelog(_) | ReceiverConfig::Journald(_))
    }
}

/// The wall clock in ns since the epoch: the time of a scrape's points.
pub(crate) fn unix_nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Bind(#[from] crate::net::BindError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Storage(String),
}

/// What a receiver may need of the running agent to start.
pub struct Environment<'a> {
    pub telemetry: &'a crate::telemetry::Telemetry,
    /// Where it keeps state: its `storage` extension's directory, or --storage-dir.
    pub storage_dir: &'a std::path::Path,
    /// For `auth.authenticator`.
    pub extensions: &'a std::collections::BTreeMap<crate::config::ComponentId, crate::extensions::ExtensionConfig>,
    /// Its listening sockets, kept by the graph across reloads.
    pub owner: crate::net::Owner<'a>,
}

/// Starts a receiver: binds its sockets now (so a busy port fails the start), then
/// serves on `tracker` until `stop`.
pub async fn start(
    id: &crate::config::ComponentId,
    config: &ReceiverConfig,
    consumers: crate::component::Consumers,
    env: Environment<'_>,
    stop: tokio_util::sync::CancellationToken,
    tracker: &tokio_util::task::TaskTracker,
) -> Result<(), StartError> {
    match config {
        ReceiverConfig::Otlp(config) => otlp::start(id, config, consumers, env, stop, tracker).await,
        ReceiverConfig::Filelog(config) => {
            filelog::start(id, config, consumers.logs, env.telemetry, env.storage_dir, stop, tracker).await
        }
        ReceiverConfig::Hostmetrics(config) => {
            hostmetrics::start(id, config, consumers.metrics, env.telemetry, stop, tracker).await
        }
        ReceiverConfig::Prometheus(config) => {
            prometheus::start(id, config, consumers.metrics, env.telemetry, stop, tracker).await
        }
        ReceiverConfig::KubeletStats(config) => {
            kubeletstats::start(id, config, consumers.metrics, env.telemetry, stop, tracker).await
        }
        ReceiverConfig::Journald(config) => {
            journald::start(id, config, consumers.logs, env.telemetry, env.storage_dir, stop, tracker).await
        }
    }
}

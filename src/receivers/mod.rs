//! Receivers: where data enters ocelot.

pub mod filelog;
pub mod otlp;

use crate::component::{Factory, parse_config};
use crate::pdata::Signal;

#[derive(Clone, Debug, PartialEq)]
pub enum ReceiverConfig {
    Otlp(otlp::OtlpReceiverConfig),
}

pub static FACTORIES: &[Factory<ReceiverConfig>] = &[Factory {
    type_name: otlp::TYPE,
    signals: &Signal::ALL,
    parse: |node| parse_config(node).map(ReceiverConfig::Otlp),
}];

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Bind(#[from] crate::net::BindError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("TLS set-up failed: {0}")]
    GrpcTls(String),
}

/// Starts a receiver: binds its sockets now (so a busy port fails the start), then
/// serves on `tracker` until `stop`.
pub async fn start(
    id: &crate::config::ComponentId,
    config: &ReceiverConfig,
    consumers: crate::pipeline::Consumers,
    telemetry: &crate::telemetry::Telemetry,
    stop: tokio_util::sync::CancellationToken,
    tracker: &tokio_util::task::TaskTracker,
) -> Result<(), StartError> {
    match config {
        ReceiverConfig::Otlp(config) => otlp::start(id, config, consumers, telemetry, stop, tracker).await,
    }
}

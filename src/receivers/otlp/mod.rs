//! The `otlp` receiver: OTLP/gRPC and OTLP/HTTP (protobuf and JSON, gzip and zstd)
//! for traces, metrics and logs.
//!
//! A request succeeds once every pipeline that takes its signal has accepted it
//! (their input channels had room); otherwise it is refused whole, with the
//! retryable status the OTLP specification names, so a client's retry never
//! duplicates data.

mod config;
mod grpc;
mod http;

pub use config::{GrpcConfig, HttpConfig, OtlpReceiverConfig, Protocols};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::StartError;
use crate::config::ComponentId;
use crate::net;
use crate::pdata::{Batch, Payload};
use crate::pipeline::{Consumers, Refused};
use crate::telemetry::{ReceiverMetrics, Telemetry};

pub const TYPE: &str = "otlp";

pub fn parse_endpoint(endpoint: &str) -> Result<(), String> {
    net::normalize_endpoint(endpoint).map(|_| ())
}

pub async fn start(
    id: &ComponentId,
    config: &OtlpReceiverConfig,
    consumers: Consumers,
    telemetry: &Telemetry,
    stop: CancellationToken,
    tracker: &TaskTracker,
) -> Result<(), StartError> {
    // Bind both before serving either, so a busy port fails the whole start.
    let grpc = match &config.protocols.grpc {
        Some(c) => Some((c.clone(), net::bind(&c.endpoint).await?)),
        None => None,
    };
    let http = match &config.protocols.http {
        Some(c) => Some((c.clone(), net::bind(&c.endpoint).await?)),
        None => None,
    };
    // Read certificates before serving, so a bad file fails the start.
    let grpc_tls = match grpc.as_ref().and_then(|(c, _)| c.tls.as_ref()) {
        Some(tls) => Some(grpc::tls_config(tls)?),
        None => None,
    };
    let http_tls = match http.as_ref().and_then(|(c, _)| c.tls.as_ref()) {
        Some(tls) => Some(tokio_rustls::TlsAcceptor::from(tls.rustls_config(&[b"h2", b"http/1.1"])?)),
        None => None,
    };
    if let Some((c, listener)) = grpc {
        let intake = Intake { consumers: consumers.clone(), metrics: telemetry.receiver(id, "grpc") };
        tracing::info!(receiver = %id, endpoint = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "OTLP/gRPC listening.");
        tracker.spawn(grpc::serve(c, listener, grpc_tls, intake, stop.clone()));
    }
    if let Some((c, listener)) = http {
        let intake = Intake { consumers, metrics: telemetry.receiver(id, "http") };
        tracing::info!(receiver = %id, endpoint = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "OTLP/HTTP listening.");
        tracker.spawn(http::serve(c, listener, http_tls, intake, stop));
    }
    Ok(())
}

/// Hands decoded requests to the pipelines and counts them.
#[derive(Clone)]
struct Intake {
    consumers: Consumers,
    metrics: ReceiverMetrics,
}

impl Intake {
    fn accept(&self, payload: Payload) -> Result<(), Refused> {
        let signal = payload.signal();
        let items = payload.item_count() as u64;
        if items == 0 {
            return Ok(());
        }
        match self.consumers.get(signal).try_consume(Batch::new(payload)) {
            Ok(()) => {
                self.metrics.accepted(signal).inc_by(items);
                Ok(())
            }
            Err(refused) => {
                self.metrics.refused(signal).inc_by(items);
                Err(refused)
            }
        }
    }
}

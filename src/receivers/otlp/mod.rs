//! The `otlp` receiver: OTLP/gRPC and OTLP/HTTP (protobuf and JSON, gzip and zstd)
//! for traces, metrics and logs.
//!
//! A request is refused whole, with the retryable status the OTLP specification
//! names, when a pipeline that takes its signal has no room, so a client's retry never
//! duplicates data. When every exporter behind it queues in memory, a request taken
//! by the pipelines is answered at once ("accepted"). When one has
//! `sending_queue.enabled: false` (or `wait_for_result`), the answer waits for the
//! request's reply token, as upstream's: it comes back once each queue (or a `batch`
//! processor) has taken the data and each exporter without one has exported it, with
//! the outcome: the backend's own refusal, a 500 for a permanent failure without one, a
//! 503 when nothing kept the data and a retry may help.

mod config;
pub mod cors;
mod grpc;
mod http;

pub use config::{GrpcConfig, HttpConfig, OtlpReceiverConfig, Protocols};

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::StartError;
use crate::component::{Consumers, Refused};
use crate::config::ComponentId;
use crate::extensions::auth::{AuthSettings, ServerAuth, Unauthenticated};
use crate::net;
use crate::pdata::{Ack, AckOutcome, BackendStatus, Batch, Metadata, Payload};
use crate::telemetry::ReceiverMetrics;

pub const TYPE: &str = "otlp";

pub fn parse_endpoint(endpoint: &str) -> Result<(), String> {
    net::normalize_endpoint(endpoint).map(|_| ())
}

pub async fn start(
    id: &ComponentId,
    config: &OtlpReceiverConfig,
    consumers: Consumers,
    env: crate::receivers::Environment<'_>,
    stop: CancellationToken,
    tracker: &TaskTracker,
) -> Result<(), StartError> {
    let crate::receivers::Environment { telemetry, extensions, owner, .. } = env;
    let server_auth = |auth: &Option<AuthSettings>| -> Result<Option<Arc<ServerAuth>>, StartError> {
        let Some(auth) = auth else { return Ok(None) };
        let fail = |e: String| StartError::Config(format!("auth.authenticator `{}`: {e}", auth.authenticator));
        let id = ComponentId::parse(&auth.authenticator).map_err(|e| fail(e.to_string()))?;
        let config = extensions.get(&id).ok_or_else(|| fail("not defined".into()))?;
        ServerAuth::new(config).map(|a| Some(Arc::new(a))).map_err(fail)
    };
    let grpc_auth = server_auth(&config.protocols.grpc.as_ref().and_then(|c| c.auth.clone()))?;
    let http_auth = server_auth(&config.protocols.http.as_ref().and_then(|c| c.auth.clone()))?;
    // Bind both before serving either, so a busy port fails the whole start.
    let grpc = match &config.protocols.grpc {
        Some(c) => Some((c.clone(), owner.bind(&c.endpoint)?)),
        None => None,
    };
    let http = match &config.protocols.http {
        Some(c) => Some((c.clone(), owner.bind(&c.endpoint)?)),
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
        let intake = Intake {
            consumers: consumers.clone(),
            metrics: telemetry.receiver(id, "grpc"),
            include_metadata: c.include_metadata,
            auth: grpc_auth,
        };
        tracing::info!(receiver = %id, endpoint = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "OTLP/gRPC listening.");
        tracker.spawn(grpc::serve(c, listener, grpc_tls, intake, stop.clone()));
    }
    if let Some((c, listener)) = http {
        let intake = Intake {
            consumers,
            metrics: telemetry.receiver(id, "http"),
            include_metadata: c.include_metadata,
            auth: http_auth,
        };
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
    /// Keep each request's headers with its batch.
    include_metadata: bool,
    auth: Option<Arc<ServerAuth>>,
}

/// Why a request was not taken, for the client.
#[derive(Debug)]
enum Answer {
    /// A pipeline was full or stopping: nothing went anywhere, retry later.
    Refused(Refused),
    /// Not delivered, and kept nowhere: a retry may help and duplicates nothing.
    Unavailable(String),
    /// Dropped for good (or partly kept, so a retry would duplicate): the backend's
    /// status if it gave one.
    Permanent { status: Option<BackendStatus>, message: String },
}

impl Intake {
    /// Checks the client (when an authenticator is set) and gathers the request's
    /// metadata for its batch: what authentication learnt, and the headers with
    /// `include_metadata` (with `host` added from the authority if missing, as upstream).
    async fn admit(&self, headers: &::http::HeaderMap, authority: Option<&str>) -> Result<Metadata, Unauthenticated> {
        let auth = match &self.auth {
            Some(auth) => {
                let result = auth.authenticate(headers).await;
                if result.is_err() {
                    self.metrics.unauthenticated.inc();
                }
                result?
            }
            None => Vec::new(),
        };
        if !self.include_metadata {
            return Ok(Metadata::from_request(None, auth));
        }
        match authority.filter(|_| !headers.contains_key(::http::header::HOST)) {
            Some(host) => {
                let mut headers = headers.clone();
                if let Ok(value) = ::http::HeaderValue::from_str(host) {
                    headers.insert(::http::header::HOST, value);
                }
                Ok(Metadata::from_request(Some(&headers), auth))
            }
            None => Ok(Metadata::from_request(Some(headers), auth)),
        }
    }

    async fn accept(&self, payload: Payload, metadata: Metadata) -> Result<(), Answer> {
        let signal = payload.signal();
        let items = payload.item_count() as u64;
        if items == 0 {
            return Ok(());
        }
        let consumer = self.consumers.get(signal);
        if !consumer.waits_for_result() && !consumer.waits_for_queue() {
            // Every exporter queues in memory and waits for room: accepted is the answer.
            if let Err(refused) = consumer.try_consume(Batch::new(payload).with_metadata(metadata)) {
                self.metrics.refused(signal).inc_by(items);
                return Err(Answer::Refused(refused));
            }
            self.metrics.accepted(signal).inc_by(items);
            return Ok(());
        }
        let (ack, waiter) = Ack::reply();
        if let Err(refused) = consumer.try_consume(Batch::with_ack(payload, ack).with_metadata(metadata)) {
            self.metrics.refused(signal).inc_by(items);
            return Err(Answer::Refused(refused));
        }
        let resolution = waiter.wait().await;
        let answer = match resolution.outcome {
            AckOutcome::Delivered => {
                self.metrics.accepted(signal).inc_by(items);
                return Ok(());
            }
            // Waiting only for the queues: an exporter took it, and a full queue's
            // refused copy is counted there (a retry would duplicate it elsewhere).
            AckOutcome::Failed if resolution.kept && !consumer.waits_for_result() => {
                self.metrics.accepted(signal).inc_by(items);
                return Ok(());
            }
            AckOutcome::Failed if !resolution.kept => Answer::Unavailable(resolution.message),
            AckOutcome::Failed => Answer::Permanent { status: None, message: resolution.message },
            AckOutcome::Rejected => Answer::Permanent { status: resolution.status, message: resolution.message },
        };
        self.metrics.refused(signal).inc_by(items);
        Err(answer)
    }
}

/// The gRPC code for a backend's HTTP status, as upstream maps them.
fn grpc_code_of_http(status: u16) -> tonic::Code {
    use tonic::Code;
    match status {
        400 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        413 => Code::InvalidArgument,
        429 => Code::ResourceExhausted,
        502..=504 => Code::Unavailable,
        _ => Code::Internal,
    }
}

/// The HTTP status for a backend's gRPC code, as upstream maps them.
fn http_status_of_grpc(code: tonic::Code) -> u16 {
    use tonic::Code;
    match code {
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound | Code::Unimplemented => 404,
        Code::ResourceExhausted => 429,
        Code::Unavailable => 503,
        Code::DeadlineExceeded => 504,
        _ => 500,
    }
}

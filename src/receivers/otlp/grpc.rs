//! OTLP/gRPC server on tonic. The three services are one generic tower service over
//! raw bytes, so decoding (and its `INVALID_ARGUMENT`) is ours.

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::codec::{CompressionEncoding, EnabledCompressionEncodings};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Request, Response, Status};
use tracing::error;

use super::{GrpcConfig, Intake};
use crate::pdata::grpc::BytesCodec;
use crate::pdata::{Signal, json::from_proto};
use crate::pipeline::Refused;
use crate::receivers::StartError;
use crate::tls::{TlsError, TlsServerConfig};

/// The service name and method path of one signal.
pub(super) trait OtlpService: Send + Sync + 'static {
    const NAME: &'static str;
    const PATH: &'static str;
    const SIGNAL: Signal;
}

pub(super) struct Traces;
pub(super) struct Metrics;
pub(super) struct Logs;

impl OtlpService for Traces {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    const SIGNAL: Signal = Signal::Traces;
}
impl OtlpService for Metrics {
    const NAME: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const PATH: &'static str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    const SIGNAL: Signal = Signal::Metrics;
}
impl OtlpService for Logs {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const PATH: &'static str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
    const SIGNAL: Signal = Signal::Logs;
}

pub(super) struct GrpcService<S> {
    intake: Intake,
    max_message_size: usize,
    _service: PhantomData<S>,
}

impl<S> Clone for GrpcService<S> {
    fn clone(&self) -> Self {
        GrpcService {
            intake: self.intake.clone(),
            max_message_size: self.max_message_size,
            _service: PhantomData,
        }
    }
}

impl<S: OtlpService> NamedService for GrpcService<S> {
    const NAME: &'static str = S::NAME;
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'static>>;

impl<S, B> tower_service::Service<http::Request<B>> for GrpcService<S>
where
    S: OtlpService,
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move {
            if request.uri().path() != S::PATH {
                return Ok(Status::unimplemented(format!(
                    "unknown method {}",
                    request.uri().path()
                ))
                .into_http());
            }
            let mut encodings = EnabledCompressionEncodings::default();
            encodings.enable(CompressionEncoding::Gzip);
            encodings.enable(CompressionEncoding::Zstd);
            let mut grpc = Grpc::new(BytesCodec)
                .apply_compression_config(encodings, encodings)
                .apply_max_message_size_config(Some(service.max_message_size), None);
            Ok(grpc
                .unary(
                    Export::<S> {
                        intake: service.intake,
                        _service: PhantomData,
                    },
                    request,
                )
                .await)
        })
    }
}

struct Export<S> {
    intake: Intake,
    _service: PhantomData<S>,
}

impl<S: OtlpService> UnaryService<Bytes> for Export<S> {
    type Response = Bytes;
    type Future = BoxFuture<Response<Bytes>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let intake = self.intake.clone();
        Box::pin(async move {
            if intake.consumers.get(S::SIGNAL).is_empty() {
                return Err(Status::unimplemented(format!(
                    "this receiver is in no {} pipeline",
                    S::SIGNAL
                )));
            }
            let payload = from_proto(S::SIGNAL, request.get_ref()).map_err(|e| {
                Status::invalid_argument(format!("malformed {} request: {e}", S::SIGNAL))
            })?;
            intake.accept(payload).map_err(|refused| match refused {
                Refused::Full => Status::unavailable("pipeline is full; retry later"),
                Refused::Closed => Status::unavailable("receiver is shutting down; retry later"),
            })?;
            // An empty Export*ServiceResponse encodes to zero bytes.
            Ok(Response::new(Bytes::new()))
        })
    }
}

/// Reads the certificate files into tonic's server TLS settings.
pub(super) fn tls_config(tls: &TlsServerConfig) -> Result<ServerTlsConfig, StartError> {
    // Parse with rustls first, so a malformed file fails the start with a clear error.
    tls.rustls_config(&[b"h2"])?;
    let read = |path: &std::path::Path, what: &'static str| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            what,
            path: path.to_path_buf(),
            source,
        })
    };
    let mut config = ServerTlsConfig::new().identity(Identity::from_pem(
        read(&tls.cert_file, "tls.cert_file")?,
        read(&tls.key_file, "tls.key_file")?,
    ));
    if let Some(ca) = &tls.client_ca_file {
        config = config.client_ca_root(Certificate::from_pem(read(ca, "tls.client_ca_file")?));
    }
    Ok(config)
}

pub(super) async fn serve(
    config: GrpcConfig,
    listener: TcpListener,
    tls: Option<ServerTlsConfig>,
    intake: Intake,
    stop: CancellationToken,
) {
    let max_message_size = (config.max_recv_msg_size_mib as usize).saturating_mul(1 << 20);
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = match builder.tls_config(tls) {
            Ok(builder) => builder,
            Err(e) => {
                error!(error = %e, "OTLP/gRPC TLS set-up failed; not serving.");
                return;
            }
        };
    }
    if let Some(streams) = config.max_concurrent_streams {
        builder = builder.max_concurrent_streams(streams);
    }
    let router = builder
        .add_service(GrpcService::<Traces> {
            intake: intake.clone(),
            max_message_size,
            _service: PhantomData,
        })
        .add_service(GrpcService::<Metrics> {
            intake: intake.clone(),
            max_message_size,
            _service: PhantomData,
        })
        .add_service(GrpcService::<Logs> {
            intake,
            max_message_size,
            _service: PhantomData,
        });
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    if let Err(e) = router
        .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
        .await
    {
        error!(error = %e, "OTLP/gRPC server failed.");
    }
}

//! OTLP/gRPC server: `pdata::grpc::OtlpGrpcService` over raw bytes, so decoding (and
//! its `INVALID_ARGUMENT`) is ours.

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tracing::error;

use super::{Answer, GrpcConfig, Intake, grpc_code_of_http};
use crate::net;
use crate::pdata::grpc::{ExportHandler, ExportRequest, Logs, Metrics, OtlpGrpcService, Traces};
use crate::pdata::{BackendStatus, json::from_proto};
use crate::pipeline::Refused;
use crate::receivers::StartError;
use crate::tls::{self, TlsServerConfig};

impl ExportHandler for Intake {
    async fn handle(&self, request: ExportRequest) -> Result<(), Status> {
        let ExportRequest { signal, headers, authority, body } = request;
        if self.consumers.get(signal).is_empty() {
            return Err(Status::unimplemented(format!("this receiver is in no {signal} pipeline")));
        }
        let metadata = self.admit(&headers, authority.as_deref()).await.map_err(|e| Status::unauthenticated(e.0))?;
        let payload = net::decode_off_runtime(body.len(), move || from_proto(signal, &body))
            .await
            .ok_or_else(|| Status::internal("decoding the request failed"))?
            .map_err(|e| Status::invalid_argument(format!("malformed {signal} request: {e}")))?;
        self.accept(payload, metadata).await.map_err(|answer| match answer {
            Answer::Refused(Refused::Full) => Status::unavailable("pipeline is full; retry later"),
            Answer::Refused(Refused::Closed) => Status::unavailable("receiver is shutting down; retry later"),
            Answer::Unavailable(message) => Status::unavailable(format!("not delivered, retry later: {message}")),
            Answer::Permanent { status, message } => {
                let code = match status {
                    Some(BackendStatus::Grpc(code)) => tonic::Code::from_i32(code),
                    Some(BackendStatus::Http(status)) => grpc_code_of_http(status),
                    None => tonic::Code::Internal,
                };
                Status::new(code, message)
            }
        })
    }
}

/// Reads the certificate files into tonic's server TLS settings.
pub(super) fn tls_config(tls: &TlsServerConfig) -> Result<ServerTlsConfig, StartError> {
    // Parse with rustls first, so a malformed file fails the start with a clear error.
    tls.rustls_config(&[b"h2"])?;
    let mut config = ServerTlsConfig::new().identity(Identity::from_pem(
        tls::read(&tls.cert_file, "tls.cert_file")?,
        tls::read(&tls.key_file, "tls.key_file")?,
    ));
    if let Some(ca) = &tls.client_ca_file {
        config = config.client_ca_root(Certificate::from_pem(tls::read(ca, "tls.client_ca_file")?));
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
    let max_message_size = config.max_message_bytes();
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
        .add_service(OtlpGrpcService::<_, Traces>::new(intake.clone(), max_message_size))
        .add_service(OtlpGrpcService::<_, Metrics>::new(intake.clone(), max_message_size))
        .add_service(OtlpGrpcService::<_, Logs>::new(intake, max_message_size));
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    if let Err(e) = router.serve_with_incoming_shutdown(incoming, stop.cancelled_owned()).await {
        error!(error = %e, "OTLP/gRPC server failed.");
    }
}

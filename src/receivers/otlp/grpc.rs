//! OTLP/gRPC server: `pdata::grpc::OtlpGrpcService` over raw bytes, so decoding (and
//! its `INVALID_ARGUMENT`) is ours.

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::transport::server::TcpIncoming;
use tracing::{debug, error};

use super::{Answer, GrpcConfig, Intake, grpc_code_of_http};
use crate::component::Refused;
use crate::net;
use crate::pdata::grpc::{ExportHandler, ExportRequest, Logs, Metrics, OtlpGrpcService, Traces};
use crate::pdata::{BackendStatus, json::from_proto};
use crate::receivers::StartError;
use crate::tls::TlsServerConfig;

impl ExportHandler for Intake {
    async fn admit(&self, headers: &::http::HeaderMap) -> Result<(), Status> {
        match &self.auth {
            Some(auth) => match auth.authenticate(headers).await {
                Ok(_) => Ok(()),
                Err(e) => {
                    self.metrics.unauthenticated.inc();
                    Err(Status::unauthenticated(e.0))
                }
            },
            None => Ok(()),
        }
    }

    async fn handle(&self, request: ExportRequest) -> Result<(), Status> {
        let ExportRequest { signal, headers, authority, peer, body } = request;
        if self.consumers.get(signal).is_empty() {
            return Err(Status::unimplemented(format!("this receiver is in no {signal} pipeline")));
        }
        let metadata = self.admit(&headers, authority.as_deref()).await.map_err(|e| Status::unauthenticated(e.0))?;
        let metadata = metadata.with_addr(peer);
        let payload = net::decode_off_runtime(body.len(), move || from_proto(signal, &body))
            .await
            .ok_or_else(|| Status::internal("decoding the request failed"))?
            .map_err(|e| Status::invalid_argument(format!("malformed {signal} request: {e}")))?;
        self.accept(payload, metadata).await.map_err(|answer| match answer {
            Answer::Refused(Refused::Full) => Status::unavailable("pipeline is full; retry later"),
            Answer::Refused(Refused::Closed) => Status::unavailable("receiver is shutting down; retry later"),
            Answer::Refused(Refused::Memory) => {
                Status::unavailable("data refused due to high memory usage; retry later")
            }
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

/// The server's rustls settings (h2 only), with the certificate read again at
/// `reload_interval`: ocelot does the TLS handshakes, not tonic, so a renewed
/// certificate is served without a restart.
pub(super) fn tls_config(tls: &TlsServerConfig) -> Result<TlsAcceptor, StartError> {
    Ok(TlsAcceptor::from(tls.rustls_config(&[b"h2"])?))
}

/// Handshakes at once: past this, new connections wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 1024;

/// TLS connections for tonic. Each handshake runs in its own task, bounded in time,
/// so a slow or silent client cannot stall the others.
fn tls_incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    stop: CancellationToken,
) -> impl futures_util::Stream<Item = std::io::Result<tokio_rustls::server::TlsStream<TcpStream>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let handshakes = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let slot = tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                slot = handshakes.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
            };
            let accepted = tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    debug!(error = %e, "OTLP/gRPC accept failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let _slot = slot;
                match tokio::time::timeout(net::TLS_HANDSHAKE, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

pub(super) async fn serve(
    config: GrpcConfig,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    intake: Intake,
    stop: CancellationToken,
) {
    let max_message_size = config.max_message_bytes();
    let mut builder = tonic::transport::Server::builder();
    if let Some(streams) = config.max_concurrent_streams {
        builder = builder.max_concurrent_streams(streams);
    }
    let router = builder
        .add_service(OtlpGrpcService::<_, Traces>::new(intake.clone(), max_message_size))
        .add_service(OtlpGrpcService::<_, Metrics>::new(intake.clone(), max_message_size))
        .add_service(OtlpGrpcService::<_, Logs>::new(intake, max_message_size));
    let served = match tls {
        Some(acceptor) => {
            let incoming = tls_incoming(listener, acceptor, stop.clone());
            router.serve_with_incoming_shutdown(incoming, stop.cancelled_owned()).await
        }
        None => {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            router.serve_with_incoming_shutdown(incoming, stop.cancelled_owned()).await
        }
    };
    if let Err(e) = served {
        error!(error = %e, "OTLP/gRPC server failed.");
    }
}

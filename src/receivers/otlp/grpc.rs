//! OTLP/gRPC server on tonic.

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tracing::error;

use super::{GrpcConfig, Intake};
use crate::pdata::{Payload, Signal};
use crate::pipeline::Refused;

fn refusal(refused: Refused) -> Status {
    match refused {
        Refused::Full => Status::unavailable("pipeline is full; retry later"),
        Refused::Closed => Status::unavailable("receiver is shutting down"),
    }
}

fn not_served(signal: Signal) -> Status {
    Status::unimplemented(format!("this receiver is in no {signal} pipeline"))
}

#[tonic::async_trait]
impl TraceService for Intake {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        if self.consumers.traces.is_empty() {
            return Err(not_served(Signal::Traces));
        }
        self.accept(Payload::Traces(request.into_inner()))
            .map_err(refusal)?;
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Intake {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        if self.consumers.metrics.is_empty() {
            return Err(not_served(Signal::Metrics));
        }
        self.accept(Payload::Metrics(request.into_inner()))
            .map_err(refusal)?;
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl LogsService for Intake {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        if self.consumers.logs.is_empty() {
            return Err(not_served(Signal::Logs));
        }
        self.accept(Payload::Logs(request.into_inner()))
            .map_err(refusal)?;
        Ok(Response::new(ExportLogsServiceResponse {
            partial_success: None,
        }))
    }
}

pub(super) async fn serve(
    config: GrpcConfig,
    listener: TcpListener,
    intake: Intake,
    stop: CancellationToken,
) {
    let limit = (config.max_recv_msg_size_mib as usize).saturating_mul(1 << 20);
    macro_rules! service {
        ($server:ident) => {
            $server::new(intake.clone())
                .max_decoding_message_size(limit)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .send_compressed(CompressionEncoding::Gzip)
        };
    }
    let mut builder = tonic::transport::Server::builder();
    if let Some(streams) = config.max_concurrent_streams {
        builder = builder.max_concurrent_streams(streams);
    }
    let router = builder
        .add_service(service!(TraceServiceServer))
        .add_service(service!(MetricsServiceServer))
        .add_service(service!(LogsServiceServer));
    drop(intake);
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    if let Err(e) = router
        .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
        .await
    {
        error!(error = %e, "OTLP/gRPC server failed.");
    }
}

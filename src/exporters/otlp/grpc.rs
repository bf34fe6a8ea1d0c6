//! OTLP/gRPC client. Payloads are encoded with prost and sent as bytes through a
//! pass-through codec, so the shared batch is never copied to build a request.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};
use tracing::warn;

use super::{Compression, OtlpGrpcExporterConfig};
use crate::exporters::BuildError;
use crate::exporters::helper::{Export, ExportError};
use crate::pdata::{BackendStatus, Metadata, Payload, grpc::ClientCodec, json::to_proto};
use crate::tls::TlsClientConfig;

/// The URI tonic dials: TLS unless `tls.insecure` or an `http://` endpoint.
pub fn endpoint_uri(endpoint: &str, tls: &TlsClientConfig) -> Result<String, String> {
    let endpoint = endpoint.trim();
    let uri = if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        endpoint.to_string()
    } else if tls.insecure {
        format!("http://{endpoint}")
    } else {
        format!("https://{endpoint}")
    };
    uri.parse::<http::Uri>().map_err(|e| format!("endpoint `{endpoint}` is not a valid address: {e}"))?;
    Ok(uri)
}

pub struct OtlpGrpcExporter {
    channel: Channel,
    metadata: MetadataMap,
    compression: Option<CompressionEncoding>,
    auth: Option<std::sync::Arc<crate::extensions::auth::ClientAuth>>,
}

impl OtlpGrpcExporter {
    pub fn new(config: &OtlpGrpcExporterConfig) -> Result<OtlpGrpcExporter, BuildError> {
        let uri = endpoint_uri(&config.endpoint, &config.tls)
            .map_err(|reason| BuildError::Endpoint { endpoint: config.endpoint.clone(), reason })?;
        let bad_endpoint = |reason: String| BuildError::Endpoint { endpoint: config.endpoint.clone(), reason };
        let mut endpoint = Endpoint::from_shared(uri.clone()).map_err(|e| bad_endpoint(e.to_string()))?;
        if !config.timeout.0.is_zero() {
            endpoint = endpoint.connect_timeout(config.timeout.0);
        }
        if uri.starts_with("https://") && config.tls.needs_own_connector() {
            // Version limits and insecure_skip_verify: ocelot's rustls config on a
            // hyper-rustls connector, speaking h2 as gRPC needs.
            // hyper-rustls sets ALPN to h2 itself (enable_http2 below).
            let rustls = (*config.tls.rustls_config()?).clone();
            let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
            http.enforce_http(false);
            http.set_nodelay(true);
            http.set_connect_timeout((!config.timeout.0.is_zero()).then_some(config.timeout.0));
            let mut builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(rustls).https_only();
            if let Some(name) = &config.tls.server_name_override {
                let name = rustls::pki_types::ServerName::try_from(name.clone())
                    .map_err(|e| bad_endpoint(format!("tls.server_name_override `{name}`: {e}")))?;
                builder = builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
            }
            let connector = ForceHttps(builder.enable_http2().wrap_connector(http));
            // tonic refuses an https URI with a connector of its own; it is given the
            // address as http and the connector speaks TLS regardless.
            let plain = uri.replacen("https://", "http://", 1);
            let mut endpoint = Endpoint::from_shared(plain).map_err(|e| bad_endpoint(e.to_string()))?;
            if !config.timeout.0.is_zero() {
                endpoint = endpoint.connect_timeout(config.timeout.0);
            }
            let channel = endpoint.connect_with_connector_lazy(connector);
            return Ok(OtlpGrpcExporter {
                channel,
                metadata: metadata(config),
                compression: compression(config),
                auth: None,
            });
        }
        if uri.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            if config.tls.trusts_system_roots() {
                tls = tls.with_native_roots();
            }
            if let Some(ca) = config.tls.read_ca()? {
                tls = tls.ca_certificate(Certificate::from_pem(ca));
            }
            if let Some(pem) = config.tls.read_identity()? {
                tls = tls.identity(Identity::from_pem(pem.cert, pem.key));
            }
            if let Some(name) = &config.tls.server_name_override {
                tls = tls.domain_name(name.clone());
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| bad_endpoint(e.to_string()))?;
        }
        let channel = endpoint.tcp_nodelay(true).connect_lazy();
        Ok(OtlpGrpcExporter { channel, metadata: metadata(config), compression: compression(config), auth: None })
    }

    /// Adds an authenticator's headers (as metadata) to every request.
    pub fn with_auth(mut self, auth: Option<std::sync::Arc<crate::extensions::auth::ClientAuth>>) -> Self {
        self.auth = auth;
        self
    }

    async fn unary<Resp: prost::Message + Default + Send + 'static>(
        &self,
        path: &'static str,
        body: Bytes,
        metadata: &Metadata,
    ) -> Result<Resp, Status> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        if let Some(encoding) = self.compression {
            grpc = grpc.send_compressed(encoding);
        }
        grpc = grpc.accept_compressed(CompressionEncoding::Gzip).accept_compressed(CompressionEncoding::Zstd);
        grpc.ready().await.map_err(|e| Status::unavailable(format!("connection not ready: {e}")))?;
        let mut request = tonic::Request::new(body);
        *request.metadata_mut() = self.metadata.clone();
        if let Some(auth) = &self.auth {
            let mut headers = std::mem::take(request.metadata_mut()).into_headers();
            auth.apply(&mut headers, metadata).map_err(|e| Status::unavailable(format!("authenticator: {e}")))?;
            *request.metadata_mut() = MetadataMap::from_headers(headers);
        }
        let path = http::uri::PathAndQuery::from_static(path);
        let response = grpc.unary(request, path, ClientCodec::<Resp>::default()).await?;
        Ok(response.into_inner())
    }
}

/// A connector that always connects with TLS, whatever the URI's scheme says.
#[derive(Clone)]
struct ForceHttps<C>(C);

impl<C: tower_service::Service<http::Uri>> tower_service::Service<http::Uri> for ForceHttps<C> {
    type Response = C::Response;
    type Error = C::Error;
    type Future = C::Future;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let mut parts = uri.clone().into_parts();
        parts.scheme = Some(http::uri::Scheme::HTTPS);
        self.0.call(http::Uri::from_parts(parts).unwrap_or(uri))
    }
}

fn metadata(config: &OtlpGrpcExporterConfig) -> MetadataMap {
    let mut metadata = MetadataMap::new();
    for (name, value) in &config.headers {
        // Both were checked in validate(); a failure here would be a bug, so skip.
        if let (Ok(key), Ok(value)) =
            (name.to_ascii_lowercase().parse::<AsciiMetadataKey>(), value.parse::<AsciiMetadataValue>())
        {
            metadata.insert(key, value);
        }
    }
    metadata
}

fn compression(config: &OtlpGrpcExporterConfig) -> Option<CompressionEncoding> {
    match config.compression {
        Compression::Gzip => Some(CompressionEncoding::Gzip),
        Compression::Zstd => Some(CompressionEncoding::Zstd),
        Compression::None => None,
    }
}

impl Export for OtlpGrpcExporter {
    async fn export(&self, payload: &Payload, metadata: &Metadata) -> Result<(), ExportError> {
        let body = Bytes::from(to_proto(payload));
        let path = payload.signal().grpc_path();
        let rejected = match payload {
            Payload::Traces(_) => self
                .unary::<ExportTraceServiceResponse>(path, body, metadata)
                .await
                .map(|r| r.partial_success.map(|p| (p.rejected_spans, p.error_message))),
            Payload::Metrics(_) => self
                .unary::<ExportMetricsServiceResponse>(path, body, metadata)
                .await
                .map(|r| r.partial_success.map(|p| (p.rejected_data_points, p.error_message))),
            Payload::Logs(_) => self
                .unary::<ExportLogsServiceResponse>(path, body, metadata)
                .await
                .map(|r| r.partial_success.map(|p| (p.rejected_log_records, p.error_message))),
        }
        .map_err(classify_status)?;
        if let Some((count, message)) = rejected.filter(|(count, _)| *count > 0) {
            // The server kept the rest; resending would duplicate it, so this is not retried.
            warn!(rejected = count, %message, "Backend rejected part of an export (partial success).");
        }
        Ok(())
    }
}

/// Retryable gRPC codes per the OTLP specification. `RESOURCE_EXHAUSTED` is retried
/// only when the server says when (`RetryInfo`), and that delay is honoured. An
/// `OUT_OF_RANGE` that says the message is too large (what tonic servers answer for
/// an oversized request) is permanent: the same request would be refused again.
pub fn classify_status(status: Status) -> ExportError {
    let message = format!("gRPC {:?}: {}", status.code(), status.message());
    let retry_after = crate::pdata::grpc::retry_delay(&status);
    let too_large = status.code() == Code::OutOfRange && status.message().contains("too large");
    let error = match status.code() {
        Code::OutOfRange if too_large => ExportError::permanent(message),
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => ExportError::retry_after(message, retry_after),
        Code::ResourceExhausted if retry_after.is_some() => ExportError::retry_after(message, retry_after),
        _ => ExportError::permanent(message),
    };
    error.with_status(BackendStatus::Grpc(status.code() as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_as_the_otlp_specification_says() {
        for code in [Code::Unavailable, Code::DeadlineExceeded, Code::Aborted, Code::Cancelled, Code::DataLoss] {
            assert!(classify_status(Status::new(code, "")).retryable, "{code:?}");
        }
        for code in [Code::InvalidArgument, Code::PermissionDenied, Code::Unauthenticated, Code::Unimplemented] {
            assert!(!classify_status(Status::new(code, "")).retryable, "{code:?}");
        }
        // RESOURCE_EXHAUSTED without RetryInfo is permanent, and so is a too-large message.
        assert!(!classify_status(Status::resource_exhausted("full")).retryable);
        let oversized =
            Status::out_of_range("Error, decoded message length too large: found 5 bytes, the limit is: 4 bytes");
        assert!(!classify_status(oversized).retryable);
        assert!(classify_status(Status::out_of_range("seek past the end")).retryable);
        assert_eq!(classify_status(Status::invalid_argument("x")).status, Some(BackendStatus::Grpc(3)));
    }

    #[test]
    fn endpoints_get_the_scheme_tls_asks_for() {
        let tls = TlsClientConfig::default();
        assert_eq!(endpoint_uri("backend:4317", &tls).unwrap(), "https://backend:4317");
        let insecure = TlsClientConfig { insecure: true, ..TlsClientConfig::default() };
        assert_eq!(endpoint_uri("backend:4317", &insecure).unwrap(), "http://backend:4317");
        assert_eq!(endpoint_uri("http://backend:4317", &tls).unwrap(), "http://backend:4317");
    }
}

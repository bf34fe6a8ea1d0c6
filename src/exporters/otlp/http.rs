//! OTLP/HTTP client: protobuf (or JSON) bodies, gzip or zstd, status codes classified
//! as the OTLP specification says (429, 502, 503, 504 retryable, honouring
//! `Retry-After`; other 4xx permanent).

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{Compression, Encoding, OtlpHttpExporterConfig};
use crate::exporters::BuildError;
use crate::exporters::helper::{Export, ExportError};
use crate::pdata::{Payload, Signal, json};

/// The URL for one signal: the per-signal endpoint as is, or `endpoint` + `/v1/<signal>`.
pub fn signal_url(config: &OtlpHttpExporterConfig, signal: Signal) -> Result<http::Uri, String> {
    let specific = match signal {
        Signal::Traces => &config.traces_endpoint,
        Signal::Metrics => &config.metrics_endpoint,
        Signal::Logs => &config.logs_endpoint,
    };
    let url = match (specific, &config.endpoint) {
        (Some(url), _) => url.clone(),
        (None, Some(base)) => format!("{}/v1/{}", base.trim_end_matches('/'), signal.as_str()),
        (None, None) => return Err(format!("no endpoint for {signal}")),
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("`{url}` must start with http:// or https://"));
    }
    url.parse().map_err(|e| format!("`{url}` is not a valid URL: {e}"))
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

pub struct OtlpHttpExporter {
    client: HttpsClient,
    urls: [http::Uri; 3],
    headers: http::HeaderMap,
    compression: Compression,
    encoding: Encoding,
}

/// Error bodies are read for the log line only; more than this is cut.
const MAX_ERROR_BODY: usize = 4096;

impl OtlpHttpExporter {
    pub fn new(config: &OtlpHttpExporterConfig) -> Result<OtlpHttpExporter, BuildError> {
        let url = |signal| {
            signal_url(config, signal).map_err(|reason| BuildError::Endpoint {
                endpoint: config.endpoint.clone().unwrap_or_default(),
                reason,
            })
        };
        let urls = [url(Signal::Traces)?, url(Signal::Metrics)?, url(Signal::Logs)?];
        let tls = config.tls.rustls_config()?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout((!config.timeout.0.is_zero()).then_some(config.timeout.0));
        let mut builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config((*tls).clone()).https_or_http();
        if let Some(name) = &config.tls.server_name_override {
            let name = rustls::pki_types::ServerName::try_from(name.clone()).map_err(|e| BuildError::Endpoint {
                endpoint: config.endpoint.clone().unwrap_or_default(),
                reason: format!("tls.server_name_override `{name}`: {e}"),
            })?;
            builder = builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
        }
        let connector = builder.enable_http1().enable_http2().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let mut headers = http::HeaderMap::new();
        for (name, value) in &config.headers {
            if let (Ok(name), Ok(value)) =
                (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_str(value))
            {
                headers.insert(name, value);
            }
        }
        Ok(OtlpHttpExporter { client, urls, headers, compression: config.compression, encoding: config.encoding })
    }
}

fn compress(compression: Compression, body: Vec<u8>) -> Result<Vec<u8>, ExportError> {
    match compression {
        Compression::None => Ok(body),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
            encoder
                .write_all(&body)
                .and_then(|_| encoder.finish())
                .map_err(|e| ExportError::permanent(format!("gzip: {e}")))
        }
        Compression::Zstd => zstd::bulk::compress(&body, 1).map_err(|e| ExportError::permanent(format!("zstd: {e}"))),
    }
}

impl Export for OtlpHttpExporter {
    async fn export(&self, payload: &Payload) -> Result<(), ExportError> {
        let signal = payload.signal();
        let (body, content_type) = match self.encoding {
            Encoding::Proto => (json::to_proto(payload), "application/x-protobuf"),
            Encoding::Json => (json::to_json_line(payload).into_bytes(), "application/json"),
        };
        let body = compress(self.compression, body)?;
        let url = &self.urls[signal.index()];
        let mut request = http::Request::post(url.clone())
            .header(http::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ExportError::permanent(format!("building the request: {e}")))?;
        request.headers_mut().extend(self.headers.clone());
        let encoding = match self.compression {
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
            Compression::None => None,
        };
        if let Some(encoding) = encoding {
            request.headers_mut().insert(http::header::CONTENT_ENCODING, http::HeaderValue::from_static(encoding));
        }
        let response =
            self.client.request(request).await.map_err(|e| ExportError::retryable(format!("sending to {url}: {e}")))?;
        let status = response.status();
        if status.is_success() {
            // Drain the body so the connection can be reused.
            let _ = Limited::new(response.into_body(), MAX_ERROR_BODY).collect().await;
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = match Limited::new(response.into_body(), MAX_ERROR_BODY).collect().await {
            Ok(body) => String::from_utf8_lossy(&body.to_bytes()).chars().take(512).collect::<String>(),
            Err(_) => String::new(),
        };
        let message = format!("HTTP {} from {url}: {}", status.as_u16(), text.trim());
        Err(classify_status(status, retry_after, message))
    }
}

/// 429, 502, 503 and 504 are retryable; every other failure status is permanent.
pub fn classify_status(status: http::StatusCode, retry_after: Option<Duration>, message: String) -> ExportError {
    match status.as_u16() {
        429 | 502 | 503 | 504 => ExportError { retryable: true, retry_after, message },
        _ => ExportError::permanent(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{de::from_node, node::parse};

    fn config(yaml: &str) -> OtlpHttpExporterConfig {
        from_node(&parse("t", yaml).unwrap()).unwrap()
    }

    #[test]
    fn urls_append_the_signal_path() {
        let c = config("endpoint: http://gw:4318/\nlogs_endpoint: https://logs:443/custom\n");
        assert_eq!(signal_url(&c, Signal::Traces).unwrap().to_string(), "http://gw:4318/v1/traces");
        assert_eq!(signal_url(&c, Signal::Logs).unwrap().to_string(), "https://logs:443/custom");
        let c = config("endpoint: gw:4318\n");
        assert!(signal_url(&c, Signal::Metrics).unwrap_err().contains("http://"));
    }

    #[test]
    fn statuses_are_classified() {
        for code in [429, 502, 503, 504] {
            assert!(classify_status(http::StatusCode::from_u16(code).unwrap(), None, String::new()).retryable);
        }
        for code in [400, 401, 403, 404, 413, 500] {
            assert!(!classify_status(http::StatusCode::from_u16(code).unwrap(), None, String::new()).retryable);
        }
    }
}

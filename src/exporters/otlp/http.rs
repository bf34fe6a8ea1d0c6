//! OTLP/HTTP client: protobuf (or JSON) bodies, gzip or zstd, status codes classified
//! as the OTLP specification says (429, 502, 503, 504 retryable, honouring
//! `Retry-After`; other 4xx permanent).

use std::io::Write;
use std::time::Duration;

use super::{Compression, Encoding, OtlpHttpExporterConfig};
use crate::exporters::BuildError;
use crate::exporters::helper::{Export, ExportError};
use crate::exporters::http::HttpPoster;
use crate::pdata::{BackendStatus, Payload, Signal, json};

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

pub struct OtlpHttpExporter {
    poster: HttpPoster,
    urls: [http::Uri; 3],
    compression: Compression,
    encoding: Encoding,
}

impl OtlpHttpExporter {
    /// Adds an authenticator's headers to every request.
    pub fn with_auth(mut self, auth: Option<std::sync::Arc<crate::extensions::auth::ClientAuth>>) -> Self {
        self.poster = self.poster.with_auth(auth);
        self
    }

    pub fn new(config: &OtlpHttpExporterConfig) -> Result<OtlpHttpExporter, BuildError> {
        let endpoint = config.endpoint.clone().unwrap_or_default();
        let url = |signal| {
            signal_url(config, signal).map_err(|reason| BuildError::Endpoint { endpoint: endpoint.clone(), reason })
        };
        let urls = [url(Signal::Traces)?, url(Signal::Metrics)?, url(Signal::Logs)?];
        let poster = HttpPoster::new(&endpoint, &config.tls, config.timeout.0, &config.headers)?;
        Ok(OtlpHttpExporter { poster, urls, compression: config.compression, encoding: config.encoding })
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
    async fn export(&self, payload: &Payload, metadata: &crate::pdata::Metadata) -> Result<(), ExportError> {
        let signal = payload.signal();
        let (body, content_type) = match self.encoding {
            Encoding::Proto => (json::to_proto(payload), "application/x-protobuf"),
            Encoding::Json => (json::to_json_line(payload).into_bytes(), "application/json"),
        };
        let body = compress(self.compression, body)?;
        let url = &self.urls[signal.index()];
        let mut headers = vec![(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type))];
        match self.compression {
            Compression::Gzip => headers.push((http::header::CONTENT_ENCODING, http::HeaderValue::from_static("gzip"))),
            Compression::Zstd => headers.push((http::header::CONTENT_ENCODING, http::HeaderValue::from_static("zstd"))),
            Compression::None => {}
        }
        let response = self.poster.post(url, body, &headers, metadata).await?;
        if response.status.is_success() {
            return Ok(());
        }
        let message = format!("HTTP {} from {url}: {}", response.status.as_u16(), response.text);
        Err(classify_status(response.status, response.retry_after, message))
    }
}

/// 429, 502, 503 and 504 are retryable; every other failure status is permanent.
pub fn classify_status(status: http::StatusCode, retry_after: Option<Duration>, message: String) -> ExportError {
    let error = match status.as_u16() {
        429 | 502 | 503 | 504 => ExportError::retry_after(message, retry_after),
        _ => ExportError::permanent(message),
    };
    error.with_status(BackendStatus::Http(status.as_u16()))
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

//! The HTTP client the HTTP exporters share (otlphttp, prometheusremotewrite): TLS,
//! connect timeout, configured headers, and a response read for what classifying it
//! needs (status, `Retry-After`, the start of the body).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::exporters::BuildError;
use crate::exporters::helper::ExportError;
use crate::pdata::Metadata;
use crate::tls::TlsClientConfig;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

pub struct HttpPoster {
    client: HttpsClient,
    headers: http::HeaderMap,
    /// Bounds each request (connect, send, response), not a whole batch; zero: none.
    timeout: Duration,
    /// An authenticator's headers, applied to each request after the configured ones.
    auth: Option<std::sync::Arc<crate::extensions::auth::ClientAuth>>,
}

/// What came back, for the caller to classify.
pub struct Response {
    pub status: http::StatusCode,
    pub retry_after: Option<Duration>,
    /// The start of the body (error bodies are read for the log line only).
    pub text: String,
}

/// Bodies are read up to this much; the rest is dropped with the connection.
const MAX_BODY: usize = 4096;

impl HttpPoster {
    /// `endpoint` names the exporter's endpoint in errors.
    pub fn new(
        endpoint: &str,
        tls: &TlsClientConfig,
        timeout: Duration,
        headers: &BTreeMap<String, String>,
    ) -> Result<HttpPoster, BuildError> {
        let rustls = tls.rustls_config()?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout((!timeout.is_zero()).then_some(timeout));
        let mut builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config((*rustls).clone()).https_or_http();
        if let Some(name) = &tls.server_name_override {
            let name = rustls::pki_types::ServerName::try_from(name.clone()).map_err(|e| BuildError::Endpoint {
                endpoint: endpoint.to_string(),
                reason: format!("tls.server_name_override `{name}`: {e}"),
            })?;
            builder = builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
        }
        let connector = builder.enable_http1().enable_http2().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let mut header_map = http::HeaderMap::new();
        for (name, value) in headers {
            let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|e| BuildError::Endpoint {
                endpoint: endpoint.to_string(),
                reason: format!("header name `{name}`: {e}"),
            })?;
            let value = http::HeaderValue::from_str(value).map_err(|e| BuildError::Endpoint {
                endpoint: endpoint.to_string(),
                reason: format!("header `{name}`: {e}"),
            })?;
            header_map.insert(name, value);
        }
        Ok(HttpPoster { client, headers: header_map, timeout, auth: None })
    }

    /// Adds an authenticator's headers to every request.
    pub fn with_auth(mut self, auth: Option<std::sync::Arc<crate::extensions::auth::ClientAuth>>) -> HttpPoster {
        self.auth = auth;
        self
    }

    /// POSTs `body` with the configured headers, then `fixed` ones (which win), within
    /// the timeout. A transport failure or a timeout is retryable; any response is
    /// returned for classifying.
    pub async fn post(
        &self,
        url: &http::Uri,
        body: impl Into<Bytes>,
        fixed: &[(http::HeaderName, http::HeaderValue)],
        metadata: &Metadata,
    ) -> Result<Response, ExportError> {
        let body = body.into();
        if self.timeout.is_zero() {
            return self.post_unbounded(url, body, fixed, metadata).await;
        }
        match tokio::time::timeout(self.timeout, self.post_unbounded(url, body, fixed, metadata)).await {
            Ok(result) => result,
            Err(_) => Err(ExportError::retryable(format!("request to {url} timed out after {:?}", self.timeout))),
        }
    }

    async fn post_unbounded(
        &self,
        url: &http::Uri,
        body: Bytes,
        fixed: &[(http::HeaderName, http::HeaderValue)],
        metadata: &Metadata,
    ) -> Result<Response, ExportError> {
        let mut request = http::Request::post(url.clone())
            .body(Full::new(body))
            .map_err(|e| ExportError::permanent(format!("building the request: {e}")))?;
        request.headers_mut().extend(self.headers.clone());
        if let Some(auth) = &self.auth {
            // A token file that cannot be read now may be readable on the next try.
            auth.apply(request.headers_mut(), metadata)
                .map_err(|e| ExportError::retryable(format!("authenticator: {e}")))?;
        }
        for (name, value) in fixed {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        let response =
            self.client.request(request).await.map_err(|e| ExportError::retryable(format!("sending to {url}: {e}")))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // Read the start of the body (the error text); a longer body is cut, not lost.
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while bytes.len() < MAX_BODY {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        bytes.extend_from_slice(&data[..data.len().min(MAX_BODY - bytes.len())]);
                    }
                }
                _ => break,
            }
        }
        let text: String = if status.is_success() {
            String::new()
        } else {
            String::from_utf8_lossy(&bytes).chars().take(512).collect()
        };
        Ok(Response { status, retry_after, text: text.trim().to_string() })
    }
}

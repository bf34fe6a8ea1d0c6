//! The `otlp` (gRPC) and `otlphttp` exporters, with the upstream option names.

pub mod grpc;
pub mod http;

use std::collections::BTreeMap;

use serde::Deserialize;

use super::helper::{QueueConfig, RetryConfig};
use crate::component::Validate;
use crate::config::ConfigDuration;
use crate::tls::TlsClientConfig;

pub const GRPC_TYPE: &str = "otlp";
pub const HTTP_TYPE: &str = "otlphttp";

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
    #[serde(alias = "")]
    None,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OtlpGrpcExporterConfig {
    /// An authenticator extension whose headers every request carries
    /// (`bearertokenauth`, `basicauth`, `headers_setter`).
    #[serde(default)]
    pub auth: Option<crate::extensions::auth::AuthSettings>,
    /// `host:port`, or `https://host:port`; `http://` means no TLS. Required (the
    /// loadbalancing exporter's `protocol.otlp` has its backends' instead).
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub tls: TlsClientConfig,
    /// Sent as gRPC metadata on every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// gzip (default), zstd or none.
    #[serde(default)]
    pub compression: Compression,
    /// Per-attempt timeout. Default 5s.
    #[serde(default = "default_grpc_timeout")]
    pub timeout: ConfigDuration,
    #[serde(default)]
    pub sending_queue: QueueConfig,
    #[serde(default)]
    pub retry_on_failure: RetryConfig,
}

fn default_grpc_timeout() -> ConfigDuration {
    ConfigDuration::from_secs(5)
}

impl Validate for OtlpGrpcExporterConfig {
    fn validate(&self) -> Result<(), String> {
        if self.endpoint.trim().is_empty() {
            return Err("endpoint must be set, such as `backend:4317`".into());
        }
        grpc::endpoint_uri(&self.endpoint, &self.tls)?;
        for (name, value) in &self.headers {
            let lowercase = name.to_ascii_lowercase();
            tonic::metadata::MetadataKey::<tonic::metadata::Ascii>::from_bytes(lowercase.as_bytes())
                .map_err(|_| format!("header name `{name}` is not valid gRPC metadata"))?;
            value
                .parse::<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>()
                .map_err(|_| format!("header `{name}` has a value that is not valid gRPC metadata"))?;
        }
        self.tls.validate()?;
        self.sending_queue.validate()?;
        self.retry_on_failure.validate()
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// application/x-protobuf (default).
    #[default]
    Proto,
    /// application/json, OTLP JSON.
    Json,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OtlpHttpExporterConfig {
    /// An authenticator extension whose headers every request carries
    /// (`bearertokenauth`, `basicauth`, `headers_setter`).
    #[serde(default)]
    pub auth: Option<crate::extensions::auth::AuthSettings>,
    /// Base URL; `/v1/traces`, `/v1/metrics` or `/v1/logs` is appended.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Full URL for traces, used as is, instead of `endpoint` + `/v1/traces`.
    #[serde(default)]
    pub traces_endpoint: Option<String>,
    /// Full URL for metrics.
    #[serde(default)]
    pub metrics_endpoint: Option<String>,
    /// Full URL for logs.
    #[serde(default)]
    pub logs_endpoint: Option<String>,
    #[serde(default)]
    pub tls: TlsClientConfig,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// gzip (default), zstd or none.
    #[serde(default)]
    pub compression: Compression,
    /// proto (default) or json.
    #[serde(default)]
    pub encoding: Encoding,
    /// Per-attempt timeout. Default 30s.
    #[serde(default = "default_http_timeout")]
    pub timeout: ConfigDuration,
    #[serde(default)]
    pub sending_queue: QueueConfig,
    #[serde(default)]
    pub retry_on_failure: RetryConfig,
}

fn default_http_timeout() -> ConfigDuration {
    ConfigDuration::from_secs(30)
}

impl Validate for OtlpHttpExporterConfig {
    fn validate(&self) -> Result<(), String> {
        let all_signals =
            self.traces_endpoint.is_some() && self.metrics_endpoint.is_some() && self.logs_endpoint.is_some();
        if self.endpoint.is_none() && !all_signals {
            return Err("endpoint must be set (or traces_endpoint, metrics_endpoint and logs_endpoint), such as `https://backend:4318`".into());
        }
        for signal in crate::pdata::Signal::ALL {
            http::signal_url(self, signal)?;
        }
        for (name, value) in &self.headers {
            ::http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("header name `{name}` is not a valid HTTP header name"))?;
            ::http::HeaderValue::from_str(value).map_err(|_| format!("header `{name}` has an invalid value"))?;
        }
        self.tls.validate()?;
        self.sending_queue.validate()?;
        self.retry_on_failure.validate()
    }
}

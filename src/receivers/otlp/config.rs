use serde::Deserialize;

use crate::component::Validate;
use crate::config::{ByteSize, ConfigDuration};
use crate::extensions::auth::AuthSettings;
use crate::tls::TlsServerConfig;

/// The `otlp` receiver: OTLP over gRPC and HTTP for all three signals.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OtlpReceiverConfig {
    /// Which transports to serve; at least one.
    #[serde(default)]
    pub protocols: Protocols,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Protocols {
    /// OTLP/gRPC; `grpc:` with nothing after it takes every default.
    #[serde(default, deserialize_with = "crate::config::de::present_or_default")]
    pub grpc: Option<GrpcConfig>,
    /// OTLP/HTTP; `http:` with nothing after it takes every default.
    #[serde(default, deserialize_with = "crate::config::de::present_or_default")]
    pub http: Option<HttpConfig>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    /// Address to listen on, `host:port`. Default `127.0.0.1:4317`.
    #[serde(default = "default_grpc_endpoint")]
    pub endpoint: String,
    /// Largest request accepted, in MiB, after decompression. Default 4; 0 means 4.
    #[serde(default = "default_max_recv_msg_size_mib")]
    pub max_recv_msg_size_mib: u64,
    /// Concurrent HTTP/2 streams per connection. Default: unlimited (as upstream).
    #[serde(default)]
    pub max_concurrent_streams: Option<u32>,
    /// TLS (and mTLS with `client_ca_file`); plain text without it.
    #[serde(default)]
    pub tls: Option<TlsServerConfig>,
    /// Keep the request's metadata with its batch (for `from_context`, a `batch`
    /// processor's `metadata_keys`, headers_setter). Default false.
    #[serde(default)]
    pub include_metadata: bool,
    /// Check each client with an authenticator extension (basicauth's htpasswd,
    /// bearertokenauth).
    #[serde(default)]
    pub auth: Option<AuthSettings>,
}

impl GrpcConfig {
    /// The limit in bytes, with 0 read as the default, as upstream.
    pub fn max_message_bytes(&self) -> usize {
        let mib =
            if self.max_recv_msg_size_mib == 0 { default_max_recv_msg_size_mib() } else { self.max_recv_msg_size_mib };
        (mib as usize).saturating_mul(1 << 20)
    }
}

impl HttpConfig {
    /// The limit in bytes, with 0 read as the default, as upstream.
    pub fn max_body_bytes(&self) -> usize {
        let size = if self.max_request_body_size.0 == 0 {
            default_max_request_body_size()
        } else {
            self.max_request_body_size
        };
        size.0 as usize
    }
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            endpoint: default_grpc_endpoint(),
            max_recv_msg_size_mib: default_max_recv_msg_size_mib(),
            max_concurrent_streams: None,
            tls: None,
            include_metadata: false,
            auth: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on, `host:port`. Default `127.0.0.1:4318`.
    #[serde(default = "default_http_endpoint")]
    pub endpoint: String,
    /// Largest request body accepted, before and after decompression. Default 20MiB;
    /// 0 means 20MiB.
    #[serde(default = "default_max_request_body_size")]
    pub max_request_body_size: ByteSize,
    /// Path for traces. Default `/v1/traces`.
    #[serde(default = "default_traces_path")]
    pub traces_url_path: String,
    /// Path for metrics. Default `/v1/metrics`.
    #[serde(default = "default_metrics_path")]
    pub metrics_url_path: String,
    /// Path for logs. Default `/v1/logs`.
    #[serde(default = "default_logs_path")]
    pub logs_url_path: String,
    /// TLS (and mTLS with `client_ca_file`); plain text without it.
    #[serde(default)]
    pub tls: Option<TlsServerConfig>,
    /// A new connection must send a complete request head within this; 0s: no
    /// limit. Default 10s (upstream's default is no limit).
    #[serde(default = "crate::net::default_read_header_timeout")]
    pub read_header_timeout: ConfigDuration,
    /// A connection with no request in flight for this long is closed; 0s: never.
    /// Default 60s (upstream's default is no limit).
    #[serde(default = "crate::net::default_idle_timeout")]
    pub idle_timeout: ConfigDuration,
    /// Connections open at once (ocelot's own option); more wait in the kernel's
    /// backlog. Default 4096.
    #[serde(default = "crate::net::default_max_connections")]
    pub max_connections: usize,
    /// Cross-origin requests from browsers (the JavaScript SDK); off without
    /// `allowed_origins`.
    #[serde(default)]
    pub cors: Option<super::cors::CorsConfig>,
    /// Keep the request's headers with its batch (for `from_context`, a `batch`
    /// processor's `metadata_keys`, headers_setter). Default false.
    #[serde(default)]
    pub include_metadata: bool,
    /// Check each client with an authenticator extension (basicauth's htpasswd,
    /// bearertokenauth).
    #[serde(default)]
    pub auth: Option<AuthSettings>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            endpoint: default_http_endpoint(),
            max_request_body_size: default_max_request_body_size(),
            traces_url_path: default_traces_path(),
            metrics_url_path: default_metrics_path(),
            logs_url_path: default_logs_path(),
            tls: None,
            read_header_timeout: crate::net::default_read_header_timeout(),
            idle_timeout: crate::net::default_idle_timeout(),
            max_connections: crate::net::default_max_connections(),
            cors: None,
            include_metadata: false,
            auth: None,
        }
    }
}

fn default_grpc_endpoint() -> String {
    "127.0.0.1:4317".into()
}
fn default_http_endpoint() -> String {
    "127.0.0.1:4318".into()
}
fn default_max_recv_msg_size_mib() -> u64 {
    4
}
fn default_max_request_body_size() -> ByteSize {
    ByteSize(20 << 20)
}
fn default_traces_path() -> String {
    "/v1/traces".into()
}
fn default_metrics_path() -> String {
    "/v1/metrics".into()
}
fn default_logs_path() -> String {
    "/v1/logs".into()
}

impl Validate for OtlpReceiverConfig {
    fn validate(&self) -> Result<(), String> {
        let p = &self.protocols;
        if p.grpc.is_none() && p.http.is_none() {
            return Err("must specify at least one protocol under `protocols` (grpc, http)".into());
        }
        if let Some(grpc) = &p.grpc {
            crate::receivers::otlp::parse_endpoint(&grpc.endpoint)?;
        }
        if let Some(http) = &p.http {
            crate::receivers::otlp::parse_endpoint(&http.endpoint)?;
            if let Some(cors) = &http.cors {
                cors.validate().map_err(|e| format!("http.{e}"))?;
            }
            if http.max_connections == 0 {
                return Err("http.max_connections must be at least 1".into());
            }
            for path in [&http.traces_url_path, &http.metrics_url_path, &http.logs_url_path] {
                if !path.starts_with('/') {
                    return Err(format!("URL path `{path}` must start with `/`"));
                }
            }
        }
        Ok(())
    }
}

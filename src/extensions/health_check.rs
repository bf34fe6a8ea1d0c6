//! The `health_check` extension: `200` while the pipelines run, `503` while ocelot
//! starts or shuts down, as the upstream extension answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::component::Validate;
use crate::config::ConfigDuration;
use crate::net;

pub const TYPE: &str = "health_check";

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Address to listen on. Default `127.0.0.1:13133`.
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// Path answered. Default `/`.
    #[serde(default = "default_path")]
    pub path: String,
    /// A new connection must send a complete request head within this; 0s: no
    /// limit. Default 10s (upstream's default is no limit).
    #[serde(default = "crate::net::default_read_header_timeout")]
    pub read_header_timeout: ConfigDuration,
    /// A connection with no request in flight for this long is closed; 0s: never.
    /// Default 60s (upstream's default is no limit).
    #[serde(default = "crate::net::default_idle_timeout")]
    pub idle_timeout: ConfigDuration,
    /// Connections open at once (ocelot's own option); more wait in the kernel's
    /// backlog. Default 64.
    #[serde(default = "admin_max_connections")]
    pub max_connections: usize,
}

fn admin_max_connections() -> usize {
    net::ADMIN_MAX_CONNECTIONS
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            endpoint: default_endpoint(),
            path: default_path(),
            read_header_timeout: crate::net::default_read_header_timeout(),
            idle_timeout: crate::net::default_idle_timeout(),
            max_connections: net::ADMIN_MAX_CONNECTIONS,
        }
    }
}

fn default_endpoint() -> String {
    "127.0.0.1:13133".into()
}
fn default_path() -> String {
    "/".into()
}

impl Validate for HealthCheckConfig {
    fn validate(&self) -> Result<(), String> {
        net::normalize_endpoint(&self.endpoint)?;
        if self.max_connections == 0 {
            return Err("max_connections must be at least 1".into());
        }
        if !self.path.starts_with('/') {
            return Err(format!("path `{}` must start with `/`", self.path));
        }
        Ok(())
    }
}

/// The agent's state as health checks see it.
#[derive(Clone, Default)]
pub struct Health(Arc<AtomicU8>);

const STARTING: u8 = 0;
const READY: u8 = 1;
const STOPPING: u8 = 2;
/// Applying a reload: the running graph goes on serving, so the agent counts as up.
const RELOADING: u8 = 3;

impl Health {
    pub fn set_ready(&self) {
        self.0.store(READY, Ordering::Release);
    }
    pub fn set_stopping(&self) {
        self.0.store(STOPPING, Ordering::Release);
    }
    pub fn set_reloading(&self) {
        self.0.store(RELOADING, Ordering::Release);
    }
    pub fn is_ready(&self) -> bool {
        matches!(self.0.load(Ordering::Acquire), READY | RELOADING)
    }
    fn status_text(&self) -> &'static str {
        match self.0.load(Ordering::Acquire) {
            STARTING => "starting",
            READY => "ready",
            RELOADING => "reloading",
            _ => "stopping",
        }
    }
}

pub async fn serve(
    config: HealthCheckConfig,
    health: Health,
    listener: tokio::net::TcpListener,
    cancel: CancellationToken,
) {
    let path: Arc<str> = Arc::from(config.path.as_str());
    let handler = move |request: hyper::Request<hyper::body::Incoming>, _peer| {
        let health = health.clone();
        let path = path.clone();
        async move {
            if request.uri().path() != &*path {
                return net::text_response(http::StatusCode::NOT_FOUND, "not found\n");
            }
            let (status, text) = if health.is_ready() {
                (http::StatusCode::OK, "Server available")
            } else {
                (http::StatusCode::SERVICE_UNAVAILABLE, "Server not available")
            };
            let body = format!("{{\"status\":\"{text}\",\"state\":\"{}\"}}\n", health.status_text());
            let mut response = net::text_response(status, body);
            response
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
            response
        }
    };
    let limits = net::ServerLimits {
        read_header_timeout: config.read_header_timeout.0,
        idle_timeout: config.idle_timeout.0,
        max_connections: config.max_connections,
    };
    net::serve_http(listener, limits, handler, cancel).await;
}

//! The `health_check` extension: `200` while the pipelines run, `503` while ocelot
//! starts or shuts down, as the upstream extension answers; with `component_health`,
//! also `503` while a component's error counts against it.
//!
//! `/status` shows component status as upstream's v2 extension does (each pipeline,
//! each component in it, their worst status), and `/health/ready` is ocelot's
//! readiness: `200` only while running, not while starting, stopping or applying a
//! reload.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::component::Validate;
use crate::config::ConfigDuration;
use crate::net;
use crate::telemetry::status::{Entry, Status, Statuses};

pub const TYPE: &str = "health_check";

const STATUS_PATH: &str = "/status";
const READY_PATH: &str = "/health/ready";

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
    /// Upstream's v1 pipeline check, which upstream ignores now: accepted and ignored,
    /// with a warning.
    #[serde(default)]
    pub check_collector_pipeline: Option<CheckCollectorPipeline>,
    /// Which component errors make the agent unhealthy (upstream's v2 behaviour).
    #[serde(default)]
    pub component_health: ComponentHealth,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckCollectorPipeline {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub exporter_failure_threshold: Option<u64>,
}

/// Upstream's `component_health`: by default no component error makes the agent
/// unhealthy; `/status` shows them in any case.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ComponentHealth {
    /// A permanent error (data dropped for good) makes it unhealthy.
    #[serde(default)]
    pub include_permanent_errors: bool,
    /// A recoverable error (retrying) lasting longer than `recovery_duration` makes it
    /// unhealthy.
    #[serde(default)]
    pub include_recoverable_errors: bool,
    /// Default 5m.
    #[serde(default = "default_recovery_duration")]
    pub recovery_duration: ConfigDuration,
}

fn default_recovery_duration() -> ConfigDuration {
    ConfigDuration(std::time::Duration::from_secs(300))
}

impl Default for ComponentHealth {
    fn default() -> Self {
        ComponentHealth {
            include_permanent_errors: false,
            include_recoverable_errors: false,
            recovery_duration: default_recovery_duration(),
        }
    }
}

impl ComponentHealth {
    /// Whether `entry` makes the agent unhealthy at `now`.
    pub fn unhealthy(&self, entry: &Entry, now: std::time::SystemTime) -> bool {
        match entry.status {
            Status::PermanentError => self.include_permanent_errors,
            Status::RecoverableError => {
                self.include_recoverable_errors
                    && now.duration_since(entry.since).unwrap_or_default() >= self.recovery_duration.0
            }
            Status::Starting | Status::Ok => false,
        }
    }
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
            check_collector_pipeline: None,
            component_health: ComponentHealth::default(),
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
        if self.path == STATUS_PATH || self.path == READY_PATH {
            return Err(format!("path `{}` is the extension's own; choose another", self.path));
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
    /// Up: serving, also while a reload is applied.
    pub fn is_ready(&self) -> bool {
        matches!(self.0.load(Ordering::Acquire), READY | RELOADING)
    }
    /// Ready for traffic: running, and not in the middle of a reload.
    pub fn is_settled(&self) -> bool {
        self.0.load(Ordering::Acquire) == READY
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

/// What the extension reads of the running agent.
#[derive(Clone)]
pub struct View {
    pub health: Health,
    pub statuses: Arc<Statuses>,
    /// The running config, for the pipelines `/status` lists.
    pub control: crate::reload::Control,
}

pub async fn serve(
    config: HealthCheckConfig,
    view: View,
    listener: tokio::net::TcpListener,
    cancel: CancellationToken,
) {
    let path: Arc<str> = Arc::from(config.path.as_str());
    let rules = Arc::new(config.component_health.clone());
    let handler = move |request: hyper::Request<hyper::body::Incoming>, _peer| {
        let view = view.clone();
        let path = path.clone();
        let rules = rules.clone();
        async move {
            let json = |status: http::StatusCode, body: String| {
                let mut response = net::text_response(status, body);
                response
                    .headers_mut()
                    .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
                response
            };
            let request_path = request.uri().path();
            if request_path == STATUS_PATH {
                let (healthy, body) = status_json(&view, &rules);
                let code = if healthy { http::StatusCode::OK } else { http::StatusCode::SERVICE_UNAVAILABLE };
                return json(code, body);
            }
            if request_path == READY_PATH {
                let ready = view.health.is_settled();
                let code = if ready { http::StatusCode::OK } else { http::StatusCode::SERVICE_UNAVAILABLE };
                return json(code, format!("{{\"ready\":{ready},\"state\":\"{}\"}}\n", view.health.status_text()));
            }
            if request_path != &*path {
                return net::text_response(http::StatusCode::NOT_FOUND, "not found\n");
            }
            let (status, text) = if view.health.is_ready() && status_json(&view, &rules).0 {
                (http::StatusCode::OK, "Server available")
            } else {
                (http::StatusCode::SERVICE_UNAVAILABLE, "Server not available")
            };
            json(status, format!("{{\"status\":\"{text}\",\"state\":\"{}\"}}\n", view.health.status_text()))
        }
    };
    let limits = net::ServerLimits {
        read_header_timeout: config.read_header_timeout.0,
        idle_timeout: config.idle_timeout.0,
        max_connections: config.max_connections,
    };
    net::serve_http(listener, limits, handler, cancel).await;
}

/// Whether every component counts as healthy, and `/status` as upstream shapes it:
/// the agent, then `pipeline:<id>`, then `<kind>:<id>` in each, each with `healthy`,
/// `status`, `error` and `status_time`.
pub fn status_json(view: &View, rules: &ComponentHealth) -> (bool, String) {
    let config = view.control.config();
    let now = std::time::SystemTime::now();
    let since = |at: std::time::SystemTime| jiff::Timestamp::try_from(at).map(|t| t.to_string()).unwrap_or_default();
    let entry_of = |key: &str| {
        view.statuses.get(key).unwrap_or(Entry { status: Status::Ok, error: None, since: view.control.loaded_at() })
    };
    let one = |entry: &Entry| {
        serde_json::json!({
            "healthy": !rules.unhealthy(entry, now),
            "status": entry.status,
            "error": entry.error,
            "status_time": since(entry.since),
        })
    };
    let mut pipelines = serde_json::Map::new();
    let mut all_healthy = view.health.is_ready();
    let mut worst_overall: Option<Entry> = None;
    for (id, pipeline) in &config.service.pipelines {
        let keys = pipeline
            .receivers
            .iter()
            .filter(|r| config.receivers.contains_key(*r))
            .map(|r| format!("receiver:{r}"))
            .chain(pipeline.processors.iter().map(|p| format!("processor:{p}")))
            .chain(
                pipeline
                    .exporters
                    .iter()
                    .filter(|e| config.exporters.contains_key(*e))
                    .map(|e| format!("exporter:{e}")),
            )
            .chain(
                pipeline
                    .exporters
                    .iter()
                    .chain(&pipeline.receivers)
                    .filter(|c| config.connectors.contains_key(*c))
                    .map(|c| format!("connector:{c}")),
            );
        let mut components = serde_json::Map::new();
        let mut worst: Option<Entry> = None;
        let mut healthy = true;
        for key in keys {
            let entry = entry_of(&key);
            healthy &= !rules.unhealthy(&entry, now);
            components.insert(key, one(&entry));
            if worst.as_ref().is_none_or(|w| entry.status > w.status) {
                worst = Some(entry);
            }
        }
        let worst = worst.unwrap_or(Entry { status: Status::Ok, error: None, since: now });
        let mut pipeline_json = one(&worst);
        pipeline_json["healthy"] = healthy.into();
        pipeline_json["components"] = components.into();
        pipelines.insert(format!("pipeline:{id}"), pipeline_json);
        all_healthy &= healthy;
        if worst_overall.as_ref().is_none_or(|w| worst.status > w.status) {
            worst_overall = Some(worst);
        }
    }
    let worst = worst_overall.unwrap_or(Entry { status: Status::Ok, error: None, since: now });
    let mut body = one(&worst);
    body["healthy"] = all_healthy.into();
    body["start_time"] = since(view.control.started_at()).into();
    body["components"] = pipelines.into();
    let mut text = body.to_string();
    text.push('\n');
    (all_healthy, text)
}

//! `service.telemetry`: the agent's own metrics endpoint(s), logs and resource.

use serde::Deserialize;

use crate::net;

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    #[serde(default)]
    pub metrics: MetricsTelemetryConfig,
    #[serde(default)]
    pub logs: LogsTelemetryConfig,
    /// Attributes of the agent's own telemetry, shown on `target_info` beside
    /// `service.name` (ocelot) and `service.version`; a key set to null drops a default.
    #[serde(default)]
    pub resource: std::collections::BTreeMap<String, Option<String>>,
}

impl crate::component::Validate for TelemetryConfig {
    fn validate(&self) -> Result<(), String> {
        for (i, reader) in self.metrics.readers.iter().enumerate() {
            match (&reader.pull, &reader.periodic) {
                (Some(_), None) => {}
                (None, Some(_)) => {
                    return Err(format!(
                        "metrics.readers[{i}]: `periodic` readers (self-metrics pushed over OTLP) are not supported; use a `pull` reader with a `prometheus` exporter and scrape it"
                    ));
                }
                _ => return Err(format!("metrics.readers[{i}] must be one of `pull` or `periodic`")),
            }
        }
        for endpoint in self.metrics.endpoints() {
            net::normalize_endpoint(&endpoint).map_err(|e| format!("metrics: {e}"))?;
        }
        Ok(())
    }
}

/// One of `service.telemetry.metrics.readers`, as upstream's config names it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricReader {
    /// Served for scraping: `pull: {exporter: {prometheus: {host, port}}}`.
    #[serde(default)]
    pub pull: Option<PullReader>,
    /// Pushed periodically: refused, with a clear error.
    #[serde(default)]
    pub periodic: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PullReader {
    pub exporter: PullExporter,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PullExporter {
    pub prometheus: PrometheusPull,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrometheusPull {
    /// Default `localhost`, as upstream.
    #[serde(default = "default_pull_host")]
    pub host: String,
    /// Default 8888.
    #[serde(default = "default_pull_port")]
    pub port: u16,
}

fn default_pull_host() -> String {
    "localhost".into()
}
fn default_pull_port() -> u16 {
    8888
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MetricsLevel {
    /// No self-metrics endpoint.
    None,
    Basic,
    #[default]
    Normal,
    Detailed,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsTelemetryConfig {
    /// Default `normal`.
    /// Only `none` changes anything today: it turns the endpoint off. `basic`,
    /// `normal` and `detailed` all serve every metric listed in README.md.
    #[serde(default)]
    pub level: MetricsLevel,
    /// Where `/metrics` is served, the older way (upstream now refuses it): still
    /// accepted here, with a deprecation warning. Prefer `readers`.
    #[serde(default)]
    pub address: Option<String>,
    /// Upstream's current form: each `pull` reader is one endpoint serving `/metrics`.
    #[serde(default)]
    pub readers: Vec<MetricReader>,
}

impl MetricsTelemetryConfig {
    /// Every address `/metrics` is served on: the pull readers' and `address`; with
    /// neither, `127.0.0.1:8888`.
    pub fn endpoints(&self) -> Vec<String> {
        let mut endpoints: Vec<String> = self
            .readers
            .iter()
            .filter_map(|r| r.pull.as_ref())
            .map(|pull| {
                let host = &pull.exporter.prometheus.host;
                let host =
                    if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.clone() };
                format!("{host}:{}", pull.exporter.prometheus.port)
            })
            .collect();
        endpoints.extend(self.address.clone());
        if endpoints.is_empty() {
            endpoints.push("127.0.0.1:8888".into());
        }
        endpoints
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogEncoding {
    #[default]
    Console,
    Json,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogsTelemetryConfig {
    /// debug, info, warn or error. Default info. `--log-level` and `RUST_LOG` win.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// console (human-readable) or json. `--log-format` wins.
    #[serde(default)]
    pub encoding: LogEncoding,
}

impl Default for LogsTelemetryConfig {
    fn default() -> Self {
        LogsTelemetryConfig { level: default_log_level(), encoding: LogEncoding::default() }
    }
}

fn default_log_level() -> String {
    "info".into()
}

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::component::Validate;
use crate::config::ConfigDuration;
use crate::exporters::helper::{QueueConfig, RetryConfig};
use crate::tls::TlsClientConfig;

/// The `prometheusremotewrite` exporter, with the upstream option names and defaults.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrwConfig {
    /// An authenticator extension whose headers every request carries
    /// (`bearertokenauth`, `basicauth`, `headers_setter`).
    #[serde(default)]
    pub auth: Option<crate::extensions::auth::AuthSettings>,
    /// The remote-write URL, e.g. `http://prometheus:9090/api/v1/write`. Required.
    pub endpoint: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub tls: TlsClientConfig,
    /// Per request. Default 5s.
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
    /// Prefix of every metric name (`<namespace>_`).
    #[serde(default)]
    pub namespace: String,
    /// Labels added to every series that does not have them.
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub resource_to_telemetry_conversion: Enabled<false>,
    /// A `target_info` series per resource. Default enabled.
    #[serde(default)]
    pub target_info: Enabled<true>,
    /// Unit and type suffixes on names (`_seconds`, `_total`). Default true.
    #[serde(default = "default_true")]
    pub add_metric_suffixes: bool,
    /// Delta sums and histograms are written as running totals; a series not seen for
    /// this long is forgotten (its total starts over if it comes back). Default 5m.
    #[serde(default = "default_delta_expiry")]
    pub delta_expiry: ConfigDuration,
    /// Send each metric's type, help and unit. Default false.
    #[serde(default)]
    pub send_metadata: bool,
    /// Uncompressed size a request stays under; bigger batches become several requests.
    /// Default 3000000 (0 means the default, as upstream).
    #[serde(default = "default_max_batch_size_bytes")]
    pub max_batch_size_bytes: usize,
    #[serde(default)]
    pub remote_write_queue: RemoteWriteQueue,
    /// 5xx, 429 and transport errors are retried. Default: first wait 50ms, as upstream.
    #[serde(default = "default_retry")]
    pub retry_on_failure: RetryConfig,
}

/// `{enabled: bool}` with a default.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Enabled<const DEFAULT: bool> {
    #[serde(default = "default_bool::<DEFAULT>")]
    pub enabled: bool,
}

impl<const DEFAULT: bool> Default for Enabled<DEFAULT> {
    fn default() -> Self {
        Enabled { enabled: DEFAULT }
    }
}

fn default_bool<const B: bool>() -> bool {
    B
}

/// Upstream's `remote_write_queue`: the sending queue under its own name.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteQueue {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Batches waiting. Default 10000.
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
    /// Requests of one batch sent at once (each series is in one request, so this
    /// keeps every series in time order). Batches go one after another, as upstream:
    /// two batches in flight could deliver a series' samples out of order. Default 5.
    #[serde(default = "default_num_consumers")]
    pub num_consumers: usize,
}

impl Default for RemoteWriteQueue {
    fn default() -> Self {
        RemoteWriteQueue { enabled: true, queue_size: default_queue_size(), num_consumers: default_num_consumers() }
    }
}

impl RemoteWriteQueue {
    /// The sending queue: one batch at a time.
    pub fn queue(&self) -> QueueConfig {
        QueueConfig { enabled: self.enabled, num_consumers: 1, queue_size: self.queue_size, ..QueueConfig::default() }
    }
}

fn default_timeout() -> ConfigDuration {
    ConfigDuration::from_secs(5)
}
fn default_delta_expiry() -> ConfigDuration {
    ConfigDuration::from_secs(300)
}
fn default_true() -> bool {
    true
}
fn default_max_batch_size_bytes() -> usize {
    3_000_000
}
fn default_queue_size() -> usize {
    10_000
}
fn default_num_consumers() -> usize {
    5
}
fn default_retry() -> RetryConfig {
    RetryConfig { initial_interval: ConfigDuration::from_millis(50), ..RetryConfig::default() }
}

impl Validate for PrwConfig {
    fn validate(&self) -> Result<(), String> {
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return Err(format!("endpoint `{}` must start with http:// or https://", self.endpoint));
        }
        self.endpoint.parse::<http::Uri>().map_err(|e| format!("endpoint `{}`: {e}", self.endpoint))?;
        for (key, value) in &self.external_labels {
            if key.is_empty() || value.is_empty() {
                return Err("external_labels: a key or value is empty".into());
            }
        }
        if self.remote_write_queue.enabled && self.remote_write_queue.queue_size == 0 {
            return Err("remote_write_queue.queue_size must be at least 1".into());
        }
        if self.remote_write_queue.num_consumers == 0 {
            return Err("remote_write_queue.num_consumers must be at least 1".into());
        }
        self.tls.validate()?;
        self.retry_on_failure.validate()
    }
}

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
    /// Upstream's queue settings for this exporter.
    #[serde(default)]
    pub remote_write_queue: Option<RemoteWriteQueue>,
    /// Not an upstream option of this exporter, but current docs examples carry it:
    /// taken as the queue's settings (`enabled`, `queue_size`, `num_consumers` as
    /// requests at once, `block_on_overflow`, `wait_for_result`). Give one of the two.
    #[serde(default)]
    pub sending_queue: Option<QueueConfig>,
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

impl PrwConfig {
    /// The sending queue: one batch at a time, whichever block configured it.
    pub fn queue(&self) -> QueueConfig {
        match (&self.sending_queue, &self.remote_write_queue) {
            (Some(q), _) => QueueConfig { num_consumers: 1, ..q.clone() },
            (None, q) => {
                let q = q.clone().unwrap_or_default();
                QueueConfig { enabled: q.enabled, num_consumers: 1, queue_size: q.queue_size, ..QueueConfig::default() }
            }
        }
    }

    /// Requests of one batch sent at once.
    pub fn concurrency(&self) -> usize {
        match (&self.sending_queue, &self.remote_write_queue) {
            (Some(q), _) => q.num_consumers,
            (None, q) => q.as_ref().map_or_else(default_num_consumers, |q| q.num_consumers),
        }
        .max(1)
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
        if self.remote_write_queue.is_some() && self.sending_queue.is_some() {
            return Err(
                "give one of remote_write_queue and sending_queue (ocelot reads sending_queue as remote_write_queue)"
                    .into(),
            );
        }
        if let Some(q) = &self.sending_queue {
            q.validate()?;
        }
        let q = self.remote_write_queue.clone().unwrap_or_default();
        if q.enabled && q.queue_size == 0 {
            return Err("remote_write_queue.queue_size must be at least 1".into());
        }
        if q.num_consumers == 0 {
            return Err("remote_write_queue.num_consumers must be at least 1".into());
        }
        self.tls.validate()?;
        self.retry_on_failure.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<PrwConfig, String> {
        let node = crate::config::node::parse("prw.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
        crate::component::parse_config::<PrwConfig>(&node).map_err(|e| e.message)
    }

    #[test]
    fn sending_queue_is_read_as_the_queue_settings() {
        let c =
            parse("endpoint: http://127.0.0.1:9/api/v1/write\nsending_queue:\n  queue_size: 77\n  num_consumers: 3\n")
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.queue().queue_size, 77);
        assert_eq!(c.queue().num_consumers, 1, "batches go one after another");
        assert_eq!(c.concurrency(), 3);
        let c = parse("endpoint: http://127.0.0.1:9/api/v1/write\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.queue().queue_size, c.concurrency()), (10_000, 5));
        let both = parse(
            "endpoint: http://127.0.0.1:9/api/v1/write\nsending_queue: {queue_size: 7}\nremote_write_queue: {queue_size: 8}\n",
        );
        assert!(both.unwrap_err().contains("give one of remote_write_queue and sending_queue"));
    }
}

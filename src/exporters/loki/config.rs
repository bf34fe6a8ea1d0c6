use std::collections::BTreeMap;

use serde::Deserialize;

use crate::component::Validate;
use crate::config::{ByteSize, ConfigDuration};
use crate::exporters::helper::{QueueConfig, RetryConfig};
use crate::tls::TlsClientConfig;

/// The `loki` exporter.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LokiConfig {
    /// An authenticator extension whose headers every request carries
    /// (`bearertokenauth`, `basicauth`, `headers_setter`).
    #[serde(default)]
    pub auth: Option<crate::extensions::auth::AuthSettings>,
    /// The push URL, e.g. `http://loki:3100/loki/api/v1/push`. Required.
    pub endpoint: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Sent as `X-Scope-OrgID` (a `loki.tenant` hint on the data wins).
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub tls: TlsClientConfig,
    /// Per request. Default 30s.
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
    #[serde(default)]
    pub labels: LabelsConfig,
    /// Attributes that are not labels go with each entry as structured metadata
    /// (with the `raw` format). Default true.
    #[serde(default = "default_true")]
    pub structured_metadata: bool,
    /// The line: `raw` (the body), `json` or `logfmt` (body, attributes, trace and span
    /// ids, severity). Default `raw` with structured metadata, `json` without.
    #[serde(default)]
    pub format: Option<Format>,
    /// Uncompressed push body size a request stays under. Default 1MiB.
    #[serde(default = "default_max_request_size")]
    pub max_request_size: ByteSize,
    /// Streams per request. Default 1000.
    #[serde(default = "default_max_streams_per_request")]
    pub max_streams_per_request: usize,
    /// Streams per batch; entries of further streams are folded into one stream per
    /// tenant with only the static labels and `service_name` (counted). Default 10000.
    #[serde(default = "default_max_streams")]
    pub max_streams: usize,
    #[serde(default)]
    pub sending_queue: QueueConfig,
    /// 429, 5xx and transport errors are retried, honouring `Retry-After`.
    #[serde(default)]
    pub retry_on_failure: RetryConfig,
}

/// Which attributes become stream labels.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LabelsConfig {
    /// Resource attribute → label name ("" = the attribute's name, sanitised). Set, it
    /// replaces the default list (the resource attributes Loki's OTLP endpoint indexes).
    #[serde(default)]
    pub resource: Option<BTreeMap<String, String>>,
    /// Log record attribute → label name ("" = the attribute's name, sanitised).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Labels on every stream.
    #[serde(default, rename = "static")]
    pub static_labels: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Raw,
    Json,
    Logfmt,
}

impl Format {
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "raw" => Some(Format::Raw),
            "json" => Some(Format::Json),
            "logfmt" => Some(Format::Logfmt),
            _ => None,
        }
    }
}

fn default_timeout() -> ConfigDuration {
    ConfigDuration::from_secs(30)
}
fn default_true() -> bool {
    true
}
fn default_max_request_size() -> ByteSize {
    ByteSize(1 << 20)
}
fn default_max_streams_per_request() -> usize {
    1000
}
fn default_max_streams() -> usize {
    10_000
}

/// Loki's label name syntax.
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Validate for LokiConfig {
    fn validate(&self) -> Result<(), String> {
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return Err(format!("endpoint `{}` must start with http:// or https://", self.endpoint));
        }
        self.endpoint.parse::<http::Uri>().map_err(|e| format!("endpoint `{}`: {e}", self.endpoint))?;
        let named = self.labels.resource.iter().flatten().chain(&self.labels.attributes);
        for (attribute, label) in named {
            if !label.is_empty() && !valid_label_name(label) {
                return Err(format!("labels: `{label}` (for `{attribute}`) is not a valid Loki label name"));
            }
        }
        for name in self.labels.static_labels.keys() {
            if !valid_label_name(name) {
                return Err(format!("labels.static: `{name}` is not a valid Loki label name"));
            }
        }
        if self.max_request_size.0 == 0 || self.max_streams_per_request == 0 || self.max_streams == 0 {
            return Err("max_request_size, max_streams_per_request and max_streams must be more than 0".into());
        }
        self.tls.validate()?;
        self.sending_queue.validate()?;
        self.retry_on_failure.validate()
    }
}

//! The `prometheus` receiver's config: `config` is Prometheus' own configuration file
//! (the part a node agent uses), with Prometheus' names and defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::relabel::RelabelConfig;
use crate::component::Validate;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrometheusReceiverConfig {
    /// Prometheus' configuration: `global` and `scrape_configs`.
    pub config: PrometheusConfig,
    /// Trim the type and unit suffixes (`_total`, `_seconds`, ...) from metric names,
    /// as upstream's option. Default false.
    #[serde(default)]
    pub trim_metric_suffixes: bool,
    /// Also emit `scrape_body_size_bytes`, `scrape_sample_limit`,
    /// `scrape_timeout_seconds` per target. Default false.
    #[serde(default)]
    pub report_extra_scrape_metrics: bool,
    /// Removed upstream (start times moved to the `metricstarttime` processor);
    /// refused with that pointer.
    #[serde(default)]
    pub use_start_time_metric: Option<serde_yaml_any::Any>,
    /// Refused: ocelot has no target allocator client.
    #[serde(default)]
    pub target_allocator: Option<serde_yaml_any::Any>,
    /// Refused: ocelot serves no Prometheus API for the receiver.
    #[serde(default)]
    pub api_server: Option<serde_yaml_any::Any>,
}

/// Any value, for options that are refused by name with a reason.
pub mod serde_yaml_any {
    #[derive(Clone, Debug, PartialEq)]
    pub struct Any;

    impl<'de> serde::Deserialize<'de> for Any {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Any, D::Error> {
            serde::de::IgnoredAny::deserialize(d).map(|_| Any)
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    #[serde(default)]
    pub global: GlobalConfig,
    #[serde(default)]
    pub scrape_configs: Vec<ScrapeConfig>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    /// Default 1m, as Prometheus.
    #[serde(default = "default_interval")]
    pub scrape_interval: PromDuration,
    /// Default 10s, as Prometheus.
    #[serde(default = "default_timeout")]
    pub scrape_timeout: PromDuration,
    /// Labels added to every series scraped that has no label of that name (the
    /// page's and the target's win), as upstream's receiver adds them.
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            scrape_interval: default_interval(),
            scrape_timeout: default_timeout(),
            external_labels: BTreeMap::new(),
        }
    }
}

fn default_interval() -> PromDuration {
    PromDuration(Duration::from_secs(60))
}

fn default_timeout() -> PromDuration {
    PromDuration(Duration::from_secs(10))
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// The `job` label of every target. Required, unique.
    pub job_name: String,
    /// Default: `global.scrape_interval`.
    #[serde(default)]
    pub scrape_interval: Option<PromDuration>,
    /// Default: `global.scrape_timeout` (never more than the interval).
    #[serde(default)]
    pub scrape_timeout: Option<PromDuration>,
    /// Default `/metrics`.
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    /// `http` (default) or `https`.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// URL query parameters.
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    /// On a clash, the scraped label wins (else it becomes `exported_<name>`). Default false.
    #[serde(default)]
    pub honor_labels: bool,
    /// Keep the timestamps the page gives. Default true.
    #[serde(default = "yes")]
    pub honor_timestamps: bool,
    /// Ask for gzip. Default true.
    #[serde(default = "yes")]
    pub enable_compression: bool,
    /// Follow HTTP redirects (at most 10). Default true.
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    /// Targets from the Kubernetes API: roles `pod` and `node`.
    #[serde(default)]
    pub kubernetes_sd_configs: Vec<KubernetesSdConfig>,
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default)]
    pub authorization: Option<Authorization>,
    #[serde(default)]
    pub tls_config: Option<PromTlsConfig>,
    /// More samples (after metric relabeling) fail the scrape. 0: no limit.
    #[serde(default)]
    pub sample_limit: usize,
    /// More labels on one series fail the scrape. 0: no limit.
    #[serde(default)]
    pub label_limit: usize,
    /// A longer label name fails the scrape. 0: no limit.
    #[serde(default)]
    pub label_name_length_limit: usize,
    /// A longer label value fails the scrape. 0: no limit.
    #[serde(default)]
    pub label_value_length_limit: usize,
    /// A larger (uncompressed) body fails the scrape. Prometheus' `0` (no limit) is
    /// ocelot's 64MiB: an agent's memory is bounded.
    #[serde(default)]
    pub body_size_limit: Option<crate::config::ByteSize>,
}

fn yes() -> bool {
    true
}

fn default_metrics_path() -> String {
    "/metrics".into()
}

fn default_scheme() -> String {
    "http".into()
}

/// The most a scrape body may be when `body_size_limit` says none.
pub const MAX_BODY: u64 = 64 << 20;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// `host:port` of each target.
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Prometheus' `kubernetes_sd_configs` entry.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSdConfig {
    /// `pod` or `node`; Prometheus' other roles are refused for now.
    pub role: String,
    /// The API server's URL; without it (and without `kubeconfig_file`) the pod's own
    /// cluster, with its service account.
    #[serde(default)]
    pub api_server: Option<String>,
    /// A kubeconfig file, its current context.
    #[serde(default)]
    pub kubeconfig_file: Option<PathBuf>,
    /// Only these namespaces (pod role); default all.
    #[serde(default)]
    pub namespaces: Option<Namespaces>,
    /// Label and field selectors for the API, per role.
    #[serde(default)]
    pub selectors: Vec<Selector>,
    /// `node: true` (node labels on pod targets) is refused for now.
    #[serde(default)]
    pub attach_metadata: Option<AttachMetadata>,
    /// With `api_server`: the CA and whether to check it.
    #[serde(default)]
    pub tls_config: Option<PromTlsConfig>,
    /// With `api_server`: the bearer token (`credentials` or `credentials_file`).
    #[serde(default)]
    pub authorization: Option<Authorization>,
    /// With `api_server`: a file holding the bearer token.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    pub follow_redirects: Option<bool>,
    #[serde(default)]
    pub enable_http2: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Namespaces {
    /// The agent's own namespace (its service account's).
    #[serde(default)]
    pub own_namespace: bool,
    #[serde(default)]
    pub names: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    pub role: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub field: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AttachMetadata {
    #[serde(default)]
    pub node: bool,
}

impl KubernetesSdConfig {
    fn validate(&self) -> Result<(), String> {
        const LATER: &[&str] = &["endpoints", "endpointslice", "service", "ingress"];
        match self.role.as_str() {
            "pod" | "node" => {}
            role if LATER.contains(&role) => {
                return Err(format!("role `{role}` is not supported by ocelot yet (pod and node are)"));
            }
            role => return Err(format!("unknown role `{role}`")),
        }
        if self.api_server.is_some() && self.kubeconfig_file.is_some() {
            return Err("api_server and kubeconfig_file: set one".into());
        }
        let direct = self.tls_config.is_some() || self.authorization.is_some() || self.bearer_token_file.is_some();
        if direct && self.api_server.is_none() {
            return Err("tls_config, authorization and bearer_token_file go with api_server".into());
        }
        if let Some(tls) = &self.tls_config
            && (tls.cert_file.is_some() || tls.key_file.is_some())
        {
            return Err("tls_config: a client certificate for the API is not supported yet".into());
        }
        if self.attach_metadata.as_ref().is_some_and(|a| a.node) {
            return Err("attach_metadata.node is not supported by ocelot yet".into());
        }
        if self.role == "node" && self.namespaces.is_some() {
            return Err("namespaces are for role pod; nodes have none".into());
        }
        for selector in &self.selectors {
            if selector.role != self.role {
                return Err(format!("selector role `{}` does not match role `{}`", selector.role, self.role));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// Files (globs in the last path element) of target groups, JSON or YAML.
    pub files: Vec<String>,
    /// How often the files are read again. Default 5m.
    #[serde(default = "default_refresh")]
    pub refresh_interval: PromDuration,
}

fn default_refresh() -> PromDuration {
    PromDuration(Duration::from_secs(300))
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    #[serde(default)]
    pub password: Option<String>,
    /// Read at every scrape (a rotated secret is picked up).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// Default `Bearer`.
    #[serde(default = "default_auth_type", rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub credentials: Option<String>,
    /// Read at every scrape.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
}

fn default_auth_type() -> String {
    "Bearer".into()
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PromTlsConfig {
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The name to check the certificate against (and send as SNI).
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// `TLS12` or `TLS13`.
    #[serde(default)]
    pub min_version: Option<String>,
}

impl PromTlsConfig {
    /// The same as the collector's client TLS settings.
    pub fn client(&self) -> Result<crate::tls::TlsClientConfig, String> {
        let min_version = match self.min_version.as_deref() {
            None => None,
            Some("TLS10" | "TLS11" | "TLS12") => Some("1.2".to_string()),
            Some("TLS13") => Some("1.3".to_string()),
            Some(other) => return Err(format!("tls_config.min_version `{other}`: expected TLS12 or TLS13")),
        };
        Ok(crate::tls::TlsClientConfig {
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            server_name_override: self.server_name.clone(),
            insecure_skip_verify: self.insecure_skip_verify,
            min_version,
            ..Default::default()
        })
    }
}

/// A duration as Prometheus writes one: `30s`, `1m30s`, `100ms`, `1d`, `2w`, `1y`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PromDuration(pub Duration);

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PromDuration, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map(PromDuration).map_err(serde::de::Error::custom)
    }
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration `{text}`; write it as Prometheus does, like 15s, 1m30s or 100ms");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let ms = match &rest[..unit] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return Err(bad()),
        };
        total += Duration::from_millis(n.checked_mul(ms).ok_or_else(bad)?);
        rest = &rest[unit..];
    }
    Ok(total)
}

impl ScrapeConfig {
    pub fn interval(&self, global: &GlobalConfig) -> Duration {
        self.scrape_interval.unwrap_or(global.scrape_interval).0
    }

    /// The timeout: as given, else the global one but never past the interval.
    pub fn timeout(&self, global: &GlobalConfig) -> Duration {
        match self.scrape_timeout {
            Some(t) => t.0,
            None => global.scrape_timeout.0.min(self.interval(global)),
        }
    }

    pub fn body_limit(&self) -> u64 {
        self.body_size_limit.map(|b| b.0).filter(|b| *b > 0).unwrap_or(MAX_BODY)
    }

    fn validate(&self, global: &GlobalConfig) -> Result<(), String> {
        let job = &self.job_name;
        let fail = |m: String| Err(format!("scrape_configs `{job}`: {m}"));
        if self.interval(global).is_zero() {
            return fail("scrape_interval must be more than 0".into());
        }
        if self.timeout(global) > self.interval(global) {
            return fail(format!(
                "scrape_timeout ({:?}) is longer than scrape_interval ({:?})",
                self.timeout(global),
                self.interval(global)
            ));
        }
        if self.timeout(global).is_zero() {
            return fail("scrape_timeout must be more than 0".into());
        }
        if !matches!(self.scheme.as_str(), "http" | "https") {
            return fail(format!("scheme `{}`: expected http or https", self.scheme));
        }
        if !self.metrics_path.starts_with('/') {
            return fail(format!("metrics_path `{}` must start with /", self.metrics_path));
        }
        for (n, sd) in self.kubernetes_sd_configs.iter().enumerate() {
            if let Err(e) = sd.validate() {
                return fail(format!("kubernetes_sd_configs[{n}]: {e}"));
            }
        }
        for (n, group) in self.static_configs.iter().enumerate() {
            if let Some(bad) = group.targets.iter().find(|t| t.is_empty() || t.contains('/')) {
                return fail(format!("static_configs[{n}]: target `{bad}` is not host:port"));
            }
        }
        for sd in &self.file_sd_configs {
            if sd.files.is_empty() {
                return fail("file_sd_configs: files is empty".into());
            }
            if sd.refresh_interval.0.is_zero() {
                return fail("file_sd_configs: refresh_interval must be more than 0".into());
            }
        }
        for (what, list) in
            [("relabel_configs", &self.relabel_configs), ("metric_relabel_configs", &self.metric_relabel_configs)]
        {
            for (n, r) in list.iter().enumerate() {
                if let Err(e) = r.compile() {
                    return fail(format!("{what}[{n}]: {e}"));
                }
            }
        }
        if let Some(auth) = &self.basic_auth
            && auth.password.is_some()
            && auth.password_file.is_some()
        {
            return fail("basic_auth: give password or password_file, not both".into());
        }
        if let Some(auth) = &self.authorization {
            if auth.credentials.is_some() && auth.credentials_file.is_some() {
                return fail("authorization: give credentials or credentials_file, not both".into());
            }
            if auth.kind.eq_ignore_ascii_case("basic") {
                return fail("authorization: type Basic is basic_auth's job".into());
            }
        }
        if self.basic_auth.is_some() && self.authorization.is_some() {
            return fail("give basic_auth or authorization, not both".into());
        }
        if let Some(tls) = &self.tls_config {
            tls.client()?.validate().or_else(fail)?;
        }
        Ok(())
    }
}

impl Validate for PrometheusReceiverConfig {
    fn validate(&self) -> Result<(), String> {
        if self.use_start_time_metric.is_some() {
            return Err("use_start_time_metric was removed upstream: start times are the metricstarttime processor's job (strategy: start_time_metric)".into());
        }
        if self.target_allocator.is_some() {
            return Err("target_allocator is not supported by ocelot: list the targets in scrape_configs".into());
        }
        if self.api_server.is_some() {
            return Err("api_server is not supported by ocelot".into());
        }
        if self.config.scrape_configs.is_empty() {
            return Err("config.scrape_configs is empty: nothing to scrape".into());
        }
        let mut jobs = std::collections::BTreeSet::new();
        for scrape in &self.config.scrape_configs {
            if scrape.job_name.is_empty() {
                return Err("scrape_configs: a job_name is empty".into());
            }
            if !jobs.insert(scrape.job_name.as_str()) {
                return Err(format!("scrape_configs: job_name `{}` is used twice", scrape.job_name));
            }
            scrape.validate(&self.config.global)?;
        }
        Ok(())
    }
}

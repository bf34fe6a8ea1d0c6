//! The `kubeletstats` receiver's configuration: upstream's options and defaults.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::component::Validate;
use crate::config::ConfigDuration;
use crate::kube::client::AuthType;
use crate::receivers::hostmetrics::config::MetricToggles;

fn default_auth() -> AuthType {
    AuthType::Tls
}

fn default_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(10))
}

fn default_initial_delay() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(1))
}

/// The metric groups: upstream's names, and which are on by default.
pub const GROUPS: &[(&str, bool)] = &[("container", true), ("pod", true), ("node", true), ("volume", false)];

/// The extra labels, each needing the kubelet's `/pods`.
pub const EXTRA_LABELS: &[&str] = &["container.id", "k8s.volume.type"];

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KubeletStatsConfig {
    /// `host:port` or a URL of the kubelet (with `auth_type: kubeConfig`, the node's
    /// name, reached through the API server's proxy). Default: this host's name, on
    /// 10250 (https) or, with `auth_type: none`, 10255 (http).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `tls` (default: a client certificate), `serviceAccount`, `kubeConfig`, `none`.
    #[serde(default = "default_auth")]
    pub auth_type: AuthType,
    /// The kubeconfig context (`kubeConfig` only).
    #[serde(default)]
    pub context: Option<String>,
    /// The CA the kubelet's certificate is checked against.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The client certificate (`tls`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Accept any kubelet certificate (many are self-signed). Default false.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Default 10s.
    #[serde(default = "default_interval")]
    pub collection_interval: ConfigDuration,
    /// Default 1s.
    #[serde(default = "default_initial_delay")]
    pub initial_delay: ConfigDuration,
    /// A scrape's bound; 0 (the default) is the collection interval.
    #[serde(default)]
    pub timeout: ConfigDuration,
    /// `container`, `pod`, `node` (default) and `volume`.
    #[serde(default)]
    pub metric_groups: Option<Vec<String>>,
    /// `container.id`, `k8s.volume.type`: read from the kubelet's `/pods`.
    #[serde(default)]
    pub extra_metadata_labels: Vec<String>,
    /// The API, for the persistent volume behind a claim (`k8s.volume.type` of a
    /// `persistentVolumeClaim` volume becomes the volume's own type).
    #[serde(default)]
    pub k8s_api_config: Option<ApiConfig>,
    /// The node's name; upstream needs it only for the node-utilization metrics,
    /// which ocelot refuses for now.
    #[serde(default)]
    pub node: Option<String>,
    /// Every network interface's counters, not only the default one.
    #[serde(default)]
    pub collect_all_network_interfaces: Interfaces,
    /// `<name>: {enabled: bool}`.
    #[serde(default)]
    pub metrics: MetricToggles,
    /// `<name>: {enabled: bool}`.
    #[serde(default)]
    pub resource_attributes: MetricToggles,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    #[serde(default)]
    pub auth_type: AuthType,
    #[serde(default)]
    pub context: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Interfaces {
    #[serde(default)]
    pub pod: bool,
    #[serde(default)]
    pub node: bool,
}

impl KubeletStatsConfig {
    pub fn groups(&self) -> Vec<String> {
        match &self.metric_groups {
            Some(groups) => groups.clone(),
            None => GROUPS.iter().filter(|(_, on)| *on).map(|(g, _)| g.to_string()).collect(),
        }
    }

    pub fn wants_group(&self, group: &str) -> bool {
        self.groups().iter().any(|g| g == group)
    }

    pub fn extra(&self, label: &str) -> bool {
        self.extra_metadata_labels.iter().any(|l| l == label)
    }

    /// The scrape's bound.
    pub fn timeout(&self) -> Duration {
        if self.timeout.0.is_zero() { self.collection_interval.0 } else { self.timeout.0 }
    }
}

impl Validate for KubeletStatsConfig {
    fn validate(&self) -> Result<(), String> {
        if self.collection_interval.0.is_zero() {
            return Err("collection_interval must be above zero".into());
        }
        for group in self.groups() {
            if !GROUPS.iter().any(|(g, _)| *g == group) {
                return Err(format!("invalid entry in metric_groups: `{group}` (container, pod, node, volume)"));
            }
        }
        let mut seen = Vec::new();
        for label in &self.extra_metadata_labels {
            if !EXTRA_LABELS.contains(&label.as_str()) {
                return Err(format!("extra_metadata_labels: `{label}` is not container.id or k8s.volume.type"));
            }
            if seen.contains(&label) {
                return Err(format!("extra_metadata_labels: `{label}` is there twice"));
            }
            seen.push(label);
        }
        for (name, toggle) in &self.metrics {
            match super::metrics::METRICS.iter().find(|m| m.name == name) {
                Some(_) => {}
                None if super::metrics::NOT_YET.contains(&name.as_str()) => {
                    if toggle.enabled {
                        return Err(format!("metrics: `{name}` is not supported by ocelot yet"));
                    }
                }
                None => return Err(format!("metrics: `{name}` is not a kubeletstats metric")),
            }
        }
        for name in self.resource_attributes.keys() {
            if !super::metrics::RESOURCE_ATTRIBUTES.contains(&name.as_str()) {
                return Err(format!("resource_attributes: `{name}` is not a kubeletstats resource attribute"));
            }
        }
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) | (None, Some(_)) => return Err("cert_file and key_file go together".into()),
            (Some(_), Some(_)) if self.auth_type != AuthType::Tls => {
                return Err("cert_file and key_file are for auth_type: tls".into());
            }
            _ => {}
        }
        if self.auth_type == AuthType::Tls && self.cert_file.is_none() {
            return Err("auth_type tls needs cert_file and key_file (or use auth_type serviceAccount)".into());
        }
        if let Some(api) = &self.k8s_api_config
            && api.auth_type == AuthType::Tls
        {
            return Err("k8s_api_config.auth_type: tls is for the kubelet, not the API server".into());
        }
        Ok(())
    }
}

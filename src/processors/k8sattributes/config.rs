//! The `k8sattributes` processor's configuration, upstream's options and defaults.

use std::time::Duration;

use serde::Deserialize;

use crate::component::Validate;
use crate::config::ConfigDuration;
use crate::kube::client::AuthType;

/// Every metadata name upstream extracts, and whether ocelot does yet.
pub const METADATA: &[(&str, bool)] = &[
    ("k8s.namespace.name", true),
    ("k8s.pod.name", true),
    ("k8s.pod.uid", true),
    ("k8s.pod.hostname", true),
    ("k8s.pod.start_time", true),
    ("k8s.pod.ip", true),
    ("k8s.deployment.name", true),
    ("k8s.deployment.uid", true),
    ("k8s.replicaset.name", true),
    ("k8s.replicaset.uid", true),
    ("k8s.daemonset.name", true),
    ("k8s.daemonset.uid", true),
    ("k8s.statefulset.name", true),
    ("k8s.statefulset.uid", true),
    ("k8s.job.name", true),
    ("k8s.job.uid", true),
    ("k8s.cronjob.name", true),
    ("k8s.cronjob.uid", true),
    ("k8s.node.name", true),
    ("k8s.node.uid", true),
    ("k8s.container.name", true),
    ("container.id", true),
    ("container.image.name", true),
    ("container.image.tag", true),
    ("container.image.repo_digests", true),
    ("service.namespace", false),
    ("service.name", false),
    ("service.version", false),
    ("service.instance.id", false),
    ("k8s.cluster.uid", true),
];

/// Upstream's default `extract.metadata`.
pub const DEFAULT_METADATA: &[&str] = &[
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.pod.uid",
    "k8s.pod.start_time",
    "k8s.deployment.name",
    "k8s.node.name",
    "container.image.name",
    "container.image.tag",
];

/// Upstream's default `exclude.pods`.
const DEFAULT_EXCLUDED: &[&str] = &["jaeger-agent", "jaeger-collector"];

/// Sources in one association, at most (upstream's `PodIdentifierMaxLength`).
const MAX_SOURCES: usize = 4;

fn default_wait_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(10))
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct K8sAttributesConfig {
    /// How to reach the API: `serviceAccount` (default), `kubeConfig`, `none`.
    #[serde(default)]
    pub auth_type: AuthType,
    /// The kubeconfig context to use instead of the current one (`kubeConfig` only).
    #[serde(default)]
    pub context: Option<String>,
    /// Only find the pod's IP (from the connection) and set `k8s.pod.ip`; no API.
    #[serde(default)]
    pub passthrough: bool,
    /// Which pods to watch.
    #[serde(default)]
    pub filter: FilterConfig,
    /// What to add.
    #[serde(default)]
    pub extract: ExtractConfig,
    /// How a resource finds its pod: the first rule whose every source has a value.
    #[serde(default)]
    pub pod_association: Vec<Association>,
    /// Pods never associated.
    #[serde(default)]
    pub exclude: ExcludeConfig,
    /// Fail the start unless the pod list is read within `wait_for_metadata_timeout`.
    #[serde(default)]
    pub wait_for_metadata: bool,
    /// Default 10s.
    #[serde(default = "default_wait_timeout")]
    pub wait_for_metadata_timeout: ConfigDuration,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Only pods on this node (a field selector on `spec.nodeName`).
    #[serde(default)]
    pub node: Option<String>,
    /// The node's name from this environment variable (the downward API's
    /// `spec.nodeName`); wins over `node`.
    #[serde(default)]
    pub node_from_env_var: Option<String>,
    /// Only pods in this namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Field selectors: `key`, `value`, `op` (`equals`, the default, or `not-equals`).
    #[serde(default)]
    pub fields: Vec<SelectorConfig>,
    /// Label selectors: `op` `equals` (default), `not-equals`, `exists`, `does-not-exist`.
    #[serde(default)]
    pub labels: Vec<SelectorConfig>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SelectorConfig {
    pub key: String,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub op: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExtractConfig {
    /// Attributes to add; default [`DEFAULT_METADATA`].
    #[serde(default)]
    pub metadata: Option<Vec<String>>,
    /// Pod labels to add as attributes.
    #[serde(default)]
    pub labels: Vec<FieldExtract>,
    /// Pod annotations to add as attributes.
    #[serde(default)]
    pub annotations: Vec<FieldExtract>,
    /// Pod annotations `resource.opentelemetry.io/<key>` become attribute `<key>`.
    #[serde(default)]
    pub otel_annotations: bool,
    /// `k8s.deployment.name` from the ReplicaSet's name less its pod-template-hash,
    /// with no ReplicaSet lookup. Default true, as upstream since 2026.
    #[serde(default)]
    pub deployment_name_from_replicaset: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FieldExtract {
    /// The attribute's name; default `k8s.pod.labels.<key>` (or `.annotations.`). With
    /// `key_regex`, `$1` and `${name}` name its capture groups.
    #[serde(default)]
    pub tag_name: Option<String>,
    /// The label or annotation key.
    #[serde(default)]
    pub key: Option<String>,
    /// Every key matching this expression (the whole key).
    #[serde(default)]
    pub key_regex: Option<String>,
    /// `pod` (the default), `namespace` or `node`; the owners upstream also reads are
    /// refused for now.
    #[serde(default)]
    pub from: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Association {
    pub sources: Vec<AssociationSource>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AssociationSource {
    /// `resource_attribute` or `connection`.
    pub from: String,
    /// The resource attribute's name (`resource_attribute` only).
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExcludeConfig {
    /// Pods whose name matches one of these expressions; default jaeger-agent and
    /// jaeger-collector.
    #[serde(default)]
    pub pods: Vec<ExcludedPod>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExcludedPod {
    pub name: String,
}

impl K8sAttributesConfig {
    pub fn metadata(&self) -> Vec<String> {
        match &self.extract.metadata {
            Some(list) => list.clone(),
            None => DEFAULT_METADATA.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn wants(&self, name: &str) -> bool {
        match &self.extract.metadata {
            Some(list) => list.iter().any(|m| m == name),
            None => DEFAULT_METADATA.contains(&name),
        }
    }

    pub fn excluded_patterns(&self) -> Vec<String> {
        if self.exclude.pods.is_empty() {
            DEFAULT_EXCLUDED.iter().map(|s| s.to_string()).collect()
        } else {
            self.exclude.pods.iter().map(|p| p.name.clone()).collect()
        }
    }

    /// The node the pods are filtered to; `node_from_env_var` is read here, when the
    /// processor is built.
    pub fn node_name(&self) -> Result<Option<String>, String> {
        match &self.filter.node_from_env_var {
            Some(var) if !var.is_empty() => match std::env::var(var) {
                Ok(value) if !value.is_empty() => Ok(Some(value)),
                _ => Err(format!("filter.node_from_env_var: the environment variable `{var}` is not set")),
            },
            _ => Ok(self.filter.node.clone().filter(|n| !n.is_empty())),
        }
    }

    /// The API's field selector: the node, the namespace and `filter.fields`.
    pub fn field_selector(&self) -> Result<String, String> {
        let mut parts = Vec::new();
        if let Some(node) = self.node_name()? {
            parts.push(format!("spec.nodeName={node}"));
        }
        for field in &self.filter.fields {
            let op = if field.op.as_deref() == Some("not-equals") { "!=" } else { "=" };
            parts.push(format!("{}{op}{}", field.key, field.value));
        }
        Ok(parts.join(","))
    }

    pub fn label_selector(&self) -> String {
        let parts: Vec<String> = self
            .filter
            .labels
            .iter()
            .map(|l| match l.op.as_deref() {
                Some("not-equals") => format!("{}!={}", l.key, l.value),
                Some("exists") => l.key.clone(),
                Some("does-not-exist") => format!("!{}", l.key),
                _ => format!("{}={}", l.key, l.value),
            })
            .collect();
        parts.join(",")
    }
}

impl Validate for K8sAttributesConfig {
    fn validate(&self) -> Result<(), String> {
        if self.auth_type == AuthType::Tls {
            return Err("auth_type `tls` is for the kubelet; use serviceAccount, kubeConfig or none".into());
        }
        for name in self.metadata() {
            match METADATA.iter().find(|(n, _)| *n == name) {
                Some((_, true)) => {}
                Some((_, false)) => {
                    return Err(format!("extract.metadata: `{name}` is not supported by ocelot yet"));
                }
                None => return Err(format!("extract.metadata: `{name}` is not a metadata name")),
            }
        }
        for (what, list) in [("labels", &self.extract.labels), ("annotations", &self.extract.annotations)] {
            for field in list {
                match field.from.as_deref() {
                    None | Some("pod" | "namespace" | "node" | "") => {}
                    Some(from @ ("deployment" | "statefulset" | "daemonset" | "job")) => {
                        return Err(format!(
                            "extract.{what}: `from: {from}` is not supported by ocelot yet; use pod, namespace or node"
                        ));
                    }
                    Some(other) => {
                        return Err(format!("extract.{what}: `from: {other}` is not one of pod, namespace, node"));
                    }
                }
                match (&field.key, &field.key_regex) {
                    (Some(_), Some(_)) => return Err(format!("extract.{what}: set key or key_regex, not both")),
                    (None, None) => return Err(format!("extract.{what}: an entry needs key or key_regex")),
                    (None, Some(regex)) => {
                        regex::Regex::new(&format!("^(?:{regex})$"))
                            .map_err(|e| format!("extract.{what}: key_regex `{regex}`: {e}"))?;
                    }
                    (Some(_), None) => {}
                }
            }
        }
        for (i, association) in self.pod_association.iter().enumerate() {
            if association.sources.is_empty() || association.sources.len() > MAX_SOURCES {
                return Err(format!("pod_association[{i}]: a rule has 1 to {MAX_SOURCES} sources"));
            }
            for source in &association.sources {
                match (source.from.as_str(), source.name.as_deref()) {
                    ("connection", _) => {}
                    ("resource_attribute", Some(name)) if !name.is_empty() => {}
                    ("resource_attribute", _) => {
                        return Err(format!("pod_association[{i}]: a resource_attribute source needs a name"));
                    }
                    (other, _) => {
                        return Err(format!(
                            "pod_association[{i}]: `from: {other}` is not resource_attribute or connection"
                        ));
                    }
                }
            }
        }
        for pod in &self.exclude.pods {
            regex::Regex::new(&pod.name).map_err(|e| format!("exclude.pods: `{}`: {e}", pod.name))?;
        }
        for (what, list, ops) in [
            ("fields", &self.filter.fields, &["equals", "not-equals"][..]),
            ("labels", &self.filter.labels, &["equals", "not-equals", "exists", "does-not-exist"][..]),
        ] {
            for selector in list {
                if let Some(op) = selector.op.as_deref().filter(|op| !op.is_empty() && !ops.contains(op)) {
                    return Err(format!("filter.{what}: `op: {op}` is not one of {}", ops.join(", ")));
                }
            }
        }
        Ok(())
    }
}

//! The `loadbalancing` exporter's config, with upstream's names.

use serde::Deserialize;

use crate::component::Validate;
use crate::config::ConfigDuration;
use crate::exporters::otlp::OtlpGrpcExporterConfig;
use crate::pdata::Signal;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancingConfig {
    /// How each backend is sent to.
    pub protocol: ProtocolConfig,
    /// Where the backends come from: `static` or `dns`.
    pub resolver: ResolverConfig,
    /// What keeps data together on one backend. Default `traceID` for traces,
    /// `service` for metrics and logs.
    #[serde(default)]
    pub routing_key: Option<RoutingKey>,
    /// With `routing_key: attributes`: the attributes whose values make the key.
    #[serde(default)]
    pub routing_attributes: Vec<String>,
    /// Upstream's exporter-level resilience, off by default there. Each backend
    /// here has its own queue, retry and timeout under `protocol.otlp`; these are
    /// refused with a message saying so.
    #[serde(default)]
    pub sending_queue: Option<serde_json::Value>,
    #[serde(default)]
    pub retry_on_failure: Option<serde_json::Value>,
    #[serde(default)]
    pub timeout: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProtocolConfig {
    /// The `otlp` exporter's options (queue and retry included), for every
    /// backend; `endpoint` is each backend's.
    pub otlp: OtlpGrpcExporterConfig,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResolverConfig {
    #[serde(default, rename = "static")]
    pub static_list: Option<StaticResolver>,
    #[serde(default)]
    pub dns: Option<DnsResolver>,
    #[serde(default)]
    pub k8s: Option<serde_json::Value>,
    #[serde(default)]
    pub aws_cloud_map: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StaticResolver {
    /// `host` or `host:port` (4317 when absent).
    pub hostnames: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DnsResolver {
    /// Resolved (A and AAAA) every `interval`; each address is a backend.
    pub hostname: String,
    /// Appended to each address; without it the backends are on 4317.
    #[serde(default)]
    pub port: Option<String>,
    /// Default 5s.
    #[serde(default = "default_interval")]
    pub interval: ConfigDuration,
    /// One lookup's limit. Default 1s.
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
}

fn default_interval() -> ConfigDuration {
    ConfigDuration::from_secs(5)
}
fn default_timeout() -> ConfigDuration {
    ConfigDuration::from_secs(1)
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum RoutingKey {
    #[serde(rename = "traceID")]
    TraceId,
    #[serde(rename = "service")]
    Service,
    #[serde(rename = "resource")]
    Resource,
    #[serde(rename = "metric")]
    Metric,
    #[serde(rename = "streamID")]
    StreamId,
    #[serde(rename = "attributes")]
    Attributes,
}

impl RoutingKey {
    pub fn name(self) -> &'static str {
        match self {
            RoutingKey::TraceId => "traceID",
            RoutingKey::Service => "service",
            RoutingKey::Resource => "resource",
            RoutingKey::Metric => "metric",
            RoutingKey::StreamId => "streamID",
            RoutingKey::Attributes => "attributes",
        }
    }

    /// Whether upstream takes this key for `signal`.
    pub fn supports(self, signal: Signal) -> bool {
        use RoutingKey::*;
        match signal {
            Signal::Traces => matches!(self, TraceId | Service | Attributes),
            Signal::Metrics => matches!(self, Service | Resource | Metric | StreamId | Attributes),
            Signal::Logs => matches!(self, TraceId | Service | Resource | Attributes),
        }
    }
}

impl LoadBalancingConfig {
    /// The key for `signal`: the configured one, else upstream's default.
    pub fn key(&self, signal: Signal) -> RoutingKey {
        self.routing_key.unwrap_or(match signal {
            Signal::Traces => RoutingKey::TraceId,
            Signal::Metrics | Signal::Logs => RoutingKey::Service,
        })
    }
}

impl Validate for LoadBalancingConfig {
    fn validate(&self) -> Result<(), String> {
        for (name, set) in [
            ("sending_queue", self.sending_queue.is_some()),
            ("retry_on_failure", self.retry_on_failure.is_some()),
            ("timeout", self.timeout.is_some()),
        ] {
            if set {
                return Err(format!(
                    "`{name}` at the loadbalancing exporter's level is not supported: set it under `protocol.otlp`, where each backend has its own"
                ));
            }
        }
        let mut otlp = self.protocol.otlp.clone();
        if !otlp.endpoint.is_empty() {
            return Err("protocol.otlp.endpoint is each backend's, from the resolver: leave it out".into());
        }
        if otlp.sending_queue.storage.is_some() {
            return Err("protocol.otlp.sending_queue.storage (a persistent queue per backend) is not supported: backends come and go with the resolver".into());
        }
        otlp.endpoint = "backend:4317".into();
        otlp.validate().map_err(|e| format!("protocol.otlp: {e}"))?;

        let r = &self.resolver;
        if r.k8s.is_some() {
            return Err("resolver.k8s is not supported yet: use resolver.dns with the gateway's headless Service, such as `ocelot-gateway-headless.observability.svc.cluster.local`".into());
        }
        if r.aws_cloud_map.is_some() {
            return Err("resolver.aws_cloud_map is not supported: use resolver.static or resolver.dns".into());
        }
        match (&r.static_list, &r.dns) {
            (Some(_), Some(_)) => return Err("only one resolver should be specified".into()),
            (None, None) => return Err("no resolvers specified for the exporter".into()),
            (Some(s), None) => {
                if s.hostnames.is_empty() {
                    return Err("no endpoints specified for the static resolver".into());
                }
                if let Some(bad) = s.hostnames.iter().find(|h| h.trim().is_empty()) {
                    return Err(format!("resolver.static: empty hostname `{bad}`"));
                }
            }
            (None, Some(d)) => {
                if d.hostname.trim().is_empty() {
                    return Err("no hostname specified to resolve the backends".into());
                }
                if d.interval.0.is_zero() || d.timeout.0.is_zero() {
                    return Err("resolver.dns: interval and timeout must be more than 0".into());
                }
                if let Some(port) = &d.port
                    && port.parse::<u16>().is_err()
                {
                    return Err(format!("resolver.dns: port `{port}` is not a port number"));
                }
            }
        }
        match self.routing_key {
            Some(RoutingKey::Attributes) if self.routing_attributes.is_empty() => {
                Err("routing_attributes must be specified when routing_key is \"attributes\"".into())
            }
            Some(key) if key != RoutingKey::Attributes && !self.routing_attributes.is_empty() => Err(format!(
                "routing_attributes can only be used when routing_key is \"attributes\"; got {:?}",
                key.name()
            )),
            None if !self.routing_attributes.is_empty() => {
                Err("routing_attributes can only be used when routing_key is \"attributes\"".into())
            }
            _ => Ok(()),
        }
    }
}

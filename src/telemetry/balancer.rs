//! Self-metrics of the `loadbalancing` exporter's resolvers, with upstream's names.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::family;
use crate::config::ComponentId;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResolutionLabels {
    exporter: String,
    resolver: &'static str,
    success: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResolverLabels {
    exporter: String,
    resolver: &'static str,
}

#[derive(Clone)]
pub(super) struct Balancer {
    resolutions: Family<ResolutionLabels, Counter>,
    backends: Family<ResolverLabels, Gauge>,
    updates: Family<ResolverLabels, Counter>,
}

/// One `loadbalancing` exporter's metrics.
#[derive(Clone)]
pub struct BalancerMetrics {
    exporter: String,
    families: Balancer,
}

impl BalancerMetrics {
    /// A resolution, and how many backends it gave.
    pub fn resolved(&self, resolver: &'static str, success: bool, backends: usize) {
        let success = if success { "true" } else { "false" };
        let f = &self.families;
        f.resolutions.get_or_create(&ResolutionLabels { exporter: self.exporter.clone(), resolver, success }).inc();
        f.backends.get_or_create(&ResolverLabels { exporter: self.exporter.clone(), resolver }).set(backends as i64);
    }

    /// The backends changed.
    pub fn updated(&self, resolver: &'static str) {
        self.families.updates.get_or_create(&ResolverLabels { exporter: self.exporter.clone(), resolver }).inc();
    }
}

impl Balancer {
    pub(super) fn register(registry: &mut Registry) -> Balancer {
        Balancer {
            resolutions: family(
                registry,
                "otelcol_loadbalancer_num_resolutions",
                "Number of times the resolver has triggered new resolutions",
            ),
            backends: family(registry, "otelcol_loadbalancer_num_backends", "Current number of backends in use"),
            updates: family(
                registry,
                "otelcol_loadbalancer_num_backend_updates",
                "Number of times the list of backends was updated",
            ),
        }
    }

    pub(super) fn metrics(&self, id: &ComponentId) -> BalancerMetrics {
        BalancerMetrics { exporter: id.to_string(), families: self.clone() }
    }
}

//! Self-metrics of the `k8sattributes` processor: upstream's pod table counters
//! (`otelcol_otelsvc_k8s_*`), the association counter, and ocelot's API errors.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::family;
use crate::config::ComponentId;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IdLabels {
    processor: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AssociationLabels {
    processor: String,
    status: &'static str,
}

#[derive(Clone)]
pub(super) struct K8s {
    added: Family<IdLabels, Counter>,
    updated: Family<IdLabels, Counter>,
    deleted: Family<IdLabels, Counter>,
    table_size: Family<IdLabels, Gauge>,
    lookup_miss: Family<IdLabels, Counter>,
    association: Family<AssociationLabels, Counter>,
    api_errors: Family<IdLabels, Counter>,
}

/// One `k8sattributes` processor's metrics.
#[derive(Clone, Default)]
pub struct K8sAttributesMetrics {
    pub added: Counter,
    pub updated: Counter,
    pub deleted: Counter,
    /// Pods known, deleted ones in their grace period included.
    pub table_size: Gauge,
    /// Resources whose pod was not found.
    pub lookup_miss: Counter,
    /// Resources that found their pod.
    pub association_hit: Counter,
    /// Failed lists, watches and owner lookups.
    pub api_errors: Counter,
}

impl K8s {
    pub(super) fn register(registry: &mut Registry) -> K8s {
        K8s {
            added: family(registry, "otelcol_otelsvc_k8s_pod_added", "Pods added to the k8sattributes pod table"),
            updated: family(registry, "otelcol_otelsvc_k8s_pod_updated", "Pods whose attributes changed"),
            deleted: family(
                registry,
                "otelcol_otelsvc_k8s_pod_deleted",
                "Pods removed from the table, after their deletion's grace period",
            ),
            table_size: family(
                registry,
                "otelcol_otelsvc_k8s_pod_table_size",
                "Pods in the table, deleted ones in their grace period included",
            ),
            lookup_miss: family(
                registry,
                "otelcol_otelsvc_k8s_ip_lookup_miss",
                "Resources with a pod identifier that matched no pod",
            ),
            association: family(
                registry,
                "otelcol_k8s_pod_association",
                "Resources looked up in the pod table, by status (hit, miss)",
            ),
            api_errors: family(
                registry,
                "ocelot_processor_k8sattributes_api_errors",
                "Kubernetes API lists, watches and owner lookups that failed (each retried)",
            ),
        }
    }

    pub(super) fn metrics(&self, id: &ComponentId) -> K8sAttributesMetrics {
        let labels = IdLabels { processor: id.to_string() };
        let association =
            |status| self.association.get_or_create(&AssociationLabels { processor: id.to_string(), status }).clone();
        K8sAttributesMetrics {
            added: self.added.get_or_create(&labels).clone(),
            updated: self.updated.get_or_create(&labels).clone(),
            deleted: self.deleted.get_or_create(&labels).clone(),
            table_size: self.table_size.get_or_create(&labels).clone(),
            lookup_miss: self.lookup_miss.get_or_create(&labels).clone(),
            association_hit: association("hit"),
            api_errors: self.api_errors.get_or_create(&labels).clone(),
        }
    }
}

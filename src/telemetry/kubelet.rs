//! Self-metrics of the `kubeletstats` receiver.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::family;
use crate::config::ComponentId;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IdLabels {
    receiver: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    receiver: String,
    reason: &'static str,
}

#[derive(Clone)]
pub(super) struct Kubelet {
    scrapes: Family<IdLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    seconds: Family<IdLabels, Counter<f64, AtomicU64>>,
    pods: Family<IdLabels, Gauge>,
}

/// One `kubeletstats` receiver's metrics.
#[derive(Clone)]
pub struct KubeletMetrics {
    receiver: String,
    errors: Family<ErrorLabels, Counter>,
    pub scrapes: Counter,
    pub seconds: Counter<f64, AtomicU64>,
    /// Pods in the last summary read.
    pub pods: Gauge,
}

impl KubeletMetrics {
    /// Scrapes that failed, by reason: `http` (no answer, or an error status),
    /// `timeout`, `decode` (not a summary), `lookup` (a volume's claim not found in the API).
    pub fn errors(&self, reason: &'static str) -> Counter {
        self.errors.get_or_create(&ErrorLabels { receiver: self.receiver.clone(), reason }).clone()
    }
}

impl Kubelet {
    pub(super) fn register(registry: &mut Registry) -> Kubelet {
        Kubelet {
            scrapes: family(
                registry,
                "ocelot_receiver_kubeletstats_scrapes",
                "Scrapes of the kubelet's /stats/summary",
            ),
            errors: family(
                registry,
                "ocelot_receiver_kubeletstats_scrape_errors",
                "Kubelet scrapes that failed, by reason (http, timeout, decode, lookup)",
            ),
            seconds: family(
                registry,
                "ocelot_receiver_kubeletstats_scrape_duration_seconds",
                "Time spent scraping the kubelet, fetch and translation",
            ),
            pods: family(registry, "ocelot_receiver_kubeletstats_pods", "Pods in the last summary the kubelet gave"),
        }
    }

    pub(super) fn metrics(&self, id: &ComponentId) -> KubeletMetrics {
        let labels = IdLabels { receiver: id.to_string() };
        KubeletMetrics {
            receiver: id.to_string(),
            errors: self.errors.clone(),
            scrapes: self.scrapes.get_or_create(&labels).clone(),
            seconds: self.seconds.get_or_create(&labels).clone(),
            pods: self.pods.get_or_create(&labels).clone(),
        }
    }
}

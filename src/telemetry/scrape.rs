//! Self-metrics of the `prometheus` receiver, per job.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::family;
use crate::config::ComponentId;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    receiver: String,
    job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    receiver: String,
    job: String,
    reason: &'static str,
}

#[derive(Clone)]
pub(super) struct Scrape {
    scrapes: Family<JobLabels, Counter>,
    seconds: Family<JobLabels, Counter<f64, AtomicU64>>,
    samples: Family<JobLabels, Counter>,
    targets: Family<JobLabels, Gauge>,
    failures: Family<FailureLabels, Counter>,
}

/// One job of one `prometheus` receiver.
#[derive(Clone)]
pub struct PrometheusReceiverMetrics {
    labels: JobLabels,
    failures: Family<FailureLabels, Counter>,
    /// Scrapes done, good or not.
    pub scrapes: Counter,
    /// Seconds spent scraping (with `scrapes`, the mean scrape duration).
    pub duration_seconds: Counter<f64, AtomicU64>,
    /// Samples kept after metric relabeling.
    pub samples: Counter,
    /// Targets discovered and scraped now.
    pub targets: Gauge,
}

impl PrometheusReceiverMetrics {
    /// Failed scrapes by reason: `http`, `timeout`, `too_large`, `auth`, `parse`, `limit`; `discovery` for a failed Kubernetes list or watch.
    pub fn failure(&self, reason: &'static str) -> Counter {
        let labels = FailureLabels { receiver: self.labels.receiver.clone(), job: self.labels.job.clone(), reason };
        self.failures.get_or_create(&labels).clone()
    }
}

impl Scrape {
    pub(super) fn register(registry: &mut Registry) -> Scrape {
        Scrape {
            scrapes: family(registry, "ocelot_receiver_prometheus_scrapes", "Scrapes done, by job"),
            seconds: family(
                registry,
                "ocelot_receiver_prometheus_scrape_duration_seconds",
                "Seconds spent scraping, by job",
            ),
            samples: family(
                registry,
                "ocelot_receiver_prometheus_samples",
                "Samples kept after metric relabeling, by job",
            ),
            targets: family(registry, "ocelot_receiver_prometheus_targets", "Targets scraped now, by job"),
            failures: family(
                registry,
                "ocelot_receiver_prometheus_scrape_failures",
                "Failed scrapes, by job and reason (http, timeout, too_large, auth, parse, limit; discovery: a Kubernetes list or watch)",
            ),
        }
    }

    pub(super) fn metrics(&self, id: &ComponentId, job: &str) -> PrometheusReceiverMetrics {
        let labels = JobLabels { receiver: id.to_string(), job: job.to_string() };
        PrometheusReceiverMetrics {
            failures: self.failures.clone(),
            scrapes: self.scrapes.get_or_create(&labels).clone(),
            duration_seconds: self.seconds.get_or_create(&labels).clone(),
            samples: self.samples.get_or_create(&labels).clone(),
            targets: self.targets.get_or_create(&labels).clone(),
            labels,
        }
    }
}

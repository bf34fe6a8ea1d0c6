//! Self-observability: the metrics registry with the upstream collector's metric
//! names and labels, the admin HTTP server that serves it, and logging set-up.
//!
//! Components take their metric handles once, at build time; counting on the hot path
//! is an atomic add per batch, never a map lookup.

mod balancer;
mod journald;
mod k8s;
mod kubelet;
mod process;
mod reloads;
pub mod sampling;
mod scrape;
mod shedding;
pub mod status;

pub use balancer::BalancerMetrics;
pub use journald::JournaldMetrics;
pub use k8s::K8sAttributesMetrics;
pub use kubelet::KubeletMetrics;
pub use reloads::{ReloadMetrics, ReloadResult};
pub use scrape::PrometheusReceiverMetrics;
pub use shedding::{ImportanceMetrics, MemoryLimiterMetrics, PipelineMetrics};

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::config::ComponentId;
use crate::net::{self, HttpResponse};
use crate::pdata::Signal;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceiverLabels {
    receiver: String,
    transport: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExporterLabels {
    exporter: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceiverIdLabels {
    receiver: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RotationLabels {
    receiver: String,
    /// `truncated` (copytruncate, rewritten in place) or `moved` (renamed away or deleted).
    kind: &'static str,
}

/// A `filelog` receiver's counters.
#[derive(Clone)]
pub struct FilelogMetrics {
    pub open_files: Gauge,
    pub bytes_read: Counter,
    pub lines_cut: Counter,
    pub truncations: Counter,
    pub moves: Counter,
    pub parse_errors: Counter,
    /// Records dropped by a `filter` operator.
    pub filtered: Counter,
    /// Records dropped by an operator's `on_error: drop`.
    pub dropped_on_error: Counter,
    /// Records downstream refused for good (a 4xx, invalid data).
    pub rejected: Counter,
    /// Records that failed downstream after their file was truncated or could no
    /// longer be read, so they cannot be read again.
    pub file_gone: Counter,
    /// Files that matched but could not be opened or read.
    pub open_errors: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExporterDropLabels {
    exporter: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    receiver: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScraperLabels {
    receiver: String,
    scraper: &'static str,
}

const SCRAPE_SECONDS_BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

fn scrape_seconds_histogram() -> Histogram {
    Histogram::new(SCRAPE_SECONDS_BUCKETS)
}

/// A `hostmetrics` receiver's self-metrics.
#[derive(Clone)]
pub struct HostmetricsMetrics {
    receiver: String,
    duration: Family<ScraperLabels, Histogram, fn() -> Histogram>,
    errors: Family<ScraperLabels, Counter>,
    skipped: Family<DropLabels, Counter>,
    pub processes_seen: Counter,
    pub processes_emitted: Counter,
    pub processes_tracked: Gauge,
}

impl HostmetricsMetrics {
    pub fn duration(&self, scraper: &'static str) -> Histogram {
        self.duration.get_or_create(&ScraperLabels { receiver: self.receiver.clone(), scraper }).clone()
    }

    pub fn errors(&self, scraper: &'static str) -> Counter {
        self.errors.get_or_create(&ScraperLabels { receiver: self.receiver.clone(), scraper }).clone()
    }

    /// Processes not emitted, by reason: vanished, malformed, filtered, below_thresholds, max_processes.
    pub fn processes_skipped(&self, reason: &'static str) -> Counter {
        self.skipped.get_or_create(&DropLabels { receiver: self.receiver.clone(), reason }).clone()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProcessorLabels {
    processor: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProcessorSignalLabels {
    processor: String,
    otel_signal: &'static str,
}

/// Upstream labels the filter processor's counters `filter`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FilterLabels {
    filter: String,
}

/// A processor's counters, as upstream's processorhelper keeps them: items in and
/// out per signal (indexed by [`crate::pdata::Signal::index`]), and OTTL errors.
#[derive(Clone)]
pub struct ProcessorMetrics {
    pub incoming: [Counter; 3],
    pub outgoing: [Counter; 3],
    /// Conditions or statements that failed to evaluate.
    pub ottl_errors: Counter,
}

/// A `filter` processor's counters: what each signal lost to a condition.
#[derive(Clone)]
pub struct FilterMetrics {
    /// Spans, data points and log records dropped, by [`crate::pdata::Signal::index`].
    pub filtered: [Counter; 3],
    pub processor: ProcessorMetrics,
}

/// A metric family registered under `name`, for the registries' many one-liners.
fn family<L, M>(registry: &mut Registry, name: &str, help: &str) -> Family<L, M>
where
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
    M: prometheus_client::metrics::TypedMetric
        + prometheus_client::encoding::EncodeMetric
        + Default
        + Send
        + Sync
        + std::fmt::Debug
        + 'static,
{
    let f = Family::<L, M>::default();
    registry.register(name, help, f.clone());
    f
}

/// One counter family per signal, named `<prefix>_<spans|metric_points|log_records>`.
struct PerSignal<L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static> {
    families: [Family<L, Counter>; 3],
}

impl<L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static> PerSignal<L> {
    fn register(registry: &mut Registry, prefix: &str, help: &str) -> Self {
        let families = Signal::ALL.map(|signal| {
            let family = Family::<L, Counter>::default();
            registry.register(
                format!("{prefix}_{}", signal.item_name()),
                format!("{help} ({})", signal.item_name().replace('_', " ")),
                family.clone(),
            );
            family
        });
        PerSignal { families }
    }

    fn counters(&self, labels: &L) -> [Counter; 3] {
        std::array::from_fn(|i| self.families[i].get_or_create(labels).clone())
    }

    /// The sum over signals for `labels`, making no series that does not exist.
    fn total(&self, labels: &L) -> u64 {
        self.families.iter().filter_map(|f| f.get(labels).map(|c| c.get())).sum()
    }
}

/// A counter of items received or sent that also feeds the per-signal totals behind
/// `ocelot_optimization_ratio`.
#[derive(Clone)]
pub struct Tally {
    counter: Counter,
    signal: Signal,
    sent: bool,
    totals: Arc<shedding::SignalTotals>,
}

impl Tally {
    pub fn inc_by(&self, n: u64) {
        self.counter.inc_by(n);
        if self.sent {
            self.totals.sent(self.signal, n);
        } else {
            self.totals.received(self.signal, n);
        }
    }

    pub fn get(&self) -> u64 {
        self.counter.get()
    }
}

fn tallies(counters: [Counter; 3], sent: bool, totals: &Arc<shedding::SignalTotals>) -> [Tally; 3] {
    let mut counters = counters.into_iter();
    Signal::ALL.map(|signal| Tally {
        counter: counters.next().unwrap_or_default(),
        signal,
        sent,
        totals: totals.clone(),
    })
}

/// A receiver's counters for one transport.
#[derive(Clone)]
pub struct ReceiverMetrics {
    accepted: [Tally; 3],
    refused: [Counter; 3],
    /// Requests refused by the receiver's authenticator.
    pub unauthenticated: Counter,
}

impl ReceiverMetrics {
    pub fn accepted(&self, signal: Signal) -> &Tally {
        &self.accepted[signal.index()]
    }
    pub fn refused(&self, signal: Signal) -> &Counter {
        &self.refused[signal.index()]
    }
}

/// An exporter's counters and queue gauges.
#[derive(Clone)]
pub struct ExporterMetrics {
    sent: [Tally; 3],
    failed: [Counter; 3],
    enqueue_failed: [Counter; 3],
    pub queue_size: Gauge,
    pub queue_capacity: Gauge,
    /// How its last export went, for `/status` and a reload's verify window.
    pub status: status::StatusHandle,
    /// A persistent queue's corrupt parts moved aside, and its bytes on disk.
    pub queue_quarantined: Counter,
    pub queue_bytes: Gauge,
}

impl ExporterMetrics {
    pub fn sent(&self, signal: Signal) -> &Tally {
        &self.sent[signal.index()]
    }
    pub fn send_failed(&self, signal: Signal) -> &Counter {
        &self.failed[signal.index()]
    }
    pub fn enqueue_failed(&self, signal: Signal) -> &Counter {
        &self.enqueue_failed[signal.index()]
    }
}

const BATCH_SIZE_BUCKETS: [f64; 22] = [
    10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 6000.0, 7000.0, 8000.0,
    9000.0, 10000.0, 20000.0, 30000.0, 50000.0, 100000.0,
];

fn batch_size_histogram() -> Histogram {
    Histogram::new(BATCH_SIZE_BUCKETS)
}

/// The registry and every metric family, made once per process.
pub struct Telemetry {
    registry: Registry,
    receiver_accepted: PerSignal<ReceiverLabels>,
    receiver_refused: PerSignal<ReceiverLabels>,
    receiver_unauthenticated: Family<ReceiverLabels, Counter>,
    exporter_sent: PerSignal<ExporterLabels>,
    exporter_failed: PerSignal<ExporterLabels>,
    exporter_enqueue_failed: PerSignal<ExporterLabels>,
    exporter_queue_size: Family<ExporterLabels, Gauge>,
    exporter_queue_capacity: Family<ExporterLabels, Gauge>,
    exporter_queue_quarantined: Family<ExporterLabels, Counter>,
    exporter_queue_bytes: Family<ExporterLabels, Gauge>,
    batch_send_size: Family<ProcessorLabels, Histogram, fn() -> Histogram>,
    filelog_open_files: Family<ReceiverIdLabels, Gauge>,
    filelog_bytes_read: Family<ReceiverIdLabels, Counter>,
    filelog_lines_cut: Family<ReceiverIdLabels, Counter>,
    filelog_rotations: Family<RotationLabels, Counter>,
    filelog_parse_errors: Family<ReceiverIdLabels, Counter>,
    filelog_dropped: Family<DropLabels, Counter>,
    filelog_open_errors: Family<ReceiverIdLabels, Counter>,
    exporter_dropped: Family<ExporterDropLabels, Counter>,
    loki_folded: Family<ExporterLabels, Counter>,
    hostmetrics_duration: Family<ScraperLabels, Histogram, fn() -> Histogram>,
    hostmetrics_errors: Family<ScraperLabels, Counter>,
    hostmetrics_seen: Family<ReceiverIdLabels, Counter>,
    hostmetrics_emitted: Family<ReceiverIdLabels, Counter>,
    hostmetrics_skipped: Family<DropLabels, Counter>,
    hostmetrics_tracked: Family<ReceiverIdLabels, Gauge>,
    process: process::ProcessMetrics,
    target_info: Family<Vec<(String, String)>, Gauge>,
    /// By [`crate::pdata::Signal::index`]: spans, data points, log records.
    filter_filtered: [Family<FilterLabels, Counter>; 3],
    ottl_errors: Family<ProcessorLabels, Counter>,
    processor_incoming: Family<ProcessorSignalLabels, Counter>,
    processor_outgoing: Family<ProcessorSignalLabels, Counter>,
    shedding: shedding::Shedding,
    sampling: sampling::Sampling,
    balancer: balancer::Balancer,
    journald: journald::Journald,
    k8s: k8s::K8s,
    kubelet: kubelet::Kubelet,
    scrape: scrape::Scrape,
    /// Reloads and the running config.
    pub reloads: ReloadMetrics,
    pub statuses: Arc<status::Statuses>,
}

impl Telemetry {
    /// `target_info` with the agent's resource: `service.name` ocelot, `service.version`,
    /// then `service.telemetry.resource` (a null value drops a default). Label names
    /// as Prometheus writes resource attributes (`.` → `_`).
    pub fn set_resource(&self, resource: &std::collections::BTreeMap<String, Option<String>>) {
        let mut attributes = std::collections::BTreeMap::from([
            ("service.name".to_string(), Some("ocelot".to_string())),
            ("service.version".to_string(), Some(env!("CARGO_PKG_VERSION").to_string())),
        ]);
        attributes.extend(resource.iter().map(|(k, v)| (k.clone(), v.clone())));
        let labels: Vec<(String, String)> = attributes
            .into_iter()
            .filter_map(|(k, v)| Some((crate::pdata::prometheus::naming::label_name(&k), v?)))
            .collect();
        self.target_info.clear();
        self.target_info.get_or_create(&labels).set(1);
    }

    pub fn new() -> Arc<Telemetry> {
        let mut registry = Registry::default();
        let receiver_accepted = PerSignal::register(
            &mut registry,
            "otelcol_receiver_accepted",
            "Number of items successfully pushed into the pipeline",
        );
        let receiver_refused = PerSignal::register(
            &mut registry,
            "otelcol_receiver_refused",
            "Number of items that could not be pushed into the pipeline",
        );
        let receiver_unauthenticated = Family::<ReceiverLabels, Counter>::default();
        registry.register(
            "ocelot_receiver_unauthenticated_requests",
            "Requests refused because the client did not authenticate",
            receiver_unauthenticated.clone(),
        );
        let exporter_sent = PerSignal::register(
            &mut registry,
            "otelcol_exporter_sent",
            "Number of items successfully sent to destination",
        );
        let exporter_failed = PerSignal::register(
            &mut registry,
            "otelcol_exporter_send_failed",
            "Number of items in failed attempts to send to destination",
        );
        let exporter_enqueue_failed = PerSignal::register(
            &mut registry,
            "otelcol_exporter_enqueue_failed",
            "Number of items that failed to be added to the sending queue",
        );
        let exporter_queue_size = Family::<ExporterLabels, Gauge>::default();
        registry.register(
            "otelcol_exporter_queue_size",
            "Current size of the retry queue (in batches)",
            exporter_queue_size.clone(),
        );
        let exporter_queue_quarantined = Family::<ExporterLabels, Counter>::default();
        registry.register(
            "ocelot_exporter_queue_quarantined",
            "Corrupt parts of a persistent sending queue moved to its quarantine directory",
            exporter_queue_quarantined.clone(),
        );
        let exporter_queue_bytes = Family::<ExporterLabels, Gauge>::default();
        registry.register(
            "ocelot_exporter_queue_bytes",
            "Bytes a persistent sending queue holds on disk",
            exporter_queue_bytes.clone(),
        );
        let exporter_queue_capacity = Family::<ExporterLabels, Gauge>::default();
        registry.register(
            "otelcol_exporter_queue_capacity",
            "Fixed capacity of the retry queue (in batches)",
            exporter_queue_capacity.clone(),
        );
        let batch_send_size: Family<ProcessorLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(batch_size_histogram);
        registry.register(
            "otelcol_processor_batch_batch_send_size",
            "Number of units in the batch",
            batch_send_size.clone(),
        );
        let filelog_open_files = Family::<ReceiverIdLabels, Gauge>::default();
        registry.register("otelcol_fileconsumer_open_files", "Number of open files", filelog_open_files.clone());
        let filelog_bytes_read = Family::<ReceiverIdLabels, Counter>::default();
        registry.register("ocelot_filelog_read_bytes", "Bytes read from files", filelog_bytes_read.clone());
        let filelog_lines_cut = Family::<ReceiverIdLabels, Counter>::default();
        registry.register(
            "ocelot_filelog_lines_truncated",
            "Lines longer than max_log_size, cut into several records",
            filelog_lines_cut.clone(),
        );
        let filelog_rotations = Family::<RotationLabels, Counter>::default();
        registry.register(
            "ocelot_filelog_rotations",
            "Rotations seen: files truncated or rewritten in place, files moved away or deleted",
            filelog_rotations.clone(),
        );
        let filelog_parse_errors = Family::<ReceiverIdLabels, Counter>::default();
        registry.register(
            "ocelot_filelog_parse_errors",
            "Records an operator could not parse, and files whose path gave no Kubernetes metadata",
            filelog_parse_errors.clone(),
        );
        let filelog_dropped = Family::<DropLabels, Counter>::default();
        registry.register(
            "ocelot_filelog_records_dropped",
            "Records dropped: by a filter (reason=filter), by on_error: drop (reason=operator_error), refused downstream for good (reason=rejected), failed downstream after their file was truncated or became unreadable (reason=file_gone)",
            filelog_dropped.clone(),
        );
        let filelog_open_errors = Family::<ReceiverIdLabels, Counter>::default();
        registry.register(
            "ocelot_filelog_open_errors",
            "Matching files that could not be opened or read (permissions, too many open files)",
            filelog_open_errors.clone(),
        );
        let exporter_dropped = Family::<ExporterDropLabels, Counter>::default();
        registry.register(
            "ocelot_exporter_dropped_items",
            "Items (data points, log records) an exporter did not deliver: refused by the server for good, or not translatable, by reason",
            exporter_dropped.clone(),
        );
        let loki_folded = Family::<ExporterLabels, Counter>::default();
        registry.register(
            "ocelot_loki_folded_entries",
            "Log entries of streams past max_streams, sent in one stream per tenant with fewer labels",
            loki_folded.clone(),
        );
        let hostmetrics_duration: Family<ScraperLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(scrape_seconds_histogram);
        registry.register(
            "ocelot_hostmetrics_scrape_duration_seconds",
            "Wall time of one scrape, by scraper",
            hostmetrics_duration.clone(),
        );
        let hostmetrics_errors = Family::<ScraperLabels, Counter>::default();
        registry.register(
            "ocelot_hostmetrics_scrape_errors",
            "Scrapes that failed (whole or in part), by scraper; the process scraper counts each unmuted read failure",
            hostmetrics_errors.clone(),
        );
        let hostmetrics_seen = Family::<ReceiverIdLabels, Counter>::default();
        registry.register(
            "ocelot_hostmetrics_processes_seen",
            "Processes found by the process scraper, summed over scrapes",
            hostmetrics_seen.clone(),
        );
        let hostmetrics_emitted = Family::<ReceiverIdLabels, Counter>::default();
        registry.register(
            "ocelot_hostmetrics_processes_emitted",
            "Processes the process scraper emitted metrics for, summed over scrapes",
            hostmetrics_emitted.clone(),
        );
        let hostmetrics_skipped = Family::<DropLabels, Counter>::default();
        registry.register(
            "ocelot_hostmetrics_processes_skipped",
            "Processes the process scraper did not emit, by reason: vanished, malformed, filtered, below_thresholds, max_processes",
            hostmetrics_skipped.clone(),
        );
        let hostmetrics_tracked = Family::<ReceiverIdLabels, Gauge>::default();
        registry.register(
            "ocelot_hostmetrics_processes_tracked",
            "Live processes the process scraper keeps state for (CPU rates)",
            hostmetrics_tracked.clone(),
        );
        let process = process::ProcessMetrics::register(&mut registry);
        let filter_filtered =
            [("spans", "spans"), ("datapoints", "metric data points"), ("logs", "log records")].map(|(name, what)| {
                let family = Family::<FilterLabels, Counter>::default();
                registry.register(
                    format!("otelcol_processor_filter_{name}_filtered"),
                    format!("Number of {what} dropped by the filter processor"),
                    family.clone(),
                );
                family
            });
        let ottl_errors = Family::<ProcessorLabels, Counter>::default();
        registry.register(
            "ocelot_processor_ottl_errors",
            "OTTL conditions or statements that failed to evaluate (handled by error_mode)",
            ottl_errors.clone(),
        );
        let processor_incoming = Family::<ProcessorSignalLabels, Counter>::default();
        registry.register(
            "otelcol_processor_incoming_items",
            "Number of items passed to the processor",
            processor_incoming.clone(),
        );
        let processor_outgoing = Family::<ProcessorSignalLabels, Counter>::default();
        registry.register(
            "otelcol_processor_outgoing_items",
            "Number of items emitted from the processor",
            processor_outgoing.clone(),
        );
        let shedding = shedding::Shedding::register(&mut registry);
        let sampling = sampling::Sampling::register(&mut registry);
        let balancer = balancer::Balancer::register(&mut registry);
        let journald = journald::Journald::register(&mut registry);
        let k8s = k8s::K8s::register(&mut registry);
        let kubelet = kubelet::Kubelet::register(&mut registry);
        let scrape = scrape::Scrape::register(&mut registry);
        let reloads = ReloadMetrics::register(&mut registry);
        let target_info = Family::<Vec<(String, String)>, Gauge>::default();
        registry.register("target_info", "Target metadata: the agent's resource attributes", target_info.clone());
        Arc::new(Telemetry {
            registry,
            receiver_accepted,
            receiver_refused,
            receiver_unauthenticated,
            exporter_sent,
            exporter_failed,
            exporter_enqueue_failed,
            exporter_queue_size,
            exporter_queue_capacity,
            exporter_queue_quarantined,
            exporter_queue_bytes,
            batch_send_size,
            filelog_open_files,
            filelog_bytes_read,
            filelog_lines_cut,
            filelog_rotations,
            filelog_parse_errors,
            filelog_dropped,
            filelog_open_errors,
            exporter_dropped,
            loki_folded,
            hostmetrics_duration,
            hostmetrics_errors,
            hostmetrics_seen,
            hostmetrics_emitted,
            hostmetrics_skipped,
            hostmetrics_tracked,
            process,
            target_info,
            filter_filtered,
            ottl_errors,
            processor_incoming,
            processor_outgoing,
            shedding,
            sampling,
            balancer,
            journald,
            k8s,
            kubelet,
            scrape,
            reloads,
            statuses: Arc::default(),
        })
    }

    pub fn receiver(&self, id: &ComponentId, transport: &str) -> ReceiverMetrics {
        let labels = ReceiverLabels { receiver: id.to_string(), transport: transport.to_string() };
        ReceiverMetrics {
            accepted: tallies(self.receiver_accepted.counters(&labels), false, &self.shedding.totals),
            refused: self.receiver_refused.counters(&labels),
            unauthenticated: self.receiver_unauthenticated.get_or_create(&labels).clone(),
        }
    }

    pub fn exporter(&self, id: &ComponentId) -> ExporterMetrics {
        let labels = ExporterLabels { exporter: id.to_string() };
        ExporterMetrics {
            sent: tallies(self.exporter_sent.counters(&labels), true, &self.shedding.totals),
            failed: self.exporter_failed.counters(&labels),
            enqueue_failed: self.exporter_enqueue_failed.counters(&labels),
            queue_size: self.exporter_queue_size.get_or_create(&labels).clone(),
            queue_capacity: self.exporter_queue_capacity.get_or_create(&labels).clone(),
            status: self.statuses.handle(format!("exporter:{id}")),
            queue_quarantined: self.exporter_queue_quarantined.get_or_create(&labels).clone(),
            queue_bytes: self.exporter_queue_bytes.get_or_create(&labels).clone(),
        }
    }

    /// Items a receiver has accepted and refused so far, over its transports and
    /// signals.
    pub fn receiver_totals(&self, id: &ComponentId) -> (u64, u64) {
        let (mut accepted, mut refused) = (0, 0);
        for transport in ["grpc", "http", ""] {
            let labels = ReceiverLabels { receiver: id.to_string(), transport: transport.to_string() };
            accepted += self.receiver_accepted.total(&labels);
            refused += self.receiver_refused.total(&labels);
        }
        (accepted, refused)
    }

    /// Items an exporter dropped for `reason` (a short snake_case word).
    pub fn exporter_dropped(&self, id: &ComponentId, reason: &'static str) -> Counter {
        self.exporter_dropped.get_or_create(&ExporterDropLabels { exporter: id.to_string(), reason }).clone()
    }

    pub fn loki_folded(&self, id: &ComponentId) -> Counter {
        self.loki_folded.get_or_create(&ExporterLabels { exporter: id.to_string() }).clone()
    }

    pub fn filelog(&self, id: &ComponentId) -> FilelogMetrics {
        let labels = ReceiverIdLabels { receiver: id.to_string() };
        // One family lookup per statement: a lookup's guard lives to the end of its
        // statement, and a second lookup in the same family would wait on it.
        // Edition 2024 drops a tail expression's temporaries (the lookup's guard) at the
        // end of the closure, before the next lookup in the same family.
        let rotation =
            |kind| self.filelog_rotations.get_or_create(&RotationLabels { receiver: id.to_string(), kind }).clone();
        let truncations = rotation("truncated");
        let moves = rotation("moved");
        let open_files = self.filelog_open_files.get_or_create(&labels).clone();
        let bytes_read = self.filelog_bytes_read.get_or_create(&labels).clone();
        let lines_cut = self.filelog_lines_cut.get_or_create(&labels).clone();
        let parse_errors = self.filelog_parse_errors.get_or_create(&labels).clone();
        let dropped =
            |reason| self.filelog_dropped.get_or_create(&DropLabels { receiver: id.to_string(), reason }).clone();
        let filtered = dropped("filter");
        let dropped_on_error = dropped("operator_error");
        let rejected = dropped("rejected");
        let file_gone = dropped("file_gone");
        let open_errors = self.filelog_open_errors.get_or_create(&labels).clone();
        FilelogMetrics {
            rejected,
            file_gone,
            open_errors,
            open_files,
            bytes_read,
            lines_cut,
            truncations,
            moves,
            parse_errors,
            filtered,
            dropped_on_error,
        }
    }

    pub fn hostmetrics(&self, id: &ComponentId) -> HostmetricsMetrics {
        let labels = ReceiverIdLabels { receiver: id.to_string() };
        let processes_seen = self.hostmetrics_seen.get_or_create(&labels).clone();
        let processes_emitted = self.hostmetrics_emitted.get_or_create(&labels).clone();
        let processes_tracked = self.hostmetrics_tracked.get_or_create(&labels).clone();
        HostmetricsMetrics {
            receiver: id.to_string(),
            duration: self.hostmetrics_duration.clone(),
            errors: self.hostmetrics_errors.clone(),
            skipped: self.hostmetrics_skipped.clone(),
            processes_seen,
            processes_emitted,
            processes_tracked,
        }
    }

    /// An OTTL processor's counters (`transform`, `filter`, `attributes` …).
    pub fn processor(&self, id: &ComponentId) -> ProcessorMetrics {
        let processor = id.to_string();
        let ottl_errors = self.ottl_errors.get_or_create(&ProcessorLabels { processor: processor.clone() }).clone();
        let by_signal = |family: &Family<ProcessorSignalLabels, Counter>| {
            crate::pdata::Signal::ALL.map(|signal| {
                family
                    .get_or_create(&ProcessorSignalLabels {
                        processor: processor.clone(),
                        otel_signal: signal.as_str(),
                    })
                    .clone()
            })
        };
        ProcessorMetrics {
            incoming: by_signal(&self.processor_incoming),
            outgoing: by_signal(&self.processor_outgoing),
            ottl_errors,
        }
    }

    /// The `filter` processor's counters.
    pub fn filter_processor(&self, id: &ComponentId) -> FilterMetrics {
        let labels = FilterLabels { filter: id.to_string() };
        let filtered = [0, 1, 2].map(|i| self.filter_filtered[i].get_or_create(&labels).clone());
        FilterMetrics { filtered, processor: self.processor(id) }
    }

    pub fn batch_processor(&self, id: &ComponentId) -> Histogram {
        self.batch_send_size.get_or_create(&ProcessorLabels { processor: id.to_string() }).clone()
    }

    pub fn memory_limiter(&self, id: &ComponentId) -> MemoryLimiterMetrics {
        self.shedding.memory_limiter(id)
    }

    pub fn importance(&self, id: &ComponentId) -> ImportanceMetrics {
        self.shedding.importance(id)
    }

    pub fn probabilistic_sampler(&self, id: &ComponentId) -> [[Counter; 2]; 3] {
        self.shedding.sampler(id)
    }

    pub fn balancer(&self, id: &ComponentId) -> BalancerMetrics {
        self.balancer.metrics(id)
    }

    pub fn prometheus_receiver(&self, id: &ComponentId, job: &str) -> PrometheusReceiverMetrics {
        self.scrape.metrics(id, job)
    }

    pub fn journald(&self, id: &ComponentId) -> JournaldMetrics {
        self.journald.metrics(id)
    }

    pub fn kubeletstats(&self, id: &ComponentId) -> KubeletMetrics {
        self.kubelet.metrics(id)
    }

    pub fn k8sattributes(&self, id: &ComponentId) -> K8sAttributesMetrics {
        self.k8s.metrics(id)
    }

    pub fn tail_sampling(&self, id: &ComponentId) -> sampling::TailSamplingMetrics {
        self.sampling.metrics(id)
    }

    /// Items the routing connector `connector` sent down `route`.
    pub fn route(&self, connector: &ComponentId, route: &str) -> Counter {
        self.shedding.route(connector, route)
    }

    pub fn pipeline(&self, id: &crate::config::PipelineId) -> PipelineMetrics {
        self.shedding.pipeline(id)
    }

    /// The whole registry in the OpenMetrics text format, process figures refreshed.
    pub fn encode(&self) -> String {
        self.process.refresh();
        self.shedding.refresh();
        let mut out = String::with_capacity(8192);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Serves `GET /metrics` until `cancel`.
/// Serves `/metrics`, and with `control` the reload endpoints: `POST /-/reload` and
/// `GET /-/config`.
pub async fn serve(
    telemetry: Arc<Telemetry>,
    listener: tokio::net::TcpListener,
    control: Option<crate::reload::Control>,
    cancel: CancellationToken,
) {
    let handler = move |request: hyper::Request<hyper::body::Incoming>, _peer| {
        let telemetry = telemetry.clone();
        let control = control.clone();
        async move {
            let (method, path) = (request.method(), request.uri().path());
            match (path, control) {
                ("/-/reload", Some(control)) => reload_response(&control, method).await,
                ("/-/config", Some(control)) => config_response(&control, method),
                _ => metrics_response(&telemetry, method, path),
            }
        }
    };
    let limits = net::ServerLimits { max_connections: net::ADMIN_MAX_CONNECTIONS, ..net::ServerLimits::default() };
    net::serve_http(listener, limits, handler, cancel).await;
}

/// 200 with the outcome when the new config runs; 500 with it and the error when the
/// old one still (or again) runs.
async fn reload_response(control: &crate::reload::Control, method: &http::Method) -> HttpResponse {
    if method != http::Method::POST {
        return net::text_response(http::StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
    }
    let Some(answer) = control.reload(crate::reload::Trigger::Http).await else {
        return net::text_response(http::StatusCode::SERVICE_UNAVAILABLE, "the agent is stopping\n");
    };
    let status = match answer.result {
        ReloadResult::Success => http::StatusCode::OK,
        ReloadResult::Failure | ReloadResult::Rollback => http::StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut body = serde_json::to_vec(&answer).unwrap_or_default();
    body.push(b'\n');
    let mut response = net::text_response(status, body);
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

fn config_response(control: &crate::reload::Control, method: &http::Method) -> HttpResponse {
    if method != http::Method::GET && method != http::Method::HEAD {
        return net::text_response(http::StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    let (yaml, hash) = control.show();
    let mut response = net::text_response(http::StatusCode::OK, yaml);
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/yaml; charset=utf-8"));
    if let Ok(value) = http::HeaderValue::from_str(&hash) {
        headers.insert("x-ocelot-config-hash", value);
    }
    response
}

fn metrics_response(telemetry: &Telemetry, method: &http::Method, path: &str) -> HttpResponse {
    if path != "/metrics" {
        return net::text_response(http::StatusCode::NOT_FOUND, "not found; self-metrics are at /metrics\n");
    }
    if method != http::Method::GET && method != http::Method::HEAD {
        return net::text_response(http::StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    let mut response = net::text_response(http::StatusCode::OK, telemetry.encode());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

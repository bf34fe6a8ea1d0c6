//! Self-metrics of the `tail_sampling` processor: upstream's names
//! (`otelcol_processor_tail_sampling_*`) and ocelot's early decisions, held bytes and
//! dropped spans.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::{ProcessorLabels, family};
use crate::config::ComponentId;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    processor: String,
    policy: String,
    decision: &'static str,
    sampled: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    processor: String,
    decision: &'static str,
    sampled: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SampledLabels {
    processor: String,
    sampled: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    processor: String,
    reason: &'static str,
}

/// Why a trace was decided before its `decision_wait`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EarlyReason {
    /// `max_memory_mib` reached: the oldest traces go first.
    Memory,
    /// `num_traces` reached.
    NumTraces,
    /// The trace passed `maximum_trace_size_bytes`.
    TooLarge,
}

impl EarlyReason {
    fn label(self) -> &'static str {
        match self {
            EarlyReason::Memory => "memory",
            EarlyReason::NumTraces => "num_traces",
            EarlyReason::TooLarge => "too_large",
        }
    }
}

/// A policy's counters of traces by its own decision: [sampled, not_sampled, dropped].
#[derive(Clone)]
pub struct PolicyCounters(pub [Counter; 3]);

pub(super) struct Sampling {
    policy: Family<PolicyLabels, Counter>,
    global: Family<DecisionLabels, Counter>,
    early_releases: Family<SampledLabels, Counter>,
    new_traces: Family<ProcessorLabels, Counter>,
    timer_latency: Family<ProcessorLabels, Histogram, fn() -> Histogram>,
    late_span_age: Family<ProcessorLabels, Histogram, fn() -> Histogram>,
    removal_age: Family<ProcessorLabels, Histogram, fn() -> Histogram>,
    evaluation_errors: Family<ProcessorLabels, Counter>,
    dropped_too_early: Family<ProcessorLabels, Counter>,
    on_memory: Family<ProcessorLabels, Gauge>,
    too_large: Family<ProcessorLabels, Counter>,
    early: Family<ReasonLabels, Counter>,
    held_bytes: Family<ProcessorLabels, Gauge>,
    dropped_spans: Family<ReasonLabels, Counter>,
    refused: Family<ProcessorLabels, Counter>,
}

fn timer_histogram() -> Histogram {
    Histogram::new([1.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0])
}

fn age_histogram() -> Histogram {
    Histogram::new([1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0])
}

/// One `tail_sampling` instance's metrics.
#[derive(Clone)]
pub struct TailSamplingMetrics {
    processor: String,
    policy: Family<PolicyLabels, Counter>,
    /// Final decisions: [sampled, not sampled].
    pub global: [Counter; 2],
    /// Late spans that followed a cached decision: [sampled, not sampled].
    pub early_releases: [Counter; 2],
    pub new_traces: Counter,
    /// Milliseconds one round of decisions took.
    pub timer_latency: Histogram,
    /// Seconds since the decision, of a span that arrived after it.
    pub late_span_age: Histogram,
    /// Seconds from a trace's first span to its decision.
    pub removal_age: Histogram,
    pub evaluation_errors: Counter,
    /// Traces let go undecided (`drop_pending_traces_on_shutdown`).
    pub dropped_too_early: Counter,
    pub on_memory: Gauge,
    /// Traces over `maximum_trace_size_bytes` (decided at once, not dropped).
    pub too_large: Counter,
    early: Family<ReasonLabels, Counter>,
    pub held_bytes: Gauge,
    /// Spans that cannot be sampled by trace: no valid trace id.
    pub invalid_trace_id: Counter,
    /// Batches refused at `num_traces` with `block_on_overflow`.
    pub refused: Counter,
}

impl TailSamplingMetrics {
    /// The counters of one top-level policy, labelled `<processor name>.<policy>` as
    /// upstream labels them (just the policy for an unnamed processor).
    pub fn policy(&self, id: &ComponentId, policy: &str) -> PolicyCounters {
        let name = match id.name.as_deref() {
            Some(n) if !n.is_empty() => format!("{n}.{policy}"),
            _ => policy.to_string(),
        };
        let get = |decision, sampled| {
            self.policy
                .get_or_create(&PolicyLabels {
                    processor: self.processor.clone(),
                    policy: name.clone(),
                    decision,
                    sampled,
                })
                .clone()
        };
        PolicyCounters([get("sampled", "true"), get("not_sampled", "false"), get("dropped", "false")])
    }

    pub fn early(&self, reason: EarlyReason) -> Counter {
        self.early.get_or_create(&ReasonLabels { processor: self.processor.clone(), reason: reason.label() }).clone()
    }
}

impl Sampling {
    pub(super) fn register(registry: &mut Registry) -> Sampling {
        fn histograms(
            registry: &mut Registry,
            name: &str,
            help: &str,
            make: fn() -> Histogram,
        ) -> Family<ProcessorLabels, Histogram, fn() -> Histogram> {
            let f: Family<ProcessorLabels, Histogram, fn() -> Histogram> = Family::new_with_constructor(make);
            registry.register(name, help, f.clone());
            f
        }
        const P: &str = "otelcol_processor_tail_sampling";
        Sampling {
            policy: family(
                registry,
                &format!("{P}_count_traces_sampled"),
                "Count of traces that were sampled or not per sampling policy",
            ),
            global: family(
                registry,
                &format!("{P}_global_count_traces_sampled"),
                "Global count of traces that were sampled or not by at least one policy",
            ),
            early_releases: family(
                registry,
                &format!("{P}_early_releases_from_cache_decision"),
                "Number of spans that were able to be immediately released due to a decision cache hit",
            ),
            new_traces: family(registry, &format!("{P}_new_trace_id_received"), "Counts the arrival of new traces"),
            timer_latency: histograms(
                registry,
                &format!("{P}_sampling_decision_timer_latency"),
                "Latency (in milliseconds) of each run of the sampling decision timer",
                timer_histogram,
            ),
            late_span_age: histograms(
                registry,
                &format!("{P}_sampling_late_span_age"),
                "Time (in seconds) from the sampling decision was taken and the arrival of a late span",
                age_histogram,
            ),
            removal_age: histograms(
                registry,
                &format!("{P}_sampling_trace_removal_age"),
                "Time (in seconds) from arrival of a new trace until its removal from memory",
                age_histogram,
            ),
            evaluation_errors: family(
                registry,
                &format!("{P}_sampling_policy_evaluation_error"),
                "Count of sampling policy evaluation errors",
            ),
            dropped_too_early: family(
                registry,
                &format!("{P}_sampling_trace_dropped_too_early"),
                "Count of traces that needed to be dropped before the configured wait time",
            ),
            on_memory: family(
                registry,
                &format!("{P}_sampling_traces_on_memory"),
                "Tracks the number of traces current on memory",
            ),
            too_large: family(
                registry,
                &format!("{P}_traces_dropped_too_large"),
                "Count of traces over maximum_trace_size_bytes (ocelot decides them at once instead of dropping them)",
            ),
            early: family(
                registry,
                "ocelot_processor_tail_sampling_early_decisions",
                "Traces decided before decision_wait, by reason (memory, num_traces, too_large)",
            ),
            held_bytes: family(
                registry,
                "ocelot_processor_tail_sampling_held_bytes",
                "Bytes the undecided traces hold (encoded spans and bookkeeping), against max_memory_mib",
            ),
            dropped_spans: family(
                registry,
                "ocelot_processor_tail_sampling_dropped_spans",
                "Spans dropped because they cannot be sampled by trace, by reason",
            ),
            refused: family(
                registry,
                "ocelot_processor_tail_sampling_refused_batches",
                "Batches refused (retryable) at num_traces with block_on_overflow",
            ),
        }
    }

    pub(super) fn metrics(&self, id: &ComponentId) -> TailSamplingMetrics {
        let processor = id.to_string();
        let labels = ProcessorLabels { processor: processor.clone() };
        let decision = |decision, sampled| {
            self.global.get_or_create(&DecisionLabels { processor: processor.clone(), decision, sampled }).clone()
        };
        let release = |sampled| {
            self.early_releases.get_or_create(&SampledLabels { processor: processor.clone(), sampled }).clone()
        };
        TailSamplingMetrics {
            policy: self.policy.clone(),
            global: [decision("sampled", "true"), decision("not_sampled", "false")],
            early_releases: [release("true"), release("false")],
            new_traces: self.new_traces.get_or_create(&labels).clone(),
            timer_latency: self.timer_latency.get_or_create(&labels).clone(),
            late_span_age: self.late_span_age.get_or_create(&labels).clone(),
            removal_age: self.removal_age.get_or_create(&labels).clone(),
            evaluation_errors: self.evaluation_errors.get_or_create(&labels).clone(),
            dropped_too_early: self.dropped_too_early.get_or_create(&labels).clone(),
            on_memory: self.on_memory.get_or_create(&labels).clone(),
            too_large: self.too_large.get_or_create(&labels).clone(),
            early: self.early.clone(),
            held_bytes: self.held_bytes.get_or_create(&labels).clone(),
            invalid_trace_id: self
                .dropped_spans
                .get_or_create(&ReasonLabels { processor: processor.clone(), reason: "invalid_trace_id" })
                .clone(),
            refused: self.refused.get_or_create(&labels).clone(),
            processor,
        }
    }
}

//! Self-metrics of what ocelot decides to keep: the `memory_limiter`'s levels,
//! refusals and sheds, the `importance` processor's tiers and state, the `routing`
//! connector's routes, and the cost view (items into and out of each pipeline, and
//! the share of received items that was not sent, per signal, over the last minute).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{PerSignal, ProcessorLabels, family};
use crate::config::{ComponentId, PipelineId};
use crate::pdata::Signal;
use crate::pdata::score::Tier;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShedLabels {
    processor: String,
    level: String,
    tier: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LevelLabels {
    processor: String,
    level: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabels {
    processor: String,
    tier: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    processor: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    connector: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PipelineLabels {
    pipeline: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SampledLabels {
    processor: String,
    sampled: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignalLabels {
    signal: &'static str,
}

/// Items received and sent per signal since start, for `ocelot_optimization_ratio`.
#[derive(Default)]
pub(crate) struct SignalTotals {
    received: [AtomicU64; 3],
    sent: [AtomicU64; 3],
}

impl SignalTotals {
    pub(crate) fn received(&self, signal: Signal, n: u64) {
        self.received[signal.index()].fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sent(&self, signal: Signal, n: u64) {
        self.sent[signal.index()].fetch_add(n, Ordering::Relaxed);
    }

    fn read(&self) -> Readings {
        std::array::from_fn(|i| (self.received[i].load(Ordering::Relaxed), self.sent[i].load(Ordering::Relaxed)))
    }
}

/// Items (received, sent) per signal, by [`Signal::index`].
type Readings = [(u64, u64); 3];

/// The window `ocelot_optimization_ratio` looks back over.
const RATIO_WINDOW: Duration = Duration::from_secs(60);

pub(super) struct Shedding {
    limiter_refused: PerSignal<ProcessorLabels>,
    limiter_level: Family<ProcessorLabels, Gauge>,
    limiter_dropped: Family<ShedLabels, Counter>,
    limiter_sampled: Family<ShedLabels, Counter>,
    limiter_level_seconds: Family<LevelLabels, Counter<f64, AtomicU64>>,
    limiter_unreadable: Family<ReasonLabels, Counter>,
    memory_bytes: Gauge,
    memory_limit_bytes: Family<ProcessorLabels, Gauge>,
    importance_records: Family<TierLabels, Counter>,
    importance_tracked: Family<ProcessorLabels, Gauge>,
    importance_saves: Family<ReasonLabels, Counter>,
    importance_unreadable: Family<ReasonLabels, Counter>,
    routing_items: Family<RouteLabels, Counter>,
    pipeline_in: Family<PipelineLabels, Counter>,
    pipeline_out: Family<PipelineLabels, Counter>,
    ratio: Family<SignalLabels, Gauge<f64, AtomicU64>>,
    /// By [`Signal::index`].
    sampled: [Family<SampledLabels, Counter>; 3],
    pub(super) totals: Arc<SignalTotals>,
    /// Readings of `totals`, oldest first, covering a little more than the window.
    history: Mutex<VecDeque<(Instant, Readings)>>,
}

impl Shedding {
    pub(super) fn register(registry: &mut Registry) -> Shedding {
        let limiter_refused = PerSignal::register(
            registry,
            "otelcol_processor_memory_limiter_refused",
            "Number of items refused at the door because memory was at the memory_limiter's soft limit",
        );
        let memory_bytes = Gauge::default();
        registry.register(
            "ocelot_memory_governor_bytes",
            "Memory the kernel charges the process (resident set), as the memory governor last read it",
            memory_bytes.clone(),
        );
        Shedding {
            limiter_refused,
            limiter_level: family(
                registry,
                "ocelot_memory_limiter_level",
                "The memory_limiter's degradation level: 0 none, 1.. the drop_levels reached, one more at the soft limit",
            ),
            limiter_dropped: family(
                registry,
                "ocelot_memory_limiter_dropped",
                "Records dropped on purpose by drop_below or keep_only_above, by level and tier",
            ),
            limiter_sampled: family(
                registry,
                "ocelot_memory_limiter_sampled",
                "Records shed by a level's sample action, by level and tier",
            ),
            limiter_level_seconds: family(
                registry,
                "ocelot_memory_limiter_level_seconds",
                "Time spent at each degradation level",
            ),
            limiter_unreadable: family(
                registry,
                "ocelot_memory_limiter_unreadable_scores",
                "Records looked at while shedding whose score was missing or not a number in [0, 1]",
            ),
            memory_bytes,
            memory_limit_bytes: family(
                registry,
                "ocelot_memory_limiter_limit_bytes",
                "The memory_limiter's hard limit in bytes",
            ),
            importance_records: family(registry, "ocelot_importance_records", "Records scored, by tier"),
            importance_tracked: family(
                registry,
                "ocelot_importance_tracked_keys",
                "Identities (such as process names) whose EWMA the importance processor keeps",
            ),
            importance_saves: family(
                registry,
                "ocelot_importance_state_saves",
                "Writes of the importance processor's EWMA state, by result",
            ),
            importance_unreadable: family(
                registry,
                "ocelot_importance_unreadable_values",
                "Metric values the EWMA could not use, by reason",
            ),
            routing_items: family(registry, "ocelot_routing_items", "Items the routing connector sent, by route"),
            pipeline_in: family(registry, "ocelot_pipeline_items_in", "Items that entered a pipeline"),
            pipeline_out: family(
                registry,
                "ocelot_pipeline_items_out",
                "Items that left a pipeline's processors toward its exporters and connectors",
            ),
            ratio: family(
                registry,
                "ocelot_optimization_ratio",
                "1 - items sent / items received over the last minute, per signal: the share ocelot kept off the backends",
            ),
            sampled: [
                family(
                    registry,
                    "otelcol_processor_probabilistic_sampler_count_traces_sampled",
                    "Spans kept (sampled=true) or dropped by the probabilistic_sampler",
                ),
                family(
                    registry,
                    "ocelot_probabilistic_sampler_count_metric_points_sampled",
                    "Data points kept (sampled=true) or dropped by the probabilistic_sampler",
                ),
                family(
                    registry,
                    "otelcol_processor_probabilistic_sampler_count_logs_sampled",
                    "Log records kept (sampled=true) or dropped by the probabilistic_sampler",
                ),
            ],
            totals: Arc::new(SignalTotals::default()),
            history: Mutex::new(VecDeque::new()),
        }
    }

    /// Recomputes `ocelot_optimization_ratio` from the readings a minute apart, at scrape time.
    pub(super) fn refresh(&self) {
        let now = Instant::now();
        let current = self.totals.read();
        let mut history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        // Keep one reading at least a window old; drop what is older than it.
        while history.len() >= 2 && history.get(1).is_some_and(|(at, _)| now.duration_since(*at) >= RATIO_WINDOW) {
            history.pop_front();
        }
        let base = history.front().map_or([(0, 0); 3], |(_, totals)| *totals);
        history.push_back((now, current));
        drop(history);
        for signal in Signal::ALL {
            let i = signal.index();
            let received = current[i].0.saturating_sub(base[i].0);
            let sent = current[i].1.saturating_sub(base[i].1);
            let ratio = if received == 0 { 0.0 } else { 1.0 - sent as f64 / received as f64 };
            self.ratio.get_or_create(&SignalLabels { signal: signal.as_str() }).set(ratio);
        }
    }

    pub(super) fn memory_limiter(&self, id: &ComponentId) -> MemoryLimiterMetrics {
        let processor = id.to_string();
        let labels = ProcessorLabels { processor: processor.clone() };
        let level = self.limiter_level.get_or_create(&labels).clone();
        let limit = self.memory_limit_bytes.get_or_create(&labels).clone();
        let unreadable = |reason| {
            self.limiter_unreadable.get_or_create(&ReasonLabels { processor: processor.clone(), reason }).clone()
        };
        let missing = unreadable("missing");
        let invalid = unreadable("invalid");
        MemoryLimiterMetrics {
            refused: self.limiter_refused.counters(&labels),
            level,
            limit,
            missing,
            invalid,
            memory: self.memory_bytes.clone(),
            dropped: self.limiter_dropped.clone(),
            sampled: self.limiter_sampled.clone(),
            level_seconds: self.limiter_level_seconds.clone(),
            processor,
        }
    }

    pub(super) fn importance(&self, id: &ComponentId) -> ImportanceMetrics {
        let processor = id.to_string();
        let records = Tier::ALL.map(|tier| {
            self.importance_records
                .get_or_create(&TierLabels { processor: processor.clone(), tier: tier.as_str() })
                .clone()
        });
        let saves = |reason| {
            self.importance_saves.get_or_create(&ReasonLabels { processor: processor.clone(), reason }).clone()
        };
        let saved = saves("success");
        let save_failed = saves("failure");
        let unreadable = |reason| {
            self.importance_unreadable.get_or_create(&ReasonLabels { processor: processor.clone(), reason }).clone()
        };
        let not_numeric = unreadable("not_numeric");
        let tracked = self.importance_tracked.get_or_create(&ProcessorLabels { processor: processor.clone() }).clone();
        ImportanceMetrics { records, tracked, saved, save_failed, not_numeric }
    }

    /// The probabilistic_sampler's [kept, dropped] counters by [`Signal::index`].
    pub(super) fn sampler(&self, id: &ComponentId) -> [[Counter; 2]; 3] {
        std::array::from_fn(|i| {
            let get =
                |sampled| self.sampled[i].get_or_create(&SampledLabels { processor: id.to_string(), sampled }).clone();
            let kept = get("true");
            let dropped = get("false");
            [kept, dropped]
        })
    }

    pub(super) fn route(&self, connector: &ComponentId, route: &str) -> Counter {
        self.routing_items
            .get_or_create(&RouteLabels { connector: connector.to_string(), route: route.to_string() })
            .clone()
    }

    pub(super) fn pipeline(&self, id: &PipelineId) -> PipelineMetrics {
        let labels = PipelineLabels { pipeline: id.to_string() };
        let items_in = self.pipeline_in.get_or_create(&labels).clone();
        let items_out = self.pipeline_out.get_or_create(&labels).clone();
        PipelineMetrics { items_in, items_out }
    }
}

/// One `memory_limiter` instance's metrics.
#[derive(Clone)]
pub struct MemoryLimiterMetrics {
    processor: String,
    /// Items refused at the door, by [`Signal::index`].
    pub refused: [Counter; 3],
    pub level: Gauge,
    pub limit: Gauge,
    /// The governor's reading, shared by every instance.
    pub memory: Gauge,
    pub missing: Counter,
    pub invalid: Counter,
    dropped: Family<ShedLabels, Counter>,
    sampled: Family<ShedLabels, Counter>,
    level_seconds: Family<LevelLabels, Counter<f64, AtomicU64>>,
}

impl MemoryLimiterMetrics {
    /// Records dropped at `level` (1-based) in `tier`.
    pub fn dropped(&self, level: usize, tier: Tier) -> Counter {
        let labels = ShedLabels { processor: self.processor.clone(), level: level.to_string(), tier: tier.as_str() };
        self.dropped.get_or_create(&labels).clone()
    }

    /// Records shed by sampling at `level` in `tier`.
    pub fn sampled(&self, level: usize, tier: Tier) -> Counter {
        let labels = ShedLabels { processor: self.processor.clone(), level: level.to_string(), tier: tier.as_str() };
        self.sampled.get_or_create(&labels).clone()
    }

    /// Seconds at `level` (0 none … the soft limit's level).
    pub fn level_seconds(&self, level: usize) -> Counter<f64, AtomicU64> {
        let labels = LevelLabels { processor: self.processor.clone(), level: level.to_string() };
        self.level_seconds.get_or_create(&labels).clone()
    }
}

/// One `importance` processor's metrics.
#[derive(Clone)]
pub struct ImportanceMetrics {
    /// Records scored, by [`Tier::index`] (unscored is never counted here).
    pub records: [Counter; 5],
    pub tracked: Gauge,
    pub saved: Counter,
    pub save_failed: Counter,
    /// EWMA metric values that were not numbers.
    pub not_numeric: Counter,
}

/// A pipeline's items in and out.
#[derive(Clone)]
pub struct PipelineMetrics {
    pub items_in: Counter,
    pub items_out: Counter,
}

#[cfg(test)]
mod tests {
    use crate::config::ComponentId;
    use crate::pdata::Signal;
    use crate::telemetry::Telemetry;

    fn ratio(text: &str, signal: &str) -> f64 {
        let prefix = format!("ocelot_optimization_ratio{{signal=\"{signal}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap().trim().parse().unwrap()
    }

    #[test]
    fn optimization_ratio_is_the_share_not_sent() {
        let telemetry = Telemetry::new();
        let receiver = telemetry.receiver(&ComponentId::new("otlp"), "grpc");
        let exporter = telemetry.exporter(&ComponentId::new("otlp"));
        receiver.accepted(Signal::Metrics).inc_by(1000);
        exporter.sent(Signal::Metrics).inc_by(250);
        receiver.accepted(Signal::Logs).inc_by(10);
        exporter.sent(Signal::Logs).inc_by(10);
        let text = telemetry.encode();
        assert_eq!(ratio(&text, "metrics"), 0.75);
        assert_eq!(ratio(&text, "logs"), 0.0);
        assert_eq!(ratio(&text, "traces"), 0.0, "nothing received is no reduction");
    }
}

//! The `metricstarttime` processor: start times for cumulative points that have
//! none, as upstream's processor sets them (the `prometheus` receiver leaves them
//! unset, as upstream's now does). Strategies:
//!
//! - `true_reset_point` (the default): a series' first point starts at its own
//!   time (a true reset point); later points start there too. After a reset (the
//!   value went down) the series starts again 1 ms before the point that showed it.
//! - `subtract_initial_point`: a series' first point is held back as the reference;
//!   later points are reported minus it, starting at its time. After a reset the
//!   point is reported as it is, starting 1 ms before it, and is the new zero.
//! - `start_time_metric`: every point of a resource starts when its process did:
//!   the value of `process_start_time_seconds` (or `start_time_metric_regex`) in the
//!   same resource; without one, when ocelot started. Resets as `true_reset_point`.
//!
//! State is one entry per series (resource, metric, attributes), dropped once the
//! series has not been seen for `gc_interval`. Gauges and delta points pass as they are.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ResourceMetrics, metric::Data, number_data_point,
};
use regex::Regex;
use serde::Deserialize;

use super::Processor;
use crate::component::Validate;
use crate::config::ConfigDuration;
use crate::pdata::{Batch, Payload};
use crate::telemetry::ProcessorMetrics;

pub const TYPE: &str = "metricstarttime";

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    #[default]
    TrueResetPoint,
    SubtractInitialPoint,
    StartTimeMetric,
    /// Needs the Kubernetes API (pod start times); refused.
    StartTimeAttribute,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricStartTimeConfig {
    /// `true_reset_point` (default), `subtract_initial_point` or `start_time_metric`.
    #[serde(default)]
    pub strategy: Strategy,
    /// A series not seen for this long is forgotten. Default 10m.
    #[serde(default = "default_gc_interval")]
    pub gc_interval: ConfigDuration,
    /// For `start_time_metric`: the metric whose value (seconds since the epoch) is
    /// the start time. Default `process_start_time_seconds` exactly.
    #[serde(default)]
    pub start_time_metric_regex: Option<String>,
    /// Leave points that already have a start time as they are. Default false.
    #[serde(default)]
    pub skip_if_ct_exists: bool,
    /// Refused: only for `start_time_attribute`.
    #[serde(default)]
    pub attributes_filters: Option<crate::receivers::prometheus::config::serde_yaml_any::Any>,
    /// Refused: only for `start_time_attribute`.
    #[serde(default)]
    pub use_container_readiness_time: Option<bool>,
}

fn default_gc_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(600))
}

impl Validate for MetricStartTimeConfig {
    fn validate(&self) -> Result<(), String> {
        if self.strategy == Strategy::StartTimeAttribute || self.attributes_filters.is_some() {
            return Err("strategy start_time_attribute (pod start times from the Kubernetes API) is not built in ocelot; use true_reset_point, subtract_initial_point or start_time_metric".into());
        }
        if self.use_container_readiness_time.is_some() {
            return Err(
                "use_container_readiness_time belongs to strategy start_time_attribute, which ocelot does not have"
                    .into(),
            );
        }
        if self.gc_interval.0.is_zero() {
            return Err("gc_interval must be positive".into());
        }
        if let Some(pattern) = &self.start_time_metric_regex {
            if self.strategy != Strategy::StartTimeMetric {
                return Err("start_time_metric_regex applies only to strategy start_time_metric".into());
            }
            Regex::new(pattern).map_err(|e| format!("start_time_metric_regex: {e}"))?;
        }
        Ok(())
    }
}

/// What a series looked like last, to see a reset, and where it starts.
#[derive(Clone, Debug, Default)]
struct SeriesState {
    start_ns: u64,
    /// The last value as it came (a sum's value, or a histogram's or summary's sum),
    /// and count.
    previous: (f64, f64),
    /// `subtract_initial_point`: the reference point's value, count and sum, buckets.
    reference: (f64, f64, Vec<u64>),
    seen: Option<Instant>,
}

pub struct MetricStartTimeProcessor {
    strategy: Strategy,
    gc_interval: Duration,
    regex: Option<Regex>,
    skip_if_set: bool,
    series: HashMap<u64, SeriesState>,
    last_gc: Instant,
    /// When ocelot started: `start_time_metric`'s fallback.
    started_ns: u64,
    metrics: ProcessorMetrics,
}

impl MetricStartTimeProcessor {
    pub fn new(config: &MetricStartTimeConfig, metrics: ProcessorMetrics) -> MetricStartTimeProcessor {
        MetricStartTimeProcessor {
            strategy: config.strategy,
            gc_interval: config.gc_interval.0,
            regex: config.start_time_metric_regex.as_deref().and_then(|p| Regex::new(p).ok()),
            skip_if_set: config.skip_if_ct_exists,
            series: HashMap::new(),
            last_gc: Instant::now(),
            started_ns: process_start_ns(),
            metrics,
        }
    }

    /// The start time `start_time_metric` gives a resource's points.
    fn resource_start(&self, rm: &ResourceMetrics) -> u64 {
        for metric in rm.scope_metrics.iter().flat_map(|s| s.metrics.iter()) {
            let matches = match &self.regex {
                Some(regex) => regex.is_match(&metric.name),
                None => metric.name == "process_start_time_seconds",
            };
            if !matches {
                continue;
            }
            let point = match &metric.data {
                Some(Data::Gauge(g)) => g.data_points.first(),
                Some(Data::Sum(s)) => s.data_points.first(),
                _ => None,
            };
            if let Some(value) = point.and_then(|p| p.value).map(|v| match v {
                number_data_point::Value::AsDouble(d) => d,
                number_data_point::Value::AsInt(i) => i as f64,
            }) && value > 0.0
            {
                return (value * 1e9) as u64;
            }
        }
        self.started_ns
    }

    fn adjust(&mut self, rm: &mut ResourceMetrics, now: Instant) {
        let resource_hash = hash_attributes(rm.resource.as_ref().map(|r| r.attributes.as_slice()).unwrap_or(&[]), 0);
        let resource_start = if self.strategy == Strategy::StartTimeMetric { self.resource_start(rm) } else { 0 };
        let strategy = self.strategy;
        let skip = self.skip_if_set;
        for scope in &mut rm.scope_metrics {
            for metric in &mut scope.metrics {
                let name_hash = hash_attributes(&[], resource_hash ^ hash_str(&metric.name));
                let cumulative = AggregationTemporality::Cumulative as i32;
                match &mut metric.data {
                    Some(Data::Sum(sum)) if sum.aggregation_temporality == cumulative => {
                        let monotonic = sum.is_monotonic;
                        sum.data_points.retain_mut(|p| {
                            if skip && p.start_time_unix_nano != 0 {
                                return true;
                            }
                            let value = match p.value {
                                Some(number_data_point::Value::AsDouble(d)) => d,
                                Some(number_data_point::Value::AsInt(i)) => i as f64,
                                None => 0.0,
                            };
                            let key = hash_attributes(&p.attributes, name_hash ^ 1);
                            let stale = p.flags & 1 == 1;
                            let point = Point { time_ns: p.time_unix_nano, value, count: 0.0, buckets: &[], stale };
                            let keep = step(&mut self.series, key, strategy, resource_start, now, &point, |prev| {
                                monotonic && value < prev.0
                            });
                            match keep {
                                Step::Drop => false,
                                Step::Keep { start_ns, subtract } => {
                                    p.start_time_unix_nano = start_ns;
                                    if let Some((v, _, _)) = subtract {
                                        p.value = Some(match p.value {
                                            Some(number_data_point::Value::AsInt(i)) => {
                                                number_data_point::Value::AsInt(i - v as i64)
                                            }
                                            _ => number_data_point::Value::AsDouble(value - v),
                                        });
                                    }
                                    true
                                }
                            }
                        });
                    }
                    Some(Data::Histogram(h)) if h.aggregation_temporality == cumulative => {
                        h.data_points.retain_mut(|p| {
                            if skip && p.start_time_unix_nano != 0 {
                                return true;
                            }
                            let key = hash_attributes(&p.attributes, name_hash ^ 2);
                            let (count, sum) = (p.count as f64, p.sum.unwrap_or(0.0));
                            let point = Point {
                                time_ns: p.time_unix_nano,
                                value: sum,
                                count,
                                buckets: &p.bucket_counts,
                                stale: p.flags & 1 == 1,
                            };
                            match step(&mut self.series, key, strategy, resource_start, now, &point, |prev| {
                                count < prev.1
                            }) {
                                Step::Drop => false,
                                Step::Keep { start_ns, subtract } => {
                                    p.start_time_unix_nano = start_ns;
                                    if let Some((s, c, buckets)) = subtract {
                                        p.count = (count - c).max(0.0) as u64;
                                        p.sum = p.sum.map(|v| v - s);
                                        if buckets.len() == p.bucket_counts.len() {
                                            for (b, r) in p.bucket_counts.iter_mut().zip(buckets) {
                                                *b = b.saturating_sub(r);
                                            }
                                        }
                                    }
                                    true
                                }
                            }
                        });
                    }
                    Some(Data::ExponentialHistogram(h)) if h.aggregation_temporality == cumulative => {
                        h.data_points.retain_mut(|p| {
                            if skip && p.start_time_unix_nano != 0 {
                                return true;
                            }
                            let key = hash_attributes(&p.attributes, name_hash ^ 3);
                            let (count, sum) = (p.count as f64, p.sum.unwrap_or(0.0));
                            let point = Point {
                                time_ns: p.time_unix_nano,
                                value: sum,
                                count,
                                buckets: &[],
                                stale: p.flags & 1 == 1,
                            };
                            match step(&mut self.series, key, strategy, resource_start, now, &point, |prev| {
                                count < prev.1
                            }) {
                                Step::Drop => false,
                                Step::Keep { start_ns, subtract } => {
                                    p.start_time_unix_nano = start_ns;
                                    if let Some((s, c, _)) = subtract {
                                        p.count = (count - c).max(0.0) as u64;
                                        p.sum = p.sum.map(|v| v - s);
                                    }
                                    true
                                }
                            }
                        });
                    }
                    Some(Data::Summary(summary)) => {
                        summary.data_points.retain_mut(|p| {
                            if skip && p.start_time_unix_nano != 0 {
                                return true;
                            }
                            let key = hash_attributes(&p.attributes, name_hash ^ 4);
                            let (count, sum) = (p.count as f64, p.sum);
                            let point = Point {
                                time_ns: p.time_unix_nano,
                                value: sum,
                                count,
                                buckets: &[],
                                stale: p.flags & 1 == 1,
                            };
                            let reset = |prev: (f64, f64)| count < prev.1 || sum < prev.0;
                            match step(&mut self.series, key, strategy, resource_start, now, &point, reset) {
                                Step::Drop => false,
                                Step::Keep { start_ns, subtract } => {
                                    p.start_time_unix_nano = start_ns;
                                    if let Some((s, c, _)) = subtract {
                                        p.count = (count - c).max(0.0) as u64;
                                        p.sum = sum - s;
                                    }
                                    true
                                }
                            }
                        });
                    }
                    _ => {}
                }
            }
        }
    }
}

/// A point's values, as the strategies see them.
struct Point<'a> {
    time_ns: u64,
    /// A sum's value, or a histogram's or summary's sum.
    value: f64,
    count: f64,
    buckets: &'a [u64],
    stale: bool,
}

enum Step {
    Drop,
    /// The start time, and what to subtract (value or sum, count, buckets).
    Keep {
        start_ns: u64,
        subtract: Option<(f64, f64, Vec<u64>)>,
    },
}

/// One point of one series through the strategy; `reset` sees the previous (value, count).
fn step(
    series: &mut HashMap<u64, SeriesState>,
    key: u64,
    strategy: Strategy,
    resource_start: u64,
    now: Instant,
    point: &Point<'_>,
    reset: impl Fn((f64, f64)) -> bool,
) -> Step {
    let reset_start = point.time_ns.saturating_sub(1_000_000);
    let Some(state) = series.get_mut(&key) else {
        let mut state = SeriesState { seen: Some(now), previous: (point.value, point.count), ..Default::default() };
        let step = match strategy {
            Strategy::SubtractInitialPoint => {
                state.start_ns = point.time_ns;
                state.reference = (point.value, point.count, point.buckets.to_vec());
                Step::Drop
            }
            Strategy::StartTimeMetric => {
                state.start_ns = resource_start;
                Step::Keep { start_ns: resource_start, subtract: None }
            }
            Strategy::TrueResetPoint | Strategy::StartTimeAttribute => {
                state.start_ns = point.time_ns;
                Step::Keep { start_ns: point.time_ns, subtract: None }
            }
        };
        series.insert(key, state);
        return step;
    };
    state.seen = Some(now);
    if point.stale {
        return Step::Keep { start_ns: state.start_ns, subtract: None };
    }
    if strategy == Strategy::SubtractInitialPoint {
        if reset(state.previous) {
            // The process restarted: this point counts from a new zero.
            state.start_ns = reset_start;
            state.reference = (0.0, 0.0, Vec::new());
            state.previous = (point.value, point.count);
            return Step::Keep { start_ns: reset_start, subtract: None };
        }
        state.previous = (point.value, point.count);
        return Step::Keep { start_ns: state.start_ns, subtract: Some(state.reference.clone()) };
    }
    if reset(state.previous) {
        state.start_ns = reset_start;
    }
    state.previous = (point.value, point.count);
    Step::Keep { start_ns: state.start_ns, subtract: None }
}

fn hash_str(text: &str) -> u64 {
    foldhash::fast::FixedState::with_seed(0x6d73_7474).hash_one(text)
}

/// A series key part: the attributes, in key order, mixed into `seed`. Strings (what
/// nearly every metric attribute is) are hashed as they are; other values by their
/// encoding.
fn hash_attributes(attributes: &[KeyValue], seed: u64) -> u64 {
    let mut sorted: Vec<&KeyValue> = attributes.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut h = foldhash::fast::FixedState::with_seed(seed).build_hasher();
    for kv in sorted {
        h.write(kv.key.as_bytes());
        h.write_u8(0xff);
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s)) => h.write(s.as_bytes()),
            Some(_) => h.write(&prost::Message::encode_to_vec(kv)),
            None => {}
        }
        h.write_u8(0xfe);
    }
    h.finish()
}

fn process_start_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

impl Processor for MetricStartTimeProcessor {
    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>) {
        let i = batch.signal().index();
        self.metrics.incoming[i].inc_by(batch.payload.item_count() as u64);
        let now = Instant::now();
        if now.duration_since(self.last_gc) >= self.gc_interval {
            let gc = self.gc_interval;
            self.series.retain(|_, s| s.seen.is_some_and(|seen| now.duration_since(seen) < gc));
            self.last_gc = now;
        }
        if let Payload::Metrics(request) = batch.payload_mut() {
            for rm in &mut request.resource_metrics {
                self.adjust(rm, now);
            }
        }
        let items = batch.payload.item_count() as u64;
        self.metrics.outgoing[i].inc_by(items);
        if items > 0 {
            out.push(batch);
        }
    }
}

#[cfg(test)]
#[path = "metricstarttime_tests.rs"]
mod tests;

//! One scrape of one target as OTLP, as upstream's receiver translates it: counters
//! become cumulative monotonic sums (with no start time unless the page gives
//! `_created`; the `metricstarttime` processor sets it), gauges and unknown types
//! gauges, classic histograms and summaries their OTLP kinds; `job` and `instance`
//! become `service.name` and `service.instance.id`, `target_info` the resource's
//! attributes, `otel_scope_name`/`otel_scope_version` the scope. A series that was
//! in the last scrape and is gone gets a point with no recorded value (Prometheus'
//! staleness marker); so does every series of a target whose scrape failed.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum, Summary, SummaryDataPoint, metric::Data, number_data_point, summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::relabel::{self, LabelSet, Relabel};
use super::text::{Family, Kind};

/// Upstream's scope name, so views and processors keyed on it keep working.
pub const SCOPE_NAME: &str = "github.com/open-telemetry/opentelemetry-collector-contrib/receiver/prometheusreceiver";
/// OTLP's "no recorded value" data point flag: Prometheus' staleness marker.
const NO_RECORDED_VALUE: u32 = 1;
/// Prometheus' staleness marker as a sample value.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// What a target's scrapes share: its labels and the job's settings.
#[derive(Clone, Debug)]
pub struct TargetSettings {
    /// The target's labels after relabeling (job, instance, and the others).
    pub labels: LabelSet,
    pub scheme: String,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub trim_metric_suffixes: bool,
    pub metric_relabel: Vec<Relabel>,
    pub sample_limit: usize,
    pub label_limit: usize,
    pub label_name_length_limit: usize,
    pub label_value_length_limit: usize,
}

/// A series, for staleness: where it was and what kind of point it takes.
#[derive(Clone, Debug)]
struct Series {
    resource: LabelSet,
    scope: (String, String),
    name: String,
    kind: PointKind,
    attributes: Vec<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PointKind {
    Gauge,
    Counter,
    Histogram,
    Summary,
}

/// The per-target state kept between scrapes: the series of the last good one.
#[derive(Default)]
pub struct Staleness {
    last: HashMap<u64, Series>,
}

/// What one scrape gave, for the scrape's own metrics.
#[derive(Debug, Default, PartialEq)]
pub struct Counts {
    pub scraped: usize,
    pub post_relabel: usize,
    pub series_added: usize,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("the page has {0} samples after metric relabeling, over sample_limit {1}")]
    Samples(usize, usize),
    #[error("a series has {0} labels, over label_limit {1}")]
    Labels(usize, usize),
    #[error("label name `{0}` is longer than label_name_length_limit {1}")]
    NameLength(String, usize),
    #[error("the value of label `{0}` is longer than label_value_length_limit {1}")]
    ValueLength(String, usize),
}

/// A sample after its labels were settled: everything the OTLP point needs.
struct Settled {
    resource: LabelSet,
    scope: (String, String),
    /// The metric's name and what it is (from its family, or gauge if relabeled away).
    base: String,
    kind: Kind,
    suffix: String,
    help: String,
    unit: String,
    attributes: Vec<(String, String)>,
    value: f64,
    time_ns: u64,
}

fn hash_of(parts: &impl Hash) -> u64 {
    foldhash::fast::FixedState::with_seed(0x6f63_656c).hash_one(parts)
}

/// Labels of the page and of the target merged as Prometheus does.
fn merge(
    sample: &[(std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)],
    name: &str,
    target: &TargetSettings,
) -> LabelSet {
    let mut labels = LabelSet::from_pairs(
        sample
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain(std::iter::once(("__name__".into(), name.to_string()))),
    );
    for (key, value) in &target.labels.0 {
        let scraped = labels.get(key).map(str::to_string);
        match scraped {
            Some(_) if target.honor_labels => {}
            Some(existing) => {
                // The scraped value moves aside to exported_<name> (and further aside
                // if that is taken too).
                let mut aside = format!("exported_{key}");
                while labels.get(&aside).is_some() {
                    aside = format!("exported_{aside}");
                }
                labels.set(&aside, existing);
                labels.set(key, value.clone());
            }
            None => labels.set(key, value.clone()),
        }
    }
    labels
}

/// Translates one successful scrape; on a limit the scrape fails whole, as in Prometheus.
pub fn translate(
    families: &[Family<'_>],
    target: &TargetSettings,
    scrape_time_ns: u64,
    state: &mut Staleness,
) -> Result<(Vec<ResourceMetrics>, Counts), LimitError> {
    let mut counts = Counts::default();
    let mut settled = Vec::new();
    let mut target_info: HashMap<(String, String), Vec<(String, String)>> = HashMap::new();
    for family in families {
        for sample in &family.samples {
            counts.scraped += 1;
            let mut labels = merge(&sample.labels, &sample.name, target);
            if !relabel::apply(&target.metric_relabel, &mut labels) {
                continue;
            }
            let Some(name) = labels.get("__name__").map(str::to_string) else { continue };
            counts.post_relabel += 1;
            check_limits(&labels, target)?;
            let job = labels.get("job").unwrap_or("").to_string();
            let instance = labels.get("instance").unwrap_or("").to_string();
            let scope = (
                labels.get("otel_scope_name").unwrap_or(SCOPE_NAME).to_string(),
                labels
                    .get("otel_scope_version")
                    .unwrap_or(if labels.get("otel_scope_name").is_some() { "" } else { env!("CARGO_PKG_VERSION") })
                    .to_string(),
            );
            let attributes: Vec<(String, String)> = labels
                .0
                .iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "__name__" | "job" | "instance" | "otel_scope_name" | "otel_scope_version")
                })
                .cloned()
                .collect();
            if name == "target_info" {
                target_info.entry((job, instance)).or_default().extend(attributes);
                continue;
            }
            let (base, kind, suffix) = match family.suffix_of(&name) {
                Some(suffix) => (name[..name.len() - suffix.len()].to_string(), family.kind, suffix.to_string()),
                None => (name.clone(), Kind::Unknown, String::new()),
            };
            let time_ns = match sample.timestamp_ms {
                Some(ms) if target.honor_timestamps => (ms.max(0) as u64).saturating_mul(1_000_000),
                _ => scrape_time_ns,
            };
            let resource = LabelSet(vec![("instance".into(), instance), ("job".into(), job)]);
            settled.push(Settled {
                resource,
                scope,
                base,
                kind,
                suffix,
                help: family.help.as_deref().unwrap_or("").to_string(),
                unit: family.unit.as_deref().unwrap_or("").to_string(),
                attributes,
                value: sample.value,
                time_ns,
            });
        }
    }
    if target.sample_limit > 0 && counts.post_relabel > target.sample_limit {
        return Err(LimitError::Samples(counts.post_relabel, target.sample_limit));
    }
    let mut out = Output::default();
    let mut seen: HashMap<u64, Series> = HashMap::with_capacity(state.last.len().max(settled.len()));
    for s in &settled {
        out.add(s, target, &mut seen);
    }
    counts.series_added = seen.keys().filter(|k| !state.last.contains_key(k)).count();
    // Series of the last scrape that are gone: a staleness marker each.
    let gone: Vec<Series> = state.last.iter().filter(|(k, _)| !seen.contains_key(k)).map(|(_, s)| s.clone()).collect();
    for series in &gone {
        out.stale(series, scrape_time_ns);
    }
    state.last = seen;
    Ok((out.finish(target, &target_info), counts))
}

/// Every series of the last scrape marked stale: the target failed or went away.
pub fn all_stale(target: &TargetSettings, scrape_time_ns: u64, state: &mut Staleness) -> Vec<ResourceMetrics> {
    let mut out = Output::default();
    for series in state.last.values() {
        out.stale(series, scrape_time_ns);
    }
    state.last.clear();
    out.finish(target, &HashMap::new())
}

fn check_limits(labels: &LabelSet, target: &TargetSettings) -> Result<(), LimitError> {
    // __name__ is not a label for label_limit, as in Prometheus.
    let count = labels.0.len().saturating_sub(1);
    if target.label_limit > 0 && count > target.label_limit {
        return Err(LimitError::Labels(count, target.label_limit));
    }
    for (name, value) in &labels.0 {
        if target.label_name_length_limit > 0 && name.len() > target.label_name_length_limit {
            return Err(LimitError::NameLength(name.clone(), target.label_name_length_limit));
        }
        if target.label_value_length_limit > 0 && value.len() > target.label_value_length_limit {
            return Err(LimitError::ValueLength(name.clone(), target.label_value_length_limit));
        }
    }
    Ok(())
}

fn kvs(pairs: &[(String, String)]) -> Vec<KeyValue> {
    pairs
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.clone(),
            value: Some(AnyValue { value: Some(Value::StringValue(v.clone())) }),
            ..Default::default()
        })
        .collect()
}

/// A histogram or summary point being assembled from its samples.
#[derive(Default)]
struct Composite {
    buckets: Vec<(f64, f64)>,
    quantiles: Vec<(f64, f64)>,
    sum: Option<f64>,
    count: Option<f64>,
    created_ns: u64,
    time_ns: u64,
    stale: bool,
}

/// A scope's name and version.
type ScopeKey = (String, String);
/// Where a metric is in the output: resource, scope, metric.
type At = (usize, usize, usize);
/// One point of a metric: where the metric is, and the point's attributes.
type PointKey = (usize, usize, usize, Vec<(String, String)>);
/// A resource's metrics, by scope.
type Scopes = Vec<(ScopeKey, Vec<Metric>)>;

/// Metrics by resource, scope and name, in the order they first appear.
#[derive(Default)]
struct Output {
    resources: Vec<(LabelSet, Scopes)>,
    metric_index: HashMap<(LabelSet, ScopeKey, String), At>,
    composites: HashMap<PointKey, Composite>,
    composite_order: Vec<PointKey>,
    /// `_created` samples: the start time of the series with these attributes.
    created: HashMap<PointKey, u64>,
}

impl Output {
    fn metric(
        &mut self,
        resource: &LabelSet,
        scope: &(String, String),
        name: &str,
        make: impl FnOnce() -> Metric,
    ) -> (usize, usize, usize) {
        let key = (resource.clone(), scope.clone(), name.to_string());
        if let Some(index) = self.metric_index.get(&key) {
            return *index;
        }
        let r = match self.resources.iter().position(|(l, _)| l == resource) {
            Some(r) => r,
            None => {
                self.resources.push((resource.clone(), Vec::new()));
                self.resources.len() - 1
            }
        };
        let scopes = &mut self.resources[r].1;
        let s = match scopes.iter().position(|(sc, _)| sc == scope) {
            Some(s) => s,
            None => {
                scopes.push((scope.clone(), Vec::new()));
                scopes.len() - 1
            }
        };
        scopes[s].1.push(make());
        let index = (r, s, scopes[s].1.len() - 1);
        self.metric_index.insert(key, index);
        index
    }

    fn at(&mut self, (r, s, m): (usize, usize, usize)) -> &mut Metric {
        &mut self.resources[r].1[s].1[m]
    }

    fn add(&mut self, s: &Settled, target: &TargetSettings, seen: &mut HashMap<u64, Series>) {
        let stale = s.value.to_bits() == STALE_NAN;
        match (s.kind, s.suffix.as_str()) {
            (Kind::Counter | Kind::Histogram | Kind::Summary, "_created") => {
                // The start time of its series, set on its point when all are in.
                let name = metric_name(s, target);
                let index = self.metric(&s.resource, &s.scope, &name, || empty_metric(s, &name));
                self.created.insert((index.0, index.1, index.2, s.attributes.clone()), (s.value.max(0.0) * 1e9) as u64);
            }
            (Kind::Counter, _) => {
                let name = metric_name(s, target);
                let index = self.metric(&s.resource, &s.scope, &name, || empty_metric(s, &name));
                seen.insert(series_key(s, &name), series(s, &name, PointKind::Counter));
                if let Some(Data::Sum(sum)) = &mut self.at(index).data {
                    sum.data_points.push(number_point(&s.attributes, s.value, s.time_ns, stale));
                }
            }
            (Kind::Histogram | Kind::Summary, suffix) => {
                let name = metric_name(s, target);
                let index = self.metric(&s.resource, &s.scope, &name, || empty_metric(s, &name));
                let mut attributes = s.attributes.clone();
                let bound = if s.kind == Kind::Histogram { "le" } else { "quantile" };
                let at = attributes.iter().position(|(k, _)| k == bound);
                let boundary = at.map(|i| attributes.remove(i).1);
                let kind = if s.kind == Kind::Histogram { PointKind::Histogram } else { PointKind::Summary };
                let series_settled = Settled { attributes: attributes.clone(), ..clone_settled(s) };
                seen.insert(series_key(&series_settled, &name), series(&series_settled, &name, kind));
                let key = (index.0, index.1, index.2, attributes);
                let point = self.composite(key);
                point.time_ns = point.time_ns.max(s.time_ns);
                point.stale |= stale;
                let bound_value = boundary.as_deref().and_then(|b| b.parse::<f64>().ok());
                match (suffix, bound_value) {
                    ("_bucket", Some(le)) => point.buckets.push((le, s.value)),
                    ("", Some(q)) if s.kind == Kind::Summary => point.quantiles.push((q, s.value)),
                    ("_sum", _) => point.sum = Some(s.value),
                    ("_count", _) => point.count = Some(s.value),
                    _ => {}
                }
            }
            _ => {
                // Gauges, unknown, info, stateset and gauge histograms: a gauge per sample name.
                let name = if s.suffix.is_empty() { s.base.clone() } else { format!("{}{}", s.base, s.suffix) };
                let name = if target.trim_metric_suffixes { trim_unit(&name, &s.unit) } else { name };
                let index = self.metric(&s.resource, &s.scope, &name, || Metric {
                    name: name.clone(),
                    description: s.help.clone(),
                    unit: s.unit.clone(),
                    data: Some(Data::Gauge(Gauge { data_points: Vec::new() })),
                    ..Default::default()
                });
                seen.insert(series_key(s, &name), series(s, &name, PointKind::Gauge));
                if let Some(Data::Gauge(gauge)) = &mut self.at(index).data {
                    gauge.data_points.push(number_point(&s.attributes, s.value, s.time_ns, stale));
                }
            }
        }
    }

    fn composite(&mut self, key: (usize, usize, usize, Vec<(String, String)>)) -> &mut Composite {
        if !self.composites.contains_key(&key) {
            self.composite_order.push(key.clone());
        }
        self.composites.entry(key).or_default()
    }

    /// A staleness marker for a series that is gone.
    fn stale(&mut self, series: &Series, time_ns: u64) {
        let make = || Metric {
            name: series.name.clone(),
            data: Some(match series.kind {
                PointKind::Gauge => Data::Gauge(Gauge { data_points: Vec::new() }),
                PointKind::Counter => Data::Sum(Sum {
                    data_points: Vec::new(),
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                }),
                PointKind::Histogram => Data::Histogram(Histogram {
                    data_points: Vec::new(),
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                }),
                PointKind::Summary => Data::Summary(Summary { data_points: Vec::new() }),
            }),
            ..Default::default()
        };
        let index = self.metric(&series.resource, &series.scope, &series.name, make);
        let attributes = kvs(&series.attributes);
        match &mut self.at(index).data {
            Some(Data::Gauge(g)) => g.data_points.push(number_point(&series.attributes, 0.0, time_ns, true)),
            Some(Data::Sum(s)) => s.data_points.push(number_point(&series.attributes, 0.0, time_ns, true)),
            Some(Data::Histogram(h)) => h.data_points.push(HistogramDataPoint {
                attributes,
                time_unix_nano: time_ns,
                flags: NO_RECORDED_VALUE,
                ..Default::default()
            }),
            Some(Data::Summary(s)) => s.data_points.push(SummaryDataPoint {
                attributes,
                time_unix_nano: time_ns,
                flags: NO_RECORDED_VALUE,
                ..Default::default()
            }),
            _ => {}
        }
    }

    fn finish(
        mut self,
        target: &TargetSettings,
        target_info: &HashMap<(String, String), Vec<(String, String)>>,
    ) -> Vec<ResourceMetrics> {
        for ((r, sc, m, attributes), created) in std::mem::take(&mut self.created) {
            let pairs: Vec<(String, String)> = attributes;
            if let Some(Data::Sum(sum)) = &mut self.resources[r].1[sc].1[m].data {
                for p in sum.data_points.iter_mut().filter(|p| same(&p.attributes, &pairs)) {
                    p.start_time_unix_nano = created;
                }
            } else if let Some(point) = self.composites.get_mut(&(r, sc, m, pairs)) {
                point.created_ns = created;
            }
        }
        for key in std::mem::take(&mut self.composite_order) {
            let Some(mut point) = self.composites.remove(&key) else { continue };
            let attributes = kvs(&key.3);
            let flags = if point.stale { NO_RECORDED_VALUE } else { 0 };
            match &mut self.resources[key.0].1[key.1].1[key.2].data {
                Some(Data::Histogram(h)) => {
                    point.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                    let mut bounds = Vec::new();
                    let mut counts = Vec::new();
                    let mut previous = 0.0;
                    for (le, cumulative) in &point.buckets {
                        if le.is_finite() {
                            bounds.push(*le);
                        }
                        counts.push((cumulative - previous).max(0.0) as u64);
                        previous = cumulative.max(previous);
                    }
                    let count = point.count.unwrap_or(previous);
                    if point.buckets.last().is_none_or(|(le, _)| le.is_finite()) {
                        // No +Inf bucket given: the rest of the count is above the last bound.
                        counts.push((count - previous).max(0.0) as u64);
                    }
                    h.data_points.push(HistogramDataPoint {
                        attributes,
                        start_time_unix_nano: point.created_ns,
                        time_unix_nano: point.time_ns,
                        count: count.max(0.0) as u64,
                        sum: point.sum,
                        bucket_counts: counts,
                        explicit_bounds: bounds,
                        flags,
                        ..Default::default()
                    });
                }
                Some(Data::Summary(s)) => {
                    point.quantiles.sort_by(|a, b| a.0.total_cmp(&b.0));
                    s.data_points.push(SummaryDataPoint {
                        attributes,
                        start_time_unix_nano: point.created_ns,
                        time_unix_nano: point.time_ns,
                        count: point.count.unwrap_or(0.0).max(0.0) as u64,
                        sum: point.sum.unwrap_or(0.0),
                        quantile_values: point
                            .quantiles
                            .iter()
                            .map(|(quantile, value)| ValueAtQuantile { quantile: *quantile, value: *value })
                            .collect(),
                        flags,
                    });
                }
                _ => {}
            }
        }
        self.resources
            .into_iter()
            .map(|(resource, scopes)| {
                let job = resource.get("job").unwrap_or("").to_string();
                let instance = resource.get("instance").unwrap_or("").to_string();
                let mut attributes = resource_attributes(&job, &instance, &target.scheme);
                if let Some(extra) = target_info.get(&(job, instance)) {
                    for kv in kvs(extra) {
                        if !attributes.iter().any(|a| a.key == kv.key) {
                            attributes.push(kv);
                        }
                    }
                }
                ResourceMetrics {
                    resource: Some(Resource { attributes, ..Default::default() }),
                    scope_metrics: scopes
                        .into_iter()
                        .map(|((name, version), metrics)| ScopeMetrics {
                            scope: Some(InstrumentationScope { name, version, ..Default::default() }),
                            metrics,
                            schema_url: String::new(),
                        })
                        .collect(),
                    schema_url: String::new(),
                }
            })
            .collect()
    }
}

/// The resource of a target: upstream's `service.name`, `service.instance.id`,
/// `server.address`, `server.port` and `url.scheme`.
pub fn resource_attributes(job: &str, instance: &str, scheme: &str) -> Vec<KeyValue> {
    let mut pairs =
        vec![("service.name".to_string(), job.to_string()), ("service.instance.id".into(), instance.to_string())];
    let (host, port) = match instance.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !port.is_empty() => {
            (host.trim_start_matches('[').trim_end_matches(']').to_string(), port.to_string())
        }
        _ => (instance.to_string(), String::new()),
    };
    pairs.push(("server.address".into(), host));
    if !port.is_empty() {
        pairs.push(("server.port".into(), port));
    }
    pairs.push(("url.scheme".into(), scheme.to_string()));
    kvs(&pairs)
}

fn clone_settled(s: &Settled) -> Settled {
    Settled {
        resource: s.resource.clone(),
        scope: s.scope.clone(),
        base: s.base.clone(),
        kind: s.kind,
        suffix: s.suffix.clone(),
        help: String::new(),
        unit: String::new(),
        attributes: s.attributes.clone(),
        value: s.value,
        time_ns: s.time_ns,
    }
}

fn series_key(s: &Settled, name: &str) -> u64 {
    hash_of(&(&s.resource, &s.scope, name, &s.attributes))
}

fn series(s: &Settled, name: &str, kind: PointKind) -> Series {
    Series {
        resource: s.resource.clone(),
        scope: s.scope.clone(),
        name: name.to_string(),
        kind,
        attributes: s.attributes.clone(),
    }
}

fn same(kvs: &[KeyValue], pairs: &[(String, String)]) -> bool {
    kvs.len() == pairs.len()
        && kvs.iter().zip(pairs).all(|(kv, (k, v))| {
            kv.key == *k
                && matches!(kv.value.as_ref().and_then(|x| x.value.as_ref()), Some(Value::StringValue(s)) if s == v)
        })
}

fn number_point(attributes: &[(String, String)], value: f64, time_ns: u64, stale: bool) -> NumberDataPoint {
    NumberDataPoint {
        attributes: kvs(attributes),
        time_unix_nano: time_ns,
        value: (!stale).then_some(number_data_point::Value::AsDouble(value)),
        flags: if stale { NO_RECORDED_VALUE } else { 0 },
        ..Default::default()
    }
}

/// The OTLP name of a counter, histogram or summary family's metric.
fn metric_name(s: &Settled, target: &TargetSettings) -> String {
    let name = match s.kind {
        // Counters keep `_total`, as upstream names them (the page's sample name).
        Kind::Counter => format!("{}_total", s.base.strip_suffix("_total").unwrap_or(&s.base)),
        _ => s.base.clone(),
    };
    if !target.trim_metric_suffixes {
        return name;
    }
    let name = name.strip_suffix("_total").map(str::to_string).unwrap_or(name);
    trim_unit(&name, &s.unit)
}

fn trim_unit(name: &str, unit: &str) -> String {
    if unit.is_empty() {
        return name.to_string();
    }
    name.strip_suffix(&format!("_{unit}")).unwrap_or(name).to_string()
}

fn empty_metric(s: &Settled, name: &str) -> Metric {
    let data = match s.kind {
        Kind::Counter => Data::Sum(Sum {
            data_points: Vec::new(),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        }),
        Kind::Histogram => Data::Histogram(Histogram {
            data_points: Vec::new(),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        }),
        _ => Data::Summary(Summary { data_points: Vec::new() }),
    };
    Metric {
        name: name.to_string(),
        description: s.help.clone(),
        unit: s.unit.clone(),
        data: Some(data),
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "translate_tests.rs"]
mod tests;

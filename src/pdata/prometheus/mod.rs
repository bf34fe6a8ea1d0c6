//! OTLP metrics as Prometheus series, one implementation for the remote-write and
//! the pull exporters: names and labels per the OpenTelemetry–Prometheus
//! compatibility specification, `job`/`instance` from the resource, `target_info`,
//! scope labels, and each point type as Prometheus writes it.

pub mod delta;
pub mod naming;
pub mod native;

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, DataPointFlags, Metric, metric::Data, number_data_point,
};

use delta::{DeltaState, HistogramTotal};
use naming::{NameKind, label_name, metric_name};

/// Prometheus' staleness marker: a point with the "no recorded value" flag.
pub const STALE_NAN: u64 = 0x7ff0000000000002;

/// How to translate, from the exporter's options.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub namespace: String,
    pub add_metric_suffixes: bool,
    /// Every resource attribute becomes a label too.
    pub resource_to_telemetry: bool,
    pub target_info: bool,
    /// Added to every series that does not have the label already.
    pub external_labels: Vec<(String, String)>,
}

/// One series: sorted labels (with `__name__`) and its samples (value, ms).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<(f64, i64)>,
    /// Native histogram samples (exponential histograms).
    pub histograms: Vec<native::NativeHistogram>,
    /// Its family in [`Translation::metadata`].
    pub family: usize,
}

/// A metric family's type, help and unit, for remote write's metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Metadata {
    /// Remote write's enum: COUNTER 1, GAUGE 2, HISTOGRAM 3, SUMMARY 5.
    pub kind: i32,
    pub family: String,
    pub help: String,
    pub unit: String,
}

/// Why data points were not translated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Untranslated {
    /// A new delta series past [`delta::MAX_DELTA_SERIES`].
    DeltaSeriesLimit,
    /// An exponential histogram with a scale below -4: no native histogram schema.
    ExponentialScale,
    /// Delta exponential histograms are not accumulated.
    DeltaExponentialHistogram,
    /// The format has no native histograms (the text exposition).
    NativeHistogramUnsupported,
    /// The metric's name translates to nothing (no ASCII letters or digits, no unit).
    InvalidName,
}

impl Untranslated {
    pub fn as_str(self) -> &'static str {
        match self {
            Untranslated::DeltaSeriesLimit => "delta_series_limit",
            Untranslated::ExponentialScale => "exponential_histogram_scale",
            Untranslated::DeltaExponentialHistogram => "delta_exponential_histogram",
            Untranslated::NativeHistogramUnsupported => "native_histogram_unsupported",
            Untranslated::InvalidName => "invalid_name",
        }
    }
}

/// The series of one request, and what could not be translated.
#[derive(Debug, Default)]
pub struct Translation {
    pub series: Vec<Series>,
    index: HashMap<Vec<(String, String)>, usize>,
    pub metadata: Vec<Metadata>,
    /// The family series are being added to.
    current: usize,
    /// Data points not translated: how many, why, and which metric.
    pub dropped: Vec<(u64, Untranslated, String)>,
}

impl Translation {
    fn push(&mut self, labels: Vec<(String, String)>, value: f64, timestamp_ms: i64) {
        match self.index.get(&labels) {
            Some(&i) => self.series[i].samples.push((value, timestamp_ms)),
            None => {
                self.index.insert(labels.clone(), self.series.len());
                let family = self.current;
                self.series.push(Series {
                    labels,
                    samples: vec![(value, timestamp_ms)],
                    histograms: Vec::new(),
                    family,
                });
            }
        }
    }

    fn describe(&mut self, metric: &Metric, family: &str, kind: i32) {
        self.family(family, kind, &metric.description, &metric.unit);
    }

    /// Makes `family` the one series are added to.
    fn family(&mut self, family: &str, kind: i32, help: &str, unit: &str) {
        self.current = match self.metadata.iter().position(|m| m.family == family) {
            Some(i) => i,
            None => {
                self.metadata.push(Metadata {
                    kind,
                    family: family.to_string(),
                    help: help.to_string(),
                    unit: unit.to_string(),
                });
                self.metadata.len() - 1
            }
        };
    }

    fn push_histogram(&mut self, labels: Vec<(String, String)>, histogram: native::NativeHistogram) {
        match self.index.get(&labels) {
            Some(&i) => self.series[i].histograms.push(histogram),
            None => {
                self.index.insert(labels.clone(), self.series.len());
                let family = self.current;
                self.series.push(Series { labels, samples: Vec::new(), histograms: vec![histogram], family });
            }
        }
    }

    /// Samples of each series in time order, as remote write requires.
    pub fn sort_samples(&mut self) {
        for series in &mut self.series {
            series.samples.sort_by_key(|(_, t)| *t);
            series.histograms.sort_by_key(|h| h.timestamp_ms);
        }
    }
}

/// The resource attributes that make `job` and `instance`, not repeated in `target_info`.
const IDENTIFYING: [&str; 3] = ["service.name", "service.namespace", "service.instance.id"];

pub fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(Value::BytesValue(b)) => crate::pdata::json::hex(b),
        Some(Value::ArrayValue(_) | Value::KvlistValue(_)) => {
            // As upstream: the JSON form.
            value.map(crate::pdata::json::any_value_json).unwrap_or_default()
        }
        Some(Value::StringValueStrindex(_)) | None => String::new(),
    }
}

/// Attributes as labels: sanitised names, sorted by original key, values of keys
/// that collide joined with `;`.
fn attribute_labels(attributes: &[&KeyValue]) -> Vec<(String, String)> {
    let mut sorted: Vec<&&KeyValue> = attributes.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut labels: Vec<(String, String)> = Vec::with_capacity(sorted.len());
    for kv in sorted {
        let name = label_name(&kv.key);
        if name.is_empty() {
            continue;
        }
        let value = text(kv.value.as_ref());
        match labels.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) if *existing != value => {
                existing.push(';');
                existing.push_str(&value);
            }
            Some(_) => {}
            None => labels.push((name, value)),
        }
    }
    labels
}

fn set(labels: &mut Vec<(String, String)>, name: &str, value: String) {
    match labels.iter_mut().find(|(n, _)| n == name) {
        Some((_, v)) => *v = value,
        None => labels.push((name.to_string(), value)),
    }
}

fn ms(nanos: u64) -> i64 {
    (nanos / 1_000_000) as i64
}

/// A float for Prometheus' `le` and `quantile` labels, as Go's `FormatFloat(f, 'f', -1, 64)`.
pub fn format_float(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if value.is_nan() {
        return "NaN".into();
    }
    // Like Go's 'f' with the shortest precision: no exponent, no trailing ".0".
    format!("{value}")
}

/// Translates a request; delta sums and histograms are added to `deltas` and written
/// as their running totals.
pub fn translate(
    request: &ExportMetricsServiceRequest,
    options: &Options,
    deltas: &mut DeltaState,
    out: &mut Translation,
) {
    deltas.expire();
    for resource_metrics in &request.resource_metrics {
        let resource: &[KeyValue] = resource_metrics.resource.as_ref().map(|r| r.attributes.as_slice()).unwrap_or(&[]);
        let find = |key: &str| resource.iter().find(|kv| kv.key == key).map(|kv| text(kv.value.as_ref()));
        let job = match (find("service.namespace"), find("service.name")) {
            (Some(ns), Some(name)) if !ns.is_empty() => Some(format!("{ns}/{name}")),
            (_, name) => name,
        };
        let instance = find("service.instance.id");
        // Labels every series of this resource gets.
        let mut common: Vec<(String, String)> = Vec::new();
        if options.resource_to_telemetry {
            common = attribute_labels(&resource.iter().collect::<Vec<_>>());
        }
        let mut newest = 0u64;
        for scope_metrics in &resource_metrics.scope_metrics {
            let mut scope_labels = common.clone();
            if let Some(scope) = &scope_metrics.scope {
                if !scope.name.is_empty() {
                    set(&mut scope_labels, "otel_scope_name", scope.name.clone());
                }
                if !scope.version.is_empty() {
                    set(&mut scope_labels, "otel_scope_version", scope.version.clone());
                }
            }
            for metric in &scope_metrics.metrics {
                let context = Context { options, job: &job, instance: &instance, base: &scope_labels };
                newest = newest.max(metric_points(metric, &context, deltas, out));
            }
        }
        let info: Vec<&KeyValue> = resource.iter().filter(|kv| !IDENTIFYING.contains(&kv.key.as_str())).collect();
        if options.target_info && newest > 0 && !info.is_empty() && (job.is_some() || instance.is_some()) {
            let mut labels = attribute_labels(&info);
            let context = Context { options, job: &job, instance: &instance, base: &[] };
            let name = metric_name("target_info", "", NameKind::Other, &options.namespace, false);
            context.finish(&mut labels, &name);
            out.family(&name, 2, "Target metadata", "");
            out.push(labels, 1.0, ms(newest));
        }
    }
}

struct Context<'a> {
    options: &'a Options,
    job: &'a Option<String>,
    instance: &'a Option<String>,
    base: &'a [(String, String)],
}

impl Context<'_> {
    /// A point's labels: its attributes over the resource's, then job, instance,
    /// external labels where absent, and the name.
    fn labels(&self, attributes: &[KeyValue], name: &str) -> Vec<(String, String)> {
        let mut labels = self.base.to_vec();
        for (name, value) in attribute_labels(&attributes.iter().collect::<Vec<_>>()) {
            set(&mut labels, &name, value);
        }
        self.finish(&mut labels, name);
        labels
    }

    fn finish(&self, labels: &mut Vec<(String, String)>, name: &str) {
        if let Some(job) = self.job {
            set(labels, "job", job.clone());
        }
        if let Some(instance) = self.instance {
            set(labels, "instance", instance.clone());
        }
        for (key, value) in &self.options.external_labels {
            if !labels.iter().any(|(n, _)| n == key) {
                labels.push((key.clone(), value.clone()));
            }
        }
        set(labels, "__name__", name.to_string());
        // Empty values mean "no label" in Prometheus.
        labels.retain(|(_, v)| !v.is_empty());
        labels.sort();
    }
}

/// The labels of a point's other series: another name, and `le` or `quantile`.
fn renamed_with(labels: &[(String, String)], name: &str, extra: Option<(&str, String)>) -> Vec<(String, String)> {
    let mut labels = labels.to_vec();
    if let Some((key, value)) = extra {
        set(&mut labels, key, value);
    }
    set(&mut labels, "__name__", name.to_string());
    labels.sort();
    labels
}

fn renamed(labels: &[(String, String)], name: &str) -> Vec<(String, String)> {
    renamed_with(labels, name, None)
}

fn stale(flags: u32) -> bool {
    flags & DataPointFlags::NoRecordedValueMask as u32 != 0
}

fn value_or_stale(value: f64, flags: u32) -> f64 {
    if stale(flags) { f64::from_bits(STALE_NAN) } else { value }
}

/// Translates one metric's points; returns the newest point time (ns).
fn metric_points(metric: &Metric, context: &Context<'_>, deltas: &mut DeltaState, out: &mut Translation) -> u64 {
    let options = context.options;
    // A name with nothing Prometheus can write is refused, as upstream ("resulted in
    // empty name"), not sent as a series without `__name__`.
    if metric_name(&metric.name, "", NameKind::Other, "", options.add_metric_suffixes).trim_matches('_').is_empty() {
        out.dropped.push((point_count(metric), Untranslated::InvalidName, metric.name.clone()));
        return 0;
    }
    let name = |kind| metric_name(&metric.name, &metric.unit, kind, &options.namespace, options.add_metric_suffixes);
    let suffixed = |base: &str, suffix: &str| format!("{base}_{suffix}");
    let mut newest = 0;
    let delta = |temporality: i32| temporality == AggregationTemporality::Delta as i32;
    match &metric.data {
        Some(Data::Gauge(gauge)) => {
            let name = name(NameKind::Gauge);
            out.describe(metric, &name, 2);
            for point in &gauge.data_points {
                newest = newest.max(point.time_unix_nano);
                let labels = context.labels(&point.attributes, &name);
                out.push(labels, value_or_stale(number(&point.value), point.flags), ms(point.time_unix_nano));
            }
        }
        Some(Data::Sum(sum)) => {
            let is_delta = delta(sum.aggregation_temporality);
            // Non-monotonic sums are gauges to Prometheus, but never get `_ratio` (upstream
            // adds it to gauges only).
            let name = name(if sum.is_monotonic { NameKind::Counter } else { NameKind::Other });
            out.describe(metric, &name, if sum.is_monotonic { 1 } else { 2 });
            let mut over_limit = 0;
            for point in &sum.data_points {
                newest = newest.max(point.time_unix_nano);
                let labels = context.labels(&point.attributes, &name);
                let t = ms(point.time_unix_nano);
                if stale(point.flags) {
                    out.push(labels, f64::from_bits(STALE_NAN), t);
                    continue;
                }
                let (value, t) = if is_delta {
                    let window = (point.start_time_unix_nano, point.time_unix_nano);
                    match deltas.sum(&labels, window, number(&point.value), t) {
                        Some(total) => total,
                        None => {
                            over_limit += 1;
                            continue;
                        }
                    }
                } else {
                    (number(&point.value), t)
                };
                out.push(labels, value, t);
            }
            if over_limit > 0 {
                out.dropped.push((over_limit, Untranslated::DeltaSeriesLimit, metric.name.clone()));
            }
        }
        Some(Data::Histogram(histogram)) => {
            let is_delta = delta(histogram.aggregation_temporality);
            let base = name(NameKind::Other);
            out.describe(metric, &base, 3);
            let mut over_limit = 0;
            for point in &histogram.data_points {
                newest = newest.max(point.time_unix_nano);
                let labels = context.labels(&point.attributes, &base);
                let mut total = HistogramTotal {
                    bounds: point.explicit_bounds.clone(),
                    counts: point.bucket_counts.clone(),
                    count: point.count,
                    sum: point.sum.unwrap_or(0.0),
                };
                let mut t = ms(point.time_unix_nano);
                if is_delta && !stale(point.flags) {
                    let window = (point.start_time_unix_nano, point.time_unix_nano);
                    match deltas.histogram(&labels, window, &total, t) {
                        Some((accumulated, at)) => (total, t) = (accumulated, at),
                        None => {
                            over_limit += 1;
                            continue;
                        }
                    }
                }
                histogram_series(out, &labels, &base, &total, point.sum.is_some(), point.flags, t);
            }
            if over_limit > 0 {
                out.dropped.push((over_limit, Untranslated::DeltaSeriesLimit, metric.name.clone()));
            }
        }
        Some(Data::Summary(summary)) => {
            let base = name(NameKind::Other);
            out.describe(metric, &base, 5);
            for point in &summary.data_points {
                newest = newest.max(point.time_unix_nano);
                let t = ms(point.time_unix_nano);
                let labels = context.labels(&point.attributes, &base);
                let value = |v: f64| value_or_stale(v, point.flags);
                for quantile in &point.quantile_values {
                    let q = renamed_with(&labels, &base, Some(("quantile", format_float(quantile.quantile))));
                    out.push(q, value(quantile.value), t);
                }
                out.push(renamed(&labels, &suffixed(&base, "sum")), value(point.sum), t);
                out.push(renamed(&labels, &suffixed(&base, "count")), value(point.count as f64), t);
            }
        }
        Some(Data::ExponentialHistogram(histogram)) => {
            if delta(histogram.aggregation_temporality) {
                let points = histogram.data_points.len() as u64;
                out.dropped.push((points, Untranslated::DeltaExponentialHistogram, metric.name.clone()));
                return 0;
            }
            let base = name(NameKind::Other);
            out.describe(metric, &base, 3);
            let mut unconvertible = 0;
            for point in &histogram.data_points {
                newest = newest.max(point.time_unix_nano);
                let labels = context.labels(&point.attributes, &base);
                match native::convert(point, ms(point.time_unix_nano)) {
                    Ok(mut native) => {
                        if stale(point.flags) {
                            native.sum = f64::from_bits(STALE_NAN);
                            native.count = STALE_NAN;
                        }
                        out.push_histogram(labels, native);
                    }
                    Err(_) => unconvertible += 1,
                }
            }
            if unconvertible > 0 {
                out.dropped.push((unconvertible, Untranslated::ExponentialScale, metric.name.clone()));
            }
        }
        None => {}
    }
    newest
}

/// `_bucket{le}` (cumulative over the bounds, `+Inf` = count), `_sum`, `_count`.
fn histogram_series(
    out: &mut Translation,
    labels: &[(String, String)],
    base: &str,
    total: &HistogramTotal,
    has_sum: bool,
    flags: u32,
    t: i64,
) {
    let value = |v: f64| value_or_stale(v, flags);
    let bucket = format!("{base}_bucket");
    let mut cumulative = 0u64;
    for (i, bound) in total.bounds.iter().enumerate() {
        cumulative = cumulative.saturating_add(total.counts.get(i).copied().unwrap_or(0));
        out.push(renamed_with(labels, &bucket, Some(("le", format_float(*bound)))), value(cumulative as f64), t);
    }
    out.push(renamed_with(labels, &bucket, Some(("le", "+Inf".into()))), value(total.count as f64), t);
    if has_sum {
        out.push(renamed(labels, &format!("{base}_sum")), value(total.sum), t);
    }
    out.push(renamed(labels, &format!("{base}_count")), value(total.count as f64), t);
}

fn point_count(metric: &Metric) -> u64 {
    (match &metric.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }) as u64
}

fn number(value: &Option<number_data_point::Value>) -> f64 {
    match value {
        Some(number_data_point::Value::AsDouble(d)) => *d,
        Some(number_data_point::Value::AsInt(i)) => *i as f64,
        None => 0.0,
    }
}

#[cfg(test)]
mod tests;

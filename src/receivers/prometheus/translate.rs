//! One scrape of one target as OTLP, as upstream's receiver translates it: counters
//! become cumulative monotonic sums (with no start time unless the page gives
//! `_created`; the `metricstarttime` processor sets it), gauges and unknown types
//! gauges, classic histograms and summaries their OTLP kinds; `job` and `instance`
//! become `service.name` and `service.instance.id`, `target_info` the resource's
//! attributes, `otel_scope_name`/`otel_scope_version` the scope. A series that was
//! in the last scrape and is gone gets a point with no recorded value (Prometheus'
//! staleness marker); so does every series of a target whose scrape failed.
//!
//! The common case is fast: a sample whose labels do not clash with the target's and
//! that no metric relabeling touches is read where the page has it (no label set is
//! built), its series is found by a hash of borrowed text, and a series already seen
//! is marked seen in place. Only what goes into OTLP is allocated.

use std::borrow::Cow;
/// Maps keyed by what is already a hash or small: foldhash, not SipHash.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::hash::{BuildHasher, Hasher};

use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum, Summary, SummaryDataPoint, metric::Data, number_data_point, summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::relabel::{self, LabelSet, Relabel};
use super::text::{Family, Kind, Sample};

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
    /// `global.external_labels`: on every series that has no label of that name.
    pub external_labels: Vec<(String, String)>,
    pub sample_limit: usize,
    pub label_limit: usize,
    pub label_name_length_limit: usize,
    pub label_value_length_limit: usize,
}

impl TargetSettings {
    /// A target as a job with Prometheus' defaults scrapes it: timestamps honoured,
    /// nothing else, no relabeling, no limits.
    pub fn new(labels: LabelSet, scheme: &str) -> TargetSettings {
        TargetSettings {
            labels,
            scheme: scheme.to_string(),
            honor_labels: false,
            honor_timestamps: true,
            trim_metric_suffixes: false,
            metric_relabel: Vec::new(),
            external_labels: Vec::new(),
            sample_limit: 0,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
        }
    }
}

/// A series, for staleness: where it was and what kind of point it takes.
#[derive(Clone, Debug)]
struct Series {
    job: String,
    instance: String,
    scope: (String, String),
    name: String,
    kind: PointKind,
    attributes: Vec<KeyValue>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PointKind {
    Gauge,
    Counter,
    Histogram,
    Summary,
}

/// The per-target state kept between scrapes: the series of the last good one, each
/// with the number of the scrape that last saw it (marked in place, never moved).
#[derive(Default)]
pub struct Staleness {
    last: HashMap<u64, (Series, u64)>,
    scrape: u64,
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

/// Labels that are not point attributes.
fn special(name: &str) -> bool {
    matches!(name, "__name__" | "job" | "instance" | "otel_scope_name" | "otel_scope_version")
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(Value::StringValue(value.to_string())) }),
        ..Default::default()
    }
}

/// One sample's labels: as the page has them (the target's are added on the fly), or
/// a full label set when relabeling or a clash with the target's labels made one.
enum Labels<'p> {
    Page(&'p [(Cow<'p, str>, Cow<'p, str>)]),
    Owned(LabelSet),
}

struct Prepared<'p> {
    name: Cow<'p, str>,
    labels: Labels<'p>,
}

impl Prepared<'_> {
    fn get<'s>(&'s self, target: &'s TargetSettings, key: &str) -> Option<&'s str> {
        match &self.labels {
            Labels::Page(page) => {
                page.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_ref()).or_else(|| target.labels.get(key))
            }
            Labels::Owned(set) => set.get(key),
        }
    }

    /// Every attribute (not job, instance, scope or `skip`), in order, then the
    /// external labels the series has no label for.
    fn each(&self, target: &TargetSettings, skip: &str, mut f: impl FnMut(&str, &str)) {
        match &self.labels {
            Labels::Page(page) => {
                for (k, v) in page.iter().filter(|(k, _)| k != skip && !special(k)) {
                    f(k, v);
                }
                for (k, v) in target.labels.0.iter().filter(|(k, _)| !special(k)) {
                    f(k, v);
                }
            }
            Labels::Owned(set) => {
                for (k, v) in set.0.iter().filter(|(k, _)| k != skip && !special(k)) {
                    f(k, v);
                }
            }
        }
        for (k, v) in &target.external_labels {
            if k != skip && !special(k) && self.get(target, k).is_none() {
                f(k, v);
            }
        }
    }

    fn attributes(&self, target: &TargetSettings, skip: &str) -> Vec<KeyValue> {
        let mut out = Vec::with_capacity(8);
        self.each(target, skip, |k, v| out.push(kv(k, v)));
        out
    }

    /// The series' identity within a metric: a hash of its attributes.
    fn attributes_hash(&self, target: &TargetSettings, skip: &str) -> u64 {
        let mut h = foldhash::fast::FixedState::with_seed(0x6f63_656c).build_hasher();
        self.each(target, skip, |k, v| {
            h.write(k.as_bytes());
            h.write_u8(0xff);
            h.write(v.as_bytes());
            h.write_u8(0xfe);
        });
        h.finish()
    }

    fn check_limits(&self, target: &TargetSettings) -> Result<(), LimitError> {
        if target.label_limit == 0 && target.label_name_length_limit == 0 && target.label_value_length_limit == 0 {
            return Ok(());
        }
        let mut count = 0;
        let mut error = None;
        let mut check = |k: &str, v: &str| {
            count += 1;
            if error.is_some() {
                return;
            }
            if target.label_name_length_limit > 0 && k.len() > target.label_name_length_limit {
                error = Some(LimitError::NameLength(k.to_string(), target.label_name_length_limit));
            } else if target.label_value_length_limit > 0 && v.len() > target.label_value_length_limit {
                error = Some(LimitError::ValueLength(k.to_string(), target.label_value_length_limit));
            }
        };
        match &self.labels {
            Labels::Page(page) => {
                for (k, v) in page.iter() {
                    check(k, v);
                }
                for (k, v) in &target.labels.0 {
                    check(k, v);
                }
            }
            Labels::Owned(set) => {
                for (k, v) in set.0.iter().filter(|(k, _)| k != "__name__") {
                    check(k, v);
                }
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
        if target.label_limit > 0 && count > target.label_limit {
            return Err(LimitError::Labels(count, target.label_limit));
        }
        Ok(())
    }
}

/// The page's labels and the target's merged as Prometheus does, with `__name__`.
fn merge(sample: &Sample<'_>, target: &TargetSettings) -> LabelSet {
    let mut labels = LabelSet::from_pairs(
        sample
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain(std::iter::once(("__name__".into(), sample.name.to_string()))),
    );
    for (key, value) in &target.labels.0 {
        match labels.get(key).map(str::to_string) {
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

/// A sample's labels and name after the target's and metric relabeling; none when dropped.
fn prepare<'p>(sample: &'p Sample<'p>, target: &TargetSettings) -> Option<Prepared<'p>> {
    let clash = sample.labels.iter().any(|(k, _)| target.labels.get(k).is_some() || k.starts_with("otel_scope_"));
    if target.metric_relabel.is_empty() && !clash {
        return Some(Prepared { name: Cow::Borrowed(sample.name.as_ref()), labels: Labels::Page(&sample.labels) });
    }
    let mut labels = merge(sample, target);
    if !relabel::apply(&target.metric_relabel, &mut labels) {
        return None;
    }
    let name = labels.get("__name__")?.to_string();
    Some(Prepared { name: Cow::Owned(name), labels: Labels::Owned(labels) })
}

/// Translates one successful scrape; on a limit the scrape fails whole, as in Prometheus.
pub fn translate(
    families: &[Family<'_>],
    target: &TargetSettings,
    scrape_time_ns: u64,
    state: &mut Staleness,
) -> Result<(Vec<ResourceMetrics>, Counts), LimitError> {
    let mut counts = Counts::default();
    let mut prepared: Vec<Vec<Option<Prepared<'_>>>> = Vec::with_capacity(families.len());
    for family in families {
        let mut samples = Vec::with_capacity(family.samples.len());
        for sample in &family.samples {
            counts.scraped += 1;
            let p = prepare(sample, target);
            if let Some(p) = &p {
                counts.post_relabel += 1;
                p.check_limits(target)?;
            }
            samples.push(p);
        }
        prepared.push(samples);
    }
    if target.sample_limit > 0 && counts.post_relabel > target.sample_limit {
        return Err(LimitError::Samples(counts.post_relabel, target.sample_limit));
    }
    let mut out = Output::new(target);
    state.scrape += 1;
    for (family, samples) in families.iter().zip(&prepared) {
        for (sample, p) in family.samples.iter().zip(samples) {
            if let Some(p) = p {
                out.add(family, sample, p, target, scrape_time_ns, state, &mut counts);
            }
        }
    }
    // Series of the last scrape that are gone: a staleness marker each.
    let now = state.scrape;
    for (series, _) in state.last.values().filter(|(_, at)| *at != now) {
        out.stale(series, scrape_time_ns);
    }
    state.last.retain(|_, (_, at)| *at == now);
    Ok((out.finish(target), counts))
}

/// Every series of the last scrape marked stale: the target failed or went away.
pub fn all_stale(target: &TargetSettings, scrape_time_ns: u64, state: &mut Staleness) -> Vec<ResourceMetrics> {
    let mut out = Output::new(target);
    for (series, _) in state.last.values() {
        out.stale(series, scrape_time_ns);
    }
    state.last.clear();
    out.finish(target)
}

/// A histogram or summary point being assembled from its samples.
struct Composite {
    at: At,
    attributes: Vec<KeyValue>,
    buckets: Vec<(f64, f64)>,
    quantiles: Vec<(f64, f64)>,
    sum: Option<f64>,
    count: Option<f64>,
    created_ns: u64,
    time_ns: u64,
    stale: bool,
}

/// Where a metric is in the output: resource, scope, metric.
type At = (usize, usize, usize);

/// A resource (by job and instance) and its scopes' metrics.
struct ResourceOut {
    job: String,
    instance: String,
    extra: Vec<KeyValue>,
    scopes: Vec<((String, String), Vec<Metric>)>,
}

/// Metrics by resource, scope and name, in the order they first appear.
struct Output {
    resources: Vec<ResourceOut>,
    metric_index: HashMap<(usize, usize, String), usize>,
    /// The last metric looked up: most samples are of the metric before them.
    last: Option<(usize, usize, String, At)>,
    composites: Vec<Composite>,
    composite_index: HashMap<(At, u64), usize>,
    /// `_created` samples: the start time of the series (metric, attributes hash).
    created: HashMap<(At, u64), u64>,
    /// Each sum point's attributes hash, to find it for `_created`.
    sum_points: HashMap<(At, u64), usize>,
}

const DEFAULT_SCOPE: (&str, &str) = (SCOPE_NAME, env!("CARGO_PKG_VERSION"));

impl Output {
    fn new(target: &TargetSettings) -> Output {
        let mut out = Output {
            resources: Vec::new(),
            metric_index: HashMap::default(),
            last: None,
            composites: Vec::new(),
            composite_index: HashMap::default(),
            created: HashMap::default(),
            sum_points: HashMap::default(),
        };
        // The target's own resource first: nearly every sample goes there.
        out.resource(target.labels.get("job").unwrap_or(""), target.labels.get("instance").unwrap_or(""));
        out
    }

    fn resource(&mut self, job: &str, instance: &str) -> usize {
        if let Some(r) = self.resources.iter().position(|r| r.job == job && r.instance == instance) {
            return r;
        }
        self.resources.push(ResourceOut {
            job: job.to_string(),
            instance: instance.to_string(),
            extra: Vec::new(),
            scopes: Vec::new(),
        });
        self.resources.len() - 1
    }

    fn scope(&mut self, r: usize, name: &str, version: &str) -> usize {
        let scopes = &mut self.resources[r].scopes;
        if let Some(s) = scopes.iter().position(|((n, v), _)| n == name && v == version) {
            return s;
        }
        scopes.push(((name.to_string(), version.to_string()), Vec::new()));
        scopes.len() - 1
    }

    fn metric(&mut self, r: usize, s: usize, name: &str, make: impl FnOnce() -> Metric) -> At {
        if let Some((lr, ls, ln, at)) = &self.last
            && *lr == r
            && *ls == s
            && ln == name
        {
            return *at;
        }
        let at = match self.metric_index.get(&(r, s, name.to_string())) {
            Some(&m) => (r, s, m),
            None => {
                let metrics = &mut self.resources[r].scopes[s].1;
                metrics.push(make());
                let m = metrics.len() - 1;
                self.metric_index.insert((r, s, name.to_string()), m);
                (r, s, m)
            }
        };
        self.last = Some((r, s, name.to_string(), at));
        at
    }

    fn at(&mut self, (r, s, m): At) -> &mut Metric {
        &mut self.resources[r].scopes[s].1[m]
    }

    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        family: &Family<'_>,
        sample: &Sample<'_>,
        p: &Prepared<'_>,
        target: &TargetSettings,
        scrape_time_ns: u64,
        state: &mut Staleness,
        counts: &mut Counts,
    ) {
        let job = p.get(target, "job").unwrap_or("");
        let instance = p.get(target, "instance").unwrap_or("");
        let r = self.resource(job, instance);
        if p.name == "target_info" {
            let extra = p.attributes(target, "");
            let resource = &mut self.resources[r];
            for kv in extra {
                if !resource.extra.iter().any(|e| e.key == kv.key) {
                    resource.extra.push(kv);
                }
            }
            return;
        }
        let scope_name = p.get(target, "otel_scope_name");
        let (scope_name, scope_version) = match scope_name {
            Some(name) => (name, p.get(target, "otel_scope_version").unwrap_or("")),
            None => DEFAULT_SCOPE,
        };
        let s = self.scope(r, scope_name, scope_version);
        let (base, kind, suffix) = match family.suffix_of(&p.name) {
            Some(suffix) => (&p.name[..p.name.len() - suffix.len()], family.kind, suffix),
            None => (p.name.as_ref(), Kind::Unknown, ""),
        };
        let time_ns = match sample.timestamp_ms {
            Some(ms) if target.honor_timestamps => (ms.max(0) as u64).saturating_mul(1_000_000),
            _ => scrape_time_ns,
        };
        let stale = sample.value.to_bits() == STALE_NAN;
        let value = sample.value;
        let help = family.help.as_deref().unwrap_or("");
        let unit = family.unit.as_deref().unwrap_or("");
        let (point_kind, name): (PointKind, Cow<'_, str>) = match kind {
            Kind::Counter => (PointKind::Counter, counter_name(base, unit, target.trim_metric_suffixes)),
            Kind::Histogram => (PointKind::Histogram, trimmed(base, unit, target.trim_metric_suffixes)),
            Kind::Summary => (PointKind::Summary, trimmed(base, unit, target.trim_metric_suffixes)),
            _ => (PointKind::Gauge, trimmed(&p.name, unit, target.trim_metric_suffixes)),
        };
        let at = self.metric(r, s, &name, || empty_metric(point_kind, &name, help, unit));
        let bound = match point_kind {
            PointKind::Histogram => "le",
            PointKind::Summary => "quantile",
            _ => "",
        };
        let attributes_hash = p.attributes_hash(target, bound);
        if suffix == "_created" {
            self.created.insert((at, attributes_hash), (value.max(0.0) * 1e9) as u64);
            return;
        }
        // The series: moved over from the last scrape, or new.
        let series_hash = {
            let mut h = foldhash::fast::FixedState::with_seed(attributes_hash).build_hasher();
            for part in [job, instance, scope_name, scope_version, &name] {
                h.write(part.as_bytes());
                h.write_u8(0xff);
            }
            h.finish()
        };
        let now = state.scrape;
        let known = match state.last.get_mut(&series_hash) {
            Some((_, at)) => {
                *at = now;
                true
            }
            None => false,
        };
        let new_series = |attributes: &Vec<KeyValue>| Series {
            job: job.to_string(),
            instance: instance.to_string(),
            scope: (scope_name.to_string(), scope_version.to_string()),
            name: name.to_string(),
            kind: point_kind,
            attributes: attributes.clone(),
        };
        match point_kind {
            PointKind::Counter | PointKind::Gauge => {
                let attributes = p.attributes(target, "");
                if !known {
                    counts.series_added += 1;
                    state.last.insert(series_hash, (new_series(&attributes), now));
                }
                let point = number_point(attributes, value, time_ns, stale);
                let (r, s, m) = at;
                match &mut self.resources[r].scopes[s].1[m].data {
                    Some(Data::Sum(sum)) => {
                        if family.has_created {
                            self.sum_points.insert((at, attributes_hash), sum.data_points.len());
                        }
                        sum.data_points.push(point);
                    }
                    Some(Data::Gauge(gauge)) => gauge.data_points.push(point),
                    _ => {}
                }
            }
            PointKind::Histogram | PointKind::Summary => {
                let index = match self.composite_index.get(&(at, attributes_hash)) {
                    Some(&i) => i,
                    None => {
                        let attributes = p.attributes(target, bound);
                        if !known {
                            counts.series_added += 1;
                            state.last.insert(series_hash, (new_series(&attributes), now));
                        }
                        self.composites.push(Composite {
                            at,
                            attributes,
                            buckets: Vec::new(),
                            quantiles: Vec::new(),
                            sum: None,
                            count: None,
                            created_ns: 0,
                            time_ns: 0,
                            stale: false,
                        });
                        self.composite_index.insert((at, attributes_hash), self.composites.len() - 1);
                        self.composites.len() - 1
                    }
                };
                let bound_value =
                    if bound.is_empty() { None } else { p.get(target, bound).and_then(|b| b.parse::<f64>().ok()) };
                let point = &mut self.composites[index];
                point.time_ns = point.time_ns.max(time_ns);
                point.stale |= stale;
                match (suffix, bound_value) {
                    ("_bucket", Some(le)) if point_kind == PointKind::Histogram => point.buckets.push((le, value)),
                    ("", Some(q)) if point_kind == PointKind::Summary => point.quantiles.push((q, value)),
                    ("_sum", _) => point.sum = Some(value),
                    ("_count", _) => point.count = Some(value),
                    _ => {}
                }
            }
        }
    }

    /// A staleness marker for a series that is gone.
    fn stale(&mut self, series: &Series, time_ns: u64) {
        let r = self.resource(&series.job, &series.instance);
        let s = self.scope(r, &series.scope.0, &series.scope.1);
        let at = self.metric(r, s, &series.name, || empty_metric(series.kind, &series.name, "", ""));
        let attributes = series.attributes.clone();
        match &mut self.at(at).data {
            Some(Data::Gauge(g)) => g.data_points.push(number_point(attributes, 0.0, time_ns, true)),
            Some(Data::Sum(s)) => s.data_points.push(number_point(attributes, 0.0, time_ns, true)),
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

    fn finish(mut self, target: &TargetSettings) -> Vec<ResourceMetrics> {
        for ((at, hash), created) in std::mem::take(&mut self.created) {
            if let Some(&i) = self.sum_points.get(&(at, hash)) {
                if let Some(Data::Sum(sum)) = &mut self.at(at).data {
                    sum.data_points[i].start_time_unix_nano = created;
                }
            } else if let Some(&i) = self.composite_index.get(&(at, hash)) {
                self.composites[i].created_ns = created;
            }
        }
        for mut point in std::mem::take(&mut self.composites) {
            let flags = if point.stale { NO_RECORDED_VALUE } else { 0 };
            match &mut self.at(point.at).data {
                Some(Data::Histogram(h)) => {
                    point.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                    let mut bounds = Vec::with_capacity(point.buckets.len());
                    let mut counts = Vec::with_capacity(point.buckets.len() + 1);
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
                        attributes: point.attributes,
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
                        attributes: point.attributes,
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
            .filter(|r| !r.scopes.is_empty())
            .map(|r| {
                let mut attributes = resource_attributes(&r.job, &r.instance, &target.scheme);
                for kv in r.extra {
                    if !attributes.iter().any(|a| a.key == kv.key) {
                        attributes.push(kv);
                    }
                }
                ResourceMetrics {
                    resource: Some(Resource { attributes, ..Default::default() }),
                    scope_metrics: r
                        .scopes
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
    let mut out = vec![kv("service.name", job), kv("service.instance.id", instance)];
    match instance.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            out.push(kv("server.address", host.trim_start_matches('[').trim_end_matches(']')));
            out.push(kv("server.port", port));
        }
        _ => out.push(kv("server.address", instance)),
    }
    out.push(kv("url.scheme", scheme));
    out
}

fn number_point(attributes: Vec<KeyValue>, value: f64, time_ns: u64, stale: bool) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        time_unix_nano: time_ns,
        value: (!stale).then_some(number_data_point::Value::AsDouble(value)),
        flags: if stale { NO_RECORDED_VALUE } else { 0 },
        ..Default::default()
    }
}

/// A counter's OTLP name: with `_total`, as upstream names them, unless trimmed.
/// A counter's name, `_total` at the end (unless trimmed); the page's own text when it
/// already is, as nearly every counter's is, so no sample allocates its name.
fn counter_name<'n>(base: &'n str, unit: &str, trim: bool) -> Cow<'n, str> {
    let stem = base.strip_suffix("_total").unwrap_or(base);
    if trim {
        return trimmed(stem, unit, true);
    }
    if stem.len() < base.len() { Cow::Borrowed(base) } else { Cow::Owned(format!("{base}_total")) }
}

fn trimmed<'n>(name: &'n str, unit: &str, trim: bool) -> Cow<'n, str> {
    if !trim || unit.is_empty() {
        return Cow::Borrowed(name);
    }
    match name.strip_suffix(unit).and_then(|n| n.strip_suffix('_')) {
        Some(short) => Cow::Borrowed(short),
        None => Cow::Borrowed(name),
    }
}

fn empty_metric(kind: PointKind, name: &str, help: &str, unit: &str) -> Metric {
    let data = match kind {
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
    };
    Metric {
        name: name.to_string(),
        description: help.to_string(),
        unit: unit.to_string(),
        data: Some(data),
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "translate_tests.rs"]
mod tests;

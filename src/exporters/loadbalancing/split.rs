//! A payload cut into one part per backend by its routing key. Keys are upstream's:
//! the trace id's 16 bytes; `service.name`; the resource's attributes; the metric's
//! name; the data point's stream (resource, scope, metric and point attributes); or
//! the `routing_attributes` as `name=value|` pairs. Resources and scopes are copied
//! into every part that has their items; items are moved, never copied.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, Gauge, Histogram, Metric, ResourceMetrics, ScopeMetrics, Sum, Summary, metric,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use super::config::RoutingKey;
use super::ring::Ring;
use crate::pdata::Payload;

/// How a payload is keyed.
pub(crate) struct Keying<'a> {
    pub key: RoutingKey,
    pub attributes: &'a [String],
}

fn value_text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(_) => value.map(crate::pdata::json::any_value_json).unwrap_or_default(),
    }
}

fn find<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref())
}

fn service(resource: &Resource) -> String {
    value_text(find(&resource.attributes, "service.name"))
}

/// Attributes, sorted by key, as `k=v|`: the same set in any order is the same key.
fn canonical(attributes: &[KeyValue], out: &mut String) {
    let mut sorted: Vec<&KeyValue> = attributes.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    for kv in sorted {
        out.push_str(&kv.key);
        out.push('=');
        out.push_str(&value_text(kv.value.as_ref()));
        out.push('|');
    }
}

fn resource_key(resource: &Resource) -> String {
    let mut key = String::new();
    canonical(&resource.attributes, &mut key);
    key
}

/// `routing_attributes` as `name=value|`, each looked up in the resource, the scope,
/// the item's own fields (`pseudo`), then the item's attributes; `name=|` if absent.
fn attributes_key(
    names: &[String],
    resource: &Resource,
    scope: &InstrumentationScope,
    pseudo: &dyn Fn(&str) -> Option<String>,
    item: &[KeyValue],
) -> String {
    let mut key = String::new();
    for name in names {
        let value = find(&resource.attributes, name)
            .or_else(|| find(&scope.attributes, name))
            .map(|v| value_text(Some(v)))
            .or_else(|| pseudo(name))
            .or_else(|| find(item, name).map(|v| value_text(Some(v))))
            .unwrap_or_default();
        key.push_str(name);
        key.push('=');
        key.push_str(&value);
        key.push('|');
    }
    key
}

fn span_kind(kind: i32) -> &'static str {
    match kind {
        1 => "Internal",
        2 => "Server",
        3 => "Client",
        4 => "Producer",
        5 => "Consumer",
        _ => "Unspecified",
    }
}

/// Items moved into `n` buckets by `pick`, in their order.
fn partition<T>(items: Vec<T>, n: usize, mut pick: impl FnMut(&T) -> usize) -> Vec<Vec<T>> {
    let mut buckets: Vec<Vec<T>> = (0..n).map(|_| Vec::new()).collect();
    for item in items {
        let b = pick(&item).min(n - 1);
        buckets[b].push(item);
    }
    buckets
}

/// Cuts `payload` into `(backend, part)`s. `Err` names a key the signal does not take.
pub(crate) fn split(payload: Payload, keying: &Keying<'_>, ring: &Ring) -> Result<Vec<(usize, Payload)>, String> {
    let n = ring.backends().len();
    let signal = payload.signal();
    if !keying.key.supports(signal) {
        return Err(format!("unsupported routing_key for {signal}: {}", keying.key.name()));
    }
    let at = |key: &[u8]| ring.find(key).unwrap_or(0);
    let empty_scope = InstrumentationScope::default();
    let empty_resource = Resource::default();
    let parts: Vec<Option<Payload>> = match payload {
        Payload::Traces(request) => {
            let mut out: Vec<Option<ExportTraceServiceRequest>> = (0..n).map(|_| None).collect();
            for rs in request.resource_spans {
                let resource = rs.resource.clone().unwrap_or_default();
                if keying.key == RoutingKey::Service {
                    let b = at(format!("service.name={}|", service(&resource)).as_bytes());
                    out[b].get_or_insert_with(Default::default).resource_spans.push(rs);
                    continue;
                }
                let mut started = vec![false; n];
                for ss in rs.scope_spans {
                    let scope = ss.scope.as_ref().unwrap_or(&empty_scope);
                    let buckets = partition(ss.spans, n, |span: &Span| match keying.key {
                        RoutingKey::Attributes => {
                            let pseudo = |name: &str| match name {
                                "span.kind" => Some(span_kind(span.kind).to_string()),
                                "span.name" => Some(span.name.clone()),
                                _ => None,
                            };
                            at(attributes_key(keying.attributes, &resource, scope, &pseudo, &span.attributes)
                                .as_bytes())
                        }
                        _ => at(&span.trace_id),
                    });
                    for (b, spans) in buckets.into_iter().enumerate().filter(|(_, s)| !s.is_empty()) {
                        let part = out[b].get_or_insert_with(Default::default);
                        if !started[b] {
                            started[b] = true;
                            part.resource_spans.push(ResourceSpans {
                                resource: rs.resource.clone(),
                                scope_spans: Vec::new(),
                                schema_url: rs.schema_url.clone(),
                            });
                        }
                        if let Some(last) = part.resource_spans.last_mut() {
                            last.scope_spans.push(ScopeSpans {
                                scope: ss.scope.clone(),
                                spans,
                                schema_url: ss.schema_url.clone(),
                            });
                        }
                    }
                }
            }
            out.into_iter().map(|p| p.map(Payload::Traces)).collect()
        }
        Payload::Logs(request) => {
            let mut out: Vec<Option<ExportLogsServiceRequest>> = (0..n).map(|_| None).collect();
            for rl in request.resource_logs {
                let resource = rl.resource.clone().unwrap_or_default();
                let whole = match keying.key {
                    RoutingKey::Service => Some(at(service(&resource).as_bytes())),
                    RoutingKey::Resource => Some(at(resource_key(&resource).as_bytes())),
                    _ => None,
                };
                if let Some(b) = whole {
                    out[b].get_or_insert_with(Default::default).resource_logs.push(rl);
                    continue;
                }
                let mut started = vec![false; n];
                for sl in rl.scope_logs {
                    let scope = sl.scope.as_ref().unwrap_or(&empty_scope);
                    let buckets = partition(sl.log_records, n, |record: &LogRecord| match keying.key {
                        RoutingKey::Attributes => {
                            let pseudo = |name: &str| match name {
                                "log.severity" => Some(record.severity_text.clone()),
                                "log.body" => Some(value_text(record.body.as_ref())),
                                _ => None,
                            };
                            at(attributes_key(keying.attributes, &resource, scope, &pseudo, &record.attributes)
                                .as_bytes())
                        }
                        // No trace id: spread, as upstream's random id does.
                        _ if record.trace_id.is_empty() => fastrand::usize(..n),
                        _ => at(crate::pdata::json::hex(&record.trace_id).as_bytes()),
                    });
                    for (b, records) in buckets.into_iter().enumerate().filter(|(_, s)| !s.is_empty()) {
                        let part = out[b].get_or_insert_with(Default::default);
                        if !started[b] {
                            started[b] = true;
                            part.resource_logs.push(ResourceLogs {
                                resource: rl.resource.clone(),
                                scope_logs: Vec::new(),
                                schema_url: rl.schema_url.clone(),
                            });
                        }
                        if let Some(last) = part.resource_logs.last_mut() {
                            last.scope_logs.push(ScopeLogs {
                                scope: sl.scope.clone(),
                                log_records: records,
                                schema_url: sl.schema_url.clone(),
                            });
                        }
                    }
                }
            }
            out.into_iter().map(|p| p.map(Payload::Logs)).collect()
        }
        Payload::Metrics(request) => {
            let mut out: Vec<Option<ExportMetricsServiceRequest>> = (0..n).map(|_| None).collect();
            for rm in request.resource_metrics {
                let resource = rm.resource.clone().unwrap_or_default();
                let whole = match keying.key {
                    RoutingKey::Service => Some(at(service(&resource).as_bytes())),
                    RoutingKey::Resource => Some(at(resource_key(&resource).as_bytes())),
                    _ => None,
                };
                if let Some(b) = whole {
                    out[b].get_or_insert_with(Default::default).resource_metrics.push(rm);
                    continue;
                }
                let resource_text = resource_key(rm.resource.as_ref().unwrap_or(&empty_resource));
                let mut started = vec![false; n];
                for sm in rm.scope_metrics {
                    let scope = sm.scope.as_ref().unwrap_or(&empty_scope);
                    let mut per: Vec<Vec<Metric>> = (0..n).map(|_| Vec::new()).collect();
                    for m in sm.metrics {
                        if keying.key == RoutingKey::Metric {
                            per[at(m.name.as_bytes())].push(m);
                            continue;
                        }
                        let name = m.name.clone();
                        let stream = |attributes: &[KeyValue]| -> usize {
                            if keying.key == RoutingKey::Attributes {
                                let none = |_: &str| None;
                                return at(
                                    attributes_key(keying.attributes, &resource, scope, &none, attributes).as_bytes()
                                );
                            }
                            let mut key = resource_text.clone();
                            key.push_str(&scope.name);
                            key.push('|');
                            key.push_str(&scope.version);
                            key.push('|');
                            key.push_str(&name);
                            key.push('|');
                            canonical(attributes, &mut key);
                            at(key.as_bytes())
                        };
                        for (b, part) in split_points(m, n, stream) {
                            per[b].push(part);
                        }
                    }
                    for (b, metrics) in per.into_iter().enumerate().filter(|(_, m)| !m.is_empty()) {
                        let part = out[b].get_or_insert_with(Default::default);
                        if !started[b] {
                            started[b] = true;
                            part.resource_metrics.push(ResourceMetrics {
                                resource: rm.resource.clone(),
                                scope_metrics: Vec::new(),
                                schema_url: rm.schema_url.clone(),
                            });
                        }
                        if let Some(last) = part.resource_metrics.last_mut() {
                            last.scope_metrics.push(ScopeMetrics {
                                scope: sm.scope.clone(),
                                metrics,
                                schema_url: sm.schema_url.clone(),
                            });
                        }
                    }
                }
            }
            out.into_iter().map(|p| p.map(Payload::Metrics)).collect()
        }
    };
    Ok(parts.into_iter().enumerate().filter_map(|(b, p)| p.map(|p| (b, p))).collect())
}

/// A metric's data points cut by `pick` of their attributes, each part a metric of
/// its own with the same name, unit, description and temporality.
fn split_points(metric: Metric, n: usize, mut pick: impl FnMut(&[KeyValue]) -> usize) -> Vec<(usize, Metric)> {
    use metric::Data;
    let Metric { name, description, unit, metadata, data } = metric;
    let header = |data| Metric {
        name: name.clone(),
        description: description.clone(),
        unit: unit.clone(),
        metadata: metadata.clone(),
        data: Some(data),
    };
    macro_rules! cut {
        ($points:expr, $make:expr) => {
            partition($points, n, |p| pick(&p.attributes))
                .into_iter()
                .enumerate()
                .filter(|(_, p)| !p.is_empty())
                .map(|(b, p)| (b, header($make(p))))
                .collect()
        };
    }
    match data {
        None => vec![(0, header_less(name, description, unit, metadata))],
        Some(Data::Gauge(g)) => cut!(g.data_points, |p| Data::Gauge(Gauge { data_points: p })),
        Some(Data::Sum(s)) => cut!(s.data_points, |p| Data::Sum(Sum {
            data_points: p,
            aggregation_temporality: s.aggregation_temporality,
            is_monotonic: s.is_monotonic,
        })),
        Some(Data::Histogram(h)) => cut!(h.data_points, |p| Data::Histogram(Histogram {
            data_points: p,
            aggregation_temporality: h.aggregation_temporality,
        })),
        Some(Data::ExponentialHistogram(h)) => {
            cut!(h.data_points, |p| Data::ExponentialHistogram(ExponentialHistogram {
                data_points: p,
                aggregation_temporality: h.aggregation_temporality,
            }))
        }
        Some(Data::Summary(s)) => cut!(s.data_points, |p| Data::Summary(Summary { data_points: p })),
    }
}

fn header_less(name: String, description: String, unit: String, metadata: Vec<KeyValue>) -> Metric {
    Metric { name, description, unit, metadata, data: None }
}

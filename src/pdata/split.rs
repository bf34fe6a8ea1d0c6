//! Counting and splitting OTLP payloads by item (span, data point, log record),
//! keeping each item's resource and scope.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{Metric, ResourceMetrics, ScopeMetrics, metric};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

/// A level of the OTLP tree that holds items below it.
pub(crate) trait Splittable: Sized {
    fn item_count(&self) -> usize;
    /// Removes and returns the first `n` items, `0 < n < item_count()`.
    fn split_front(&mut self, n: usize) -> Self;
}

/// Takes the first `n` items of a list of subtrees: whole subtrees while they fit,
/// then part of the next one.
pub(crate) fn split_vec_front<T: Splittable>(items: &mut Vec<T>, n: usize) -> Vec<T> {
    let mut remaining = n;
    let mut whole = 0;
    for item in items.iter() {
        let count = item.item_count();
        if count > remaining {
            break;
        }
        remaining -= count;
        whole += 1;
    }
    let mut taken: Vec<T> = items.drain(..whole).collect();
    if remaining > 0
        && let Some(next) = items.first_mut()
    {
        taken.push(next.split_front(remaining));
    }
    taken
}

macro_rules! splittable_level {
    ($ty:ty, $children:ident) => {
        impl Splittable for $ty {
            fn item_count(&self) -> usize {
                self.$children.iter().map(Splittable::item_count).sum()
            }
            fn split_front(&mut self, n: usize) -> Self {
                let children = split_vec_front(&mut self.$children, n);
                let mut front = <$ty>::default();
                front.clone_from_shell(self);
                front.$children = children;
                front
            }
        }
    };
}

macro_rules! splittable_leaf_level {
    ($ty:ty, $items:ident) => {
        impl Splittable for $ty {
            fn item_count(&self) -> usize {
                self.$items.len()
            }
            fn split_front(&mut self, n: usize) -> Self {
                let items = self.$items.drain(..n.min(self.$items.len())).collect();
                let mut front = <$ty>::default();
                front.clone_from_shell(self);
                front.$items = items;
                front
            }
        }
    };
}

/// Copies everything but the children: the resource or scope and schema URL.
trait Shell {
    fn clone_from_shell(&mut self, from: &Self);
}

impl Shell for ResourceSpans {
    fn clone_from_shell(&mut self, from: &Self) {
        self.resource.clone_from(&from.resource);
        self.schema_url.clone_from(&from.schema_url);
    }
}
impl Shell for ScopeSpans {
    fn clone_from_shell(&mut self, from: &Self) {
        self.scope.clone_from(&from.scope);
        self.schema_url.clone_from(&from.schema_url);
    }
}
impl Shell for ResourceLogs {
    fn clone_from_shell(&mut self, from: &Self) {
        self.resource.clone_from(&from.resource);
        self.schema_url.clone_from(&from.schema_url);
    }
}
impl Shell for ScopeLogs {
    fn clone_from_shell(&mut self, from: &Self) {
        self.scope.clone_from(&from.scope);
        self.schema_url.clone_from(&from.schema_url);
    }
}
impl Shell for ResourceMetrics {
    fn clone_from_shell(&mut self, from: &Self) {
        self.resource.clone_from(&from.resource);
        self.schema_url.clone_from(&from.schema_url);
    }
}
impl Shell for ScopeMetrics {
    fn clone_from_shell(&mut self, from: &Self) {
        self.scope.clone_from(&from.scope);
        self.schema_url.clone_from(&from.schema_url);
    }
}

splittable_level!(ResourceSpans, scope_spans);
splittable_leaf_level!(ScopeSpans, spans);
splittable_level!(ResourceLogs, scope_logs);
splittable_leaf_level!(ScopeLogs, log_records);
splittable_level!(ResourceMetrics, scope_metrics);
splittable_level!(ScopeMetrics, metrics);

impl Splittable for Metric {
    fn item_count(&self) -> usize {
        match &self.data {
            Some(metric::Data::Gauge(g)) => g.data_points.len(),
            Some(metric::Data::Sum(s)) => s.data_points.len(),
            Some(metric::Data::Histogram(h)) => h.data_points.len(),
            Some(metric::Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(metric::Data::Summary(s)) => s.data_points.len(),
            None => 0,
        }
    }

    fn split_front(&mut self, n: usize) -> Self {
        fn take<T>(points: &mut Vec<T>, n: usize) -> Vec<T> {
            points.drain(..n.min(points.len())).collect()
        }
        let data = match &mut self.data {
            Some(metric::Data::Gauge(g)) => Some(metric::Data::Gauge(metric_gauge(take(&mut g.data_points, n)))),
            Some(metric::Data::Sum(s)) => Some(metric::Data::Sum(opentelemetry_proto::tonic::metrics::v1::Sum {
                data_points: take(&mut s.data_points, n),
                aggregation_temporality: s.aggregation_temporality,
                is_monotonic: s.is_monotonic,
            })),
            Some(metric::Data::Histogram(h)) => {
                Some(metric::Data::Histogram(opentelemetry_proto::tonic::metrics::v1::Histogram {
                    data_points: take(&mut h.data_points, n),
                    aggregation_temporality: h.aggregation_temporality,
                }))
            }
            Some(metric::Data::ExponentialHistogram(h)) => Some(metric::Data::ExponentialHistogram(
                opentelemetry_proto::tonic::metrics::v1::ExponentialHistogram {
                    data_points: take(&mut h.data_points, n),
                    aggregation_temporality: h.aggregation_temporality,
                },
            )),
            Some(metric::Data::Summary(s)) => {
                Some(metric::Data::Summary(opentelemetry_proto::tonic::metrics::v1::Summary {
                    data_points: take(&mut s.data_points, n),
                }))
            }
            None => None,
        };
        Metric {
            name: self.name.clone(),
            description: self.description.clone(),
            unit: self.unit.clone(),
            metadata: self.metadata.clone(),
            data,
        }
    }
}

fn metric_gauge(
    data_points: Vec<opentelemetry_proto::tonic::metrics::v1::NumberDataPoint>,
) -> opentelemetry_proto::tonic::metrics::v1::Gauge {
    opentelemetry_proto::tonic::metrics::v1::Gauge { data_points }
}

pub fn count_spans(r: &ExportTraceServiceRequest) -> usize {
    r.resource_spans.iter().map(Splittable::item_count).sum()
}

pub fn count_data_points(r: &ExportMetricsServiceRequest) -> usize {
    r.resource_metrics.iter().map(Splittable::item_count).sum()
}

pub fn count_log_records(r: &ExportLogsServiceRequest) -> usize {
    r.resource_logs.iter().map(Splittable::item_count).sum()
}

/// The items (spans, data points, log records) of each resource, in order.
pub fn resource_item_counts(payload: &super::Payload) -> Vec<u64> {
    use super::Payload;
    match payload {
        Payload::Traces(r) => r.resource_spans.iter().map(|x| x.item_count() as u64).collect(),
        Payload::Metrics(r) => r.resource_metrics.iter().map(|x| x.item_count() as u64).collect(),
        Payload::Logs(r) => r.resource_logs.iter().map(|x| x.item_count() as u64).collect(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pdata::Payload;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
    use opentelemetry_proto::tonic::logs::v1::LogRecord;
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
            ..Default::default()
        }
    }

    /// `shape[r][s]` log records in scope `s` of resource `r`; bodies number them in order.
    pub(crate) fn logs(shape: &[&[usize]]) -> Payload {
        let mut n = 0;
        let resource_logs = shape
            .iter()
            .enumerate()
            .map(|(r, scopes)| ResourceLogs {
                resource: Some(Resource { attributes: vec![kv("r", &r.to_string())], ..Default::default() }),
                scope_logs: scopes
                    .iter()
                    .enumerate()
                    .map(|(s, &count)| ScopeLogs {
                        scope: Some(InstrumentationScope { name: format!("scope{s}"), ..Default::default() }),
                        log_records: (0..count)
                            .map(|_| {
                                n += 1;
                                LogRecord {
                                    body: Some(AnyValue { value: Some(any_value::Value::IntValue(n)) }),
                                    ..Default::default()
                                }
                            })
                            .collect(),
                        schema_url: String::new(),
                    })
                    .collect(),
                schema_url: String::new(),
            })
            .collect();
        Payload::Logs(ExportLogsServiceRequest { resource_logs })
    }

    fn bodies(p: &Payload) -> Vec<i64> {
        let Payload::Logs(r) = p else { panic!("not logs") };
        r.resource_logs
            .iter()
            .flat_map(|rl| rl.scope_logs.iter())
            .flat_map(|sl| sl.log_records.iter())
            .map(|lr| match lr.body.as_ref().and_then(|b| b.value.as_ref()) {
                Some(any_value::Value::IntValue(i)) => *i,
                _ => -1,
            })
            .collect()
    }

    #[test]
    fn split_keeps_order_and_context() {
        let mut p = logs(&[&[2, 3], &[4]]);
        assert_eq!(p.item_count(), 9);
        let front = p.split_front(3);
        assert_eq!(bodies(&front), vec![1, 2, 3]);
        assert_eq!(bodies(&p), vec![4, 5, 6, 7, 8, 9]);
        let Payload::Logs(f) = &front else { panic!() };
        assert_eq!(f.resource_logs.len(), 1);
        assert_eq!(f.resource_logs[0].scope_logs.len(), 2);
        assert_eq!(f.resource_logs[0].scope_logs[1].scope.as_ref().unwrap().name, "scope1");
        let Payload::Logs(rest) = &p else { panic!() };
        assert_eq!(rest.resource_logs[0].scope_logs[0].scope.as_ref().unwrap().name, "scope1");
        let all = p.split_front(100);
        assert_eq!(all.item_count(), 6);
        assert!(p.is_empty() || p.item_count() == 0);
    }

    #[test]
    fn split_then_append_is_identity() {
        for n in 0..=9 {
            let original = logs(&[&[2, 3], &[4]]);
            let mut rest = original.clone();
            let mut front = rest.split_front(n);
            front.append(rest).unwrap();
            assert_eq!(bodies(&front), bodies(&original), "n = {n}");
        }
    }
}

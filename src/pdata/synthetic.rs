//! Synthetic OTLP payloads for the load generator, benchmarks and tests: realistic
//! shapes (a resource, a scope, N items with M string attributes) that differ by seed.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use super::{Payload, Signal};

fn string_attr(key: String, value: String) -> KeyValue {
    KeyValue { key, value: Some(AnyValue { value: Some(any_value::Value::StringValue(value)) }), ..Default::default() }
}

fn item_attributes(count: usize, seed: usize) -> Vec<KeyValue> {
    (0..count).map(|i| string_attr(format!("attr.{i}"), format!("value-{}-{i}", seed % 97))).collect()
}

/// One request of `batch` items, different per `seed` so ids and values vary.
pub fn payload(signal: Signal, batch: usize, attributes: usize, seed: usize) -> Payload {
    let resource = Some(Resource {
        attributes: vec![
            string_attr("service.name".into(), "loadgen".into()),
            string_attr("host.name".into(), format!("host-{}", seed % 8)),
        ],
        ..Default::default()
    });
    let scope = Some(InstrumentationScope { name: "ocelot-loadgen".into(), version: "1".into(), ..Default::default() });
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
    match signal {
        Signal::Traces => Payload::Traces(ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource,
                scope_spans: vec![ScopeSpans {
                    scope,
                    spans: (0..batch)
                        .map(|i| {
                            let n = (seed * batch + i) as u64;
                            Span {
                                trace_id: [n.to_be_bytes(), (seed as u64).to_be_bytes()].concat(),
                                span_id: n.to_be_bytes().to_vec(),
                                name: format!("operation-{}", i % 16),
                                kind: 2,
                                start_time_unix_nano: now,
                                end_time_unix_nano: now + 1_000_000,
                                attributes: item_attributes(attributes, i),
                                ..Default::default()
                            }
                        })
                        .collect(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }),
        Signal::Metrics => Payload::Metrics(ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource,
                scope_metrics: vec![ScopeMetrics {
                    scope,
                    metrics: vec![Metric {
                        name: "loadgen.value".into(),
                        unit: "1".into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: (0..batch)
                                .map(|i| NumberDataPoint {
                                    attributes: item_attributes(attributes, i),
                                    time_unix_nano: now,
                                    value: Some(number_data_point::Value::AsDouble(i as f64)),
                                    ..Default::default()
                                })
                                .collect(),
                        })),
                        ..Default::default()
                    }],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }),
        Signal::Logs => Payload::Logs(ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource,
                scope_logs: vec![ScopeLogs {
                    scope,
                    log_records: (0..batch)
                        .map(|i| LogRecord {
                            time_unix_nano: now,
                            severity_number: 9,
                            severity_text: "INFO".into(),
                            body: Some(AnyValue {
                                value: Some(any_value::Value::StringValue(format!(
                                    "request {i} of batch {seed} served in {} ms by worker {}",
                                    i % 250,
                                    seed % 16
                                ))),
                            }),
                            attributes: item_attributes(attributes, i),
                            ..Default::default()
                        })
                        .collect(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }),
    }
}

/// The tier of the n-th item of a request in [`with_tiers`]: 10 % `critical`, 20 %
/// `important`, 30 % `standard`, 40 % `low`.
pub fn tier(n: usize) -> &'static str {
    match n % 10 {
        0 => "critical",
        1 | 2 => "important",
        3..=5 => "standard",
        _ => "low",
    }
}

/// Gives every item of `payload` a `tier` attribute, the score mix of the degradation
/// benchmark and the load generator's `--tiers`.
pub fn with_tiers(mut payload: Payload) -> Payload {
    let attr = |n: usize| KeyValue {
        key: "tier".into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(tier(n).into())) }),
        ..Default::default()
    };
    match &mut payload {
        Payload::Logs(request) => {
            for records in request.resource_logs.iter_mut().flat_map(|r| &mut r.scope_logs) {
                for (n, record) in records.log_records.iter_mut().enumerate() {
                    record.attributes.push(attr(n));
                }
            }
        }
        Payload::Traces(request) => {
            for spans in request.resource_spans.iter_mut().flat_map(|r| &mut r.scope_spans) {
                for (n, span) in spans.spans.iter_mut().enumerate() {
                    span.attributes.push(attr(n));
                }
            }
        }
        Payload::Metrics(request) => {
            for metrics in request.resource_metrics.iter_mut().flat_map(|r| &mut r.scope_metrics) {
                for m in &mut metrics.metrics {
                    if let Some(metric::Data::Gauge(gauge)) = &mut m.data {
                        for (n, point) in gauge.data_points.iter_mut().enumerate() {
                            point.attributes.push(attr(n));
                        }
                    }
                }
            }
        }
    }
    payload
}

use super::*;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Histogram, HistogramDataPoint, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint, summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(Value::StringValue(value.into())) }),
        ..Default::default()
    }
}

const T: u64 = 1_700_000_000_123_456_789;

fn point(value: f64, attributes: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        time_unix_nano: T,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "api"),
                    kv("service.namespace", "shop"),
                    kv("service.instance.id", "pod-1"),
                    kv("host.name", "node-7"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope { name: "lib".into(), version: "1.2".into(), ..Default::default() }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn metric(name: &str, unit: &str, data: Data) -> Metric {
    Metric { name: name.into(), unit: unit.into(), data: Some(data), ..Default::default() }
}

fn find<'t>(t: &'t Translation, name: &str, label: Option<(&str, &str)>) -> &'t Series {
    t.series
        .iter()
        .find(|s| {
            s.labels.iter().any(|(k, v)| k == "__name__" && v == name)
                && label.is_none_or(|(lk, lv)| s.labels.iter().any(|(k, v)| k == lk && v == lv))
        })
        .unwrap_or_else(|| panic!("no series {name} {label:?} in {:#?}", t.series))
}

fn translate_all(request: &ExportMetricsServiceRequest) -> Translation {
    let options = Options {
        add_metric_suffixes: true,
        target_info: true,
        external_labels: vec![("cluster".into(), "eu-1".into()), ("job".into(), "ignored".into())],
        ..Default::default()
    };
    let mut out = Translation::default();
    translate(request, &options, &mut DeltaState::new(std::time::Duration::from_secs(300)), &mut out);
    out
}

#[test]
fn counters_gauges_job_instance_scope_and_target_info() {
    let counter = metric(
        "http.server.requests",
        "1",
        Data::Sum(Sum {
            data_points: vec![point(7.0, vec![kv("http.method", "GET"), kv("http-method", "POST")])],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        }),
    );
    let gauge = metric("memory.usage", "By", Data::Gauge(Gauge { data_points: vec![point(1024.0, vec![])] }));
    let t = translate_all(&request(vec![counter, gauge]));
    let requests = find(&t, "http_server_requests_total", None);
    let labels: Vec<(&str, &str)> = requests.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        labels,
        vec![
            ("__name__", "http_server_requests_total"),
            ("cluster", "eu-1"),
            // Two keys that sanitise alike: values joined in key order.
            ("http_method", "POST;GET"),
            ("instance", "pod-1"),
            ("job", "shop/api"),
            ("otel_scope_name", "lib"),
            ("otel_scope_version", "1.2"),
        ]
    );
    assert_eq!(requests.samples, vec![(7.0, 1_700_000_000_123)]);
    assert_eq!(find(&t, "memory_usage_bytes", None).samples[0].0, 1024.0);
    let info = find(&t, "target_info", None);
    assert!(info.labels.contains(&("host_name".into(), "node-7".into())));
    assert!(!info.labels.iter().any(|(k, _)| k == "service_name" || k.starts_with("otel_scope")));
    assert_eq!(info.samples, vec![(1.0, 1_700_000_000_123)]);
}

#[test]
fn histograms_summaries_staleness_and_deltas() {
    let histogram = metric(
        "rpc.duration",
        "s",
        Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                time_unix_nano: T,
                count: 10,
                sum: Some(4.5),
                bucket_counts: vec![2, 3, 5],
                explicit_bounds: vec![0.1, 1.0],
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        }),
    );
    let summary = metric(
        "gc.pause",
        "ms",
        Data::Summary(Summary {
            data_points: vec![SummaryDataPoint {
                time_unix_nano: T,
                count: 4,
                sum: 9.0,
                quantile_values: vec![ValueAtQuantile { quantile: 0.99, value: 5.0 }],
                ..Default::default()
            }],
        }),
    );
    let mut stale_point = point(1.0, vec![]);
    stale_point.flags = DataPointFlags::NoRecordedValueMask as u32;
    let stale = metric("queue.depth", "", Data::Gauge(Gauge { data_points: vec![stale_point] }));
    let delta = metric(
        "bytes.sent",
        "By",
        Data::Sum(Sum {
            data_points: vec![point(5.0, vec![])],
            aggregation_temporality: AggregationTemporality::Delta as i32,
            is_monotonic: true,
        }),
    );
    let t = translate_all(&request(vec![histogram, summary, stale, delta]));
    assert_eq!(find(&t, "rpc_duration_seconds_bucket", Some(("le", "0.1"))).samples[0].0, 2.0);
    assert_eq!(find(&t, "rpc_duration_seconds_bucket", Some(("le", "1"))).samples[0].0, 5.0);
    assert_eq!(find(&t, "rpc_duration_seconds_bucket", Some(("le", "+Inf"))).samples[0].0, 10.0);
    assert_eq!(find(&t, "rpc_duration_seconds_sum", None).samples[0].0, 4.5);
    assert_eq!(find(&t, "rpc_duration_seconds_count", None).samples[0].0, 10.0);
    assert_eq!(find(&t, "gc_pause_milliseconds", Some(("quantile", "0.99"))).samples[0].0, 5.0);
    assert_eq!(find(&t, "gc_pause_milliseconds_count", None).samples[0].0, 4.0);
    assert_eq!(find(&t, "queue_depth", None).samples[0].0.to_bits(), STALE_NAN);
    // A delta sum is written as its running total.
    assert!(t.dropped.is_empty());
    assert_eq!(find(&t, "bytes_sent_total", None).samples[0].0, 5.0);
    assert_eq!(
        t.metadata.iter().map(|m| (m.kind, m.family.as_str())).collect::<Vec<_>>(),
        vec![
            (3, "rpc_duration_seconds"),
            (5, "gc_pause_milliseconds"),
            (2, "queue_depth"),
            (1, "bytes_sent_total"),
            (2, "target_info")
        ]
    );
}

#[test]
fn empty_names_are_refused_and_updown_counters_get_no_ratio() {
    let gauge =
        |name: &str, unit: &str| metric(name, unit, Data::Gauge(Gauge { data_points: vec![point(1.0, vec![])] }));
    let updown = metric(
        "queue.size",
        "1",
        Data::Sum(Sum {
            data_points: vec![point(3.0, vec![])],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: false,
        }),
    );
    let t = translate_all(&request(vec![gauge("延迟", ""), gauge("...", "ms"), updown]));
    assert_eq!(find(&t, "queue_size", None).samples[0].0, 3.0);
    assert_eq!(t.dropped.len(), 2, "{:?}", t.dropped);
    assert!(t.dropped.iter().all(|(n, why, _)| *n == 1 && *why == Untranslated::InvalidName));
    assert!(t.series.iter().all(|s| s.labels.iter().any(|(k, v)| k == "__name__" && !v.is_empty())));
}

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ScopeMetrics, Sum, Summary, SummaryDataPoint,
};

use super::*;
use crate::config::ComponentId;
use crate::telemetry::Telemetry;

const S: u64 = 1_000_000_000;
const T0: u64 = 1_800_000_000 * S;

fn config(yaml: &str) -> MetricStartTimeConfig {
    let node = crate::config::node::parse("test.yaml", if yaml.is_empty() { "{}" } else { yaml }).unwrap();
    crate::component::parse_config(&node).unwrap()
}

fn processor(yaml: &str) -> MetricStartTimeProcessor {
    let telemetry = Telemetry::new();
    MetricStartTimeProcessor::new(&config(yaml), telemetry.processor(&ComponentId::new(TYPE)))
}

fn counter(value: f64, time: u64) -> Metric {
    Metric {
        name: "requests_total".into(),
        data: Some(Data::Sum(Sum {
            data_points: vec![NumberDataPoint {
                time_unix_nano: time,
                value: Some(number_data_point::Value::AsDouble(value)),
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

fn histogram(count: u64, sum: f64, buckets: Vec<u64>, time: u64) -> Metric {
    Metric {
        name: "latency".into(),
        data: Some(Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                time_unix_nano: time,
                count,
                sum: Some(sum),
                bucket_counts: buckets,
                explicit_bounds: vec![1.0],
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Default::default()
    }
}

fn batch(metrics: Vec<Metric>) -> Batch {
    Batch::new(Payload::Metrics(ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics { metrics, ..Default::default() }],
            ..Default::default()
        }],
    }))
}

/// (start, value) of each sum point and (start, count, sum, buckets) of each histogram point.
fn run(p: &mut MetricStartTimeProcessor, metrics: Vec<Metric>) -> Vec<(u64, f64)> {
    let mut out = Vec::new();
    p.process(batch(metrics), &mut out);
    let mut points = Vec::new();
    for b in out {
        let Payload::Metrics(request) = &*b.payload else { panic!() };
        for m in request.resource_metrics.iter().flat_map(|r| r.scope_metrics.iter().flat_map(|s| s.metrics.iter())) {
            match &m.data {
                Some(Data::Sum(s)) => points.extend(s.data_points.iter().map(|p| {
                    let v = match p.value {
                        Some(number_data_point::Value::AsDouble(d)) => d,
                        _ => f64::NAN,
                    };
                    (p.start_time_unix_nano, v)
                })),
                Some(Data::Histogram(h)) => {
                    points.extend(h.data_points.iter().map(|p| (p.start_time_unix_nano, p.count as f64)))
                }
                Some(Data::Summary(s)) => {
                    points.extend(s.data_points.iter().map(|p| (p.start_time_unix_nano, p.count as f64)))
                }
                Some(Data::Gauge(g)) => points.extend(g.data_points.iter().map(|p| (p.start_time_unix_nano, -1.0))),
                _ => {}
            }
        }
    }
    points
}

#[test]
fn true_reset_point_starts_at_the_first_point_and_again_after_a_reset() {
    let mut p = processor("");
    assert_eq!(run(&mut p, vec![counter(10.0, T0)]), [(T0, 10.0)], "a true reset point");
    assert_eq!(run(&mut p, vec![counter(15.0, T0 + 15 * S)]), [(T0, 15.0)]);
    // The process restarted: the counter went down.
    assert_eq!(run(&mut p, vec![counter(2.0, T0 + 30 * S)]), [(T0 + 30 * S - 1_000_000, 2.0)]);
    assert_eq!(run(&mut p, vec![counter(4.0, T0 + 45 * S)]), [(T0 + 30 * S - 1_000_000, 4.0)]);
    // Histograms the same, by their count.
    assert_eq!(run(&mut p, vec![histogram(5, 1.0, vec![3, 2], T0)]), [(T0, 5.0)]);
    assert_eq!(run(&mut p, vec![histogram(1, 0.1, vec![1, 0], T0 + S)]), [(T0 + S - 1_000_000, 1.0)]);
}

#[test]
fn subtract_initial_point_holds_the_first_back_and_reports_the_rest_from_it() {
    let mut p = processor("strategy: subtract_initial_point");
    assert!(run(&mut p, vec![counter(100.0, T0)]).is_empty(), "the first point is the reference");
    assert_eq!(run(&mut p, vec![counter(130.0, T0 + 15 * S)]), [(T0, 30.0)]);
    assert_eq!(
        run(&mut p, vec![counter(5.0, T0 + 30 * S)]),
        [(T0 + 30 * S - 1_000_000, 5.0)],
        "after a reset, as it is"
    );
    assert_eq!(run(&mut p, vec![counter(9.0, T0 + 45 * S)]), [(T0 + 30 * S - 1_000_000, 9.0)]);

    let mut out = Vec::new();
    p.process(batch(vec![histogram(10, 5.0, vec![6, 4], T0)]), &mut out);
    p.process(batch(vec![histogram(15, 6.0, vec![8, 7], T0 + S)]), &mut out);
    let Payload::Metrics(request) = &*out[0].payload else { panic!() };
    let Some(Data::Histogram(h)) = &request.resource_metrics[0].scope_metrics[0].metrics[0].data else { panic!() };
    let point = &h.data_points[0];
    assert_eq!(
        (point.start_time_unix_nano, point.count, point.sum, point.bucket_counts.clone()),
        (T0, 5, Some(1.0), vec![2, 3])
    );
}

#[test]
fn start_time_metric_uses_the_process_start_of_the_same_resource() {
    let mut p = processor("strategy: start_time_metric");
    let process_start = Metric {
        name: "process_start_time_seconds".into(),
        data: Some(Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                value: Some(number_data_point::Value::AsDouble(1_799_999_000.5)),
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    let points = run(&mut p, vec![counter(10.0, T0), process_start.clone()]);
    assert_eq!(points[0], (1_799_999_000 * S + 500_000_000, 10.0));
    assert_eq!(points[1].1, -1.0, "the gauge passes as it is");
    // Without the metric: when ocelot started (before now, after the epoch).
    let mut p = processor("strategy: start_time_metric");
    let start = run(&mut p, vec![counter(10.0, T0)])[0].0;
    assert!(start > 1_700_000_000 * S && start <= process_start_ns());
}

#[test]
fn what_is_left_alone_and_what_is_refused() {
    let mut p = processor("skip_if_ct_exists: true");
    let mut with_start = counter(3.0, T0);
    if let Some(Data::Sum(s)) = &mut with_start.data {
        s.data_points[0].start_time_unix_nano = 42;
    }
    assert_eq!(run(&mut p, vec![with_start]), [(42, 3.0)]);
    let summary = Metric {
        name: "rpc".into(),
        data: Some(Data::Summary(Summary {
            data_points: vec![SummaryDataPoint { time_unix_nano: T0, count: 4, sum: 2.0, ..Default::default() }],
        })),
        ..Default::default()
    };
    assert_eq!(run(&mut processor(""), vec![summary]), [(T0, 4.0)]);
    for (yaml, message) in [
        ("strategy: start_time_attribute", "not built"),
        ("strategy: sometimes", "unknown variant"),
        ("start_time_metric_regex: x", "only to strategy start_time_metric"),
        ("gc_interval: 0s", "positive"),
    ] {
        let node = crate::config::node::parse("t.yaml", yaml).unwrap();
        let error = crate::component::parse_config::<MetricStartTimeConfig>(&node).unwrap_err();
        assert!(error.to_string().contains(message), "{yaml}: {error}");
    }
}

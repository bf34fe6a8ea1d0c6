//! The `prometheusremotewrite` exporter into a real Prometheus, read back through its
//! query API (names, labels, `target_info`, counters, histogram buckets, delta sums
//! made cumulative, an out-of-order sample refused, counted and not retried), and the
//! `prometheus` exporter scraped by that Prometheus.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::prometheus::Prometheus;
use common::*;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(Value::StringValue(value.into())) }),
        ..Default::default()
    }
}

fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn counter(name: &str, value: f64, time: u64) -> Metric {
    Metric {
        name: name.into(),
        unit: "1".into(),
        data: Some(Data::Sum(Sum {
            data_points: vec![NumberDataPoint {
                attributes: vec![kv("http.method", "GET")],
                time_unix_nano: time,
                start_time_unix_nano: time - 60_000_000_000,
                value: Some(number_data_point::Value::AsDouble(value)),
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

fn request(metrics: Vec<Metric>) -> Vec<u8> {
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
                scope: Some(InstrumentationScope {
                    name: "checkout".into(),
                    version: "2.1".into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn agent(prometheus: &Prometheus) -> Agent {
    Agent::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
exporters:
  prometheusremotewrite:
    endpoint: {}
    external_labels: {{ cluster: eu-1 }}
    retry_on_failure: {{ initial_interval: 100ms }}
service:
  pipelines:
    metrics:
      receivers: [otlp]
      exporters: [prometheusremotewrite]
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#,
        prometheus.write_url()
    ))
}

fn send(agent: &Agent, body: Vec<u8>) {
    let (status, _, text) = http_post(agent.http("otlp"), "/v1/metrics", "application/x-protobuf", &body);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&text));
}

#[test]
fn counters_histograms_and_target_info_reach_prometheus() {
    let prometheus = Prometheus::start("");
    let agent = agent(&prometheus);
    let t = now_nanos();
    let histogram = Metric {
        name: "rpc.duration".into(),
        unit: "s".into(),
        data: Some(Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                time_unix_nano: t,
                count: 10,
                sum: Some(4.5),
                bucket_counts: vec![2, 3, 5],
                explicit_bounds: vec![0.1, 1.0],
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Default::default()
    };
    let gauge = Metric {
        name: "queue.size".into(),
        unit: "By".into(),
        data: Some(Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                time_unix_nano: t,
                value: Some(number_data_point::Value::AsInt(4096)),
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    send(&agent, request(vec![counter("http.server.requests", 7.0, t), histogram, gauge]));

    let result = prometheus.wait_for(r#"http_server_requests_total{job="shop/api"}"#);
    let (labels, value) = &result[0];
    assert_eq!(*value, 7.0);
    for (name, want) in [
        ("instance", "pod-1"),
        ("http_method", "GET"),
        ("otel_scope_name", "checkout"),
        ("otel_scope_version", "2.1"),
        ("cluster", "eu-1"),
    ] {
        assert_eq!(labels[name], want, "{labels:?}");
    }
    let buckets = prometheus.wait_for(r#"rpc_duration_seconds_bucket{job="shop/api"}"#);
    let by_le: std::collections::BTreeMap<String, f64> =
        buckets.iter().map(|(l, v)| (l["le"].as_str().unwrap().to_string(), *v)).collect();
    assert_eq!(by_le, [("0.1".into(), 2.0), ("1".into(), 5.0), ("+Inf".into(), 10.0)].into_iter().collect());
    assert_eq!(prometheus.wait_for("rpc_duration_seconds_sum")[0].1, 4.5);
    assert_eq!(prometheus.wait_for("rpc_duration_seconds_count")[0].1, 10.0);
    assert_eq!(prometheus.wait_for("queue_size_bytes")[0].1, 4096.0);
    // histogram_quantile works on what was written: half of the 10 are ≤ 1s.
    let p50 = prometheus.wait_for("histogram_quantile(0.5, rpc_duration_seconds_bucket)")[0].1;
    assert!((0.1..=1.0).contains(&p50), "{p50}");
    let info = prometheus.wait_for("target_info");
    assert_eq!(info[0].0["host_name"], "node-7");
    assert_eq!(info[0].0["job"], "shop/api");
    assert!(agent.stop().success());
}

#[test]
fn an_out_of_order_sample_is_refused_counted_and_not_retried() {
    let prometheus = Prometheus::start("");
    let agent = agent(&prometheus);
    let t = now_nanos();
    send(&agent, request(vec![counter("jobs.done", 5.0, t)]));
    prometheus.wait_for("jobs_done_total");
    // The same series ten seconds earlier: Prometheus answers 400 "out of order sample".
    send(&agent, request(vec![counter("jobs.done", 4.0, t - 10_000_000_000)]));
    // The whole request is refused: the sample and its resource's target_info.
    agent.wait_metric("ocelot_exporter_dropped_items_total", "reason=\"out_of_order\"", 2.0);
    agent.wait_metric("otelcol_exporter_send_failed_metric_points_total", "", 1.0);
    // No retry loop: nothing more is sent or retried for it.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(agent.metric("otelcol_exporter_send_failed_metric_points_total", ""), 1.0);
    assert_eq!(agent.count_logs("Export failed, retrying"), 0);
    // Later samples still go through.
    send(&agent, request(vec![counter("jobs.done", 6.0, now_nanos())]));
    wait_until(Duration::from_secs(10), "the later sample", || {
        prometheus.query("jobs_done_total").first().is_some_and(|(_, v)| *v == 6.0)
    });
    assert!(agent.stop().success());
}

#[test]
fn delta_sums_become_cumulative_series() {
    let prometheus = Prometheus::start("");
    let agent = agent(&prometheus);
    let delta = |value: f64, time: u64| {
        let mut metric = counter("orders.placed", value, time);
        if let Some(Data::Sum(sum)) = &mut metric.data {
            sum.aggregation_temporality = AggregationTemporality::Delta as i32;
        }
        metric
    };
    let t = now_nanos();
    send(&agent, request(vec![delta(3.0, t - 2_000_000_000)]));
    prometheus.wait_for("orders_placed_total");
    send(&agent, request(vec![delta(4.0, t)]));
    wait_until(Duration::from_secs(10), "the running total", || {
        prometheus.query("orders_placed_total").first().is_some_and(|(_, v)| *v == 7.0)
    });
    // rate() sees a counter that only grows.
    let increase = prometheus.wait_for("increase(orders_placed_total[1m])");
    assert!(increase[0].1 > 0.0, "{increase:?}");
    assert_eq!(agent.metric("ocelot_exporter_dropped_items_total", ""), 0.0);
    assert!(agent.stop().success());
}

#[test]
fn the_prometheus_exporter_is_scraped_by_prometheus() {
    let agent = Agent::start(
        r#"
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
exporters:
  prometheus:
    endpoint: 127.0.0.1:0
    namespace: app
    const_labels: { region: eu }
service:
  pipelines:
    metrics:
      receivers: [otlp]
      exporters: [prometheus]
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#,
    );
    let target = agent.prometheus_exporter("prometheus");
    let t = now_nanos();
    let mut delta = counter("orders.placed", 3.0, t);
    if let Some(Data::Sum(sum)) = &mut delta.data {
        sum.aggregation_temporality = AggregationTemporality::Delta as i32;
    }
    send(&agent, request(vec![counter("http.server.requests", 7.0, t), delta.clone()]));
    // The next delta window (the same window again would be a retry, not added twice).
    let mut later = delta;
    if let Some(Data::Sum(sum)) = &mut later.data {
        sum.data_points[0].start_time_unix_nano = t;
        sum.data_points[0].time_unix_nano = t + 1_000_000_000;
    }
    send(&agent, request(vec![later]));
    // What Prometheus will scrape, in the text format. The receiver answers once the
    // batches are in the pipeline; the exporter serves them a moment later.
    let mut text = String::new();
    wait_until(Duration::from_secs(10), "both batches served", || {
        let (status, headers, body) = http_get(target, "/metrics");
        assert_eq!(status, 200);
        assert!(headers.get("content-type").unwrap().starts_with("text/plain; version=0.0.4"), "{headers:?}");
        text = String::from_utf8(body).unwrap();
        text.lines().any(|l| l.starts_with("app_orders_placed_total{") && l.ends_with(" 6"))
    });
    assert!(text.contains("# TYPE app_http_server_requests_total counter\n"), "{text}");
    let prometheus = Prometheus::start(&format!(
        "scrape_configs:\n  - job_name: ocelot\n    honor_labels: true\n    static_configs:\n      - targets: ['{target}']\n"
    ));
    let result = prometheus.wait_for(r#"app_http_server_requests_total{job="shop/api"}"#);
    let (labels, value) = &result[0];
    assert_eq!(*value, 7.0);
    assert_eq!(labels["region"], "eu");
    assert_eq!(labels["instance"], "pod-1");
    assert_eq!(labels["otel_scope_name"], "checkout");
    // Two deltas of 3: served as their running total.
    assert_eq!(prometheus.wait_for("app_orders_placed_total")[0].1, 6.0);
    assert_eq!(prometheus.wait_for("app_target_info")[0].0["host_name"], "node-7");
    // Prometheus first: its keep-alive scrape connection would hold the shutdown's drain.
    drop(prometheus);
    assert!(agent.stop().success());
}

#[test]
fn exponential_histograms_become_native_histograms() {
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogram, ExponentialHistogramDataPoint, exponential_histogram_data_point::Buckets,
    };
    let prometheus = Prometheus::start_with("", &["--enable-feature=native-histograms"]);
    let agent = agent(&prometheus);
    let metric = Metric {
        name: "request.latency".into(),
        unit: "s".into(),
        data: Some(Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![ExponentialHistogramDataPoint {
                time_unix_nano: now_nanos(),
                count: 12,
                sum: Some(30.5),
                scale: 2,
                zero_count: 1,
                positive: Some(Buckets { offset: 3, bucket_counts: vec![4, 0, 0, 0, 5, 2] }),
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Default::default()
    };
    send(&agent, request(vec![metric]));
    assert_eq!(prometheus.wait_for("histogram_count(request_latency_seconds)")[0].1, 12.0);
    assert_eq!(prometheus.wait_for("histogram_sum(request_latency_seconds)")[0].1, 30.5);
    // Buckets: 4 in (2^(3/4), 2^(4/4)] = (1.68, 2]; the median falls in the bucket
    // holding observations 6 and 7, (2^(7/4), 2^(8/4)] = (3.36, 4].
    let median = prometheus.wait_for("histogram_quantile(0.5, request_latency_seconds)")[0].1;
    assert!((3.36..=4.0).contains(&median), "{median}");
    assert_eq!(agent.metric("ocelot_exporter_dropped_items_total", ""), 0.0);
    assert!(agent.stop().success());
}

//! End to end with real clients: the OpenTelemetry Python SDK sends traces, metrics
//! and logs over OTLP/gRPC and OTLP/HTTP to one ocelot, which forwards with the `otlp`
//! and `otlphttp` exporters to a second ocelot writing one `file` exporter per
//! transport. Every span, data point and log record must arrive with its attributes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

const COUNT: usize = 20;

/// `[{key, value}]` → key → value, the OTLP JSON attribute list as a map.
fn attributes(list: &Value) -> BTreeMap<String, Value> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|kv| (kv["key"].as_str().unwrap().to_string(), kv["value"].clone()))
        .collect()
}

struct Received {
    spans: BTreeMap<String, (Value, BTreeMap<String, Value>)>,
    logs: BTreeMap<String, BTreeMap<String, Value>>,
    /// (metric name, proto attribute) → data point.
    points: BTreeMap<(String, String), Value>,
    resources: Vec<BTreeMap<String, Value>>,
}

fn read(path: &Path) -> Received {
    let mut received =
        Received { spans: BTreeMap::new(), logs: BTreeMap::new(), points: BTreeMap::new(), resources: vec![] };
    for line in read_json_lines(path) {
        for rs in line["resourceSpans"].as_array().into_iter().flatten() {
            received.resources.push(attributes(&rs["resource"]["attributes"]));
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for span in ss["spans"].as_array().into_iter().flatten() {
                    let name = span["name"].as_str().unwrap().to_string();
                    assert!(
                        received.spans.insert(name.clone(), (span.clone(), attributes(&span["attributes"]))).is_none(),
                        "span {name} twice"
                    );
                }
            }
        }
        for rl in line["resourceLogs"].as_array().into_iter().flatten() {
            for sl in rl["scopeLogs"].as_array().into_iter().flatten() {
                for record in sl["logRecords"].as_array().into_iter().flatten() {
                    let body = record["body"]["stringValue"].as_str().unwrap().to_string();
                    assert!(
                        received.logs.insert(body.clone(), attributes(&record["attributes"])).is_none(),
                        "log {body} twice"
                    );
                }
            }
        }
        for rm in line["resourceMetrics"].as_array().into_iter().flatten() {
            for sm in rm["scopeMetrics"].as_array().into_iter().flatten() {
                for metric in sm["metrics"].as_array().into_iter().flatten() {
                    let name = metric["name"].as_str().unwrap().to_string();
                    let points =
                        metric["sum"]["dataPoints"].as_array().or(metric["histogram"]["dataPoints"].as_array());
                    for point in points.into_iter().flatten() {
                        let proto =
                            attributes(&point["attributes"])["proto"]["stringValue"].as_str().unwrap().to_string();
                        received.points.insert((name.clone(), proto), point.clone());
                    }
                }
            }
        }
    }
    received
}

fn complete(received: &Received) -> bool {
    received.spans.len() == 2 * COUNT && received.logs.len() == 2 * COUNT && received.points.len() == 4
}

#[test]
fn python_sdk_over_grpc_and_http_through_two_ocelots() {
    let python = test_python();
    let downstream = Agent::start(
        r#"
receivers:
  otlp/grpc:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
  otlp/http:
    protocols:
      http:
        endpoint: 127.0.0.1:0
exporters:
  file/grpc:
    path: "{dir}/grpc.jsonl"
  file/http:
    path: "{dir}/http.jsonl"
service:
  pipelines:
    traces/grpc:  { receivers: [otlp/grpc], exporters: [file/grpc] }
    metrics/grpc: { receivers: [otlp/grpc], exporters: [file/grpc] }
    logs/grpc:    { receivers: [otlp/grpc], exporters: [file/grpc] }
    traces/http:  { receivers: [otlp/http], exporters: [file/http] }
    metrics/http: { receivers: [otlp/http], exporters: [file/http] }
    logs/http:    { receivers: [otlp/http], exporters: [file/http] }
  telemetry:
    metrics:
      level: none
"#,
    );
    let upstream = Agent::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: 127.0.0.1:0
processors:
  batch:
    timeout: 100ms
exporters:
  otlp:
    endpoint: {grpc}
    tls:
      insecure: true
  otlphttp:
    endpoint: http://{http}
    compression: zstd
extensions:
  health_check:
    endpoint: 127.0.0.1:0
service:
  extensions: [health_check]
  pipelines:
    traces:  {{ receivers: [otlp], processors: [batch], exporters: [otlp, otlphttp] }}
    metrics: {{ receivers: [otlp], processors: [batch], exporters: [otlp, otlphttp] }}
    logs:    {{ receivers: [otlp], processors: [batch], exporters: [otlp, otlphttp] }}
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#,
        grpc = downstream.grpc("otlp/grpc"),
        http = downstream.http("otlp/http"),
    ));
    let (status, _, body) = http_get(upstream.health_addr("health_check"), "/");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    let run = format!("run-{}", std::process::id());
    let output = Command::new(&python)
        .arg(repo_path("tests/python/send_otlp.py"))
        .args(["--grpc", &upstream.grpc("otlp").to_string()])
        .args(["--http", &upstream.http("otlp").to_string()])
        .args(["--run", &run, "--count", &COUNT.to_string()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the Python client failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        upstream.log_text()
    );

    for transport in ["grpc", "http"] {
        let path = downstream.dir.path().join(format!("{transport}.jsonl"));
        wait_until(Duration::from_secs(20), &format!("everything through {transport}"), || complete(&read(&path)));
        let received = read(&path);
        for proto in ["grpc", "http"] {
            for i in 0..COUNT {
                let (span, attrs) = &received.spans[&format!("span-{proto}-{i}")];
                assert_eq!(attrs["run"]["stringValue"], run.as_str());
                assert_eq!(attrs["proto"]["stringValue"], proto);
                assert_eq!(attrs["index"]["intValue"], i.to_string());
                assert_eq!(attrs["ok"]["boolValue"], true);
                assert_eq!(attrs["ratio"]["doubleValue"], 0.5);
                assert_eq!(attrs["tags"]["arrayValue"]["values"][1]["stringValue"], "b");
                assert_eq!(span["traceId"].as_str().unwrap().len(), 32);
                assert_eq!(span["spanId"].as_str().unwrap().len(), 16);
                assert_eq!(span["events"][0]["name"], "checkpoint");
                assert_eq!(attributes(&span["events"][0]["attributes"])["step"]["intValue"], i.to_string());

                let log = &received.logs[&format!("log-{proto}-{i}")];
                assert_eq!(log["run"]["stringValue"], run.as_str());
                assert_eq!(log["index"]["intValue"], i.to_string());
            }
            let counter = &received.points[&("ocelot.test.requests".to_string(), proto.to_string())];
            assert_eq!(counter["asInt"], "5");
            assert_eq!(attributes(&counter["attributes"])["run"]["stringValue"], run.as_str());
            let histogram = &received.points[&("ocelot.test.latency".to_string(), proto.to_string())];
            assert_eq!(histogram["count"], "3");
            assert_eq!(histogram["sum"], 6.0);
        }
        let services: Vec<&str> = received
            .resources
            .iter()
            .filter_map(|r| r.get("service.name").and_then(|v| v["stringValue"].as_str()))
            .collect();
        assert!(services.contains(&"e2e-grpc") && services.contains(&"e2e-http"), "{services:?}");
    }

    let items = (2 * COUNT) as f64;
    assert_eq!(upstream.metric("otelcol_receiver_accepted_spans_total", ""), items);
    assert_eq!(upstream.metric("otelcol_receiver_accepted_log_records_total", ""), items);
    upstream.wait_metric("otelcol_exporter_sent_spans_total", "exporter=\"otlp\"", items);
    upstream.wait_metric("otelcol_exporter_sent_spans_total", "exporter=\"otlphttp\"", items);
    // The SDK exports its cumulative metrics at flush and again at shutdown.
    let points = upstream.metric("otelcol_receiver_accepted_metric_points_total", "");
    assert!(points >= 4.0);
    upstream.wait_metric("otelcol_exporter_sent_metric_points_total", "exporter=\"otlp\"", points);
    upstream.wait_metric("otelcol_exporter_sent_metric_points_total", "exporter=\"otlphttp\"", points);
    assert!(upstream.metric("otelcol_processor_batch_batch_send_size_count", "processor=\"batch\"") >= 1.0);
    assert!(upstream.metric("otelcol_process_memory_rss", "") > 1e6);

    assert!(upstream.stop().success());
    assert!(downstream.stop().success());
}

/// The processing layer a real agent config has, with the current component names
/// beside the old ones: the Python SDK sends through resourcedetection, resource,
/// attributes, transform, filter and batch to a file, and every change is what
/// upstream documents for the same config.
#[test]
fn python_sdk_through_the_processing_layer() {
    let python = test_python();
    let agent = Agent::start_under(
        &["env", "OTEL_RESOURCE_ATTRIBUTES=team=observability,tier=agent%20one"],
        r#"
receivers:
  otlp:
    protocols:
      grpc: { endpoint: 127.0.0.1:0 }
      http: { endpoint: 127.0.0.1:0 }
processors:
  resource_detection:
    detectors: [env, system]
    system:
      hostname_sources: [os]
      resource_attributes:
        host.arch: { enabled: true }
  resource:
    attributes:
      - { key: deployment.environment, value: e2e, action: upsert }
      - { key: run, action: delete }
  attributes:
    actions:
      - { key: ratio, action: delete }
      - { key: proto_hash, from_attribute: proto, action: insert }
      - { key: proto_hash, action: hash }
  transform:
    error_mode: ignore
    trace_statements:
      - 'set(span.attributes["route"], Concat(["r", span.name], "-")) where span.kind == SPAN_KIND_INTERNAL'
      - 'set(resource.attributes["transformed"], true)'
    log_statements:
      - context: log
        statements:
          - 'set(severity_text, "CHECKED")'
          - 'set(attributes["upper"], ToUpperCase(body))'
    metric_statements:
      - 'set(metric.description, "via ocelot") where metric.name == "ocelot.test.requests"'
  filter:
    trace_conditions:
      - 'span.attributes["index"] == 0'
    log_conditions:
      - 'log.attributes["index"] == 1'
    metrics:
      metric:
        - 'name == "ocelot.test.latency"'
  batch:
    timeout: 100ms
exporters:
  file:
    path: "{dir}/out.jsonl"
service:
  pipelines:
    traces:  { receivers: [otlp], processors: [resource_detection, resource, attributes, transform, filter, batch], exporters: [file] }
    metrics: { receivers: [otlp], processors: [resource_detection, resource, attributes, transform, filter, batch], exporters: [file] }
    logs:    { receivers: [otlp], processors: [resource_detection, resource, attributes, transform, filter, batch], exporters: [file] }
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#,
        &[],
    );
    let run = format!("run-{}", std::process::id());
    let output = Command::new(&python)
        .arg(repo_path("tests/python/send_otlp.py"))
        .args(["--grpc", &agent.grpc("otlp").to_string()])
        .args(["--http", &agent.http("otlp").to_string()])
        .args(["--run", &run, "--count", &COUNT.to_string()])
        .output()
        .unwrap();
    assert!(output.status.success(), "the Python client failed: {}", String::from_utf8_lossy(&output.stderr));

    let path = agent.dir.path().join("out.jsonl");
    // Index 0 of each transport's spans and index 1 of its logs are filtered out, and
    // the latency histogram; the requests counter stays, one point per transport.
    let done =
        |r: &Received| r.spans.len() == 2 * (COUNT - 1) && r.logs.len() == 2 * (COUNT - 1) && r.points.len() == 2;
    wait_until(Duration::from_secs(20), "everything through the processors", || done(&read(&path)));
    let received = read(&path);
    let hashes = [
        ("grpc", "b389db1475dc52e4ab270c6a1ed9210a60bcffb35bd7795303b0f0ed2a9c2a31"),
        ("http", "e0603c499aae47eb89343ad0ef3178e044c62e70ae2309b35591d1d49a3211ec"),
    ];
    for (proto, hash) in hashes {
        assert!(!received.spans.contains_key(&format!("span-{proto}-0")));
        assert!(!received.logs.contains_key(&format!("log-{proto}-1")));
        for i in 1..COUNT {
            let name = format!("span-{proto}-{i}");
            let (_, attrs) = &received.spans[&name];
            assert_eq!(attrs["route"]["stringValue"], format!("r-{name}"));
            assert_eq!(attrs["proto_hash"]["stringValue"], hash);
            assert_eq!(attrs["proto"]["stringValue"], proto, "hash writes proto_hash, not proto");
            assert!(!attrs.contains_key("ratio"));
        }
        for i in (0..COUNT).filter(|i| *i != 1) {
            let body = format!("log-{proto}-{i}");
            let attrs = &received.logs[&body];
            assert_eq!(attrs["upper"]["stringValue"], body.to_uppercase());
            assert_eq!(attrs["proto_hash"]["stringValue"], hash);
        }
        let point = &received.points[&("ocelot.test.requests".to_string(), proto.to_string())];
        assert_eq!(attributes(&point["attributes"])["proto_hash"]["stringValue"], hash);
    }
    assert!(!received.points.keys().any(|(name, _)| name == "ocelot.test.latency"));
    let lines = read_json_lines(&path);
    for line in &lines {
        for resource in ["resourceSpans", "resourceLogs", "resourceMetrics"]
            .iter()
            .flat_map(|k| line[*k].as_array().into_iter().flatten())
        {
            let attrs = attributes(&resource["resource"]["attributes"]);
            assert_eq!(attrs["team"]["stringValue"], "observability", "{attrs:?}");
            assert_eq!(attrs["tier"]["stringValue"], "agent one");
            assert_eq!(attrs["os.type"]["stringValue"], "linux");
            assert!(attrs["host.name"]["stringValue"].as_str().is_some_and(|h| !h.is_empty()));
            assert!(attrs.contains_key("host.arch"));
            assert_eq!(attrs["deployment.environment"]["stringValue"], "e2e");
            assert!(!attrs.contains_key("run"), "deleted by the resource processor");
            assert!(attrs["service.name"]["stringValue"].as_str().is_some_and(|s| s.starts_with("e2e-")));
        }
        for rs in line["resourceSpans"].as_array().into_iter().flatten() {
            assert_eq!(attributes(&rs["resource"]["attributes"])["transformed"]["boolValue"], true);
        }
        for rl in line["resourceLogs"].as_array().into_iter().flatten() {
            for record in rl["scopeLogs"][0]["logRecords"].as_array().into_iter().flatten() {
                assert_eq!(record["severityText"], "CHECKED");
            }
        }
        for rm in line["resourceMetrics"].as_array().into_iter().flatten() {
            for metric in rm["scopeMetrics"][0]["metrics"].as_array().into_iter().flatten() {
                assert_eq!(metric["description"], "via ocelot");
            }
        }
    }
    agent.wait_metric("otelcol_processor_filter_spans_filtered_total", "filter=\"filter\"", 2.0);
    agent.wait_metric("otelcol_processor_filter_logs_filtered_total", "filter=\"filter\"", 2.0);
    agent.wait_metric(
        "otelcol_processor_incoming_items_total",
        "processor=\"transform\",otel_signal=\"traces\"",
        (2 * COUNT) as f64,
    );
    assert!(agent.stop().success());
}

//! The `loki` exporter against an in-test push server (tests/common/loki.rs) that
//! decodes what Loki decodes and checks what Loki checks, and the tenant header. Then 429 (retried, delivered once) and 400 (not retried, counted).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::loki::Loki;
use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(Value::StringValue(value.into())) }),
        ..Default::default()
    }
}

fn record(body: &str, time: u64, attributes: Vec<KeyValue>) -> LogRecord {
    LogRecord {
        time_unix_nano: time,
        body: Some(AnyValue { value: Some(Value::StringValue(body.into())) }),
        attributes,
        trace_id: vec![0xab; 16],
        severity_text: "INFO".into(),
        severity_number: 9,
        ..Default::default()
    }
}

fn logs(resources: Vec<(Vec<KeyValue>, Vec<LogRecord>)>) -> Vec<u8> {
    ExportLogsServiceRequest {
        resource_logs: resources
            .into_iter()
            .map(|(attributes, records)| ResourceLogs {
                resource: Some(Resource { attributes, ..Default::default() }),
                scope_logs: vec![ScopeLogs { log_records: records, ..Default::default() }],
                ..Default::default()
            })
            .collect(),
    }
    .encode_to_vec()
}

fn agent(loki: &Loki, extra: &str) -> Agent {
    Agent::start_with_args(
        &format!(
            r#"
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
exporters:
  loki:
    endpoint: {}
    tenant_id: team-a
    labels:
      static: {{ env: prod }}
    retry_on_failure: {{ initial_interval: 100ms }}
{extra}
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [loki]
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#,
            loki.url()
        ),
        &["--shutdown-timeout", "2s"],
    )
}

fn send(agent: &Agent, body: Vec<u8>) {
    let (status, _, text) = http_post(agent.http("otlp"), "/v1/logs", "application/x-protobuf", &body);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&text));
}

const T: u64 = 1_763_800_000_000_000_000;

#[test]
fn streams_labels_order_and_structured_metadata_are_what_loki_accepts() {
    let loki = Loki::start(|_| (204, ""));
    let agent = agent(&loki, "");
    let api = vec![kv("service.name", "api"), kv("k8s.namespace.name", "shop"), kv("host.name", "node-7")];
    let formatted = vec![kv("service.name", "batch"), kv("loki.format", "json")];
    send(
        &agent,
        logs(vec![
            // Out of time order on purpose: the exporter sorts each stream.
            (api.clone(), vec![record("third", T + 3, vec![kv("user", "alice")]), record("first", T + 1, vec![])]),
            (vec![kv("host.name", "bare")], vec![record("no service", T, vec![])]),
            (api, vec![record("second", T + 2, vec![])]),
            (formatted, vec![record("as json", T, vec![kv("job.id", "42")])]),
        ]),
    );
    wait_until(Duration::from_secs(10), "five entries", || {
        loki.received.lock().unwrap().iter().map(|s| s.2.len()).sum::<usize>() == 5
    });
    let received = loki.received.lock().unwrap().clone();
    let find = |service: &str| received.iter().find(|s| s.0["service_name"] == service).unwrap();
    let (labels, tenant, entries) = find("api");
    assert_eq!(tenant, "team-a");
    assert_eq!(labels.len(), 3, "{labels:?}");
    assert_eq!((labels["env"].as_str(), labels["k8s_namespace_name"].as_str()), ("prod", "shop"));
    let lines: Vec<&str> = entries.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(lines, ["first", "second", "third"]);
    // Attributes that are not labels travel as structured metadata.
    let third = &entries[2].2;
    assert!(third.contains(&("user".into(), "alice".into())), "{third:?}");
    assert!(third.contains(&("host_name".into(), "node-7".into())), "{third:?}");
    assert!(third.contains(&("trace_id".into(), "ab".repeat(16))), "{third:?}");
    assert_eq!(find("unknown_service").2[0].1, "no service");
    let json = &find("batch").2[0];
    assert!(json.1.starts_with(r#"{"body":"as json","traceid":"abab"#), "{}", json.1);
    assert!(json.1.contains(r#""attributes":{"job.id":"42"}"#), "{}", json.1);
    assert!(!json.1.contains("loki.format"), "hints are not sent: {}", json.1);
    assert!(agent.stop().success());
}

#[test]
fn a_429_is_retried_and_delivered_once() {
    let loki = Loki::start(|n| if n == 0 { (429, "Ingestion rate limit exceeded") } else { (204, "") });
    let agent = agent(&loki, "");
    send(&agent, logs(vec![(vec![kv("service.name", "api")], vec![record("once", T, vec![])])]));
    wait_until(Duration::from_secs(10), "the entry", || !loki.received.lock().unwrap().is_empty());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(*loki.requests.lock().unwrap(), 2);
    assert_eq!(loki.received.lock().unwrap().iter().map(|s| s.2.len()).sum::<usize>(), 1);
    agent.wait_metric("otelcol_exporter_sent_log_records_total", "", 1.0);
    assert!(agent.stop().success());
}

#[test]
fn a_400_is_not_retried_and_is_counted_by_reason() {
    let loki = Loki::start(|_| (400, "entry too far behind, entry timestamp is: 2025-01-01T00:00:00Z"));
    let agent = agent(&loki, "");
    let records = (0..3).map(|i| record("old", T + i, vec![])).collect();
    send(&agent, logs(vec![(vec![kv("service.name", "api")], records)]));
    agent.wait_metric("ocelot_exporter_dropped_items_total", "reason=\"out_of_order\"", 3.0);
    agent.wait_metric("otelcol_exporter_send_failed_log_records_total", "", 3.0);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(*loki.requests.lock().unwrap(), 1, "a 400 is never retried");
    assert_eq!(agent.count_logs("Loki refused entries of this stream"), 1);
    assert_eq!(agent.count_logs("dropping data"), 0, "logged once, by the exporter");
    assert!(agent.stop().success());
}

/// One batch, one request per tenant (tenants `t0`, `t1`, … in that order), each
/// tenant's records `t<k> r<i>`.
fn tenants_batch(tenants: usize, records: usize) -> Vec<u8> {
    logs(
        (0..tenants)
            .map(|t| {
                let resource =
                    vec![kv("service.name", "api"), kv("loki.tenant", "tenant"), kv("tenant", &format!("t{t}"))];
                let records = (0..records).map(|i| record(&format!("t{t} r{i}"), T + i as u64, vec![])).collect();
                (resource, records)
            })
            .collect(),
    )
}

fn lines_received(loki: &Loki) -> Vec<String> {
    let mut lines: Vec<String> =
        loki.received.lock().unwrap().iter().flat_map(|s| s.2.iter().map(|e| e.1.clone())).collect();
    lines.sort();
    lines
}

#[test]
fn a_split_batch_settles_each_request_on_its_own() {
    // Request 0 (tenant t0) is taken, request 1 (t1) refused for good.
    let loki = Loki::start(|n| if n == 1 { (400, "bad labels") } else { (204, "") });
    let agent = agent(&loki, "");
    send(&agent, tenants_batch(2, 5));
    agent.wait_metric("otelcol_exporter_sent_log_records_total", "", 5.0);
    agent.wait_metric("otelcol_exporter_send_failed_log_records_total", "", 5.0);
    assert_eq!(lines_received(&loki), (0..5).map(|i| format!("t0 r{i}")).collect::<Vec<_>>());
    assert!(agent.stop().success());

    // Request 1 is throttled once: only it is sent again, nothing is delivered twice.
    let loki = Loki::start(|n| if n == 1 { (429, "slow down") } else { (204, "") });
    let agent = self::agent(&loki, "");
    send(&agent, tenants_batch(3, 4));
    agent.wait_metric("otelcol_exporter_sent_log_records_total", "", 12.0);
    assert_eq!(*loki.requests.lock().unwrap(), 4);
    assert_eq!(lines_received(&loki).len(), 12);
    let mut unique = lines_received(&loki);
    unique.dedup();
    assert_eq!(unique.len(), 12);
    assert_eq!(agent.metric("otelcol_exporter_send_failed_log_records_total", ""), 0.0);
    assert!(agent.stop().success());
}

#[test]
fn timeout_bounds_each_request_not_the_batch() {
    // Five requests of 400 ms each take 2 s; a 1 s timeout is per request.
    let loki = Loki::start_slow(Duration::from_millis(400), |_| (204, ""));
    let agent = agent(&loki, "    timeout: 1s\n");
    send(&agent, tenants_batch(5, 2));
    agent.wait_metric("otelcol_exporter_sent_log_records_total", "", 10.0);
    assert_eq!(*loki.requests.lock().unwrap(), 5, "no request was sent twice");
    assert_eq!(lines_received(&loki).len(), 10);
    assert_eq!(agent.count_logs("timed out"), 0);
    assert!(agent.stop().success());
}

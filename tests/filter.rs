//! The `filter` processor on logs with the real binary: OTTL conditions drop what
//! they match and count it; a bad condition is a config error at its line and column
//! inside the string; error_mode decides what a failing condition does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;

fn config(filter: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:0 }}
processors:
  filter:
{filter}
exporters:
  file:
    path: "{{dir}}/out.jsonl"
service:
  pipelines:
    logs:
      receivers: [otlp]
      processors: [filter]
      exporters: [file]
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#
    )
}

/// One request: (body, severity number) per record, one resource.
fn send(agent: &Agent, records: &[(&str, u32)]) -> u16 {
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|(body, severity)| serde_json::json!({ "severityNumber": severity, "body": { "stringValue": body } }))
        .collect();
    let body = serde_json::json!({
        "resourceLogs": [{
            "resource": { "attributes": [{ "key": "service.name", "value": { "stringValue": "api" } }] },
            "scopeLogs": [{ "scope": { "name": "lib" }, "logRecords": records }]
        }]
    });
    http_post(agent.http("otlp"), "/v1/logs", "application/json", body.to_string().as_bytes()).0
}

#[test]
fn conditions_drop_what_they_match_and_count_it() {
    let agent = Agent::start(&config(
        r#"    logs:
      log_record:
        - 'severity_number < SEVERITY_NUMBER_WARN'
        - 'IsMatch(body, "password")'
    log_conditions:
      - 'resource.attributes["service.name"] == "api" and log.body == "drop me too"'"#,
    ));
    assert_eq!(
        send(
            &agent,
            &[("debug noise", 5), ("disk full", 17), ("password=hunter2", 17), ("drop me too", 13), ("slow", 13)]
        ),
        200
    );
    // A request whose every record is dropped leaves nothing.
    assert_eq!(send(&agent, &[("all debug", 5)]), 200);
    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(10), "the kept records", || log_bodies(&read_json_lines(&out)).len() == 2);
    agent.wait_metric("otelcol_processor_filter_logs_filtered_total", "filter=\"filter\"", 4.0);
    agent.wait_metric("otelcol_processor_incoming_items_total", "otel_signal=\"logs\"", 6.0);
    agent.wait_metric("otelcol_processor_outgoing_items_total", "otel_signal=\"logs\"", 2.0);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(log_bodies(&read_json_lines(&out)), ["disk full", "slow"]);
    assert!(agent.stop().success());
}

#[test]
fn error_mode_ignore_keeps_the_record_and_propagate_drops_the_batch() {
    // A string body cannot be indexed: the condition fails on every record.
    let failing = "    logs:\n      log_record:\n        - 'body[\"k\"] == \"v\"'\n";
    let agent = Agent::start(&config(failing));
    assert_eq!(send(&agent, &[("kept", 9)]), 200);
    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(10), "the kept record", || log_bodies(&read_json_lines(&out)) == ["kept"]);
    agent.wait_metric("ocelot_processor_ottl_errors_total", "processor=\"filter\"", 1.0);
    assert_eq!(agent.count_logs("A filter condition failed on an item"), 1);
    assert!(agent.stop().success());

    let agent = Agent::start(&config(&format!("    error_mode: propagate\n{failing}")));
    assert_eq!(send(&agent, &[("dropped", 9)]), 200);
    agent.wait_metric("ocelot_processor_ottl_errors_total", "processor=\"filter\"", 1.0);
    std::thread::sleep(Duration::from_millis(300));
    assert!(log_bodies(&read_json_lines(&agent.dir.path().join("out.jsonl"))).is_empty());
    assert_eq!(agent.count_logs("the batch is dropped"), 1);
    assert!(agent.stop().success());
}

#[test]
fn a_bad_condition_is_an_error_inside_its_string() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    let text = config("    logs:\n      log_record:\n        - 'severity_number < SEVERITY_NUMBER_LOUD'\n");
    std::fs::write(&path, &text).unwrap();
    let output =
        std::process::Command::new(BIN).args(["validate", "--config", path.to_str().unwrap()]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Line 10 of the file; the enum starts 21 characters into the string, after the quote.
    let line = text.lines().position(|l| l.contains("SEVERITY_NUMBER_LOUD")).unwrap() + 1;
    let column = text.lines().nth(line - 1).unwrap().find("SEVERITY_NUMBER_LOUD").unwrap() + 1;
    let expected = format!("bad.yaml:{line}:{column}: error");
    assert!(stderr.contains(&expected), "{expected} not in {stderr}");
    assert!(stderr.contains("not an enum of the log context"), "{stderr}");

    // A path of another signal's context is an error at its place.
    let text = config("    log_conditions:\n      - 'span.name == \"x\"'\n");
    std::fs::write(&path, &text).unwrap();
    let output =
        std::process::Command::new(BIN).args(["validate", "--config", path.to_str().unwrap()]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`span` paths are not part of logs"), "{stderr}");

    // A signal takes OTTL conditions or a legacy match block, not both.
    let text = config(
        "    logs:\n      log_record: ['severity_number < 9']\n      include:\n        match_type: strict\n        bodies: [a]\n",
    );
    std::fs::write(&path, &text).unwrap();
    let output =
        std::process::Command::new(BIN).args(["validate", "--config", path.to_str().unwrap()]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot use OTTL conditions and include/exclude for logs"), "{stderr}");
}

/// The legacy blocks real configs still carry: a record stays if it matches include
/// and not exclude.
#[test]
fn legacy_match_blocks_keep_include_and_drop_exclude() {
    let agent = Agent::start(&config(
        r#"    logs:
      include:
        match_type: strict
        severity_number:
          min: WARN
        resource_attributes:
          - key: service.name
            value: api
      exclude:
        match_type: regexp
        bodies: ["^noise"]"#,
    ));
    assert_eq!(send(&agent, &[("debug", 5), ("disk full", 17), ("noise: retry", 13), ("slow", 13)]), 200);
    let out = agent.dir.path().join("out.jsonl");
    agent.wait_metric("otelcol_processor_filter_logs_filtered_total", "filter=\"filter\"", 2.0);
    wait_until(Duration::from_secs(10), "the kept records", || log_bodies(&read_json_lines(&out)).len() == 2);
    assert_eq!(log_bodies(&read_json_lines(&out)), ["disk full", "slow"]);
    assert!(agent.stop().success());
}

/// Spans and span events, metrics and data points, each level in its own context and
/// the inferred form: what matches goes, the rest stays, and each signal counts its own.
#[test]
fn traces_and_metrics_are_filtered_at_each_level() {
    let agent = Agent::start(
        r#"
receivers:
  otlp:
    protocols:
      http: { endpoint: 127.0.0.1:0 }
processors:
  filter:
    traces:
      span:
        - 'attributes["http.route"] == "/health"'
      spanevent:
        - 'name == "noise"'
    metrics:
      metric:
        - 'name == "debug.gauge"'
    metric_conditions:
      - 'datapoint.attributes["env"] == "test"'
    trace_conditions:
      - 'resource.attributes["service.name"] == "canary"'
exporters:
  file:
    path: "{dir}/out.jsonl"
service:
  pipelines:
    traces: { receivers: [otlp], processors: [filter], exporters: [file] }
    metrics: { receivers: [otlp], processors: [filter], exporters: [file] }
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#,
    );
    let span = |name: &str, route: &str, events: &[&str]| {
        let events: Vec<serde_json::Value> = events.iter().map(|e| serde_json::json!({ "name": e })).collect();
        serde_json::json!({
            "traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708", "name": name, "kind": 2,
            "attributes": [{ "key": "http.route", "value": { "stringValue": route } }], "events": events
        })
    };
    let resource = |service: &str, spans: Vec<serde_json::Value>| {
        serde_json::json!({
            "resource": { "attributes": [{ "key": "service.name", "value": { "stringValue": service } }] },
            "scopeSpans": [{ "scope": { "name": "lib" }, "spans": spans }]
        })
    };
    let traces = serde_json::json!({ "resourceSpans": [
        resource("api", vec![span("GET /health", "/health", &[]), span("GET /users", "/users", &["noise", "cache miss"])]),
        resource("canary", vec![span("GET /users", "/users", &[])]),
    ]});
    let status = http_post(agent.http("otlp"), "/v1/traces", "application/json", traces.to_string().as_bytes()).0;
    assert_eq!(status, 200);
    let point = |env: &str, value: f64| serde_json::json!({ "asDouble": value, "timeUnixNano": "1", "attributes": [{ "key": "env", "value": { "stringValue": env } }] });
    let metrics = serde_json::json!({ "resourceMetrics": [{ "scopeMetrics": [{ "metrics": [
        { "name": "debug.gauge", "gauge": { "dataPoints": [point("prod", 1.0)] } },
        { "name": "requests", "gauge": { "dataPoints": [point("prod", 2.0), point("test", 3.0)] } },
        { "name": "test.only", "gauge": { "dataPoints": [point("test", 4.0)] } },
    ]}]}]});
    let status = http_post(agent.http("otlp"), "/v1/metrics", "application/json", metrics.to_string().as_bytes()).0;
    assert_eq!(status, 200);

    agent.wait_metric("otelcol_processor_filter_spans_filtered_total", "filter=\"filter\"", 2.0);
    agent.wait_metric("otelcol_processor_filter_datapoints_filtered_total", "filter=\"filter\"", 3.0);
    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(10), "both signals written", || read_json_lines(&out).len() == 2);
    let lines = read_json_lines(&out);
    let traces = lines.iter().find(|l| l.get("resourceSpans").is_some()).unwrap();
    let spans = &traces["resourceSpans"][0]["scopeSpans"][0]["spans"];
    assert_eq!(traces["resourceSpans"].as_array().unwrap().len(), 1, "the canary resource is gone: {traces}");
    assert_eq!(spans.as_array().unwrap().len(), 1, "{traces}");
    assert_eq!(spans[0]["name"], "GET /users");
    let events: Vec<&str> =
        spans[0]["events"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(events, ["cache miss"]);
    let metrics = lines.iter().find(|l| l.get("resourceMetrics").is_some()).unwrap();
    let kept = &metrics["resourceMetrics"][0]["scopeMetrics"][0]["metrics"];
    assert_eq!(kept.as_array().unwrap().len(), 1, "a metric without points goes: {metrics}");
    assert_eq!(kept[0]["name"], "requests");
    assert_eq!(kept[0]["gauge"]["dataPoints"].as_array().unwrap().len(), 1);
    assert_eq!(kept[0]["gauge"]["dataPoints"][0]["asDouble"], 2.0);
    assert!(agent.stop().success());
}

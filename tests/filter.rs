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
    assert_eq!(agent.count_logs("A filter condition failed on a record"), 1);
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

    // Traces conditions are refused clearly until the span context exists.
    let text = config("    traces:\n      span:\n        - 'name == \"x\"'\n");
    std::fs::write(&path, &text).unwrap();
    let output =
        std::process::Command::new(BIN).args(["validate", "--config", path.to_str().unwrap()]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not supported yet"));
}

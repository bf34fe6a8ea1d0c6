//! The pipeline graph with the real binary: one receiver fanning out to two pipelines,
//! one exporter instance shared by two pipelines, and the `forward` connector joining
//! pipelines.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;

#[test]
fn fan_out_shared_exporter_and_forward_connector() {
    let agent = Agent::start(
        r#"
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
processors:
  batch:
    timeout: 50ms
connectors:
  forward:
exporters:
  file/a:
    path: "{dir}/a.jsonl"
  file/shared:
    path: "{dir}/shared.jsonl"
service:
  pipelines:
    logs/a:
      receivers: [otlp]
      exporters: [file/a, file/shared]
    logs/b:
      receivers: [otlp]
      processors: [batch]
      exporters: [forward]
    logs/c:
      receivers: [forward]
      exporters: [file/shared]
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#,
    );
    for i in 0..3 {
        let (status, _, _) =
            http_post(agent.http("otlp"), "/v1/logs", "application/json", &logs_json(&[format!("r{i}")]));
        assert_eq!(status, 200);
    }
    let a = agent.dir.path().join("a.jsonl");
    let shared = agent.dir.path().join("shared.jsonl");
    // a: once from logs/a. shared: once from logs/a and once via logs/b → forward → logs/c.
    wait_until(Duration::from_secs(10), "every copy", || {
        log_bodies(&read_json_lines(&a)).len() == 3 && log_bodies(&read_json_lines(&shared)).len() == 6
    });
    let mut bodies = log_bodies(&read_json_lines(&shared));
    bodies.sort();
    assert_eq!(bodies, vec!["r0", "r0", "r1", "r1", "r2", "r2"]);
    // One receiver: accepted once per request, whatever the fan-out.
    assert_eq!(agent.metric("otelcol_receiver_accepted_log_records_total", ""), 3.0);
    // One instance of file/shared, fed by two pipelines.
    agent.wait_metric("otelcol_exporter_sent_log_records_total", "exporter=\"file/shared\"", 6.0);
    assert_eq!(agent.metric("otelcol_exporter_queue_capacity", "exporter=\"file/shared\""), 1000.0);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(log_bodies(&read_json_lines(&shared)).len(), 6);
    assert!(agent.stop().success());
}

//! A config of the shape upstream's docs give for an agent, run unchanged: otlp,
//! filelog and hostmetrics in; resourcedetection, resource, attributes, transform,
//! filter and batch; out with otlp_grpc and otlphttp to a second ocelot. Old and new
//! component names are mixed in one file, as real configs mix them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn string_attr<'v>(attributes: &'v Value, key: &str) -> Option<&'v str> {
    attributes.as_array()?.iter().find(|kv| kv["key"] == key)?["value"]["stringValue"].as_str()
}

#[test]
fn an_upstream_shaped_agent_config_runs_unchanged() {
    let backend = Agent::start(
        r#"
receivers:
  otlp:
    protocols:
      grpc: { endpoint: 127.0.0.1:0 }
      http: { endpoint: 127.0.0.1:0 }
exporters:
  file:
    path: "{dir}/out.jsonl"
service:
  pipelines:
    logs: { receivers: [otlp], exporters: [file] }
    metrics: { receivers: [otlp], exporters: [file] }
  telemetry:
    metrics:
      level: none
"#,
    );
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("app.log");
    let config = format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: 127.0.0.1:0
        cors:
          allowed_origins: ["http://*", "https://*"]
  file_log:
    include: ["{logs}/*.log"]
    start_at: beginning
    operators:
      - type: regex_parser
        regex: '^(?P<level>[A-Z]+) (?P<msg>.*)$'
  hostmetrics:
    collection_interval: 1s
    scrapers:
      memory:
      system:

processors:
  memory_limiter:
    check_interval: 1s
    limit_percentage: 80
    spike_limit_percentage: 25
  resourcedetection:
    detectors: [env, system]
    system:
      hostname_sources: [os]
    timeout: 2s
    override: false
  resource:
    attributes:
      - key: deployment.environment
        value: production
        action: upsert
  attributes/logs:
    actions:
      - key: log.file.name
        action: delete
  transform:
    error_mode: ignore
    log_statements:
      - context: log
        statements:
          - set(severity_text, attributes["level"]) where attributes["level"] != nil
          - set(severity_number, SEVERITY_NUMBER_ERROR) where severity_text == "ERROR"
          - set(body, attributes["msg"]) where attributes["msg"] != nil
          - delete_key(attributes, "msg")
    metric_statements:
      - context: resource
        statements:
          - set(attributes["collector"], "ocelot")
  filter/drop_debug:
    error_mode: ignore
    logs:
      log_record:
        - 'severity_text == "DEBUG"'
    metrics:
      metric:
        - 'name == "system.memory.utilization"'
  batch:
    send_batch_size: 8192
    timeout: 200ms

extensions:
  zpages:
    endpoint: 127.0.0.1:0

exporters:
  otlp_grpc:
    endpoint: {grpc}
    tls:
      insecure: true
    sending_queue:
      queue_size: 100000
      sizer: items
      batch:
        flush_timeout: 100ms
        min_size: 1000
        max_size: 2000
  otlphttp:
    endpoint: http://{http}

service:
  extensions: [zpages]
  pipelines:
    logs:
      receivers: [otlp, file_log]
      processors: [memory_limiter, resourcedetection, resource, attributes/logs, transform, filter/drop_debug, batch]
      exporters: [otlp_grpc]
    metrics:
      receivers: [otlp, hostmetrics]
      processors: [memory_limiter, resourcedetection, resource, transform, filter/drop_debug, batch]
      exporters: [otlphttp]
  telemetry:
    logs:
      level: info
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: 0
"#,
        logs = logs.path().display(),
        grpc = backend.grpc("otlp"),
        http = backend.http("otlp"),
    );
    let mut file = std::fs::File::create(&log_path).unwrap();
    writeln!(file, "INFO service started").unwrap();
    writeln!(file, "DEBUG cache warm").unwrap();
    writeln!(file, "ERROR disk full").unwrap();
    drop(file);

    // It validates as it is, then runs.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.yaml");
    std::fs::write(&path, &config).unwrap();
    let output =
        std::process::Command::new(BIN).args(["validate", "--config", path.to_str().unwrap()]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let agent = Agent::start(&config);

    let out = backend.dir.path().join("out.jsonl");
    let ready = || {
        let lines = read_json_lines(&out);
        let logs = lines.iter().filter(|l| l.get("resourceLogs").is_some()).count();
        let metrics = lines.iter().any(|l| {
            l["resourceMetrics"].as_array().into_iter().flatten().any(|rm| {
                rm["scopeMetrics"].as_array().into_iter().flatten().any(|sm| {
                    sm["metrics"].as_array().into_iter().flatten().any(|m| m["name"] == "system.memory.usage")
                })
            })
        });
        logs > 0 && log_bodies(&lines).len() >= 2 && metrics
    };
    wait_until(Duration::from_secs(20), "logs and host metrics at the backend", ready);
    let lines = read_json_lines(&out);
    assert_eq!(log_bodies(&lines), ["service started", "disk full"], "DEBUG dropped, bodies from the parser");
    for line in &lines {
        for rl in line["resourceLogs"].as_array().into_iter().flatten() {
            let resource = &rl["resource"]["attributes"];
            assert_eq!(string_attr(resource, "deployment.environment"), Some("production"));
            assert!(string_attr(resource, "host.name").is_some_and(|h| !h.is_empty()));
            assert_eq!(string_attr(resource, "os.type"), Some("linux"));
            for record in rl["scopeLogs"][0]["logRecords"].as_array().into_iter().flatten() {
                assert!(string_attr(&record["attributes"], "log.file.name").is_none(), "deleted: {record}");
                assert!(string_attr(&record["attributes"], "msg").is_none());
                if record["body"]["stringValue"] == "disk full" {
                    assert_eq!(record["severityText"], "ERROR");
                    assert_eq!(record["severityNumber"], 17);
                }
            }
        }
        for rm in line["resourceMetrics"].as_array().into_iter().flatten() {
            assert_eq!(string_attr(&rm["resource"]["attributes"], "collector"), Some("ocelot"));
            for sm in rm["scopeMetrics"].as_array().into_iter().flatten() {
                for metric in sm["metrics"].as_array().into_iter().flatten() {
                    assert_ne!(metric["name"], "system.memory.utilization", "filtered");
                }
            }
        }
    }
    // zPages show the running graph and its counters.
    let (status, _, body) = http_get(agent.zpages_addr("zpages"), "/debug/pipelinez");
    assert_eq!(status, 200);
    let page = String::from_utf8(body).unwrap();
    for part in [
        "<h2>logs</h2>",
        "file_log",
        "filter/drop_debug",
        "otlp_grpc",
        "otelcol_receiver_accepted_log_records_total{receiver=&quot;file_log&quot;",
    ] {
        assert!(page.contains(part), "{part} not in {page}");
    }
    let (status, _, body) = http_get(agent.zpages_addr("zpages"), "/debug/servicez");
    assert_eq!(status, 200);
    assert!(String::from_utf8(body).unwrap().contains(env!("CARGO_PKG_VERSION")));
    assert!(agent.stop().success());
    assert!(backend.stop().success());
}

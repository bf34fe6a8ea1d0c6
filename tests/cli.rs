//! The command line of the real binary: validate, components, version, exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::*;

fn ocelot(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(BIN).args(args).env_remove("RUST_LOG").output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn validate_accepts_the_embedded_default_and_a_good_file() {
    let (code, stdout, _) = ocelot(&["validate"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("config is valid (the embedded default config)"));

    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, "receivers:\n  otlp:\n    protocols:\n      http:\nexporters:\n  debug:\nservice:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      exporters: [debug]\n").unwrap();
    let (code, stdout, stderr) = ocelot(&["validate", "--config", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("config is valid (1 file(s))"));
}

#[test]
fn validate_reports_every_error_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.yaml");
    let overlay = dir.path().join("overlay.yaml");
    std::fs::write(&base, "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpont: x\nexporters:\n  debug:\n  file:\n    path: out.json\n").unwrap();
    std::fs::write(
        &overlay,
        "service:\n  pipelines:\n    logs:\n      receivers: [otlp, kafka]\n      exporters: [debug]\n",
    )
    .unwrap();
    let (code, _, stderr) =
        ocelot(&["validate", "--config", base.to_str().unwrap(), "--config", overlay.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    let base_name = base.display().to_string();
    let overlay_name = overlay.display().to_string();
    assert!(stderr.contains(&format!("{base_name}:5:9: error: receiver `otlp`: unknown field `endpont`")), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{overlay_name}:4:25: error: pipeline `logs` references receivers `kafka`, which is not defined"
        )),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("{base_name}:8:3: warning: exporter `file` is defined but not used")), "{stderr}");
    assert!(stderr.contains("config is invalid: 2 error(s)"), "{stderr}");
}

#[test]
fn a_missing_file_and_an_invalid_config_exit_1_without_starting() {
    let (code, _, stderr) = ocelot(&["validate", "--config", "/nonexistent/ocelot.yaml"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot read config file `/nonexistent/ocelot.yaml`"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "receivers:\n  otlpp:\n").unwrap();
    let (code, _, stderr) = ocelot(&["--config", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("unknown receiver type `otlpp` (did you mean `otlp`?)"), "{stderr}");
}

#[test]
fn components_lists_every_kind_and_signal() {
    let (code, stdout, _) = ocelot(&["components"]);
    assert_eq!(code, 0);
    for expected in ["receivers:", "processors:", "exporters:", "connectors:", "extensions:", "health_check"] {
        assert!(stdout.contains(expected), "{stdout}");
    }
    let otlphttp = stdout.lines().find(|l| l.trim_start().starts_with("otlphttp")).unwrap();
    assert!(otlphttp.contains("traces, metrics, logs"), "{otlphttp}");
    // Upstream's 2025–2026 names are shown beside the old ones.
    for alias in ["otlphttp (also otlp_http)", "otlp (also otlp_grpc)", "filelog (also file_log)"] {
        assert!(stdout.contains(alias), "{stdout}");
    }
}

#[test]
fn old_and_new_component_names_work_in_one_config() {
    let logs = tempfile::tempdir().unwrap();
    std::fs::write(logs.path().join("a.log"), "from file_log\n").unwrap();
    let agent = Agent::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:0 }}
  file_log:
    include: ["{}/*.log"]
    start_at: beginning
  host_metrics:
    collection_interval: 1h
    scrapers: {{ load: }}
exporters:
  otlp_http:
    endpoint: http://127.0.0.1:1
  otlp_grpc/unused:
    endpoint: 127.0.0.1:1
  file:
    path: "{{dir}}/out.jsonl"
  prometheus_remote_write:
    endpoint: http://127.0.0.1:1/api/v1/write
service:
  pipelines:
    logs:
      receivers: [otlp, file_log]
      exporters: [file]
    metrics:
      receivers: [host_metrics]
      exporters: [prometheus_remote_write]
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#,
        logs.path().display()
    ));
    let out = agent.dir.path().join("out.jsonl");
    wait_until(std::time::Duration::from_secs(10), "the file_log line", || {
        log_bodies(&read_json_lines(&out)) == ["from file_log"]
    });
    assert!(agent.stop().success());
}

#[test]
fn version() {
    let (code, stdout, _) = ocelot(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(stdout.trim(), format!("ocelot {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn logs_are_json_with_log_format_json() {
    let agent = Agent::start(
        "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:0\nexporters:\n  debug:\nservice:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      exporters: [debug]\n  telemetry:\n    metrics:\n      level: none\n",
    );
    // Agent parses every stderr line as JSON; a non-JSON line would have no level.
    let running = agent.find_log("ocelot is running.").unwrap();
    assert_eq!(running["level"], "INFO");
    assert!(agent.stop().success());
}

#[test]
fn self_metrics_readers_resource_and_the_old_address() {
    let config = |metrics: &str| {
        format!(
            "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:0\nexporters:\n  debug:\nservice:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      exporters: [debug]\n  telemetry:\n    resource:\n      deployment.environment: test\n    metrics:\n{metrics}"
        )
    };
    // Upstream's current form.
    let agent = Agent::start(&config(
        "      readers:\n        - pull:\n            exporter:\n              prometheus:\n                host: 127.0.0.1\n                port: 0\n",
    ));
    let (status, _, body) = http_get(agent.metrics_addr(), "/metrics");
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    let info = text.lines().find(|l| l.starts_with("target_info{")).unwrap_or_else(|| panic!("{text}"));
    assert!(info.contains("deployment_environment=\"test\"") && info.contains("service_name=\"ocelot\""), "{info}");
    assert_eq!(agent.count_logs("deprecated"), 0);
    assert!(agent.stop().success());

    // The older `address` still works, with a warning.
    let agent = Agent::start(&config("      address: 127.0.0.1:0\n"));
    assert_eq!(http_get(agent.metrics_addr(), "/metrics").0, 200);
    assert_eq!(agent.count_logs("service.telemetry.metrics.address is deprecated"), 1);
    assert!(agent.stop().success());

    // Pushing self-metrics is refused at validation, naming the reader.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        config("      readers:\n        - periodic:\n            exporter:\n              otlp:\n                endpoint: x:4317\n"),
    )
    .unwrap();
    let (code, _, stderr) = ocelot(&["validate", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("`periodic` readers") && stderr.contains("c.yaml:"), "{stderr}");
}

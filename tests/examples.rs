//! The example configs in `config/examples/`: each is valid, and the process cost
//! reduction one runs as one config against this host. A stand-in database (a copy
//! of `sleep` named `redis-server`, idle and small) is kept by `always_include`,
//! scored critical and routed to the critical pipeline in every scrape, while the
//! rest of the host's processes take the standard and sampled routes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_ocelot");

#[test]
fn every_example_is_valid() {
    let dir = repo_path("config/examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let out = Command::new(BIN).arg("validate").arg("--config").arg(&path).output().unwrap();
        assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
        checked += 1;
    }
    assert!(checked >= 1, "no examples in {}", dir.display());
}

/// Resources of `file` whose `process.executable.name` is `name`, with their scores.
fn scores_of(lines: &[serde_json::Value], name: &str) -> Vec<f64> {
    let mut out = Vec::new();
    for line in lines {
        for r in line["resourceMetrics"].as_array().into_iter().flatten() {
            let attributes = r["resource"]["attributes"].as_array().cloned().unwrap_or_default();
            let get = |key: &str| attributes.iter().find(|kv| kv["key"] == key).map(|kv| kv["value"].clone());
            if get("process.executable.name").and_then(|v| v["stringValue"].as_str().map(str::to_string)).as_deref()
                == Some(name)
            {
                out.push(get("process.importance_score").and_then(|v| v["doubleValue"].as_f64()).unwrap_or(-1.0));
            }
        }
    }
    out
}

#[test]
fn process_cost_reduction_runs_as_one_config() {
    // The backend: an ocelot that writes what it gets to a file.
    let backend = Agent::start(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
exporters:
  file:
    path: {dir}/out.json
    flush_interval: 100ms
service:
  pipelines:
    metrics:
      receivers: [otlp]
      exporters: [file]
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#,
    );
    // A small, idle "database": under every threshold, kept by always_include.
    let fake = backend.dir.path().join("redis-server");
    std::fs::copy("/bin/sleep", &fake).unwrap();
    let mut database = Command::new(&fake).arg("600").stdout(Stdio::null()).spawn().unwrap();

    let example = std::fs::read_to_string(repo_path("config/examples/process-cost-reduction.yaml")).unwrap();
    let config = example
        .replace("${env:OCELOT_SCRAPE_INTERVAL:-10s}", "1s")
        .replace("${env:OCELOT_METRICS_PORT:-8888}", "0")
        .replace("${env:OTLP_ENDPOINT:-localhost:4317}", &backend.grpc("otlp").to_string())
        // Small batches so the test sees each route within seconds.
        .replace("timeout: 10s", "timeout: 500ms");
    let agent = Agent::start(&config);

    let out = backend.dir.path().join("out.json");
    wait_until(Duration::from_secs(60), "three scrapes of the database reach the backend", || {
        out.exists() && scores_of(&read_json_lines(&out), "redis-server").len() >= 3
    });
    let lines = read_json_lines(&out);
    let scores = scores_of(&lines, "redis-server");
    assert!(scores.iter().all(|s| *s == 0.9), "the database is critical in every scrape: {scores:?}");
    assert!(agent.metric("ocelot_routing_items_total", r#"route="metrics/critical""#) > 0.0);
    wait_until(Duration::from_secs(30), "the rest of the host takes the default route", || {
        agent.metric("ocelot_routing_items_total", r#"route="default""#) > 0.0
    });
    assert!(agent.metric("ocelot_importance_records_total", r#"tier="critical""#) > 0.0);
    // Every resource that arrived carries a score.
    for line in &lines {
        for r in line["resourceMetrics"].as_array().into_iter().flatten() {
            let has = r["resource"]["attributes"]
                .as_array()
                .is_some_and(|a| a.iter().any(|kv| kv["key"] == "process.importance_score"));
            assert!(has, "unscored resource: {r}");
        }
    }
    database.kill().unwrap();
    let _ = database.wait();
    agent.stop();
    backend.stop();
}

/// OTLP JSON: one cumulative counter from `service` (namespace shop) with its
/// environment attribute `key` = `environment`, if any.
fn service_metrics(service: &str, environment: Option<(&str, &str)>, value: f64) -> Vec<u8> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let mut attributes = vec![
        serde_json::json!({"key": "service.name", "value": {"stringValue": service}}),
        serde_json::json!({"key": "service.namespace", "value": {"stringValue": "shop"}}),
        serde_json::json!({"key": "service.instance.id", "value": {"stringValue": format!("{service}-1")}}),
    ];
    if let Some((key, environment)) = environment {
        attributes.push(serde_json::json!({"key": key, "value": {"stringValue": environment}}));
    }
    let point = serde_json::json!({"asDouble": value, "startTimeUnixNano": (now - 60_000_000_000).to_string(), "timeUnixNano": now.to_string()});
    serde_json::to_vec(&serde_json::json!({"resourceMetrics": [{
        "resource": {"attributes": attributes},
        "scopeMetrics": [{"metrics": [{
            "name": "http.server.requests",
            "sum": {"aggregationTemporality": 2, "isMonotonic": true, "dataPoints": [point]}
        }]}]
    }]}))
    .unwrap()
}

#[test]
fn prometheus_data_plane_serves_every_environment_to_a_real_prometheus() {
    let example = std::fs::read_to_string(repo_path("config/examples/prometheus-data-plane.yaml")).unwrap();
    let config = example
        .replace("${env:OCELOT_OTLP_GRPC:-0.0.0.0:4317}", "127.0.0.1:0")
        .replace("${env:OCELOT_OTLP_HTTP:-0.0.0.0:4318}", "127.0.0.1:0")
        .replace("${env:OCELOT_PROMETHEUS_ENDPOINT:-0.0.0.0:8889}", "127.0.0.1:0")
        .replace("${env:OCELOT_METRICS_PORT:-8888}", "0");
    let agent = Agent::start(&config);
    let http = agent.http("otlp");
    for (service, environment, value) in [
        ("checkout", Some(("deployment.environment.name", "production")), 5.0),
        ("search", Some(("deployment.environment", "staging")), 7.0),
        ("legacy", None, 11.0),
        ("sandbox", Some(("deployment.environment.name", "development")), 13.0),
    ] {
        let (status, _, body) =
            http_post(http, "/v1/metrics", "application/json", &service_metrics(service, environment, value));
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }

    let target = agent.prometheus_exporter("prometheus");
    let prometheus = prometheus::Prometheus::start(&format!(
        "scrape_configs:\n  - job_name: ocelot-data-plane\n    honor_labels: true\n    static_configs:\n      - targets: ['{target}']\n"
    ));
    let mut series = Vec::new();
    wait_until(Duration::from_secs(20), "the three environments scraped", || {
        series = prometheus.query("http_server_requests_total");
        series.len() >= 3
    });
    let mut seen: Vec<(String, String, String, f64)> = series
        .iter()
        .map(|(labels, value)| {
            assert_eq!(labels["data_plane"], "eu-1", "{labels:?}");
            let label = |k: &str| labels[k].as_str().unwrap().to_string();
            (label("environment"), label("job"), label("instance"), *value)
        })
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        vec![
            ("production".into(), "shop/checkout".into(), "checkout-1".into(), 5.0),
            ("staging".into(), "shop/search".into(), "search-1".into(), 7.0),
            ("unknown".into(), "shop/legacy".into(), "legacy-1".into(), 11.0),
        ],
        "development is filtered out"
    );
    assert!(agent.metric("otelcol_processor_filter_datapoints_filtered_total", "") >= 1.0);
    drop(prometheus);
    assert!(agent.stop().success());
}

#[test]
fn the_agent_and_gateway_examples_keep_errors_slow_traces_and_a_tenth_of_the_rest_whole() {
    let backend = Agent::start(
        r#"
receivers:
  otlp:
    protocols:
      grpc: { endpoint: 127.0.0.1:0 }
exporters:
  file:
    path: "{dir}/traces.jsonl"
service:
  pipelines:
    traces: { receivers: [otlp], exporters: [file] }
"#,
    );
    let example = std::fs::read_to_string(repo_path("config/examples/gateway.yaml")).unwrap();
    let config = example
        .replace("${env:OCELOT_OTLP_GRPC:-0.0.0.0:4317}", "127.0.0.1:0")
        .replace("${env:OCELOT_OTLP_HTTP:-0.0.0.0:4318}", "127.0.0.1:0")
        .replace("${env:OCELOT_BACKEND_ENDPOINT:-tempo:4317}", &backend.grpc("otlp").to_string())
        .replace("0.0.0.0:13133", "127.0.0.1:0")
        .replace("${env:OCELOT_METRICS_PORT:-8888}", "0")
        .replace("decision_wait: 10s", "decision_wait: 3s")
        .replace("decision_wait_after_root_received: 2s", "decision_wait_after_root_received: 1s");
    let gateway = Agent::start(&config);
    // The applications send to the agent example, which sends traces to the gateway
    // with loadbalancing: the gateway's name resolves to this one gateway.
    let gateway_addr = gateway.grpc("otlp");
    let agent_example = std::fs::read_to_string(repo_path("config/examples/gateway-agent.yaml")).unwrap();
    let agent_config = agent_example
        .replace("${env:OCELOT_OTLP_GRPC:-127.0.0.1:4317}", "127.0.0.1:0")
        .replace("${env:OCELOT_OTLP_HTTP:-127.0.0.1:4318}", "127.0.0.1:0")
        .replace("${env:OCELOT_GATEWAY_HOSTNAME:-ocelot-gateway-headless.observability.svc.cluster.local}", "127.0.0.1")
        .replace("${env:OCELOT_GATEWAY_PORT:-4317}", &gateway_addr.port().to_string())
        .replace(
            "${env:OCELOT_GATEWAY_ENDPOINT:-ocelot-gateway.observability.svc.cluster.local:4317}",
            &gateway_addr.to_string(),
        )
        .replace("${env:OCELOT_METRICS_PORT:-8888}", "0");
    let agent = Agent::start(&agent_config);
    let ids = gateway.dir.path().join("ids.jsonl");
    let output = Command::new(test_python())
        .arg(repo_path("tests/python/send_traces.py"))
        .args(["--grpc", &agent.grpc("otlp").to_string(), "--phase", "first", "--count", "60"])
        .arg("--ids")
        .arg(&ids)
        .output()
        .unwrap();
    assert!(output.status.success(), "the Python client failed: {}", String::from_utf8_lossy(&output.stderr));
    let mut wanted = std::collections::BTreeSet::new();
    for t in read_json_lines(&ids) {
        let id = t["trace_id"].as_str().unwrap().to_string();
        if t["kind"] != "ordinary" || tail_probabilistic("default-hash-seed", &unhex(&id), 10.0) {
            wanted.insert(id);
        }
    }
    let path = backend.dir.path().join("traces.jsonl");
    let spans_by_trace = || {
        let mut got: std::collections::BTreeMap<String, usize> = Default::default();
        for line in read_json_lines(&path) {
            for rs in line["resourceSpans"].as_array().into_iter().flatten() {
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    for span in ss["spans"].as_array().into_iter().flatten() {
                        *got.entry(span["traceId"].as_str().unwrap().to_string()).or_default() += 1;
                    }
                }
            }
        }
        got
    };
    let decided = "otelcol_processor_tail_sampling_global_count_traces_sampled_total";
    wait_until(Duration::from_secs(30), "every trace decided", || gateway.metric(decided, "") == 60.0);
    wait_until(Duration::from_secs(20), "the kept traces at the backend", || {
        spans_by_trace().values().sum::<usize>() == 3 * wanted.len()
    });
    let got = spans_by_trace();
    assert_eq!(got.keys().cloned().collect::<std::collections::BTreeSet<_>>(), wanted);
    assert!(got.values().all(|n| *n == 3), "every kept trace whole: {got:?}");
    assert_eq!(agent.metric("otelcol_loadbalancer_num_backends", "resolver=\"dns\""), 1.0);
    assert!(agent.stop().success());
    assert!(gateway.stop().success());
}

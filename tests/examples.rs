//! The example configs in `config/examples/`: each is valid, and the process cost
//! reduction one runs as one config against this host. A stand-in database (a copy
//! of `sleep` named `redis-server`, idle and small) is kept by `always_include`,
//! scored critical and routed to the critical pipeline in every scrape, while the
//! rest of the host's processes take the standard and sampled routes. The Kubernetes
//! agent and gateway run together, from the Python SDK to backends and a real
//! Prometheus.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::loki::Loki;
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

/// The Kubernetes examples' listening addresses moved to 127.0.0.1 and ports the
/// system picks, state into the agent's own directory.
fn on_loopback(example: &str) -> String {
    example
        .replace("endpoint: 0.0.0.0:4317", "endpoint: 127.0.0.1:0")
        .replace("endpoint: 0.0.0.0:4318", "endpoint: 127.0.0.1:0")
        .replace("endpoint: 0.0.0.0:13133", "endpoint: 127.0.0.1:0")
        .replace("host: 0.0.0.0", "host: 127.0.0.1")
        .replace("port: 8888", "port: 0")
        .replace("directory: /var/lib/ocelot", "directory: {dir}")
}

/// Trace id → span count, and one resource's attributes, in a file exporter's output.
fn spans_by_trace(path: &std::path::Path) -> (std::collections::BTreeMap<String, usize>, Option<serde_json::Value>) {
    let (mut got, mut resource) = (std::collections::BTreeMap::<String, usize>::new(), None);
    for line in read_json_lines(path) {
        for rs in line["resourceSpans"].as_array().into_iter().flatten() {
            resource = Some(rs["resource"]["attributes"].clone());
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for span in ss["spans"].as_array().into_iter().flatten() {
                    *got.entry(span["traceId"].as_str().unwrap().to_string()).or_default() += 1;
                }
            }
        }
    }
    (got, resource)
}

fn string_attribute(attributes: &serde_json::Value, key: &str) -> Option<String> {
    attributes.as_array()?.iter().find(|kv| kv["key"] == key)?["value"]["stringValue"].as_str().map(str::to_string)
}

/// The DaemonSet agent and the gateway examples, as one cluster: the Python SDK sends
/// traces from two regions to the agent, which sends them by trace id to the gateway
/// (loadbalancing over DNS); the gateway keeps errors, slow traces and a tenth of the
/// rest, whole, and routes them by cloud.region to the EU or the US backend. The
/// agent's host metrics and an EU service's metrics reach a real Prometheus through
/// each region's remote write; a container's log reaches Loki as the tenant.
#[test]
fn the_kubernetes_examples_sample_whole_traces_and_route_every_signal_by_region() {
    let prometheus = prometheus::Prometheus::start("");
    let loki = Loki::start(|_| (204, ""));
    let backend = Agent::start(
        r#"
receivers:
  otlp/eu:
    protocols:
      grpc: { endpoint: 127.0.0.1:0 }
  otlp/us:
    protocols:
      grpc: { endpoint: 127.0.0.1:0 }
exporters:
  file/eu_traces: { path: "{dir}/eu-traces.jsonl" }
  file/us_traces: { path: "{dir}/us-traces.jsonl" }
  file/eu_logs: { path: "{dir}/eu-logs.jsonl" }
  file/us_logs: { path: "{dir}/us-logs.jsonl" }
service:
  pipelines:
    traces/eu: { receivers: [otlp/eu], exporters: [file/eu_traces] }
    traces/us: { receivers: [otlp/us], exporters: [file/us_traces] }
    logs/eu: { receivers: [otlp/eu], exporters: [file/eu_logs] }
    logs/us: { receivers: [otlp/us], exporters: [file/us_logs] }
  telemetry:
    metrics:
      readers:
        - pull: { exporter: { prometheus: { host: 127.0.0.1, port: 0 } } }
"#,
    );
    let gateway_example = std::fs::read_to_string(repo_path("config/examples/gateway.yaml")).unwrap();
    let gateway_config = on_loopback(&gateway_example)
        .replace("insecure: false", "insecure: true")
        .replace("decision_wait: 10s", "decision_wait: 3s")
        .replace("decision_wait_after_root_received: 2s", "decision_wait_after_root_received: 1s");
    let (eu, us, write) =
        (backend.grpc("otlp/eu").to_string(), backend.grpc("otlp/us").to_string(), prometheus.write_url());
    let gateway = Agent::try_start_with_env(
        &[],
        &gateway_config,
        &[],
        &[
            ("OTLP_BACKEND_EU", &eu),
            ("OTLP_BACKEND_US", &us),
            ("PROMETHEUS_REMOTE_WRITE_EU", &write),
            ("PROMETHEUS_REMOTE_WRITE_US", &write),
            ("K8S_POD_NAME", "ocelot-gateway-0"),
        ],
    )
    .unwrap();
    let gateway_addr = gateway.grpc("otlp");
    let agent_example = std::fs::read_to_string(repo_path("config/examples/kubernetes-agent.yaml")).unwrap();
    let agent_metrics = free_port();
    let agent_config = on_loopback(&agent_example)
        .replace("port: 0", &format!("port: {agent_metrics}"))
        .replace("'127.0.0.1:8888'", &format!("'127.0.0.1:{agent_metrics}'"))
        .replace("scrape_interval: 30s", "scrape_interval: 1s")
        .replace("/var/log/pods/", "{dir}/pods/")
        .replace("root_path: /hostfs", "root_path: /")
        .replace("collection_interval: 30s", "collection_interval: 1s")
        .replace("hostname: ocelot-gateway-headless.ocelot.svc.cluster.local", "hostname: 127.0.0.1")
        .replace("port: \"4317\"", &format!("port: \"{}\"", gateway_addr.port()))
        .replace("endpoint: ocelot-gateway.ocelot.svc.cluster.local:4317", &format!("endpoint: {gateway_addr}"))
        .replace("  k8s_attributes:\n    filter:", "  k8s_attributes:\n    auth_type: kubeConfig\n    filter:")
        .replace(
            "    auth_type: serviceAccount\n    endpoint: https://${env:K8S_NODE_IP}:10250\n    insecure_skip_verify: true\n",
            "    auth_type: kubeConfig\n    endpoint: node-1\n",
        );
    // The node's pods, from an in-test API server (tests/common/kube_api.rs): the
    // checkout pod whose container log the agent tails, and the frontend pod whose
    // address (127.0.0.1 here) the OTLP comes from.
    let api = kube_api::KubeApi::start("agent-token");
    let pod = |name: &str, uid: &str, ip: &str, replicaset: &str| {
        serde_json::json!({
            "metadata": {"name": name, "namespace": "shop", "uid": uid,
                "labels": {"app": replicaset.split('-').next().unwrap(), "pod-template-hash": replicaset.rsplit('-').next().unwrap()},
                "ownerReferences": [{"kind": "ReplicaSet", "name": replicaset, "uid": format!("rs-{uid}"), "controller": true}]},
            "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "registry.local/shop/app:3.2"}]},
            "status": {"podIP": ip, "startTime": "2026-12-03T09:00:00Z"}
        })
    };
    api.add_pod(pod("checkout-7d9f", "0b1c", "10.42.0.7", "checkout-5c8d"));
    let mut frontend = pod("frontend-6b7c-q2", "9e8f", "127.0.0.1", "frontend-6b7c");
    // It asks to be scraped, on the port of an in-test page.
    let page_port = serve_connections(|stream| {
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        while std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) > 2 {
            line.clear();
        }
        let body = "# TYPE checkout_carts gauge\ncheckout_carts 7\n";
        let mut stream = stream;
        let _ = std::io::Write::write_all(
            &mut stream,
            format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes(),
        );
    });
    frontend["metadata"]["annotations"] =
        serde_json::json!({"prometheus.io/scrape": "true", "prometheus.io/port": page_port.to_string()});
    frontend["spec"]["containers"][0]["ports"] = serde_json::json!([{"containerPort": 8080}]);
    api.add_pod(frontend);
    // The kubelet's summary (tests/testdata/kubelet/), through the API server's proxy.
    api.add_pod(pod("web-5d9c8f-x1", "pod-web", "10.42.0.9", "web-5d9c8f"));
    let summary = std::fs::read_to_string(repo_path("tests/testdata/kubelet/summary.json")).unwrap();
    api.put_object("/api/v1/nodes/node-1/proxy/stats/summary", serde_json::from_str(&summary).unwrap());
    let kubeconfig = api.kubeconfig(backend.dir.path(), "agent-token");
    let agent_config = agent_config.replace(
        "            - role: pod\n              selectors:",
        &format!(
            "            - role: pod\n              kubeconfig_file: {}\n              selectors:",
            kubeconfig.display()
        ),
    );
    let loki_url = loki.url();
    let agent = Agent::try_start_with_env(
        &[],
        &agent_config,
        &[],
        &[("LOKI_ENDPOINT", &loki_url), ("K8S_NODE_NAME", "node-1"), ("KUBECONFIG", kubeconfig.to_str().unwrap())],
    )
    .unwrap();

    // A container that starts after the agent: its whole log is read.
    let container = agent.dir.path().join("pods/shop_checkout-7d9f_0b1c/app");
    std::fs::create_dir_all(&container).unwrap();
    std::fs::write(container.join("0.log"), "2026-12-03T10:00:00.000000000Z stdout F order 17 paid\n").unwrap();

    let mut wanted: std::collections::BTreeMap<&str, std::collections::BTreeSet<String>> = Default::default();
    for region in ["eu-west-1", "us-east-1"] {
        let ids = agent.dir.path().join(format!("{region}.jsonl"));
        let output = Command::new(test_python())
            .arg(repo_path("tests/python/send_traces.py"))
            .args(["--grpc", &agent.grpc("otlp").to_string(), "--phase", "first", "--count", "30"])
            .args(["--region", region, "--ids"])
            .arg(&ids)
            .output()
            .unwrap();
        assert!(output.status.success(), "the Python client failed: {}", String::from_utf8_lossy(&output.stderr));
        let kept = wanted.entry(if region.starts_with("eu-") { "eu" } else { "us" }).or_default();
        for t in read_json_lines(&ids) {
            let id = t["trace_id"].as_str().unwrap().to_string();
            if t["kind"] != "ordinary" || tail_probabilistic("default-hash-seed", &unhex(&id), 10.0) {
                kept.insert(id);
            }
        }
    }
    // An EU service's counter through the agent; an EU log straight to the gateway.
    let metrics = service_metrics("billing", Some(("cloud.region", "eu-central-1")), 42.0);
    let (status, _, body) = http_post(agent.http("otlp"), "/v1/metrics", "application/json", &metrics);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let log = serde_json::json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "cloud.region", "value": {"stringValue": "eu-west-1"}}]},
        "scopeLogs": [{"logRecords": [{"body": {"stringValue": "invoice 9 sent"}}]}]
    }]});
    let (status, _, body) =
        http_post(gateway.http("otlp"), "/v1/logs", "application/json", &serde_json::to_vec(&log).unwrap());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    let decided = "otelcol_processor_tail_sampling_global_count_traces_sampled_total";
    wait_until(Duration::from_secs(30), "every trace decided", || gateway.metric(decided, "") == 60.0);
    for region in ["eu", "us"] {
        let path = backend.dir.path().join(format!("{region}-traces.jsonl"));
        let want = &wanted[region];
        wait_until(Duration::from_secs(20), &format!("the kept {region} traces at the {region} backend"), || {
            spans_by_trace(&path).0.values().sum::<usize>() == 3 * want.len()
        });
        let (got, resource) = spans_by_trace(&path);
        assert_eq!(&got.keys().cloned().collect::<std::collections::BTreeSet<_>>(), want, "{region}");
        assert!(got.values().all(|n| *n == 3), "every kept trace whole: {got:?}");
        let resource = resource.unwrap();
        assert_eq!(string_attribute(&resource, "k8s.node.name").as_deref(), Some("node-1"), "{resource}");
        assert_eq!(string_attribute(&resource, "ocelot.gateway.pod").as_deref(), Some("ocelot-gateway-0"));
        // k8sattributes found the pod by the connection's address.
        assert_eq!(string_attribute(&resource, "k8s.pod.name").as_deref(), Some("frontend-6b7c-q2"), "{resource}");
        assert_eq!(string_attribute(&resource, "k8s.deployment.name").as_deref(), Some("frontend"));
        assert_eq!(string_attribute(&resource, "k8s.pod.labels.app").as_deref(), Some("frontend"));
    }
    assert_eq!(agent.metric("otelcol_loadbalancer_num_backends", "resolver=\"dns\""), 1.0);

    // Metrics: the EU counter by the EU remote write, the node's by the US one.
    let mut series = Vec::new();
    wait_until(Duration::from_secs(30), "the EU counter in Prometheus", || {
        series = prometheus.query("http_server_requests_total{cloud_region=\"eu-central-1\"}");
        !series.is_empty()
    });
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(series[0].1, 42.0);
    assert_eq!(series[0].0["k8s_node_name"], "node-1");
    assert_eq!(series[0].0["k8s_pod_name"], "frontend-6b7c-q2");
    wait_until(Duration::from_secs(30), "the node's memory in Prometheus", || {
        !prometheus.query("system_memory_usage_bytes{k8s_node_name=\"node-1\"}").is_empty()
    });
    // A pod on the node that asked to be scraped, found through the API.
    let carts = prometheus.wait_for(r#"checkout_carts{job="kubernetes-pods"}"#);
    assert_eq!(carts[0].1, 7.0);
    assert_eq!(
        (carts[0].0["pod"].as_str(), carts[0].0["namespace"].as_str()),
        (Some("frontend-6b7c-q2"), Some("shop"))
    );
    // The kubelet's figures for a pod, with its Deployment found by its uid.
    let pod_cpu = prometheus.wait_for(r#"{__name__=~"k8s_pod_cpu_usage.*",k8s_pod_name="web-5d9c8f-x1"}"#);
    assert_eq!(pod_cpu[0].1, 0.125, "{pod_cpu:?}");
    assert_eq!(pod_cpu[0].0["k8s_deployment_name"], "web", "{pod_cpu:?}");
    // The agent's own self-metrics, scraped, with start times, by the US remote write.
    let up = prometheus.wait_for(r#"up{job="ocelot-agent"}"#);
    assert_eq!(up[0].1, 1.0, "{up:?}");
    prometheus.wait_for(r#"otelcol_receiver_accepted_metric_points_total{job="ocelot-agent",k8s_node_name="node-1"}"#);
    let sent = "otelcol_exporter_sent_metric_points_total";
    assert_eq!(
        gateway.metric(sent, "exporter=\"prometheusremotewrite/eu\""),
        1.0,
        "only the EU counter went to the EU"
    );
    assert!(gateway.metric(sent, "exporter=\"prometheusremotewrite/us\"") > 1.0);

    // Logs: the EU log at the EU backend only; the container's line at Loki as the tenant.
    let eu_logs = backend.dir.path().join("eu-logs.jsonl");
    wait_until(Duration::from_secs(20), "the EU log at the EU backend", || {
        log_bodies(&read_json_lines(&eu_logs)) == ["invoice 9 sent"]
    });
    assert!(read_json_lines(&backend.dir.path().join("us-logs.jsonl")).is_empty());
    wait_until(Duration::from_secs(20), "the container's line at Loki", || {
        loki.received.lock().unwrap().iter().any(|s| s.2.iter().any(|e| e.1 == "order 17 paid"))
    });
    for (labels, tenant, _) in loki.received.lock().unwrap().iter() {
        assert_eq!(tenant, "platform", "{labels:?}");
    }
    // The container's line found its pod by the uid in its path.
    let received = loki.received.lock().unwrap();
    let (labels, _, _) = received.iter().find(|s| s.2.iter().any(|e| e.1 == "order 17 paid")).unwrap();
    assert_eq!(labels.get("k8s_deployment_name").map(String::as_str), Some("checkout"), "{labels:?}");
    drop(received);

    assert!(agent.stop().success());
    assert!(gateway.stop().success());
    assert!(backend.stop().success());
}

//! The `prometheus` receiver against real servers: it scrapes a real Prometheus
//! (Debian's, its own /metrics) and ocelot's own self-metrics, writes what it took
//! into that Prometheus by remote write, and the series and values there are compared
//! with the page Prometheus serves. An in-test target then checks what a target
//! sees (auth, Accept, the timeout header, gzip) and what a scrape does when a series
//! vanishes, the target fails, or the page does not parse.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::prometheus::Prometheus;
use common::*;

/// The metric names Prometheus would store for a page: each sample's name.
fn sample_names(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

#[test]
fn scrapes_prometheus_and_itself_into_a_real_prometheus() {
    let prometheus = Prometheus::start("");
    let agent = Agent::start(
        &format!(
            r#"
receivers:
  prometheus:
    config:
      scrape_configs:
        - job_name: prom
          scrape_interval: 1s
          static_configs:
            - targets: ['{}']
        - job_name: ocelot
          scrape_interval: 1s
          static_configs:
            - targets: ['127.0.0.1:{{metrics_port}}']
exporters:
  prometheusremotewrite:
    endpoint: {}
    resource_to_telemetry_conversion: {{ enabled: true }}
service:
  pipelines:
    metrics: {{ receivers: [prometheus], exporters: [prometheusremotewrite] }}
  telemetry:
    metrics:
      readers:
        - pull: {{ exporter: {{ prometheus: {{ host: 127.0.0.1, port: {{metrics_port}} }} }} }}
"#,
            prometheus.addr,
            prometheus.write_url()
        )
        .replace("{metrics_port}", &free_port().to_string()),
    );
    prometheus.wait_for(r#"up{job="prom"} == 1"#);
    prometheus.wait_for(r#"up{job="ocelot"} == 1"#);
    // Every name the page has is in Prometheus under job="prom", once a scrape after
    // the page was read has been written (a name can appear between two scrapes).
    let mut page = String::new();
    wait_until(Duration::from_secs(15), "every name of the page written", || {
        let (status, _, body) = http_request(prometheus.addr, "GET", "/metrics", &[("Accept", "text/plain")], &[]);
        assert_eq!(status, 200);
        page = String::from_utf8(body).unwrap();
        std::thread::sleep(Duration::from_millis(2500));
        let stored: BTreeSet<String> = prometheus
            .query(r#"count by (__name__) ({job="prom"})"#)
            .into_iter()
            .map(|(labels, _)| labels["__name__"].as_str().unwrap().to_string())
            .collect();
        sample_names(&page).iter().all(|n| stored.contains(n))
    });
    assert!(sample_names(&page).len() > 100, "a real page: {}", sample_names(&page).len());
    // A gauge and its labels as the page has them.
    let build = prometheus.query(r#"prometheus_build_info{job="prom"}"#);
    assert_eq!(build.len(), 1, "{build:?}");
    let version = page.lines().find(|l| l.starts_with("prometheus_build_info{")).unwrap();
    assert!(version.contains(&format!("version=\"{}\"", build[0].0["version"].as_str().unwrap())), "{version}");
    assert_eq!(build[0].1, 1.0);
    assert_eq!(build[0].0["instance"], prometheus.addr.to_string());
    // A classic histogram arrives whole: buckets, sum and count.
    let buckets = prometheus.query(r#"prometheus_http_request_duration_seconds_bucket{job="prom",handler="/-/ready"}"#);
    assert!(buckets.iter().any(|(l, _)| l["le"] == "+Inf"), "{buckets:?}");
    // ocelot's own page: its counters and the scrape's own series.
    prometheus.wait_for(r#"otelcol_exporter_sent_metric_points_total{job="ocelot"} > 0"#);
    let samples = prometheus.query(r#"scrape_samples_scraped{job="ocelot"}"#);
    assert!(samples[0].1 > 10.0, "{samples:?}");
    assert!(agent.metric("ocelot_receiver_prometheus_scrapes_total", "job=\"prom\"") >= 2.0);
    assert_eq!(agent.metric("ocelot_receiver_prometheus_targets", "job=\"prom\""), 1.0);
    assert!(agent.stop().success());
}

/// What the in-test target serves next, and what it saw.
#[derive(Default)]
struct Page {
    status: u16,
    body: String,
    openmetrics: bool,
    requests: Vec<Vec<String>>,
}

fn serve_page(page: Arc<Mutex<Page>>) -> u16 {
    serve_connections(move |stream| {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        loop {
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                if line == "\r\n" {
                    break;
                }
                head.push(line.trim_end().to_string());
            }
            let (status, body, openmetrics) = {
                let mut p = page.lock().unwrap();
                p.requests.push(head.clone());
                (p.status, p.body.clone(), p.openmetrics)
            };
            let gzip = head.iter().any(|h| h.to_ascii_lowercase().starts_with("accept-encoding: gzip"));
            let content = if gzip {
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                encoder.write_all(body.as_bytes()).unwrap();
                encoder.finish().unwrap()
            } else {
                body.into_bytes()
            };
            let content_type = if openmetrics {
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
            } else {
                "text/plain; version=0.0.4"
            };
            let encoding = if gzip { "Content-Encoding: gzip\r\n" } else { "" };
            let response = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n{encoding}Content-Length: {}\r\n\r\n",
                content.len()
            );
            if writer.write_all(response.as_bytes()).is_err() || writer.write_all(&content).is_err() {
                return;
            }
        }
    })
}

/// Points of metric `name` in the file exporter's output: (attributes, value, flags).
fn points(agent: &Agent, name: &str) -> Vec<(serde_json::Value, Option<f64>, u64)> {
    let mut out = Vec::new();
    for line in read_json_lines(&agent.dir.path().join("metrics.jsonl")) {
        for rm in line["resourceMetrics"].as_array().into_iter().flatten() {
            for sm in rm["scopeMetrics"].as_array().into_iter().flatten() {
                for m in sm["metrics"].as_array().into_iter().flatten().filter(|m| m["name"] == name) {
                    let data = m.get("sum").or(m.get("gauge")).unwrap();
                    for p in data["dataPoints"].as_array().unwrap() {
                        let flags = p["flags"].as_u64().unwrap_or(0);
                        out.push((p["attributes"].clone(), p["asDouble"].as_f64(), flags));
                    }
                }
            }
        }
    }
    out
}

fn has(attributes: &serde_json::Value, key: &str, value: &str) -> bool {
    attributes.as_array().is_some_and(|a| a.iter().any(|kv| kv["key"] == key && kv["value"]["stringValue"] == value))
}

#[test]
fn a_target_sees_auth_and_gzip_and_its_series_go_stale_when_they_vanish_or_it_fails() {
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("password"), "s3cret\n").unwrap();
    let page = Arc::new(Mutex::new(Page {
        status: 200,
        openmetrics: true,
        body: "# TYPE jobs counter\njobs_total{queue=\"a\"} 5\njobs_total{queue=\"b\"} 3\n# TYPE temp gauge\ntemp 20\ndebug_x 1\n# EOF\n".into(),
        ..Default::default()
    }));
    let port = serve_page(page.clone());
    let agent = Agent::start(&format!(
        r#"
receivers:
  prometheus:
    config:
      scrape_configs:
        - job_name: app
          scrape_interval: 1s
          scrape_timeout: 800ms
          basic_auth:
            username: scraper
            password_file: {}
          static_configs:
            - targets: ['127.0.0.1:{port}']
              labels: {{ team: core }}
          metric_relabel_configs:
            - source_labels: [__name__]
              regex: debug_.*
              action: drop
exporters:
  file:
    path: "{{dir}}/metrics.jsonl"
service:
  pipelines:
    metrics: {{ receivers: [prometheus], exporters: [file] }}
  telemetry:
    metrics:
      readers:
        - pull: {{ exporter: {{ prometheus: {{ host: 127.0.0.1, port: 0 }} }} }}
"#,
        secrets.path().join("password").display()
    ));
    wait_until(Duration::from_secs(10), "a first scrape", || !points(&agent, "jobs_total").is_empty());
    let jobs = points(&agent, "jobs_total");
    assert!(jobs.iter().any(|(a, v, _)| has(a, "queue", "a") && has(a, "team", "core") && *v == Some(5.0)), "{jobs:?}");
    assert!(points(&agent, "debug_x").is_empty(), "dropped by metric_relabel_configs");
    assert_eq!(points(&agent, "up")[0].1, Some(1.0));
    {
        let p = page.lock().unwrap();
        let original = p.requests[0].join("\n");
        assert!(original.contains("Basic c2NyYXBlcjpzM2NyZXQ="), "scraper:s3cret: {original}");
        let head = original.to_ascii_lowercase();
        assert!(head.starts_with("get /metrics http/1.1"), "{head}");
        assert!(head.contains("accept: application/openmetrics-text;version=1.0.0"), "{head}");
        assert!(head.contains("x-prometheus-scrape-timeout-seconds: 0.8"), "{head}");
        assert!(head.contains("accept-encoding: gzip"), "{head}");
    }

    // queue="b" vanishes: it gets a point with no recorded value.
    page.lock().unwrap().body =
        "# TYPE jobs counter\njobs_total{queue=\"a\"} 6\n# TYPE temp gauge\ntemp 21\n# EOF\n".into();
    wait_until(Duration::from_secs(10), "a staleness marker for queue b", || {
        points(&agent, "jobs_total").iter().any(|(a, v, f)| has(a, "queue", "b") && *f == 1 && v.is_none())
    });

    // The target fails: up is 0 and everything it had goes stale.
    page.lock().unwrap().status = 503;
    wait_until(Duration::from_secs(10), "up 0", || points(&agent, "up").iter().any(|(_, v, _)| *v == Some(0.0)));
    wait_until(Duration::from_secs(10), "temp stale", || points(&agent, "temp").iter().any(|(_, _, f)| *f == 1));
    assert!(agent.metric("ocelot_receiver_prometheus_scrape_failures_total", "reason=\"http\"") >= 1.0);

    // A page that does not parse fails the scrape whole.
    {
        let mut p = page.lock().unwrap();
        p.status = 200;
        p.body = "jobs_total{queue=\"a\" 7\n# EOF\n".into();
    }
    wait_until(Duration::from_secs(10), "a parse failure", || {
        agent.metric("ocelot_receiver_prometheus_scrape_failures_total", "reason=\"parse\"") >= 1.0
    });
    assert!(
        !points(&agent, "jobs_total").iter().any(|(_, v, _)| *v == Some(7.0)),
        "nothing of a page that does not parse is taken"
    );
    assert!(agent.stop().success());
}

#[test]
fn bad_scrape_configs_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    for (scrape, message) in [
        ("- job_name: a\n  scrape_interval: 10s\n  scrape_timeout: 20s", "longer than scrape_interval"),
        ("- job_name: a\n- job_name: a", "used twice"),
        ("- job_name: a\n  scheme: ftp", "scheme `ftp`"),
        ("- job_name: a\n  relabel_configs:\n    - action: hashmod\n      target_label: x", "modulus"),
        (
            "- job_name: a\n  kubernetes_sd_configs:\n    - role: service",
            "role `service` is not supported by ocelot yet",
        ),
        (
            "- job_name: a\n  kubernetes_sd_configs:\n    - role: pod\n      selectors: [{role: node, field: x=y}]",
            "does not match role `pod`",
        ),
        ("- job_name: a\n  scrape_interval: 1.5s", "invalid duration"),
    ] {
        let indented: String = scrape.lines().map(|l| format!("        {l}\n")).collect();
        let config = format!(
            "receivers:\n  prometheus:\n    config:\n      scrape_configs:\n{indented}exporters:\n  debug:\nservice:\n  pipelines:\n    metrics: {{ receivers: [prometheus], exporters: [debug] }}\n"
        );
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, config).unwrap();
        let out = std::process::Command::new(common::BIN).arg("validate").arg("--config").arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(message), "{scrape}: {stderr}");
    }
}

/// Targets from `kubernetes_sd_configs` against an in-test API server
/// (tests/common/kube_api.rs; no real one runs here): the node's pods that ask to be
/// scraped (the usual `prometheus.io/*` annotations and `labelmap`), kept to the node
/// by a field selector, and the nodes' kubelets; a pod that goes takes its target
/// with it.
#[test]
fn kubernetes_pods_and_nodes_are_discovered_and_follow_the_api() {
    let page = Arc::new(Mutex::new(Page {
        status: 200,
        body: "# TYPE orders counter\norders_total 12\n".into(),
        ..Default::default()
    }));
    let port = serve_page(page.clone());
    let api = common::kube_api::KubeApi::start("scraper-token");
    let pod = |name: &str, uid: &str, node: &str, scrape: &str| {
        serde_json::json!({
            "metadata": {"name": name, "namespace": "shop", "uid": uid, "labels": {"app": name},
                "annotations": {"prometheus.io/scrape": scrape, "prometheus.io/port": port.to_string()}},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "shop:1",
                "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"podIP": "127.0.0.1", "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        })
    };
    api.add_pod(pod("orders", "u-orders", "node-1", "true"));
    api.add_pod(pod("quiet", "u-quiet", "node-1", "false"));
    api.add_pod(pod("elsewhere", "u-elsewhere", "node-2", "true"));
    api.add_node(serde_json::json!({
        "metadata": {"name": "node-1", "uid": "n1", "labels": {"kubernetes.io/os": "linux"}},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}
    }));
    let scratch = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(scratch.path(), "scraper-token");
    let agent = Agent::start(&format!(
        r#"
receivers:
  prometheus:
    config:
      scrape_configs:
        - job_name: pods
          scrape_interval: 1s
          kubernetes_sd_configs:
            - role: pod
              kubeconfig_file: {kubeconfig}
              namespaces: {{ names: [shop] }}
              selectors: [{{ role: pod, field: spec.nodeName=node-1 }}]
          relabel_configs:
            - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
              regex: "true"
              action: keep
            - source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]
              regex: '([^:]+)(?::\d+)?;(\d+)'
              replacement: $$1:$$2
              target_label: __address__
            - source_labels: [__meta_kubernetes_pod_name]
              target_label: pod
            - action: labelmap
              regex: __meta_kubernetes_pod_label_(.+)
        - job_name: kubelets
          scrape_interval: 1s
          kubernetes_sd_configs:
            - role: node
              kubeconfig_file: {kubeconfig}
          relabel_configs:
            - action: labelmap
              regex: __meta_kubernetes_node_label_(.+)
exporters:
  file:
    path: "{{dir}}/metrics.jsonl"
service:
  pipelines:
    metrics: {{ receivers: [prometheus], exporters: [file] }}
  telemetry:
    metrics:
      readers:
        - pull: {{ exporter: {{ prometheus: {{ host: 127.0.0.1, port: 0 }} }} }}
"#,
        kubeconfig = kubeconfig.display()
    ));
    wait_until(Duration::from_secs(15), "both jobs scraped", || {
        let orders = points(&agent, "orders_total");
        orders.iter().any(|(a, _, _)| has(a, "pod", "orders"))
            && orders.iter().any(|(a, _, _)| has(a, "kubernetes_io_os", "linux"))
    });
    let orders = points(&agent, "orders_total");
    let from_pod = orders.iter().find(|(a, _, _)| has(a, "pod", "orders")).unwrap();
    assert!(has(&from_pod.0, "app", "orders"), "{from_pod:?}");
    assert_eq!(from_pod.1, Some(12.0));
    assert!(!orders.iter().any(|(a, _, _)| has(a, "pod", "quiet") || has(a, "pod", "elsewhere")), "{orders:?}");
    // The node's target is its kubelet; `instance` (service.instance.id) is its name.
    let resources: Vec<serde_json::Value> = read_json_lines(&agent.dir.path().join("metrics.jsonl"))
        .iter()
        .flat_map(|l| l["resourceMetrics"].as_array().cloned().unwrap_or_default())
        .map(|rm| rm["resource"]["attributes"].clone())
        .collect();
    assert!(
        resources.iter().any(|r| has(r, "service.name", "kubelets") && has(r, "service.instance.id", "node-1")),
        "{resources:?}"
    );
    assert_eq!(agent.metric("ocelot_receiver_prometheus_targets", "job=\"pods\""), 1.0);
    assert_eq!(agent.metric("ocelot_receiver_prometheus_targets", "job=\"kubelets\""), 1.0);

    // The pod goes: its target stops (its series go stale).
    api.delete_pod("u-orders");
    wait_until(Duration::from_secs(15), "the pod's target gone", || {
        agent.metric("ocelot_receiver_prometheus_targets", "job=\"pods\"") == 0.0
    });
    wait_until(Duration::from_secs(10), "the pod's series stale", || {
        points(&agent, "orders_total").iter().any(|(a, _, f)| has(a, "pod", "orders") && *f == 1)
    });
    let requests = api.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("/api/v1/namespaces/shop/pods?")
                && r.contains("fieldSelector=spec.nodeName%3Dnode-1")),
        "{requests:?}"
    );
    assert!(agent.stop().success());
}

/// Debian's prometheus-node-exporter scraped by ocelot and remote-written into a real
/// Prometheus, which scrapes the same exporter itself: the same metric names, the same
/// series (label sets), and the same values where they hold still.
#[test]
fn node_exporter_through_ocelot_matches_prometheus_scraping_it_itself() {
    let exporter = std::env::var("OCELOT_TEST_NODE_EXPORTER")
        .ok()
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| find_program("prometheus-node-exporter"))
        .expect("no prometheus-node-exporter: run scripts/test, which installs Debian's");
    let port = free_port();
    let mut node_exporter = std::process::Command::new(exporter)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .args(["--collector.disable-defaults", "--collector.meminfo", "--collector.filesystem"])
        .args(["--collector.cpu", "--collector.loadavg", "--collector.uname", "--collector.stat"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let target = format!("127.0.0.1:{port}");
    let prometheus = Prometheus::start(&format!(
        "scrape_configs:\n  - job_name: direct\n    static_configs:\n      - targets: ['{target}']\n"
    ));
    let agent = Agent::start(&format!(
        r#"
receivers:
  prometheus:
    config:
      scrape_configs:
        - job_name: via-ocelot
          scrape_interval: 1s
          static_configs:
            - targets: ['{target}']
exporters:
  prometheusremotewrite:
    endpoint: {}
service:
  pipelines:
    metrics: {{ receivers: [prometheus], exporters: [prometheusremotewrite] }}
  telemetry:
    metrics:
      readers:
        - pull: {{ exporter: {{ prometheus: {{ host: 127.0.0.1, port: 0 }} }} }}
"#,
        prometheus.write_url()
    ));
    prometheus.wait_for(r#"up{job="direct"} == 1"#);
    prometheus.wait_for(r#"up{job="via-ocelot"} == 1"#);
    let names = |job: &str| -> BTreeSet<String> {
        prometheus
            .query(&format!(r#"count by (__name__) ({{job="{job}",__name__=~"node_.*"}})"#))
            .into_iter()
            .map(|(labels, _)| labels["__name__"].as_str().unwrap().to_string())
            .collect()
    };
    let mut direct = BTreeSet::new();
    wait_until(Duration::from_secs(20), "every node_ name through ocelot", || {
        direct = names("direct");
        !direct.is_empty() && direct == names("via-ocelot")
    });
    assert!(direct.len() > 20, "{direct:?}");
    // The same series: each label set (less job, instance and the scope labels remote
    // write adds).
    let series = |promql: &str| -> BTreeSet<String> {
        prometheus
            .query(promql)
            .into_iter()
            .map(|(mut labels, _)| {
                for drop in ["job", "instance", "otel_scope_name", "otel_scope_version"] {
                    labels.remove(drop);
                }
                serde_json::Value::Object(labels).to_string()
            })
            .collect()
    };
    for name in
        ["node_cpu_seconds_total", "node_filesystem_size_bytes", "node_uname_info", "node_memory_MemTotal_bytes"]
    {
        let direct = series(&format!(r#"{name}{{job="direct"}}"#));
        assert!(!direct.is_empty(), "{name}");
        assert_eq!(direct, series(&format!(r#"{name}{{job="via-ocelot"}}"#)), "{name}");
    }
    // Values that hold still are equal; a counter through ocelot is where Prometheus saw it.
    for name in ["node_memory_MemTotal_bytes", "node_boot_time_seconds"] {
        let values = |job: &str| prometheus.query(&format!(r#"{name}{{job="{job}"}}"#))[0].1;
        assert_eq!(values("direct"), values("via-ocelot"), "{name}");
    }
    let cpu = |job: &str| prometheus.query(&format!(r#"sum(node_cpu_seconds_total{{job="{job}"}})"#))[0].1;
    let (a, b) = (cpu("direct"), cpu("via-ocelot"));
    assert!(a > 0.0 && (a - b).abs() / a < 0.05, "total CPU seconds {a} and {b}");
    assert!(agent.stop().success());
    let _ = node_exporter.kill();
    let _ = node_exporter.wait();
}

//! The `kubeletstats` receiver against an in-test kubelet: no kubelet runs here, so
//! an HTTPS server that asks for a client certificate from its CA (as a kubelet with
//! `--client-ca-file` does) serves `/stats/summary` and `/pods` with a summary in the
//! shape the kubelet documents (`k8s.io/kubelet/pkg/apis/stats/v1alpha1`;
//! tests/testdata/kubelet/). Then through the API server's node proxy with a
//! kubeconfig (tests/common/kube_api.rs), with a volume claim looked up in the API.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::kube_api::KubeApi;
use common::{Agent, read_json_lines, repo_path, serve_connections, wait_until};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo_path(&format!("tests/testdata/kubelet/{name}"))).unwrap()
}

/// A CA, the kubelet's certificate for 127.0.0.1 and ocelot's client certificate.
fn certificates(dir: &Path) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    for (name, san) in [("kubelet", "127.0.0.1"), ("client", "system:node-agent")] {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![san.to_string()]).unwrap().signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
}

/// The in-test kubelet: HTTPS, a client certificate from `ca.pem` required; returns
/// its port and the paths asked for.
fn kubelet(dir: &Path) -> (u16, Arc<Mutex<Vec<String>>>) {
    use rustls::pki_types::pem::PemObject;
    let ca = rustls::pki_types::CertificateDer::from_pem_file(dir.join("ca.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().unwrap();
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(dir.join("kubelet.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(dir.join("kubelet.key")).unwrap();
    let tls = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .unwrap(),
    );
    let (summary, pods) = (fixture("summary.json"), fixture("pods.json"));
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = asked.clone();
    let port = serve_connections(move |tcp| {
        let connection = rustls::ServerConnection::new(tls.clone()).unwrap();
        let mut reader = BufReader::new(rustls::StreamOwned::new(connection, tcp));
        let mut head = String::new();
        // A client with no certificate fails the handshake here.
        if reader.read_line(&mut head).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
        }
        let path = head.split(' ').nth(1).unwrap_or_default().to_string();
        seen.lock().unwrap().push(path.clone());
        let (status, body) = match path.as_str() {
            "/stats/summary" => ("200 OK", summary.as_str()),
            "/pods" => ("200 OK", pods.as_str()),
            _ => ("404 Not Found", "404 page not found"),
        };
        let mut stream = reader.into_inner();
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.flush();
    });
    (port, asked)
}

/// One data point as the file exporter wrote it: resource attributes, point
/// attributes, value, start and time (ns).
#[derive(Debug)]
struct Point {
    resource: Vec<(String, String)>,
    attributes: Vec<(String, String)>,
    value: f64,
    start: u64,
    kind: &'static str,
}

fn pairs(list: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|kv| {
            (
                kv["key"].as_str().unwrap().to_string(),
                kv["value"]["stringValue"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// The points of `name` in the first exported batch that has it.
fn points(dir: &Path, name: &str) -> Vec<Point> {
    for line in read_json_lines(&dir.join("out.jsonl")) {
        let mut out = Vec::new();
        for rm in line["resourceMetrics"].as_array().into_iter().flatten() {
            for sm in rm["scopeMetrics"].as_array().into_iter().flatten() {
                for m in sm["metrics"].as_array().into_iter().flatten().filter(|m| m["name"] == name) {
                    let (kind, data) = if m["gauge"].is_object() { ("gauge", &m["gauge"]) } else { ("sum", &m["sum"]) };
                    for p in data["dataPoints"].as_array().unwrap() {
                        let value = p["asDouble"]
                            .as_f64()
                            .or_else(|| p["asInt"].as_str().and_then(|s| s.parse().ok()))
                            .unwrap();
                        out.push(Point {
                            resource: pairs(&rm["resource"]["attributes"]),
                            attributes: pairs(&p["attributes"]),
                            value,
                            start: p["startTimeUnixNano"].as_str().map_or(0, |s| s.parse().unwrap()),
                            kind,
                        });
                    }
                }
            }
        }
        if !out.is_empty() {
            return out;
        }
    }
    Vec::new()
}

fn ns(rfc3339: &str) -> u64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_nanosecond() as u64
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    out.sort();
    out
}

const POD: [(&str, &str); 3] =
    [("k8s.namespace.name", "shop"), ("k8s.pod.name", "web-5d9c8f-x1"), ("k8s.pod.uid", "pod-web")];

#[test]
fn node_pod_container_and_volume_metrics_from_a_kubelet_that_wants_a_client_certificate() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let (port, asked) = kubelet(certs.path());
    let c = certs.path().display();
    let agent = Agent::start(&format!(
        r#"
receivers:
  kubelet_stats:
    endpoint: 127.0.0.1:{port}
    auth_type: tls
    ca_file: {c}/ca.pem
    cert_file: {c}/client.pem
    key_file: {c}/client.key
    collection_interval: 1s
    initial_delay: 0s
    metric_groups: [node, pod, container, volume]
    extra_metadata_labels: [container.id, k8s.volume.type]
    metrics:
      k8s.node.uptime: {{ enabled: true }}
      k8s.pod.memory.major_page_faults: {{ enabled: false }}
exporters:
  file: {{ path: "{{dir}}/out.jsonl" }}
service:
  pipelines:
    metrics: {{ receivers: [kubelet_stats], exporters: [file] }}
  telemetry:
    metrics:
      readers:
        - pull: {{ exporter: {{ prometheus: {{ host: 127.0.0.1, port: 0 }} }} }}
"#
    ));
    let dir = agent.dir.path().to_path_buf();
    wait_until(Duration::from_secs(20), "a scrape exported", || !points(&dir, "k8s.node.cpu.usage").is_empty());

    let node = kv(&[("k8s.node.name", "node-1")]);
    let cpu = &points(&dir, "k8s.node.cpu.usage")[0];
    assert_eq!((cpu.resource.clone(), cpu.value, cpu.kind), (node.clone(), 0.734, "gauge"));
    let time = &points(&dir, "k8s.node.cpu.time")[0];
    assert_eq!(
        (time.value, time.kind, time.start),
        (182736.0, "sum", ns("2026-12-01T07:57:30Z")),
        "starts with the node"
    );
    assert_eq!(points(&dir, "k8s.node.memory.working_set")[0].value, 2868469760.0);
    assert_eq!(points(&dir, "k8s.node.filesystem.usage")[0].value, 65089261568.0);
    assert!(points(&dir, "k8s.node.uptime")[0].value > 86400.0, "on by request");
    let io: Vec<(Vec<(String, String)>, f64)> =
        points(&dir, "k8s.node.network.io").into_iter().map(|p| (p.attributes, p.value)).collect();
    assert_eq!(
        io,
        [
            (kv(&[("direction", "receive"), ("interface", "eth0")]), 9876543210.0),
            (kv(&[("direction", "transmit"), ("interface", "eth0")]), 1234567890.0),
        ],
        "the default interface only"
    );

    let pod = kv(&POD);
    let pod_cpu = &points(&dir, "k8s.pod.cpu.usage")[0];
    assert_eq!((pod_cpu.resource.clone(), pod_cpu.value), (pod.clone(), 0.125));
    assert_eq!(points(&dir, "k8s.pod.filesystem.usage")[0].value, 90112.0, "from ephemeral-storage");
    assert_eq!(points(&dir, "k8s.pod.memory.page_faults")[0].value, 5100.0);
    assert!(points(&dir, "k8s.pod.memory.major_page_faults").is_empty(), "turned off");
    assert!(points(&dir, "k8s.pod.memory.available").is_empty(), "absent from the summary");

    let mut container = POD.to_vec();
    container.extend([("k8s.container.name", "app"), ("container.id", "5e1f0c")]);
    let c_time = &points(&dir, "container.cpu.time")[0];
    assert_eq!((c_time.resource.clone(), c_time.value), (kv(&container), 4500.0));
    assert_eq!(c_time.start, ns("2026-12-03T09:00:05Z"), "starts with the container");
    assert_eq!(points(&dir, "container.filesystem.usage")[0].value, 57344.0, "from rootfs");

    let volumes: Vec<(Vec<(String, String)>, f64)> =
        points(&dir, "k8s.volume.available").into_iter().map(|p| (p.resource, p.value)).collect();
    let mut claim = POD.to_vec();
    claim.extend([
        ("k8s.volume.name", "data"),
        ("k8s.volume.type", "persistentVolumeClaim"),
        ("k8s.persistentvolumeclaim.name", "web-data"),
    ]);
    let mut projected = POD.to_vec();
    projected.extend([("k8s.volume.name", "kube-api-access-8xk2p"), ("k8s.volume.type", "projected")]);
    assert_eq!(volumes, [(kv(&claim), 10485760000.0), (kv(&projected), 8000000000.0)]);
    assert_eq!(points(&dir, "k8s.volume.inodes.used")[1].value, 9.0);

    assert!(agent.metric("ocelot_receiver_kubeletstats_scrapes_total", "") >= 1.0);
    assert_eq!(agent.metric("ocelot_receiver_kubeletstats_pods", ""), 1.0);
    assert_eq!(agent.metric("ocelot_receiver_kubeletstats_scrape_errors_total", ""), 0.0);
    assert!(agent.metric("otelcol_receiver_accepted_metric_points_total", "receiver=\"kubelet_stats\"") > 30.0);
    let asked = asked.lock().unwrap().clone();
    assert!(asked.starts_with(&["/stats/summary".to_string(), "/pods".to_string()]), "{asked:?}");
    assert!(agent.stop().success());
}

#[test]
fn through_the_api_servers_node_proxy_with_the_claims_volume_from_the_api() {
    let api = KubeApi::start("agent-token");
    let summary: Value = serde_json::from_str(&fixture("summary.json")).unwrap();
    let pods: Value = serde_json::from_str(&fixture("pods.json")).unwrap();
    api.put_object("/api/v1/nodes/node-1/proxy/stats/summary", summary);
    api.put_object("/api/v1/nodes/node-1/proxy/pods", pods);
    api.put_object(
        "/api/v1/namespaces/shop/persistentvolumeclaims/web-data",
        json!({"kind": "PersistentVolumeClaim", "metadata": {"name": "web-data", "namespace": "shop"}, "spec": {"volumeName": "pv-7"}}),
    );
    api.put_object(
        "/api/v1/persistentvolumes/pv-7",
        json!({"kind": "PersistentVolume", "metadata": {"name": "pv-7"},
            "spec": {"awsElasticBlockStore": {"volumeID": "vol-0abc123", "fsType": "ext4"}}}),
    );
    let scratch = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(scratch.path(), "agent-token");
    let closed = common::free_port();
    let config = format!(
        r#"
receivers:
  kubeletstats:
    endpoint: node-1
    auth_type: kubeConfig
    collection_interval: 1s
    initial_delay: 0s
    metric_groups: [volume]
    extra_metadata_labels: [k8s.volume.type]
    k8s_api_config: {{ auth_type: kubeConfig }}
  kubeletstats/down:
    endpoint: 127.0.0.1:{closed}
    auth_type: none
    collection_interval: 1s
    initial_delay: 0s
exporters:
  file: {{ path: "{{dir}}/out.jsonl" }}
service:
  pipelines:
    metrics: {{ receivers: [kubeletstats, kubeletstats/down], exporters: [file] }}
  telemetry:
    metrics:
      readers:
        - pull: {{ exporter: {{ prometheus: {{ host: 127.0.0.1, port: 0 }} }} }}
"#
    );
    let agent = Agent::try_start_with_env(&[], &config, &[], &[("KUBECONFIG", kubeconfig.to_str().unwrap())]).unwrap();
    let dir = agent.dir.path().to_path_buf();
    wait_until(Duration::from_secs(20), "a scrape exported", || !points(&dir, "k8s.volume.capacity").is_empty());
    let capacity = points(&dir, "k8s.volume.capacity");
    let mut claim = POD.to_vec();
    claim.extend([
        ("k8s.volume.name", "data"),
        ("k8s.volume.type", "awsElasticBlockStore"),
        ("k8s.persistentvolumeclaim.name", "web-data"),
        ("aws.volume.id", "vol-0abc123"),
        ("fs.type", "ext4"),
    ]);
    assert_eq!(capacity[0].resource, kv(&claim));
    assert_eq!(capacity[0].value, 10737418240.0);
    assert!(points(&dir, "k8s.node.cpu.usage").is_empty(), "only the volume group");
    // A kubelet that does not answer is counted and retried; the other goes on.
    let down = "receiver=\"kubeletstats/down\",reason=\"http\"";
    wait_until(Duration::from_secs(20), "two failed scrapes counted", || {
        agent.metric("ocelot_receiver_kubeletstats_scrape_errors_total", down) >= 2.0
    });
    let requests = api.requests();
    let lookups = requests.iter().filter(|r| r.contains("persistentvolumeclaims")).count();
    assert_eq!(lookups, 1, "the claim is looked up once: {requests:?}");
    assert!(agent.stop().success());
}

//! The `k8sattributes` processor against an in-test Kubernetes API server
//! (tests/common/kube_api.rs; no real one can run here): OTLP from a pod's address
//! gets that pod's metadata, as the list, the watch, a relist after 410 and an owner
//! lookup tell it, with a kubeconfig's CA and token.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::kube_api::KubeApi;
use common::{Agent, http_post, logs_json, read_json_lines, wait_until};
use serde_json::{Value, json};

fn web_pod(app_label: &str) -> Value {
    json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": "web-5d9c8f-x1", "namespace": "shop", "uid": "pod-web",
            "labels": {"app": app_label, "pod-template-hash": "5d9c8f"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d9c8f", "uid": "rs-web", "controller": true}]},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "registry.local/shop/web:2.1"}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1", "startTime": "2026-12-01T08:00:00Z",
            "containerStatuses": [{"name": "app", "containerID": "containerd://c0ffee", "restartCount": 0, "ready": true}]}
    })
}

/// A pod on another node with the same IP: the node filter must keep it out.
fn elsewhere_pod() -> Value {
    json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": "elsewhere", "namespace": "ops", "uid": "pod-elsewhere", "labels": {"app": "wrong"}},
        "spec": {"nodeName": "node-2", "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"podIP": "127.0.0.1"}
    })
}

fn config() -> &'static str {
    r#"
receivers:
  otlp:
    protocols:
      http: { endpoint: 127.0.0.1:0 }
processors:
  k8s_attributes:
    auth_type: kubeConfig
    wait_for_metadata: true
    wait_for_metadata_timeout: 15s
    filter: { node_from_env_var: K8S_NODE_NAME }
    extract:
      metadata: [k8s.pod.name, k8s.pod.uid, k8s.namespace.name, k8s.node.name, k8s.replicaset.name,
                 k8s.deployment.name, k8s.deployment.uid, container.image.name, container.image.tag, container.id,
                 k8s.node.uid, k8s.cluster.uid]
      labels: [{ key: app }, { key: team, from: namespace }, { key: topology.kubernetes.io/zone, from: node, tag_name: zone }]
      deployment_name_from_replicaset: false
exporters:
  file: { path: "{dir}/out.jsonl" }
service:
  pipelines:
    logs: { receivers: [otlp], processors: [k8s_attributes], exporters: [file] }
  telemetry:
    metrics:
      readers:
        - pull: { exporter: { prometheus: { host: 127.0.0.1, port: 0 } } }
"#
}

/// The resource attributes the record with `body` was written with.
fn resource_of(agent: &Agent, body: &str) -> Option<BTreeMap<String, String>> {
    let lines = read_json_lines(&agent.dir.path().join("out.jsonl"));
    for line in &lines {
        for rl in line["resourceLogs"].as_array().into_iter().flatten() {
            let bodies = rl["scopeLogs"][0]["logRecords"].as_array().unwrap();
            if bodies.iter().any(|r| r["body"]["stringValue"] == body) {
                let attributes = rl["resource"]["attributes"].as_array().unwrap();
                return Some(
                    attributes
                        .iter()
                        .map(|kv| {
                            (
                                kv["key"].as_str().unwrap().to_string(),
                                kv["value"]["stringValue"].as_str().unwrap_or_default().to_string(),
                            )
                        })
                        .collect(),
                );
            }
        }
    }
    None
}

/// A body no earlier send used.
fn fastrand_body() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn send_and_read(agent: &Agent, body: &str) -> BTreeMap<String, String> {
    let (status, _, answer) =
        http_post(agent.http("otlp"), "/v1/logs", "application/json", &logs_json(&[body.to_string()]));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let mut found = None;
    wait_until(Duration::from_secs(10), body, || {
        found = resource_of(agent, body);
        found.is_some()
    });
    found.unwrap()
}

#[test]
fn otlp_from_a_pods_address_gets_that_pods_metadata_through_list_watch_and_relist() {
    let api = KubeApi::start("agent-token");
    api.put_object(
        "/apis/apps/v1/namespaces/shop/replicasets/web-5d9c8f",
        json!({"kind": "ReplicaSet", "apiVersion": "apps/v1", "metadata": {"name": "web-5d9c8f", "namespace": "shop", "uid": "rs-web",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "dep-web", "controller": true}]}}),
    );
    api.add_pod(elsewhere_pod());
    api.add_pod(web_pod("web"));
    let namespace = |name: &str, uid: &str, team: &str| json!({"kind": "Namespace", "metadata": {"name": name, "uid": uid, "labels": {"team": team}}});
    api.add_namespace(namespace("shop", "ns-shop", "payments"));
    api.add_namespace(namespace("kube-system", "cluster-7", "platform"));
    for (name, uid, zone) in [("node-1", "node-uid-1", "eu-west-1a"), ("node-2", "node-uid-2", "eu-west-1b")] {
        api.add_node(json!({"kind": "Node", "metadata": {"name": name, "uid": uid,
            "labels": {"topology.kubernetes.io/zone": zone}}}));
    }
    let scratch = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(scratch.path(), "agent-token");
    let agent = Agent::try_start_with_env(
        &[],
        config(),
        &[],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap()), ("K8S_NODE_NAME", "node-1")],
    )
    .unwrap();

    // From the first list.
    let first = send_and_read(&agent, "one");
    let wanted: BTreeMap<String, String> = [
        ("service.name", "test"),
        ("k8s.pod.name", "web-5d9c8f-x1"),
        ("k8s.pod.uid", "pod-web"),
        ("k8s.namespace.name", "shop"),
        ("k8s.node.name", "node-1"),
        ("k8s.replicaset.name", "web-5d9c8f"),
        ("k8s.deployment.name", "web"),
        ("k8s.deployment.uid", "dep-web"),
        ("k8s.pod.labels.app", "web"),
        ("container.image.name", "registry.local/shop/web"),
        ("container.image.tag", "2.1"),
        ("container.id", "c0ffee"),
        ("k8s.namespace.labels.team", "payments"),
        ("zone", "eu-west-1a"),
        ("k8s.node.uid", "node-uid-1"),
        ("k8s.cluster.uid", "cluster-7"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(first, wanted);
    agent.wait_metric("otelcol_otelsvc_k8s_pod_added_total", "", 1.0);

    // A change through the watch; a namespace's too.
    api.modify_pod(web_pod("web-v2"));
    api.modify_namespace(namespace("shop", "ns-shop", "checkout"));
    agent.wait_metric("otelcol_otelsvc_k8s_pod_updated_total", "", 1.0);
    let mut second = BTreeMap::new();
    wait_until(Duration::from_secs(10), "the namespace's new label", || {
        second = send_and_read(&agent, &format!("two-{}", fastrand_body()));
        second["k8s.namespace.labels.team"] == "checkout"
    });
    assert_eq!(second["k8s.pod.labels.app"], "web-v2");

    // A bookmark moves the watch on; a change it never hears of (compacted, 410) is
    // found by listing again.
    api.bookmark();
    api.modify_pod_and_compact(web_pod("web-v3"));
    agent.wait_metric("otelcol_otelsvc_k8s_pod_updated_total", "", 2.0);
    assert_eq!(send_and_read(&agent, "three")["k8s.pod.labels.app"], "web-v3");

    // Deleted, the pod is still known for its grace period: late data is tagged.
    api.delete_pod("pod-web");
    wait_until(Duration::from_secs(10), "the delete to be watched", || {
        api.requests().iter().filter(|r| r.contains("watch=true")).count() >= 2
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(send_and_read(&agent, "four")["k8s.pod.name"], "web-5d9c8f-x1");
    assert_eq!(agent.metric("otelcol_otelsvc_k8s_pod_deleted_total", ""), 0.0);
    assert_eq!(agent.metric("otelcol_otelsvc_k8s_pod_table_size", ""), 1.0);
    assert_eq!(agent.metric("otelcol_k8s_pod_association_total", "status=\"hit\""), 4.0);

    let requests = api.requests();
    let lists: Vec<&String> = requests.iter().filter(|r| r.starts_with("/api/v1/pods?limit=")).collect();
    let watches: Vec<&String> = requests.iter().filter(|r| r.starts_with("/api/v1/pods?watch=true")).collect();
    assert_eq!(lists.len(), 2, "a list, then one more after the 410: {requests:?}");
    assert!(watches.len() >= 2, "{requests:?}");
    for r in lists.iter().chain(&watches) {
        assert!(r.contains("fieldSelector=spec.nodeName%3Dnode-1"), "{r}");
    }
    assert!(
        requests.iter().any(|r| r.starts_with("/api/v1/nodes?") && r.contains("fieldSelector=metadata.name%3Dnode-1")),
        "only the agent's node is watched: {requests:?}"
    );
    assert!(watches.iter().all(|w| w.contains("allowWatchBookmarks=true") && w.contains("resourceVersion=")));
    let lookups = requests.iter().filter(|r| r.contains("/replicasets/")).count();
    assert_eq!(lookups, 1, "the ReplicaSet's owner is looked up once: {requests:?}");
    assert_eq!(agent.metric("ocelot_processor_k8sattributes_api_errors_total", ""), 0.0, "a 410 is no error");
    agent.stop();
}

#[test]
fn a_token_the_api_refuses_fails_the_start_when_waiting_for_metadata() {
    let api = KubeApi::start("agent-token");
    api.add_pod(web_pod("web"));
    let scratch = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(scratch.path(), "stolen-token");
    let config = config().replace("wait_for_metadata_timeout: 15s", "wait_for_metadata_timeout: 2s");
    let error = Agent::try_start_with_env(
        &[],
        &config,
        &[],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap()), ("K8S_NODE_NAME", "node-1")],
    )
    .map(|_| ())
    .unwrap_err();
    assert!(error.contains("wait_for_metadata: the pod list was not read within 2s"), "{error}");
    assert!(error.contains("the API answered 401"), "the API's answer is logged: {error}");
    let requests = api.requests();
    assert!(requests.iter().any(|r| r.starts_with("/api/v1/pods?limit=500&fieldSelector=")), "{requests:?}");
    assert!(
        requests
            .iter()
            .all(|r| ["/api/v1/pods?", "/api/v1/namespaces?", "/api/v1/nodes?"].iter().any(|p| r.starts_with(p))),
        "lists only, no watch without a list: {requests:?}"
    );
}

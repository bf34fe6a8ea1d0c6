//! `kubernetes_sd_configs`: targets from the Kubernetes API as Prometheus makes them,
//! for roles `pod` (one target per container port, or per container without ports,
//! at the pod's IP) and `node` (the kubelet's address and port), with Prometheus'
//! `__meta_kubernetes_*` labels. Each config's objects are watched (list + watch,
//! `selectors` as the API's label and field selectors: `spec.nodeName=<node>` keeps a
//! DaemonSet agent to its node's pods) by a task of its own, which hands the job a new
//! set of target groups on each change.

use std::collections::BTreeMap;
use std::path::Path;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use super::config::KubernetesSdConfig;
use super::discovery::Group;
use crate::kube::client::{AuthType, KubeClient, SERVICE_ACCOUNT_DIR, Token};
use crate::kube::objects::{Node, Pod};
use crate::kube::watch::{Reflector, Update, encode};

/// Starts the watches of one config; each receiver gives that watch's groups.
pub fn start(
    sd: &KubernetesSdConfig,
    errors: Counter,
    tracker: &TaskTracker,
    stop: &CancellationToken,
) -> Result<Vec<watch::Receiver<Vec<Group>>>, String> {
    let client = client(sd)?;
    let label = selector(sd, |s| s.label.as_deref());
    let field = selector(sd, |s| s.field.as_deref());
    let mut receivers = Vec::new();
    if sd.role == "node" {
        let (tx, rx) = watch::channel(Vec::new());
        let reflector = Reflector::<Node>::new(client, "/api/v1/nodes", &field, &label, errors);
        tracker.spawn(run(reflector, node_groups, tx, stop.clone()));
        return Ok(vec![rx]);
    }
    let mut namespaces = sd.namespaces.as_ref().map(|n| n.names.clone()).unwrap_or_default();
    if sd.namespaces.as_ref().is_some_and(|n| n.own_namespace) {
        let path = Path::new(SERVICE_ACCOUNT_DIR).join("namespace");
        let own = std::fs::read_to_string(&path).map_err(|e| format!("own_namespace: {}: {e}", path.display()))?;
        namespaces.push(own.trim().to_string());
    }
    let paths: Vec<String> = if namespaces.is_empty() {
        vec!["/api/v1/pods".to_string()]
    } else {
        namespaces.iter().map(|n| format!("/api/v1/namespaces/{}/pods", encode(n))).collect()
    };
    for path in paths {
        let (tx, rx) = watch::channel(Vec::new());
        let reflector = Reflector::<Pod>::new(client.clone(), &path, &field, &label, errors.clone());
        tracker.spawn(run(reflector, pod_groups, tx, stop.clone()));
        receivers.push(rx);
    }
    Ok(receivers)
}

/// The selectors of the config's role, joined as the API takes them.
fn selector(sd: &KubernetesSdConfig, of: impl Fn(&super::config::Selector) -> Option<&str>) -> String {
    sd.selectors.iter().filter_map(of).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(",")
}

fn client(sd: &KubernetesSdConfig) -> Result<KubeClient, String> {
    if let Some(path) = &sd.kubeconfig_file {
        return KubeClient::from_kubeconfig_file(path).map_err(|e| e.to_string());
    }
    let Some(server) = &sd.api_server else {
        return KubeClient::new(AuthType::ServiceAccount, None).map_err(|e| e.to_string());
    };
    let token = match (&sd.authorization, &sd.bearer_token_file) {
        (Some(auth), _) if auth.credentials_file.is_some() => {
            Token::File(auth.credentials_file.clone().unwrap_or_default())
        }
        (Some(auth), _) => auth.credentials.clone().map_or(Token::None, Token::Fixed),
        (None, Some(file)) => Token::File(file.clone()),
        (None, None) => Token::None,
    };
    let tls = sd.tls_config.clone().unwrap_or_default();
    let ca = match &tls.ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|e| format!("tls_config.ca_file {}: {e}", path.display()))?),
        None => None,
    };
    KubeClient::direct(server, token, ca, None, tls.insecure_skip_verify).map_err(|e| e.to_string())
}

async fn run<T>(
    mut reflector: Reflector<T>,
    groups_of: fn(&T) -> Vec<Group>,
    tx: watch::Sender<Vec<Group>>,
    stop: CancellationToken,
) where
    T: serde::de::DeserializeOwned + crate::kube::watch::HasVersion + Uid,
{
    let mut objects: BTreeMap<String, Vec<Group>> = BTreeMap::new();
    loop {
        let update = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            update = reflector.next() => update,
        };
        match update {
            Update::Listed(all) => objects = all.iter().map(|o| (o.uid().to_string(), groups_of(o))).collect(),
            Update::Added(o) | Update::Modified(o) => {
                let groups = groups_of(&o);
                if objects.get(o.uid()) == Some(&groups) {
                    continue;
                }
                objects.insert(o.uid().to_string(), groups);
            }
            Update::Deleted(o) => {
                if objects.remove(o.uid()).is_none() {
                    continue;
                }
            }
        }
        if tx.send(objects.values().flatten().cloned().collect()).is_err() {
            warn!("The job that took these targets is gone; the watch stops.");
            return;
        }
    }
}

/// What an object is known by in the task's map.
pub trait Uid {
    fn uid(&self) -> &str;
}

impl Uid for Pod {
    fn uid(&self) -> &str {
        &self.metadata.uid
    }
}

impl Uid for Node {
    fn uid(&self) -> &str {
        &self.metadata.uid
    }
}

/// A label name as Prometheus makes one from a Kubernetes key: every character but
/// `[a-zA-Z0-9_]` becomes `_`.
fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

fn meta_labels(
    out: &mut BTreeMap<String, String>,
    prefix: &str,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) {
    for (what, map) in [("label", labels), ("annotation", annotations)] {
        for (key, value) in map {
            let name = sanitize(key);
            out.insert(format!("{prefix}_{what}_{name}"), value.clone());
            out.insert(format!("{prefix}_{what}present_{name}"), "true".into());
        }
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// A pod's targets: one per container port (one per container without ports), at the
/// pod's IP; none until it has one.
pub fn pod_groups(pod: &Pod) -> Vec<Group> {
    let ip = pod.status.pod_ip.as_str();
    if ip.is_empty() {
        return Vec::new();
    }
    const P: &str = "__meta_kubernetes_pod";
    let meta = &pod.metadata;
    let mut base = BTreeMap::new();
    base.insert("__meta_kubernetes_namespace".to_string(), meta.namespace.clone());
    base.insert(format!("{P}_name"), meta.name.clone());
    base.insert(format!("{P}_ip"), ip.to_string());
    base.insert(format!("{P}_node_name"), pod.spec.node_name.clone());
    base.insert(format!("{P}_host_ip"), pod.status.host_ip.clone());
    base.insert(format!("{P}_uid"), meta.uid.clone());
    base.insert(format!("{P}_phase"), pod.status.phase.clone());
    let ready = pod.status.conditions.iter().find(|c| c.kind == "Ready").map(|c| c.status.to_lowercase());
    base.insert(format!("{P}_ready"), ready.unwrap_or_else(|| "unknown".into()));
    if let Some(owner) = meta.controller() {
        base.insert(format!("{P}_controller_kind"), owner.kind.clone());
        base.insert(format!("{P}_controller_name"), owner.name.clone());
    }
    meta_labels(&mut base, P, &meta.labels, &meta.annotations);
    let statuses: Vec<_> = pod.status.container_statuses.iter().chain(&pod.status.init_container_statuses).collect();
    let mut groups = Vec::new();
    let containers =
        pod.spec.containers.iter().map(|c| (c, false)).chain(pod.spec.init_containers.iter().map(|c| (c, true)));
    for (container, init) in containers {
        let mut labels = base.clone();
        labels.insert(format!("{P}_container_name"), container.name.clone());
        labels.insert(format!("{P}_container_image"), container.image.clone());
        labels.insert(format!("{P}_container_init"), init.to_string());
        if let Some(status) = statuses.iter().find(|s| s.name == container.name) {
            labels.insert(format!("{P}_container_id"), status.container_id.clone());
        }
        if container.ports.is_empty() {
            groups.push(Group { targets: vec![ip.to_string()], labels });
            continue;
        }
        for port in &container.ports {
            let mut labels = labels.clone();
            labels.insert(format!("{P}_container_port_name"), port.name.clone());
            labels.insert(format!("{P}_container_port_number"), port.container_port.to_string());
            let protocol = if port.protocol.is_empty() { "TCP" } else { port.protocol.as_str() };
            labels.insert(format!("{P}_container_port_protocol"), protocol.to_string());
            groups.push(Group { targets: vec![host_port(ip, port.container_port)], labels });
        }
    }
    groups
}

/// A node's target: its kubelet, at the first address in Prometheus' order of
/// preference; `instance` is the node's name.
pub fn node_groups(node: &Node) -> Vec<Group> {
    const PREFERENCE: [&str; 6] =
        ["InternalIP", "InternalDNS", "ExternalIP", "ExternalDNS", "LegacyHostIP", "Hostname"];
    const P: &str = "__meta_kubernetes_node";
    let addresses = &node.status.addresses;
    let Some(address) = PREFERENCE.iter().find_map(|kind| addresses.iter().find(|a| a.kind == *kind)) else {
        return Vec::new();
    };
    let mut labels = BTreeMap::new();
    labels.insert(format!("{P}_name"), node.metadata.name.clone());
    labels.insert(format!("{P}_provider_id"), node.spec.provider_id.clone());
    meta_labels(&mut labels, P, &node.metadata.labels, &node.metadata.annotations);
    for a in addresses {
        labels.entry(format!("{P}_address_{}", a.kind)).or_insert_with(|| a.address.clone());
    }
    labels.insert("instance".to_string(), node.metadata.name.clone());
    let port = node.status.daemon_endpoints.kubelet_endpoint.port;
    vec![Group { targets: vec![host_port(&address.address, port)], labels }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_and_nodes_become_targets_as_prometheus_makes_them() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1",
                "labels": {"app.kubernetes.io/name": "web"}, "annotations": {"prometheus.io/port": "9102"},
                "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d9", "uid": "r", "controller": true}]},
            "spec": {"nodeName": "n1", "containers": [
                {"name": "app", "image": "web:1", "ports": [{"name": "http", "containerPort": 8080}, {"containerPort": 9102, "protocol": "TCP"}]},
                {"name": "sidecar", "image": "envoy"}],
                "initContainers": [{"name": "init", "image": "busybox"}]},
            "status": {"podIP": "10.0.0.5", "hostIP": "192.168.1.2", "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "app", "containerID": "containerd://abc"}]}
        }))
        .unwrap();
        let groups = pod_groups(&pod);
        let targets: Vec<&str> = groups.iter().map(|g| g.targets[0].as_str()).collect();
        assert_eq!(targets, ["10.0.0.5:8080", "10.0.0.5:9102", "10.0.0.5", "10.0.0.5"]);
        let first = &groups[0].labels;
        for (k, v) in [
            ("__meta_kubernetes_namespace", "shop"),
            ("__meta_kubernetes_pod_name", "web-1"),
            ("__meta_kubernetes_pod_ready", "true"),
            ("__meta_kubernetes_pod_label_app_kubernetes_io_name", "web"),
            ("__meta_kubernetes_pod_labelpresent_app_kubernetes_io_name", "true"),
            ("__meta_kubernetes_pod_annotation_prometheus_io_port", "9102"),
            ("__meta_kubernetes_pod_controller_kind", "ReplicaSet"),
            ("__meta_kubernetes_pod_container_port_name", "http"),
            ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
            ("__meta_kubernetes_pod_container_id", "containerd://abc"),
            ("__meta_kubernetes_pod_container_init", "false"),
            ("__meta_kubernetes_pod_node_name", "n1"),
            ("__meta_kubernetes_pod_host_ip", "192.168.1.2"),
        ] {
            assert_eq!(first.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert_eq!(groups[3].labels["__meta_kubernetes_pod_container_init"], "true");
        let mut pending = pod.clone();
        pending.status.pod_ip.clear();
        assert!(pod_groups(&pending).is_empty());

        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1", "uid": "n", "labels": {"kubernetes.io/os": "linux"}},
            "spec": {"providerID": "aws:///eu-west-1a/i-0abc"},
            "status": {"addresses": [{"type": "Hostname", "address": "ip-10-0-3-17"}, {"type": "InternalIP", "address": "10.0.3.17"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}
        }))
        .unwrap();
        let groups = node_groups(&node);
        assert_eq!(groups[0].targets, ["10.0.3.17:10250"]);
        let labels = &groups[0].labels;
        assert_eq!(labels["instance"], "n1");
        assert_eq!(labels["__meta_kubernetes_node_address_Hostname"], "ip-10-0-3-17");
        assert_eq!(labels["__meta_kubernetes_node_label_kubernetes_io_os"], "linux");
        assert_eq!(labels["__meta_kubernetes_node_provider_id"], "aws:///eu-west-1a/i-0abc");
    }
}

//! The Kubernetes manifests in `packaging/kubernetes/`: each overlay rendered by
//! `kubectl kustomize` (Debian's kubernetes-client), every object checked against the
//! Kubernetes schemas of the oldest and newest release they are meant for
//! (tests/python/kubernetes_check.py, strict), and what holds them together checked
//! here: probes on the health_check's port, the config mounted as a directory so
//! `--watch-config` sees a ConfigMap change, selectors that match their pods, the
//! memory limit the memory_limiter takes its share of, and each config valid.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::{find_program, repo_path, test_python};
use serde_json::Value;

/// `overlay` rendered and schema-checked: its objects.
fn render(overlay: &str) -> Vec<Value> {
    let Some(kubectl) = find_program("kubectl") else {
        panic!("kubectl is missing: install Debian's kubernetes-client (scripts/test does)");
    };
    let dir = repo_path(&format!("packaging/kubernetes/overlays/{overlay}"));
    let output = Command::new(kubectl).arg("kustomize").arg(&dir).output().unwrap();
    assert!(output.status.success(), "kubectl kustomize {overlay}: {}", String::from_utf8_lossy(&output.stderr));
    let scratch = tempfile::tempdir().unwrap();
    let rendered = scratch.path().join("rendered.yaml");
    std::fs::write(&rendered, &output.stdout).unwrap();
    let checked =
        Command::new(test_python()).arg(repo_path("tests/python/kubernetes_check.py")).arg(&rendered).output().unwrap();
    assert!(
        checked.status.success(),
        "{overlay} does not match the Kubernetes schemas:\n{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    serde_json::from_slice(&checked.stdout).unwrap()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} among {:?}", names(objects)))
}

fn names(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| format!("{}/{}", o["kind"].as_str().unwrap(), o["metadata"]["name"].as_str().unwrap()))
        .collect()
}

/// Every label of `selector` is on `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_object().unwrap();
    !selector.is_empty() && selector.iter().all(|(k, v)| labels[k] == *v)
}

/// The config in ConfigMap `name`: the overlay's config.yaml, valid for ocelot with the
/// downward API's variables set.
fn config(objects: &[Value], overlay: &str, name: &str) -> String {
    let text = find(objects, "ConfigMap", name)["data"]["config.yaml"].as_str().unwrap().to_string();
    let file = repo_path(&format!("packaging/kubernetes/overlays/{overlay}/config.yaml"));
    assert_eq!(text, std::fs::read_to_string(&file).unwrap());
    let output = Command::new(common::BIN)
        .args(["validate", "--config"])
        .arg(&file)
        .env("K8S_NODE_NAME", "node-1")
        .env("K8S_NODE_IP", "10.0.0.1")
        .env("K8S_POD_NAME", "pod-1")
        .output()
        .unwrap();
    assert!(output.status.success(), "{overlay}'s config: {}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stderr.is_empty(), "{overlay}'s config warns: {}", String::from_utf8_lossy(&output.stderr));
    text
}

/// What the agent and the gateway containers share: args that watch the config, the
/// ConfigMap mounted whole (a subPath mount never sees an update), probes on the
/// health_check port the config listens on, container ports for OTLP, downward-API
/// env, a memory limit, no writable root.
fn check_container(pod: &Value, config_map: &str, config: &str) {
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(args, ["--config=/etc/ocelot/config.yaml", "--storage-dir=/var/lib/ocelot", "--watch-config"]);

    let mounts = container["volumeMounts"].as_array().unwrap();
    let config_mount =
        mounts.iter().find(|m| m["mountPath"] == "/etc/ocelot").expect("the config mounted at /etc/ocelot");
    assert!(config_mount.get("subPath").is_none(), "a subPath mount is not updated: {config_mount}");
    let volume = |name: &Value| pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == *name).unwrap().clone();
    assert_eq!(volume(&config_mount["name"])["configMap"]["name"], config_map);
    let state = mounts.iter().find(|m| m["mountPath"] == "/var/lib/ocelot").expect("a state volume");
    assert_ne!(state["readOnly"], true);

    let port = |name: &str| {
        container["ports"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()["containerPort"]
            .as_u64()
            .unwrap()
    };
    assert!(config.contains(&format!("endpoint: 0.0.0.0:{}", port("health"))), "health_check on the probes' port");
    assert!(config.contains(&format!("endpoint: 0.0.0.0:{}", port("otlp-grpc"))));
    assert!(config.contains(&format!("endpoint: 0.0.0.0:{}", port("otlp-http"))));
    assert!(config.contains(&format!("port: {}", port("metrics"))), "self-metrics on the metrics port");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "health");
    assert_eq!(container["readinessProbe"]["httpGet"], serde_json::json!({"path": "/health/ready", "port": "health"}));

    let env: Vec<(&str, &str)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["valueFrom"]["fieldRef"]["fieldPath"].as_str().unwrap()))
        .collect();
    for pair in
        [("K8S_NODE_NAME", "spec.nodeName"), ("K8S_POD_NAME", "metadata.name"), ("K8S_NAMESPACE", "metadata.namespace")]
    {
        assert!(env.contains(&pair), "{pair:?} from the downward API in {env:?}");
    }

    // memory_limiter takes its share of the cgroup's limit, which must be set.
    assert!(container["resources"]["limits"]["memory"].is_string(), "a memory limit");
    assert!(config.contains("limit_percentage: 80"), "memory_limiter at 80 % of the limit");
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
}

#[test]
fn the_agent_daemonset_reads_the_nodes_logs_and_host_and_runs_on_every_node() {
    let objects = render("agent");
    let daemonset = find(&objects, "DaemonSet", "ocelot-agent");
    let template = &daemonset["spec"]["template"];
    let pod = &template["spec"];
    assert!(selects(&daemonset["spec"]["selector"]["matchLabels"], &template["metadata"]["labels"]));
    assert_eq!(pod["tolerations"], serde_json::json!([{"operator": "Exists"}]), "tolerates every taint");
    assert!(pod.get("hostNetwork").is_none(), "on the pod network unless the host-network overlay says otherwise");

    // Least privilege: the token, and a role that reads pods and the kubelet's stats.
    let account = find(&objects, "ServiceAccount", "ocelot-agent");
    assert_eq!(pod["serviceAccountName"], "ocelot-agent");
    assert_eq!(account["automountServiceAccountToken"], true, "k8sattributes reads the API");
    assert_eq!(pod["automountServiceAccountToken"], true);
    let role = find(&objects, "ClusterRole", "ocelot-agent");
    assert_eq!(
        role["rules"],
        serde_json::json!([
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["nodes/stats"], "verbs": ["get"]}
        ])
    );
    let binding = find(&objects, "ClusterRoleBinding", "ocelot-agent");
    assert_eq!(
        binding["roleRef"],
        serde_json::json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "ocelot-agent"})
    );
    assert_eq!(
        binding["subjects"],
        serde_json::json!([{"kind": "ServiceAccount", "name": "ocelot-agent", "namespace": "ocelot"}])
    );
    let roles: Vec<String> = names(&objects).into_iter().filter(|n| n.contains("Role")).collect();
    assert_eq!(roles, ["ClusterRole/ocelot-agent", "ClusterRoleBinding/ocelot-agent"]);
    assert_eq!(
        find(&objects, "Namespace", "ocelot")["metadata"]["labels"],
        serde_json::json!({"app.kubernetes.io/part-of": "ocelot"})
    );

    let config = config(&objects, "agent", "ocelot-agent");
    assert!(config.contains("node_from_env_var: K8S_NODE_NAME"), "only the node's pods are watched");
    check_container(pod, "ocelot-agent", &config);
    let container = &pod["containers"][0];
    assert_eq!(container["ports"][0]["hostPort"], 4317, "pods send OTLP to their node's IP");
    assert_eq!(container["securityContext"]["capabilities"]["add"], serde_json::json!(["DAC_READ_SEARCH"]));

    // The node's logs and / read-only; the state on the node, so offsets outlive the pod.
    let host_path = |mount_path: &str| {
        let mount =
            container["volumeMounts"].as_array().unwrap().iter().find(|m| m["mountPath"] == mount_path).unwrap();
        let volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == mount["name"]).unwrap();
        (volume["hostPath"]["path"].as_str().unwrap().to_string(), mount["readOnly"] == true)
    };
    assert_eq!(host_path("/var/log/pods"), ("/var/log/pods".into(), true));
    assert_eq!(host_path("/var/log/containers"), ("/var/log/containers".into(), true));
    assert_eq!(host_path("/hostfs"), ("/".into(), true));
    assert_eq!(host_path("/var/lib/ocelot"), ("/var/lib/ocelot-agent".into(), false));
    assert!(config.contains("include: [/var/log/pods/*/*/*.log]"));
    assert!(config.contains("root_path: /hostfs"));
    assert!(config.contains("directory: /var/lib/ocelot"), "file offsets and queues in the state volume");
}

#[test]
fn the_host_network_overlay_puts_the_agent_on_the_nodes_network() {
    let objects = render("agent-host-network");
    let pod = &find(&objects, "DaemonSet", "ocelot-agent")["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet", "the gateway's Service name still resolves");
    assert_eq!(pod["tolerations"], serde_json::json!([{"operator": "Exists"}]), "the rest is the agent overlay's");
}

#[test]
fn the_gateway_scales_and_keeps_capacity_through_rollouts_and_drains() {
    let objects = render("gateway");
    let deployment = find(&objects, "Deployment", "ocelot-gateway");
    let template = &deployment["spec"]["template"];
    let labels = &template["metadata"]["labels"];
    assert!(selects(&deployment["spec"]["selector"]["matchLabels"], labels));
    assert_eq!(
        deployment["spec"]["strategy"]["rollingUpdate"],
        serde_json::json!({"maxUnavailable": 0, "maxSurge": 1})
    );
    let pod = &template["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(find(&objects, "ServiceAccount", "ocelot-gateway")["automountServiceAccountToken"], false);
    let config = config(&objects, "gateway", "ocelot-gateway");
    check_container(pod, "ocelot-gateway", &config);

    // OTLP on a ClusterIP Service, and a headless one whose DNS answers every pod.
    let service = find(&objects, "Service", "ocelot-gateway");
    assert_eq!(service["spec"]["type"], "ClusterIP");
    let ports: Vec<u64> =
        service["spec"]["ports"].as_array().unwrap().iter().map(|p| p["port"].as_u64().unwrap()).collect();
    assert_eq!(ports, [4317, 4318]);
    let headless = find(&objects, "Service", "ocelot-gateway-headless");
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert_eq!(headless["spec"]["ports"][0]["port"], 4317);
    for service in [service, headless] {
        assert!(
            selects(&service["spec"]["selector"], labels),
            "{} selects the gateway pods",
            service["metadata"]["name"]
        );
    }

    let autoscaler = find(&objects, "HorizontalPodAutoscaler", "ocelot-gateway");
    assert_eq!(autoscaler["spec"]["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(autoscaler["spec"]["scaleTargetRef"]["name"], "ocelot-gateway");
    let resources: Vec<&str> = autoscaler["spec"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["resource"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(resources, ["cpu", "memory"]);
    assert!(autoscaler["spec"]["minReplicas"].as_u64().unwrap() >= 2);
    let container = &pod["containers"][0];
    assert!(container["resources"]["requests"]["cpu"].is_string(), "utilization is of the request");
    assert!(container["resources"]["requests"]["memory"].is_string(), "utilization is of the request");

    let budget = find(&objects, "PodDisruptionBudget", "ocelot-gateway");
    assert_eq!(budget["spec"]["minAvailable"], 1);
    assert!(selects(&budget["spec"]["selector"]["matchLabels"], labels));
}

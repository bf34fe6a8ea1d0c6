use std::net::IpAddr;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio::time::{Duration, Instant};

use super::table::{Extract, Owners};
use super::*;
use crate::kube::objects::Pod;
use crate::pdata::{Metadata, Payload};

fn config(yaml: &str) -> K8sAttributesConfig {
    let node = crate::config::node::parse("p.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    crate::component::parse_config(&node).unwrap_or_else(|e| panic!("{}", e.message))
}

fn refused(yaml: &str) -> String {
    let node = crate::config::node::parse("p.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    crate::component::parse_config::<K8sAttributesConfig>(&node).map(|_| ()).unwrap_err().message
}

fn pod(json: serde_json::Value) -> Pod {
    serde_json::from_value(json).unwrap()
}

fn web(uid: &str, ip: &str) -> Pod {
    pod(serde_json::json!({
        "metadata": {"name": "web-5d9c8f-x1", "namespace": "shop", "uid": uid,
            "labels": {"app": "web", "pod-template-hash": "5d9c8f", "tier": "front"},
            "annotations": {"team": "payments", "resource.opentelemetry.io/service.name": "checkout"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d9c8f", "uid": "rs-1", "controller": true}]},
        "spec": {"nodeName": "node-1", "containers": [
            {"name": "app", "image": "registry.local/shop/web:2.1"},
            {"name": "proxy", "image": "envoy"}]},
        "status": {"podIP": ip, "startTime": "2026-11-30T10:00:00Z", "containerStatuses": [
            {"name": "app", "containerID": "containerd://a0", "restartCount": 0, "imageID": "registry.local/shop/web@sha256:feed"},
            {"name": "proxy", "containerID": "containerd://p1", "restartCount": 1}]}
    }))
}

fn logs(resources: Vec<Vec<KeyValue>>) -> Batch {
    let resource_logs = resources
        .into_iter()
        .map(|attributes| ResourceLogs {
            resource: Some(Resource { attributes, ..Default::default() }),
            scope_logs: vec![ScopeLogs { log_records: vec![LogRecord::default()], ..Default::default() }],
            ..Default::default()
        })
        .collect();
    Batch::new(Payload::Logs(ExportLogsServiceRequest { resource_logs }))
}

fn from(batch: Batch, addr: &str) -> Batch {
    let metadata = Metadata::default().with_addr(Some(addr.parse::<IpAddr>().unwrap()));
    batch.with_metadata(metadata)
}

fn kv(key: &str, value: &str) -> KeyValue {
    table::string(key, value)
}

/// Each resource's attributes, as `key=value` strings, sorted.
fn tagged(p: &mut K8sAttributesProcessor, batch: Batch) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    p.process(batch, &mut out);
    let Payload::Logs(request) = out[0].payload.as_ref() else { panic!() };
    request
        .resource_logs
        .iter()
        .map(|rl| {
            let mut v: Vec<String> = rl
                .resource
                .as_ref()
                .unwrap()
                .attributes
                .iter()
                .map(|kv| {
                    let value = crate::ottl::paths::body_string(kv.value.as_ref());
                    format!("{}={value}", kv.key)
                })
                .collect();
            v.sort();
            v
        })
        .collect()
}

#[test]
fn a_resource_from_a_pods_ip_gets_the_default_metadata() {
    let config = config("{}");
    let mut p = K8sAttributesProcessor::from_pods(&config, &[web("u1", "10.0.0.5")]);
    let got = tagged(&mut p, from(logs(vec![vec![kv("service.name", "web")]]), "10.0.0.5"));
    assert_eq!(
        got[0],
        [
            "container.image.name=registry.local/shop/web",
            "container.image.tag=2.1",
            "k8s.deployment.name=web",
            "k8s.namespace.name=shop",
            "k8s.node.name=node-1",
            "k8s.pod.name=web-5d9c8f-x1",
            "k8s.pod.start_time=2026-11-30T10:00:00Z",
            "k8s.pod.uid=u1",
            "service.name=web",
        ]
        .map(String::from)
        .to_vec()
        .into_iter()
        .filter(|a| !a.starts_with("container."))
        .collect::<Vec<_>>(),
        "two containers and none named: no container attributes"
    );
    // Another client is no pod; nor is a batch with no address.
    let got = tagged(&mut p, from(logs(vec![vec![]]), "10.0.0.6"));
    assert!(got[0].is_empty(), "{got:?}");
    assert!(tagged(&mut p, logs(vec![vec![]]))[0].is_empty());
    assert_eq!(p.metrics.association_hit.get(), 1);
    assert_eq!(p.metrics.lookup_miss.get(), 1);
}

#[test]
fn the_container_is_found_by_name_id_or_restart_and_existing_attributes_stay() {
    let config = config(
        "extract:\n  metadata: [k8s.pod.name, k8s.container.name, container.id, container.image.name, container.image.tag, container.image.repo_digests]\n",
    );
    let mut p = K8sAttributesProcessor::from_pods(&config, &[web("u1", "10.0.0.5")]);
    let got = tagged(
        &mut p,
        from(
            logs(vec![
                vec![kv("k8s.container.name", "app"), kv("k8s.pod.name", "mine")],
                vec![kv("container.id", "p1")],
                vec![kv("k8s.pod.name", "")],
            ]),
            "10.0.0.5",
        ),
    );
    assert_eq!(
        got[0],
        [
            "container.id=a0",
            "container.image.name=registry.local/shop/web",
            "container.image.repo_digests=[\"registry.local/shop/web@sha256:feed\"]",
            "container.image.tag=2.1",
            "k8s.container.name=app",
            "k8s.pod.name=mine",
        ]
    );
    assert_eq!(
        got[1],
        [
            "container.id=p1",
            "container.image.name=envoy",
            "container.image.tag=latest",
            "k8s.container.name=proxy",
            "k8s.pod.name=web-5d9c8f-x1",
        ]
    );
    assert_eq!(got[2], ["k8s.pod.name=web-5d9c8f-x1"], "an empty value is filled");
}

#[test]
fn configured_associations_labels_annotations_and_otel_annotations() {
    let config = config(
        r#"
extract:
  metadata: [k8s.pod.uid]
  labels:
    - {key: app}
    - {key_regex: "ti(.*)", tag_name: "tier.$1"}
  annotations:
    - {key: team, tag_name: owner.team}
  otel_annotations: true
pod_association:
  - sources: [{from: resource_attribute, name: k8s.pod.name}, {from: resource_attribute, name: k8s.namespace.name}]
  - sources: [{from: resource_attribute, name: k8s.pod.uid}]
"#,
    );
    let mut p = K8sAttributesProcessor::from_pods(&config, &[web("u1", "10.0.0.5")]);
    let got = tagged(
        &mut p,
        from(
            logs(vec![
                vec![kv("k8s.pod.name", "web-5d9c8f-x1"), kv("k8s.namespace.name", "shop")],
                vec![kv("k8s.pod.uid", "u1")],
                vec![kv("k8s.pod.name", "web-5d9c8f-x1")],
            ]),
            "10.0.0.5",
        ),
    );
    let wanted =
        ["k8s.pod.labels.app=web", "k8s.pod.uid=u1", "owner.team=payments", "service.name=checkout", "tier.er=front"];
    let mut first = wanted.to_vec();
    first.extend(["k8s.namespace.name=shop", "k8s.pod.name=web-5d9c8f-x1"]);
    first.sort();
    assert_eq!(got[0], first);
    assert_eq!(got[1], wanted);
    // Only the pod's name: the first rule does not resolve, the second has no uid; the
    // connection is in no configured rule.
    assert_eq!(got[2], ["k8s.pod.name=web-5d9c8f-x1"]);
}

#[test]
fn host_network_and_excluded_pods_are_not_found_by_ip() {
    let mut host = web("u2", "10.0.0.9");
    host.spec.host_network = true;
    let mut ignored = web("u3", "10.0.0.10");
    ignored.metadata.annotations.insert("opentelemetry.io/k8s-processor/ignore".into(), "true".into());
    let mut jaeger = web("u4", "10.0.0.11");
    jaeger.metadata.name = "jaeger-agent-abc".into();
    let config = config("extract: {metadata: [k8s.pod.uid]}\n");
    let mut p = K8sAttributesProcessor::from_pods(&config, &[host, ignored, jaeger]);
    for ip in ["10.0.0.9", "10.0.0.10", "10.0.0.11"] {
        assert!(tagged(&mut p, from(logs(vec![vec![]]), ip))[0].is_empty(), "{ip}");
    }
    // The host-network pod is still found by its uid.
    let got = tagged(&mut p, logs(vec![vec![kv("k8s.pod.uid", "u2")]]));
    assert_eq!(got[0], ["k8s.pod.uid=u2"]);
}

#[test]
fn passthrough_only_sets_the_pod_ip_from_the_connection() {
    let config = config("passthrough: true\n");
    let mut p = K8sAttributesProcessor::new(
        &ComponentId::new(TYPE),
        &config,
        &Watches::default(),
        &TaskTracker::new(),
        Default::default(),
        crate::telemetry::Telemetry::new().processor(&ComponentId::new(TYPE)),
    )
    .unwrap();
    let got = tagged(&mut p, from(logs(vec![vec![], vec![kv("k8s.pod.ip", "10.1.1.1")]]), "::ffff:10.0.0.5"));
    assert_eq!(got, [vec!["k8s.pod.ip=10.0.0.5".to_string()], vec!["k8s.pod.ip=10.1.1.1".to_string()]]);
}

#[test]
fn a_deleted_pod_is_kept_for_its_grace_period_and_a_new_owner_of_its_ip_wins() {
    let config = config("extract: {metadata: [k8s.pod.uid]}\n");
    let extract = Extract::new(&config);
    let mut table = Table::default();
    table.upsert(extract.record(&web("old", "10.0.0.5"), &Owners::default()));
    let now = Instant::now();
    table.delete_at("old", now + POD_DELETE_GRACE_PERIOD);
    assert_eq!(table.get("i10.0.0.5\x1f").unwrap().uid, "old", "late data is still tagged");
    // The IP goes to a new pod while the old one waits out its grace period.
    table.upsert(extract.record(&web("new", "10.0.0.5"), &Owners::default()));
    assert_eq!(table.get("i10.0.0.5\x1f").unwrap().uid, "new");
    assert_eq!(table.next_expiry(), Some(now + POD_DELETE_GRACE_PERIOD));
    assert_eq!(table.expire(now + Duration::from_secs(1)), 0);
    assert_eq!(table.expire(now + POD_DELETE_GRACE_PERIOD), 1);
    assert_eq!(table.get("i10.0.0.5\x1f").unwrap().uid, "new", "the old pod's expiry leaves the new one's key");
    assert!(table.get("uold\x1f").is_none());
    assert_eq!(table.len(), 1);
    // A pod deleted and then seen again (a relist) is not expired.
    table.delete_at("new", now);
    table.upsert(extract.record(&web("new", "10.0.0.5"), &Owners::default()));
    assert_eq!(table.expire(now + POD_DELETE_GRACE_PERIOD), 0);

    // Two live pods with one IP, in either order: the one that started last has it;
    // a late change to the older one does not take it back; when the newer one is
    // deleted the older one has it again.
    let mut older = web("older", "10.0.0.9");
    older.status.start_time = Some("2026-11-01T00:00:00Z".into());
    let mut newer = web("newer", "10.0.0.9");
    newer.status.start_time = Some("2026-12-01T00:00:00Z".into());
    let mut table = Table::default();
    table.upsert(extract.record(&newer, &Owners::default()));
    table.upsert(extract.record(&older, &Owners::default()));
    assert_eq!(table.get("i10.0.0.9\x1f").unwrap().uid, "newer");
    table.delete_at("newer", now + POD_DELETE_GRACE_PERIOD);
    assert_eq!(table.get("i10.0.0.9\x1f").unwrap().uid, "older", "a live pod before a deleted one");
    table.expire(now + POD_DELETE_GRACE_PERIOD);
    assert_eq!(table.get("i10.0.0.9\x1f").unwrap().uid, "older");
    // A pod deleted at once (excluded) goes first, whatever was deleted before it.
    table.upsert(extract.record(&web("late", "10.0.0.7"), &Owners::default()));
    table.delete_at("older", now + 2 * POD_DELETE_GRACE_PERIOD);
    table.delete_at("late", now);
    assert_eq!(table.next_expiry(), Some(now));
    assert_eq!(table.expire(now), 1);
    assert!(table.get("i10.0.0.7\x1f").is_none());
}

#[test]
fn options_that_do_not_hold_are_refused() {
    assert!(refused("auth_type: tls\n").contains("for the kubelet"));
    assert!(refused("extract: {metadata: [k8s.pod.color]}\n").contains("not a metadata name"));
    assert!(refused("extract: {metadata: [service.name]}\n").contains("not supported by ocelot yet"));
    assert!(refused("extract: {labels: [{key: a, from: deployment}]}\n").contains("from: deployment"));
    assert!(refused("extract: {labels: [{key: a, from: cluster}]}\n").contains("not one of"));
    assert!(refused("extract: {labels: [{key: a, key_regex: b}]}\n").contains("not both"));
    assert!(refused("extract: {labels: [{key_regex: '('}]}\n").contains("key_regex"));
    assert!(refused("pod_association: [{sources: [{from: resource_attribute}]}]\n").contains("needs a name"));
    assert!(refused("pod_association: [{sources: [{from: header}]}]\n").contains("`from: header`"));
    assert!(refused("filter: {labels: [{key: a, op: like}]}\n").contains("`op: like`"));
    assert!(refused("frob: 1\n").contains("frob"));
    let c = config(
        "filter:\n  node: n1\n  fields: [{key: metadata.name, value: x, op: not-equals}]\n  labels: [{key: app, value: web}, {key: canary, op: does-not-exist}]\n",
    );
    assert_eq!(c.field_selector().unwrap(), "spec.nodeName=n1,metadata.name!=x");
    assert_eq!(c.label_selector(), "app=web,!canary");
    let c = config("filter: {node_from_env_var: OCELOT_TEST_UNSET_NODE_VARIABLE}\n");
    assert!(c.field_selector().unwrap_err().contains("OCELOT_TEST_UNSET_NODE_VARIABLE"));
}

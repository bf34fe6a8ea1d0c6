//! The k8sattributes processor's cost per resource on a full node: 110 pods (the
//! kubelet's default maximum), each resource of a batch from a different pod, found by
//! `k8s.pod.ip`, gaining upstream's default metadata and two labels (10 attributes).
//!   cargo bench --bench k8sattributes
//! Target (the receivers issue): ≤ 1 µs added per resource.

#![allow(clippy::panic, clippy::unwrap_used)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ocelot::kube::objects::Pod;
use ocelot::pdata::{Batch, ExportLogsServiceRequest, Payload};
use ocelot::processors::k8sattributes::{K8sAttributesConfig, K8sAttributesProcessor};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;

const PODS: usize = 110;

fn pods() -> Vec<Pod> {
    (0..PODS)
        .map(|i| {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("svc{}-7d4b9c-{i:05}", i % 20), "namespace": format!("team{}", i % 7),
                    "uid": format!("1f0c2a6e-0000-4000-8000-{i:012}"),
                    "labels": {"app": format!("svc{}", i % 20), "version": "v3", "pod-template-hash": "7d4b9c"},
                    "ownerReferences": [{"kind": "ReplicaSet", "name": format!("svc{}-7d4b9c", i % 20), "uid": "rs", "controller": true}]},
                "spec": {"nodeName": "ip-10-0-3-17.eu-west-1.compute.internal",
                    "containers": [{"name": "app", "image": format!("registry.example.com/team/svc{}:1.{i}", i % 20)}]},
                "status": {"podIP": format!("10.42.{}.{}", i / 200, i % 200 + 2), "startTime": "2026-12-01T08:00:00Z"}
            }))
            .unwrap()
        })
        .collect()
}

fn batch() -> Batch {
    let string = |key: &str, value: String| KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(Value::StringValue(value)) }),
        ..Default::default()
    };
    let resource_logs = (0..PODS)
        .map(|i| ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    string("service.name", format!("svc{}", i % 20)),
                    string("k8s.pod.ip", format!("10.42.{}.{}", i / 200, i % 200 + 2)),
                    string("telemetry.sdk.language", "go".into()),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs { log_records: vec![LogRecord::default()], ..Default::default() }],
            ..Default::default()
        })
        .collect();
    Batch::new(Payload::Logs(ExportLogsServiceRequest { resource_logs }))
}

fn bench(c: &mut Criterion) {
    let node = ocelot::config::node::parse("bench.yaml", "extract:\n  labels: [{key: app}, {key: version}]\n").unwrap();
    let config: K8sAttributesConfig = ocelot::component::parse_config(&node).unwrap();
    let mut processor = K8sAttributesProcessor::from_pods(&config, &pods());
    let template = batch();
    let mut check = template.clone();
    processor.tag(&mut check);
    let Payload::Logs(tagged) = check.payload.as_ref() else { panic!() };
    assert!(tagged.resource_logs.iter().all(|rl| rl.resource.as_ref().unwrap().attributes.len() == 13));

    let mut group = c.benchmark_group("k8sattributes");
    group.throughput(Throughput::Elements(PODS as u64));
    group.bench_function("tag_110_resources", |b| {
        b.iter_batched(
            // A batch of its own, so the timing holds no copy-on-write.
            || Batch::new(template.payload.as_ref().clone()),
            |mut batch| {
                processor.tag(&mut batch);
                batch
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

criterion_group!(benches, bench);
criterion_main!(benches);

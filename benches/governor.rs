//! The governor's cost on the OTLP pass-through, measured steadily: the `importance`
//! and `memory_limiter` processors (limit not reached, so nothing is shed) on a
//! batch of 1000 log records, against the least the pass-through itself does with
//! that batch (protobuf decode on the way in, encode on the way out).
//!   cargo bench --bench governor

#![allow(clippy::panic)]

use std::collections::BTreeMap;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ocelot::config::ComponentId;
use ocelot::pdata::json::{from_proto, to_proto};
use ocelot::pdata::{Batch, Signal, synthetic};
use ocelot::pipeline::governor::Governor;
use ocelot::processors::{Environment, Processor, ProcessorConfig, build};
use ocelot::telemetry::Telemetry;

const MEMORY_LIMITER: &str = r#"
limit_mib: 1024
drop_levels:
  - { threshold_percent: 50, drop_below: 0.3 }
  - { threshold_percent: 60, sample: { below: 0.6, rate: 0.5 } }
  - { threshold_percent: 70, keep_only_above: 0.9 }
"#;

/// One rule on the resource, as `benches/e2e.sh`: scored once per resource.
const RESOURCE_RULE: &str = r#"
rules:
  - score: 0.9
    match: { resource: { service.name: "loadgen*" } }
"#;

/// The degradation benchmark's rules: one score per record, from its `tier`.
const RECORD_RULES: &str = r#"
default_score: 0.1
rules:
  - { score: 0.95, match: { attributes: { tier: critical } } }
  - { score: 0.7, match: { attributes: { tier: important } } }
  - { score: 0.4, match: { attributes: { tier: standard } } }
"#;

fn processor(kind: &str, yaml: &str, governor: &Governor, telemetry: &Telemetry) -> Box<dyn Processor> {
    let node = ocelot::config::node::parse("bench.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    let factory =
        ocelot::processors::FACTORIES.iter().find(|f| f.type_name == kind).unwrap_or_else(|| panic!("{kind}"));
    let config: ProcessorConfig = (factory.parse)(&node).unwrap_or_else(|e| panic!("{e:?}"));
    let stores = ocelot::processors::importance::Stores::default();
    let tasks = tokio_util::task::TaskTracker::new();
    let storage = std::env::temp_dir();
    let pod_watches = ocelot::processors::k8sattributes::Watches::default();
    let env = Environment {
        telemetry,
        governor,
        stores: &stores,
        storage_dir: &storage,
        extensions: &BTreeMap::new(),
        tasks: &tasks,
        pod_watches: &pod_watches,
    };
    build(&ComponentId::new(kind), &config, &env).unwrap_or_else(|e| panic!("{e}"))
}

fn governor(c: &mut Criterion) {
    let encoded = to_proto(&synthetic::with_tiers(synthetic::payload(Signal::Logs, 1000, 5, 1)));
    let mut group = c.benchmark_group("governor");
    group.throughput(Throughput::Elements(1000));

    group.bench_function("pass_through_decode_encode_logs", |b| {
        b.iter(|| {
            let decoded = from_proto(Signal::Logs, &encoded).unwrap_or_else(|e| panic!("{e}"));
            to_proto(&decoded).len()
        })
    });

    let telemetry = Telemetry::new();
    let governor = Governor::new();
    for (name, rules) in [("resource_rule", RESOURCE_RULE), ("record_rules", RECORD_RULES)] {
        let mut importance = processor("importance", rules, &governor, &telemetry);
        let mut limiter = processor("memory_limiter", MEMORY_LIMITER, &governor, &telemetry);
        governor.prime();
        group.bench_function(format!("importance_{name}_memory_limiter_logs"), |b| {
            let mut middle = Vec::with_capacity(1);
            b.iter_batched(
                // Decoded, as a receiver hands it over (a clone would have no spare
                // capacity, and the score's attribute would cost a reallocation).
                || Batch::new(from_proto(Signal::Logs, &encoded).unwrap_or_else(|e| panic!("{e}"))),
                |batch| {
                    importance.process(batch, &mut middle);
                    let mut out = Vec::with_capacity(1);
                    for batch in middle.drain(..) {
                        limiter.process(batch, &mut out);
                    }
                    // Freed outside the timing, as the exporter lets it go in the agent.
                    out
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, governor);
criterion_main!(benches);

// Measure with the allocator the agent ships with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

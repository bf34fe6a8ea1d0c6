//! tail_sampling at steady state: batches of 100 traces of 10 spans (about 1 KiB each)
//! in, each batch's traces decided and the kept ones sent on, with five policies.
//!   cargo bench --bench tail_sampling

#![allow(clippy::panic, clippy::unwrap_used)]

#[path = "common/traces.rs"]
mod traces;

use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ocelot::config::ComponentId;
use ocelot::pdata::{Batch, Payload};
use ocelot::processors::Processor;
use ocelot::processors::tail_sampling::{TailSamplingProcessor, parse};
use ocelot::telemetry::Telemetry;

fn tail_sampling(c: &mut Criterion) {
    let telemetry = Telemetry::new();
    let id = ComponentId::new("tail_sampling");
    let yaml = format!("decision_wait: 1s\n{}", traces::FIVE_POLICIES);
    let config = parse(&ocelot::config::node::parse("bench.yaml", &yaml).unwrap()).unwrap();
    let mut processor =
        TailSamplingProcessor::new(&id, &config, telemetry.tail_sampling(&id), telemetry.processor(&id)).unwrap();
    let mut group = c.benchmark_group("tail_sampling");
    group.throughput(Throughput::Elements(1000));
    let mut next = 0u64;
    group.bench_function("five_policies_1000_spans_in_decided_out", |b| {
        b.iter_batched(
            || {
                next += 100;
                Batch::new(Payload::Traces(traces::request(next, 100, 10, 1024)))
            },
            |batch| {
                let mut out = Vec::new();
                processor.process(batch, &mut out);
                // Every trace of the batch is due: decided and the kept sent on.
                processor.on_deadline(tokio::time::Instant::now() + Duration::from_secs(2), &mut out);
                out
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, tail_sampling);
criterion_main!(benches);

// Measure with the allocator the agent ships with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

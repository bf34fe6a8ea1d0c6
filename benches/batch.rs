//! The batch processor: merging small batches into `send_batch_size` and cutting at
//! `send_batch_max_size`.
//!   cargo bench --bench batch

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ocelot::config::ConfigDuration;
use ocelot::pdata::synthetic::payload;
use ocelot::pdata::{Batch, Signal};
use ocelot::processors::Processor;
use ocelot::processors::batch::{BatchConfig, BatchProcessor};
use prometheus_client::metrics::histogram::Histogram;

fn batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_processor");
    let inputs: Vec<_> = (0..100).map(|seed| payload(Signal::Traces, 100, 5, seed)).collect();
    group.throughput(Throughput::Elements(100 * 100));
    for (name, max) in [("merge_8192", 0), ("merge_8192_cut_1000", 1000)] {
        let config = BatchConfig {
            send_batch_size: 8192,
            send_batch_max_size: max,
            timeout: ConfigDuration::from_millis(200),
            ..BatchConfig::default()
        };
        group.bench_function(name, |b| {
            b.iter_batched(
                || inputs.iter().cloned().map(Batch::new).collect::<Vec<_>>(),
                |batches| {
                    let mut processor = BatchProcessor::new(&config, Histogram::new([1.0]));
                    let mut out = Vec::new();
                    for batch in batches {
                        processor.process(batch, &mut out);
                    }
                    processor.flush(&mut out);
                    out.len()
                },
                criterion::BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, batch);
criterion_main!(benches);

// Measure with the allocator the agent ships with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

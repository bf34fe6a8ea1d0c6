//! OTLP metrics → Prometheus series → remote-write request (protobuf + snappy):
//! samples per second, the exporter's CPU cost per batch.
//!   cargo bench --bench remote_write

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ocelot::exporters::prometheusremotewrite::write_requests;
use ocelot::pdata::prometheus::delta::DeltaState;
use ocelot::pdata::prometheus::{Options, Translation, translate};
use ocelot::pdata::{Payload, Signal, synthetic};
use prost::Message;

fn remote_write(c: &mut Criterion) {
    // 1000 gauge points with 5 attributes each, like one batch from a busy service.
    let Payload::Metrics(request) = synthetic::payload(Signal::Metrics, 1000, 5, 1) else { return };
    let options = Options { add_metric_suffixes: true, target_info: true, ..Options::default() };
    let mut group = c.benchmark_group("remote_write");
    group.throughput(Throughput::Elements(1000));
    let mut deltas = DeltaState::new(Duration::from_secs(300));
    group.bench_function("translate", |b| {
        b.iter(|| {
            let mut out = Translation::default();
            translate(&request, &options, &mut deltas, &mut out);
            out.series.len()
        })
    });
    group.bench_function("translate_encode_snappy", |b| {
        b.iter(|| {
            let mut out = Translation::default();
            translate(&request, &options, &mut deltas, &mut out);
            out.sort_samples();
            write_requests(out, false, 3_000_000)
                .iter()
                .map(|(w, _)| snap::raw::Encoder::new().compress_vec(&w.encode_to_vec()).map_or(0, |b| b.len()))
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, remote_write);
criterion_main!(benches);

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

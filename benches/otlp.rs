//! OTLP decode and encode (protobuf and JSON), the receiver's and exporters' hot path.
//!   cargo bench --bench otlp

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ocelot::pdata::Signal;
use ocelot::pdata::json::{from_json, from_proto, to_json_line, to_proto};
use ocelot::pdata::synthetic::payload;

/// Items per request: small, medium and large exports.
const SIZES: [usize; 3] = [10, 100, 1000];
const ATTRIBUTES: usize = 5;

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("otlp_decode_proto");
    for signal in Signal::ALL {
        for size in SIZES {
            let bytes = to_proto(&payload(signal, size, ATTRIBUTES, 1));
            group.throughput(Throughput::Elements(size as u64));
            group.bench_with_input(BenchmarkId::new(signal.as_str(), size), &bytes, |b, bytes| {
                b.iter(|| from_proto(signal, bytes).map(|p| p.item_count()))
            });
        }
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("otlp_encode_proto");
    for signal in Signal::ALL {
        for size in SIZES {
            let request = payload(signal, size, ATTRIBUTES, 1);
            group.throughput(Throughput::Elements(size as u64));
            group.bench_with_input(BenchmarkId::new(signal.as_str(), size), &request, |b, request| {
                b.iter(|| to_proto(request).len())
            });
        }
    }
    group.finish();
}

fn json(c: &mut Criterion) {
    let mut group = c.benchmark_group("otlp_json");
    let request = payload(Signal::Logs, 100, ATTRIBUTES, 1);
    let text = to_json_line(&request);
    group.throughput(Throughput::Elements(100));
    group.bench_function("decode/logs/100", |b| {
        b.iter(|| from_json(Signal::Logs, text.as_bytes()).map(|p| p.item_count()))
    });
    group.bench_function("encode/logs/100", |b| b.iter(|| to_json_line(&request).len()));
    group.finish();
}

criterion_group!(benches, decode, encode, json);
criterion_main!(benches);

// Measure with the allocator the agent ships with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

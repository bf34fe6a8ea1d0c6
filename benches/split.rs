//! The file tail's line splitter: MB/s over log-like text fed in 64 KiB reads.
//!   cargo bench --bench split

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ocelot::receivers::filelog::split::LineSplitter;

/// 16 MiB of lines of 60 to 260 bytes, like application logs.
fn log_text() -> Vec<u8> {
    let mut text = Vec::with_capacity(16 << 20);
    let mut i = 0usize;
    while text.len() < 16 << 20 {
        let width = 60 + (i * 7919) % 200;
        text.extend_from_slice(format!("2026-11-22T05:00:00.{:06}Z INFO request {i} ", i % 1_000_000).as_bytes());
        text.extend(std::iter::repeat_n(b'x', width));
        text.push(b'\n');
        i += 1;
    }
    text
}

fn split(c: &mut Criterion) {
    let text = log_text();
    let mut group = c.benchmark_group("line_split");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("64KiB_reads_max_1MiB", |b| {
        b.iter(|| {
            let mut splitter = LineSplitter::new(1 << 20, 0);
            let mut lines = 0usize;
            for chunk in text.chunks(64 << 10) {
                splitter.push(chunk, |_| lines += 1);
            }
            lines
        })
    });
    group.finish();
}

criterion_group!(benches, split);
criterion_main!(benches);

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

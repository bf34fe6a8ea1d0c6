//! OTLP logs → Loki streams (labels, structured metadata, lines) → push request
//! (protobuf + snappy): lines/s (and the batch's body bytes, for MiB/s).
//!   cargo bench --bench loki

#![allow(clippy::panic)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ocelot::config::ComponentId;
use ocelot::exporters::loki::{LokiConfig, LokiExporter};
use ocelot::pdata::{Payload, Signal, synthetic};
use ocelot::telemetry::Telemetry;

fn loki(c: &mut Criterion) {
    let Payload::Logs(request) = synthetic::payload(Signal::Logs, 1000, 5, 1) else { return };
    let line_bytes: usize = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .map(|r| ocelot::exporters::loki::encode::body_text(r).len())
        .sum();
    let mut group = c.benchmark_group("loki");
    for format in ["raw", "json", "logfmt"] {
        let yaml = format!("endpoint: http://127.0.0.1:3100/loki/api/v1/push\nformat: {format}\n");
        let node = ocelot::config::node::parse("bench.yaml", &yaml).unwrap_or_else(|e| panic!("{e}"));
        let config: LokiConfig = ocelot::config::de::from_node(&node).unwrap_or_else(|e| panic!("{e}"));
        let id = ComponentId::parse("loki").unwrap_or_else(|e| panic!("{e}"));
        let exporter = LokiExporter::new(&id, &config, &Telemetry::new()).unwrap_or_else(|e| panic!("{e}"));
        group.throughput(Throughput::Elements(1000));
        group.bench_function(format!("{format}_lines"), |b| {
            b.iter(|| exporter.build_requests(&request).iter().map(|push| push.body.len()).sum::<usize>())
        });
    }
    group.finish();
    // For MiB/s: the bodies of one batch.
    println!("loki: one batch = 1000 lines, {line_bytes} bytes of body text");
}

criterion_group!(benches, loki);
criterion_main!(benches);

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

//! The prometheus receiver's work per scrape on a 10k-series page like a busy
//! exporter's: 60 counters, 30 gauges and 10 histograms (10 buckets), each with 3
//! labels over many label values. Parsing alone, then parsing and translating to
//! OTLP (relabeling off, staleness tracked across scrapes).
//!   cargo bench --bench prometheus_scrape
//! Target (issue 16's table of the receivers issue): 2 M samples per second per core.

#![allow(clippy::panic, clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ocelot::receivers::prometheus::relabel::LabelSet;
use ocelot::receivers::prometheus::text::{Format, parse};
use ocelot::receivers::prometheus::translate::{Staleness, TargetSettings, translate};

/// A page of about `series` samples and its sample count.
fn page(series: usize) -> (String, usize) {
    let mut out = String::new();
    let mut samples = 0;
    let per_family = series / 100;
    for f in 0..60 {
        out += &format!("# HELP app_requests_{f}_total Requests of kind {f}.\n# TYPE app_requests_{f}_total counter\n");
        for i in 0..per_family {
            out += &format!(
                "app_requests_{f}_total{{method=\"GET\",code=\"{}\",path=\"/api/v1/items/{i}\"}} {}\n",
                200 + i % 5,
                i * 17
            );
            samples += 1;
        }
    }
    for f in 0..30 {
        out += &format!("# HELP app_queue_{f} Queue depth.\n# TYPE app_queue_{f} gauge\n");
        for i in 0..per_family {
            out += &format!("app_queue_{f}{{queue=\"q{i}\",shard=\"{}\",zone=\"z1\"}} {}.5\n", i % 8, i);
            samples += 1;
        }
    }
    for f in 0..10 {
        out += &format!("# HELP app_latency_{f}_seconds Latency.\n# TYPE app_latency_{f}_seconds histogram\n");
        for i in 0..per_family / 12 {
            for (b, le) in
                ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"].iter().enumerate()
            {
                out += &format!(
                    "app_latency_{f}_seconds_bucket{{route=\"r{i}\",method=\"GET\",le=\"{le}\"}} {}\n",
                    b * 10 + i
                );
                samples += 1;
            }
            out += &format!("app_latency_{f}_seconds_sum{{route=\"r{i}\",method=\"GET\"}} 12.5\n");
            out += &format!("app_latency_{f}_seconds_count{{route=\"r{i}\",method=\"GET\"}} {}\n", 90 + i);
            samples += 2;
        }
    }
    (out, samples)
}

fn scrape(c: &mut Criterion) {
    let (text, samples) = page(10_000);
    let settings = TargetSettings::new(
        LabelSet::from_pairs([("instance".to_string(), "10.0.0.5:8080".to_string()), ("job".into(), "app".into())]),
        "http",
    );
    let mut group = c.benchmark_group("prometheus_scrape");
    group.throughput(Throughput::Elements(samples as u64));
    group.bench_function("parse_10k_series", |b| b.iter(|| parse(&text, Format::Text).unwrap().len()));
    let mut state = Staleness::default();
    group.bench_function("parse_and_translate_10k_series", |b| {
        b.iter(|| {
            let families = parse(&text, Format::Text).unwrap();
            translate(&families, &settings, 1_800_000_000_000_000_000, &mut state).unwrap().0.len()
        })
    });
    group.finish();
}

criterion_group!(benches, scrape);
criterion_main!(benches);

// Measure with the allocator the agent ships with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

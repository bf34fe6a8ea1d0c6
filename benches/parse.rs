//! The filelog receiver's record parsing: the container operator over CRI and Docker
//! lines, and an operator chain (json_parser with timestamp and severity, a filter, a
//! move) over JSON application logs. Throughput in bytes and records.
//!   cargo bench --bench parse

#![allow(clippy::panic)]

use std::borrow::Cow;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ocelot::config::ByteSize;
use ocelot::receivers::filelog::container::{ContainerConfig, ContainerParser, Format, OnError};
use ocelot::receivers::filelog::operators::field::{Entry, string};
use ocelot::receivers::filelog::operators::{OperatorConfig, Operators, Report};
use opentelemetry_proto::tonic::logs::v1::LogRecord;

const LINES: usize = 20_000;

fn json_line(i: usize) -> String {
    format!(
        r#"{{"ts":"2026-11-22 05:00:{:02}.{:03}","level":"{}","msg":"request {i} served","path":"/api/v1/orders/{i}","status":200,"duration_ms":{}}}"#,
        i % 60,
        i % 1000,
        ["info", "warn", "error", "debug"][i % 4],
        i % 97
    )
}

fn records(lines: &[String]) -> Vec<LogRecord> {
    lines.iter().map(|l| LogRecord { body: Some(string(l.as_str())), ..Default::default() }).collect()
}

fn container(c: &mut Criterion) {
    let cri: Vec<String> = (0..LINES)
        .map(|i| {
            format!("2026-11-22T05:00:00.{:09}Z stdout {} {}", i, if i % 10 == 9 { 'P' } else { 'F' }, json_line(i))
        })
        .collect();
    let docker: Vec<String> = (0..LINES)
        .map(|i| {
            let log = serde_json::to_string(&format!("{}\n", json_line(i))).unwrap_or_default();
            format!(r#"{{"log":{log},"stream":"stdout","time":"2026-11-22T05:00:00.{i:09}Z"}}"#)
        })
        .collect();
    let mut group = c.benchmark_group("container");
    for (name, lines) in [("cri", &cri), ("docker", &docker)] {
        let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
        group.throughput(Throughput::Bytes(bytes as u64));
        let input = records(lines);
        group.bench_function(name, |b| {
            b.iter_batched(
                || input.clone(),
                |input| {
                    let config = ContainerConfig {
                        id: None,
                        format: Format::Auto,
                        add_metadata_from_filepath: false,
                        max_log_size: ByteSize(1 << 20),
                        on_error: OnError::Send,
                    };
                    let mut parser = ContainerParser::new(config);
                    let mut out = Vec::with_capacity(input.len());
                    for (i, record) in input.into_iter().enumerate() {
                        parser.process(record, i as u64, &mut out);
                    }
                    parser.flush(true, &mut out);
                    out.len()
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn operators(c: &mut Criterion) {
    let chain = r#"
- type: json_parser
  timestamp: { parse_from: attributes.ts, layout: '%Y-%m-%d %H:%M:%S.%L', location: UTC }
  severity: { parse_from: attributes.level }
- type: filter
  expr: 'attributes.level == "debug"'
- type: move
  from: attributes.msg
  to: body
"#;
    let node = ocelot::config::node::parse("bench.yaml", chain).unwrap_or_else(|e| panic!("{e}"));
    let configs: Vec<OperatorConfig> = ocelot::config::de::from_node(&node).unwrap_or_else(|e| panic!("{e}"));
    let ops = Operators::new(&configs).unwrap_or_else(|e| panic!("{e}"));
    let lines: Vec<String> = (0..LINES).map(json_line).collect();
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let input = records(&lines);
    let mut group = c.benchmark_group("operators");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("json_timestamp_severity_filter_move", |b| {
        b.iter_batched(
            || input.clone(),
            |input| {
                let mut report = Report::default();
                input
                    .into_iter()
                    .filter_map(|record| ops.run(Entry { record, resource: Cow::Borrowed(&[]) }, &mut report))
                    .count()
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, container, operators);
criterion_main!(benches);

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

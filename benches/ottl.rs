//! OTTL on logs: a `filter` of two conditions over batches of 1000 records (nothing
//! matches, so the batch passes without a copy, as in most real traffic), and the
//! conditions alone: records/s.
//!   cargo bench --bench ottl

#![allow(clippy::panic)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ocelot::config::ComponentId;
use ocelot::ottl::{Condition, Kind, Record};
use ocelot::pdata::{Batch, Payload, Signal, synthetic};
use ocelot::processors::Processor;
use ocelot::processors::filter::{FilterConfig, FilterProcessor};
use ocelot::telemetry::Telemetry;

const CONDITIONS: [&str; 2] =
    [r#"severity_number < SEVERITY_NUMBER_DEBUG and attributes["attr0"] == "never""#, r#"IsMatch(body, "password=")"#];

fn ottl(c: &mut Criterion) {
    let payload = synthetic::payload(Signal::Logs, 1000, 5, 1);
    let mut group = c.benchmark_group("ottl");
    group.throughput(Throughput::Elements(1000));

    let yaml = format!("logs:\n  log_record:\n    - '{}'\n    - '{}'\n", CONDITIONS[0], CONDITIONS[1]);
    let node = ocelot::config::node::parse("bench.yaml", &yaml).unwrap_or_else(|e| panic!("{e}"));
    let config: FilterConfig = ocelot::processors::filter::parse(&node).unwrap_or_else(|e| panic!("{e}"));
    let id = ComponentId::new("filter");
    let mut filter = FilterProcessor::new(&id, &config, Telemetry::new().filter_processor(&id));
    // The batch is shared (an Arc), as on fan-out: nothing matching, nothing is copied.
    let batch = Batch::new(payload.clone());
    group.bench_function("filter_2_conditions_logs", |b| {
        let mut out = Vec::with_capacity(1);
        b.iter(|| {
            out.clear();
            filter.process(batch.clone(), &mut out);
            out.len()
        })
    });

    let conditions: Vec<Condition> =
        CONDITIONS.iter().map(|t| Condition::parse(Kind::Log, t).unwrap_or_else(|e| panic!("{e}"))).collect();
    let Payload::Logs(request) = &payload else { return };
    group.bench_function("conditions_only_logs", |b| {
        b.iter(|| {
            let mut matched = 0usize;
            for rl in &request.resource_logs {
                let resource = rl.resource.as_ref().unwrap_or_else(|| panic!("resource"));
                for sl in &rl.scope_logs {
                    let scope = sl.scope.as_ref().unwrap_or_else(|| panic!("scope"));
                    for record in &sl.log_records {
                        let ctx = Record::log(resource, scope, record);
                        matched += conditions.iter().filter(|c| c.eval(&ctx).unwrap_or(false)).count();
                    }
                }
            }
            matched
        })
    });
    group.finish();
}

criterion_group!(benches, ottl);
criterion_main!(benches);

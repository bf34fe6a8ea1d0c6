//! OTTL on logs: a `filter` of two conditions over batches of 1000 records (nothing
//! matches, so the batch passes without a copy, as in most real traffic), the
//! conditions alone, and a `transform` of five statements followed by that filter,
//! the shape DESIGN.md sets a target for: records/s.
//!   cargo bench --bench ottl

#![allow(clippy::panic)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ocelot::config::ComponentId;
use ocelot::ottl::{Condition, Kind, Record};
use ocelot::pdata::{Batch, Payload, Signal, synthetic};
use ocelot::processors::Processor;
use ocelot::processors::filter::{FilterConfig, FilterProcessor};
use ocelot::processors::transform::TransformProcessor;
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

    // Five statements as the issue names them: set, replace_pattern, delete_key, a
    // `where` on severity, a converter; then the two-condition filter. Each batch is
    // fresh (made outside the timing), as a receiver hands it over.
    let yaml = r#"
log_statements:
  - 'set(log.attributes["env"], "prod")'
  - 'replace_pattern(log.body, "password=\\S+", "password=***")'
  - 'delete_key(log.attributes, "attr.4")'
  - 'set(log.severity_text, "WARN") where log.severity_number >= SEVERITY_NUMBER_WARN'
  - 'set(log.attributes["service"], ToUpperCase(resource.attributes["service.name"]))'
"#;
    let node = ocelot::config::node::parse("bench.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    let config = ocelot::processors::transform::parse(&node).unwrap_or_else(|e| panic!("{e}"));
    let id = ComponentId::new("transform");
    let mut transform = TransformProcessor::new(&id, &config, Telemetry::new().processor(&id));
    group.bench_function("transform_5_statements_filter_2_conditions_logs", |b| {
        let mut middle = Vec::with_capacity(1);
        b.iter_batched(
            || Batch::new(payload.clone()),
            |batch| {
                transform.process(batch, &mut middle);
                let mut out = Vec::with_capacity(1);
                for batch in middle.drain(..) {
                    filter.process(batch, &mut out);
                }
                // Returned, so criterion frees the batch outside the timing: in the
                // agent, the exporter lets it go, not these processors.
                out
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, ottl);
criterion_main!(benches);

// Measure with the allocator the agent ships with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

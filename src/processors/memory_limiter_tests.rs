//! The `memory_limiter`'s config (upstream's checks and ocelot's levels) and its
//! shedding at each level against batches with a known score mix.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

use super::*;
use crate::pdata::{Ack, AckOutcome, Payload};
use crate::telemetry::Telemetry;

fn config(yaml: &str) -> Result<MemoryLimiterConfig, String> {
    let node = crate::config::node::parse("p.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    crate::component::parse_config(&node).map_err(|e| e.message)
}

const LEVELS: &str = r#"
check_interval: 1s
limit_mib: 100
spike_limit_mib: 20
drop_levels:
  - threshold_percent: 50
    drop_below: 0.3
  - threshold_percent: 60
    sample: { below: 0.6, rate: 0.25 }
  - threshold_percent: 70
    keep_only_above: 0.9
"#;

#[test]
fn upstream_checks() {
    let err = |yaml: &str| config(yaml).unwrap_err();
    assert_eq!(err("check_interval: 0s\nlimit_mib: 10"), "'check_interval' must be greater than zero");
    assert_eq!(err("check_interval: 1s"), "'limit_mib' or 'limit_percentage' must be greater than zero");
    assert_eq!(err("limit_mib: 10\nspike_limit_mib: 10"), "'spike_limit_mib' must be smaller than 'limit_mib'");
    assert_eq!(
        err("limit_percentage: 50\nspike_limit_percentage: 60"),
        "'spike_limit_percentage' must be smaller than 'limit_percentage'"
    );
    assert!(err("limit_percentage: 150").contains("less than or equal to hundred"));
    let c = config("limit_mib: 1000").unwrap();
    assert_eq!(c.check_interval.0, Duration::from_millis(100));
    let limits = c.limits().unwrap();
    assert_eq!((limits.hard, limits.soft), (1000 * MIB, 800 * MIB), "the spike room defaults to a fifth");
    let limits = config("limit_percentage: 50\nspike_limit_percentage: 10").unwrap().limits().unwrap();
    assert!(limits.hard > limits.soft && limits.soft > 0);
}

#[test]
fn level_checks() {
    assert!(config(LEVELS).is_ok());
    let with = |levels: &str| config(&format!("limit_mib: 100\ndrop_levels:\n{levels}")).unwrap_err();
    assert!(with("  - { threshold_percent: 85, drop_below: 0.3 }").contains("at or above the soft limit (80.0 %"));
    assert!(
        with("  - { threshold_percent: 50, drop_below: 0.3 }\n  - { threshold_percent: 40, drop_below: 0.6 }")
            .contains("must be above the level before")
    );
    assert!(with("  - { threshold_percent: 50 }").contains("at least one of"));
    assert!(with("  - { threshold_percent: 50, drop_below: 3 }").contains("scores are in [0, 1]"));
    assert!(with("  - { threshold_percent: 50, sample: { below: 0.5, rate: 2 } }").contains("sample.rate"));
    assert!(with("  - { threshold_percent: 50, drop_beneath: 0.5 }").contains("drop_beneath"));
}

/// `per_tier` records at each score, plus unscored and invalid ones, in one batch.
fn mixed(per_tier: usize) -> Payload {
    let score = |s: Option<&str>| {
        let mut r = LogRecord::default();
        if let Some(s) = s {
            r.attributes.push(crate::receivers::filelog::reader::string_kv("importance", s));
        }
        r
    };
    let mut records = Vec::new();
    for value in ["0.95", "0.7", "0.4", "0.1"] {
        records.extend((0..per_tier).map(|_| score(Some(value))));
    }
    records.extend((0..per_tier).map(|_| score(None)));
    records.extend((0..per_tier).map(|_| score(Some("high"))));
    Payload::Logs(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs { log_records: records, ..Default::default() }],
            ..Default::default()
        }],
    })
}

fn kept(payload: &Payload) -> Vec<String> {
    let Payload::Logs(r) = payload else { panic!("logs") };
    r.resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .map(|l| match score::read("importance", &l.attributes, &[]) {
            Score::Scored(v) => format!("{v}"),
            Score::Missing => "none".into(),
            Score::Invalid => "bad".into(),
        })
        .collect()
}

fn at(used_percent: u64) -> (MemoryLimiterProcessor, Arc<Limiter>) {
    let c = config(LEVELS).unwrap();
    let telemetry = Telemetry::new();
    let governor = Governor::new();
    let id = ComponentId::new(TYPE);
    let limiter = c.limiter(&id, &governor, &telemetry).unwrap();
    limiter.update(used_percent * MIB, Duration::ZERO);
    (MemoryLimiterProcessor::new(&c, limiter.clone()), limiter)
}

fn count(list: &[String], what: &str) -> usize {
    list.iter().filter(|s| *s == what).count()
}

#[test]
fn below_every_level_nothing_is_touched() {
    let (mut p, _) = at(40);
    let mut out = Vec::new();
    p.process(Batch::new(mixed(4)), &mut out);
    assert_eq!(out[0].payload.item_count(), 24);
}

#[test]
fn levels_add_up_from_the_least_important() {
    let (mut p, limiter) = at(55);
    let mut out = Vec::new();
    p.process(Batch::new(mixed(8)), &mut out);
    let left = kept(&out.pop().unwrap().payload);
    assert_eq!(count(&left, "0.1"), 0, "level 1 drops what is scored under 0.3");
    assert_eq!((count(&left, "0.4"), count(&left, "0.7"), count(&left, "0.95")), (8, 8, 8));
    assert_eq!((count(&left, "none"), count(&left, "bad")), (8, 8), "drop_below leaves unscored records");
    let m = limiter.metrics();
    assert_eq!(m.dropped(1, Tier::Low).get(), 8);
    assert_eq!((m.missing.get(), m.invalid.get()), (8, 8));

    limiter.update(65 * MIB, Duration::ZERO);
    p.process(Batch::new(mixed(8)), &mut out);
    let left = kept(&out.pop().unwrap().payload);
    assert_eq!(count(&left, "0.4"), 2, "level 2 keeps a quarter of what is under 0.6");
    assert_eq!((count(&left, "0.1"), count(&left, "0.7"), count(&left, "0.95")), (0, 8, 8));
    assert_eq!(m.sampled(2, Tier::Standard).get(), 6);

    limiter.update(75 * MIB, Duration::ZERO);
    p.process(Batch::new(mixed(8)), &mut out);
    let left = kept(&out.pop().unwrap().payload);
    assert_eq!(left, vec!["0.95"; 8], "level 3 keeps only critical records, unscored ones go");
    assert_eq!(m.dropped(3, Tier::Unscored).get(), 16);
    assert_eq!(m.dropped(3, Tier::Important).get(), 8);
}

#[test]
fn a_shed_batch_is_done_not_failed() {
    let (mut p, limiter) = at(75);
    let (ack, waiter) = Ack::new();
    let mut out = Vec::new();
    let mut payload = mixed(1);
    let Payload::Logs(r) = &mut payload else { unreachable!() };
    r.resource_logs[0].scope_logs[0].log_records.retain(|l| l.attributes.is_empty());
    p.process(Batch::with_ack(payload, ack), &mut out);
    assert!(out.is_empty(), "an emptied batch goes nowhere");
    let resolution = block_on(waiter);
    assert_eq!(resolution.outcome, AckOutcome::Delivered);
    assert!(limiter.drop_levels() == 3);
}

fn block_on(waiter: crate::pdata::AckWaiter) -> crate::pdata::Resolution {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(waiter.wait())
}

#[test]
fn spans_are_sampled_by_trace_id() {
    // The same trace id is kept or shed alike wherever it is seen.
    let mut ids: Vec<[u8; 16]> = (0u64..4000)
        .map(|i| {
            let mut id = [0u8; 16];
            id[8..].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
            id
        })
        .collect();
    let kept: usize = ids.iter().filter(|id| trace_kept(&id[..], 0.25) == Some(true)).count();
    assert!((900..1100).contains(&kept), "about a quarter: {kept}");
    ids.truncate(10);
    for id in &ids {
        assert_eq!(trace_kept(id, 0.25), trace_kept(id, 0.25));
    }
    assert_eq!(trace_kept(&[0u8; 16], 0.5), None, "an empty trace id is none");
    assert_eq!(trace_kept(&[], 0.5), None);
}

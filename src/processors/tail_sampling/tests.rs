use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use tokio::time::Instant;

use super::*;
use crate::config::ComponentId;
use crate::pdata::{Ack, AckOutcome, Batch, Payload};
use crate::processors::Processor;
use crate::telemetry::Telemetry;

fn config(yaml: &str) -> Result<TailSamplingConfig, String> {
    let node = crate::config::node::parse("t.yaml", yaml).map_err(|e| e.to_string())?;
    parse(&node).map_err(|e| e.message)
}

fn processor_with(yaml: &str, telemetry: &Telemetry) -> TailSamplingProcessor {
    let id = ComponentId::parse("tail_sampling/gw").unwrap();
    let config = config(yaml).unwrap();
    TailSamplingProcessor::new(&id, &config, telemetry.tail_sampling(&id), telemetry.processor(&id)).unwrap()
}

fn processor(yaml: &str) -> TailSamplingProcessor {
    processor_with(yaml, &Telemetry::new())
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
        ..Default::default()
    }
}

/// Span `n` of trace `t`, from `start` to `end` ms; span 0 is the root.
fn span(t: u8, n: u8, start: u64, end: u64, error: bool) -> Span {
    Span {
        trace_id: vec![t; 16],
        span_id: vec![n + 1; 8],
        parent_span_id: if n == 0 { vec![] } else { vec![1; 8] },
        name: format!("op{n}"),
        start_time_unix_nano: start * 1_000_000,
        end_time_unix_nano: end * 1_000_000,
        status: error.then(|| Status { code: 2, message: "boom".into() }),
        attributes: vec![text("http.route", &format!("/r{t}"))],
        ..Default::default()
    }
}

fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource { attributes: vec![text("service.name", service)], ..Default::default() }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope { name: "lib".into(), ..Default::default() }),
                spans,
                schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn batch(request: ExportTraceServiceRequest) -> Batch {
    Batch::new(Payload::Traces(request))
}

/// The (trace id byte, span name) of every span in `batches`.
fn spans_of(batches: &[Batch]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    for b in batches {
        let Payload::Traces(r) = &*b.payload else { panic!("not traces") };
        for rs in &r.resource_spans {
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    out.push((s.trace_id[0], s.name.clone()));
                }
            }
        }
    }
    out.sort();
    out
}

const ERRORS: &str = "
decision_wait: 2s
policies:
  - name: errors
    type: status_code
    status_code: {status_codes: [ERROR]}
";

#[test]
fn config_reads_upstreams_example_and_refuses_what_it_cannot_do() {
    let c = config(
        "
decision_wait: 10s
num_traces: 100
expected_new_traces_per_sec: 10
decision_cache: {sampled_cache_size: 1000, non_sampled_cache_size: 5000}
policies:
  - {name: p1, type: always_sample}
  - {name: p2, type: latency, latency: {threshold_ms: 5000, upper_threshold_ms: 10000}}
  - {name: p3, type: numeric_attribute, numeric_attribute: {key: key1, min_value: 50, max_value: 100}}
  - {name: p4, type: probabilistic, probabilistic: {sampling_percentage: 10}}
  - {name: p5, type: status_code, status_code: {status_codes: [ERROR, UNSET]}}
  - {name: p6, type: string_attribute, string_attribute: {key: key2, values: [value1, value2]}}
  - {name: p7, type: string_attribute, string_attribute: {key: key2, values: [value1, val*], enabled_regex_matching: true, cache_max_size: 10}}
  - {name: p8, type: rate_limiting, rate_limiting: {spans_per_second: 35}}
  - {name: p9, type: string_attribute, string_attribute: {key: http.url, values: [\\/health, \\/metrics], enabled_regex_matching: true, invert_match: true}}
  - {name: p10, type: span_count, span_count: {min_spans: 2, max_spans: 20}}
  - {name: p11, type: trace_state, trace_state: {key: key3, values: [value1, value2]}}
  - {name: p12, type: boolean_attribute, boolean_attribute: {key: key4, value: true}}
  - name: p13
    type: ottl_condition
    ottl_condition:
      error_mode: ignore
      span: ['attributes[\"test_attr_key_1\"] == \"test_attr_val_1\"']
      spanevent: ['name != \"test_span_event_name\"']
  - name: and-policy-1
    type: and
    and:
      and_sub_policy:
        - {name: test-and-policy-1, type: numeric_attribute, numeric_attribute: {key: key1, min_value: 50, max_value: 100}}
        - {name: test-and-policy-2, type: string_attribute, string_attribute: {key: key2, values: [value1, value2]}}
  - name: composite-policy-1
    type: composite
    composite:
      max_total_spans_per_second: 1000
      policy_order: [test-composite-policy-1, test-composite-policy-2, test-composite-policy-3]
      composite_sub_policy:
        - {name: test-composite-policy-1, type: numeric_attribute, numeric_attribute: {key: key1, min_value: 50, max_value: 100}}
        - {name: test-composite-policy-2, type: string_attribute, string_attribute: {key: key2, values: [value1, value2]}}
        - {name: test-composite-policy-3, type: always_sample}
      rate_allocation:
        - {policy: test-composite-policy-1, percent: 50}
        - {policy: test-composite-policy-2, percent: 25}
  - {name: drop-health, type: drop, drop: {drop_sub_policy: [{name: h, type: string_attribute, string_attribute: {key: url.path, values: [/health]}}]}}
  - {name: not-ok, type: not, not: {not_sub_policy: {name: ok, type: status_code, status_code: {status_codes: [OK]}}}}
  - {name: flags, type: trace_flags}
  - {name: bytes, type: bytes_limiting, bytes_limiting: {bytes_per_second: 100000, burst_capacity: 200000}}
",
    )
    .unwrap();
    assert_eq!(c.decision_wait.0, Duration::from_secs(10));
    assert_eq!(c.policies.len(), 19);
    assert_eq!(c.max_memory_mib, 512);

    for (yaml, wanted) in [
        ("policies: []", "at least one policy"),
        ("policies: [{name: a, type: latency}]", "needs its `latency` block"),
        (
            "policies: [{name: a, type: always_sample, latency: {threshold_ms: 1}}]",
            "is of type always_sample but has a `latency` block",
        ),
        ("policies: [{name: a, type: status_code, status_code: {status_codes: [FAIL]}}]", "unknown status code `FAIL`"),
        (
            "policies: [{name: a, type: string_attribute, string_attribute: {key: k, values: ['(' ], enabled_regex_matching: true}}]",
            "invalid regular expression",
        ),
        ("policies: [{name: a, type: ottl_condition, ottl_condition: {span: ['nope ==']}}]", "invalid OTTL condition"),
        (
            "sampling_strategy: span-ingest\npolicies: [{name: a, type: rate_limiting, rate_limiting: {spans_per_second: 1}}]",
            "requires all policies to be stateless",
        ),
        ("sampling_strategy: eventually\npolicies: [{name: a, type: always_sample}]", "eventually"),
        ("policies: [{name: a, type: always_sample}, {name: a, type: always_sample}]", "duplicate policy name"),
        ("num_shards: 4\npolicies: [{name: a, type: always_sample}]", "num_shards"),
    ] {
        let e = config(yaml).expect_err(yaml);
        assert!(e.contains(wanted), "{yaml}: {e}");
    }
}

#[test]
fn an_idle_sampler_wants_no_wake_up() {
    let mut p = processor(ERRORS);
    assert_eq!(p.deadline(), None);
    let mut out = Vec::new();
    p.flush(&mut out);
    assert!(out.is_empty());
}

#[test]
fn keeps_whole_error_traces_and_late_spans_follow_the_decision() {
    let telemetry = Telemetry::new();
    let mut p = processor_with(ERRORS, &telemetry);
    let mut out = Vec::new();
    // Trace 1 has an error in its second batch; trace 2 has none.
    p.process(batch(request("a", vec![span(1, 0, 0, 10, false), span(2, 0, 0, 10, false)])), &mut out);
    p.process(batch(request("b", vec![span(1, 1, 2, 5, true), span(2, 1, 2, 5, false)])), &mut out);
    assert!(out.is_empty(), "nothing leaves before the decision");
    let due = p.deadline().unwrap();
    assert!(due > Instant::now() + Duration::from_secs(1));
    p.on_deadline(due, &mut out);
    assert_eq!(spans_of(&out), vec![(1, "op0".into()), (1, "op1".into())]);
    assert_eq!(p.deadline(), None);
    // Late spans: trace 1's passes at once, trace 2's is dropped.
    out.clear();
    p.process(batch(request("a", vec![span(1, 2, 3, 4, false), span(2, 2, 3, 4, false)])), &mut out);
    assert_eq!(spans_of(&out), vec![(1, "op2".into())]);
    let metrics = telemetry.encode();
    for line in [
        "otelcol_processor_tail_sampling_count_traces_sampled_total{processor=\"tail_sampling/gw\",policy=\"gw.errors\",decision=\"sampled\",sampled=\"true\"} 1",
        "otelcol_processor_tail_sampling_count_traces_sampled_total{processor=\"tail_sampling/gw\",policy=\"gw.errors\",decision=\"not_sampled\",sampled=\"false\"} 1",
        "otelcol_processor_tail_sampling_early_releases_from_cache_decision_total{processor=\"tail_sampling/gw\",sampled=\"true\"} 1",
        "otelcol_processor_tail_sampling_early_releases_from_cache_decision_total{processor=\"tail_sampling/gw\",sampled=\"false\"} 1",
        "otelcol_processor_tail_sampling_new_trace_id_received_total{processor=\"tail_sampling/gw\"} 2",
        "otelcol_processor_tail_sampling_sampling_traces_on_memory{processor=\"tail_sampling/gw\"} 0",
        "ocelot_processor_tail_sampling_held_bytes{processor=\"tail_sampling/gw\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
}

#[test]
fn held_spans_come_back_as_they_went_in() {
    let mut p = processor("decision_wait: 1s\npolicies: [{name: all, type: always_sample}]");
    let mut two = request("a", vec![span(1, 0, 0, 10, false), span(2, 0, 0, 10, false), span(1, 1, 1, 2, false)]);
    // A second resource with two scopes, one without a scope at all.
    two.resource_spans.push(ResourceSpans {
        resource: None,
        scope_spans: vec![
            ScopeSpans { scope: None, spans: vec![span(1, 2, 1, 2, true)], schema_url: String::new() },
            ScopeSpans {
                scope: Some(InstrumentationScope { name: "other".into(), version: "2".into(), ..Default::default() }),
                spans: vec![span(2, 1, 1, 2, false)],
                schema_url: "s".into(),
            },
        ],
        schema_url: "r".into(),
    });
    let mut out = Vec::new();
    p.process(batch(two.clone()), &mut out);
    p.on_deadline(Instant::now() + Duration::from_secs(2), &mut out);
    assert_eq!(out.len(), 1);
    let Payload::Traces(back) = &*out[0].payload else { panic!() };
    // Every span comes back once, under its own resource and scope.
    let flatten = |r: &ExportTraceServiceRequest| {
        let mut v = Vec::new();
        for rs in &r.resource_spans {
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    v.push((
                        rs.resource.clone(),
                        rs.schema_url.clone(),
                        ss.scope.clone(),
                        ss.schema_url.clone(),
                        s.encode_to_vec(),
                    ));
                }
            }
        }
        v.sort_by(|a, b| a.4.cmp(&b.4));
        v
    };
    assert_eq!(flatten(back), flatten(&two));
}

#[tokio::test]
async fn a_batch_is_done_when_every_trace_in_it_is_decided() {
    let mut p = processor(ERRORS);
    let (ack, waiter) = Ack::new();
    let mut out = Vec::new();
    let spans = vec![span(1, 0, 0, 10, true), span(2, 0, 0, 10, false)];
    p.process(Batch::with_ack(Payload::Traces(request("a", spans)), ack), &mut out);
    // A reply token is let go at once; a delivery token waits for the decisions.
    let (reply, mut replied) = Ack::reply();
    p.process(Batch::with_ack(Payload::Traces(request("a", vec![span(3, 0, 0, 1, false)])), reply), &mut out);
    assert_eq!(replied.try_outcome(), Some(AckOutcome::Delivered));
    p.on_deadline(Instant::now() + Duration::from_secs(3), &mut out);
    assert_eq!(spans_of(&out), vec![(1, "op0".into())]);
    assert_eq!(out[0].acks.len(), 1, "the kept trace carries its batch's token");
    drop(out);
    assert_eq!(waiter.wait().await.outcome, AckOutcome::Delivered);
}

#[tokio::test]
async fn a_not_sampled_batch_is_done_not_failed() {
    let mut p = processor(ERRORS);
    let (ack, mut waiter) = Ack::new();
    let mut out = Vec::new();
    p.process(Batch::with_ack(Payload::Traces(request("a", vec![span(2, 0, 0, 10, false)])), ack), &mut out);
    assert_eq!(waiter.try_outcome(), None, "held until decided");
    p.on_deadline(Instant::now() + Duration::from_secs(3), &mut out);
    assert!(out.is_empty());
    assert_eq!(waiter.wait().await.outcome, AckOutcome::Delivered);
}

#[test]
fn memory_past_the_bound_decides_the_oldest_early() {
    let telemetry = Telemetry::new();
    let mut p = processor_with(
        "decision_wait: 30s\nmax_memory_mib: 1\npolicies: [{name: errors, type: status_code, status_code: {status_codes: [ERROR]}}]",
        &telemetry,
    );
    let mut out = Vec::new();
    // 200 traces of about 10 KiB: twice the bound.
    for t in 0..200u32 {
        let mut s = span(1, 0, 0, 10, t % 10 == 0);
        s.trace_id = [t.to_be_bytes().as_slice(), &[7; 12]].concat();
        s.attributes.push(text("payload", &"x".repeat(10_000)));
        p.process(batch(request("a", vec![s])), &mut out);
        assert!(p.held_bytes() <= 1 << 20, "held {} after trace {t}", p.held_bytes());
    }
    let early = spans_of(&out).len();
    // The oldest went first and by the policy: of the first ~100 traces, each tenth.
    assert!((8..=13).contains(&early), "{early} kept early");
    let metrics = telemetry.encode();
    let counted = metrics
        .lines()
        .find(|l| l.starts_with("ocelot_processor_tail_sampling_early_decisions_total{processor=\"tail_sampling/gw\",reason=\"memory\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap();
    assert!((90..=125).contains(&counted), "{counted} early decisions");
    // The rest are decided at their time, and the counts add up.
    p.on_deadline(Instant::now() + Duration::from_secs(31), &mut out);
    assert_eq!(spans_of(&out).len(), 20);
}

#[test]
fn a_trace_over_the_size_limit_is_decided_at_once() {
    let telemetry = Telemetry::new();
    let mut p =
        processor_with("maximum_trace_size_bytes: 2000\npolicies: [{name: all, type: always_sample}]", &telemetry);
    let mut out = Vec::new();
    let mut big = span(1, 0, 0, 10, false);
    big.attributes.push(text("payload", &"x".repeat(3000)));
    p.process(batch(request("a", vec![big, span(2, 0, 0, 1, false)])), &mut out);
    assert_eq!(spans_of(&out), vec![(1, "op0".into())]);
    // Its later spans follow the decision.
    out.clear();
    p.process(batch(request("a", vec![span(1, 1, 0, 1, false)])), &mut out);
    assert_eq!(spans_of(&out), vec![(1, "op1".into())]);
    assert!(
        telemetry.encode().contains(
            "otelcol_processor_tail_sampling_traces_dropped_too_large_total{processor=\"tail_sampling/gw\"} 1"
        )
    );
}

#[test]
fn num_traces_decides_the_oldest_early_or_refuses_with_block_on_overflow() {
    let mut p = processor("num_traces: 2\npolicies: [{name: all, type: always_sample}]");
    let mut out = Vec::new();
    for t in 1..=3 {
        p.process(batch(request("a", vec![span(t, 0, 0, 1, false)])), &mut out);
    }
    assert_eq!(spans_of(&out), vec![(1, "op0".into())]);

    let mut p = processor("num_traces: 2\nblock_on_overflow: true\npolicies: [{name: all, type: always_sample}]");
    let mut out = Vec::new();
    let (first, mut first_w) = Ack::new();
    p.process(
        Batch::with_ack(Payload::Traces(request("a", vec![span(1, 0, 0, 1, false), span(2, 0, 0, 1, false)])), first),
        &mut out,
    );
    let (ack, mut waiter) = Ack::new();
    p.process(Batch::with_ack(Payload::Traces(request("a", vec![span(3, 0, 0, 1, false)])), ack), &mut out);
    assert_eq!(waiter.try_outcome(), Some(AckOutcome::Failed), "refused, to be sent again");
    // Spans of traces already held still get in.
    p.process(batch(request("a", vec![span(1, 1, 0, 1, false)])), &mut out);
    p.on_deadline(Instant::now() + Duration::from_secs(31), &mut out);
    assert_eq!(spans_of(&out).len(), 3);
    drop(out);
    assert_eq!(first_w.try_outcome(), Some(AckOutcome::Delivered));
}

#[test]
fn spans_without_a_trace_id_are_counted_and_the_rest_goes_on() {
    let telemetry = Telemetry::new();
    let mut p = processor_with("policies: [{name: all, type: always_sample}]", &telemetry);
    let mut out = Vec::new();
    let mut empty = span(1, 0, 0, 1, false);
    empty.trace_id.clear();
    let mut zero = span(1, 1, 0, 1, false);
    zero.trace_id = vec![0; 16];
    p.process(batch(request("a", vec![empty, zero, span(2, 0, 0, 1, false)])), &mut out);
    p.on_deadline(Instant::now() + Duration::from_secs(31), &mut out);
    assert_eq!(spans_of(&out), vec![(2, "op0".into())]);
    assert!(telemetry.encode().contains(
        "ocelot_processor_tail_sampling_dropped_spans_total{processor=\"tail_sampling/gw\",reason=\"invalid_trace_id\"} 2"
    ));
}

#[test]
fn policies_see_the_whole_trace() {
    let yaml = "
decision_wait: 1s
policies:
  - {name: slow, type: latency, latency: {threshold_ms: 500}}
  - {name: vip, type: string_attribute, string_attribute: {key: service.name, values: [vip]}}
  - {name: many, type: span_count, span_count: {min_spans: 3}}
  - {name: drop-r9, type: drop, drop: {drop_sub_policy: [{name: r9, type: string_attribute, string_attribute: {key: http.route, values: [/r9]}}]}}
  - name: ottl
    type: ottl_condition
    ottl_condition: {span: ['name == \"special\"']}
";
    let mut p = processor(yaml);
    let mut out = Vec::new();
    // Trace 1 is slow only across its spans; 2 is from a vip resource; 3 has three
    // spans; 4 is ordinary; 9 is slow but dropped; 5 has a span named special.
    let mut special = span(5, 0, 0, 1, false);
    special.name = "special".into();
    p.process(
        batch(request(
            "a",
            vec![
                span(1, 0, 0, 300, false),
                span(3, 0, 0, 1, false),
                span(3, 1, 0, 1, false),
                span(4, 0, 0, 1, false),
                span(9, 0, 0, 900, false),
                special,
            ],
        )),
        &mut out,
    );
    p.process(batch(request("vip", vec![span(2, 0, 0, 1, false)])), &mut out);
    p.process(batch(request("a", vec![span(1, 1, 450, 600, false), span(3, 2, 0, 1, false)])), &mut out);
    p.on_deadline(Instant::now() + Duration::from_secs(2), &mut out);
    let traces: std::collections::BTreeSet<u8> = spans_of(&out).into_iter().map(|(t, _)| t).collect();
    assert_eq!(traces, [1, 2, 3, 5].into_iter().collect());
}

#[test]
fn the_root_span_shortens_the_wait_and_span_ingest_decides_on_arrival() {
    let mut p = processor(
        "decision_wait: 30s\ndecision_wait_after_root_received: 1s\npolicies: [{name: all, type: always_sample}]",
    );
    let mut out = Vec::new();
    p.process(batch(request("a", vec![span(1, 1, 0, 1, false)])), &mut out);
    assert!(p.deadline().unwrap() > Instant::now() + Duration::from_secs(20));
    p.process(batch(request("a", vec![span(1, 0, 0, 1, false)])), &mut out);
    let due = p.deadline().unwrap();
    assert!(due < Instant::now() + Duration::from_secs(2));
    p.on_deadline(due, &mut out);
    assert_eq!(spans_of(&out).len(), 2);

    let mut p = processor(&format!("sampling_strategy: span-ingest\n{}", ERRORS.trim_start()));
    let mut out = Vec::new();
    p.process(batch(request("a", vec![span(1, 0, 0, 1, true), span(2, 0, 0, 1, false)])), &mut out);
    assert_eq!(spans_of(&out), vec![(1, "op0".into())], "the error trace leaves at once");
}

#[test]
fn shutdown_decides_what_is_held_unless_told_to_drop_it() {
    let mut p = processor("policies: [{name: all, type: always_sample}]");
    let mut out = Vec::new();
    p.process(batch(request("a", vec![span(1, 0, 0, 1, false)])), &mut out);
    p.flush(&mut out);
    assert_eq!(spans_of(&out).len(), 1);

    let telemetry = Telemetry::new();
    let mut p = processor_with(
        "drop_pending_traces_on_shutdown: true\npolicies: [{name: all, type: always_sample}]",
        &telemetry,
    );
    let mut out = Vec::new();
    p.process(batch(request("a", vec![span(1, 0, 0, 1, false)])), &mut out);
    p.flush(&mut out);
    assert!(out.is_empty());
    assert!(telemetry.encode().contains(
        "otelcol_processor_tail_sampling_sampling_trace_dropped_too_early_total{processor=\"tail_sampling/gw\"} 1"
    ));
}

#[test]
fn the_fuzz_round_trip_holds_for_a_mixed_request() {
    let mut r = request("a", vec![span(1, 0, 0, 1, false), span(2, 0, 0, 1, true), span(1, 1, 0, 1, false)]);
    r.resource_spans.push(ResourceSpans {
        resource: None,
        scope_spans: vec![ScopeSpans::default()],
        schema_url: "x".into(),
    });
    let bytes = r.encode_to_vec();
    fuzz_round_trip(&bytes);
    crate::exporters::loadbalancing::fuzz_split(&bytes);
}

#[test]
fn a_policy_on_a_missing_attribute_samples_nothing_and_errs_nowhere() {
    let telemetry = Telemetry::new();
    let mut p = processor_with(
        "policies:\n  - {name: tier, type: numeric_attribute, numeric_attribute: {key: absent, min_value: 1, max_value: 10}}\n  - {name: flag, type: boolean_attribute, boolean_attribute: {key: absent, value: true}}\n  - name: ottl\n    type: ottl_condition\n    ottl_condition: {span: ['attributes[\"absent\"] == \"x\"']}",
        &telemetry,
    );
    let mut out = Vec::new();
    p.process(batch(request("a", vec![span(1, 0, 0, 1, true), span(2, 0, 0, 1, false)])), &mut out);
    p.on_deadline(Instant::now() + Duration::from_secs(31), &mut out);
    assert!(out.is_empty());
    let metrics = telemetry.encode();
    assert!(
        metrics.contains(
            "otelcol_processor_tail_sampling_sampling_policy_evaluation_error_total{processor=\"tail_sampling/gw\"} 0"
        ),
        "{metrics}"
    );
    assert!(metrics.contains(
        "otelcol_processor_tail_sampling_global_count_traces_sampled_total{processor=\"tail_sampling/gw\",decision=\"not_sampled\",sampled=\"false\"} 2"
    ));
}

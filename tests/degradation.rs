//! Progressive degradation with the real binary: OTLP logs scored by the
//! `importance` processor pile up behind a backend that refuses (503) while memory
//! rises. The `memory_limiter` (80 MiB) steps through its levels in order, sheds the
//! low tiers first and never a critical record, and at the soft limit the receiver
//! refuses with a retryable 503. Once the backend recovers, every record that was
//! accepted is delivered or counted as shed: none unaccounted, every critical one
//! delivered, and the peak RSS stayed under the limit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::backend::{Backend, Reply};
use common::*;

/// Level 1 is left below 45 % of this (its 50 % less the hysteresis): well above what
/// a drained debug build holds resident (about 30 MiB, code pages included), so the
/// last check sees the allocator's memory, not the binary's size.
const LIMIT_MIB: u64 = 80;
const RECORDS_PER_REQUEST: usize = 500;

fn config(backend: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
processors:
  importance:
    default_score: 0.1
    rules:
      - score: 0.95
        match: {{ attributes: {{ tier: critical }} }}
      - score: 0.7
        match: {{ attributes: {{ tier: important }} }}
      - score: 0.4
        match: {{ attributes: {{ tier: standard }} }}
  memory_limiter:
    check_interval: 50ms
    limit_mib: {LIMIT_MIB}
    min_gc_interval_when_soft_limited: 1s
    drop_levels:
      - threshold_percent: 50
        drop_below: 0.3
      - threshold_percent: 60
        sample: {{ below: 0.6, rate: 0.5 }}
      - threshold_percent: 70
        keep_only_above: 0.9
exporters:
  otlphttp:
    endpoint: {backend}
    compression: none
    timeout: 5s
    sending_queue:
      sizer: bytes
      queue_size: 1000000000
      num_consumers: 2
    retry_on_failure:
      initial_interval: 200ms
      max_interval: 500ms
      max_elapsed_time: 0
service:
  pipelines:
    logs:
      receivers: [otlp]
      processors: [importance, memory_limiter]
      exporters: [otlphttp]
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#
    )
}

/// A tier for the n-th record of a request: 10 % critical, 20 % important, 30 %
/// standard, 40 % low.
fn tier(n: usize) -> &'static str {
    match n % 10 {
        0 => "critical",
        1 | 2 => "important",
        3..=5 => "standard",
        _ => "low",
    }
}

fn request(index: usize) -> (Vec<u8>, Vec<String>) {
    let padding = "x".repeat(400);
    let mut bodies = Vec::with_capacity(RECORDS_PER_REQUEST);
    let records: Vec<serde_json::Value> = (0..RECORDS_PER_REQUEST)
        .map(|n| {
            let body = format!("{}-{index}-{n} {padding}", tier(n));
            bodies.push(body.clone());
            serde_json::json!({
                "body": { "stringValue": body },
                "attributes": [{ "key": "tier", "value": { "stringValue": tier(n) } }]
            })
        })
        .collect();
    let json = serde_json::json!({ "resourceLogs": [{ "scopeLogs": [{ "logRecords": records }] }] });
    (serde_json::to_vec(&json).unwrap(), bodies)
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn sheds_by_importance_in_steps_then_refuses_and_loses_nothing_accepted() {
    let stalled = Arc::new(AtomicBool::new(true));
    let flag = stalled.clone();
    let backend =
        Backend::start(move |_| if flag.load(Ordering::SeqCst) { Reply::Status(503) } else { Reply::Status(200) });
    let agent = Agent::start(&config(&backend.endpoint()));
    let http = agent.http("otlp");

    // Send until the receiver has refused for memory a few times.
    let mut accepted: Vec<String> = Vec::new();
    let mut memory_refusals = 0;
    let mut index = 0;
    while memory_refusals < 5 {
        assert!(
            index < 2000,
            "no memory refusal after {index} requests; RSS {} KiB",
            status_kib(agent.pid(), "VmRSS:")
        );
        let (body, bodies) = request(index);
        index += 1;
        let (status, headers, answer) = http_post(http, "/v1/logs", "application/json", &body);
        match status {
            200 => accepted.extend(bodies),
            503 => {
                let text = String::from_utf8_lossy(&answer);
                assert!(text.contains("high memory usage"), "{text}");
                assert!(headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("retry-after")), "503 with Retry-After");
                memory_refusals += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&answer)),
        }
    }
    let refused = agent.metric("otelcol_processor_memory_limiter_refused_log_records_total", "");
    assert!(refused >= 5.0 * RECORDS_PER_REQUEST as f64, "refusals counted: {refused}");

    // The levels were reached in order, each on its way up.
    let text = agent.log_text();
    let mut order: Vec<u64> = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["fields"]["message"].as_str().is_some_and(|m| m.starts_with("Memory rises")) {
            let level = v["fields"]["level"].as_u64().unwrap();
            assert!(v["fields"]["from"].as_u64().unwrap() < level, "each rise names the level it left: {line}");
            if !order.contains(&level) {
                order.push(level);
            }
        }
    }
    // Each level is first reached after the ones below it (a busy host may pass two
    // between readings, which is still in order).
    assert!(!order.is_empty() && order.windows(2).all(|w| w[0] < w[1]), "levels in order: {order:?}");
    assert!(agent.count_logs("Memory is at the soft limit") > 0);

    // Tiers shed from the bottom: low at level 1, critical never.
    let shed = |name: &str, labels: &str| agent.metric(name, labels);
    assert!(shed("ocelot_memory_limiter_dropped_total", r#"level="1",tier="low""#) > 0.0);
    assert_eq!(shed("ocelot_memory_limiter_dropped_total", r#"tier="critical""#), 0.0);
    assert_eq!(shed("ocelot_memory_limiter_sampled_total", r#"tier="critical""#), 0.0);
    assert_eq!(shed("ocelot_memory_limiter_dropped_total", r#"level="1",tier="important""#), 0.0);

    // The backend recovers: what was accepted is delivered or was shed on purpose.
    stalled.store(false, Ordering::SeqCst);
    let total_shed =
        || shed("ocelot_memory_limiter_dropped_total", "") + shed("ocelot_memory_limiter_sampled_total", "");
    wait_until(Duration::from_secs(90), "every accepted record delivered or shed", || {
        backend.accepted().len() as f64 + total_shed() >= accepted.len() as f64
    });
    let delivered = backend.accepted();
    assert_eq!(delivered.len() as f64 + total_shed(), accepted.len() as f64, "none unaccounted, none twice");
    let critical_accepted = accepted.iter().filter(|b| b.starts_with("critical-")).count();
    let critical_delivered = delivered.iter().filter(|b| b.starts_with("critical-")).count();
    assert_eq!(critical_delivered, critical_accepted, "every critical record delivered");
    let peak_kib = status_kib(agent.pid(), "VmHWM:");
    assert!(peak_kib <= LIMIT_MIB * 1024, "peak RSS {peak_kib} KiB over the {LIMIT_MIB} MiB limit");

    // With the backlog gone, the allocator gives the memory back and shedding stops:
    // memory the allocator kept must not hold a level up with nothing queued.
    wait_until(Duration::from_secs(30), "the level back to 0 once drained", || {
        agent.metric("ocelot_memory_limiter_level", "") == 0.0
    });
    let drained_kib = status_kib(agent.pid(), "VmRSS:");
    eprintln!(
        "accepted {} delivered {} shed {} refused {refused} peak {peak_kib} KiB drained {drained_kib} KiB levels {order:?}",
        accepted.len(),
        delivered.len(),
        total_shed()
    );
    agent.stop();
}

/// A memory_limiter behind a routing connector closes the door of the pipeline that
/// feeds it: the receiver refuses there, as it would for a limiter of its own.
#[test]
fn a_limiter_behind_a_connector_refuses_at_the_receiver_that_feeds_it() {
    // A soft limit of 2 MiB: any process is over it from the start.
    let agent = Agent::start(
        r#"
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
processors:
  memory_limiter:
    check_interval: 50ms
    limit_mib: 4
    spike_limit_mib: 2
connectors:
  routing:
    default_pipelines: [logs/out]
    table:
      - condition: resource.attributes["cloud.region"] == "eu"
        pipelines: [logs/out]
exporters:
  debug:
service:
  pipelines:
    logs/in:
      receivers: [otlp]
      exporters: [routing]
    logs/out:
      receivers: [routing]
      processors: [memory_limiter]
      exporters: [debug]
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#,
    );
    let (body, _) = request(0);
    let (status, headers, answer) = http_post(agent.http("otlp"), "/v1/logs", "application/json", &body);
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&answer));
    assert!(String::from_utf8_lossy(&answer).contains("high memory usage"));
    assert!(headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("retry-after")));
    let refused = agent.metric("otelcol_processor_memory_limiter_refused_log_records_total", "");
    assert_eq!(refused, RECORDS_PER_REQUEST as f64, "counted at the limiter that refused");
    agent.stop();
}

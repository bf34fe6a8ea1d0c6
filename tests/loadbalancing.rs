//! The loadbalancing exporter end to end: an agent sends to ocelot gateways on
//! 127.0.0.1 by trace id. Every span of a trace lands on one gateway, the one
//! upstream's ring names; a gateway that stops and comes back gets what was queued
//! for it, nothing lost; and a gateway added by reload takes only its own keys.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{Agent, free_port, http_post, read_json_lines, wait_until};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

fn gateway(port: u16) -> Agent {
    Agent::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: "127.0.0.1:{port}" }}
exporters:
  file:
    path: "{{dir}}/spans.jsonl"
service:
  pipelines:
    traces: {{ receivers: [otlp], exporters: [file] }}
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#
    ))
}

fn agent_config(backends: &[u16]) -> String {
    let hostnames: Vec<String> = backends.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    format!(
        r#"
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:0 }}
exporters:
  loadbalancing:
    routing_key: traceID
    protocol:
      otlp:
        tls: {{ insecure: true }}
        compression: none
        retry_on_failure: {{ initial_interval: 100ms, max_interval: 500ms, max_elapsed_time: 0 }}
    resolver:
      static:
        hostnames: [{}]
service:
  pipelines:
    traces: {{ receivers: [otlp], exporters: [loadbalancing] }}
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#,
        hostnames.join(", ")
    )
}

/// Upstream's ring: 100 positions per backend, CRC-32 of the name and the position's
/// number, modulo 36,000; a key at the first position at or after its CRC-32.
fn ring_pick(backends: &[String], key: &[u8]) -> String {
    let mut sorted = backends.to_vec();
    sorted.sort();
    let mut positions: Vec<(u32, usize)> = Vec::new();
    let mut taken = BTreeSet::new();
    for (i, b) in sorted.iter().enumerate() {
        for n in 0..100u8 {
            let p = crc32fast::hash(&[b.as_bytes(), &[n]].concat()) % 36_000;
            if taken.insert(p) {
                positions.push((p, i));
            }
        }
    }
    positions.sort();
    let at = crc32fast::hash(key) % 36_000;
    let (_, i) = positions.iter().find(|(p, _)| *p >= at).unwrap_or(&positions[0]);
    sorted[*i].clone()
}

fn trace_id(phase: u8, t: u32) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[0] = phase;
    id[1..5].copy_from_slice(&t.to_be_bytes());
    id[8..].copy_from_slice(&u64::from(t).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
    id
}

/// `traces` traces of four spans; span `s` of every trace goes in request `s`, so a
/// trace's spans arrive apart.
fn send(agent: &Agent, phase: u8, traces: u32) {
    for s in 0..4u8 {
        let spans = (0..traces)
            .map(|t| Span {
                trace_id: trace_id(phase, t).to_vec(),
                span_id: vec![s + 1; 8],
                name: format!("span-{s}"),
                ..Default::default()
            })
            .collect();
        let body = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        let (status, _, answer) = http_post(agent.http("otlp"), "/v1/traces", "application/x-protobuf", &body);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    }
}

/// Spans per trace id (hex) in a gateway's file.
fn landed(gateway: &Agent) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in read_json_lines(&gateway.dir.path().join("spans.jsonl")) {
        for rs in line["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for span in ss["spans"].as_array().into_iter().flatten() {
                    *out.entry(span["traceId"].as_str().unwrap().to_string()).or_insert(0) += 1;
                }
            }
        }
    }
    out
}

fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// The traces of `phase` each gateway should have, by the ring of `ring`.
fn expected(phase: u8, traces: u32, ring: &[String], ports: &[u16]) -> Vec<BTreeSet<String>> {
    let mut out = vec![BTreeSet::new(); ports.len()];
    for t in 0..traces {
        let id = trace_id(phase, t);
        let pick = ring_pick(ring, &id);
        let i = ports.iter().position(|p| pick == format!("127.0.0.1:{p}")).unwrap();
        out[i].insert(hex(&id));
    }
    out
}

fn of_phase(landed: &BTreeMap<String, usize>, phase: u8) -> BTreeSet<String> {
    landed.keys().filter(|k| k.starts_with(&format!("{phase:02x}"))).cloned().collect()
}

#[test]
fn traces_stay_whole_on_their_gateway_through_an_outage_and_a_new_gateway() {
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let a = gateway(pa);
    let b = gateway(pb);
    let agent = Agent::start(&agent_config(&[pa, pb]));
    let two: Vec<String> = [pa, pb].iter().map(|p| format!("127.0.0.1:{p}")).collect();

    // 1. Every trace whole, on the gateway the ring names.
    send(&agent, 1, 200);
    let want = expected(1, 200, &two, &[pa, pb]);
    assert!(
        want.iter().all(|w| w.len() > 50),
        "both gateways get a share: {:?}",
        want.iter().map(BTreeSet::len).collect::<Vec<_>>()
    );
    wait_until(Duration::from_secs(20), "phase 1 on both gateways", || {
        landed(&a).values().sum::<usize>() + landed(&b).values().sum::<usize>() == 800
    });
    for (gateway, want) in [(&a, &want[0]), (&b, &want[1])] {
        let got = landed(gateway);
        assert_eq!(of_phase(&got, 1), *want);
        assert!(got.values().all(|n| *n == 4), "every trace whole");
    }

    // 2. Gateway b stops; its share waits in its backend's queue, a's goes on.
    assert!(b.stop().success());
    send(&agent, 2, 200);
    let want = expected(2, 200, &two, &[pa, pb]);
    wait_until(Duration::from_secs(20), "phase 2 on a while b is down", || {
        let got = landed(&a);
        of_phase(&got, 2) == want[0] && got.values().all(|n| *n == 4)
    });
    let b = gateway(pb);
    // Each of its four batches is retried on its own; all of them arrive.
    wait_until(Duration::from_secs(30), "b's queued share once it is back", || {
        let got = landed(&b);
        of_phase(&got, 2) == want[1] && got.values().sum::<usize>() == 4 * want[1].len()
    });
    assert!(landed(&b).values().all(|n| *n == 4), "nothing of b's share lost or split");

    // 3. A third gateway by reload: keys move only to it.
    let c = gateway(pc);
    let config = agent_config(&[pa, pb, pc]);
    let tmp = agent.dir.path().join("config.yaml.tmp");
    std::fs::write(&tmp, config).unwrap();
    std::fs::rename(&tmp, agent.dir.path().join("config.yaml")).unwrap();
    let (status, _, body) = http_post(agent.metrics_addr(), "/-/reload", "text/plain", b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let three: Vec<String> = [pa, pb, pc].iter().map(|p| format!("127.0.0.1:{p}")).collect();
    send(&agent, 3, 300);
    let want = expected(3, 300, &three, &[pa, pb, pc]);
    wait_until(Duration::from_secs(20), "phase 3 on three gateways", || {
        [&a, &b, &c]
            .iter()
            .map(|g| landed(g).iter().filter(|(k, _)| k.starts_with("03")).map(|(_, n)| n).sum::<usize>())
            .sum::<usize>()
            == 1200
    });
    let mut moved = 0;
    for t in 0..300 {
        let id = trace_id(3, t);
        let (before, after) = (ring_pick(&two, &id), ring_pick(&three, &id));
        if before != after {
            assert_eq!(after, format!("127.0.0.1:{pc}"), "a key moved between the old gateways");
            moved += 1;
        }
    }
    for (gateway, want) in [(&a, &want[0]), (&b, &want[1]), (&c, &want[2])] {
        assert_eq!(of_phase(&landed(gateway), 3), *want);
    }
    assert_eq!(moved, want[2].len(), "the new gateway has exactly the keys that moved");
    assert!(moved > 30 && moved < 200, "{moved} of 300 moved");
    assert_eq!(
        agent.metric("otelcol_loadbalancer_num_backends", "resolver=\"static\""),
        3.0,
        "the resolver's answer after the reload"
    );
}

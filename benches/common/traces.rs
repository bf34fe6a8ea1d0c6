//! Traces for the tail_sampling benchmarks: `spans` spans per trace, each carrying a
//! payload attribute that brings its encoded size to about `span_bytes`.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

fn text(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value)) }),
        ..Default::default()
    }
}

/// `traces` traces from number `first` on, in one request. Every 20th has an error,
/// every 10th lasts 800 ms, the rest 10 ms.
pub fn request(first: u64, traces: u64, spans: u64, span_bytes: usize) -> ExportTraceServiceRequest {
    // Ids, times, name and status take about 70 bytes of a span.
    let payload = "x".repeat(span_bytes.saturating_sub(70));
    let mut out = Vec::with_capacity((traces * spans) as usize);
    for t in first..first + traces {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&(t + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
        trace_id[8..].copy_from_slice(&(t + 1).to_be_bytes());
        let start = 1_700_000_000_000_000_000 + t * 1000;
        let length = if t % 10 == 3 { 800_000_000 } else { 10_000_000 };
        for s in 0..spans {
            out.push(Span {
                trace_id: trace_id.to_vec(),
                span_id: (t * spans + s + 1).to_be_bytes().to_vec(),
                parent_span_id: if s == 0 { Vec::new() } else { (t * spans + 1).to_be_bytes().to_vec() },
                name: format!("op-{}", s % 8),
                kind: 2,
                start_time_unix_nano: start + s,
                end_time_unix_nano: start + if s == 0 { length } else { 1000 },
                status: (t % 20 == 7 && s == spans - 1).then(|| Status { code: 2, message: String::new() }),
                attributes: if payload.is_empty() { Vec::new() } else { vec![text("p", payload.clone())] },
                ..Default::default()
            });
        }
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", "checkout".into())],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope { name: "bench".into(), ..Default::default() }),
                spans: out,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// Five policies, as a gateway config has them: errors, slow, a route, 10 % of the
/// rest, under a rate limit.
pub const FIVE_POLICIES: &str = r#"
policies:
  - { name: errors, type: status_code, status_code: { status_codes: [ERROR] } }
  - { name: slow, type: latency, latency: { threshold_ms: 500 } }
  - { name: checkout, type: string_attribute, string_attribute: { key: http.route, values: [/checkout, /pay] } }
  - { name: share, type: probabilistic, probabilistic: { sampling_percentage: 10 } }
  - { name: cap, type: rate_limiting, rate_limiting: { spans_per_second: 100000000 } }
"#;

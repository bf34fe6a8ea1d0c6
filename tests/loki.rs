//! The `loki` exporter against an in-test push server that decodes what Loki decodes
//! (snappy, then `logproto.PushRequest` from Loki's own schema, written out here) and
//! checks what Loki checks: label syntax, entries in time order per stream, line size,
//! the tenant header. Then 429 (retried, delivered once) and 400 (not retried, counted).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

/// Loki's `pkg/push/push.proto`, independent of ocelot's copy.
mod logproto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<StreamAdapter>,
        #[prost(string, tag = "2")]
        pub format: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamAdapter {
        #[prost(string, tag = "1")]
        pub labels: String,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<EntryAdapter>,
        #[prost(uint64, tag = "3")]
        pub hash: u64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryAdapter {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Timestamp>,
        #[prost(string, tag = "2")]
        pub line: String,
        #[prost(message, repeated, tag = "3")]
        pub structured_metadata: Vec<LabelPairAdapter>,
        #[prost(message, repeated, tag = "4")]
        pub parsed: Vec<LabelPairAdapter>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPairAdapter {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

/// One accepted stream: labels, tenant, and (timestamp ns, line, structured metadata).
type Received = Vec<(std::collections::BTreeMap<String, String>, String, Vec<(i64, String, Vec<(String, String)>)>)>;

struct Loki {
    port: u16,
    received: Arc<Mutex<Received>>,
    requests: Arc<Mutex<usize>>,
}

/// Parses `{a="b", c="d"}` as Loki's LogQL label parser would, checking names.
fn parse_labels(text: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    let inner = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')).ok_or("not in braces")?;
    let mut labels = std::collections::BTreeMap::new();
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or("no =")?;
        let name = rest[..eq].trim();
        let mut chars = name.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("invalid label name `{name}`"));
        }
        let after = rest[eq + 1..].trim_start().strip_prefix('"').ok_or("value not quoted")?;
        let (mut value, mut end, mut escaped) = (String::new(), None, false);
        for (i, c) in after.char_indices() {
            match (escaped, c) {
                (true, 'n') => (value.push('\n'), escaped = false).1,
                (true, c) => (value.push(c), escaped = false).1,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                (false, c) => value.push(c),
            }
        }
        let end = end.ok_or("unterminated value")?;
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("duplicate label name `{name}`"));
        }
        rest = after[end + 1..].trim_start().trim_start_matches(',').trim_start();
    }
    if labels.is_empty() || labels.len() > 15 {
        return Err(format!("{} label names", labels.len()));
    }
    Ok(labels)
}

impl Loki {
    /// `respond(n)` gives the status and body of the n-th request (0-based) when the
    /// push itself is valid; 204 entries are recorded.
    fn start(respond: impl Fn(usize) -> (u16, &'static str) + Send + Sync + 'static) -> Loki {
        Self::start_slow(Duration::ZERO, respond)
    }

    /// Answers each request `delay` after it arrived.
    fn start_slow(delay: Duration, respond: impl Fn(usize) -> (u16, &'static str) + Send + Sync + 'static) -> Loki {
        let received = Arc::new(Mutex::new(Received::new()));
        let requests = Arc::new(Mutex::new(0usize));
        let (r, n) = (received.clone(), requests.clone());
        let port = serve_connections(move |stream| serve(stream, &r, &n, &respond, delay));
        Loki { port, received, requests }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/loki/api/v1/push", self.port)
    }
}

fn serve(
    stream: std::net::TcpStream,
    received: &Mutex<Received>,
    requests: &Mutex<usize>,
    respond: &dyn Fn(usize) -> (u16, &'static str),
    delay: Duration,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            headers.push(line.trim_end().to_ascii_lowercase());
        }
        let header = |name: &str| headers.iter().find_map(|h| h.strip_prefix(&format!("{name}: ")).map(str::to_string));
        let length: usize = header("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let n = {
            let mut count = requests.lock().unwrap();
            *count += 1;
            *count - 1
        };
        let check = || -> Result<Received, String> {
            if header("content-type").as_deref() != Some("application/x-protobuf") {
                return Err("content-type".into());
            }
            let tenant = header("x-scope-orgid").unwrap_or_default();
            let raw = snap::raw::Decoder::new().decompress_vec(&body).map_err(|e| e.to_string())?;
            let push = logproto::PushRequest::decode(raw.as_slice()).map_err(|e| e.to_string())?;
            let mut out = Received::new();
            for s in push.streams {
                let labels = parse_labels(&s.labels)?;
                let mut last = i64::MIN;
                let mut entries = Vec::new();
                for e in s.entries {
                    let t = e.timestamp.map(|t| t.seconds * 1_000_000_000 + i64::from(t.nanos)).unwrap_or(0);
                    if t < last {
                        return Err(format!("entry out of order in {}", s.labels));
                    }
                    if e.line.len() > 256 << 10 {
                        return Err("line too long".into());
                    }
                    last = t;
                    entries.push((t, e.line, e.structured_metadata.into_iter().map(|p| (p.name, p.value)).collect()));
                }
                out.push((labels, tenant.clone(), entries));
            }
            Ok(out)
        };
        std::thread::sleep(delay);
        let (status, text) = match check() {
            Ok(streams) => {
                let (status, text) = respond(n);
                if status == 204 {
                    received.lock().unwrap().extend(streams);
                }
                (status, text.to_string())
            }
            Err(e) => (400, e),
        };
        let retry_after = if status == 429 { "Retry-After: 1\r\n" } else { "" };
        let response = format!("HTTP/1.1 {status} X\r\n{retry_after}Content-Length: {}\r\n\r\n{text}", text.len());
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(Value::StringValue(value.into())) }),
        ..Default::default()
    }
}

fn record(body: &str, time: u64, attributes: Vec<KeyValue>) -> LogRecord {
    LogRecord {
        time_unix_nano: time,
        body: Some(AnyValue { value: Some(Value::StringValue(body.into())) }),
        attributes,
        trace_id: vec![0xab; 16],
        severity_text: "INFO".into(),
        severity_number: 9,
        ..Default::default()
    }
}

fn logs(resources: Vec<(Vec<KeyValue>, Vec<LogRecord>)>) -> Vec<u8> {
    ExportLogsServiceRequest {
        resource_logs: resources
            .into_iter()
            .map(|(attributes, records)| ResourceLogs {
                resource: Some(Resource { attributes, ..Default::default() }),
                scope_logs: vec![ScopeLogs { log_records: records, ..Default::default() }],
                ..Default::default()
            })
            .collect(),
    }
    .encode_to_vec()
}

fn agent(loki: &Loki, extra: &str) -> Agent {
    Agent::start_with_args(
        &format!(
            r#"
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
exporters:
  loki:
    endpoint: {}
    tenant_id: team-a
    labels:
      static: {{ env: prod }}
    retry_on_failure: {{ initial_interval: 100ms }}
{extra}
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [loki]
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#,
            loki.url()
        ),
        &["--shutdown-timeout", "2s"],
    )
}

fn send(agent: &Agent, body: Vec<u8>) {
    let (status, _, text) = http_post(agent.http("otlp"), "/v1/logs", "application/x-protobuf", &body);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&text));
}

const T: u64 = 1_763_800_000_000_000_000;

#[test]
fn streams_labels_order_and_structured_metadata_are_what_loki_accepts() {
    let loki = Loki::start(|_| (204, ""));
    let agent = agent(&loki, "");
    let api = vec![kv("service.name", "api"), kv("k8s.namespace.name", "shop"), kv("host.name", "node-7")];
    let formatted = vec![kv("service.name", "batch"), kv("loki.format", "json")];
    send(
        &agent,
        logs(vec![
            // Out of time order on purpose: the exporter sorts each stream.
            (api.clone(), vec![record("third", T + 3, vec![kv("user", "alice")]), record("first", T + 1, vec![])]),
            (vec![kv("host.name", "bare")], vec![record("no service", T, vec![])]),
            (api, vec![record("second", T + 2, vec![])]),
            (formatted, vec![record("as json", T, vec![kv("job.id", "42")])]),
        ]),
    );
    wait_until(Duration::from_secs(10), "five entries", || {
        loki.received.lock().unwrap().iter().map(|s| s.2.len()).sum::<usize>() == 5
    });
    let received = loki.received.lock().unwrap().clone();
    let find = |service: &str| received.iter().find(|s| s.0["service_name"] == service).unwrap();
    let (labels, tenant, entries) = find("api");
    assert_eq!(tenant, "team-a");
    assert_eq!(labels.len(), 3, "{labels:?}");
    assert_eq!((labels["env"].as_str(), labels["k8s_namespace_name"].as_str()), ("prod", "shop"));
    let lines: Vec<&str> = entries.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(lines, ["first", "second", "third"]);
    // Attributes that are not labels travel as structured metadata.
    let third = &entries[2].2;
    assert!(third.contains(&("user".into(), "alice".into())), "{third:?}");
    assert!(third.contains(&("host_name".into(), "node-7".into())), "{third:?}");
    assert!(third.contains(&("trace_id".into(), "ab".repeat(16))), "{third:?}");
    assert_eq!(find("unknown_service").2[0].1, "no service");
    let json = &find("batch").2[0];
    assert!(json.1.starts_with(r#"{"body":"as json","traceid":"abab"#), "{}", json.1);
    assert!(json.1.contains(r#""attributes":{"job.id":"42"}"#), "{}", json.1);
    assert!(!json.1.contains("loki.format"), "hints are not sent: {}", json.1);
    assert!(agent.stop().success());
}

#[test]
fn a_429_is_retried_and_delivered_once() {
    let loki = Loki::start(|n| if n == 0 { (429, "Ingestion rate limit exceeded") } else { (204, "") });
    let agent = agent(&loki, "");
    send(&agent, logs(vec![(vec![kv("service.name", "api")], vec![record("once", T, vec![])])]));
    wait_until(Duration::from_secs(10), "the entry", || !loki.received.lock().unwrap().is_empty());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(*loki.requests.lock().unwrap(), 2);
    assert_eq!(loki.received.lock().unwrap().iter().map(|s| s.2.len()).sum::<usize>(), 1);
    agent.wait_metric("otelcol_exporter_sent_log_records_total", "", 1.0);
    assert!(agent.stop().success());
}

#[test]
fn a_400_is_not_retried_and_is_counted_by_reason() {
    let loki = Loki::start(|_| (400, "entry too far behind, entry timestamp is: 2025-01-01T00:00:00Z"));
    let agent = agent(&loki, "");
    let records = (0..3).map(|i| record("old", T + i, vec![])).collect();
    send(&agent, logs(vec![(vec![kv("service.name", "api")], records)]));
    agent.wait_metric("ocelot_exporter_dropped_items_total", "reason=\"out_of_order\"", 3.0);
    agent.wait_metric("otelcol_exporter_send_failed_log_records_total", "", 3.0);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(*loki.requests.lock().unwrap(), 1, "a 400 is never retried");
    assert_eq!(agent.count_logs("Loki refused entries of this stream"), 1);
    assert_eq!(agent.count_logs("dropping data"), 0, "logged once, by the exporter");
    assert!(agent.stop().success());
}

/// One batch, one request per tenant (tenants `t0`, `t1`, … in that order), each
/// tenant's records `t<k> r<i>`.
fn tenants_batch(tenants: usize, records: usize) -> Vec<u8> {
    logs(
        (0..tenants)
            .map(|t| {
                let resource =
                    vec![kv("service.name", "api"), kv("loki.tenant", "tenant"), kv("tenant", &format!("t{t}"))];
                let records = (0..records).map(|i| record(&format!("t{t} r{i}"), T + i as u64, vec![])).collect();
                (resource, records)
            })
            .collect(),
    )
}

fn lines_received(loki: &Loki) -> Vec<String> {
    let mut lines: Vec<String> =
        loki.received.lock().unwrap().iter().flat_map(|s| s.2.iter().map(|e| e.1.clone())).collect();
    lines.sort();
    lines
}

#[test]
fn a_split_batch_settles_each_request_on_its_own() {
    // Request 0 (tenant t0) is taken, request 1 (t1) refused for good.
    let loki = Loki::start(|n| if n == 1 { (400, "bad labels") } else { (204, "") });
    let agent = agent(&loki, "");
    send(&agent, tenants_batch(2, 5));
    agent.wait_metric("otelcol_exporter_sent_log_records_total", "", 5.0);
    agent.wait_metric("otelcol_exporter_send_failed_log_records_total", "", 5.0);
    assert_eq!(lines_received(&loki), (0..5).map(|i| format!("t0 r{i}")).collect::<Vec<_>>());
    assert!(agent.stop().success());

    // Request 1 is throttled once: only it is sent again, nothing is delivered twice.
    let loki = Loki::start(|n| if n == 1 { (429, "slow down") } else { (204, "") });
    let agent = self::agent(&loki, "");
    send(&agent, tenants_batch(3, 4));
    agent.wait_metric("otelcol_exporter_sent_log_records_total", "", 12.0);
    assert_eq!(*loki.requests.lock().unwrap(), 4);
    assert_eq!(lines_received(&loki).len(), 12);
    let mut unique = lines_received(&loki);
    unique.dedup();
    assert_eq!(unique.len(), 12);
    assert_eq!(agent.metric("otelcol_exporter_send_failed_log_records_total", ""), 0.0);
    assert!(agent.stop().success());
}

#[test]
fn timeout_bounds_each_request_not_the_batch() {
    // Five requests of 400 ms each take 2 s; a 1 s timeout is per request.
    let loki = Loki::start_slow(Duration::from_millis(400), |_| (204, ""));
    let agent = agent(&loki, "    timeout: 1s\n");
    send(&agent, tenants_batch(5, 2));
    agent.wait_metric("otelcol_exporter_sent_log_records_total", "", 10.0);
    assert_eq!(*loki.requests.lock().unwrap(), 5, "no request was sent twice");
    assert_eq!(lines_received(&loki).len(), 10);
    assert_eq!(agent.count_logs("timed out"), 0);
    assert!(agent.stop().success());
}

//! The `attributes` and `resource` processors on upstream's documented examples: each
//! action, include/exclude selection, and what a config error says.

use serde_json::{Value, json};

use super::*;
use crate::config::ComponentId;
use crate::pdata::{Batch, Signal};
use crate::telemetry::Telemetry;

fn node(yaml: &str) -> Node {
    crate::config::node::parse("p.yaml", yaml).unwrap_or_else(|e| panic!("{e}"))
}

fn run(processor: &mut dyn Processor, signal: Signal, input: &Value) -> Value {
    let payload = crate::pdata::json::from_json(signal, input.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    processor.process(Batch::new(payload), &mut out);
    let batch = out.pop().unwrap_or_else(|| panic!("dropped"));
    serde_json::from_str(&crate::pdata::json::to_json_line(&batch.payload)).unwrap_or_else(|e| panic!("{e}"))
}

fn attributes(yaml: &str) -> AttributesProcessor {
    let config = parse(&node(yaml)).unwrap_or_else(|e| panic!("{}", e.message));
    AttributesProcessor::new(&config, Telemetry::new().processor(&ComponentId::new("attributes")))
}

fn kv(key: &str, value: Value) -> Value {
    json!({ "key": key, "value": value })
}

fn s(v: &str) -> Value {
    json!({ "stringValue": v })
}

fn attr<'v>(attributes: &'v Value, key: &str) -> Option<&'v Value> {
    let entry = attributes.as_array()?.iter().find(|kv| kv["key"] == key)?;
    entry.get("value")?.as_object()?.values().next()
}

fn spans(service: &str, spans: Vec<Value>) -> Value {
    json!({ "resourceSpans": [{
        "resource": { "attributes": [kv("service.name", s(service))] },
        "scopeSpans": [{ "scope": { "name": "lib" }, "spans": spans }]
    }]})
}

fn span(name: &str, attributes: Vec<Value>) -> Value {
    json!({ "traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708", "name": name, "attributes": attributes })
}

#[test]
fn actions_as_upstream_documents_them() {
    let mut p = attributes(
        r#"
actions:
  - key: db.table
    action: delete
  - key: redacted_span
    value: true
    action: upsert
  - key: copy_key
    from_attribute: key_original
    action: update
  - key: account_id
    value: 2245
    action: insert
  - key: account_password
    action: delete
  - key: account_email
    action: hash
  - key: http.url
    pattern: ^(?P<http_protocol>.*):\/\/(?P<http_domain>.*)\/(?P<http_path>.*)$
    action: extract
  - key: count
    action: convert
    converted_type: int
  - pattern: ^secret\.
    action: delete
"#,
    );
    let input = spans(
        "api",
        vec![span(
            "op",
            vec![
                kv("db.table", s("users")),
                kv("copy_key", s("old")),
                kv("key_original", s("new")),
                kv("account_id", json!({ "intValue": "1" })),
                kv("account_password", s("pw")),
                kv("account_email", s("a@b.c")),
                kv("http.url", s("https://example.com/x")),
                kv("count", s("12")),
                kv("secret.token", s("t")),
            ],
        )],
    );
    let out = run(&mut p, Signal::Traces, &input);
    let a = &out["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"];
    assert_eq!(attr(a, "db.table"), None);
    assert_eq!(attr(a, "redacted_span"), Some(&json!(true)));
    assert_eq!(attr(a, "copy_key"), Some(&json!("new")));
    assert_eq!(attr(a, "account_id"), Some(&json!("1")), "insert does not overwrite");
    assert_eq!(attr(a, "account_password"), None);
    assert_eq!(
        attr(a, "account_email"),
        Some(&json!("d648b243a3e817eaa3309e00e183483f2867baadf522099f0c2121770536b25a"))
    );
    assert_eq!(attr(a, "http_protocol"), Some(&json!("https")));
    assert_eq!(attr(a, "http_domain"), Some(&json!("example.com")));
    assert_eq!(attr(a, "http_path"), Some(&json!("x")));
    assert_eq!(attr(a, "count"), Some(&json!("12")), "an int, written as OTLP JSON's string of digits");
    assert!(a.as_array().unwrap().iter().any(|kv| kv["key"] == "count" && kv["value"].get("intValue").is_some()));
    assert_eq!(attr(a, "secret.token"), None);
}

#[test]
fn from_context_reads_the_request_metadata() {
    let mut p = attributes(
        "actions:\n  - {key: tenant, from_context: metadata.X-Tenant, action: upsert}\n  - {key: user, from_context: auth.username, action: insert}\n  - {key: none, from_context: metadata.absent, action: insert}\n",
    );
    let payload =
        crate::pdata::json::from_json(Signal::Traces, spans("api", vec![span("a", vec![])]).to_string().as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    let mut headers = http::HeaderMap::new();
    headers.append("x-tenant", "acme".parse().unwrap());
    headers.append("x-tenant", "beta".parse().unwrap());
    let metadata = crate::pdata::Metadata::from_request(Some(&headers), vec![("username".into(), "ann".into())]);
    let mut out = Vec::new();
    p.process(Batch::new(payload).with_metadata(metadata), &mut out);
    let out: Value = serde_json::from_str(&crate::pdata::json::to_json_line(&out[0].payload)).unwrap();
    let attributes = &out["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"];
    // Several values are joined with `;`, as upstream.
    assert_eq!(attr(attributes, "tenant"), Some(&json!("acme;beta")));
    assert_eq!(attr(attributes, "user"), Some(&json!("ann")));
    assert_eq!(attr(attributes, "none"), None);
}

#[test]
fn include_and_exclude_select_items() {
    let mut p = attributes(
        r#"
include:
  match_type: regexp
  services: ["^api"]
  span_names: ["^GET "]
exclude:
  match_type: strict
  attributes:
    - key: keep
      value: yes
actions:
  - key: touched
    value: 1
    action: insert
"#,
    );
    let input = spans(
        "api-gateway",
        vec![span("GET /a", vec![]), span("POST /a", vec![]), span("GET /b", vec![kv("keep", s("yes"))])],
    );
    let out = run(&mut p, Signal::Traces, &input);
    let spans = &out["resourceSpans"][0]["scopeSpans"][0]["spans"];
    assert!(attr(&spans[0]["attributes"], "touched").is_some());
    assert!(attr(&spans[1]["attributes"], "touched").is_none(), "span name does not match");
    assert!(attr(&spans[2]["attributes"], "touched").is_none(), "excluded");
    let out = run(&mut p, Signal::Traces, &spans_of("billing"));
    assert!(attr(&out["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"], "touched").is_none());

    // Logs: record attributes, severity and bodies; metrics: every data point.
    let mut p = attributes(
        "include:\n  match_type: strict\n  log_severity_texts: [error]\nactions:\n  - {key: alert, value: true, action: upsert}\n",
    );
    let logs = json!({ "resourceLogs": [{ "scopeLogs": [{ "logRecords": [
        { "severityText": "error", "body": s("x") }, { "severityText": "info", "body": s("y") }
    ]}]}]});
    let out = run(&mut p, Signal::Logs, &logs);
    let records = &out["resourceLogs"][0]["scopeLogs"][0]["logRecords"];
    assert!(attr(&records[0]["attributes"], "alert").is_some());
    assert!(attr(&records[1]["attributes"], "alert").is_none());
    let mut p = attributes("actions:\n  - {key: host, value: h1, action: insert}\n");
    let metrics = json!({ "resourceMetrics": [{ "scopeMetrics": [{ "metrics": [
        { "name": "m", "gauge": { "dataPoints": [{ "asInt": "1" }, { "asInt": "2" }] } }
    ]}]}]});
    let out = run(&mut p, Signal::Metrics, &metrics);
    let points = &out["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["gauge"]["dataPoints"];
    assert_eq!(attr(&points[1]["attributes"], "host"), Some(&json!("h1")));
}

fn spans_of(service: &str) -> Value {
    spans(service, vec![span("GET /a", vec![])])
}

#[test]
fn the_resource_processor_acts_on_resources() {
    let config = crate::processors::resource::parse(&node(
        "attributes:\n  - {key: cloud.zone, value: zone-1, action: upsert}\n  - {key: k8s.cluster.name, from_attribute: k8s-cluster, action: insert}\n  - {key: redundant-attribute, action: delete}\n",
    ))
    .unwrap_or_else(|e| panic!("{}", e.message));
    let mut p = crate::processors::resource::ResourceProcessor::new(
        &config,
        Telemetry::new().processor(&ComponentId::new("resource")),
    );
    let input = json!({ "resourceSpans": [{
        "resource": { "attributes": [kv("k8s-cluster", s("prod")), kv("redundant-attribute", s("x"))] },
        "scopeSpans": [{ "spans": [span("op", vec![])] }]
    }]});
    let out = run(&mut p, Signal::Traces, &input);
    let r = &out["resourceSpans"][0]["resource"]["attributes"];
    assert_eq!(attr(r, "cloud.zone"), Some(&json!("zone-1")));
    assert_eq!(attr(r, "k8s.cluster.name"), Some(&json!("prod")));
    assert_eq!(attr(r, "redundant-attribute"), None);
}

#[test]
fn config_errors_say_which_action() {
    let error = |yaml: &str| match parse(&node(yaml)) {
        Ok(_) => panic!("{yaml} parsed"),
        Err(e) => e.message,
    };
    assert!(
        error("actions:\n  - {key: a, action: insert}\n")
            .contains("action 1 (insert): exactly one of value, from_attribute")
    );
    assert!(error("actions:\n  - {key: a, value: 1, action: frob}\n").contains("unknown action `frob`"));
    assert!(error("actions:\n  - {key: a, pattern: 'x', action: extract}\n").contains("named groups"));
    assert!(
        error("actions:\n  - {key: a, action: convert, converted_type: float}\n")
            .contains("converted_type must be int, double or string")
    );
    assert!(
        error("actions:\n  - {key: a, from_context: metadata.x, value: 1, action: insert}\n")
            .contains("exactly one of value, from_attribute, from_context")
    );
    assert!(error("actions: []\n").contains("at least one action"));
    assert!(
        error("include:\n  match_type: regexp\n  span_names: ['(']\nactions:\n  - {key: a, action: delete}\n")
            .contains("include: invalid regexp")
    );
    assert!(
        error("include:\n  match_type: strict\nactions:\n  - {key: a, action: delete}\n")
            .contains("at least one property")
    );
}

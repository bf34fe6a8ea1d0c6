//! The transform processor on statements from upstream's documentation (the
//! transform processor's README and ottlfuncs' function docs): each runs on an OTLP
//! JSON batch and the result is checked against what upstream documents.

use serde_json::{Value, json};

use super::*;
use crate::pdata::{Batch, Signal};
use crate::telemetry::Telemetry;

fn processor(yaml: &str) -> TransformProcessor {
    let node = crate::config::node::parse("transform.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    let config = parse(&node).unwrap_or_else(|e| panic!("{}", e.message));
    let id = ComponentId::new("transform");
    TransformProcessor::new(&id, &config, Telemetry::new().processor(&id))
}

fn run_on(processor: &mut TransformProcessor, signal: Signal, input: &Value) -> Option<Value> {
    let payload = crate::pdata::json::from_json(signal, input.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    processor.process(Batch::new(payload), &mut out);
    let batch = out.pop()?;
    Some(serde_json::from_str(&crate::pdata::json::to_json_line(&batch.payload)).unwrap_or_else(|e| panic!("{e}")))
}

fn run(yaml: &str, signal: Signal, input: &Value) -> Value {
    run_on(&mut processor(yaml), signal, input).unwrap_or_else(|| panic!("the batch was dropped"))
}

fn string(s: &str) -> Value {
    json!({ "stringValue": s })
}

fn kv(key: &str, value: Value) -> Value {
    json!({ "key": key, "value": value })
}

/// One resource, one scope, these log records.
fn logs(resource: Vec<Value>, records: Vec<Value>) -> Value {
    json!({ "resourceLogs": [{
        "resource": { "attributes": resource },
        "scopeLogs": [{ "scope": { "name": "lib" }, "logRecords": records }]
    }]})
}

fn record(body: &str, attributes: Vec<Value>) -> Value {
    json!({ "body": string(body), "attributes": attributes, "severityText": "info", "severityNumber": 9 })
}

fn first_record(out: &Value) -> &Value {
    &out["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
}

/// The value of `key` in an OTLP JSON attribute list, unwrapped.
fn attr<'v>(attributes: &'v Value, key: &str) -> Option<&'v Value> {
    let entry = attributes.as_array()?.iter().find(|kv| kv["key"] == key)?;
    let value = entry.get("value")?.as_object()?;
    value.values().next()
}

fn keys(attributes: &Value) -> Vec<&str> {
    attributes.as_array().map_or_else(Vec::new, |a| a.iter().filter_map(|kv| kv["key"].as_str()).collect())
}

fn log_statements(statements: &[&str]) -> String {
    let list: Vec<String> =
        statements.iter().map(|s| format!("  - {}", serde_json::to_string(s).unwrap_or_default())).collect();
    format!("log_statements:\n{}\n", list.join("\n"))
}

#[test]
fn set_with_where_and_enums() {
    let yaml = log_statements(&[
        r#"set(log.attributes["test"], "pass")"#,
        r#"set(log.severity_text, "FAIL") where log.body == "operationA""#,
        r#"set(log.severity_number, SEVERITY_NUMBER_WARN) where log.severity_text == "FAIL""#,
        r#"set(log.attributes["not set"], "x") where log.body == "operationB""#,
    ]);
    let out = run(&yaml, Signal::Logs, &logs(vec![], vec![record("operationA", vec![])]));
    let r = first_record(&out);
    assert_eq!(attr(&r["attributes"], "test"), Some(&json!("pass")));
    assert_eq!(r["severityText"], "FAIL");
    assert_eq!(r["severityNumber"], 13);
    assert_eq!(attr(&r["attributes"], "not set"), None);
}

#[test]
fn map_editors() {
    let attributes = || {
        vec![
            kv("http.target", string("/users?id=3")),
            kv("db.password", string("hunter2")),
            kv("Password2", string("x")),
            kv("path", string("/account/1234/x")),
            kv("long", string("abcdefgh")),
            kv("n", json!({ "intValue": "5" })),
        ]
    };
    let yaml = log_statements(&[
        r#"replace_pattern(log.attributes["http.target"], "\\?.*", "")"#,
        r#"delete_matching_keys(log.attributes, "(?i).*password.*")"#,
        r#"replace_all_patterns(log.attributes, "value", "/account/\\d{4}", "/account/{accountId}")"#,
        r#"truncate_all(log.attributes, 4)"#,
        r#"delete_key(log.attributes, "n")"#,
    ]);
    let out = run(&yaml, Signal::Logs, &logs(vec![], vec![record("b", attributes())]));
    let a = &first_record(&out)["attributes"];
    assert_eq!(attr(a, "http.target"), Some(&json!("/use")), "replaced, then truncated to 4 bytes");
    assert_eq!(keys(a), ["http.target", "path", "long"]);
    assert_eq!(attr(a, "path"), Some(&json!("/acc")));
    assert_eq!(attr(a, "long"), Some(&json!("abcd")));

    let yaml = log_statements(&[
        r#"replace_all_patterns(log.attributes, "value", "/account/\\d{4}", "/account/{accountId}")"#,
    ]);
    let out = run(&yaml, Signal::Logs, &logs(vec![], vec![record("b", attributes())]));
    assert_eq!(attr(&first_record(&out)["attributes"], "path"), Some(&json!("/account/{accountId}/x")));

    let yaml = log_statements(&[r#"keep_keys(log.attributes, ["path", "n", "missing"])"#]);
    let out = run(&yaml, Signal::Logs, &logs(vec![], vec![record("b", attributes())]));
    assert_eq!(keys(&first_record(&out)["attributes"]), ["path", "n"]);

    // limit keeps the priority keys, then the first others in order.
    let yaml = log_statements(&[r#"limit(log.attributes, 3, ["n", "long"])"#]);
    let out = run(&yaml, Signal::Logs, &logs(vec![], vec![record("b", attributes())]));
    assert_eq!(keys(&first_record(&out)["attributes"]), ["http.target", "long", "n"]);

    let yaml = log_statements(&[
        r#"keep_matching_keys(log.attributes, "^p")"#,
        r#"replace_all_patterns(log.attributes, "key", "^p(.*)", "q${1}")"#,
    ]);
    let out = run(&yaml, Signal::Logs, &logs(vec![], vec![record("b", attributes())]));
    assert_eq!(keys(&first_record(&out)["attributes"]), ["qath"]);
}

#[test]
fn parsing_converters_into_attributes_and_cache() {
    let yaml = r#"
log_statements:
  - context: log
    statements:
      - 'merge_maps(attributes, ParseJSON(body), "upsert") where IsMatch(body, "^\\{")'
      - 'merge_maps(cache, ParseKeyValue(body), "upsert") where not IsMatch(body, "^[{]") and IsMatch(body, "=")'
      - 'set(attributes["level"], cache["level"])'
      - 'merge_maps(attributes, ExtractPatterns(body, "^(?P<method>[A-Z]+) (?P<path>\\S+)"), "insert")'
      - 'set(attributes["parts"], Split(body, " "))'
      - 'set(attributes["first"], Split(body, " ")[0])'
"#;
    let input = logs(
        vec![],
        vec![
            record(r#"{"user": "ann", "n": 2, "deep": {"a": [1, null]}}"#, vec![]),
            record(r#"level=warn msg="disk full" code=7"#, vec![]),
            record("GET /users/7 200", vec![]),
        ],
    );
    let out = run(yaml, Signal::Logs, &input);
    let records = &out["resourceLogs"][0]["scopeLogs"][0]["logRecords"];
    let json = &records[0]["attributes"];
    assert_eq!(attr(json, "user"), Some(&json!("ann")));
    // ParseJSON gives every number as a double.
    assert_eq!(attr(json, "n"), Some(&json!(2.0)));
    assert!(attr(json, "deep").is_some());
    assert_eq!(attr(json, "level"), None, "a nil value is not written: {json}");
    let kv_record = &records[1]["attributes"];
    assert_eq!(attr(kv_record, "level"), Some(&json!("warn")));
    assert_eq!(attr(kv_record, "msg"), None, "the cache is not exported");
    let http = &records[2]["attributes"];
    assert_eq!(attr(http, "method"), Some(&json!("GET")));
    assert_eq!(attr(http, "path"), Some(&json!("/users/7")));
    assert_eq!(attr(http, "first"), Some(&json!("GET")));
    assert_eq!(
        http.as_array()
            .and_then(|a| a.iter().find(|kv| kv["key"] == "parts"))
            .map(|kv| &kv["value"]["arrayValue"]["values"][2]),
        Some(&string("200"))
    );
}

/// A regression: a pair delimiter after a multi-byte character was looked for at a
/// byte inside it, which panicked.
#[test]
fn parse_key_value_splits_text_with_multi_byte_characters() {
    let yaml = log_statements(&[r#"merge_maps(log.attributes, ParseKeyValue(log.body), "upsert")"#]);
    let out = run(&yaml, Signal::Logs, &logs(vec![], vec![record("städt=köln größe=\"sehr groß\" ü=ö", vec![])]));
    let a = &first_record(&out)["attributes"];
    assert_eq!(attr(a, "städt"), Some(&json!("köln")));
    assert_eq!(attr(a, "größe"), Some(&json!("sehr groß")));
    assert_eq!(attr(a, "ü"), Some(&json!("ö")));
}

#[test]
fn hashes_numbers_ids_and_time() {
    let yaml = log_statements(&[
        r#"set(log.attributes["sha"], SHA256(log.attributes["user.email"]))"#,
        r#"set(log.attributes["fnv"], FNV("hello"))"#,
        r#"set(log.attributes["int"], Int("42"))"#,
        r#"set(log.attributes["trunc"], Int(3.9))"#,
        r#"set(log.attributes["bad int"], Int("4.2"))"#,
        r#"set(log.attributes["double"], Double("1.5"))"#,
        r#"set(log.attributes["string"], String(17))"#,
        r#"set(log.attributes["hex"], Hex(log.attributes["user.email"]))"#,
        r#"set(log.attributes["len"], Len(log.body))"#,
        r#"set(log.attributes["sub"], Substring(log.body, 2, 3))"#,
        r#"set(log.attributes["upper"], ToUpperCase(log.body))"#,
        r#"set(log.trace_id, TraceID(0x0102030405060708090a0b0c0d0e0f10))"#,
        r#"set(log.span_id.string, "1112131415161718")"#,
        r#"set(log.time, Time(log.attributes["ts"], "%Y-%m-%d %H:%M:%S"))"#,
        r#"set(log.attributes["ts_nanos"], UnixNano(Time(log.attributes["ts"], "%Y-%m-%d %H:%M:%S", "Europe/Berlin")))"#,
        r#"set(log.attributes["now_is_late"], true) where UnixNano(Now()) > 1700000000000000000"#,
    ]);
    let input = logs(
        vec![],
        vec![record("abcdefgh", vec![kv("user.email", string("a@b.c")), kv("ts", string("2023-05-26 12:34:56"))])],
    );
    let out = run(&yaml, Signal::Logs, &input);
    let r = first_record(&out);
    let a = &r["attributes"];
    assert_eq!(attr(a, "sha"), Some(&json!("d648b243a3e817eaa3309e00e183483f2867baadf522099f0c2121770536b25a")));
    assert_eq!(attr(a, "fnv"), Some(&json!("-6615550055289275125")));
    assert_eq!(attr(a, "int"), Some(&json!("42")));
    assert_eq!(attr(a, "trunc"), Some(&json!("3")));
    assert_eq!(attr(a, "bad int"), None, "Int of a non-integer string is nil");
    assert_eq!(attr(a, "double"), Some(&json!(1.5)));
    assert_eq!(attr(a, "string"), Some(&json!("17")));
    assert_eq!(attr(a, "hex"), Some(&json!("6140622e63")));
    assert_eq!(attr(a, "len"), Some(&json!("8")));
    assert_eq!(attr(a, "sub"), Some(&json!("cde")));
    assert_eq!(attr(a, "upper"), Some(&json!("ABCDEFGH")));
    assert_eq!(r["traceId"], "0102030405060708090a0b0c0d0e0f10");
    assert_eq!(r["spanId"], "1112131415161718");
    assert_eq!(r["timeUnixNano"], "1685104496000000000");
    // 12:34:56 in Berlin (CEST, +02:00) is 10:34:56 UTC.
    assert_eq!(attr(a, "ts_nanos"), Some(&json!("1685097296000000000")));
    assert_eq!(attr(a, "now_is_late"), Some(&json!(true)));
}

#[test]
fn flatten_and_nested_keys() {
    let nested = json!({ "kvlistValue": { "values": [
        kv("a", json!({ "kvlistValue": { "values": [kv("b", string("1")), kv("c", json!({ "arrayValue": { "values": [string("x"), string("y")] } }))] } })),
    ]}});
    let yaml = log_statements(&[
        r#"set(log.attributes["made"]["deep"], "v")"#,
        r#"flatten(log.attributes["k8s"], "pod")"#,
        r#"set(log.attributes["copy"], log.attributes["k8s"]["pod.a.b"])"#,
    ]);
    let out = run(&yaml, Signal::Logs, &logs(vec![], vec![record("b", vec![kv("k8s", nested)])]));
    let a = &first_record(&out)["attributes"];
    let k8s = attr(a, "k8s").unwrap_or_else(|| panic!("{a}"));
    assert_eq!(keys(&k8s["values"]), ["pod.a.b", "pod.a.c.0", "pod.a.c.1"]);
    assert_eq!(attr(a, "copy"), Some(&json!("1")));
    let made = attr(a, "made").unwrap_or_else(|| panic!("{a}"));
    assert_eq!(attr(&made["values"], "deep"), Some(&json!("v")));
}

#[test]
fn resource_statements_run_once_per_resource_and_groups_have_conditions() {
    let yaml = r#"
log_statements:
  - context: resource
    statements:
      - 'set(attributes["count"], Len(attributes))'
  - context: log
    conditions:
      - 'severity_number >= SEVERITY_NUMBER_WARN'
    statements:
      - 'set(attributes["loud"], true)'
"#;
    let mut loud = record("x", vec![]);
    loud["severityNumber"] = json!(17);
    let input = logs(vec![kv("service.name", string("api"))], vec![record("quiet", vec![]), loud]);
    let out = run(yaml, Signal::Logs, &input);
    let resource = &out["resourceLogs"][0]["resource"]["attributes"];
    assert_eq!(attr(resource, "count"), Some(&json!("1")), "once per resource, not per record: {resource}");
    let records = &out["resourceLogs"][0]["scopeLogs"][0]["logRecords"];
    assert_eq!(attr(&records[0]["attributes"], "loud"), None);
    assert_eq!(attr(&records[1]["attributes"], "loud"), Some(&json!(true)));
}

#[test]
fn spans_and_metrics() {
    let yaml = r#"
trace_statements:
  - 'replace_match(span.name, "GET /user/*", "GET /user/{id}")'
  - 'set(span.status.code, STATUS_CODE_ERROR) where span.attributes["http.status_code"] >= 500'
  - 'set(span.attributes["duration_ms"], (span.end_time_unix_nano - span.start_time_unix_nano) / 1000000)'
  - 'set(spanevent.attributes["seen"], true) where spanevent.name == "exception"'
  - 'set(resource.attributes["env"], "prod")'
metric_statements:
  - 'set(metric.description, "Sum") where metric.type == METRIC_DATA_TYPE_SUM'
  - 'set(datapoint.attributes["big"], true) where datapoint.value_double > 1.0'
  - 'set(metric.unit, "ms") where metric.name == "latency"'
"#;
    let traces = json!({ "resourceSpans": [{ "resource": {}, "scopeSpans": [{ "spans": [{
        "traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708", "name": "GET /user/42",
        "startTimeUnixNano": "1000000000", "endTimeUnixNano": "1250000000",
        "attributes": [kv("http.status_code", json!({ "intValue": "503" }))],
        "events": [{ "name": "exception" }, { "name": "log" }]
    }]}]}]});
    let mut p = processor(yaml);
    let out = run_on(&mut p, Signal::Traces, &traces).unwrap_or_else(|| panic!("dropped"));
    let span = &out["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(span["name"], "GET /user/{id}");
    assert_eq!(span["status"]["code"], 2);
    assert_eq!(attr(&span["attributes"], "duration_ms"), Some(&json!("250")));
    assert_eq!(attr(&span["events"][0]["attributes"], "seen"), Some(&json!(true)));
    assert_eq!(attr(&span["events"][1]["attributes"], "seen"), None);
    assert_eq!(attr(&out["resourceSpans"][0]["resource"]["attributes"], "env"), Some(&json!("prod")));

    let metrics = json!({ "resourceMetrics": [{ "scopeMetrics": [{ "metrics": [
        { "name": "requests", "sum": { "dataPoints": [{ "asDouble": 0.5 }, { "asDouble": 2.5 }], "aggregationTemporality": 2, "isMonotonic": true } },
        { "name": "latency", "gauge": { "dataPoints": [{ "asDouble": 3.0 }] } },
    ]}]}]});
    let out = run_on(&mut p, Signal::Metrics, &metrics).unwrap_or_else(|| panic!("dropped"));
    let m = &out["resourceMetrics"][0]["scopeMetrics"][0]["metrics"];
    assert_eq!(m[0]["description"], "Sum");
    assert_eq!(m[1].get("description"), None);
    assert_eq!(m[1]["unit"], "ms");
    assert_eq!(attr(&m[0]["sum"]["dataPoints"][0]["attributes"], "big"), None);
    assert_eq!(attr(&m[0]["sum"]["dataPoints"][1]["attributes"], "big"), Some(&json!(true)));
    assert_eq!(attr(&m[1]["gauge"]["dataPoints"][0]["attributes"], "big"), Some(&json!(true)));
}

#[test]
fn error_modes() {
    let statements = [r#"set(log.severity_number, log.body)"#, r#"set(log.attributes["after"], "ran")"#];
    let input = logs(vec![], vec![record("not a number", vec![])]);
    // ignore: the failing statement is skipped, the next runs, the record goes on.
    let out = run(&log_statements(&statements), Signal::Logs, &input);
    assert_eq!(first_record(&out)["severityNumber"], 9);
    assert_eq!(attr(&first_record(&out)["attributes"], "after"), Some(&json!("ran")));
    // propagate: the batch is dropped and refused for good.
    let yaml = format!("error_mode: propagate\n{}", log_statements(&statements));
    let mut p = processor(&yaml);
    assert!(run_on(&mut p, Signal::Logs, &input).is_none());
}

fn config_error(yaml: &str) -> String {
    let node = crate::config::node::parse("transform.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    match parse(&node) {
        Ok(_) => panic!("{yaml} parsed"),
        Err(e) => format!(
            "{}:{} {}",
            e.location.as_ref().map_or(0, |l| l.line),
            e.location.as_ref().map_or(0, |l| l.column),
            e.message
        ),
    }
}

#[test]
fn bad_statements_are_config_errors_at_their_place() {
    let e = config_error("log_statements:\n  - 'set(log.attributes[\"a\"], Frob(log.body))'\n");
    assert!(e.starts_with("2:31 ") && e.contains("unknown converter `Frob`"), "{e}");
    let e = config_error("log_statements:\n  - 'frob(log.attributes)'\n");
    assert!(e.contains("unknown editor `frob`"), "{e}");
    let e = config_error("log_statements:\n  - 'replace_pattern(log.body, \"(\", \"x\")'\n");
    assert!(e.contains("invalid regular expression"), "{e}");
    let e = config_error("log_statements:\n  - 'set(span.name, \"x\")'\n");
    assert!(e.contains("`span` paths are not part of logs"), "{e}");
    let e = config_error(
        "trace_statements:\n  - 'set(span.name, 1)'\n  - context: span\n    statements: ['set(name, 1)']\n",
    );
    assert!(e.contains("multiple configuration styles"), "{e}");
    let e = config_error("metric_statements:\n  - 'set(metric.type, 1)'\n");
    assert!(e.contains("cannot be written"), "{e}");
    let e = config_error("log_statements:\n  - context: span\n    statements: ['set(attributes[\"a\"], 1)']\n");
    assert!(e.contains("not a context of logs"), "{e}");
    let e = config_error("flatten_data: true\n");
    assert!(e.contains("flatten_data is not supported"), "{e}");
}

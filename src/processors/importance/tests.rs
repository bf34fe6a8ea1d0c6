//! The `importance` processor: rules, where the score goes, the EWMA raise and its
//! state across a restart, and what bad input does.

use serde_json::{Value, json};

use super::*;
use crate::pdata::Signal;
use crate::pdata::score::Score;
use crate::telemetry::Telemetry;

fn node(yaml: &str) -> crate::config::node::Node {
    crate::config::node::parse("p.yaml", yaml).unwrap_or_else(|e| panic!("{e}"))
}

fn config(yaml: &str) -> Result<ImportanceConfig, String> {
    parse(&node(yaml)).map_err(|e| format!("{}: {}", e.location.map(|l| l.to_string()).unwrap_or_default(), e.message))
}

struct Harness {
    processor: ImportanceProcessor,
    metrics: ImportanceMetrics,
    tasks: TaskTracker,
}

fn harness(yaml: &str, directory: &Path) -> Harness {
    let config = config(yaml).unwrap_or_else(|e| panic!("{e}"));
    let telemetry = Telemetry::new();
    let id = ComponentId::new(TYPE);
    let stores = Stores::default();
    let tasks = TaskTracker::new();
    let metrics = telemetry.importance(&id);
    let context = Context {
        stores: &stores,
        directory,
        tasks: &tasks,
        metrics: metrics.clone(),
        processor: telemetry.processor(&id),
    };
    Harness { processor: ImportanceProcessor::new(&id, &config, context), metrics, tasks }
}

impl Harness {
    fn run(&mut self, signal: Signal, input: &Value) -> Value {
        let payload =
            crate::pdata::json::from_json(signal, input.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        self.processor.process(Batch::new(payload), &mut out);
        let batch = out.pop().unwrap_or_else(|| panic!("dropped"));
        serde_json::from_str(&crate::pdata::json::to_json_line(&batch.payload)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Drops the processor and waits for its last checkpoint.
    async fn stop(self) {
        drop(self.processor);
        self.tasks.close();
        self.tasks.wait().await;
    }
}

fn kv(key: &str, value: &str) -> Value {
    json!({ "key": key, "value": { "stringValue": value } })
}

fn score_of(attributes: &Value, key: &str) -> Option<f64> {
    let entry = attributes.as_array()?.iter().find(|kv| kv["key"] == key)?;
    entry["value"]["doubleValue"].as_f64()
}

fn logs(resources: Vec<(Vec<Value>, Vec<Value>)>) -> Value {
    json!({ "resourceLogs": resources.into_iter().map(|(attributes, records)| json!({
        "resource": { "attributes": attributes },
        "scopeLogs": [{ "logRecords": records }]
    })).collect::<Vec<_>>() })
}

fn log(severity: &str, attributes: Vec<Value>) -> Value {
    json!({ "severityText": severity, "body": { "stringValue": "x" }, "attributes": attributes })
}

const PROCESS_RULES: &str = r#"
rules:
  - score: 0.9
    match: { resource: { process.executable.name: "postgres*" } }
  - score: 0.8
    condition: resource.attributes["process.executable.name"] == "api"
  - score: 0.95
    match: { severity: "error" }
"#;

#[tokio::test]
async fn resource_rules_score_the_resource_and_record_rules_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(PROCESS_RULES, dir.path());
    let out = h.run(
        Signal::Logs,
        &logs(vec![
            (vec![kv("process.executable.name", "postgres-15")], vec![log("INFO", vec![]), log("ERROR", vec![])]),
            (vec![kv("process.executable.name", "api")], vec![log("INFO", vec![])]),
            (vec![kv("process.executable.name", "cron")], vec![log("INFO", vec![]), log("Error", vec![])]),
            (vec![kv("process.executable.name", "bash")], vec![log("INFO", vec![])]),
        ]),
    );
    let r = &out["resourceLogs"];
    // postgres: the first rule matched every record and read only the resource.
    assert_eq!(score_of(&r[0]["resource"]["attributes"], "importance"), Some(0.9));
    assert_eq!(score_of(&r[0]["scopeLogs"][0]["logRecords"][1]["attributes"], "importance"), None);
    assert_eq!(score_of(&r[1]["resource"]["attributes"], "importance"), Some(0.8), "an OTTL resource condition");
    // cron: the severity rule matched one record, so each record carries its own.
    assert_eq!(score_of(&r[2]["resource"]["attributes"], "importance"), None);
    let records = &r[2]["scopeLogs"][0]["logRecords"];
    assert_eq!(score_of(&records[0]["attributes"], "importance"), Some(0.3), "default_score");
    assert_eq!(score_of(&records[1]["attributes"], "importance"), Some(0.95), "severity globs ignore case");
    assert_eq!(score_of(&r[3]["resource"]["attributes"], "importance"), Some(0.3));
    let counts: Vec<u64> = h.metrics.records.iter().map(|c| c.get()).collect();
    assert_eq!(counts, vec![3, 1, 2, 0, 0], "critical, important, standard, low, unscored");
    h.stop().await;
}

#[tokio::test]
async fn scope_forces_a_place() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(&format!("scope: record\n{PROCESS_RULES}"), dir.path());
    let out = h.run(Signal::Logs, &logs(vec![(vec![kv("process.executable.name", "api")], vec![log("INFO", vec![])])]));
    assert_eq!(
        score_of(&out["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["attributes"], "importance"),
        Some(0.8)
    );
    let mut h = harness(&format!("scope: resource\n{PROCESS_RULES}"), dir.path());
    let out = h.run(
        Signal::Logs,
        &logs(vec![(vec![kv("process.executable.name", "cron")], vec![log("INFO", vec![]), log("ERROR", vec![])])]),
    );
    assert_eq!(score_of(&out["resourceLogs"][0]["resource"]["attributes"], "importance"), Some(0.95), "the highest");
}

#[tokio::test]
async fn spans_and_data_points() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = r#"
attribute: process.importance_score
rules:
  - score: 1.0
    match: { span: { kind: server, status: error } }
  - score: 0.7
    match: { attributes: { http.route: "/api/*" } }
  - score: 0.6
    condition: metric.name == "db.latency" and attributes["db"] == "main"
"#;
    let mut h = harness(yaml, dir.path());
    let spans = json!({ "resourceSpans": [{ "scopeSpans": [{ "spans": [
        { "traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708", "name": "a", "kind": 2, "status": { "code": 2 } },
        { "traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060709", "name": "b", "kind": 2,
          "attributes": [kv("http.route", "/api/users")] },
        { "traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "010203040506070a", "name": "c", "kind": 3 }
    ]}]}]});
    let out = h.run(Signal::Traces, &spans);
    let spans = &out["resourceSpans"][0]["scopeSpans"][0]["spans"];
    let scores: Vec<Option<f64>> =
        (0..3).map(|i| score_of(&spans[i]["attributes"], "process.importance_score")).collect();
    assert_eq!(scores, vec![Some(1.0), Some(0.7), Some(0.3)]);
    let metrics = json!({ "resourceMetrics": [{ "scopeMetrics": [{ "metrics": [
        { "name": "db.latency", "gauge": { "dataPoints": [
            { "asDouble": 1.0, "attributes": [kv("db", "main")] },
            { "asDouble": 2.0, "attributes": [kv("db", "other")] } ] } }
    ]}]}]});
    let out = h.run(Signal::Metrics, &metrics);
    let points = &out["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["gauge"]["dataPoints"];
    assert_eq!(score_of(&points[0]["attributes"], "process.importance_score"), Some(0.6));
    assert_eq!(score_of(&points[1]["attributes"], "process.importance_score"), Some(0.3));
}

#[test]
fn config_errors() {
    let err = |yaml: &str| config(yaml).unwrap_err();
    assert!(err("rules: [{ score: 2, condition: 'true' }]").contains("rules[1]: a score is in [0, 1]"));
    assert!(err("rules: [{ score: 0.5 }]").contains("give `match` or `condition`"));
    assert!(err("rules: [{ score: 0.5, match: { resource: { a: '[' } } }]").contains("invalid glob"));
    let e = err("rules:\n  - score: 0.5\n    condition: 'resource.attributes[\"a\"] == '\n");
    assert!(e.starts_with("p.yaml:3:"), "{e}");
    assert!(err("ewma: { alpha: 0 }").contains("ewma.alpha"));
    assert!(err("ewma: { raise: [{ score: 0.8 }] }").contains("one of cpu_percent or memory_mib"));
    assert!(err("default_score: -1").contains("default_score"));
    assert!(err("rules: [{ score: 0.5, condition: 'spanevent.name == \"x\"' }]").contains("span event"));
}

const EWMA: &str = r#"
checkpoint_interval: 1h
ewma:
  raise:
    - { cpu_percent: 50, score: 0.8 }
    - { memory_mib: 1024, score: 0.7 }
"#;

fn scrape(name: &str, cpu: f64, memory_mib: i64) -> Value {
    json!({ "resourceMetrics": [{
        "resource": { "attributes": [kv("process.executable.name", name)] },
        "scopeMetrics": [{ "metrics": [
            { "name": "process.cpu.utilization", "unit": "1", "gauge": { "dataPoints": [
                { "asDouble": cpu * 0.75, "attributes": [kv("state", "user")] },
                { "asDouble": cpu * 0.25, "attributes": [kv("state", "system")] } ] } },
            { "name": "process.memory.usage", "unit": "By", "sum": { "aggregationTemporality": 2, "dataPoints": [
                { "asInt": (memory_mib << 20).to_string() } ] } }
        ]}]
    }]})
}

fn resource_score(out: &Value) -> Option<f64> {
    score_of(&out["resourceMetrics"][0]["resource"]["attributes"], "importance")
}

#[tokio::test]
async fn sustained_use_raises_and_a_spike_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(EWMA, dir.path());
    let out = h.run(Signal::Metrics, &scrape("spiky", 1.0, 10));
    assert_eq!(resource_score(&out), Some(0.3), "one reading at 100 % is not sustained use");
    for _ in 0..3 {
        h.run(Signal::Metrics, &scrape("spiky", 0.0, 10));
    }
    let mut raised_after = None;
    for i in 1..=20 {
        let out = h.run(Signal::Metrics, &scrape("busy", 0.9, 10));
        if resource_score(&out) == Some(0.8) {
            raised_after = Some(i);
            break;
        }
    }
    // (1 - 0.9^n) × 90 % ≥ 50 % from n = 8.
    assert_eq!(raised_after, Some(8));
    // The raise reaches the same identity's logs.
    let out =
        h.run(Signal::Logs, &logs(vec![(vec![kv("process.executable.name", "busy")], vec![log("INFO", vec![])])]));
    assert_eq!(score_of(&out["resourceLogs"][0]["resource"]["attributes"], "importance"), Some(0.8));
    h.stop().await;
}

#[tokio::test]
async fn state_survives_a_restart_and_is_forgotten_after_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(EWMA, dir.path());
    for _ in 0..40 {
        h.run(Signal::Metrics, &scrape("db", 0.0, 4096));
    }
    assert_eq!(h.metrics.tracked.get(), 1);
    h.stop().await;
    assert!(dir.path().join("importance_importance.state").exists());

    let mut h = harness(EWMA, dir.path());
    assert_eq!(h.metrics.tracked.get(), 1, "restored");
    let out = h.run(Signal::Metrics, &scrape("db", 0.0, 4096));
    assert_eq!(resource_score(&out), Some(0.7), "raised at the first scrape after a restart");
    h.stop().await;

    // Age the stored key past a 1s ttl: it is forgotten at load.
    let file = StateFile::new(dir.path(), "importance_importance");
    let mut state = ewma::State::decode(&file.load().unwrap().unwrap()).unwrap();
    state.expire(std::time::Duration::from_secs(3600), 0);
    let text = String::from_utf8(state.encode()).unwrap();
    let old = ewma::now_seconds() - 10;
    let aged =
        regex::Regex::new(r#""seen":\d+"#).unwrap().replace(&text, format!(r#""seen":{old}"#).as_str()).into_owned();
    file.store(aged.as_bytes()).unwrap();
    let h = harness(&EWMA.replace("ewma:\n", "ewma:\n  ttl: 5s\n"), dir.path());
    assert_eq!(h.metrics.tracked.get(), 0, "not seen for longer than ttl");
    h.stop().await;
}

#[tokio::test]
async fn bad_input_is_counted_and_processing_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // A corrupt state file: logged, ignored.
    std::fs::write(dir.path().join("importance_importance.state"), b"OCELOTS1 torn").unwrap();
    let mut h = harness(EWMA, dir.path());
    assert_eq!(h.metrics.tracked.get(), 0);
    let bad = json!({ "resourceMetrics": [{
        "resource": { "attributes": [kv("process.executable.name", "x")] },
        "scopeMetrics": [{ "metrics": [
            { "name": "process.cpu.utilization", "unit": "1", "gauge": { "dataPoints": [ { "timeUnixNano": "1" } ] } }
        ]}]
    }]});
    let out = h.run(Signal::Metrics, &bad);
    assert_eq!(h.metrics.not_numeric.get(), 1, "a data point with no value");
    assert_eq!(resource_score(&out), Some(0.3));
    // A resource without the key is scored by the rules alone.
    let out = h.run(Signal::Logs, &logs(vec![(vec![], vec![log("INFO", vec![])])]));
    assert_eq!(score_of(&out["resourceLogs"][0]["resource"]["attributes"], "importance"), Some(0.3));
    h.stop().await;
    let file = StateFile::new(dir.path(), "importance_importance");
    assert!(ewma::State::decode(&file.load().unwrap().unwrap()).is_ok(), "the torn file was replaced at shutdown");
    let _ = Score::Missing;
}

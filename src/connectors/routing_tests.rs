//! The routing connector: conditions in each context, first match wins, `copy`,
//! the default pipelines, what nothing takes, and acknowledgements across routes.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::pdata::{Ack, AckOutcome, Payload};
use crate::telemetry::Telemetry;

fn config(yaml: &str) -> Result<RoutingConfig, String> {
    let node = crate::config::node::parse("c.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    parse(&node).map_err(|e| e.message)
}

struct Harness {
    router: Router,
    outputs: BTreeMap<String, mpsc::Receiver<Batch>>,
    telemetry: std::sync::Arc<Telemetry>,
}

fn harness(yaml: &str, signal: Signal, pipelines: &[&str]) -> Harness {
    let config = config(yaml).unwrap_or_else(|e| panic!("{e}"));
    let mut senders = BTreeMap::new();
    let mut outputs = BTreeMap::new();
    for name in pipelines {
        let (tx, rx) = mpsc::channel(8);
        senders.insert(PipelineId::parse(name).unwrap(), tx);
        outputs.insert(name.to_string(), rx);
    }
    let telemetry = Telemetry::new();
    let input = |p: &PipelineId| senders.get(p).cloned();
    let router = Router::new(&ComponentId::new(TYPE), &config, signal, &input, &telemetry).unwrap();
    Harness { router, outputs, telemetry }
}

impl Harness {
    /// Names of what each pipeline got: the `name` resource attribute or log body.
    fn got(&mut self, pipeline: &str) -> Vec<String> {
        let rx = self.outputs.get_mut(pipeline).unwrap();
        let mut names = Vec::new();
        while let Ok(batch) = rx.try_recv() {
            let line = crate::pdata::json::to_json_line(&batch.payload);
            let value: serde_json::Value = serde_json::from_str(&line).unwrap();
            for r in value["resourceLogs"].as_array().into_iter().flatten() {
                for l in r["scopeLogs"][0]["logRecords"].as_array().into_iter().flatten() {
                    names.push(l["body"]["stringValue"].as_str().unwrap_or_default().to_string());
                }
            }
        }
        names
    }

    fn counted(&self, route: &str) -> u64 {
        self.telemetry.route(&ComponentId::new(TYPE), route).get()
    }
}

/// Logs of resources in `regions`, two records each, named `<region>-<n>`, with
/// severity ERROR on the second.
fn logs(regions: &[&str]) -> Batch {
    let resources: Vec<_> = regions
        .iter()
        .map(|region| {
            json!({
                "resource": { "attributes": [{ "key": "cloud.region", "value": { "stringValue": region } }] },
                "scopeLogs": [{ "logRecords": [
                    { "body": { "stringValue": format!("{region}-1") }, "severityText": "INFO" },
                    { "body": { "stringValue": format!("{region}-2") }, "severityText": "ERROR" }
                ]}]
            })
        })
        .collect();
    let text = json!({ "resourceLogs": resources }).to_string();
    Batch::new(crate::pdata::json::from_json(Signal::Logs, text.as_bytes()).unwrap())
}

const SOVEREIGN: &str = r#"
default_pipelines: [logs/rest]
table:
  - condition: attributes["cloud.region"] == "eu-west-1"
    pipelines: [logs/eu]
  - statement: route() where IsMatch(attributes["cloud.region"], "^us-")
    pipelines: [logs/us]
"#;

#[tokio::test]
async fn resources_go_to_the_first_route_that_matches() {
    let mut h = harness(SOVEREIGN, Signal::Logs, &["logs/eu", "logs/us", "logs/rest"]);
    h.router.route(logs(&["eu-west-1", "us-east-1", "ap-south-1", "us-west-2"])).await.unwrap();
    assert_eq!(h.got("logs/eu"), vec!["eu-west-1-1", "eu-west-1-2"]);
    assert_eq!(h.got("logs/us"), vec!["us-east-1-1", "us-east-1-2", "us-west-2-1", "us-west-2-2"]);
    assert_eq!(h.got("logs/rest"), vec!["ap-south-1-1", "ap-south-1-2"]);
    assert_eq!(h.counted("logs/eu"), 2);
    assert_eq!(h.counted("logs/us"), 4);
    assert_eq!(h.counted("default"), 2);
}

#[tokio::test]
async fn records_copy_and_what_nothing_takes() {
    let yaml = r#"
table:
  - context: log
    condition: severity_text == "ERROR"
    pipelines: [logs/errors]
    action: copy
  - context: log
    condition: resource.attributes["cloud.region"] == "eu-west-1"
    pipelines: [logs/eu, logs/errors]
"#;
    let mut h = harness(yaml, Signal::Logs, &["logs/eu", "logs/errors"]);
    h.router.route(logs(&["eu-west-1", "us-east-1"])).await.unwrap();
    // eu-west-1-2 matched both routes; it reaches logs/errors once.
    assert_eq!(h.got("logs/errors"), vec!["eu-west-1-1", "eu-west-1-2", "us-east-1-2"]);
    assert_eq!(h.got("logs/eu"), vec!["eu-west-1-1", "eu-west-1-2"]);
    assert_eq!(h.counted("dropped"), 1, "us-east-1-1 had no route and there is no default");
}

#[tokio::test]
async fn request_metadata_routes() {
    let yaml = r#"
default_pipelines: [logs/rest]
table:
  - context: request
    condition: request["X-Tenant"] == "acme"
    pipelines: [logs/acme]
  - condition: otelcol.client.metadata["x-tenant"] == "globex"
    pipelines: [logs/globex]
"#;
    let mut h = harness(yaml, Signal::Logs, &["logs/acme", "logs/globex", "logs/rest"]);
    let tenant = |t| Metadata::from_pairs([("x-tenant", t)]);
    h.router.route(logs(&["a"]).with_metadata(tenant("acme"))).await.unwrap();
    h.router.route(logs(&["b"]).with_metadata(tenant("globex"))).await.unwrap();
    h.router.route(logs(&["c"])).await.unwrap();
    assert_eq!(h.got("logs/acme"), vec!["a-1", "a-2"]);
    assert_eq!(h.got("logs/globex"), vec!["b-1", "b-2"]);
    assert_eq!(h.got("logs/rest"), vec!["c-1", "c-2"]);
}

#[tokio::test]
async fn the_source_hears_once_every_route_has_delivered() {
    let mut h = harness(SOVEREIGN, Signal::Logs, &["logs/eu", "logs/us", "logs/rest"]);
    let (ack, waiter) = Ack::new();
    let mut batch = logs(&["eu-west-1", "us-east-1"]);
    batch.acks.push(ack);
    h.router.route(batch).await.unwrap();
    let eu = h.outputs.get_mut("logs/eu").unwrap().try_recv().unwrap();
    let us = h.outputs.get_mut("logs/us").unwrap().try_recv().unwrap();
    assert!(h.outputs.get_mut("logs/rest").unwrap().try_recv().is_err(), "nothing for the default");
    let mut waiter = Box::pin(waiter.wait());
    drop(eu);
    assert!(futures_poll(&mut waiter).is_none(), "the us part is still out");
    us.fail();
    drop(us);
    assert_eq!(futures_poll(&mut waiter).map(|r| r.outcome), Some(AckOutcome::Failed));
}

fn futures_poll<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
    let waker = std::task::Waker::noop();
    match std::pin::Pin::new(f).poll(&mut std::task::Context::from_waker(waker)) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

#[tokio::test]
async fn data_points_split_from_their_metric() {
    let yaml = r#"
default_pipelines: [metrics/standard]
table:
  - context: datapoint
    condition: attributes["tier"] == "gold"
    pipelines: [metrics/critical]
"#;
    let mut h = harness(yaml, Signal::Metrics, &["metrics/critical", "metrics/standard"]);
    let text = json!({ "resourceMetrics": [{ "scopeMetrics": [{ "metrics": [{ "name": "m", "gauge": { "dataPoints": [
        { "asInt": "1", "attributes": [{ "key": "tier", "value": { "stringValue": "gold" } }] },
        { "asInt": "2" }, { "asInt": "3" }
    ]}}]}]}]})
    .to_string();
    let payload = crate::pdata::json::from_json(Signal::Metrics, text.as_bytes()).unwrap();
    h.router.route(Batch::new(payload)).await.unwrap();
    let count = |rx: &mut mpsc::Receiver<Batch>| rx.try_recv().map(|b| b.payload.item_count()).unwrap_or(0);
    assert_eq!(count(h.outputs.get_mut("metrics/critical").unwrap()), 1);
    assert_eq!(count(h.outputs.get_mut("metrics/standard").unwrap()), 2);
}

#[test]
fn config_errors() {
    let err = |yaml: &str| config(yaml).unwrap_err();
    assert!(
        err("match_once: true\ntable: [{ condition: 'true', pipelines: [logs/a] }]").contains("use `action: copy`")
    );
    assert!(err("table: []").contains("the table is empty"));
    assert!(err("table: [{ condition: 'true', pipelines: [] }]").contains("no pipelines"));
    assert!(err("table: [{ statement: 'drop()', pipelines: [logs/a] }]").contains("route() where"));
    assert!(
        err("table: [{ context: request, condition: 'request[\"a\"] != \"b\"', pipelines: [logs/a] }]")
            .contains("request context takes one comparison")
    );
    assert!(
        err("table: [{ condition: 'attributes[\"a\"] ==', pipelines: [logs/a] }]").contains("invalid OTTL condition")
    );
    assert!(err("table: [{ condition: 'true', pipelines: [logs/a], action: moved }]").contains("moved"));
    assert!(config("table: [{ statement: 'route()', pipelines: [logs/a] }]").is_ok());
    let _ = Payload::Logs(Default::default());
}

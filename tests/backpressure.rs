//! Backpressure and no loss: with the downstream down and a small queue, the receiver
//! refuses at an exact bound with a retryable status; once the downstream returns,
//! everything that was accepted arrives exactly once. With `block_on_overflow: true`
//! the full queue holds the pipeline, so the bound covers every stage.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use ocelot::pipeline::PIPELINE_INPUT_CAPACITY;

const QUEUE_SIZE: usize = 2;
const CONSUMERS: usize = 1;

#[test]
fn refuses_at_the_bound_then_delivers_everything_exactly_once() {
    let downstream_port = free_port();
    let upstream = Agent::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: 127.0.0.1:0
exporters:
  otlphttp:
    endpoint: http://127.0.0.1:{downstream_port}
    compression: none
    timeout: 2s
    sending_queue:
      queue_size: {QUEUE_SIZE}
      num_consumers: {CONSUMERS}
      block_on_overflow: true
    retry_on_failure:
      initial_interval: 100ms
      max_interval: 300ms
      max_elapsed_time: 0
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [otlphttp]
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#
    ));
    let http = upstream.http("otlp");

    // Send one record per request until the receiver refuses three times in a row,
    // 100 ms apart, so every stage has filled up.
    let mut accepted = Vec::new();
    let mut refusals_in_a_row = 0;
    let mut next = 0;
    while refusals_in_a_row < 3 {
        let body = format!("record-{next}");
        let (status, headers, _) =
            http_post(http, "/v1/logs", "application/json", &logs_json(std::slice::from_ref(&body)));
        match status {
            200 => {
                accepted.push(body);
                next += 1;
                refusals_in_a_row = 0;
            }
            503 => {
                assert_eq!(headers.get("retry-after").map(String::as_str), Some("1"));
                refusals_in_a_row += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            other => panic!("unexpected status {other}"),
        }
        assert!(accepted.len() < 1000, "the receiver never refused");
    }
    // In flight: one export per consumer, the queue, the one batch the pipeline holds
    // while it waits for queue room, and the pipeline's input channel.
    assert_eq!(accepted.len(), CONSUMERS + QUEUE_SIZE + 1 + PIPELINE_INPUT_CAPACITY);

    // gRPC clients are refused the same way, with UNAVAILABLE.
    let grpc = upstream.grpc("otlp");
    let code = tokio::runtime::Runtime::new().unwrap().block_on(async move {
        let mut client =
            opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient::connect(format!(
                "http://{grpc}"
            ))
            .await
            .unwrap();
        let request: opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest =
            serde_json::from_slice(&logs_json(&["refused".to_string()])).unwrap();
        client.export(request).await.unwrap_err().code()
    });
    assert_eq!(code, tonic::Code::Unavailable);

    assert!(upstream.metric("otelcol_receiver_refused_log_records_total", "") >= 4.0);
    assert_eq!(upstream.metric("otelcol_exporter_queue_capacity", "exporter=\"otlphttp\""), QUEUE_SIZE as f64);
    wait_until(Duration::from_secs(5), "queue size gauge to show a full queue", || {
        upstream.metric("otelcol_exporter_queue_size", "exporter=\"otlphttp\"") == QUEUE_SIZE as f64
    });

    // The downstream comes up: everything accepted arrives, exactly once.
    let downstream = Agent::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{downstream_port}
exporters:
  file:
    path: "{{dir}}/out.jsonl"
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [file]
  telemetry:
    metrics:
      level: none
"#
    ));
    let out = downstream.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(30), "every accepted record downstream", || {
        log_bodies(&read_json_lines(&out)).len() >= accepted.len()
    });
    // Give a duplicate time to show up if there were one.
    std::thread::sleep(Duration::from_millis(500));
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for body in log_bodies(&read_json_lines(&out)) {
        *counts.entry(body).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = accepted.iter().map(|b| (b.clone(), 1)).collect();
    assert_eq!(counts, expected);
    upstream.wait_metric("otelcol_exporter_sent_log_records_total", "exporter=\"otlphttp\"", accepted.len() as f64);
    assert_eq!(upstream.metric("otelcol_exporter_send_failed_log_records_total", ""), 0.0);

    assert!(upstream.stop().success());
    assert!(downstream.stop().success());
}

//! What reaches a client and what one exporter's trouble does to the others: with no
//! sending queue the OTLP receiver answers with the export's outcome (upstream's
//! gateway pattern); with queues, a dead exporter refuses its own copies and the
//! others keep flowing; an oversized request is refused once, not retried.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::backend::{Backend, Reply};
use common::*;

/// One otlp receiver per backend (`otlp/<name>`), each in its own pipeline to an
/// otlphttp exporter with no queue; `extra` adds exporters to the `b` pipeline.
fn no_queue_config(backends: &[(&str, &Backend)], extra_exporters: &str, extra_in_b: &str) -> String {
    let mut receivers = String::new();
    let mut exporters = String::new();
    let mut pipelines = String::new();
    for (name, backend) in backends {
        receivers.push_str(&format!(
            "  otlp/{name}:\n    protocols:\n      grpc: {{ endpoint: 127.0.0.1:0 }}\n      http: {{ endpoint: 127.0.0.1:0 }}\n"
        ));
        exporters.push_str(&format!(
            "  otlphttp/{name}:\n    endpoint: {}\n    compression: none\n    sending_queue: {{ enabled: false }}\n    retry_on_failure: {{ enabled: false }}\n",
            backend.endpoint()
        ));
        let more = if *name == "b" { extra_in_b } else { "" };
        pipelines.push_str(&format!(
            "    logs/{name}:\n      receivers: [otlp/{name}]\n      exporters: [otlphttp/{name}{more}]\n"
        ));
    }
    format!(
        "receivers:\n{receivers}exporters:\n{exporters}{extra_exporters}service:\n  pipelines:\n{pipelines}  telemetry:\n    metrics:\n      address: 127.0.0.1:0\n"
    )
}

fn post_logs(agent: &Agent, receiver: &str, body: &str) -> (u16, Headers, serde_json::Value) {
    let (status, headers, text) =
        http_post(agent.http(receiver), "/v1/logs", "application/json", &logs_json(&[body.to_string()]));
    let json = serde_json::from_slice(&text).unwrap_or(serde_json::Value::Null);
    (status, headers, json)
}

#[test]
fn with_no_queue_the_client_hears_the_exports_outcome() {
    let refusing = Backend::start(|_| Reply::Status(400));
    let down = Backend::start(|_| Reply::Status(503));
    let fine = Backend::start(|_| Reply::Status(200));
    let config = no_queue_config(
        &[("a", &refusing), ("b", &down), ("c", &fine)],
        "  file:\n    path: \"{dir}/out.jsonl\"\n",
        "",
    );
    let agent = Agent::start(&config);

    // The backend's 400 passes through, over HTTP and over gRPC.
    for i in 0..3 {
        let (status, _, body) = post_logs(&agent, "otlp/a", &format!("refused {i}"));
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["code"], 3, "INVALID_ARGUMENT: {body}");
    }
    let code = grpc_export(agent.grpc("otlp/a"));
    assert_eq!(code, Some(tonic::Code::InvalidArgument));

    // Nothing kept it and a retry may help: 503 with Retry-After, UNAVAILABLE.
    let (status, headers, _) = post_logs(&agent, "otlp/b", "down");
    assert_eq!(status, 503);
    assert_eq!(headers.get("retry-after").map(String::as_str), Some("1"));
    assert_eq!(grpc_export(agent.grpc("otlp/b")), Some(tonic::Code::Unavailable));

    let (status, _, _) = post_logs(&agent, "otlp/c", "fine");
    assert_eq!(status, 200);
    assert_eq!(grpc_export(agent.grpc("otlp/c")), None);
    assert_eq!(fine.accepted(), vec!["fine".to_string(), "grpc".to_string()]);
    assert_eq!(agent.metric("otelcol_receiver_refused_log_records_total", "receiver=\"otlp/a\""), 4.0);
    assert!(agent.stop().success());

    // With a second exporter that kept the data, a retry would duplicate it there: the
    // failure is reported as permanent (500), not as 503.
    let config = no_queue_config(&[("b", &down)], "  file:\n    path: \"{dir}/out.jsonl\"\n", ", file");
    let agent = Agent::start(&config);
    let (status, _, body) = post_logs(&agent, "otlp/b", "kept once");
    assert_eq!(status, 500, "{body}");
    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(5), "the file exporter's copy", || log_bodies(&read_json_lines(&out)).len() == 1);
    assert!(agent.stop().success());
}

/// One gRPC logs export with the body "grpc"; the error code, if any.
fn grpc_export(addr: std::net::SocketAddr) -> Option<tonic::Code> {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
    let request: ExportLogsServiceRequest = serde_json::from_slice(&logs_json(&["grpc".to_string()])).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async move {
        let mut client = LogsServiceClient::connect(format!("http://{addr}")).await.unwrap();
        client.export(request).await.err().map(|status| status.code())
    })
}

#[test]
fn a_dead_exporter_refuses_its_copies_and_the_others_keep_flowing() {
    // Takes every request and never answers.
    let dead = Backend::start(|_| Reply::Hang);
    let config = format!(
        r#"
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:0 }}
exporters:
  file:
    path: "{{dir}}/out.jsonl"
  otlphttp:
    endpoint: {}
    compression: none
    timeout: 0s
    sending_queue: {{ queue_size: 5, num_consumers: 1 }}
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [otlphttp, file]
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#,
        dead.endpoint()
    );
    let agent = Agent::start_with_args(&config, &["--shutdown-timeout", "1s"]);
    for i in 0..60 {
        let (status, _, body) = post_logs(&agent, "otlp", &format!("record {i}"));
        assert_eq!(status, 200, "request {i}: {body}");
    }
    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(10), "60 records in the file", || log_bodies(&read_json_lines(&out)).len() == 60);
    // One export hangs, five wait in the queue, the rest were refused and counted.
    let refused = agent.metric("otelcol_exporter_enqueue_failed_log_records_total", "exporter=\"otlphttp\"");
    assert!((54.0..=55.0).contains(&refused), "{refused}");
    assert_eq!(agent.metric("otelcol_exporter_enqueue_failed_log_records_total", "exporter=\"file\""), 0.0);
    assert_eq!(agent.count_logs("Sending queue is full"), 1, "logged once, not per batch");
    assert!(agent.stop().success());
}

#[test]
fn an_oversized_request_is_refused_once_and_not_retried() {
    let downstream = Agent::start(
        r#"
receivers:
  otlp:
    protocols:
      grpc: { endpoint: 127.0.0.1:0, max_recv_msg_size_mib: 1 }
exporters:
  file:
    path: "{dir}/out.jsonl"
service:
  pipelines:
    logs: { receivers: [otlp], exporters: [file] }
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#,
    );
    let upstream = Agent::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:0 }}
exporters:
  otlp:
    endpoint: {}
    tls: {{ insecure: true }}
    compression: none
    retry_on_failure: {{ initial_interval: 50ms }}
service:
  pipelines:
    logs: {{ receivers: [otlp], exporters: [otlp] }}
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#,
        downstream.grpc("otlp")
    ));
    let (status, _, _) = post_logs(&upstream, "otlp", &"x".repeat(2 << 20));
    assert_eq!(status, 200);
    upstream.wait_metric("otelcol_exporter_send_failed_log_records_total", "", 1.0);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(upstream.count_logs("retrying"), 0, "{}", upstream.log_text());
    assert_eq!(upstream.count_logs("the error is permanent"), 1);
    assert!(upstream.stop().success());
    assert!(downstream.stop().success());
}

#[test]
fn a_full_queue_that_kept_nothing_is_a_503_not_a_200() {
    // One exporter, hung: past one export and one queued batch, nothing can take more.
    let dead = Backend::start(|_| Reply::Hang);
    let config = format!(
        r#"
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:0 }}
exporters:
  otlphttp:
    endpoint: {}
    compression: none
    timeout: 0s
    sending_queue: {{ queue_size: 1, num_consumers: 1 }}
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [otlphttp]
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#,
        dead.endpoint()
    );
    let agent = Agent::start_with_args(&config, &["--shutdown-timeout", "1s"]);
    let statuses: Vec<u16> = (0..6)
        .map(|i| {
            let status = post_logs(&agent, "otlp", &format!("record {i}")).0;
            // Let the exporter take the first batch before the next arrives.
            std::thread::sleep(Duration::from_millis(100));
            status
        })
        .collect();
    assert_eq!(&statuses[..2], [200, 200], "{statuses:?}");
    assert!(statuses[2..].iter().all(|s| *s == 503), "{statuses:?}");
    assert_eq!(agent.metric("otelcol_exporter_enqueue_failed_log_records_total", ""), 4.0);
    assert!(agent.stop().success());
}

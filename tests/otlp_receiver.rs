//! The OTLP receiver over real sockets: good requests arrive, bad ones get their
//! status and nothing else is disturbed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use ocelot::pdata::grpc::ClientCodec;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use prost::Message;

const CONFIG: &str = r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        max_recv_msg_size_mib: 1
      http:
        endpoint: 127.0.0.1:0
        max_request_body_size: 1MiB
exporters:
  file:
    path: "{dir}/out.jsonl"
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [file]
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#;

fn logs_request(bodies: &[&str]) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: bodies
                    .iter()
                    .map(|b| LogRecord {
                        body: Some(AnyValue { value: Some(any_value::Value::StringValue(b.to_string())) }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// google.rpc.Status, as the receiver writes it in error bodies.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn http_bad_input_gets_its_error_and_the_receiver_keeps_serving() {
    let agent = Agent::start(CONFIG);
    let http = agent.http("otlp");
    let out = agent.dir.path().join("out.jsonl");

    // Truncated protobuf: 400 with a google.rpc.Status body (INVALID_ARGUMENT).
    let mut truncated = logs_request(&["a fairly long body so truncation cuts inside a field"]).encode_to_vec();
    truncated.truncate(truncated.len() - 7);
    let (status, headers, body) = http_post(http, "/v1/logs", "application/x-protobuf", &truncated);
    assert_eq!(status, 400);
    assert_eq!(headers["content-type"], "application/x-protobuf");
    let rpc = RpcStatus::decode(&body[..]).unwrap();
    assert_eq!(rpc.code, 3);
    assert!(rpc.message.contains("malformed logs request"), "{}", rpc.message);

    // Wrong content type: 415.
    let (status, _, _) = http_post(http, "/v1/logs", "text/plain", b"hello");
    assert_eq!(status, 415);

    // Invalid JSON: 400 with a JSON status.
    let (status, _, body) = http_post(http, "/v1/logs", "application/json", b"{\"resourceLogs\": [");
    assert_eq!(status, 400);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["code"], 3);

    // A gzip bomb: 16 MiB of zeros in a few KiB, over the 1 MiB limit once inflated.
    let bomb = gzip(&vec![0u8; 16 << 20]);
    assert!(bomb.len() < 64 << 10);
    let (status, _, _) = http_request(
        http,
        "POST",
        "/v1/logs",
        &[("Content-Type", "application/x-protobuf"), ("Content-Encoding", "gzip")],
        &bomb,
    );
    assert_eq!(status, 413);

    // A body declared larger than the limit: 413 before it is read.
    let (status, _, _) = http_post(http, "/v1/logs", "application/x-protobuf", &vec![0u8; (1 << 20) + 1]);
    assert_eq!(status, 413);

    // Corrupt gzip: 400. Unknown encoding: 400.
    let (status, _, _) = http_request(
        http,
        "POST",
        "/v1/logs",
        &[("Content-Type", "application/x-protobuf"), ("Content-Encoding", "gzip")],
        b"not gzip at all",
    );
    assert_eq!(status, 400);
    let (status, _, _) = http_request(
        http,
        "POST",
        "/v1/logs",
        &[("Content-Type", "application/x-protobuf"), ("Content-Encoding", "br")],
        b"x",
    );
    assert_eq!(status, 400);

    // Wrong method and path.
    assert_eq!(http_get(http, "/v1/logs").0, 405);
    assert_eq!(http_post(http, "/v1/nothing", "application/json", b"{}").0, 404);
    // A signal with no pipeline here.
    assert_eq!(http_post(http, "/v1/traces", "application/json", b"{}").0, 404);

    // Good requests still work: protobuf, gzip protobuf, zstd JSON.
    let (status, headers, body) =
        http_post(http, "/v1/logs", "application/x-protobuf", &logs_request(&["one", "two"]).encode_to_vec());
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/x-protobuf");
    assert!(ExportLogsServiceResponse::decode(&body[..]).unwrap().partial_success.is_none());
    let (status, _, _) = http_request(
        http,
        "POST",
        "/v1/logs",
        &[("Content-Type", "application/x-protobuf"), ("Content-Encoding", "gzip")],
        &gzip(&logs_request(&["three"]).encode_to_vec()),
    );
    assert_eq!(status, 200);
    let zstd_json = zstd::bulk::compress(&logs_json(&["four".to_string()]), 3).unwrap();
    let (status, _, body) = http_request(
        http,
        "POST",
        "/v1/logs",
        &[("Content-Type", "application/json"), ("Content-Encoding", "zstd")],
        &zstd_json,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body, b"{}");

    wait_until(Duration::from_secs(10), "four records in the file", || log_bodies(&read_json_lines(&out)).len() == 4);
    let mut bodies = log_bodies(&read_json_lines(&out));
    bodies.sort();
    assert_eq!(bodies, vec!["four", "one", "three", "two"]);
    assert_eq!(agent.metric("otelcol_receiver_accepted_log_records_total", "transport=\"http\""), 4.0);
    assert!(agent.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_bad_input_is_invalid_argument_and_the_receiver_keeps_serving() {
    let agent = tokio::task::spawn_blocking(|| Agent::start(CONFIG)).await.unwrap();
    let url = format!("http://{}", agent.grpc("otlp"));
    let channel = tonic::transport::Endpoint::from_shared(url).unwrap().connect().await.unwrap();

    let raw = |bytes: Vec<u8>| {
        let channel = channel.clone();
        async move {
            let mut grpc = tonic::client::Grpc::new(channel);
            grpc.ready().await.unwrap();
            grpc.unary(
                tonic::Request::new(Bytes::from(bytes)),
                http::uri::PathAndQuery::from_static("/opentelemetry.proto.collector.logs.v1.LogsService/Export"),
                ClientCodec::<ExportLogsServiceResponse>::default(),
            )
            .await
        }
    };

    let mut truncated = logs_request(&["a body long enough to be cut in the middle"]).encode_to_vec();
    truncated.truncate(truncated.len() - 5);
    let status = raw(truncated).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

    // Over max_recv_msg_size_mib (1 MiB): refused with RESOURCE_EXHAUSTED and no
    // retry info, as upstream, which OTLP clients do not retry (OUT_OF_RANGE they do).
    let big = logs_request(&[&"x".repeat(1 << 20)]).encode_to_vec();
    let status = raw(big).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert_eq!(ocelot::pdata::grpc::retry_delay(&status), None);

    // Traces are in no pipeline of this receiver.
    let mut traces = opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::new(
        channel.clone(),
    );
    let status = traces
        .export(opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);

    let mut client = LogsServiceClient::new(channel.clone()).send_compressed(tonic::codec::CompressionEncoding::Gzip);
    client.export(logs_request(&["ok-1", "ok-2", "ok-3"])).await.unwrap();

    let out = agent.dir.path().join("out.jsonl");
    let agent = tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(10), "three records", || log_bodies(&read_json_lines(&out)).len() == 3);
        agent
    })
    .await
    .unwrap();
    let accepted = agent.metric("otelcol_receiver_accepted_log_records_total", "transport=\"grpc\"");
    assert_eq!(accepted, 3.0);
    assert!(tokio::task::spawn_blocking(move || agent.stop()).await.unwrap().success());
}

#[test]
fn big_requests_are_decoded_off_the_runtime_and_health_stays_quick() {
    let agent = Agent::start(
        r#"
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
        max_request_body_size: 64MiB
extensions:
  health_check:
    endpoint: 127.0.0.1:0
exporters:
  debug:
    verbosity: basic
service:
  extensions: [health_check]
  pipelines:
    logs: { receivers: [otlp], exporters: [debug] }
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#,
    );
    let http = agent.http("otlp");
    let health = agent.health_addr("health_check");
    // About 16 MiB of JSON: 40,000 records of 400 bytes.
    let bodies: Vec<String> = (0..40_000).map(|i| format!("{i:06} {}", "y".repeat(400))).collect();
    let body = std::sync::Arc::new(logs_json(&bodies));
    assert!(body.len() > 16 << 20);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let senders: Vec<_> = (0..2)
        .map(|_| {
            let (body, stop) = (body.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut sent = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (status, _, _) = http_post(http, "/v1/logs", "application/json", &body);
                    assert_eq!(status, 200);
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut latencies: Vec<Duration> = (0..40)
        .map(|_| {
            let started = std::time::Instant::now();
            assert_eq!(http_get(health, "/").0, 200);
            let took = started.elapsed();
            std::thread::sleep(Duration::from_millis(25));
            took
        })
        .collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent: usize = senders.into_iter().map(|s| s.join().unwrap()).sum();
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    eprintln!("health median {median:?} while {sent} big requests were decoded");
    assert!(sent >= 2, "the big requests did not go through");
    // Decoded on the runtime's workers, the median was ~150 ms here.
    assert!(median < Duration::from_millis(40), "health check median {median:?}");
    assert!(agent.stop().success());
}

#[test]
fn unfinished_headers_and_idle_connections_are_closed_and_admin_endpoints_stay_up() {
    use std::io::Read;
    let agent = Agent::start(
        r#"
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
        read_header_timeout: 1s
        idle_timeout: 1s
        max_connections: 20
extensions:
  health_check:
    endpoint: 127.0.0.1:0
exporters:
  debug:
service:
  extensions: [health_check]
  pipelines:
    logs: { receivers: [otlp], exporters: [debug] }
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#,
    );
    // As an SRE's `ulimit -n 64` would leave it.
    let status =
        std::process::Command::new("prlimit").arg(format!("--pid={}", agent.pid())).arg("--nofile=64:64").status();
    assert!(status.unwrap().success());
    let http = agent.http("otlp");
    // 60 clients that never finish their headers.
    let mut stalled: Vec<std::net::TcpStream> = (0..60)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(http).unwrap();
            stream.write_all(b"POST /v1/logs HTTP/1.1\r\nHost: x\r\n").unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // The admin endpoints answer while they are held.
    assert_eq!(http_get(agent.health_addr("health_check"), "/").0, 200);
    assert_eq!(http_get(agent.metrics_addr(), "/metrics").0, 200);
    // Each is closed by the server, 20 at a time, about a second after it was taken.
    for stream in &mut stalled {
        stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(stream.read(&mut buf).unwrap(), 0, "the server did not close a stalled connection");
    }
    // A keep-alive connection idle past idle_timeout is closed too.
    let mut idle = std::net::TcpStream::connect(http).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = logs_json(&["kept alive".to_string()]);
    let head = format!(
        "POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    idle.write_all(head.as_bytes()).unwrap();
    idle.write_all(&body).unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = idle.read(&mut buf).unwrap();
        assert!(n > 0);
        response.extend_from_slice(&buf[..n]);
    }
    assert!(response.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&response));
    let started = std::time::Instant::now();
    loop {
        match idle.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) => panic!("idle connection not closed: {e}"),
        }
    }
    assert!(started.elapsed() >= Duration::from_millis(500), "closed too early");
    let (status, _, _) = http_post(http, "/v1/logs", "application/json", &logs_json(&["after".to_string()]));
    assert_eq!(status, 200);
    assert!(agent.stop().success());
}

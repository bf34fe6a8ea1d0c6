//! Authenticator extensions on exporters: `bearertokenauth` (a token file re-read when
//! it changes), `basicauth` and `headers_setter`, seen by an HTTP server that records
//! what each request carried; a config naming a missing or wrong extension is refused.
//! On the otlp receiver: `basicauth`'s htpasswd and `bearertokenauth` check clients
//! over HTTP and gRPC, and `include_metadata` carries request headers to
//! `from_context`, a `batch` processor's `metadata_keys` and headers_setter.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// (path, lower-cased headers) of each request seen.
type Seen = Arc<Mutex<Vec<(String, Headers)>>>;

/// Answers every request 200 and keeps what each carried.
fn recording_server() -> (u16, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let port = serve_connections(move |stream| {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let path = line.split_whitespace().nth(1).unwrap_or_default().to_string();
            let mut headers = Headers::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 {
                    return;
                }
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
            let length: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            sink.lock().unwrap().push((path, headers));
            if writer
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
                .is_err()
            {
                return;
            }
        }
    });
    (port, seen)
}

fn config(port: u16, token_file: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:0 }}
extensions:
  bearertokenauth:
    filename: {token_file}
  basicauth/client:
    client_auth:
      username: ann
      password: s3cret
  headers_setter:
    headers:
      - key: X-Scope-OrgID
        value: tenant-a
      - key: X-Drop
        action: delete
exporters:
  otlp_http/bearer:
    endpoint: http://127.0.0.1:{port}/bearer
    auth: {{ authenticator: bearertokenauth }}
  otlp_http/basic:
    endpoint: http://127.0.0.1:{port}/basic
    auth: {{ authenticator: basicauth/client }}
  otlp_http/headers:
    endpoint: http://127.0.0.1:{port}/headers
    headers: {{ X-Drop: "yes", X-Keep: "kept" }}
    auth: {{ authenticator: headers_setter }}
service:
  extensions: [bearertokenauth, basicauth/client, headers_setter]
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [otlp_http/bearer, otlp_http/basic, otlp_http/headers]
  telemetry:
    metrics:
      level: none
"#
    )
}

#[test]
fn exporters_carry_their_authenticators_headers() {
    let (port, seen) = recording_server();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "first-token\n").unwrap();
    let agent = Agent::start(&config(port, token.to_str().unwrap()));
    let send = |body: &str| {
        let status = http_post(agent.http("otlp"), "/v1/logs", "application/json", &logs_json(&[body.to_string()])).0;
        assert_eq!(status, 200);
    };
    let requests = |prefix: &str| -> Vec<Headers> {
        seen.lock().unwrap().iter().filter(|(p, _)| p.starts_with(prefix)).map(|(_, h)| h.clone()).collect()
    };
    send("one");
    wait_until(Duration::from_secs(10), "three exports", || seen.lock().unwrap().len() == 3);
    assert_eq!(requests("/bearer")[0]["authorization"], "Bearer first-token");
    // "ann:s3cret" in base64.
    assert_eq!(requests("/basic")[0]["authorization"], "Basic YW5uOnMzY3JldA==");
    let headers = &requests("/headers")[0];
    assert_eq!(headers["x-scope-orgid"], "tenant-a");
    assert_eq!(headers["x-keep"], "kept");
    assert!(!headers.contains_key("x-drop"), "deleted by headers_setter: {headers:?}");

    // A rotated token file is read again (a new modification time).
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&token, "second-token").unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(2);
    std::fs::File::options().write(true).open(&token).unwrap().set_modified(later).unwrap();
    send("two");
    wait_until(Duration::from_secs(10), "three more exports", || seen.lock().unwrap().len() == 6);
    assert_eq!(requests("/bearer")[1]["authorization"], "Bearer second-token");
    assert!(agent.stop().success());
}

#[test]
fn an_authenticator_must_exist_be_one_and_be_enabled() {
    let (port, _) = recording_server();
    let base = config(port, "/nonexistent/token");
    for (edit, message) in [
        (
            base.replace("authenticator: basicauth/client", "authenticator: basicauth/other"),
            "`basicauth/other`, which is not defined",
        ),
        (
            base.replace(
                "extensions: [bearertokenauth, basicauth/client, headers_setter]",
                "extensions: [bearertokenauth, headers_setter]",
            ),
            "`basicauth/client`, which is not listed in service.extensions",
        ),
        (
            base.replace(
                "  basicauth/client:\n    client_auth:\n      username: ann\n      password: s3cret\n",
                "  basicauth/client:\n    htpasswd:\n      inline: \"ann:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\"\n",
            ),
            "an exporter needs basicauth's client_auth",
        ),
        (
            base.replace(
                "  basicauth/client:\n    client_auth:\n      username: ann\n      password: s3cret\n",
                "  basicauth/client:\n    htpasswd:\n      inline: \"ann:$6$salt$hash\"\n",
            ),
            "htpasswd.inline: line 1: unsupported hash",
        ),
        (
            base.replace(
                "http: { endpoint: 127.0.0.1:0 }",
                "http: { endpoint: 127.0.0.1:0, auth: { authenticator: headers_setter } }",
            ),
            "headers_setter only sets headers on exports",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, &edit).unwrap();
        let output =
            std::process::Command::new(BIN).args(["validate", "--config", path.to_str().unwrap()]).output().unwrap();
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{message} not in {stderr}");
    }
    // A token file that cannot be read fails the start, naming it.
    let error = Agent::try_start(&base).err().expect("must not start");
    assert!(error.contains("/nonexistent/token"), "{error}");
}

fn receiver_config(port: u16, htpasswd_file: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:0, include_metadata: true, auth: {{ authenticator: basicauth/server }} }}
      http: {{ endpoint: 127.0.0.1:0, include_metadata: true, auth: {{ authenticator: basicauth/server }} }}
  otlp/bearer:
    protocols:
      http: {{ endpoint: 127.0.0.1:0, auth: {{ authenticator: bearertokenauth/server }} }}
extensions:
  basicauth/server:
    htpasswd:
      file: {htpasswd_file}
      inline: |
        ann:$apr1$abcdefgh$FBwExRW4dCc8aL.OvjpIE1
  bearertokenauth/server:
    tokens: [first, second]
  headers_setter:
    headers:
      - key: X-Scope-OrgID
        from_context: x-tenant
        default_value: nobody
processors:
  attributes:
    actions:
      - {{ key: tenant, from_context: metadata.x-tenant, action: upsert }}
      - {{ key: user, from_context: auth.username, action: upsert }}
  batch:
    timeout: 100ms
    metadata_keys: [X-Tenant]
exporters:
  file:
    path: "{{dir}}/out.jsonl"
  otlp_http:
    endpoint: http://127.0.0.1:{port}/tenant
    auth: {{ authenticator: headers_setter }}
service:
  extensions: [basicauth/server, bearertokenauth/server, headers_setter]
  pipelines:
    logs:
      receivers: [otlp, otlp/bearer]
      processors: [attributes, batch]
      exporters: [file, otlp_http]
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#
    )
}

fn basic(credentials: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials))
}

/// One gRPC logs export with this body and these metadata; the error code, if any.
fn grpc_export(addr: std::net::SocketAddr, body: &str, metadata: &[(&'static str, String)]) -> Option<tonic::Code> {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
    let request: ExportLogsServiceRequest = serde_json::from_slice(&logs_json(&[body.to_string()])).unwrap();
    let mut request = tonic::Request::new(request);
    for (key, value) in metadata {
        request.metadata_mut().insert(*key, value.parse().unwrap());
    }
    tokio::runtime::Runtime::new().unwrap().block_on(async move {
        let mut client = LogsServiceClient::connect(format!("http://{addr}")).await.unwrap();
        client.export(request).await.err().map(|status| status.code())
    })
}

#[test]
fn receivers_check_clients_and_keep_their_metadata() {
    let (port, seen) = recording_server();
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    // `htpasswd -s`: bob's password is "secret".
    std::fs::write(&htpasswd, "bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n").unwrap();
    let agent = Agent::start(&receiver_config(port, htpasswd.to_str().unwrap()));
    let post = |receiver: &str, body: &str, headers: &[(&str, &str)]| {
        let mut all = vec![("Content-Type", "application/json")];
        all.extend_from_slice(headers);
        http_request(agent.http(receiver), "POST", "/v1/logs", &all, &logs_json(&[body.to_string()])).0
    };
    let ann = basic("ann:password");
    let bob = basic("bob:secret");
    assert_eq!(post("otlp", "no credentials", &[]), 401);
    assert_eq!(post("otlp", "wrong password", &[("Authorization", &basic("ann:wrong"))]), 401);
    assert_eq!(post("otlp", "unknown user", &[("Authorization", &basic("eve:password"))]), 401);
    assert_eq!(post("otlp", "ann-acme", &[("Authorization", &ann), ("X-Tenant", "acme")]), 200);
    assert_eq!(post("otlp", "bob-beta", &[("Authorization", &bob), ("X-Tenant", "beta")]), 200);
    assert_eq!(post("otlp/bearer", "bearer-second", &[("Authorization", "Bearer second")]), 200);
    assert_eq!(post("otlp/bearer", "bearer-wrong", &[("Authorization", "Bearer third")]), 401);
    let grpc = agent.grpc("otlp");
    assert_eq!(grpc_export(grpc, "grpc-none", &[]), Some(tonic::Code::Unauthenticated));
    assert_eq!(grpc_export(grpc, "grpc-ann", &[("authorization", ann.clone()), ("x-tenant", "acme".into())]), None);

    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(10), "four records in the file", || log_bodies(&read_json_lines(&out)).len() == 4);
    let mut records = BTreeMap::new();
    for line in read_json_lines(&out) {
        for rl in line["resourceLogs"].as_array().unwrap() {
            for record in rl["scopeLogs"][0]["logRecords"].as_array().unwrap() {
                let attribute = |key: &str| {
                    let attributes = record["attributes"].as_array().into_iter().flatten();
                    let found = attributes.into_iter().find(|kv| kv["key"] == key);
                    found.map(|kv| kv["value"]["stringValue"].as_str().unwrap().to_string())
                };
                let body = record["body"]["stringValue"].as_str().unwrap().to_string();
                records.insert(body, (attribute("tenant"), attribute("user")));
            }
        }
    }
    let some = |a: &str, b: &str| (Some(a.to_string()), Some(b.to_string()));
    assert_eq!(records["ann-acme"], some("acme", "ann"));
    assert_eq!(records["bob-beta"], some("beta", "bob"));
    assert_eq!(records["grpc-ann"], some("acme", "ann"));
    assert_eq!(records["bearer-second"], (None, None), "no include_metadata on otlp/bearer");
    assert_eq!(records.len(), 4, "{records:?}");

    // Batched by tenant, each export carries its tenant from the request metadata.
    wait_until(Duration::from_secs(10), "the exports", || {
        let seen = seen.lock().unwrap();
        let tenants: std::collections::BTreeSet<_> = seen.iter().map(|(_, h)| h["x-scope-orgid"].clone()).collect();
        tenants.len() == 3
    });
    let tenants: std::collections::BTreeSet<_> =
        seen.lock().unwrap().iter().map(|(_, h)| h["x-scope-orgid"].clone()).collect();
    assert_eq!(tenants, ["acme", "beta", "nobody"].into_iter().map(String::from).collect());
    let unauthenticated = |receiver: &str, transport: &str| {
        agent.metric(
            "ocelot_receiver_unauthenticated_requests_total",
            &format!("receiver=\"{receiver}\",transport=\"{transport}\""),
        )
    };
    assert_eq!(unauthenticated("otlp", "http"), 3.0);
    assert_eq!(unauthenticated("otlp", "grpc"), 1.0);
    assert_eq!(unauthenticated("otlp/bearer", "http"), 1.0);
    assert!(agent.stop().success());
}

//! Authenticator extensions on exporters: `bearertokenauth` (a token file re-read when
//! it changes), `basicauth` and `headers_setter`, seen by an HTTP server that records
//! what each request carried; a config naming a missing or wrong extension is refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

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
                "  basicauth/client:\n    htpasswd:\n      inline: ann:x\n",
            ),
            "htpasswd",
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

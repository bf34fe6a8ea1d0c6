//! An OTLP/HTTP backend for the tests: decodes each protobuf logs request, answers
//! what the test scripts for the n-th request, and keeps the bodies of the requests it
//! answered 200. It can also hang (read, never answer) or answer slowly.

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;

/// What the backend does with one request.
#[derive(Clone, Copy, Debug)]
pub enum Reply {
    Status(u16),
    /// Answer `status` after a while.
    After(Duration, u16),
    /// Read the request, never answer.
    Hang,
}

pub struct Backend {
    pub port: u16,
    /// Bodies of the records in requests answered 200, in order.
    pub accepted: Arc<Mutex<Vec<String>>>,
    /// Requests seen.
    pub requests: Arc<Mutex<usize>>,
}

impl Backend {
    /// `reply(n)` decides the n-th request (0-based).
    pub fn start(reply: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Backend {
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(0usize));
        let (a, n) = (accepted.clone(), requests.clone());
        let port = super::serve_connections(move |stream| serve(stream, &a, &n, &reply));
        Backend { port, accepted, requests }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn accepted(&self) -> Vec<String> {
        self.accepted.lock().unwrap().clone()
    }

    pub fn requests(&self) -> usize {
        *self.requests.lock().unwrap()
    }
}

fn serve(
    stream: std::net::TcpStream,
    accepted: &Mutex<Vec<String>>,
    requests: &Mutex<usize>,
    reply: &dyn Fn(usize) -> Reply,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            let lower = line.trim_end().to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length: ") {
                length = value.parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let n = {
            let mut count = requests.lock().unwrap();
            *count += 1;
            *count - 1
        };
        let status = match reply(n) {
            Reply::Status(status) => status,
            Reply::After(wait, status) => {
                std::thread::sleep(wait);
                status
            }
            Reply::Hang => {
                std::thread::sleep(Duration::from_secs(3600));
                return;
            }
        };
        if status == 200 {
            let request = ExportLogsServiceRequest::decode(body.as_slice()).unwrap();
            let mut accepted = accepted.lock().unwrap();
            for rl in request.resource_logs {
                for sl in rl.scope_logs {
                    for lr in sl.log_records {
                        let body = match lr.body.and_then(|b| b.value) {
                            Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => s,
                            other => format!("{other:?}"),
                        };
                        accepted.push(body);
                    }
                }
            }
        }
        let text = if status == 200 { "" } else { "scripted failure" };
        let response =
            format!("HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{text}", text.len());
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

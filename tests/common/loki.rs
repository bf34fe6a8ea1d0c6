//! An in-test Loki push server that decodes what Loki decodes (snappy, then
//! `logproto.PushRequest` from Loki's own schema, written out here) and checks what
//! Loki checks: the content type, label syntax, entries in time order per stream,
//! line size. What it accepts is kept with the tenant header it came with.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;

use super::serve_connections;

/// Loki's `pkg/push/push.proto`, independent of ocelot's copy.
pub mod logproto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<StreamAdapter>,
        #[prost(string, tag = "2")]
        pub format: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamAdapter {
        #[prost(string, tag = "1")]
        pub labels: String,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<EntryAdapter>,
        #[prost(uint64, tag = "3")]
        pub hash: u64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryAdapter {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Timestamp>,
        #[prost(string, tag = "2")]
        pub line: String,
        #[prost(message, repeated, tag = "3")]
        pub structured_metadata: Vec<LabelPairAdapter>,
        #[prost(message, repeated, tag = "4")]
        pub parsed: Vec<LabelPairAdapter>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPairAdapter {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

/// One accepted stream: labels, tenant, and (timestamp ns, line, structured metadata).
pub type Received =
    Vec<(std::collections::BTreeMap<String, String>, String, Vec<(i64, String, Vec<(String, String)>)>)>;

pub struct Loki {
    pub port: u16,
    pub received: Arc<Mutex<Received>>,
    pub requests: Arc<Mutex<usize>>,
}

/// Parses `{a="b", c="d"}` as Loki's LogQL label parser would, checking names.
pub fn parse_labels(text: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    let inner = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')).ok_or("not in braces")?;
    let mut labels = std::collections::BTreeMap::new();
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or("no =")?;
        let name = rest[..eq].trim();
        let mut chars = name.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("invalid label name `{name}`"));
        }
        let after = rest[eq + 1..].trim_start().strip_prefix('"').ok_or("value not quoted")?;
        let (mut value, mut end, mut escaped) = (String::new(), None, false);
        for (i, c) in after.char_indices() {
            match (escaped, c) {
                (true, 'n') => (value.push('\n'), escaped = false).1,
                (true, c) => (value.push(c), escaped = false).1,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                (false, c) => value.push(c),
            }
        }
        let end = end.ok_or("unterminated value")?;
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("duplicate label name `{name}`"));
        }
        rest = after[end + 1..].trim_start().trim_start_matches(',').trim_start();
    }
    if labels.is_empty() || labels.len() > 15 {
        return Err(format!("{} label names", labels.len()));
    }
    Ok(labels)
}

impl Loki {
    /// `respond(n)` gives the status and body of the n-th request (0-based) when the
    /// push itself is valid; 204 entries are recorded.
    pub fn start(respond: impl Fn(usize) -> (u16, &'static str) + Send + Sync + 'static) -> Loki {
        Self::start_slow(Duration::ZERO, respond)
    }

    /// Answers each request `delay` after it arrived.
    pub fn start_slow(delay: Duration, respond: impl Fn(usize) -> (u16, &'static str) + Send + Sync + 'static) -> Loki {
        let received = Arc::new(Mutex::new(Received::new()));
        let requests = Arc::new(Mutex::new(0usize));
        let (r, n) = (received.clone(), requests.clone());
        let port = serve_connections(move |stream| serve(stream, &r, &n, &respond, delay));
        Loki { port, received, requests }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/loki/api/v1/push", self.port)
    }
}

fn serve(
    stream: std::net::TcpStream,
    received: &Mutex<Received>,
    requests: &Mutex<usize>,
    respond: &dyn Fn(usize) -> (u16, &'static str),
    delay: Duration,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            headers.push(line.trim_end().to_ascii_lowercase());
        }
        let header = |name: &str| headers.iter().find_map(|h| h.strip_prefix(&format!("{name}: ")).map(str::to_string));
        let length: usize = header("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let n = {
            let mut count = requests.lock().unwrap();
            *count += 1;
            *count - 1
        };
        let check = || -> Result<Received, String> {
            if header("content-type").as_deref() != Some("application/x-protobuf") {
                return Err("content-type".into());
            }
            let tenant = header("x-scope-orgid").unwrap_or_default();
            let raw = snap::raw::Decoder::new().decompress_vec(&body).map_err(|e| e.to_string())?;
            let push = logproto::PushRequest::decode(raw.as_slice()).map_err(|e| e.to_string())?;
            let mut out = Received::new();
            for s in push.streams {
                let labels = parse_labels(&s.labels)?;
                let mut last = i64::MIN;
                let mut entries = Vec::new();
                for e in s.entries {
                    let t = e.timestamp.map(|t| t.seconds * 1_000_000_000 + i64::from(t.nanos)).unwrap_or(0);
                    if t < last {
                        return Err(format!("entry out of order in {}", s.labels));
                    }
                    if e.line.len() > 256 << 10 {
                        return Err("line too long".into());
                    }
                    last = t;
                    entries.push((t, e.line, e.structured_metadata.into_iter().map(|p| (p.name, p.value)).collect()));
                }
                out.push((labels, tenant.clone(), entries));
            }
            Ok(out)
        };
        std::thread::sleep(delay);
        let (status, text) = match check() {
            Ok(streams) => {
                let (status, text) = respond(n);
                if status == 204 {
                    received.lock().unwrap().extend(streams);
                }
                (status, text.to_string())
            }
            Err(e) => (400, e),
        };
        let retry_after = if status == 429 { "Retry-After: 1\r\n" } else { "" };
        let response = format!("HTTP/1.1 {status} X\r\n{retry_after}Content-Length: {}\r\n\r\n{text}", text.len());
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

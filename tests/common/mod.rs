//! Shared by the end-to-end tests: spawn the real `ocelot` binary with a config, learn
//! the ports it bound (configs use `127.0.0.1:0`) from its JSON logs, talk HTTP/1.1.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod backend;
pub mod kube_api;
pub mod loki;
pub mod prometheus;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ocelot");

/// A running ocelot and everything it logged.
pub struct Agent {
    child: Child,
    logs: Arc<Mutex<Vec<serde_json::Value>>>,
    pub dir: tempfile::TempDir,
}

impl Agent {
    /// Starts ocelot with `config` (written to a temp dir; `{dir}` in it is replaced
    /// by that dir) and waits until it says it is running.
    pub fn start(config: &str) -> Agent {
        Self::try_start(config).unwrap_or_else(|e| panic!("ocelot did not start: {e}"))
    }

    pub fn try_start(config: &str) -> Result<Agent, String> {
        Self::try_start_with_args(config, &[])
    }

    pub fn start_with_args(config: &str, args: &[&str]) -> Agent {
        Self::try_start_with_args(config, args).unwrap_or_else(|e| panic!("ocelot did not start: {e}"))
    }

    pub fn try_start_with_args(config: &str, args: &[&str]) -> Result<Agent, String> {
        Self::try_start_under(&[], config, args)
    }

    /// Starts ocelot as the last argument of `prefix` (`prlimit --nofile=64:4096`, say).
    pub fn start_under(prefix: &[&str], config: &str, args: &[&str]) -> Agent {
        Self::try_start_under(prefix, config, args).unwrap_or_else(|e| panic!("ocelot did not start: {e}"))
    }

    pub fn try_start_under(prefix: &[&str], config: &str, args: &[&str]) -> Result<Agent, String> {
        Self::try_start_with_env(prefix, config, args, &[])
    }

    /// [`Agent::try_start_under`] with these environment variables set.
    pub fn try_start_with_env(
        prefix: &[&str],
        config: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Agent, String> {
        let dir = tempfile::tempdir().unwrap();
        let config = config.replace("{dir}", dir.path().to_str().unwrap());
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, config).unwrap();
        // State goes under the test's own directory unless the test names a place.
        let storage = dir.path().join("storage");
        let storage_args: Vec<&std::ffi::OsStr> = if args.contains(&"--storage-dir") {
            Vec::new()
        } else {
            vec!["--storage-dir".as_ref(), storage.as_os_str()]
        };
        let mut command = match prefix.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(BIN);
                command
            }
            None => Command::new(BIN),
        };
        let mut child = command
            .arg("--config")
            .arg(&path)
            .args(storage_args)
            .arg("--log-format")
            .arg("json")
            .arg("--log-level")
            .arg("info")
            .args(args)
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "fields": { "message": line } }));
                sink.lock().unwrap().push(value);
            }
        });
        let agent = Agent { child, logs, dir };
        let started = Instant::now();
        let mut agent = agent;
        loop {
            if agent.find_log("ocelot is running.").is_some() {
                return Ok(agent);
            }
            if let Ok(Some(status)) = agent.child.try_wait() {
                return Err(format!("exited with {status}; logs:\n{}", agent.log_text()));
            }
            if started.elapsed() > Duration::from_secs(20) {
                return Err(format!("not running after 20s; logs:\n{}", agent.log_text()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn find_log(&self, message: &str) -> Option<serde_json::Value> {
        self.logs.lock().unwrap().iter().find(|v| v["fields"]["message"].as_str() == Some(message)).cloned()
    }

    pub fn count_logs(&self, message_part: &str) -> usize {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v["fields"]["message"].as_str().is_some_and(|m| m.contains(message_part)))
            .count()
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().unwrap().iter().map(|v| format!("{v}\n")).collect()
    }

    /// The address a receiver or server logged, e.g. ("OTLP/gRPC listening.", "otlp").
    pub fn endpoint(&self, message: &str, field: &str, id: Option<&str>) -> SocketAddr {
        let logs = self.logs.lock().unwrap();
        let entry = logs
            .iter()
            .find(|v| {
                v["fields"]["message"].as_str() == Some(message)
                    && id.is_none_or(|id| {
                        ["receiver", "extension", "exporter"].iter().any(|kind| v["fields"][kind].as_str() == Some(id))
                    })
            })
            .unwrap_or_else(|| panic!("no `{message}` in the logs"));
        entry["fields"][field].as_str().unwrap().parse().unwrap()
    }

    pub fn grpc(&self, receiver: &str) -> SocketAddr {
        self.endpoint("OTLP/gRPC listening.", "endpoint", Some(receiver))
    }

    pub fn http(&self, receiver: &str) -> SocketAddr {
        self.endpoint("OTLP/HTTP listening.", "endpoint", Some(receiver))
    }

    /// Where a `prometheus` exporter serves /metrics.
    pub fn prometheus_exporter(&self, exporter: &str) -> SocketAddr {
        self.endpoint("Prometheus metrics served at /metrics.", "endpoint", Some(exporter))
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.endpoint("Self-metrics at /metrics.", "address", None)
    }

    pub fn zpages_addr(&self, id: &str) -> SocketAddr {
        self.endpoint("zPages at /debug/servicez and /debug/pipelinez.", "endpoint", Some(id))
    }

    pub fn health_addr(&self, id: &str) -> SocketAddr {
        self.endpoint("Health check listening.", "endpoint", Some(id))
    }

    /// One self-metric's value, summed over the series whose labels contain `labels`.
    pub fn metric(&self, name: &str, labels: &str) -> f64 {
        let (status, _, body) = http_get(self.metrics_addr(), "/metrics");
        assert_eq!(status, 200);
        parse_metric(&String::from_utf8_lossy(&body), name, labels)
    }

    /// Waits (up to 10 s) for a self-metric to reach `value`: counters move just after
    /// the data they count has been handed on, so a test that saw the data may be early.
    pub fn wait_metric(&self, name: &str, labels: &str, value: f64) {
        let mut last = f64::NAN;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            last = self.metric(name, labels);
            if last == value {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{name}{{{labels}}} is {last}, expected {value}");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then wait (bounded) for the exit.
    pub fn stop(mut self) -> ExitStatus {
        signal(self.child.id(), "TERM");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                panic!("ocelot did not exit within 30s of SIGTERM; logs:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status().unwrap();
    assert!(status.success());
}

/// Sums the samples of `name` (exact series name) whose label text contains `labels`.
pub fn parse_metric(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest),
                None => (series, ""),
            };
            (series_name == name && series_labels.contains(labels)).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// A test server on 127.0.0.1: each connection handled on its own thread. Returns
/// the port.
pub fn serve_connections(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = Arc::new(handle);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let handle = handle.clone();
            std::thread::spawn(move || handle(stream));
        }
    });
    port
}

/// A free port on 127.0.0.1, for a server a config must name before it starts.
///
/// It is taken from below the kernel's ephemeral range: a port the kernel handed out
/// for `bind(0)` and that was then closed may be handed out again at once, to the very
/// agent the test starts (its self-metrics on port 0 took a receiver's port so). No
/// `bind(0)` anywhere can take a port below that range, and within one test process no
/// port is handed out twice.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let low: u16 = range.split_whitespace().next().and_then(|l| l.parse().ok()).unwrap_or(32768);
    let (from, to) = if low > 12000 { (10000, low - 1) } else { (61001, 65000) };
    let mut given = GIVEN.lock().unwrap();
    for _ in 0..10_000 {
        let port = from + (fastrand_u64() % u64::from(to - from)) as u16;
        if given.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free port between {from} and {to}");
}

/// A random number from the clock and a counter (the tests take no rand crate).
fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.write_u32(std::process::id());
    h.finish()
}

pub type Headers = BTreeMap<String, String>;

/// A one-shot HTTP/1.1 request; returns status, lower-cased headers and body.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Headers, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) before reading a large body; a failed write is fine then.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    parse_response(&response)
}

pub fn http_get(addr: SocketAddr, path: &str) -> (u16, Headers, Vec<u8>) {
    http_request(addr, "GET", path, &[], &[])
}

pub fn http_post(addr: SocketAddr, path: &str, content_type: &str, body: &[u8]) -> (u16, Headers, Vec<u8>) {
    http_request(addr, "POST", path, &[("Content-Type", content_type)], body)
}

fn parse_response(response: &[u8]) -> (u16, Headers, Vec<u8>) {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response: {:?}", String::from_utf8_lossy(response)));
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let mut lines = head.lines();
    let status: u16 = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers: Headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let raw = &response[split + 4..];
    let body =
        if headers.get("transfer-encoding").is_some_and(|v| v == "chunked") { dechunk(raw) } else { raw.to_vec() };
    (status, headers, body)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(String::from_utf8_lossy(&raw[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[eol + 2 + size + 2..];
    }
}

/// Waits until `check` is true, or panics with `what` after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        if started.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every JSON line a `file` exporter wrote so far.
pub fn read_json_lines(path: &Path) -> Vec<serde_json::Value> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    // Only whole lines: the exporter may be in the middle of writing the last one.
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n') && !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Log record bodies (string values) in file-exporter output, in order.
pub fn log_bodies(lines: &[serde_json::Value]) -> Vec<String> {
    let mut out = Vec::new();
    for line in lines {
        for rl in line["resourceLogs"].as_array().into_iter().flatten() {
            for sl in rl["scopeLogs"].as_array().into_iter().flatten() {
                for lr in sl["logRecords"].as_array().into_iter().flatten() {
                    out.push(lr["body"]["stringValue"].as_str().unwrap_or_default().to_string());
                }
            }
        }
    }
    out
}

/// An OTLP/JSON logs request with one record per body.
pub fn logs_json(bodies: &[String]) -> Vec<u8> {
    let records: Vec<serde_json::Value> = bodies
        .iter()
        .map(|b| serde_json::json!({ "timeUnixNano": "1700000000000000000", "body": { "stringValue": b } }))
        .collect();
    serde_json::json!({
        "resourceLogs": [{
            "resource": { "attributes": [{ "key": "service.name", "value": { "stringValue": "test" } }] },
            "scopeLogs": [{ "scope": { "name": "t" }, "logRecords": records }]
        }]
    })
    .to_string()
    .into_bytes()
}

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// `name`'s path on `PATH`, if it is there.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

/// The Python of the tests' venv (the OpenTelemetry SDK, kubernetes-validate):
/// `OCELOT_TEST_PYTHON`, or the venv that `scripts/test` makes under `target/`.
pub fn test_python() -> PathBuf {
    if let Ok(path) = std::env::var("OCELOT_TEST_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = repo_path("target/venv/bin/python");
    assert!(venv.exists(), "no test venv at {}: run scripts/test, which makes it", venv.display());
    venv
}

/// Upstream's probabilistic tail-sampling policy: FNV-1a 64 of the salt and the trace
/// id, sampled at or under `u64::MAX × percentage / 100`.
pub fn tail_probabilistic(salt: &str, trace_id: &[u8], percentage: f64) -> bool {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in salt.as_bytes().iter().chain(trace_id) {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash <= (u64::MAX as f64 * percentage / 100.0) as u64
}

/// Bytes from hex text.
pub fn unhex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

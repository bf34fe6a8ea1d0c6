//! A real Prometheus (Debian's `prometheus`, installed by scripts/test) started by a
//! test on 127.0.0.1 with the remote-write receiver on, and its HTTP query API.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, http_get, wait_until};

pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

/// The binary: `OCELOT_TEST_PROMETHEUS`, or `prometheus` on the PATH. Missing, the
/// test fails (scripts/test installs it): it never passes without the server.
fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("OCELOT_TEST_PROMETHEUS") {
        return PathBuf::from(path);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let candidate = PathBuf::from(dir).join("prometheus");
        if candidate.exists() {
            return candidate;
        }
    }
    panic!("no prometheus binary: run scripts/test, which installs Debian's prometheus");
}

impl Prometheus {
    /// Starts Prometheus with `scrape_configs` (YAML, may be empty) and waits until ready.
    pub fn start(scrape_configs: &str) -> Prometheus {
        Prometheus::start_with(scrape_configs, &[])
    }

    /// [`Prometheus::start`] with more flags, e.g. `--enable-feature=native-histograms`.
    pub fn start_with(scrape_configs: &str, flags: &[&str]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{scrape_configs}\n"),
        )
        .unwrap();
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--web.enable-remote-write-receiver")
            .args(flags)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting prometheus");
        let prometheus = Prometheus { child, addr, dir };
        wait_until(Duration::from_secs(30), "prometheus ready", || {
            std::net::TcpStream::connect(addr).is_ok() && http_get(addr, "/-/ready").0 == 200
        });
        prometheus
    }

    pub fn write_url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }

    /// An instant query's result vector: (labels, value).
    pub fn query(&self, promql: &str) -> Vec<(serde_json::Map<String, serde_json::Value>, f64)> {
        let (status, _, body) = http_get(self.addr, &format!("/api/v1/query?query={}", encode(promql)));
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 200, "{body}");
        body["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let value = r["value"][1].as_str().unwrap().parse::<f64>().unwrap();
                (r["metric"].as_object().unwrap().clone(), value)
            })
            .collect()
    }

    /// Waits until `promql` returns at least one series; returns them.
    pub fn wait_for(&self, promql: &str) -> Vec<(serde_json::Map<String, serde_json::Value>, f64)> {
        let mut result = Vec::new();
        wait_until(Duration::from_secs(20), promql, || {
            result = self.query(promql);
            !result.is_empty()
        });
        result
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query parameter.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

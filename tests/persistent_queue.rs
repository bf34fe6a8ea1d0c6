//! The persistent sending queue, end to end: what an exporter took survives kill -9
//! and is delivered after the restart; a corrupt queue file is quarantined, counted,
//! and the rest delivered.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::backend::{Backend, Reply};
use common::{Agent, free_port, http_post, logs_json, signal, wait_until};

/// otlp → otlp_http to `endpoint`, its queue on disk under `storage`.
fn config(port: u16, endpoint: &str, storage: &Path) -> String {
    format!(
        "receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{port}
exporters:
  otlp_http:
    endpoint: {endpoint}
    compression: none
    retry_on_failure:
      initial_interval: 50ms
      max_interval: 200ms
      max_elapsed_time: 0s
    sending_queue:
      storage: file_storage/queue
      num_consumers: 4
extensions:
  file_storage/queue:
    directory: {}
service:
  extensions: [file_storage/queue]
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [otlp_http]
  telemetry:
    metrics:
      address: 127.0.0.1:0
",
        storage.display()
    )
}

fn send(port: u16, from: usize, requests: usize, per_request: usize) {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    for r in 0..requests {
        let bodies: Vec<String> = (0..per_request).map(|i| format!("item {}", from + r * per_request + i)).collect();
        let (status, _, body) = http_post(addr, "/v1/logs", "application/json", &logs_json(&bodies));
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
}

fn unique(backend: &Backend) -> BTreeSet<String> {
    backend.accepted().into_iter().collect()
}

#[test]
fn what_was_answered_survives_kill_9_and_is_delivered_after_the_restart() {
    let storage = tempfile::tempdir().unwrap();
    let port = free_port();
    let down = format!("http://127.0.0.1:{}", free_port());
    let agent = Agent::start(&config(port, &down, storage.path()));
    // 100k items, each request answered only once it is on disk.
    send(port, 0, 100, 1000);
    signal(agent.pid(), "KILL");
    drop(agent);

    let backend = Backend::start(|_| Reply::Status(200));
    let agent = Agent::start(&config(port, &backend.endpoint(), storage.path()));
    wait_until(Duration::from_secs(60), "every item delivered", || unique(&backend).len() == 100_000);
    let expected: BTreeSet<String> = (0..100_000).map(|i| format!("item {i}")).collect();
    assert_eq!(unique(&backend), expected);
    agent.wait_metric("ocelot_exporter_queue_bytes", "exporter=\"otlp_http\"", 0.0);
    assert_eq!(agent.metric("ocelot_exporter_queue_quarantined_total", ""), 0.0);
    assert!(agent.stop().success());
    // Delivered segments are gone; a third start has nothing to send.
    let backend_again = Backend::start(|_| Reply::Status(200));
    let agent = Agent::start(&config(port, &backend_again.endpoint(), storage.path()));
    std::thread::sleep(Duration::from_millis(500));
    assert!(backend_again.accepted().is_empty(), "nothing delivered is sent again after a clean stop");
    assert!(agent.stop().success());
}

#[test]
fn a_corrupt_queue_file_is_quarantined_and_the_rest_delivered() {
    let storage = tempfile::tempdir().unwrap();
    let port = free_port();
    let down = format!("http://127.0.0.1:{}", free_port());
    // Two runs with the backend down, each leaving its records in a segment of its own.
    for run in 0..2 {
        let agent = Agent::start_with_args(&config(port, &down, storage.path()), &["--shutdown-timeout", "500ms"]);
        send(port, run * 10, 10, 1);
        assert!(agent.stop().success());
    }
    let queue = storage.path().join("exporter_otlp_http");
    let mut segments: Vec<_> = std::fs::read_dir(&queue)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    assert_eq!(segments.len(), 2, "{segments:?}");
    // Flip a byte in the fourth record of the first segment.
    let mut bytes = std::fs::read(&segments[0]).unwrap();
    let mut at = 0;
    for _ in 0..3 {
        at += 8 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    }
    bytes[at + 20] ^= 0x55;
    std::fs::write(&segments[0], &bytes).unwrap();

    let validate =
        std::process::Command::new(common::BIN).args(["validate", "--storage"]).arg(storage.path()).output().unwrap();
    let report = String::from_utf8_lossy(&validate.stderr).to_string() + &String::from_utf8_lossy(&validate.stdout);
    assert_eq!(validate.status.code(), Some(1), "{report}");
    assert!(report.contains("checksum"), "{report}");

    let backend = Backend::start(|_| Reply::Status(200));
    let agent = Agent::start(&config(port, &backend.endpoint(), storage.path()));
    let expected: BTreeSet<String> = (0..3).chain(10..20).map(|i| format!("item {i}")).collect();
    wait_until(Duration::from_secs(20), "the good records delivered", || unique(&backend) == expected);
    assert_eq!(agent.metric("ocelot_exporter_queue_quarantined_total", "exporter=\"otlp_http\""), 1.0);
    assert_eq!(std::fs::read_dir(queue.join("quarantine")).unwrap().count(), 1);
    assert_eq!(agent.count_logs("The persistent queue holds corrupt data; the rest of this segment is quarantined, the other segments are replayed."), 1);
    assert!(agent.stop().success());

    let validate =
        std::process::Command::new(common::BIN).args(["validate", "--storage"]).arg(storage.path()).output().unwrap();
    assert_eq!(validate.status.code(), Some(0), "{}", String::from_utf8_lossy(&validate.stderr));
}

#[test]
fn a_file_tail_commits_its_offsets_once_lines_are_on_disk_and_nothing_is_read_twice() {
    use std::io::Write;
    let storage = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let path = logs.path().join("app.log");
    let mut file = std::fs::File::create(&path).unwrap();
    for i in 0..2000 {
        writeln!(file, "line {i}").unwrap();
    }
    drop(file);
    let size = std::fs::metadata(&path).unwrap().len();
    let tail = |endpoint: &str| {
        config(free_port(), endpoint, storage.path()).replace(
            "receivers:\n  otlp:",
            &format!(
                "receivers:\n  filelog:\n    include: [\"{}/*.log\"]\n    start_at: beginning\n    poll_interval: 50ms\n    storage: file_storage/queue\n  otlp:",
                logs.path().display()
            ),
        )
        .replace("receivers: [otlp]", "receivers: [filelog]")
    };
    let down = format!("http://127.0.0.1:{}", free_port());
    let agent = Agent::start(&tail(&down));
    // The backend is down, yet the offsets move: the lines are safe in the queue.
    let state = storage.path().join("filelog_filelog.state");
    wait_until(Duration::from_secs(20), "the offset of the whole file committed", || {
        std::fs::read(&state).is_ok_and(|b| String::from_utf8_lossy(&b).contains(&format!("\"offset\":{size}")))
    });
    signal(agent.pid(), "KILL");
    drop(agent);

    let backend = Backend::start(|_| Reply::Status(200));
    let agent = Agent::start(&tail(&backend.endpoint()));
    wait_until(Duration::from_secs(20), "every line delivered", || backend.accepted().len() >= 2000);
    std::thread::sleep(Duration::from_millis(500));
    let delivered = backend.accepted();
    let expected: BTreeSet<String> = (0..2000).map(|i| format!("line {i}")).collect();
    assert_eq!(delivered.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert_eq!(delivered.len(), 2000, "the tail did not read a line again");
    assert!(agent.stop().success());
}

#[test]
fn a_reload_that_repoints_the_exporter_hands_it_the_queue() {
    let storage = tempfile::tempdir().unwrap();
    let port = free_port();
    let down = format!("http://127.0.0.1:{}", free_port());
    let agent = Agent::start(&config(port, &down, storage.path()));
    send(port, 0, 50, 10);
    let backend = Backend::start(|_| Reply::Status(200));
    let text = config(port, &backend.endpoint(), storage.path()).replace("{dir}", agent.dir.path().to_str().unwrap());
    std::fs::write(agent.dir.path().join("config.yaml"), text).unwrap();
    let (status, _, body) = http_post(agent.metrics_addr(), "/-/reload", "text/plain", b"");
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["changes"]["restarted"], serde_json::json!(["exporter/otlp_http"]), "{answer}");
    // What the old instance held (queued, and in its retries) reaches the new endpoint.
    let expected: BTreeSet<String> = (0..500).map(|i| format!("item {i}")).collect();
    wait_until(Duration::from_secs(20), "every item at the new endpoint", || unique(&backend) == expected);
    agent.wait_metric("ocelot_exporter_queue_bytes", "exporter=\"otlp_http\"", 0.0);
    assert!(agent.stop().success());
}

//! Hot reload, end to end: the real binary, reloaded by SIGHUP, `POST /-/reload` and
//! `--watch-config`, keeping what did not change and losing nothing under load.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{Agent, free_port, http_get, http_post, log_bodies, logs_json, read_json_lines, signal, wait_until};

/// A logs pipeline from an OTLP/HTTP receiver on `port` to a file exporter writing
/// `out`, with `processors` (a YAML list) between them, and self-metrics.
fn config(port: u16, out: &str, processors: &str, receiver_extra: &str) -> String {
    format!(
        "receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{port}
{receiver_extra}processors:
  batch:
    timeout: 50ms
  attributes/tag:
    actions:
      - {{key: reloaded, value: yes, action: insert}}
exporters:
  file:
    path: {{dir}}/{out}
service:
  pipelines:
    logs:
      receivers: [otlp]
      processors: {processors}
      exporters: [file]
  telemetry:
    metrics:
      address: 127.0.0.1:0
"
    )
}

fn write_config(agent: &Agent, text: &str) {
    let text = text.replace("{dir}", agent.dir.path().to_str().unwrap());
    // Written aside and renamed, as editors and config managers do, so a reload never
    // reads half a file.
    let tmp = agent.dir.path().join("config.yaml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, agent.dir.path().join("config.yaml")).unwrap();
}

/// `POST /-/reload`: status and the JSON answer.
fn reload(agent: &Agent) -> (u16, serde_json::Value) {
    let (status, _, body) = http_post(agent.metrics_addr(), "/-/reload", "text/plain", b"");
    (status, serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&body))))
}

fn names(answer: &serde_json::Value, field: &str) -> Vec<String> {
    answer["changes"][field].as_array().into_iter().flatten().map(|v| v.as_str().unwrap().to_string()).collect()
}

fn post(port: u16, bodies: &[String]) -> u16 {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    http_post(addr, "/v1/logs", "application/json", &logs_json(bodies)).0
}

/// One OTLP/HTTP logs request on a new connection: the status, or `None` when the
/// connection failed or closed without an answer.
fn try_post(port: u16, body: &[u8]) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let head = format!(
        "POST /v1/logs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let line = response.split(|b| *b == b'\n').next()?;
    std::str::from_utf8(line).ok()?.split_whitespace().nth(1)?.parse().ok()
}

/// OTLP/HTTP logs requests on a thread, one after another, `per_request` records
/// each with bodies `{prefix}{n}`, each sent until it is answered 200. A refused
/// request reached no pipeline, so sending it again duplicates nothing; one with no
/// answer at all is sent again too, and counted: a reload must never cut one off.
struct Load {
    stop: Arc<AtomicBool>,
    /// Records answered 200 so far.
    sent: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    unanswered: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<()>,
}

impl Load {
    fn start(port: u16, per_request: usize, prefix: &'static str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (sent, refused, unanswered) = (Arc::default(), Arc::default(), Arc::default());
        let thread = {
            let (stop, sent, refused, unanswered): (
                Arc<AtomicBool>,
                Arc<AtomicUsize>,
                Arc<AtomicUsize>,
                Arc<AtomicUsize>,
            ) = (stop.clone(), Arc::clone(&sent), Arc::clone(&refused), Arc::clone(&unanswered));
            std::thread::spawn(move || {
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let bodies: Vec<String> =
                        (0..per_request).map(|i| format!("{prefix}{}", n * per_request + i)).collect();
                    loop {
                        match try_post(port, &logs_json(&bodies)) {
                            Some(200) => break,
                            Some(_) => refused.fetch_add(1, Ordering::Relaxed),
                            None => unanswered.fetch_add(1, Ordering::Relaxed),
                        };
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    n += 1;
                    sent.store(n * per_request, Ordering::Relaxed);
                }
            })
        };
        Load { stop, sent, refused, unanswered, thread }
    }

    /// Stops it: records sent, requests refused, requests left unanswered.
    fn finish(self) -> (usize, usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        let get = |n: &AtomicUsize| n.load(Ordering::Relaxed);
        (get(&self.sent), get(&self.refused), get(&self.unanswered))
    }
}

fn bodies_in(dir: &Path, files: &[&str]) -> Vec<String> {
    files.iter().flat_map(|f| log_bodies(&read_json_lines(&dir.join(f)))).collect()
}

#[test]
fn a_changed_exporter_restarts_and_the_receiver_and_pipeline_keep_running() {
    let port = free_port();
    let agent = Agent::start(&config(port, "a.jsonl", "[batch]", ""));
    assert_eq!(post(port, &["before".into()]), 200);
    wait_until(Duration::from_secs(10), "the first record", || bodies_in(agent.dir.path(), &["a.jsonl"]).len() == 1);

    write_config(&agent, &config(port, "b.jsonl", "[batch]", ""));
    let (status, answer) = reload(&agent);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"], "success");
    assert_eq!(names(&answer, "restarted"), ["exporter/file"], "{answer}");
    let kept = names(&answer, "kept");
    for node in ["receiver/otlp", "pipeline/logs", "processor/batch@logs"] {
        assert!(kept.contains(&node.to_string()), "{node} not kept: {answer}");
    }
    assert!(names(&answer, "started").is_empty() && names(&answer, "stopped").is_empty(), "{answer}");

    assert_eq!(post(port, &["after".into()]), 200);
    wait_until(Duration::from_secs(10), "the record in the new file", || {
        bodies_in(agent.dir.path(), &["b.jsonl"]) == ["after"]
    });
    assert_eq!(bodies_in(agent.dir.path(), &["a.jsonl"]), ["before"]);
    agent.wait_metric("ocelot_config_reloads_total", "result=\"success\"", 1.0);
    assert!(agent.stop().success());
}

#[test]
fn processors_added_and_removed_take_effect_and_the_rest_keep_their_place() {
    let port = free_port();
    let agent = Agent::start(&config(port, "out.jsonl", "[batch]", ""));
    write_config(&agent, &config(port, "out.jsonl", "[attributes/tag, batch]", ""));
    let (status, answer) = reload(&agent);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(names(&answer, "started"), ["processor/attributes/tag@logs"], "{answer}");
    assert!(names(&answer, "kept").contains(&"processor/batch@logs".to_string()), "{answer}");
    assert!(names(&answer, "kept").contains(&"exporter/file".to_string()), "{answer}");
    assert_eq!(post(port, &["tagged".into()]), 200);
    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(10), "the tagged record", || !read_json_lines(&out).is_empty());
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("\"reloaded\""), "{text}");

    write_config(&agent, &config(port, "out.jsonl", "[batch]", ""));
    let (_, answer) = reload(&agent);
    assert_eq!(names(&answer, "stopped"), ["processor/attributes/tag@logs"], "{answer}");
    assert!(agent.stop().success());
}

#[test]
fn a_refused_config_leaves_the_running_graph_as_it_was() {
    let port = free_port();
    let agent = Agent::start(&config(port, "out.jsonl", "[batch]", ""));
    let (_, hash_before) = {
        let (status, headers, _) = http_get(agent.metrics_addr(), "/-/config");
        assert_eq!(status, 200);
        (status, headers["x-ocelot-config-hash"].clone())
    };

    // Invalid: an unknown processor.
    write_config(&agent, &config(port, "out.jsonl", "[batch, nope]", ""));
    let (status, answer) = reload(&agent);
    assert_eq!(status, 500, "{answer}");
    assert_eq!(answer["result"], "failure");
    assert!(answer["error"].as_str().unwrap().contains("nope"), "{answer}");
    assert_eq!(answer["hash"], hash_before.as_str());

    // Valid, but a new receiver's port is taken: nothing changes either.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().port();
    let text = config(
        port,
        "changed.jsonl",
        "[batch]",
        &format!("  otlp/second:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:{busy}\n"),
    )
    .replace("receivers: [otlp]", "receivers: [otlp, otlp/second]");
    write_config(&agent, &text);
    let (status, answer) = reload(&agent);
    assert_eq!(status, 500, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains(&busy.to_string()), "{answer}");
    assert_eq!(answer["hash"], hash_before.as_str());

    // Not YAML; an option the component does not have; a certificate that is not there.
    let broken = [
        "receivers: [unclosed\n".to_string(),
        config(port, "changed.jsonl", "[batch]", "").replace("    timeout: 50ms", "    timeout: 50ms\n    no_such_option: 1"),
        config(port, "changed.jsonl", "[batch]", &format!("  otlp/tls:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:{}\n        tls:\n          cert_file: /nonexistent/cert.pem\n          key_file: /nonexistent/key.pem\n", free_port()))
            .replace("receivers: [otlp]", "receivers: [otlp, otlp/tls]"),
    ];
    for text in &broken {
        write_config(&agent, text);
        let (status, answer) = reload(&agent);
        assert_eq!((status, answer["result"].as_str()), (500, Some("failure")), "{answer}");
        assert!(!answer["error"].as_str().unwrap().is_empty(), "{answer}");
        assert_eq!(answer["hash"], hash_before.as_str());
    }
    // The log line is written after the answer: it comes on the agent's stderr soon after.
    wait_until(Duration::from_secs(10), "a refusal logged for each refused config", || {
        agent.count_logs("The new config is refused; the running config stays.") >= 5
    });

    assert_eq!(post(port, &["still here".into()]), 200);
    wait_until(Duration::from_secs(10), "the record through the old graph", || {
        bodies_in(agent.dir.path(), &["out.jsonl"]) == ["still here"]
    });
    assert!(bodies_in(agent.dir.path(), &["changed.jsonl"]).is_empty(), "the new exporter was stopped again");
    agent.wait_metric("ocelot_config_reloads_total", "result=\"failure\"", 5.0);
    assert_eq!(agent.metric("ocelot_config_reloads_total", "result=\"success\""), 0.0);
    let (_, headers, _) = http_get(agent.metrics_addr(), "/-/config");
    assert_eq!(headers["x-ocelot-config-hash"], hash_before);
    assert!(agent.stop().success());
}

#[test]
fn continuous_load_through_reloads_loses_and_duplicates_nothing() {
    let port = free_port();
    let agent = Arc::new(Agent::start(&config(port, "out-0.jsonl", "[batch]", "")));
    let load = Load::start(port, 20, "r");
    let sent = load.sent.clone();
    let receiver_change = "        max_request_body_size: 4194304\n";
    let steps: [(&str, &str, &str); 6] = [
        ("out-1.jsonl", "[batch]", ""),
        ("out-1.jsonl", "[attributes/tag, batch]", ""),
        ("out-1.jsonl", "[attributes/tag, batch]", receiver_change),
        ("out-2.jsonl", "[batch]", receiver_change),
        ("out-2.jsonl", "[]", ""),
        ("out-3.jsonl", "[batch, attributes/tag]", ""),
    ];
    let mut files = vec!["out-0.jsonl"];
    let mut restarted = Vec::new();
    for (out, processors, extra) in steps {
        let before = sent.load(Ordering::Relaxed);
        wait_until(Duration::from_secs(20), "load between reloads", || sent.load(Ordering::Relaxed) >= before + 200);
        let text = config(port, out, processors, "")
            .replace("        endpoint: 127.0.0.1:", &format!("{extra}        endpoint: 127.0.0.1:"));
        write_config(&agent, &text);
        let (status, answer) = reload(&agent);
        assert_eq!(status, 200, "{answer}");
        restarted.extend(names(&answer, "restarted"));
        if !files.contains(&out) {
            files.push(out);
        }
    }
    // The receiver was replaced twice (its setting added, then removed) on the same
    // socket, the exporter three times.
    assert_eq!(restarted.iter().filter(|n| *n == "receiver/otlp").count(), 2, "{restarted:?}");
    assert_eq!(restarted.iter().filter(|n| *n == "exporter/file").count(), 3, "{restarted:?}");
    let before = sent.load(Ordering::Relaxed);
    wait_until(Duration::from_secs(20), "load after the reloads", || sent.load(Ordering::Relaxed) >= before + 200);
    let (total, refused, unanswered) = load.finish();
    let dir = agent.dir.path().to_path_buf();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    wait_until(Duration::from_secs(20), "every accepted record written", || {
        seen.clear();
        for body in bodies_in(&dir, &files) {
            *seen.entry(body).or_default() += 1;
        }
        seen.len() >= total
    });
    let missing: Vec<String> = (0..total).map(|i| format!("r{i}")).filter(|b| !seen.contains_key(b)).collect();
    let doubled: Vec<&String> = seen.iter().filter(|(_, n)| **n > 1).map(|(b, _)| b).collect();
    assert_eq!(unanswered, 0, "requests went unanswered during a reload");
    assert!(missing.is_empty(), "{} of {total} lost, first {:?}", missing.len(), missing.first());
    assert!(doubled.is_empty(), "{} duplicated, first {:?}", doubled.len(), doubled.first());
    assert_eq!(seen.len(), total);
    assert_eq!(agent.metric("ocelot_config_reloads_total", "result=\"success\""), 6.0);
    eprintln!("{total} records through 6 reloads; {refused} requests refused and sent again");
    Arc::into_inner(agent).unwrap().stop();
}

#[test]
fn config_endpoint_masks_secrets_and_shows_the_running_hash() {
    let port = free_port();
    let text = config(port, "out.jsonl", "[batch]", "").replace(
        "exporters:\n  file:",
        "exporters:\n  otlp_http/unused:\n    endpoint: http://127.0.0.1:1\n    headers:\n      authorization: Bearer s3cret-value\n  file:",
    );
    let agent = Agent::start(&text);
    let (status, headers, body) = http_get(agent.metrics_addr(), "/-/config");
    assert_eq!(status, 200);
    let shown = String::from_utf8(body).unwrap();
    assert!(!shown.contains("s3cret-value"), "{shown}");
    assert!(shown.contains("authorization: <masked>"), "{shown}");
    assert!(shown.contains(&format!("endpoint: 127.0.0.1:{port}")), "{shown}");
    let hash = &headers["x-ocelot-config-hash"];
    assert!(shown.starts_with(&format!("# hash: {hash}\n# loaded: ")), "{shown}");
    assert_eq!(hash.len(), 24);
    assert!(agent.metric("ocelot_config_hash", "") > 0.0);
    assert!(agent.metric("ocelot_config_last_reload_success_timestamp_seconds", "") > 1.7e9);
    let (status, _, _) = http_post(agent.metrics_addr(), "/-/config", "text/plain", b"");
    assert_eq!(status, 405);
    let (status, _, _) = http_get(agent.metrics_addr(), "/-/reload");
    assert_eq!(status, 405);
    assert!(agent.stop().success());
}

#[test]
fn sighup_reloads_the_config_files() {
    let port = free_port();
    let agent = Agent::start(&config(port, "a.jsonl", "[batch]", ""));
    write_config(&agent, &config(port, "b.jsonl", "[batch]", ""));
    signal(agent.pid(), "HUP");
    wait_until(Duration::from_secs(10), "the reload", || agent.count_logs("The new config runs.") == 1);
    assert_eq!(post(port, &["after".into()]), 200);
    wait_until(Duration::from_secs(10), "the record in the new file", || {
        bodies_in(agent.dir.path(), &["b.jsonl"]) == ["after"]
    });
    assert!(agent.stop().success());
}

#[test]
fn watch_config_reloads_on_an_edit_and_on_a_configmap_swap() {
    let port = free_port();
    // A Kubernetes ConfigMap volume: config.yaml → ..data/config.yaml, ..data → ..v1.
    let root = tempfile::tempdir().unwrap();
    let mount = root.path().join("mount");
    std::fs::create_dir_all(mount.join("..v1")).unwrap();
    let out = root.path().to_str().unwrap().to_string();
    let write_version = |version: &str, file: &str| {
        let text = config(port, file, "[batch]", "").replace("{dir}", &out);
        std::fs::create_dir_all(mount.join(version)).unwrap();
        std::fs::write(mount.join(version).join("config.yaml"), text).unwrap();
    };
    write_version("..v1", "a.jsonl");
    std::os::unix::fs::symlink("..v1", mount.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/config.yaml", mount.join("config.yaml")).unwrap();
    let agent =
        Agent::start_with_args("", &["--config", mount.join("config.yaml").to_str().unwrap(), "--watch-config"]);
    wait_until(Duration::from_secs(5), "the watch", || agent.count_logs("Watching the config files for changes.") == 1);

    // The kubelet's update: a new directory, a new link renamed over `..data`.
    write_version("..v2", "b.jsonl");
    std::os::unix::fs::symlink("..v2", mount.join("..data_tmp")).unwrap();
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
    wait_until(Duration::from_secs(10), "the reload", || agent.count_logs("The new config runs.") == 1);
    assert_eq!(post(port, &["after swap".into()]), 200);
    wait_until(Duration::from_secs(10), "the record in the new file", || {
        bodies_in(root.path(), &["b.jsonl"]) == ["after swap"]
    });

    // Touching a file without changing it reloads nothing.
    let target = mount.join("..v2").join("config.yaml");
    let same = std::fs::read(&target).unwrap();
    std::fs::write(&target, same).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(agent.count_logs("Reloading the config."), 1);
    assert!(agent.stop().success());
}

/// A file tail → file exporter config; `extra` goes into the filelog receiver.
fn filelog_config(logs: &Path, out: &str, extra: &str) -> String {
    format!(
        "receivers:
  filelog:
    include: [\"{}/*.log\"]
    start_at: beginning
    poll_interval: 50ms
{extra}exporters:
  file:
    path: {{dir}}/{out}
service:
  pipelines:
    logs:
      receivers: [filelog]
      exporters: [file]
  telemetry:
    metrics:
      address: 127.0.0.1:0
",
        logs.display()
    )
}

#[test]
fn a_file_tail_keeps_its_offsets_when_kept_and_when_restarted() {
    use std::io::Write;
    let logs = tempfile::tempdir().unwrap();
    let path = logs.path().join("app.log");
    let mut file = std::fs::File::create(&path).unwrap();
    let mut written = 0;
    let mut append = |file: &mut std::fs::File, n: usize| {
        for _ in 0..n {
            writeln!(file, "line {written}").unwrap();
            written += 1;
        }
        written
    };
    let total = append(&mut file, 100);
    let agent = Agent::start(&filelog_config(logs.path(), "a.jsonl", ""));
    let all = |agent: &Agent| bodies_in(agent.dir.path(), &["a.jsonl", "b.jsonl", "c.jsonl"]);
    wait_until(Duration::from_secs(10), "the first lines", || all(&agent).len() == total);

    // The exporter changes; the tail is kept, with its open file and offset.
    write_config(&agent, &filelog_config(logs.path(), "b.jsonl", ""));
    let (status, answer) = reload(&agent);
    assert_eq!(status, 200, "{answer}");
    assert!(names(&answer, "kept").contains(&"receiver/filelog".to_string()), "{answer}");
    let total = append(&mut file, 100);
    wait_until(Duration::from_secs(10), "the lines after the first reload", || all(&agent).len() >= total);

    // The tail's own settings change: the old reader stops and commits its offset,
    // then the new one starts from there, while lines keep coming.
    let writer = {
        let path = path.clone();
        std::thread::spawn(move || {
            let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
            for i in 0..200 {
                writeln!(file, "more {i}").unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    write_config(&agent, &filelog_config(logs.path(), "c.jsonl", "    max_log_size: 2MiB\n"));
    let (status, answer) = reload(&agent);
    assert_eq!(status, 200, "{answer}");
    assert!(names(&answer, "restarted").contains(&"receiver/filelog".to_string()), "{answer}");
    writer.join().unwrap();
    let expected: Vec<String> =
        (0..total).map(|i| format!("line {i}")).chain((0..200).map(|i| format!("more {i}"))).collect();
    wait_until(Duration::from_secs(10), "every line", || all(&agent).len() >= expected.len());
    std::thread::sleep(Duration::from_millis(300));
    let mut got = all(&agent);
    got.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(got, want, "every line once, none twice");
    assert!(agent.stop().success());
}

/// otlp → otlp_http to `endpoint`, with `service.reload.verify` and a health check
/// whose component health counts recoverable errors at once.
fn verified_config(port: u16, endpoint: &str) -> String {
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
      max_interval: 100ms
extensions:
  health_check:
    endpoint: 127.0.0.1:0
    check_collector_pipeline:
      enabled: true
    component_health:
      include_recoverable_errors: true
      recovery_duration: 0s
service:
  extensions: [health_check]
  reload:
    verify: true
    verify_window: 2s
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [otlp_http]
  telemetry:
    metrics:
      address: 127.0.0.1:0
"
    )
}

#[test]
fn a_reload_that_breaks_an_exporter_is_rolled_back_within_the_verify_window() {
    let backend = common::backend::Backend::start(|_| common::backend::Reply::Status(200));
    let port = free_port();
    let good = verified_config(port, &backend.endpoint());
    // The broken exporter's copy of "during" is retried until shutdown; keep that short.
    let agent = Agent::start_with_args(&good, &["--shutdown-timeout", "1s"]);
    let hash = |agent: &Agent| http_get(agent.metrics_addr(), "/-/config").1["x-ocelot-config-hash"].clone();
    let original = hash(&agent);
    assert_eq!(post(port, &["before".into()]), 200);
    wait_until(Duration::from_secs(10), "the first record", || backend.accepted() == ["before"]);
    let health = agent.health_addr("health_check");
    // The backend has the record before the exporter has its answer and notes the
    // export as OK: wait for the status, not just for the record.
    let exporter_status = || {
        let (status, _, body) = http_get(health, "/status");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let shown: serde_json::Value = serde_json::from_slice(&body).unwrap();
        shown["components"]["pipeline:logs"]["components"]["exporter:otlp_http"]["status"].clone()
    };
    wait_until(Duration::from_secs(10), "the exporter's first export noted as OK", || exporter_status() == "StatusOK");
    assert_eq!(http_get(health, "/health/ready").0, 200);
    assert_eq!(agent.count_logs("health_check.check_collector_pipeline is ignored (as upstream ignores it now); use component_health and /status."), 1);

    // The new config sends to a port nothing listens on.
    let dead = free_port();
    write_config(&agent, &verified_config(port, &format!("http://127.0.0.1:{dead}")));
    let (status, answer) = reload(&agent);
    assert_eq!(status, 200, "{answer}");
    assert_ne!(hash(&agent), original);
    assert_eq!(post(port, &["during".into()]), 200);
    wait_until(Duration::from_secs(5), "the exporter's failure in /status", || {
        let (_, _, body) = http_get(health, "/status");
        let shown: serde_json::Value = serde_json::from_slice(&body).unwrap();
        shown["components"]["pipeline:logs"]["components"]["exporter:otlp_http"]["status"] == "StatusRecoverableError"
            && shown["healthy"] == false
    });
    wait_until(Duration::from_secs(10), "the rollback", || {
        agent.count_logs("The new config failed its verify window; rolling back to the previous one.") == 1
    });
    // Counted once the previous config runs again.
    agent.wait_metric("ocelot_config_reloads_total", "result=\"rollback\"", 1.0);
    assert_eq!(hash(&agent), original);
    assert_eq!(post(port, &["after".into()]), 200);
    wait_until(Duration::from_secs(10), "the record through the restored exporter", || {
        backend.accepted().contains(&"after".to_string())
    });
    assert!(agent.stop().success());
}

#[test]
fn a_reload_that_keeps_working_passes_its_verify_window() {
    let backend = common::backend::Backend::start(|_| common::backend::Reply::Status(200));
    let other = common::backend::Backend::start(|_| common::backend::Reply::Status(200));
    let port = free_port();
    let agent = Agent::start(&verified_config(port, &backend.endpoint()));
    write_config(&agent, &verified_config(port, &other.endpoint()));
    let (status, answer) = reload(&agent);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(post(port, &["moved".into()]), 200);
    wait_until(Duration::from_secs(10), "the verify window", || {
        agent.count_logs("The new config passed its verify window.") == 1
    });
    assert_eq!(other.accepted(), ["moved"]);
    assert_eq!(agent.metric("ocelot_config_reloads_total", "result=\"rollback\""), 0.0);
    assert!(agent.stop().success());
}

/// OTLP and a file tail into one file exporter, in `variant` (0..4) of the config:
/// each changes a different node.
fn mixed_config(port: u16, logs: &Path, variant: usize) -> String {
    let (out, processors, http_extra, tail_extra) = match variant % 4 {
        0 => ("out-a.jsonl", "[batch]", "", ""),
        1 => ("out-a.jsonl", "[attributes/tag, batch]", "        max_request_body_size: 4194304\n", ""),
        2 => ("out-b.jsonl", "[batch]", "", "    max_log_size: 2MiB\n"),
        _ => ("out-b.jsonl", "[]", "        max_request_body_size: 4194304\n", "    max_log_size: 2MiB\n"),
    };
    format!(
        "receivers:
  otlp:
    protocols:
      http:
{http_extra}        endpoint: 127.0.0.1:{port}
  filelog:
    include: [\"{}/*.log\"]
    start_at: beginning
    poll_interval: 20ms
{tail_extra}processors:
  batch:
    timeout: 20ms
  attributes/tag:
    actions:
      - {{key: reloaded, value: yes, action: insert}}
exporters:
  file:
    path: {{dir}}/{out}
    append: true
service:
  pipelines:
    logs:
      receivers: [otlp, filelog]
      processors: {processors}
      exporters: [file]
  telemetry:
    metrics:
      address: 127.0.0.1:0
",
        logs.display()
    )
}

#[test]
fn a_hundred_reloads_under_otlp_load_and_a_growing_file_lose_and_repeat_nothing() {
    use std::io::Write;
    let port = free_port();
    let logs = tempfile::tempdir().unwrap();
    let agent = Agent::start(&mixed_config(port, logs.path(), 0));
    let load = Load::start(port, 10, "otlp ");
    let stop = Arc::new(AtomicBool::new(false));
    let lines = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, lines) = (stop.clone(), lines.clone());
        let path = logs.path().join("app.log");
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(path).unwrap();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..5 {
                    writeln!(file, "tail {n}").unwrap();
                    n += 1;
                }
                lines.store(n, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let mut results = BTreeMap::new();
    for round in 1..=100 {
        write_config(&agent, &mixed_config(port, logs.path(), round));
        let (_, answer) = reload(&agent);
        *results.entry(answer["result"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let (sent, _, unanswered) = load.finish();
    let lines = lines.load(Ordering::Relaxed);
    let expected: Vec<String> =
        (0..sent).map(|i| format!("otlp {i}")).chain((0..lines).map(|i| format!("tail {i}"))).collect();
    let dir = agent.dir.path().to_path_buf();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let started = std::time::Instant::now();
    loop {
        seen.clear();
        for body in bodies_in(&dir, &["out-a.jsonl", "out-b.jsonl"]) {
            *seen.entry(body).or_default() += 1;
        }
        if expected.iter().all(|e| seen.contains_key(e)) || started.elapsed() > Duration::from_secs(30) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let missing: Vec<&String> = expected.iter().filter(|e| !seen.contains_key(*e)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} lost ({} from the file), first {:?}, last {:?}",
        missing.len(),
        expected.len(),
        missing.iter().filter(|m| m.starts_with("tail")).count(),
        missing.first(),
        missing.last()
    );
    let doubled: Vec<&String> = seen.iter().filter(|(_, n)| **n > 1).map(|(b, _)| b).collect();
    assert!(doubled.is_empty(), "{} repeated, first {:?}", doubled.len(), doubled.first());
    assert_eq!(seen.len(), expected.len(), "nothing but what was sent");
    assert_eq!(results.get("success"), Some(&100), "{results:?}");
    assert_eq!(unanswered, 0, "the receiver's port refused or cut off a request");
    eprintln!("100 reloads; {sent} OTLP records and {lines} file lines, each written once");
    assert!(agent.stop().success());
}

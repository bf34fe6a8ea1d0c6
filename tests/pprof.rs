//! The `pprof` extension on a running agent: a CPU profile over HTTP in pprof's
//! gzipped protobuf while the agent works, one profile at a time, the allocator's heap
//! figures, and `save_to_file` writing the whole run's profile at shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::time::Duration;

use common::*;
use pprof::protos::Message;

fn config(extension: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:0 }}
exporters:
  file:
    path: "{{dir}}/out.jsonl"
extensions:
  pprof:
{extension}
service:
  extensions: [pprof]
  pipelines:
    logs: {{ receivers: [otlp], exporters: [file] }}
  telemetry:
    metrics:
      level: none
"#
    )
}

fn decode(gzipped: &[u8]) -> pprof::protos::Profile {
    assert_eq!(&gzipped[..2], &[0x1f, 0x8b], "gzip");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gzipped).read_to_end(&mut raw).unwrap();
    pprof::protos::Profile::decode(raw.as_slice()).unwrap()
}

/// Keeps the agent busy with OTLP requests until `stop`.
fn load(agent: &Agent, stop: &std::sync::atomic::AtomicBool) {
    let body = logs_json(&(0..200).map(|i| format!("line {i}")).collect::<Vec<_>>());
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        http_post(agent.http("otlp"), "/v1/logs", "application/json", &body);
    }
}

#[test]
fn a_cpu_profile_of_the_running_agent_in_pprof_format() {
    let agent = Agent::start(&config("    endpoint: 127.0.0.1:0"));
    let addr = agent.endpoint("pprof at /debug/pprof/.", "endpoint", Some("pprof"));
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut answers = std::thread::scope(|s| {
        s.spawn(|| load(&agent, &stop));
        // One profile at a time: of two asked for together, one is refused.
        let first = s.spawn(|| http_get(addr, "/debug/pprof/profile?seconds=2"));
        let second = s.spawn(|| http_get(addr, "/debug/pprof/profile?seconds=2"));
        let answers = vec![first.join().unwrap(), second.join().unwrap()];
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        answers
    });
    answers.sort_by_key(|a| a.0);
    assert_eq!(answers.iter().map(|a| a.0).collect::<Vec<_>>(), vec![200, 409]);
    let (_, headers, body) = answers.swap_remove(0);
    assert_eq!(headers["content-type"], "application/octet-stream");
    let profile = decode(&body);
    let strings = &profile.string_table;
    let sample_types: Vec<&str> = profile.sample_type.iter().map(|t| strings[t.ty as usize].as_str()).collect();
    assert!(sample_types.contains(&"cpu"), "{sample_types:?}");
    assert!(!profile.sample.is_empty(), "a busy agent was sampled");
    assert!(strings.iter().any(|s| s.contains("ocelot")), "ocelot's functions are named");

    assert_eq!(http_get(addr, "/debug/pprof/profile?seconds=0").0, 400);
    let (status, _, heap) = http_get(addr, "/debug/pprof/heap");
    assert_eq!(status, 200);
    let heap = String::from_utf8(heap).unwrap();
    let rss: u64 = heap.lines().find_map(|l| l.strip_prefix("current_rss_bytes ")).unwrap().parse().unwrap();
    assert!(rss > 1 << 20, "{heap}");
    assert_eq!(http_get(addr, "/debug/pprof/goroutine").0, 404);
    assert!(agent.stop().success());
}

#[test]
fn save_to_file_writes_the_runs_profile_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.pprof");
    let agent = Agent::start(&config(&format!("    endpoint: 127.0.0.1:0\n    save_to_file: {}", path.display())));
    let addr = agent.endpoint("pprof at /debug/pprof/.", "endpoint", Some("pprof"));
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| load(&agent, &stop));
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    // The whole run is being profiled: no second profile.
    assert_eq!(http_get(addr, "/debug/pprof/profile?seconds=1").0, 409);
    assert!(!path.exists());
    assert!(agent.stop().success());
    let profile = decode(&std::fs::read(&path).unwrap());
    assert!(!profile.sample.is_empty());
    assert!(profile.duration_nanos >= 1_000_000_000, "{}", profile.duration_nanos);
}

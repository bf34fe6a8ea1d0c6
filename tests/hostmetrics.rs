//! The `hostmetrics` receiver: the real binary on the fixture host tree (through
//! `root_path`) exported to Prometheus text, and the scrapers on this machine's own
//! `/proc` with a few hundred processes started by the test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Agent, http_get, parse_metric, repo_path, wait_until};
use ocelot::receivers::hostmetrics::{HostmetricsConfig, Report, Scrape};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::Metric;

#[test]
fn fixture_host_through_root_path_to_prometheus() {
    let root = repo_path("tests/fixtures/hostfs");
    let agent = Agent::start(&format!(
        r#"
receivers:
  hostmetrics:
    collection_interval: 200ms
    initial_delay: 0s
    root_path: {root}
    scrapers:
      cpu:
      memory:
      load:
        cpu_average: true
      disk:
      filesystem:
      network:
        exclude:
          interfaces: [lo]
          match_type: strict
      paging:
      processes:
      process:
        max_processes: 2
      system:
exporters:
  prometheus:
    endpoint: 127.0.0.1:0
    resource_to_telemetry_conversion:
      enabled: true
service:
  pipelines:
    metrics:
      receivers: [hostmetrics]
      exporters: [prometheus]
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#,
        root = root.display()
    ));
    let target = agent.prometheus_exporter("prometheus");
    let scrape = || String::from_utf8(http_get(target, "/metrics").2).unwrap();
    let mut text = String::new();
    wait_until(Duration::from_secs(10), "process metrics exported", || {
        text = scrape();
        text.contains("process_memory_virtual_bytes")
    });
    // The sum of the series of `name` that carry every `k="v"` pair of `labels`.
    let value = |name: &str, labels: &str| -> f64 {
        let lines: Vec<&str> = text.lines().filter(|l| labels.split(',').all(|pair| l.contains(pair))).collect();
        parse_metric(&lines.join("\n"), name, "")
    };
    assert_eq!(value("system_cpu_time_seconds_total", r#"cpu="cpu0",state="user""#), 150.0);
    assert_eq!(value("system_memory_usage_bytes", r#"state="used""#), 8_192_000.0 * 1024.0);
    assert_eq!(value("system_cpu_load_average_1m", ""), 0.26, "0.52 over 2 CPUs");
    // The fixture booted long before now: its uptime is now minus its btime.
    let boot = 1_763_790_000.0;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let uptime = value("system_uptime_seconds", "");
    assert!((uptime - (now - boot)).abs() < 30.0, "system.uptime {uptime}");
    assert_eq!(value("system_disk_io_bytes_total", r#"device="sda",direction="read""#), 2_000_000.0 * 512.0);
    assert_eq!(value("system_network_io_bytes_total", r#"device="eth0",direction="transmit""#), 987_654_321.0);
    assert!(!text.contains(r#"device="lo""#), "lo is excluded");
    assert_eq!(value("system_network_connections", r#"state="LISTEN""#), 2.0);
    assert_eq!(value("system_paging_faults_total", r#"type="major""#), 55.0);
    assert_eq!(value("system_processes_created_total", ""), 4242.0);
    assert_eq!(value("system_processes_count", r#"status="sleeping""#), 3.0);
    // statvfs runs on the mount points under root_path: `/` is the fixture directory.
    assert!(value("system_filesystem_usage_bytes", r#"mountpoint="/",state="used""#) > 0.0);
    // The top two processes by CPU, with their resource attributes as labels.
    assert_eq!(value("process_memory_virtual_bytes", r#"process_command="/usr/lib/postgresql/16/bin/postgres""#), 4e9);
    assert!(text.contains(r#"process_owner="postgres""#), "owner from the host's /etc/passwd");
    assert!(text.contains(r#"process_executable_name="systemd""#));
    assert!(!text.contains(r#"process_pid="200""#), "max_processes: 2");
    // Self-metrics: what the process scraper saw and skipped, and failed scrapes.
    // Per scrape: 7 seen, 2 emitted, 3 cut by max_processes, 1 malformed, 1 vanished. The
    // counters move one after another, so a read can land mid-scrape: read them all
    // from one response until it falls between scrapes.
    let mut last = Vec::new();
    wait_until(Duration::from_secs(10), "process counters of whole scrapes", || {
        let (_, _, body) = http_get(agent.metrics_addr(), "/metrics");
        let text = String::from_utf8_lossy(&body);
        let get = |name: &str, labels: &str| parse_metric(&text, name, labels);
        let seen = get("ocelot_hostmetrics_processes_seen_total", "");
        let scrapes = seen / 7.0;
        last = vec![
            seen,
            get("ocelot_hostmetrics_processes_emitted_total", ""),
            get("ocelot_hostmetrics_processes_skipped_total", r#"reason="max_processes""#),
            get("ocelot_hostmetrics_processes_skipped_total", r#"reason="malformed""#),
            get("ocelot_hostmetrics_processes_skipped_total", r#"reason="vanished""#),
        ];
        scrapes >= 1.0 && last == [7.0, 2.0, 3.0, 1.0, 1.0].map(|per| per * scrapes)
    });
    assert!(last[0] >= 7.0, "{last:?}");
    // /boot and "/data dir" have no directory under the fixture root to statvfs.
    assert!(agent.metric("ocelot_hostmetrics_scrape_errors_total", r#"scraper="filesystem""#) >= 2.0);
    assert!(agent.metric("ocelot_hostmetrics_scrape_duration_seconds_count", r#"scraper="process""#) >= 1.0);
    assert_eq!(agent.count_logs("filesystem scraper"), 1, "logged once a minute, not every 200ms");
    assert!(agent.stop().success());
}

fn config(yaml: &str) -> HostmetricsConfig {
    let node = ocelot::config::node::parse("test.yaml", yaml).unwrap();
    ocelot::component::parse_config(&node).unwrap()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn metrics(request: &ExportMetricsServiceRequest) -> Vec<&Metric> {
    request.resource_metrics.iter().flat_map(|r| &r.scope_metrics).flat_map(|s| &s.metrics).collect()
}

fn values(metric: &Metric) -> Vec<(BTreeMap<String, String>, f64)> {
    ocelot::receivers::hostmetrics::values(metric).into_iter().map(|(a, v)| (a.into_iter().collect(), v)).collect()
}

fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        other => format!("{other:?}"),
    }
}

fn find<'a>(request: &'a ExportMetricsServiceRequest, name: &str) -> &'a Metric {
    metrics(request).into_iter().find(|m| m.name == name).unwrap_or_else(|| panic!("no {name}"))
}

/// The processes a scrape emitted, as resource attributes.
fn processes(request: &ExportMetricsServiceRequest) -> Vec<BTreeMap<String, String>> {
    request
        .resource_metrics
        .iter()
        .filter_map(|r| {
            let attrs: BTreeMap<String, String> = r
                .resource
                .as_ref()?
                .attributes
                .iter()
                .map(|kv| (kv.key.clone(), text(kv.value.as_ref().unwrap().value.as_ref())))
                .collect();
            attrs.contains_key("process.pid").then_some(attrs)
        })
        .collect()
}

fn errors(report: &Report, scraper: &str) -> Vec<String> {
    report.errors.iter().filter(|(s, _, _)| *s == scraper).map(|(_, _, e)| e.clone()).collect()
}

#[test]
fn this_machines_proc_passes_sanity_checks() {
    let mut scrape = Scrape::new(&config(
        "scrapers:
  cpu:
    metrics:
      system.cpu.utilization: {enabled: true}
      system.cpu.logical.count: {enabled: true}
  memory:
    metrics:
      system.memory.limit: {enabled: true}
  load:
  disk:
  network:
  paging:
  processes:
  process:
    max_processes: 100000
    mute_process_exe_error: true
    metrics:
      process.threads: {enabled: true}
      process.cpu.utilization: {enabled: true}
",
    ))
    .unwrap();
    let (_, first) = scrape.run(now());
    std::thread::sleep(Duration::from_millis(300));
    let (request, report) = scrape.run(now());
    for scraper in ["cpu", "memory", "load", "disk", "network", "processes"] {
        assert_eq!(errors(&first, scraper), Vec::<String>::new());
        assert_eq!(errors(&report, scraper), Vec::<String>::new());
    }
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpus = stat.lines().filter(|l| l.starts_with("cpu") && !l.starts_with("cpu ")).count();
    let cpu_time = values(find(&request, "system.cpu.time"));
    assert_eq!(cpu_time.len(), cpus * 8);
    assert!(cpu_time.iter().any(|(a, v)| a["state"] == "idle" && *v > 0.0));
    for (attrs, v) in values(find(&request, "system.cpu.utilization")) {
        assert!((0.0..=1.0).contains(&v), "{attrs:?} {v}");
    }
    assert_eq!(values(find(&request, "system.cpu.logical.count"))[0].1, cpus as f64);
    let total = values(find(&request, "system.memory.limit"))[0].1;
    let usage: BTreeMap<String, f64> =
        values(find(&request, "system.memory.usage")).into_iter().map(|(a, v)| (a["state"].clone(), v)).collect();
    assert!(usage["used"] > 0.0 && usage["used"] + usage["free"] <= total, "{usage:?} of {total}");
    assert!(values(find(&request, "system.cpu.load_average.1m"))[0].1 >= 0.0);
    let count: f64 = values(find(&request, "system.processes.count")).iter().map(|(_, v)| v).sum();
    assert!(count >= 1.0);
    // This test process is among the processes, with what /proc says of it.
    let me = std::process::id().to_string();
    let mine = processes(&request).into_iter().find(|p| p["process.pid"] == me).expect("this process");
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    assert!(mine["process.executable.name"].starts_with(comm.trim()), "{mine:?}");
    assert!(mine["process.command_line"].contains("hostmetrics"), "{mine:?}");
    let counts = report.process.as_ref().unwrap();
    assert_eq!(counts.emitted as usize, processes(&request).len());
    assert_eq!(counts.over_max, 0);
}

/// A few hundred processes with names only this test uses: symlinks to `sleep`, `sh`
/// and `python3` named `<prefix><role>` (the kernel names a process after the file
/// it executed).
struct Crowd {
    dir: tempfile::TempDir,
    prefix: String,
    children: Vec<Child>,
}

impl Crowd {
    fn new() -> Crowd {
        let prefix = format!("hm{:05}", std::process::id() % 100_000);
        let dir = tempfile::tempdir().unwrap();
        // The interpreter itself, not a wrapper script (pyenv shims dispatch on their name).
        let python = std::env::var("OCELOT_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let out = Command::new(&python)
            .args(["-c", "import os, sys; print(os.path.realpath(sys.executable))"])
            .output()
            .unwrap_or_else(|e| panic!("{python}: {e}"));
        let python = std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        for (role, target) in
            [("sleep", which("sleep")), ("short", which("sleep")), ("busy", which("sh")), ("mem", python)]
        {
            std::os::unix::fs::symlink(target, dir.path().join(format!("{prefix}{role}"))).unwrap();
        }
        Crowd { dir, prefix, children: Vec::new() }
    }

    fn spawn(&mut self, role: &str, args: &[&str]) -> u32 {
        let child = Command::new(self.dir.path().join(format!("{}{role}", self.prefix)))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        self.children.push(child);
        pid
    }

    fn name(&self, role: &str) -> String {
        format!("{}{role}", self.prefix)
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn which(program: &str) -> std::path::PathBuf {
    if program.contains('/') {
        return program.into();
    }
    std::env::var("PATH")
        .unwrap()
        .split(':')
        .map(|d| std::path::Path::new(d).join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{program} not on PATH"))
}

#[test]
fn a_crowd_of_processes_is_bounded_thresholded_aged_and_forgotten() {
    let mut crowd = Crowd::new();
    let long: Vec<u32> = (0..200).map(|_| crowd.spawn("sleep", &["120"])).collect();
    let long_started = Instant::now();
    let busy = crowd.spawn("busy", &["-c", "while :; do :; done"]);
    let mem = crowd.spawn(
        "mem",
        &["-c", "import sys, time\nb = bytearray(160 << 20)\nb[::4096] = b'x' * len(b[::4096])\nprint('ready', flush=True)\ntime.sleep(120)"],
    );
    // Short-lived processes come and go all through the test.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        let path = crowd.dir.path().join(crowd.name("short"));
        std::thread::spawn(move || {
            let mut started = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut batch: Vec<Child> = (0..20).map(|_| Command::new(&path).arg("0.05").spawn().unwrap()).collect();
                started += batch.len();
                for c in &mut batch {
                    c.wait().unwrap();
                }
            }
            started
        })
    };
    let rss = |pid: u32| -> u64 {
        let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
        statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
            * ocelot::receivers::hostmetrics::memory::page_size()
    };
    wait_until(Duration::from_secs(20), "the memory hog to fill its 160 MiB", || rss(mem) > 150 << 20);
    let include = format!("      names: ['{}*']\n      match_type: glob\n", crowd.prefix);
    let ours = |request: &ExportMetricsServiceRequest| -> Vec<u32> {
        processes(request).iter().map(|p| p["process.pid"].parse().unwrap()).collect()
    };

    // max_processes: the top 50 by CPU, then memory; the busy loop and the memory hog lead.
    let mut top =
        Scrape::new(&config(&format!("scrapers:\n  process:\n    max_processes: 50\n    include:\n{include}")))
            .unwrap();
    top.run(now());
    std::thread::sleep(Duration::from_millis(500));
    let (request, report) = top.run(now());
    let emitted = ours(&request);
    let counts = report.process.clone().unwrap();
    assert_eq!(emitted.len(), 50);
    assert_eq!(emitted[0], busy, "the busy loop uses a core");
    assert!(emitted.contains(&mem), "the memory hog is kept");
    assert!(counts.over_max >= 152, "{counts:?}");
    assert!(counts.filtered > 0, "this machine's other processes are filtered out: {counts:?}");
    assert_eq!(errors(&report, "process"), Vec::<String>::new());

    // Thresholds: at least 20% of a core or 100 MiB: only the two that matter.
    let mut thresholds = Scrape::new(&config(&format!(
        "scrapers:\n  process:\n    min_cpu_percent: 20\n    min_memory_mib: 100\n    include:\n{include}"
    )))
    .unwrap();
    thresholds.run(now());
    std::thread::sleep(Duration::from_millis(500));
    let (request, report) = thresholds.run(now());
    let mut emitted = ours(&request);
    emitted.sort_unstable();
    let mut expected = vec![busy, mem];
    expected.sort_unstable();
    assert_eq!(emitted, expected);
    assert!(report.process.unwrap().below_thresholds >= 200);

    // min_age: processes younger than 3 s are skipped; new long-lived ones appear
    // once they are old enough, and the short-lived ones never do.
    std::thread::sleep(Duration::from_millis(3300).saturating_sub(long_started.elapsed()));
    let mut aged =
        Scrape::new(&config(&format!("scrapers:\n  process:\n    min_age: 3s\n    include:\n{include}"))).unwrap();
    let fresh: Vec<u32> = (0..100).map(|_| crowd.spawn("sleep", &["120"])).collect();
    let started = Instant::now();
    let (request, report) = aged.run(now());
    let emitted: HashSet<u32> = ours(&request).into_iter().collect();
    assert!(fresh.iter().all(|p| !emitted.contains(p)), "too young");
    assert!(long.iter().all(|p| emitted.contains(p)), "the first 200 are old enough by now");
    assert!(report.process.unwrap().below_thresholds >= 100);
    std::thread::sleep(Duration::from_secs(3).saturating_sub(started.elapsed()) + Duration::from_millis(200));
    let (request, _) = aged.run(now());
    let names: Vec<String> = processes(&request).iter().map(|p| p["process.executable.name"].clone()).collect();
    let emitted: HashSet<u32> = ours(&request).into_iter().collect();
    assert!(fresh.iter().all(|p| emitted.contains(p)), "3 s old now");
    assert!(!names.contains(&crowd.name("short")), "50 ms processes never reach 3 s");

    // Exits: the 200 first sleepers end; they are no longer emitted nor tracked.
    let tracked_before = report_tracked(&mut aged);
    for child in crowd.children.iter_mut().filter(|c| long.contains(&c.id())) {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let (request, report) = aged.run(now());
    let emitted: HashSet<u32> = ours(&request).into_iter().collect();
    assert!(long.iter().all(|p| !emitted.contains(p)));
    // Other processes of this machine come and go too (a CI machine runs other tests).
    assert!(report.tracked + 150 <= tracked_before, "tracked {} after, {tracked_before} before", report.tracked);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let churned = churn.join().unwrap();
    assert!(churned >= 100, "only {churned} short-lived processes");
}

fn report_tracked(scrape: &mut Scrape) -> usize {
    scrape.run(now()).1.tracked
}

//! The `filelog` receiver with the real binary: tailing, rotation by rename and by
//! copytruncate while a writer keeps writing, restart from the checkpoint, long lines.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::*;

#[test]
fn a_thousand_files_at_once() {
    let logs = tempfile::tempdir().unwrap();
    for f in 0..1000 {
        append(&logs.path().join(format!("f{f:04}.log")), 0..3, &format!("file {f}"));
    }
    let agent = Agent::start(&config(logs.path(), ""));
    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(30), "3000 records", || counts(&out).len() == 3000);
    let counts = counts(&out);
    assert!(counts.values().all(|&n| n == 1));
    assert!(counts.contains_key("file 999 line 2"));
    agent.wait_metric("otelcol_fileconsumer_open_files", "", 1000.0);
    assert!(agent.stop().success());
}

fn config(logs: &Path, extra: &str) -> String {
    format!(
        r#"
receivers:
  filelog:
    include: ["{}/*.log"]
    start_at: beginning
    poll_interval: 50ms
{extra}
exporters:
  file:
    path: "{{dir}}/out.jsonl"
service:
  pipelines:
    logs:
      receivers: [filelog]
      exporters: [file]
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#,
        logs.display()
    )
}

fn append(path: &Path, lines: std::ops::Range<usize>, prefix: &str) {
    let mut file = OpenOptions::new().create(true).append(true).open(path).unwrap();
    for i in lines {
        writeln!(file, "{prefix} line {i}").unwrap();
    }
}

/// Every body the file exporter wrote, with how often.
fn counts(out: &Path) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for body in log_bodies(&read_json_lines(out)) {
        *counts.entry(body).or_default() += 1;
    }
    counts
}

/// Compares line counts, naming only what differs (a few of each kind).
fn assert_counts(got: BTreeMap<String, usize>, want: BTreeMap<String, usize>) {
    if got == want {
        return;
    }
    let few = |items: Vec<&String>| format!("{} {:?}", items.len(), items.into_iter().take(5).collect::<Vec<_>>());
    let missing = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let unexpected = got.keys().filter(|k| !want.contains_key(*k)).collect();
    let miscounted = got.iter().filter(|(k, n)| want.get(*k).is_some_and(|w| w != *n)).map(|(k, _)| k).collect();
    panic!(
        "missing {}; unexpected {}; counted differently (repeated) {}",
        few(missing),
        few(unexpected),
        few(miscounted)
    );
}

fn expected(prefix: &str, lines: std::ops::Range<usize>) -> BTreeMap<String, usize> {
    lines.map(|i| (format!("{prefix} line {i}"), 1)).collect()
}

#[test]
fn tails_a_file_with_its_name_and_static_attributes() {
    let logs = tempfile::tempdir().unwrap();
    let app = logs.path().join("app.log");
    append(&app, 0..3, "early");
    let agent = Agent::start(&config(
        logs.path(),
        "    include_file_path: true\n    attributes: { team: payments }\n    resource: { service.name: billing }",
    ));
    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(10), "the early lines", || counts(&out) == expected("early", 0..3));
    // Blank and whitespace-only lines make no record; surrounding whitespace is trimmed.
    std::fs::OpenOptions::new().append(true).open(&app).unwrap().write_all(b"\n   \n  padded \r\n").unwrap();
    wait_until(Duration::from_secs(10), "the padded line", || counts(&out).contains_key("padded"));
    assert_eq!(counts(&out).len(), 4);
    let line = &read_json_lines(&out)[0];
    let record = &line["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
    let attributes: BTreeMap<String, serde_json::Value> = record["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| (kv["key"].as_str().unwrap().to_string(), kv["value"]["stringValue"].clone()))
        .collect();
    assert_eq!(attributes["log.file.name"], "app.log");
    assert_eq!(attributes["log.file.path"], app.display().to_string());
    assert_eq!(attributes["team"], "payments");
    assert_eq!(line["resourceLogs"][0]["resource"]["attributes"][0]["value"]["stringValue"], "billing");
    assert!(record["observedTimeUnixNano"].as_str().is_some());
    agent.wait_metric("otelcol_receiver_accepted_log_records_total", "receiver=\"filelog\"", 4.0);
    assert!(agent.stop().success());
}

#[test]
fn rename_rotation_while_writing_loses_nothing() {
    let logs = tempfile::tempdir().unwrap();
    let app = logs.path().join("app.log");
    append(&app, 0..1, "a");
    let agent = Agent::start(&config(logs.path(), ""));
    let out = agent.dir.path().join("out.jsonl");
    // A writer appends a line every millisecond; every 200 ms the file is renamed out of
    // the include and a new one created. Lines written just before a rename are read
    // through the descriptor still open on the renamed file.
    let mut next = 1;
    let mut file = OpenOptions::new().append(true).open(&app).unwrap();
    for round in 0..5 {
        for _ in 0..200 {
            writeln!(file, "a line {next}").unwrap();
            next += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
        std::fs::rename(&app, logs.path().join(format!("app.{round}"))).unwrap();
        file = OpenOptions::new().create(true).append(true).open(&app).unwrap();
    }
    for _ in 0..100 {
        writeln!(file, "a line {next}").unwrap();
        next += 1;
    }
    // A new file the scan its creation triggered saw empty is found at the next event
    // on it, or at the safety-net scan (5 s) on a loaded machine; a line lost for good
    // shows here by name.
    let started = std::time::Instant::now();
    while counts(&out).len() != next && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_counts(counts(&out), expected("a", 0..next));
    agent.wait_metric("ocelot_filelog_rotations_total", "kind=\"moved\"", 5.0);
    agent.wait_metric("otelcol_fileconsumer_open_files", "receiver=\"filelog\"", 1.0);
    assert!(agent.stop().success());
}

fn gzip(lines: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(lines).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn rotation_to_gzip_while_writing_reads_every_line_once() {
    let logs = tempfile::tempdir().unwrap();
    let app = logs.path().join("app.log");
    // An archive from before the start is read (decompressed) too.
    let old: String = (0..50).map(|i| format!("old line {i}\n")).collect();
    std::fs::write(logs.path().join("app.log.9.gz"), gzip(old.as_bytes())).unwrap();
    append(&app, 0..1, "g");
    let config = config(logs.path(), "    compression: auto").replace("/*.log\"", "/app.log*\"");
    let agent = Agent::start(&config);
    let out = agent.dir.path().join("out.jsonl");
    // logrotate with `compress`: app.log is renamed to app.log.1 and a new app.log
    // created; app.log.1 is compressed to app.log.1.gz (written in two halves, so the
    // receiver sees a cut-off gzip stream) and deleted; the archive is then shifted.
    let mut next = 1;
    let mut file = OpenOptions::new().append(true).open(&app).unwrap();
    let write = |file: &mut std::fs::File, n: usize, next: &mut usize| {
        for _ in 0..n {
            writeln!(file, "g line {next}").unwrap();
            *next += 1;
            std::thread::sleep(Duration::from_micros(500));
        }
    };
    for round in 0..4 {
        write(&mut file, 300, &mut next);
        let rotated = logs.path().join("app.log.1");
        std::fs::rename(&app, &rotated).unwrap();
        file = OpenOptions::new().create(true).append(true).open(&app).unwrap();
        write(&mut file, 50, &mut next);
        let compressed = gzip(&std::fs::read(&rotated).unwrap());
        let gz = logs.path().join("app.log.1.gz");
        let (first, second) = compressed.split_at(compressed.len() / 10);
        std::fs::write(&gz, first).unwrap();
        write(&mut file, 100, &mut next);
        OpenOptions::new().append(true).open(&gz).unwrap().write_all(second).unwrap();
        std::fs::remove_file(&rotated).unwrap();
        write(&mut file, 50, &mut next);
        std::fs::rename(&gz, logs.path().join(format!("app.log.{}.gz", round + 2))).unwrap();
    }
    write(&mut file, 100, &mut next);
    let mut want = expected("g", 0..next);
    want.extend(expected("old", 0..50));
    wait_until(Duration::from_secs(15), "every line", || counts(&out).len() == want.len());
    std::thread::sleep(Duration::from_millis(300));
    assert_counts(counts(&out), want);
    assert!(agent.stop().success());
}

#[test]
fn copytruncate_reads_the_new_content_from_the_start() {
    let logs = tempfile::tempdir().unwrap();
    let app = logs.path().join("app.log");
    append(&app, 0..50, "before");
    let agent = Agent::start(&config(logs.path(), ""));
    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(10), "the first lines", || counts(&out).len() == 50);
    // copytruncate: copy aside (not matched by the include), truncate in place.
    std::fs::copy(&app, logs.path().join("app.log.1")).unwrap();
    OpenOptions::new().write(true).open(&app).unwrap().set_len(0).unwrap();
    append(&app, 0..30, "after");
    wait_until(Duration::from_secs(10), "the new lines", || counts(&out).len() == 80);
    let mut all = expected("before", 0..50);
    all.extend(expected("after", 0..30));
    assert_counts(counts(&out), all);
    agent.wait_metric("ocelot_filelog_rotations_total", "kind=\"truncated\"", 1.0);
    assert!(agent.stop().success());
}

#[test]
fn restart_resumes_from_the_checkpoint_and_a_corrupt_one_is_ignored() {
    let logs = tempfile::tempdir().unwrap();
    let storage = tempfile::tempdir().unwrap();
    let app = logs.path().join("app.log");
    append(&app, 0..20, "one");
    let storage_arg = storage.path().to_str().unwrap();
    let first = Agent::start_with_args(&config(logs.path(), ""), &["--storage-dir", storage_arg]);
    let out_first = first.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(10), "the first run's lines", || counts(&out_first).len() == 20);
    assert!(first.stop().success());

    // Written while no agent runs.
    append(&app, 0..15, "two");
    let second = Agent::start_with_args(&config(logs.path(), ""), &["--storage-dir", storage_arg]);
    let out_second = second.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(10), "the lines written while stopped", || counts(&out_second).len() == 15);
    std::thread::sleep(Duration::from_millis(300));
    assert_counts(counts(&out_second), expected("two", 0..15));
    assert!(second.stop().success());

    // A corrupt checkpoint is reported and ignored: the file is read again from the start.
    let state = std::fs::read_dir(storage.path()).unwrap().next().unwrap().unwrap().path();
    std::fs::write(&state, b"garbage").unwrap();
    let third = Agent::start_with_args(&config(logs.path(), ""), &["--storage-dir", storage_arg]);
    let out_third = third.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(10), "a full re-read", || counts(&out_third).len() == 35);
    assert_eq!(third.count_logs("Checkpoint ignored."), 1);
    assert!(third.stop().success());
}

#[test]
fn a_10_mb_line_is_cut_at_max_log_size_and_the_next_line_follows() {
    let logs = tempfile::tempdir().unwrap();
    let app = logs.path().join("app.log");
    let mut file = std::fs::File::create(&app).unwrap();
    file.write_all(&vec![b'x'; 10 << 20]).unwrap();
    file.write_all(b"\nafter the long line\n").unwrap();
    drop(file);
    let agent = Agent::start(&config(logs.path(), "    max_log_size: 4MiB"));
    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(20), "the pieces and the next line", || {
        log_bodies(&read_json_lines(&out)).len() == 4
    });
    let bodies = log_bodies(&read_json_lines(&out));
    assert_eq!(bodies.iter().map(String::len).collect::<Vec<_>>(), vec![4 << 20, 4 << 20, 2 << 20, 19]);
    assert_eq!(bodies[3], "after the long line");
    agent.wait_metric("ocelot_filelog_lines_truncated_total", "", 2.0);
    agent.wait_metric("ocelot_filelog_read_bytes_total", "", ((10 << 20) + 21) as f64);
    assert!(agent.stop().success());
}

#[test]
fn start_at_end_skips_what_was_there_and_invalid_utf8_is_replaced() {
    let logs = tempfile::tempdir().unwrap();
    let app = logs.path().join("app.log");
    append(&app, 0..10, "old");
    let agent = Agent::start(&config(logs.path(), "").replace("start_at: beginning", "start_at: end"));
    std::thread::sleep(Duration::from_millis(300));
    std::fs::OpenOptions::new().append(true).open(&app).unwrap().write_all(b"new \xff\xfe bytes\n").unwrap();
    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(10), "the new line", || !log_bodies(&read_json_lines(&out)).is_empty());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(log_bodies(&read_json_lines(&out)), vec!["new \u{fffd}\u{fffd} bytes"]);
    assert!(agent.stop().success());
}

/// Complete JSON lines only: a file exporter killed mid-write may leave a torn last line.
fn complete_bodies(out: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(out) else { return Vec::new() };
    let lines: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    log_bodies(&lines)
}

#[test]
fn kill_9_in_the_middle_of_a_stream_loses_no_line() {
    let logs = tempfile::tempdir().unwrap();
    let storage = tempfile::tempdir().unwrap();
    let app = logs.path().join("app.log");
    const LINES: usize = 30_000;
    let writer_path = app.clone();
    let writer = std::thread::spawn(move || {
        let mut file = OpenOptions::new().create(true).append(true).open(&writer_path).unwrap();
        for i in 0..LINES {
            writeln!(file, "k line {i}").unwrap();
            if i % 100 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    let storage_arg = storage.path().to_str().unwrap().to_string();
    let mut outputs = Vec::new();
    // Three agents killed with SIGKILL at different moments, then one that finishes.
    for (round, life) in [150u64, 400, 250].into_iter().enumerate() {
        let agent = Agent::start_with_args(&config(logs.path(), ""), &["--storage-dir", &storage_arg]);
        std::thread::sleep(Duration::from_millis(life + 37 * round as u64));
        signal(agent.pid(), "KILL");
        let kept = tempfile::tempdir().unwrap();
        let out = kept.path().join("out.jsonl");
        // Let the process die before reading what it wrote.
        std::thread::sleep(Duration::from_millis(100));
        std::fs::copy(agent.dir.path().join("out.jsonl"), &out).ok();
        outputs.push((kept, out));
        drop(agent);
    }
    writer.join().unwrap();
    let last = Agent::start_with_args(&config(logs.path(), ""), &["--storage-dir", &storage_arg]);
    let last_out = last.dir.path().join("out.jsonl");
    let seen = |outputs: &[(tempfile::TempDir, std::path::PathBuf)]| {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for body in outputs.iter().flat_map(|(_, out)| complete_bodies(out)).chain(complete_bodies(&last_out)) {
            *counts.entry(body).or_default() += 1;
        }
        counts
    };
    wait_until(Duration::from_secs(30), "every line after the kills", || seen(&outputs).len() == LINES);
    let counts = seen(&outputs);
    let missing: Vec<usize> = (0..LINES).filter(|i| !counts.contains_key(&format!("k line {i}"))).collect();
    assert!(missing.is_empty(), "lost {} lines, first {:?}", missing.len(), &missing[..missing.len().min(5)]);
    // Only what was in flight at a kill may repeat: in each killed agent's output, the
    // lines a later agent sent again form a tail, after everything it had committed.
    for (i, (_, out)) in outputs.iter().enumerate() {
        let later: std::collections::HashSet<String> =
            outputs[i + 1..].iter().flat_map(|(_, o)| complete_bodies(o)).chain(complete_bodies(&last_out)).collect();
        let mine = complete_bodies(out);
        let first_repeat = mine.iter().position(|b| later.contains(b)).unwrap_or(mine.len());
        let stray = mine[first_repeat..].iter().filter(|b| !later.contains(*b)).count();
        assert_eq!(stray, 0, "agent {i}: a repeated line before a line that was not repeated");
    }
    assert!(last.stop().success());
}

#[test]
fn multiline_stack_traces_become_one_record_each() {
    let logs = tempfile::tempdir().unwrap();
    let app = logs.path().join("app.log");
    let agent = Agent::start(&config(
        logs.path(),
        "    multiline:\n      line_start_pattern: '^\\d{4}-\\d{2}-\\d{2}'\n    force_flush_period: 200ms",
    ));
    let trace = "2026-11-22 10:00:00 ERROR request failed\n\
                 java.lang.IllegalStateException: boom\n\
                 \tat com.example.Handler.handle(Handler.java:42)\n\
                 \tat com.example.Server.run(Server.java:7)\n\
                 2026-11-22 10:00:01 INFO recovered\n";
    std::fs::write(&app, trace).unwrap();
    let out = agent.dir.path().join("out.jsonl");
    // The first record ends when the next one starts; the last after the flush period.
    wait_until(Duration::from_secs(10), "both records", || log_bodies(&read_json_lines(&out)).len() == 2);
    let bodies = log_bodies(&read_json_lines(&out));
    assert_eq!(
        bodies[0],
        "2026-11-22 10:00:00 ERROR request failed\njava.lang.IllegalStateException: boom\n\
         \tat com.example.Handler.handle(Handler.java:42)\n\tat com.example.Server.run(Server.java:7)"
    );
    assert_eq!(bodies[1], "2026-11-22 10:00:01 INFO recovered");
    assert!(agent.stop().success());
}

#[test]
fn container_logs_cri_and_docker_with_partials_and_kubernetes_metadata() {
    let logs = tempfile::tempdir().unwrap();
    let pod_dir = logs.path().join("pods/payments_api-7d9f_0f1e2d3c-aaaa-bbbb/server");
    std::fs::create_dir_all(&pod_dir).unwrap();
    std::fs::write(
        pod_dir.join("0.log"),
        "2024-03-30T08:31:20.545192187Z stdout P first half, \n\
         2024-03-30T08:31:20.545192188Z stdout F second half\n\
         2024-03-30T08:31:21.000000000Z stderr F an error\n",
    )
    .unwrap();
    let docker_dir = logs.path().join("pods/payments_worker-1_11112222-cccc/worker");
    std::fs::create_dir_all(&docker_dir).unwrap();
    std::fs::write(
        docker_dir.join("2.log"),
        "{\"log\":\"docker \",\"stream\":\"stdout\",\"time\":\"2024-03-30T08:31:22Z\"}\n\
         {\"log\":\"joined\\n\",\"stream\":\"stdout\",\"time\":\"2024-03-30T08:31:22.1Z\"}\n\
         not a container line\n",
    )
    .unwrap();
    // Kubernetes' /var/log/containers holds symlinks to the pod logs.
    let containers = logs.path().join("containers");
    std::fs::create_dir_all(&containers).unwrap();
    std::os::unix::fs::symlink(pod_dir.join("0.log"), containers.join("api-7d9f_payments_server-abc.log")).unwrap();
    std::os::unix::fs::symlink(docker_dir.join("2.log"), containers.join("worker-1_payments_worker-def.log")).unwrap();
    let agent = Agent::start(&config(&containers, "    operators:\n      - type: container"));
    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(10), "four records", || log_bodies(&read_json_lines(&out)).len() == 4);
    let mut by_body = BTreeMap::new();
    for line in read_json_lines(&out) {
        for rl in line["resourceLogs"].as_array().unwrap() {
            let resource: BTreeMap<String, String> = rl["resource"]["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|kv| {
                    (kv["key"].as_str().unwrap().to_string(), kv["value"]["stringValue"].as_str().unwrap().to_string())
                })
                .collect();
            for record in rl["scopeLogs"][0]["logRecords"].as_array().unwrap() {
                let attributes: BTreeMap<String, String> = record["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|kv| {
                        (
                            kv["key"].as_str().unwrap().to_string(),
                            kv["value"]["stringValue"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect();
                let body = record["body"]["stringValue"].as_str().unwrap().to_string();
                by_body.insert(body, (resource.clone(), attributes, record["timeUnixNano"].clone()));
            }
        }
    }
    let (resource, attributes, time) = &by_body["first half, second half"];
    assert_eq!(resource["k8s.namespace.name"], "payments");
    assert_eq!(resource["k8s.pod.name"], "api-7d9f");
    assert_eq!(resource["k8s.pod.uid"], "0f1e2d3c-aaaa-bbbb");
    assert_eq!(resource["k8s.container.name"], "server");
    assert_eq!(resource["k8s.container.restart_count"], "0");
    assert_eq!(attributes["log.iostream"], "stdout");
    assert_eq!(time, "1711787480545192187");
    assert_eq!(by_body["an error"].1["log.iostream"], "stderr");
    let (resource, attributes, _) = &by_body["docker joined"];
    assert_eq!(resource["k8s.pod.name"], "worker-1");
    assert_eq!(resource["k8s.container.restart_count"], "2");
    assert_eq!(attributes["log.iostream"], "stdout");
    // on_error: send keeps a line it cannot parse, as it was, and counts it.
    assert!(by_body.contains_key("not a container line"));
    agent.wait_metric("ocelot_filelog_parse_errors_total", "", 1.0);
    assert!(agent.stop().success());
}

#[test]
fn file_system_events_deliver_new_lines_long_before_the_poll_interval() {
    let logs = tempfile::tempdir().unwrap();
    let agent = Agent::start(&config(logs.path(), "").replace("poll_interval: 50ms", "poll_interval: 60s"));
    std::thread::sleep(Duration::from_millis(200));
    let started = std::time::Instant::now();
    append(&logs.path().join("new.log"), 0..3, "fresh");
    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(10), "lines of a new file", || counts(&out).len() == 3);
    // Found through inotify: a poll would only come after 60 s.
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    append(&logs.path().join("new.log"), 3..5, "fresh");
    wait_until(Duration::from_secs(10), "appended lines", || counts(&out).len() == 5);
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
    assert!(agent.stop().success());
}

#[test]
fn exclude_older_than_skips_stale_files() {
    let logs = tempfile::tempdir().unwrap();
    let stale = logs.path().join("stale.log");
    append(&stale, 0..2, "stale");
    // Two hours old.
    let old = std::time::SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::options().write(true).open(&stale).unwrap().set_modified(old).unwrap();
    append(&logs.path().join("live.log"), 0..2, "live");
    let agent = Agent::start(&config(logs.path(), "    exclude_older_than: 1h"));
    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(10), "the live lines", || counts(&out).len() == 2);
    std::thread::sleep(Duration::from_millis(300));
    assert_counts(counts(&out), expected("live", 0..2));
    assert!(agent.stop().success());
}

#[test]
fn copytruncate_with_the_copy_included_recovers_lines_written_before_the_truncation() {
    let logs = tempfile::tempdir().unwrap();
    let app = logs.path().join("app.log");
    append(&app, 0..50, "c");
    let agent = Agent::start(&config(logs.path(), "").replace("/*.log\"]", "/app.log*\"]"));
    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(10), "the first lines", || counts(&out).len() == 50);
    // Lines land, then logrotate copies and truncates at once, before a poll sees them.
    for round in 0..3 {
        let base = 50 + round * 40;
        append(&app, base..base + 40, "c");
        std::fs::copy(&app, logs.path().join(format!("app.log.{round}"))).unwrap();
        OpenOptions::new().write(true).open(&app).unwrap().set_len(0).unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    append(&app, 170..180, "c");
    wait_until(Duration::from_secs(15), "every line", || counts(&out).len() == 180);
    std::thread::sleep(Duration::from_millis(300));
    assert_counts(counts(&out), expected("c", 0..180));
    assert!(agent.stop().success());
}

#[test]
fn small_files_with_the_same_first_bytes_are_all_read() {
    let logs = tempfile::tempdir().unwrap();
    std::fs::write(logs.path().join("a.log"), "Starting\n").unwrap();
    std::fs::write(logs.path().join("b.log"), "Starting\nmore\n").unwrap();
    std::fs::write(logs.path().join("c.log"), "Starting\n").unwrap();
    let agent = Agent::start(&config(logs.path(), ""));
    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(10), "four records", || log_bodies(&read_json_lines(&out)).len() == 4);
    assert_counts(counts(&out), BTreeMap::from([("Starting".to_string(), 3), ("more".to_string(), 1)]));
    assert!(agent.stop().success());
}

#[test]
fn delete_after_read_removes_files_once_delivered() {
    let logs = tempfile::tempdir().unwrap();
    append(&logs.path().join("one.log"), 0..5, "done");
    append(&logs.path().join("two.log"), 5..9, "done");
    let agent = Agent::start(&config(logs.path(), "    delete_after_read: true"));
    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(10), "both files delivered and deleted", || {
        counts(&out).len() == 9 && !logs.path().join("one.log").exists() && !logs.path().join("two.log").exists()
    });
    assert_counts(counts(&out), expected("done", 0..9));
    assert!(agent.stop().success());
}

#[test]
fn checkpoints_go_to_the_file_storage_extension_directory() {
    let logs = tempfile::tempdir().unwrap();
    append(&logs.path().join("a.log"), 0..5, "s");
    let state = logs.path().join("state/nested");
    let config = config(logs.path(), "    storage: file_storage/offsets").replace(
        "service:\n",
        &format!(
            "extensions:\n  file_storage/offsets:\n    directory: {}\n    create_directory: true\nservice:\n  extensions: [file_storage/offsets]\n",
            state.display()
        ),
    );
    let agent = Agent::start(&config);
    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(10), "the lines", || counts(&out) == expected("s", 0..5));
    assert!(agent.stop().success());
    let names: Vec<String> =
        std::fs::read_dir(&state).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().any(|n| n.starts_with("filelog")), "{names:?}");
}

#[test]
fn operators_parse_container_json_logs_filter_and_move_fields() {
    let logs = tempfile::tempdir().unwrap();
    let pod_dir = logs.path().join("pods/shop_web-1_0a0b0c0d-1111/web");
    std::fs::create_dir_all(&pod_dir).unwrap();
    std::fs::write(
        pod_dir.join("0.log"),
        "2024-03-30T08:31:20.000000000Z stdout F {\"msg\":\"order placed\",\"level\":\"error\",\"ts\":\"2024-03-30 10:31:20.250\",\"order\":7}\n\
         2024-03-30T08:31:21.000000000Z stdout F GET /healthz 200\n\
         2024-03-30T08:31:22.000000000Z stderr F {\"msg\":\"broken json\"\n\
         2024-03-30T08:31:23.000000000Z stdout F plain text line\n",
    )
    .unwrap();
    let operators = r#"    operators:
      - type: container
      - type: filter
        expr: 'body matches "^GET /healthz"'
      - type: json_parser
        if: 'body startsWith "{"'
        parse_ints: true
        timestamp: { parse_from: attributes.ts, layout: '%Y-%m-%d %H:%M:%S.%L', location: Europe/Berlin }
        severity: { parse_from: attributes.level }
      - type: move
        if: 'attributes.msg != nil'
        from: attributes.msg
        to: body
      - type: remove
        field: attributes.ts
        on_error: send_quiet
      - type: add
        field: resource.team
        value: checkout"#;
    let agent = Agent::start(&config(&logs.path().join("pods/*/*"), operators));
    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(10), "three records", || log_bodies(&read_json_lines(&out)).len() == 3);
    let lines = read_json_lines(&out);
    let records: Vec<&serde_json::Value> = lines
        .iter()
        .flat_map(|l| l["resourceLogs"].as_array().unwrap())
        .flat_map(|rl| rl["scopeLogs"][0]["logRecords"].as_array().unwrap())
        .collect();
    let find = |body: &str| *records.iter().find(|r| r["body"]["stringValue"] == body).unwrap();
    let placed = find("order placed");
    // 10:31:20.250 in Berlin (UTC+1 in March before the DST switch on the 31st).
    assert_eq!(placed["timeUnixNano"], "1711791080250000000");
    assert_eq!(placed["severityNumber"], 17);
    assert_eq!(placed["severityText"], "error");
    let attributes = placed["attributes"].as_array().unwrap();
    let attr = |key: &str| attributes.iter().find(|kv| kv["key"] == key).map(|kv| kv["value"].clone());
    assert_eq!(attr("order").unwrap()["intValue"], "7");
    assert_eq!(attr("log.iostream").unwrap()["stringValue"], "stdout");
    assert!(attr("ts").is_none() && attr("msg").is_none());
    // Broken JSON is kept as it was; the health check is filtered out.
    find("{\"msg\":\"broken json\"");
    find("plain text line");
    assert!(!records.iter().any(|r| r["body"]["stringValue"].as_str().unwrap().contains("healthz")));
    for line in &lines {
        for rl in line["resourceLogs"].as_array().unwrap() {
            let resource = rl["resource"]["attributes"].as_array().unwrap();
            assert!(resource.iter().any(|kv| kv["key"] == "team" && kv["value"]["stringValue"] == "checkout"));
            assert!(resource.iter().any(|kv| kv["key"] == "k8s.pod.name" && kv["value"]["stringValue"] == "web-1"));
        }
    }
    agent.wait_metric("ocelot_filelog_records_dropped_total", "reason=\"filter\"", 1.0);
    // The broken JSON line, and `remove` on the two records that have no ts.
    agent.wait_metric("ocelot_filelog_parse_errors_total", "", 3.0);
    assert!(agent.stop().success());
}

/// `lines` lines of about 110 bytes.
fn big_log(path: &Path, lines: usize) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..lines {
        writeln!(file, "line {i} {}", "x".repeat(100)).unwrap();
    }
}

#[test]
fn reading_stops_at_8_mib_not_yet_delivered_while_the_backend_is_down() {
    let logs = tempfile::tempdir().unwrap();
    big_log(&logs.path().join("big.log"), 400_000);
    // An OTLP backend that is down (a port nobody listens on): nothing is acknowledged.
    let dead = free_port();
    let config = config(logs.path(), "").replace(
        "  file:\n    path: \"{dir}/out.jsonl\"",
        &format!("  otlp:\n    endpoint: 127.0.0.1:{dead}\n    tls: {{insecure: true}}\n    retry_on_failure: {{initial_interval: 10s}}"),
    ).replace("exporters: [file]", "exporters: [otlp]");
    let agent = Agent::start_with_args(&config, &["--shutdown-timeout", "1s"]);
    wait_until(Duration::from_secs(10), "some bytes read", || {
        agent.metric("ocelot_filelog_read_bytes_total", "") > 0.0
    });
    std::thread::sleep(Duration::from_secs(2));
    let read = agent.metric("ocelot_filelog_read_bytes_total", "");
    // 8 MiB in flight, plus at most one batch (4 MiB) and one read (256 KiB) past it;
    // the file is 43 MiB.
    assert!(read >= (8 << 20) as f64 && read < (13 << 20) as f64, "{read}");
    assert!(agent.stop().success());
}

#[test]
fn deletion_while_open_and_replacement_under_the_same_name_lose_nothing() {
    let logs = tempfile::tempdir().unwrap();
    let app = logs.path().join("app.log");
    append(&app, 0..300, "a");
    let agent = Agent::start(&config(logs.path(), ""));
    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(10), "the first lines", || counts(&out).len() == 300);
    // Lines written just before the deletion are read through the open descriptor.
    append(&app, 300..400, "a");
    std::fs::remove_file(&app).unwrap();
    append(&app, 0..200, "b");
    wait_until(Duration::from_secs(10), "the new file", || counts(&out).len() == 600);
    // Replaced atomically by a file with other content (a new inode under the same name).
    append(&app, 200..250, "b");
    let replacement = logs.path().join("app.log.tmp");
    append(&replacement, 0..100, "c");
    std::fs::rename(&replacement, &app).unwrap();
    let mut want = expected("a", 0..400);
    want.extend(expected("b", 0..250));
    want.extend(expected("c", 0..100));
    wait_until(Duration::from_secs(10), "every line", || counts(&out).len() == want.len());
    std::thread::sleep(Duration::from_millis(300));
    assert_counts(counts(&out), want);
    assert!(agent.stop().success());
}

#[test]
fn copytruncate_while_a_writer_thread_keeps_writing_reads_every_line_once() {
    let logs = tempfile::tempdir().unwrap();
    let app = logs.path().join("app.log");
    append(&app, 0..1, "w");
    let agent = Agent::start(&config(logs.path(), "").replace("/*.log\"]", "/app.log*\"]"));
    let out = agent.dir.path().join("out.jsonl");
    // The writer appends on its own thread; the rotation takes the lock only for the
    // copy and the truncation, which copytruncate cannot make atomic (a line written
    // between the two is lost by design, as logrotate documents).
    let lock = std::sync::Arc::new(std::sync::Mutex::new(()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (lock, stop, app) = (lock.clone(), stop.clone(), app.clone());
        std::thread::spawn(move || {
            let mut file = OpenOptions::new().append(true).open(&app).unwrap();
            let mut next = 1;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let guard = lock.lock().unwrap();
                writeln!(file, "w line {next} {}", "x".repeat(40)).unwrap();
                drop(guard);
                next += 1;
                std::thread::sleep(Duration::from_micros(300));
            }
            next
        })
    };
    for round in 0..5 {
        std::thread::sleep(Duration::from_millis(150));
        let guard = lock.lock().unwrap();
        std::fs::copy(&app, logs.path().join(format!("app.log.{round}"))).unwrap();
        OpenOptions::new().write(true).open(&app).unwrap().set_len(0).unwrap();
        drop(guard);
    }
    std::thread::sleep(Duration::from_millis(150));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().unwrap();
    wait_until(Duration::from_secs(15), "every line", || counts(&out).len() == written);
    std::thread::sleep(Duration::from_millis(300));
    let want: BTreeMap<String, usize> = (0..written)
        .map(|i| (if i == 0 { "w line 0".to_string() } else { format!("w line {i} {}", "x".repeat(40)) }, 1))
        .collect();
    assert_counts(counts(&out), want);
    assert!(agent.stop().success());
}

/// A filelog → otlphttp config against a test backend, checkpoints in `storage`.
fn backend_config(logs: &Path, backend: &backend::Backend, exporter_extra: &str) -> String {
    format!(
        r#"
receivers:
  filelog:
    include: ["{}/*.log"]
    start_at: beginning
    poll_interval: 50ms
exporters:
  otlphttp:
    endpoint: {}
    compression: none
    retry_on_failure: {{ initial_interval: 50ms, max_interval: 100ms }}
{exporter_extra}
service:
  pipelines:
    logs:
      receivers: [filelog]
      exporters: [otlphttp]
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#,
        logs.display(),
        backend.endpoint()
    )
}

fn lines(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix} line {i}")).collect()
}

#[test]
fn a_batch_refused_for_good_is_dropped_counted_and_the_offset_moves_past_it() {
    use backend::{Backend, Reply};
    let logs = tempfile::tempdir().unwrap();
    let storage = tempfile::tempdir().unwrap();
    let storage_arg = storage.path().to_str().unwrap();
    let backend = Backend::start(|n| Reply::Status(if n == 0 { 400 } else { 200 }));
    append(&logs.path().join("a.log"), 0..10, "a");
    let config = backend_config(logs.path(), &backend, "");
    let agent = Agent::start_with_args(&config, &["--storage-dir", storage_arg]);
    agent.wait_metric("ocelot_filelog_records_dropped_total", "reason=\"rejected\"", 10.0);
    append(&logs.path().join("a.log"), 10..20, "a");
    wait_until(Duration::from_secs(10), "lines 10-19", || backend.accepted().len() >= 10);
    assert!(agent.stop().success());
    // A restart neither re-sends the refused lines nor those delivered after them.
    let agent = Agent::start_with_args(&config, &["--storage-dir", storage_arg]);
    append(&logs.path().join("a.log"), 20..21, "a");
    wait_until(Duration::from_secs(10), "line 20", || backend.accepted().len() >= 11);
    std::thread::sleep(Duration::from_millis(500));
    assert!(agent.stop().success());
    assert_eq!(backend.accepted(), lines("a", 10..21));
}

#[test]
fn a_batch_failing_for_now_is_read_again_until_delivered_once() {
    use backend::{Backend, Reply};
    let logs = tempfile::tempdir().unwrap();
    let storage = tempfile::tempdir().unwrap();
    let storage_arg = storage.path().to_str().unwrap();
    // Two 503s with the exporter's retries off: each fails the batch at once, and
    // the file, not the exporter, is what retries.
    let backend = Backend::start(|n| Reply::Status(if n < 2 { 503 } else { 200 }));
    append(&logs.path().join("a.log"), 0..20, "a");
    let config = backend_config(logs.path(), &backend, "    sending_queue: { enabled: true }\n").replace(
        "retry_on_failure: { initial_interval: 50ms, max_interval: 100ms }",
        "retry_on_failure: { enabled: false }",
    );
    let agent = Agent::start_with_args(&config, &["--storage-dir", storage_arg]);
    wait_until(Duration::from_secs(20), "the lines delivered", || backend.accepted().len() >= 20);
    assert_eq!(backend.requests(), 3);
    assert!(agent.count_logs("reading it again from its last delivered offset") >= 2, "{}", agent.log_text());
    assert!(agent.stop().success());
    // The offset was committed: a restart sends only what is new.
    let agent = Agent::start_with_args(&config, &["--storage-dir", storage_arg]);
    append(&logs.path().join("a.log"), 20..21, "a");
    wait_until(Duration::from_secs(10), "line 20", || backend.accepted().len() >= 21);
    std::thread::sleep(Duration::from_millis(500));
    assert!(agent.stop().success());
    assert_eq!(backend.accepted(), lines("a", 0..21));
}

/// Voluntary context switches of the agent's thread whose name starts with `name`.
fn thread_wakeups(pid: u32, name: &str) -> u64 {
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if comm.starts_with(name) {
            let status = std::fs::read_to_string(task.join("status")).unwrap();
            let line = status.lines().find(|l| l.starts_with("voluntary_ctxt_switches:")).unwrap();
            return line.split_whitespace().nth(1).unwrap().parse().unwrap();
        }
    }
    panic!("no thread named {name}");
}

#[test]
fn waiting_for_acknowledgements_sleeps_until_one_arrives() {
    use backend::{Backend, Reply};
    let logs = tempfile::tempdir().unwrap();
    big_log(&logs.path().join("big.log"), 120_000);
    // A backend that takes every request and never answers: nothing is acknowledged.
    let backend = Backend::start(|_| Reply::Hang);
    let config = backend_config(logs.path(), &backend, "    timeout: 0s\n");
    let agent = Agent::start_with_args(&config, &["--shutdown-timeout", "1s"]);
    wait_until(Duration::from_secs(10), "8 MiB read", || {
        agent.metric("ocelot_filelog_read_bytes_total", "") >= (8 << 20) as f64
    });
    std::thread::sleep(Duration::from_millis(500));
    let before = thread_wakeups(agent.pid(), "filelog");
    std::thread::sleep(Duration::from_secs(2));
    let woke = thread_wakeups(agent.pid(), "filelog") - before;
    // Waiting on a 2 ms sleep loop was ~900 wake-ups in 2 s.
    assert!(woke < 20, "the reader woke {woke} times in 2 s while waiting");
    assert!(agent.stop().success());
}

#[test]
fn a_low_open_files_limit_is_raised_and_open_failures_are_said_not_taken_for_deletions() {
    let logs = tempfile::tempdir().unwrap();
    for f in 0..80 {
        append(&logs.path().join(format!("f{f:02}.log")), 0..2, &format!("file {f}"));
    }
    // A soft limit of 64 below a hard one of 4096: raised at start, every file is read.
    let agent = Agent::start_under(&["prlimit", "--nofile=64:4096"], &config(logs.path(), ""), &[]);
    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(20), "160 records", || counts(&out).len() == 160);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", agent.pid())).unwrap();
    let open_files = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    assert!(open_files.split_whitespace().filter(|w| *w == "4096").count() == 2, "{open_files}");
    assert!(agent.stop().success());

    // Hard limit 64 too: at most half of it goes to open files, so the servers can
    // still accept (self-metrics answer), and the rest wait.
    let agent = Agent::start_under(&["prlimit", "--nofile=64:64"], &config(logs.path(), ""), &[]);
    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(20), "32 files read", || counts(&out).len() == 64);
    agent.wait_metric("otelcol_fileconsumer_open_files", "", 32.0);
    assert_eq!(agent.count_logs("More matching files than this receiver may keep open"), 1);
    assert!(agent.stop().success());

    // Descriptors running out under the receiver: failed opens are logged (once a
    // minute per path) and counted, unreadable directories are not taken for
    // deletions, and once descriptors are back every file is read.
    let fresh = tempfile::tempdir().unwrap();
    let config = config(fresh.path(), "").replace("/*.log", "/*/*.log");
    let agent = Agent::start(&config);
    let pid = agent.pid();
    // The limit is on descriptor numbers, and a new descriptor takes the lowest free
    // one: a limit two past the lowest free number leaves room for two more.
    let lowest_free = || {
        let used: std::collections::HashSet<usize> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<usize>().ok())
            .collect();
        (0..).find(|n| !used.contains(n)).unwrap()
    };
    let limit = |n: usize| {
        let status = std::process::Command::new("prlimit")
            .arg(format!("--pid={pid}"))
            .arg(format!("--nofile={n}:4096"))
            .status();
        assert!(status.unwrap().success());
    };
    std::fs::create_dir(fresh.path().join("a")).unwrap();
    append(&fresh.path().join("a/early.log"), 0..1, "early");
    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(10), "the first file", || counts(&out).len() == 1);
    // Ten files made elsewhere, moved in as one directory: one poll finds them all.
    let staging = tempfile::tempdir_in(fresh.path().parent().unwrap()).unwrap();
    for f in 0..10 {
        append(&staging.path().join(format!("g{f}.log")), 0..1, &format!("g{f}"));
    }
    // The least of a few looks: past any descriptor open for a moment.
    let free = (0..10)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(20));
            lowest_free()
        })
        .min()
        .unwrap();
    // Room for the two directories being listed, then for two of the ten files.
    limit(free + 2);
    std::fs::rename(staging.path(), fresh.path().join("b")).unwrap();
    wait_until(Duration::from_secs(10), "open failures logged", || agent.count_logs("Cannot open this file") > 0);
    // Polls go on every 50 ms; each path is still said once.
    std::thread::sleep(Duration::from_millis(500));
    let said = agent.count_logs("Cannot open this file");
    assert!(said <= 10, "{said} lines for at most 10 paths");
    limit(4096);
    wait_until(Duration::from_secs(10), "every file read", || counts(&out).len() == 11);
    assert!(agent.metric("ocelot_filelog_open_errors_total", "") >= said as f64);
    assert_eq!(agent.metric("ocelot_filelog_rotations_total", "kind=\"moved\""), 0.0);
    assert_eq!(counts(&out)["early line 0"], 1, "the open file was not taken for deleted and read again");
    assert!(agent.stop().success());
}

#[test]
fn a_symlink_loop_under_double_star_neither_hangs_nor_grows() {
    let logs = tempfile::tempdir().unwrap();
    append(&logs.path().join("real.log"), 0..3, "real");
    std::os::unix::fs::symlink(".", logs.path().join("l1")).unwrap();
    std::os::unix::fs::symlink(".", logs.path().join("l2")).unwrap();
    let config = config(logs.path(), "").replace("/*.log", "/**/*.log");
    let agent = Agent::start(&config);
    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(5), "the real file", || counts(&out).len() == 3);
    assert_counts(counts(&out), expected("real", 0..3));
    let started = std::time::Instant::now();
    assert!(agent.stop().success());
    assert!(started.elapsed() < Duration::from_secs(5), "exit took {:?}", started.elapsed());
}

/// CPU time of every thread of `pid`, in nanoseconds (schedstat: finer than ticks).
fn cpu_ns(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok())
        .filter_map(|text| text.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn an_agent_tailing_quiet_files_stays_idle() {
    let logs = tempfile::tempdir().unwrap();
    for d in 0..10 {
        std::fs::create_dir(logs.path().join(format!("d{d}"))).unwrap();
        for f in 0..10 {
            append(&logs.path().join(format!("d{d}/f{f}.log")), 0..5, &format!("{d}/{f}"));
        }
    }
    // The default poll_interval (200ms): the timer is the safety net, events do the work.
    let config = config(logs.path(), "").replace("/*.log", "/*/*.log").replace("    poll_interval: 50ms\n", "");
    let agent = Agent::start(&config);
    let out = agent.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(20), "every line", || counts(&out).len() == 500);
    std::thread::sleep(Duration::from_secs(1));
    let before = cpu_ns(agent.pid());
    std::thread::sleep(Duration::from_secs(10));
    let used = Duration::from_nanos(cpu_ns(agent.pid()) - before);
    eprintln!("CPU while idle: {used:?} in 10 s");
    // Woken by its own opendir of each directory it was ~1 % of a core (100 ms here).
    assert!(used <= Duration::from_millis(10), "{used:?} of CPU in 10 s while every file was quiet");
    // Still awake to news: a line appended now arrives within a moment.
    append(&logs.path().join("d3/f3.log"), 5..6, "3/3");
    wait_until(Duration::from_secs(2), "the new line", || counts(&out).len() == 501);
    assert!(agent.stop().success());
}

#[test]
fn the_shutdown_deadline_leaves_the_offset_where_delivery_stopped() {
    use backend::{Backend, Reply};
    let logs = tempfile::tempdir().unwrap();
    let storage = tempfile::tempdir().unwrap();
    let storage_arg = storage.path().to_str().unwrap();
    // The first backend takes 10 lines, then hangs on every request.
    let first = Backend::start(|n| if n == 0 { Reply::Status(200) } else { Reply::Hang });
    append(&logs.path().join("a.log"), 0..10, "a");
    let config = backend_config(logs.path(), &first, "    timeout: 0s\n");
    let agent = Agent::start_with_args(&config, &["--storage-dir", storage_arg, "--shutdown-timeout", "1s"]);
    wait_until(Duration::from_secs(10), "the first lines", || first.accepted().len() == 10);
    append(&logs.path().join("a.log"), 10..20, "a");
    wait_until(Duration::from_secs(10), "the hanging request", || first.requests() == 2);
    assert!(agent.stop().success());
    // A healthy backend after the restart gets exactly what was not delivered.
    let second = Backend::start(|_| Reply::Status(200));
    let config = backend_config(logs.path(), &second, "");
    let agent = Agent::start_with_args(&config, &["--storage-dir", storage_arg]);
    wait_until(Duration::from_secs(10), "the undelivered lines", || second.accepted().len() >= 10);
    // And commits go on after it: a restart now sends only what is new.
    std::thread::sleep(Duration::from_millis(500));
    assert!(agent.stop().success());
    assert_eq!(second.accepted(), lines("a", 10..20));
    let agent = Agent::start_with_args(&config, &["--storage-dir", storage_arg]);
    append(&logs.path().join("a.log"), 20..21, "a");
    wait_until(Duration::from_secs(10), "line 20", || second.accepted().len() >= 11);
    std::thread::sleep(Duration::from_millis(300));
    assert!(agent.stop().success());
    assert_eq!(second.accepted(), lines("a", 10..21));
}

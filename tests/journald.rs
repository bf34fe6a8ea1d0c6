//! The `journald` receiver against real journals: journal files written by Debian's
//! `systemd-journal-remote` (from journal export format on its stdin, appended to
//! while the agent follows them) and read by the real `journalctl`. No journald
//! daemon runs on these machines, so every test reads a directory of its own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;

/// Debian's systemd-journal-remote (scripts/test installs it); missing, the test fails.
fn journal_remote() -> PathBuf {
    ["/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-remote"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("no systemd-journal-remote: run scripts/test, which installs Debian's systemd-journal-remote")
}

static MONOTONIC: AtomicU64 = AtomicU64::new(1);

/// Appends entries (each a list of FIELD=value) to `dir`/remote.journal.
fn append(dir: &Path, entries: &[&[(&str, &str)]]) {
    let mut export = String::new();
    for fields in entries {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros();
        let monotonic = MONOTONIC.fetch_add(1000, Ordering::Relaxed);
        export.push_str(&format!(
            "__REALTIME_TIMESTAMP={now}\n__MONOTONIC_TIMESTAMP={monotonic}\n_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=node-1\n"
        ));
        for (k, v) in *fields {
            export.push_str(&format!("{k}={v}\n"));
        }
        export.push('\n');
    }
    let mut child = Command::new(journal_remote())
        .arg(format!("--output={}", dir.join("remote.journal").display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(export.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "systemd-journal-remote: {}", String::from_utf8_lossy(&output.stderr));
}

fn unit(unit: &str, priority: &'static str, message: &'static str) -> Vec<(&'static str, String)> {
    vec![("_SYSTEMD_UNIT", unit.to_string()), ("PRIORITY", priority.to_string()), ("MESSAGE", message.to_string())]
}

fn append_owned(dir: &Path, entries: &[Vec<(&'static str, String)>]) {
    let borrowed: Vec<Vec<(&str, &str)>> =
        entries.iter().map(|e| e.iter().map(|(k, v)| (*k, v.as_str())).collect()).collect();
    let refs: Vec<&[(&str, &str)]> = borrowed.iter().map(Vec::as_slice).collect();
    append(dir, &refs);
}

fn config(journal: &Path, options: &str) -> String {
    format!(
        r#"
receivers:
  journald:
    directory: {}
{options}
exporters:
  file:
    path: "{{dir}}/logs.jsonl"
service:
  pipelines:
    logs: {{ receivers: [journald], exporters: [file] }}
  telemetry:
    metrics:
      readers:
        - pull: {{ exporter: {{ prometheus: {{ host: 127.0.0.1, port: 0 }} }} }}
"#,
        journal.display()
    )
}

fn records(agent: &Agent) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for line in read_json_lines(&agent.dir.path().join("logs.jsonl")) {
        for rl in line["resourceLogs"].as_array().into_iter().flatten() {
            for sl in rl["scopeLogs"].as_array().into_iter().flatten() {
                out.extend(sl["logRecords"].as_array().into_iter().flatten().cloned());
            }
        }
    }
    out
}

fn bodies(agent: &Agent) -> Vec<String> {
    log_bodies(&read_json_lines(&agent.dir.path().join("logs.jsonl")))
}

fn attribute<'a>(record: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    record["attributes"].as_array()?.iter().find(|kv| kv["key"] == key)?["value"]["stringValue"].as_str()
}

#[test]
fn filters_follow_and_a_restart_goes_on_from_the_delivered_cursor() {
    let journal = tempfile::tempdir().unwrap();
    let storage = tempfile::tempdir().unwrap();
    append_owned(
        journal.path(),
        &[
            unit("app.service", "6", "app started"),
            unit("app.service", "3", "app failed"),
            unit("db.service", "3", "db failed"),
            vec![("SYSLOG_IDENTIFIER", "cron".into()), ("PRIORITY", "4".into()), ("MESSAGE", "cron warned".into())],
            unit("app.service", "7", "debug noise"),
        ],
    );
    let options = r#"    start_at: beginning
    priority: warning
    matches:
      - _SYSTEMD_UNIT: app.service
      - SYSLOG_IDENTIFIER: cron
    parse_fields: true"#;
    let storage_arg = storage.path().to_str().unwrap();
    let agent = Agent::start_with_args(&config(journal.path(), options), &["--storage-dir", storage_arg]);
    wait_until(Duration::from_secs(20), "the matching entries", || bodies(&agent).len() >= 2);
    append_owned(journal.path(), &[unit("app.service", "2", "app critical"), unit("db.service", "2", "db critical")]);
    wait_until(Duration::from_secs(20), "the entry appended while following", || bodies(&agent).len() >= 3);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(bodies(&agent), ["app failed", "cron warned", "app critical"]);
    let got = records(&agent);
    let severities: Vec<(i64, &str)> =
        got.iter().map(|r| (r["severityNumber"].as_i64().unwrap(), r["severityText"].as_str().unwrap())).collect();
    assert_eq!(severities, [(17, "error"), (13, "warn"), (18, "error2")]);
    assert_eq!(attribute(&got[0], "_SYSTEMD_UNIT"), Some("app.service"));
    assert_eq!(attribute(&got[1], "SYSLOG_IDENTIFIER"), Some("cron"));
    assert_eq!(attribute(&got[0], "_HOSTNAME"), Some("node-1"));
    assert!(attribute(&got[0], "__CURSOR").is_none(), "no address fields as attributes");
    assert!(got[0]["timeUnixNano"].as_str().unwrap().ends_with("000"), "microseconds from the journal");
    assert_eq!(agent.metric("ocelot_receiver_journald_entries_read_total", ""), 3.0);
    assert_eq!(agent.metric("otelcol_receiver_accepted_log_records_total", "receiver=\"journald\""), 3.0);
    assert_eq!(agent.metric("ocelot_receiver_journald_cursor_lag_entries", ""), 0.0);
    assert!(agent.stop().success());

    // Written while the agent was away: the next start reads exactly that.
    append_owned(journal.path(), &[unit("app.service", "3", "while away")]);
    let agent = Agent::start_with_args(&config(journal.path(), options), &["--storage-dir", storage_arg]);
    wait_until(Duration::from_secs(20), "the entry written while away", || !bodies(&agent).is_empty());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(bodies(&agent), ["while away"]);
    assert!(agent.stop().success());
}

#[test]
fn start_at_end_saves_the_tail_so_nothing_written_while_away_is_missed() {
    let journal = tempfile::tempdir().unwrap();
    let storage = tempfile::tempdir().unwrap();
    append_owned(journal.path(), &[unit("app.service", "6", "old one"), unit("app.service", "6", "old two")]);
    let storage_arg = storage.path().to_str().unwrap();
    // A first start at the end, stopped before anything new arrives.
    let agent = Agent::start_with_args(&config(journal.path(), ""), &["--storage-dir", storage_arg]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(bodies(&agent).is_empty(), "start_at: end sends nothing that was there");
    assert!(agent.stop().success());

    append_owned(journal.path(), &[unit("app.service", "6", "while away")]);
    let agent = Agent::start_with_args(&config(journal.path(), ""), &["--storage-dir", storage_arg]);
    append_owned(journal.path(), &[unit("app.service", "6", "live")]);
    wait_until(Duration::from_secs(20), "both new entries", || records(&agent).len() >= 2);
    std::thread::sleep(Duration::from_millis(300));
    let got = records(&agent);
    assert_eq!(got.len(), 2, "{got:?}");
    // The body is the whole entry as upstream writes it: a map of the journal's fields.
    let body = |record: &serde_json::Value, key: &str| {
        record["body"]["kvlistValue"]["values"]
            .as_array()
            .unwrap()
            .iter()
            .find(|kv| kv["key"] == key)
            .map(|kv| kv["value"]["stringValue"].as_str().unwrap().to_string())
    };
    assert_eq!(body(&got[0], "MESSAGE").as_deref(), Some("while away"));
    assert_eq!(body(&got[1], "MESSAGE").as_deref(), Some("live"));
    assert_eq!(body(&got[1], "_SYSTEMD_UNIT").as_deref(), Some("app.service"));
    assert!(body(&got[1], "__CURSOR").unwrap().starts_with("s="));
    assert!(body(&got[1], "__REALTIME_TIMESTAMP").is_none(), "the timestamp is the record's time");
    assert_eq!(got[1]["severityNumber"].as_i64().unwrap_or(0), 0, "no severity unless parse_fields");
    assert!(agent.stop().success());
}

/// Entries read but not delivered are not committed: after kill -9 they are read
/// again and reach the backend (upstream saves the cursor on read and loses them).
#[test]
fn entries_not_yet_delivered_survive_a_kill() {
    let journal = tempfile::tempdir().unwrap();
    let storage = tempfile::tempdir().unwrap();
    let port = free_port();
    let entries: Vec<Vec<(&'static str, String)>> = (0..50)
        .map(|i| {
            vec![("_SYSTEMD_UNIT", "app.service".into()), ("PRIORITY", "6".into()), ("MESSAGE", format!("entry {i}"))]
        })
        .collect();
    append_owned(journal.path(), &entries);
    let forwarding = format!(
        r#"
receivers:
  journald:
    directory: {}
    start_at: beginning
    parse_fields: true
exporters:
  otlp:
    endpoint: 127.0.0.1:{port}
    tls: {{ insecure: true }}
    sending_queue: {{ enabled: false }}
    retry_on_failure: {{ initial_interval: 100ms, max_interval: 200ms }}
service:
  pipelines:
    logs: {{ receivers: [journald], exporters: [otlp] }}
  telemetry:
    metrics:
      readers:
        - pull: {{ exporter: {{ prometheus: {{ host: 127.0.0.1, port: 0 }} }} }}
"#,
        journal.path().display()
    );
    let storage_arg = storage.path().to_str().unwrap();
    let agent = Agent::start_with_args(&forwarding, &["--storage-dir", storage_arg]);
    agent.wait_metric("ocelot_receiver_journald_cursor_lag_entries", "", 50.0);
    let state = std::fs::read(storage.path().join("journald_journald.state")).unwrap();
    assert!(String::from_utf8_lossy(&state).contains(r#"{"cursor":null}"#), "nothing committed before delivery");
    signal(agent.pid(), "KILL");
    drop(agent);

    let backend = Agent::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: "127.0.0.1:{port}" }}
exporters:
  file:
    path: "{{dir}}/logs.jsonl"
service:
  pipelines:
    logs: {{ receivers: [otlp], exporters: [file] }}
  telemetry:
    metrics:
      readers:
        - pull: {{ exporter: {{ prometheus: {{ host: 127.0.0.1, port: 0 }} }} }}
"#
    ));
    let agent = Agent::start_with_args(&forwarding, &["--storage-dir", storage_arg]);
    wait_until(Duration::from_secs(30), "every entry at the backend", || bodies(&backend).len() >= 50);
    agent.wait_metric("ocelot_receiver_journald_cursor_lag_entries", "", 0.0);
    let want: Vec<String> = (0..50).map(|i| format!("entry {i}")).collect();
    assert_eq!(bodies(&backend), want);
    assert!(agent.stop().success());
    let state = std::fs::read(storage.path().join("journald_journald.state")).unwrap();
    assert!(String::from_utf8_lossy(&state).contains("\"cursor\":\"s="), "the delivered cursor is saved");
    assert!(backend.stop().success());
}

#[test]
fn what_journalctl_refuses_fails_the_start_with_its_words() {
    let journal = tempfile::tempdir().unwrap();
    append_owned(journal.path(), &[unit("app.service", "6", "one")]);
    let error = Agent::try_start(&config(journal.path(), "    grep: \"(unclosed\"")).err().expect("a bad --grep");
    assert!(error.contains("journalctl") && error.contains("--grep"), "{error}");
    let error = Agent::try_start(&config(journal.path(), "    journalctl_path: /nonexistent/journalctl"))
        .err()
        .expect("no journalctl");
    assert!(error.contains("cannot run `/nonexistent/journalctl`"), "{error}");

    let dir = tempfile::tempdir().unwrap();
    for (options, message) in [
        ("    priority: loud", "priority `loud`"),
        ("    matches:\n      - _systemd_unit: x", "not a journal field name"),
        ("    files: [a.journal]", "not both"),
        ("    operators:\n      - type: container", "container operator"),
    ] {
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, config(journal.path(), options)).unwrap();
        let out = Command::new(common::BIN).arg("validate").arg("--config").arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(message), "{options}: {stderr}");
    }
}

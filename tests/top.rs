//! `ocelot top` in a real terminal: tmux runs it against a running agent that takes
//! logs over OTLP/HTTP, filters the debug ones and writes the rest to a file; the
//! screen (capture-pane) shows each component's rate, the filter's drops and the
//! process's figures, and `q` (send-keys) ends it with status 0.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Agent, BIN, find_program, http_post};

const CONFIG: &str = r#"
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
processors:
  filter/debug:
    logs:
      log_record:
        - 'severity_text == "DEBUG"'
  batch:
    timeout: 50ms
exporters:
  file:
    path: {dir}/out.json
service:
  pipelines:
    logs:
      receivers: [otlp]
      processors: [filter/debug, batch]
      exporters: [file]
  telemetry:
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: 0
"#;

/// Two records, one of them debug (which the filter drops).
const LOGS: &str = r#"{"resourceLogs":[{"resource":{},"scopeLogs":[{"logRecords":[
  {"severityText":"DEBUG","body":{"stringValue":"noise"}},
  {"severityText":"INFO","body":{"stringValue":"kept"}}]}]}]}"#;

/// A tmux server of the test's own (its socket in a temp dir), killed at the end.
struct Tmux {
    program: PathBuf,
    socket: PathBuf,
}

impl Tmux {
    fn new(dir: &Path) -> Tmux {
        let Some(program) = find_program("tmux") else {
            panic!("tmux is missing: install Debian's tmux (scripts/test does)");
        };
        Tmux { program, socket: dir.join("tmux.sock") }
    }

    fn run(&self, args: &[&str]) -> String {
        let output = Command::new(&self.program).arg("-S").arg(&self.socket).args(args).output().unwrap();
        assert!(output.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).to_string()
    }

    /// A 150×45 terminal running `command` under sh, which says how it exited and then
    /// stays, so the screen can be read after it ends.
    fn start(&self, name: &str, command: &str) {
        let script = format!("{command}; echo \"top exited with $?\"; sleep 60");
        self.run(&["-f", "/dev/null", "new-session", "-d", "-s", name, "-x", "150", "-y", "45", "sh", "-c", &script]);
    }

    fn screen(&self, name: &str) -> String {
        self.run(&["capture-pane", "-p", "-t", name])
    }

    /// The screen once `check` holds, within 20 s.
    fn wait_for(&self, name: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let screen = self.screen(name);
            if check(&screen) {
                return screen;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{what} not on the screen within 20s:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new(&self.program).arg("-S").arg(&self.socket).arg("kill-server").output();
    }
}

/// The figures of the table row whose first cell is `id`, in the table titled
/// `title`: the cells after the id.
fn row(screen: &str, title: &str, id: &str) -> Option<Vec<String>> {
    let mut lines = screen.lines().skip_while(|line| !line.contains(title)).skip(1);
    lines.by_ref().take_while(|line| !line.starts_with('└')).find_map(|line| {
        let cells: Vec<&str> = line.trim_matches(|c| c == '│' || c == ' ').split_whitespace().collect();
        (cells.first() == Some(&id)).then(|| cells[1..].iter().map(|c| c.to_string()).collect())
    })
}

/// A rate cell above zero: `12`, `1.5`, `3.2k`.
fn positive(cell: &str) -> bool {
    cell.trim_end_matches(['k', 'M']).parse::<f64>().is_ok_and(|v| v > 0.0)
}

#[test]
fn top_shows_rates_drops_and_the_process_and_quits_on_q() {
    let agent = Agent::start(CONFIG);
    let metrics = agent.metrics_addr();
    let http = agent.http("otlp");
    // Traffic for as long as the screen is read: a request every 50 ms.
    let sending = Arc::new(AtomicBool::new(true));
    let sender = {
        let sending = sending.clone();
        std::thread::spawn(move || {
            while sending.load(Ordering::Relaxed) {
                let (status, _, _) = http_post(http, "/v1/logs", "application/json", LOGS.as_bytes());
                assert_eq!(status, 200);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    let tmux = Tmux::new(agent.dir.path());
    tmux.start("top", &format!("{BIN} top --url http://{metrics}/metrics --interval 300ms"));
    let screen = tmux.wait_for("top", "rates for the receiver, the filter and the exporter", |screen| {
        let rate_of = |title: &str, id: &str| row(screen, title, id).is_some_and(|cells| positive(&cells[0]));
        rate_of("Receivers", "otlp")
            && rate_of("Processors", "filter/debug")
            && rate_of("Exporters", "file")
            && row(screen, "Refused, failed and dropped", "filter/debug").is_some()
    });
    sending.store(false, Ordering::Relaxed);
    sender.join().unwrap();

    assert!(screen.contains(&format!("http://{metrics}/metrics")), "{screen}");
    // The filter takes every record in and lets half out.
    let filter = row(&screen, "Processors", "filter/debug").unwrap();
    assert_ne!(filter[0], filter[1], "in and out differ for the filter: {screen}");
    let dropped = row(&screen, "Refused, failed and dropped", "filter/debug").unwrap();
    assert_eq!(dropped[0], "otelcol_processor_filter_logs_filtered", "{screen}");
    assert!(dropped[2].parse::<f64>().unwrap() > 0.0, "a total of dropped records: {screen}");
    // The file exporter has no queue figures beyond its size, and nothing failed.
    let file = row(&screen, "Exporters", "file").unwrap();
    assert_eq!(file[1], "0", "nothing failed: {screen}");
    let process = screen.lines().find(|line| line.starts_with("process: CPU")).expect("the process line");
    assert!(process.contains("MiB"), "RSS in MiB: {process}");
    assert!(process.contains("no memory_limiter"), "{process}");

    tmux.run(&["send-keys", "-t", "top", "q"]);
    tmux.wait_for("top", "its exit", |screen| screen.contains("top exited with 0"));
    assert!(agent.stop().success());
}

#[test]
fn top_says_when_the_agent_does_not_answer_and_needs_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let port = common::free_port();
    let tmux = Tmux::new(dir.path());
    tmux.start("top", &format!("{BIN} top --url 127.0.0.1:{port} --interval 200ms"));
    tmux.wait_for("top", "the connection error", |screen| {
        screen.contains(&format!("not answering: cannot connect to 127.0.0.1:{port}"))
    });
    tmux.run(&["send-keys", "-t", "top", "Escape"]);
    tmux.wait_for("top", "its exit on Esc", |screen| screen.contains("top exited with 0"));

    let output = Command::new(BIN).args(["top", "--url", &format!("127.0.0.1:{port}")]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("draws on a terminal"), "{output:?}");
    let output = Command::new(BIN).args(["top", "--url", "https://agent:8888"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("only http://"), "{output:?}");
}

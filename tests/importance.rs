//! The importance processor's EWMA state with the real binary: checkpointed while
//! the agent runs, it survives kill -9 and is read back at the next start.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;

const CONFIG: &str = r#"
receivers:
  hostmetrics:
    collection_interval: 200ms
    scrapers:
      process:
        mute_process_all_errors: true
        metrics:
          process.cpu.utilization:
            enabled: true
processors:
  importance:
    checkpoint_interval: 300ms
    ewma:
      raise:
        - { memory_mib: 1, score: 0.8 }
exporters:
  file:
    path: {dir}/out.json
service:
  pipelines:
    metrics:
      receivers: [hostmetrics]
      processors: [importance]
      exporters: [file]
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#;

#[test]
fn ewma_state_survives_kill_9() {
    let storage = tempfile::tempdir().unwrap();
    let dir = storage.path().to_str().unwrap();
    let agent = Agent::start_with_args(CONFIG, &["--storage-dir", dir]);
    wait_until(Duration::from_secs(30), "a checkpoint written", || {
        agent.metric("ocelot_importance_state_saves_total", r#"reason="success""#) >= 1.0
    });
    let tracked = agent.metric("ocelot_importance_tracked_keys", "");
    assert!(tracked >= 1.0, "this host's processes are tracked: {tracked}");
    signal(agent.pid(), "KILL");
    drop(agent);

    let again = Agent::start_with_args(CONFIG, &["--storage-dir", dir]);
    assert!(again.find_log("EWMA state restored.").is_some(), "{}", again.log_text());
    assert!(again.metric("ocelot_importance_tracked_keys", "") >= 1.0);
    again.stop();
}

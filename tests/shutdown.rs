//! Graceful shutdown: SIGTERM drains and exits 0; with a backend that never comes
//! back, `--shutdown-timeout` bounds the wait and what is dropped is logged. The
//! health check answers 503 while stopping.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn sigterm_with_a_dead_backend_exits_0_within_the_deadline() {
    let dead_port = free_port();
    let agent = Agent::start_with_args(
        &format!(
            r#"
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
exporters:
  otlphttp:
    endpoint: http://127.0.0.1:{dead_port}
    retry_on_failure:
      initial_interval: 50ms
      max_interval: 100ms
      max_elapsed_time: 0
extensions:
  health_check:
    endpoint: 127.0.0.1:0
service:
  extensions: [health_check]
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [otlphttp]
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#
        ),
        &["--shutdown-timeout", "2s"],
    );
    let health = agent.health_addr("health_check");
    assert_eq!(http_get(health, "/").0, 200);
    assert_eq!(http_get(health, "/other").0, 404);
    for i in 0..5 {
        let (status, _, _) =
            http_post(agent.http("otlp"), "/v1/logs", "application/json", &logs_json(&[format!("r{i}")]));
        assert_eq!(status, 200);
    }
    wait_until(Duration::from_secs(5), "a retry", || agent.count_logs("Export failed, retrying.") > 0);

    signal(agent.pid(), "TERM");
    let started = Instant::now();
    // While it drains toward the deadline, the health check says it is not available.
    wait_until(Duration::from_secs(2), "health 503 while stopping", || http_get(health, "/").0 == 503);
    let status = agent.stop();
    let took = started.elapsed();
    assert!(status.success(), "{status}");
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(8), "{took:?}");
}

#[test]
fn sighup_reloads_and_sigint_with_nothing_pending_exits_0_at_once() {
    let agent = Agent::start(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:0\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n  telemetry:\n    metrics:\n      level: none\n",
    );
    // SIGHUP must not kill the agent (its default action would, without draining): it
    // reloads the (unchanged) config.
    signal(agent.pid(), "HUP");
    wait_until(Duration::from_secs(5), "the reload", || agent.count_logs("The new config runs.") == 1);
    assert!(agent.find_log("ocelot stopped.").is_none());
    signal(agent.pid(), "INT");
    let started = Instant::now();
    wait_until(Duration::from_secs(5), "exit", || agent.find_log("ocelot stopped.").is_some());
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(agent.stop().success());
}

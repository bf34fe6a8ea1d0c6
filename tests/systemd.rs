//! ocelot under systemd: the notification protocol on a real `NOTIFY_SOCKET`, and the
//! shipped unit checked by `systemd-analyze verify` (Debian's systemd).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::{Agent, signal};

const CONFIG: &str = "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:0\nexporters:\n  debug:\nservice:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      exporters: [debug]\n  telemetry:\n    metrics:\n      level: none\n";

/// The next notification other than a watchdog ping, within 10 s; and how many pings
/// came before it.
fn next_state(socket: &UnixDatagram) -> (String, usize) {
    let mut pings = 0;
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    loop {
        assert!(started.elapsed() < Duration::from_secs(10), "no notification within 10s");
        let n = socket.recv(&mut buffer).expect("a notification");
        let message = String::from_utf8_lossy(&buffer[..n]).to_string();
        if message == "WATCHDOG=1" {
            pings += 1;
        } else {
            return (message, pings);
        }
    }
}

#[test]
fn it_tells_systemd_when_it_is_ready_reloading_and_stopping_and_pings_the_watchdog() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // 200 ms: a ping every 100 ms.
    let env = [("NOTIFY_SOCKET", path.to_str().unwrap()), ("WATCHDOG_USEC", "200000")];
    let agent = Agent::try_start_with_env(&[], CONFIG, &[], &env).unwrap();
    let (ready, _) = next_state(&socket);
    assert!(ready.starts_with("READY=1\nSTATUS=running config "), "{ready}");

    std::thread::sleep(Duration::from_millis(600));
    signal(agent.pid(), "HUP");
    let (reloading, pings) = next_state(&socket);
    assert!(pings >= 3, "{pings} watchdog pings in 600ms at a 100ms interval");
    assert!(reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{reloading}");
    let (ready, _) = next_state(&socket);
    assert!(ready.starts_with("READY=1"), "{ready}");

    signal(agent.pid(), "TERM");
    let (stopping, _) = next_state(&socket);
    assert!(stopping.starts_with("STOPPING=1"), "{stopping}");
    assert!(agent.stop().success());
}

#[test]
fn a_watchdog_meant_for_another_process_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let env = [("NOTIFY_SOCKET", path.to_str().unwrap()), ("WATCHDOG_USEC", "100000"), ("WATCHDOG_PID", "1")];
    let agent = Agent::try_start_with_env(&[], CONFIG, &[], &env).unwrap();
    let mut buffer = [0u8; 4096];
    let n = socket.recv(&mut buffer).unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("READY=1"));
    // Nothing more: no pings.
    assert!(socket.recv(&mut buffer).is_err(), "a ping went out though WATCHDOG_PID names another process");
    assert!(agent.stop().success());
}

#[test]
fn the_shipped_unit_passes_systemd_analyze_verify() {
    let Some(analyze) = common::find_program("systemd-analyze") else {
        panic!("systemd-analyze is missing: install Debian's systemd package (scripts/test does)");
    };
    let unit = std::fs::read_to_string(common::repo_path("systemd/ocelot.service")).unwrap();
    for needed in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ProtectSystem=strict",
        "StateDirectory=ocelot",
        "ReadOnlyPaths=",
        "CapabilityBoundingSet=CAP_DAC_READ_SEARCH",
        "NoNewPrivileges=yes",
        "MemoryMax=",
        "LimitNOFILE=",
        "WatchdogSec=",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed}");
    }
    // The unit names /usr/bin/ocelot; verify checks that it exists, so point it at this
    // build.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ocelot.service");
    std::fs::write(&path, unit.replace("/usr/bin/ocelot", common::BIN)).unwrap();
    let output = std::process::Command::new(analyze).arg("verify").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&output.stderr).to_string() + &String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "systemd-analyze verify failed:\n{text}");
    assert!(!text.contains("ocelot.service:"), "systemd-analyze verify complained about the unit:\n{text}");
}

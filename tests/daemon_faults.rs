//! Bad input reaches the real daemon: a dead Docker endpoint, a garbage or
//! truncated sysinfo document. Each cycle fails with a clear error naming
//! the cause, nothing is killed, and the daemon recovers when the input is
//! good again. Also: SIGTERM stops it within 2 s.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// A real snapshot (the userspace collector's, the module's schema).
fn userspace_snapshot() -> Vec<u8> {
    let out = std::process::Command::new(gestor_bin())
        .args(["snapshot", "--source", "userspace"])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

fn uptime_ns(snapshot: &[u8]) -> u64 {
    serde_json::from_slice::<serde_json::Value>(snapshot).unwrap()["uptime_ns"]
        .as_u64()
        .unwrap()
}

/// A snapshot taken at least `gap` after `earlier` (by its own clock): rates
/// need two samples that far apart.
fn snapshot_after(earlier: &[u8], gap: Duration) -> Vec<u8> {
    let since = uptime_ns(earlier) + gap.as_nanos() as u64;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = userspace_snapshot();
        if uptime_ns(&s) >= since {
            return s;
        }
        assert!(Instant::now() < deadline, "the clock did not advance");
    }
}

/// Replaces `file` whole (a reader never sees half of it).
fn replace(file: &std::path::Path, contents: &[u8]) {
    let tmp = file.with_extension("next");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

#[test]
fn a_dead_docker_endpoint_is_an_error_each_cycle_not_a_crash() {
    let d = Daemon::start(&[
        "--interval",
        "0.5",
        "--docker-host",
        "unix:///nonexistent/docker.sock",
        "--logger-url",
        "",
    ]);
    d.wait_cycles(3, Duration::from_secs(20));
    let m = d.metrics();
    assert_eq!(
        metric(&m, "gestor_cycle_stage_success{stage=\"docker\"}"),
        Some(0.0)
    );
    assert!(metric(&m, "gestor_errors_total{stage=\"docker\"}").unwrap() >= 3.0);
    assert_eq!(
        metric(&m, "gestor_cycle_stage_success{stage=\"read\"}"),
        Some(1.0)
    );
    let state = d.state();
    let err = state["stages"]["docker"]["error"].as_str().unwrap();
    assert!(err.contains("/nonexistent/docker.sock"), "{err}");
    assert!(state["blocked"]
        .as_str()
        .unwrap()
        .contains("Docker listing unavailable"));
    assert!(d.log().contains("cannot list containers"));
}

#[test]
fn garbage_sysinfo_blocks_kills_until_it_is_good_again() {
    let scope = Scope::new("garbage");
    let (a, _) = scope.managed("cpu", "stress --cpu 1");
    let (b, _) = scope.managed("cpu", "stress --cpu 1");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sysinfo_202200075");
    std::fs::write(&file, "{\"version\": 1, \"source\": \"kernel\", \"timest").unwrap();
    let file_arg = file.to_str().unwrap();
    let mut d = Daemon::start(&[
        "--interval",
        "0.5",
        "--source",
        "kernel",
        "--sysinfo",
        file_arg,
        "--only-label",
        scope.label.as_str(),
        "--logger-url",
        "",
    ]);
    d.wait_cycles(3, Duration::from_secs(20));
    let state = d.state();
    let err = state["stages"]["read"]["error"].as_str().unwrap();
    assert!(
        err.contains(file_arg) && err.contains("line 1 column"),
        "{err}"
    );
    std::fs::write(&file, "not json at all").unwrap();
    d.wait_cycles(2, Duration::from_secs(20));
    assert_eq!(
        scope.names(false),
        {
            let mut v = vec![a.clone(), b.clone()];
            v.sort();
            v
        },
        "killed on data it could not read"
    );
    let m = d.metrics();
    assert_eq!(
        metric(&m, "gestor_cycle_stage_success{stage=\"read\"}"),
        Some(0.0)
    );
    assert_eq!(
        metric(
            &m,
            "gestor_kills_total{reason=\"surplus\",rule=\"cpu\",type=\"cpu\"}"
        ),
        Some(0.0)
    );

    // Good documents again (the userspace collector's, which follow the
    // same schema): a first one, read by a cycle, then a later one, and the
    // cycle that reads it has rates and kills the surplus.
    let good = userspace_snapshot();
    replace(&file, &good);
    // Read by a cycle: the read succeeds, or (read again) is found stale.
    d.wait_for("a cycle that reads it", Duration::from_secs(20), || {
        let read = &d.state()["stages"]["read"];
        read["ok"] == true || read["error"].as_str().is_some_and(|e| e.contains("stale"))
    });
    replace(&file, &snapshot_after(&good, Duration::from_millis(250)));
    d.wait_for("a kill after recovery", Duration::from_secs(20), || {
        scope.names(true).len() == 1
    });
    // The document is never rewritten: the cycles after the one that used it
    // find it stale (its time did not advance) and decide nothing on it.
    d.wait_for(
        "the unchanged document called stale",
        Duration::from_secs(20),
        || {
            d.state()["stages"]["read"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("stale"))
        },
    );
    let (status, took) = d.terminate();
    assert!(status.success());
    assert!(took < Duration::from_secs(2), "SIGTERM took {took:?}");
}

#[test]
fn sigterm_stops_the_daemon_within_two_seconds() {
    let mut d = Daemon::start(&[
        "--interval",
        "10",
        "--logger-url",
        "",
        "--only-label",
        "gestor.scope=none",
    ]);
    d.wait_cycles(1, Duration::from_secs(20));
    let started = Instant::now();
    let (status, took) = d.terminate();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(d.log().contains("SIGTERM received"));
}

#[test]
fn sigterm_during_kills_leaves_none_half_done_and_a_restart_resumes() {
    let scope = Scope::new("sigterm");
    for _ in 0..4 {
        scope.managed("cpu", "stress --cpu 1");
    }
    // stress as PID 1 ignores SIGTERM: each `docker stop` waits the whole
    // 30 s grace, so the first cycle is still in its act stage when we stop.
    let args = [
        "--interval",
        "1",
        "--stop-timeout",
        "30",
        "--only-label",
        scope.label.as_str(),
        "--logger-url",
        "",
    ];
    let mut d = Daemon::start(&args);
    d.wait_for("three stops under way", Duration::from_secs(20), || {
        d.log().matches("\"event\":\"stopping\"").count() == 3
    });
    // The first cycle had no rates; the second one is stopping.
    assert_eq!(
        d.cycle(),
        1,
        "the second cycle should still be stopping containers"
    );
    let (status, took) = d.terminate();
    assert!(status.success(), "{status:?}\n{}", d.log());
    assert!(took < Duration::from_secs(2), "SIGTERM took {took:?}");
    // Every kill that had started is complete: removed, not left exited.
    let running = scope.names(false);
    assert_eq!(
        scope.names(true),
        running,
        "a container was stopped but not removed"
    );
    assert_eq!(running.len(), 1, "{running:?}\n{}", d.log());

    // A restart picks up where it left: new surplus goes, one remains.
    scope.managed("cpu", "stress --cpu 1");
    scope.managed("cpu", "stress --cpu 1");
    let args2 = [
        "--interval",
        "1",
        "--stop-timeout",
        "1",
        "--only-label",
        scope.label.as_str(),
        "--logger-url",
        "",
    ];
    let d = Daemon::start(&args2);
    d.wait_for("one cpu container left", Duration::from_secs(30), || {
        scope.names(true).len() == 1
    });
    assert_eq!(scope.names(false).len(), 1);
}

#[test]
fn a_sysinfo_read_that_blocks_fails_the_cycle_and_sigterm_still_stops_at_once() {
    let scope = Scope::new("fifo");
    let (a, _) = scope.managed("cpu", "stress --cpu 1");
    let (b, _) = scope.managed("cpu", "stress --cpu 1");
    let dir = tempfile::tempdir().unwrap();
    // A FIFO with no writer: open(2) blocks until one comes, for ever.
    let fifo = dir.path().join("sysinfo_202200075");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let mut d = Daemon::start(&[
        "--interval",
        "0.5",
        "--source",
        "kernel",
        "--sysinfo",
        fifo.to_str().unwrap(),
        "--only-label",
        scope.label.as_str(),
        "--logger-url",
        "",
    ]);
    // Cycles go on (each fails), they do not stall behind the blocked read.
    d.wait_cycles(4, Duration::from_secs(30));
    let state = d.state();
    let err = state["stages"]["read"]["error"].as_str().unwrap();
    assert!(
        err.contains("still blocked") || err.contains("took more than"),
        "{err}"
    );
    assert!(err.contains(fifo.to_str().unwrap()), "{err}");
    assert_eq!(
        metric(&d.metrics(), "gestor_cycle_stage_success{stage=\"read\"}"),
        Some(0.0)
    );
    let mut both = vec![a, b];
    both.sort();
    assert_eq!(scope.names(true), both, "killed on data it could not read");
    let (status, took) = d.terminate();
    assert!(status.success(), "{status:?}\n{}", d.log());
    assert!(took < Duration::from_secs(2), "SIGTERM took {took:?}");
}

#[test]
fn a_snapshot_that_does_not_advance_is_stale_and_decides_nothing() {
    let scope = Scope::new("stale");
    scope.managed("cpu", "stress --cpu 1");
    scope.managed("cpu", "stress --cpu 1");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sysinfo_202200075");
    // Two real snapshots (the collector's, same schema), then no update.
    let first = userspace_snapshot();
    std::fs::write(&file, &first).unwrap();
    let d = Daemon::start(&[
        "--interval",
        "0.3",
        "--dry-run",
        "--source",
        "kernel",
        "--sysinfo",
        file.to_str().unwrap(),
        "--only-label",
        scope.label.as_str(),
        "--logger-url",
        "",
    ]);
    // The first cycle has no rates yet; the one that reads the second
    // judges; every later one finds it stale.
    d.wait_cycles(1, Duration::from_secs(20));
    replace(&file, &snapshot_after(&first, Duration::from_millis(150)));
    d.wait_cycles(3, Duration::from_secs(20));
    let state = d.state();
    let err = state["stages"]["read"]["error"].as_str().unwrap();
    assert!(err.contains("stale"), "{err}");
    assert!(state["blocked"].as_str().unwrap().contains("stale"));
    let judged: Vec<_> = d
        .log()
        .lines()
        .filter(|l| l.contains("\"event\":\"would_kill\""))
        .map(String::from)
        .collect();
    assert_eq!(judged.len(), 1, "only one cycle decides: {judged:?}");
}

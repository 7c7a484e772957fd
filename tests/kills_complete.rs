//! Every kill completes, on the real daemon and the real Docker engine: a
//! stop longer than any client timeout still ends removed, and managed
//! containers that stopped by themselves (an OOM kill) do not pile up.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[test]
fn a_stop_with_a_long_grace_ends_removed_not_exited() {
    let scope = Scope::new("longstop");
    let (a, _) = scope.managed("cpu", "stress --cpu 1");
    let (b, _) = scope.managed("cpu", "stress --cpu 1");
    // stress as PID 1 ignores SIGTERM: the stop waits the whole 15 s grace,
    // longer than the 10 s a Docker client call used to be allowed.
    let grace = 15;
    let d = Daemon::start(&[
        "--interval",
        "1",
        "--stop-timeout",
        &grace.to_string(),
        "--only-label",
        scope.label.as_str(),
        "--logger-url",
        "",
    ]);
    d.wait_for("a stop under way", Duration::from_secs(20), || {
        d.log().contains("\"event\":\"stopping\"")
    });
    let stopping_since = Instant::now();
    // The container of the "stopping" line (other lines name both).
    let stopping = d
        .log()
        .lines()
        .find(|l| l.contains("\"event\":\"stopping\""))
        .map(String::from)
        .unwrap();
    let victim = if stopping.contains(&format!("\"container\":\"{a}\"")) {
        a
    } else {
        b
    };
    // Gone altogether (not `exited`) within the grace and the margin.
    let limit = Duration::from_secs(grace + 10);
    d.wait_for(
        &format!("{victim} removed"),
        limit + Duration::from_secs(5),
        || scope.state_of(&victim).is_none(),
    );
    let took = stopping_since.elapsed();
    assert!(
        took >= Duration::from_secs(grace - 2),
        "stopped in {took:?}: the grace was not waited"
    );
    assert!(took <= limit, "removed after {took:?}, more than {limit:?}");
    assert_eq!(scope.names(true).len(), 1, "{:?}", scope.names(true));
    let m = d.metrics();
    assert_eq!(
        metric(
            &m,
            "gestor_kills_total{reason=\"surplus\",rule=\"cpu\",type=\"cpu\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "gestor_kill_failures_total{reason=\"stop_failed\",type=\"cpu\"}"
        ),
        Some(0.0)
    );
}

#[test]
fn an_oom_killed_managed_container_is_removed_with_its_cause() {
    let scope = Scope::new("oom");
    let name = unique("ram");
    // gestor first, as on a host: it follows Docker's events when the
    // container dies. Docker's own `OOMKilled` flag can lose a race in
    // containerd (the OOM notice after the exit); its `oom` event still
    // comes, and gestor reads both.
    let d = Daemon::start(&[
        "--interval",
        "0.5",
        "--stopped-grace",
        "1",
        "--only-label",
        scope.label.as_str(),
        "--logger-url",
        "",
    ]);
    d.wait_cycles(1, Duration::from_secs(30));
    // 64 MiB touched in a 16 MiB cgroup without swap: the kernel's OOM killer
    // kills the vm worker and stress exits.
    scope.run_with(
        &name,
        &["gestor.managed=true", "gestor.type=ram"],
        &["--memory", "16m", "--memory-swap", "16m"],
        "stress --vm 1 --vm-bytes 64M --vm-keep",
    );
    d.wait_for(
        "the exited container removed",
        Duration::from_secs(20),
        || scope.state_of(&name).is_none(),
    );
    let line = d
        .lines
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("\"event\":\"remove\""))
        .cloned()
        .expect("a remove event");
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["container"], name.as_str());
    let reason = event["reason"].as_str().unwrap();
    assert!(reason.contains("OOM killer"), "{reason}");
    let m = d.metrics();
    assert_eq!(
        metric(
            &m,
            "gestor_removals_total{cause=\"oom_killed\",type=\"ram\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "gestor_kills_total{reason=\"surplus\",rule=\"ram\",type=\"ram\"}"
        ),
        Some(0.0),
        "a removal is not a kill"
    );
    assert_eq!(
        metric(&m, "gestor_inventory_events_total{action=\"oom\"}"),
        Some(1.0),
        "Docker's oom event followed"
    );
}

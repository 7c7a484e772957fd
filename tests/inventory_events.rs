//! The container inventory kept from Docker's event stream, against the real
//! engine: what happens to containers while gestor runs is in the next
//! cycles; a steady-state cycle makes no Docker request; a burst of
//! creations loses no event.

mod common;

use common::*;
use std::time::Duration;

/// The container the last cycle reported under `name`, if any.
fn reported(d: &Daemon, name: &str) -> Option<serde_json::Value> {
    d.state()["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
}

#[test]
fn what_happens_to_containers_is_in_the_next_cycles_with_no_request_per_cycle() {
    let scope = Scope::new("events");
    let (keeper, _) = scope.managed("cpu", "stress --cpu 1");
    let d = Daemon::start(&[
        "--interval",
        "0.3",
        "--dry-run",
        "--inventory",
        "events",
        "--resync-every",
        "100000",
        "--stopped-grace",
        "0",
        "--only-label",
        scope.label.as_str(),
        "--logger-url",
        "",
    ]);
    d.wait_for("the keeper", Duration::from_secs(20), || {
        reported(&d, &keeper).is_some()
    });

    // Steady state: cycles go on, Docker is not asked anything.
    d.wait_cycles(1, Duration::from_secs(10));
    let requests = metric_sum(&d.metrics(), "gestor_docker_requests_total");
    let cycles = d.cycle();
    d.wait_cycles(8, Duration::from_secs(20));
    assert_eq!(
        metric_sum(&d.metrics(), "gestor_docker_requests_total"),
        requests,
        "Docker requests during {} steady cycles",
        d.cycle() - cycles
    );

    // Created (not started), started, renamed, removed.
    let name = unique("cpu");
    let t = "gestor.type=cpu".to_string();
    docker(&[
        "create",
        "--name",
        &name,
        "--label",
        &scope.label,
        "--label",
        "gestor.managed=true",
        "--label",
        &t,
        STRESS_IMAGE,
        "stress",
        "--cpu",
        "1",
    ]);
    d.wait_for("a created container", Duration::from_secs(5), || {
        reported(&d, &name).is_some_and(|c| c["state"] == "created")
    });
    docker(&["start", &name]);
    d.wait_for("it running", Duration::from_secs(5), || {
        reported(&d, &name).is_some_and(|c| c["state"] == "running")
    });
    let renamed = format!("{name}-renamed");
    docker(&["rename", &name, &renamed]);
    d.wait_for("its new name", Duration::from_secs(5), || {
        reported(&d, &renamed).is_some() && reported(&d, &name).is_none()
    });
    docker(&["rm", "-f", &renamed]);
    d.wait_for("it gone", Duration::from_secs(5), || {
        reported(&d, &renamed).is_none()
    });

    // Killed by the OOM killer: exited, and how.
    let oom = unique("ram");
    scope.run_with(
        &oom,
        &["gestor.managed=true", "gestor.type=ram"],
        &["--memory", "16m", "--memory-swap", "16m"],
        "stress --vm 1 --vm-bytes 64M --vm-keep",
    );
    d.wait_for("the OOM kill", Duration::from_secs(30), || {
        reported(&d, &oom).is_some_and(|c| {
            c["state"] == "exited" && c["reason"].as_str().unwrap_or("").contains("OOM killer")
        })
    });
    let m = d.metrics();
    assert_eq!(metric_sum(&m, "gestor_inventory_stale"), 0.0);
    assert_eq!(
        metric_sum(&m, "gestor_docker_requests_total{op=\"list\"}"),
        1.0,
        "one listing, at start"
    );
    assert!(
        metric_sum(&m, "gestor_inventory_events_total") >= 6.0,
        "{m}"
    );
}

#[test]
fn a_burst_of_creations_loses_no_event() {
    let scope = Scope::new("burst");
    let d = Daemon::start(&[
        "--interval",
        "1",
        "--dry-run",
        "--resync-every",
        "3",
        "--only-label",
        scope.label.as_str(),
        "--logger-url",
        "",
    ]);
    d.wait_cycles(1, Duration::from_secs(20));
    // 200 containers created (not started: cheap), 16 at a time.
    let started = std::time::Instant::now();
    let script = format!(
        "seq 200 | xargs -P 16 -I{{}} {DOCKER} create --label {} --label gestor.managed=true \
         --label gestor.type=cpu {STRESS_IMAGE} stress --cpu 1 >/dev/null",
        scope.label
    );
    let status = std::process::Command::new("sh")
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(status.success());
    let took = started.elapsed();
    d.wait_for("all 200 in the inventory", Duration::from_secs(30), || {
        d.state()["containers"].as_array().map(Vec::len) == Some(200)
    });
    // Full listings since then (one every 3 cycles) found nothing missed.
    d.wait_cycles(7, Duration::from_secs(30));
    let m = d.metrics();
    assert_eq!(metric_sum(&m, "gestor_inventory_drift_total"), 0.0, "{m}");
    assert!(metric_sum(&m, "gestor_docker_requests_total{op=\"list\"}") >= 3.0);
    eprintln!("200 creations in {took:?}: all seen from events, drift 0");
}

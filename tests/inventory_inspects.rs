//! Against the real engine: only the stopped containers gestor may act on
//! (managed, not protected, not the log service) are inspected for how they
//! ended. On a host with many stopped containers of other people's, the
//! others cost nothing: counted by gestor's own request counter
//! (`gestor_docker_requests_total{op="inspect"}`).

mod common;

use common::*;
use std::time::Duration;

/// Stopped containers of every kind gestor cannot act on, and `managed`
/// stopped managed ones that it can; returns the log service's name (a
/// container gestor is told never to touch) and the managed ones' names.
fn stopped_mix(scope: &Scope, managed: usize) -> (String, Vec<String>) {
    stopped_mix_named(scope, managed, &unique("logsvc"))
}

/// As `stopped_mix`, the log service named `log_service`.
fn stopped_mix_named(scope: &Scope, managed: usize, log_service: &str) -> (String, Vec<String>) {
    let create = |name: &str, labels: &[&str], command: &[&str]| {
        let mut args = vec!["create", "--name", name, "--label", scope.label.as_str()];
        for l in labels {
            args.extend(["--label", l]);
        }
        args.push(STRESS_IMAGE);
        args.extend_from_slice(command);
        docker(&args);
    };
    // Other people's: unlabeled (a stress command, which gestor manages only
    // with --manage-unlabeled, and something else), created and exited.
    for _ in 0..3 {
        create(&unique("other"), &[], &["stress", "--cpu", "1"]);
        create(&unique("other"), &[], &["sleep", "1"]);
    }
    for _ in 0..3 {
        let name = unique("exited");
        scope.run_args(&name, &[], &[], &["true"]);
        wait_exited(scope, &name);
    }
    // Opted out, protected, and the log service (managed by its labels, but
    // never acted on).
    create(
        &unique("optout"),
        &["gestor.managed=false", "gestor.type=cpu"],
        &["stress", "--cpu", "1"],
    );
    create(
        &unique("protected"),
        &[
            "gestor.managed=true",
            "gestor.protected=true",
            "gestor.type=cpu",
        ],
        &["stress", "--cpu", "1"],
    );
    let log_service = log_service.to_string();
    create(
        &log_service,
        &["gestor.managed=true", "gestor.type=cpu"],
        &["stress", "--cpu", "1"],
    );
    let managed: Vec<String> = (0..managed)
        .map(|_| {
            let name = unique("managed");
            scope.run_args(
                &name,
                &["gestor.managed=true", "gestor.type=cpu"],
                &[],
                &["true"],
            );
            wait_exited(scope, &name);
            name
        })
        .collect();
    (log_service, managed)
}

fn wait_exited(scope: &Scope, name: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while scope.state_of(name).as_deref() != Some("exited") {
        assert!(std::time::Instant::now() < deadline, "{name} did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start(scope: &Scope, inventory: &str, log_service: &str) -> Daemon {
    Daemon::start(&[
        "--interval",
        "0.3",
        "--dry-run",
        "--inventory",
        inventory,
        "--resync-every",
        "100000",
        // Nothing is old enough to be removed, so no re-check inspects.
        "--stopped-grace",
        "3600",
        "--logger-container",
        log_service,
        "--only-label",
        scope.label.as_str(),
        "--logger-url",
        "",
    ])
}

fn inspects(d: &Daemon) -> f64 {
    metric_sum(&d.metrics(), "gestor_docker_requests_total{op=\"inspect\"}")
}

/// The state the last cycle reported for `name`.
fn reported_state(d: &Daemon, name: &str) -> Option<String> {
    d.state()["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
        .and_then(|c| c["state"].as_str().map(String::from))
}

#[test]
fn a_listing_inspects_only_the_stopped_containers_gestor_may_remove() {
    let scope = Scope::new("inspects-list");
    let (log_service, managed) = stopped_mix(&scope, 2);
    let d = start(&scope, "list", &log_service);
    d.wait_for("the managed ones reported", Duration::from_secs(20), || {
        managed
            .iter()
            .all(|m| reported_state(&d, m).as_deref() == Some("exited"))
    });
    // Several cycles, each listing the 14 stopped containers.
    d.wait_cycles(5, Duration::from_secs(20));
    assert_eq!(
        d.state()["containers"].as_array().map(Vec::len),
        Some(14),
        "every container of the scope is listed"
    );
    assert_eq!(
        inspects(&d),
        managed.len() as f64,
        "one inspect per managed stopped container, once; none for the 12 others"
    );
}

#[test]
fn the_event_inventory_inspects_no_stopped_container_gestor_may_not_remove() {
    let scope = Scope::new("inspects-events");
    let log_service = unique("logsvc");
    let events = |resync_every: &str| {
        Daemon::start(&[
            "--interval",
            "0.3",
            "--dry-run",
            "--inventory",
            "events",
            "--resync-every",
            resync_every,
            "--stopped-grace",
            "3600",
            "--logger-container",
            log_service.as_str(),
            "--only-label",
            scope.label.as_str(),
            "--logger-url",
            "",
        ])
    };
    // Following events (started first, and no full listing meanwhile, so
    // each container reaches it as its events and the count is exact): what
    // a created container is cannot be known without one inspect, how one of
    // other people's ended is not asked.
    let d = events("100000");
    d.wait_cycles(1, Duration::from_secs(20));
    assert_eq!(inspects(&d), 0.0);
    let (_, managed) = stopped_mix_named(&scope, 0, &log_service);
    assert!(managed.is_empty());
    d.wait_for("all 12 reported stopped", Duration::from_secs(30), || {
        d.state()["containers"].as_array().is_some_and(|cs| {
            cs.len() == 12
                && cs
                    .iter()
                    .all(|c| c["state"] == "exited" || c["state"] == "created")
        })
    });
    d.wait_cycles(3, Duration::from_secs(20));
    assert_eq!(
        inspects(&d),
        12.0,
        "one per creation; none for the 3 that ran and ended"
    );
    drop(d);

    // Listing them (at start, then a full listing every cycle) asks nothing:
    // none is gestor's to remove.
    let d = events("1");
    d.wait_for("12 containers reported", Duration::from_secs(20), || {
        d.state()["containers"].as_array().map(Vec::len) == Some(12)
    });
    d.wait_cycles(3, Duration::from_secs(20));
    let m = d.metrics();
    assert!(metric_sum(&m, "gestor_docker_requests_total{op=\"list\"}") >= 3.0);
    assert_eq!(inspects(&d), 0.0, "{m}");
    assert_eq!(metric_sum(&m, "gestor_inventory_drift_total"), 0.0, "{m}");
    assert_eq!(metric_sum(&m, "gestor_inventory_stale"), 0.0);
}

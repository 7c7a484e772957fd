//! Against a real Docker engine: labeled stress containers of each type, one
//! protected and one unlabeled; the real daemon runs real cycles.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn a_real_cycle_kills_exactly_the_surplus_and_metrics_follow() {
    let scope = Scope::new("cycle");
    // ram: three sizes; the policy must keep the smallest.
    let (ram_small, small_id) = scope.managed("ram", "stress --vm 1 --vm-bytes 8M --vm-keep");
    let (ram_mid, mid_id) = scope.managed("ram", "stress --vm 1 --vm-bytes 48M --vm-keep");
    let (ram_big, big_id) = scope.managed("ram", "stress --vm 1 --vm-bytes 96M --vm-keep");
    let mut cpus = Vec::new();
    for _ in 0..3 {
        cpus.push(scope.managed("cpu", "stress --cpu 1").0);
    }
    let mut ios = Vec::new();
    for _ in 0..2 {
        ios.push(scope.managed("io", "stress --io 1").0);
    }
    let mut disks = Vec::new();
    for _ in 0..2 {
        disks.push(scope.managed("disk", "stress --hdd 1 --hdd-bytes 8M").0);
    }
    let protected = unique("protected");
    scope.run(
        &protected,
        &[
            "gestor.managed=true",
            "gestor.type=cpu",
            "gestor.protected=true",
        ],
        "stress --cpu 1",
    );
    let unlabeled = unique("unlabeled");
    scope.run(&unlabeled, &[], "stress --cpu 1");
    // The vm workers have touched their memory: RSS tells the sizes apart.
    for (id, mib) in [(&small_id, 8), (&mid_id, 48), (&big_id, 96)] {
        scope.wait_rss(id, mib * 1024, Duration::from_secs(30));
    }

    let d = Daemon::start(&[
        "--interval",
        "2",
        "--only-label",
        scope.label.as_str(),
        "--logger-url",
        "",
        "--stop-timeout",
        "1",
    ]);
    d.wait_for("the surplus to go", Duration::from_secs(40), || {
        scope.names(true).len() == 6
    });
    // One more cycle: it must kill nothing more, and drop the killed series.
    d.wait_cycles(1, Duration::from_secs(30));
    let last = d.state();

    let running = scope.names(false);
    let all = scope.names(true);
    assert_eq!(
        running, all,
        "killed containers must be removed, not left exited"
    );
    assert!(
        running.contains(&protected),
        "protected container was killed"
    );
    assert!(
        running.contains(&unlabeled),
        "unlabeled container was killed"
    );
    assert!(
        running.contains(&ram_small),
        "the smallest ram container must be kept: {running:?}"
    );
    assert!(!running.contains(&ram_mid) && !running.contains(&ram_big));
    for group in [&cpus, &ios, &disks] {
        let left = group.iter().filter(|n| running.contains(n)).count();
        assert_eq!(
            left, 1,
            "one of {group:?} must remain, running: {running:?}"
        );
    }
    assert_eq!(running.len(), 4 + 2);

    // The last cycle's decisions name a reason for every container, and the
    // six survivors are four keeps (one per type) and two left alone.
    let decided = last["containers"].as_array().unwrap();
    assert_eq!(decided.len(), 6, "{last}");
    for c in decided {
        assert!(!c["reason"].as_str().unwrap().is_empty(), "{c}");
    }
    let keeps = decided.iter().filter(|c| c["action"] == "keep").count();
    assert_eq!(keeps, 4, "{last}");
    assert_eq!(last["kills"].as_u64(), Some(0), "{last}");

    let metrics = d.metrics();
    promtool_check(&metrics).expect("promtool check metrics");
    for name in &running {
        if name == &unlabeled || name == &protected {
            continue;
        }
        assert!(
            metrics.contains("gestor_container_memory_bytes{id=")
                && metrics.contains(&format!("name=\"{name}\"")),
            "no series for {name}"
        );
    }
    for gone in [&ram_mid, &ram_big] {
        assert!(
            !metrics.contains(&format!("name=\"{gone}\"")),
            "series of killed {gone} remain"
        );
    }
    assert!(
        metrics.contains("gestor_kills_total{reason=\"surplus\",rule=\"ram\",type=\"ram\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("gestor_kills_total{reason=\"surplus\",rule=\"cpu\",type=\"cpu\"} 2"));
    assert!(metrics.contains("gestor_kills_total{reason=\"surplus\",rule=\"io\",type=\"io\"} 1"));
    assert!(
        metrics.contains("gestor_kills_total{reason=\"surplus\",rule=\"disk\",type=\"disk\"} 1")
    );
    assert!(metrics.contains("gestor_snapshot_source{source=\"userspace\"} 1"));
    assert!(metrics.contains("gestor_cycle_stage_success{stage=\"act\"} 1"));
}

#[test]
fn dry_run_decides_but_kills_nothing() {
    let scope = Scope::new("dryrun");
    for _ in 0..3 {
        scope.managed("cpu", "stress --cpu 1");
    }
    let out = std::process::Command::new(gestor_bin())
        .args([
            "once",
            "--dry-run",
            "--create-logger=false",
            "--logger-url",
            "",
        ])
        .args(["--only-label", &scope.label])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(table.matches(" kill ").count(), 2, "{table}");
    assert_eq!(table.matches(" keep ").count(), 1, "{table}");
    assert!(table.contains("dry run"), "{table}");
    assert_eq!(scope.names(false).len(), 3, "dry run killed something");
}

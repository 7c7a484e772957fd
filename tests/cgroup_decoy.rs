//! A process in a cgroup named after a real container, but not where Docker
//! placed that container (what any user can make in a delegated cgroup
//! subtree), is not counted as that container's.
//!
//! The decoy here is a CPU burner on the host, moved into
//! `<scratch>/docker/<id>` of a real, idle container `<id>`: the collector
//! alone names the container for it (checked first, so the test shows the
//! decoy works); the daemon, asking Docker where the container really is,
//! must not count it (the container stays near 0 CPU) and must say so in
//! `gestor_processes_misplaced`.

mod common;

use common::*;
use gestor::collect::procfs::collect;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

/// The decoy cgroup directories, removed (deepest first) when dropped, after
/// the decoy is killed.
struct Decoy {
    child: Child,
    dirs: Vec<PathBuf>,
}

impl Decoy {
    /// A CPU burner in `<scratch>/docker/<id>` of the memory hierarchy (cgroup
    /// v1) or of the unified one (v2).
    fn burner_in_fake_cgroup_of(id: &str) -> Decoy {
        let root = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            PathBuf::from("/sys/fs/cgroup")
        } else {
            PathBuf::from("/sys/fs/cgroup/memory")
        };
        let scratch = root.join(unique("gestor-decoy"));
        let leaf = scratch.join("docker").join(id);
        std::fs::create_dir_all(&leaf).expect("make the decoy cgroup (run as root)");
        let child = Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        let decoy = Decoy {
            child,
            dirs: vec![leaf.clone(), scratch.join("docker"), scratch],
        };
        std::fs::write(leaf.join("cgroup.procs"), decoy.child.id().to_string())
            .expect("move the decoy into its cgroup");
        decoy
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Decoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for d in &self.dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}

#[test]
fn a_process_in_a_forged_cgroup_is_not_counted_for_the_container() {
    let scope = Scope::new("decoy");
    let (name, id) = scope.managed("cpu", "sleep 600");
    let decoy = Decoy::burner_in_fake_cgroup_of(&id);

    // The collector by itself takes the decoy for the container's.
    let snapshot = collect(Path::new("/proc"), false).unwrap();
    let seen = snapshot
        .processes
        .iter()
        .find(|p| p.pid == decoy.pid())
        .expect("the decoy in the snapshot");
    assert_eq!(
        seen.container_id.as_deref(),
        Some(id.as_str()),
        "the decoy must look like the container's to the collector: {seen:?}"
    );

    let d = Daemon::start(&[
        "--interval",
        "1",
        "--source",
        "userspace",
        "--dry-run",
        "--only-label",
        scope.label.as_str(),
        "--logger-url",
        "",
    ]);
    // Two cycles with the decoy burning: rates are measured between them.
    d.wait_cycles(3, Duration::from_secs(30));
    let state = d.state();
    let report = state["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name.as_str())
        .unwrap_or_else(|| panic!("no report for {name}: {state}"));
    let cores = report["usage"]["cpu_cores"]
        .as_f64()
        .unwrap_or_else(|| panic!("the container's own process is still counted: {report}"));
    assert!(
        cores < 0.05,
        "the decoy's CPU was counted for {name}: {cores} cores; {report}"
    );
    let metrics = d.metrics();
    let misplaced = metric_required(&metrics, "gestor_processes_misplaced ");
    assert!(misplaced >= 1.0, "misplaced {misplaced}");
    assert!(
        d.log().contains("PROCESS NOT COUNTED")
            && d.log().contains(&format!("\"pid\":{},", decoy.pid())),
        "the refusal is logged with the pid:\n{}",
        d.log()
    );
}

//! Decisions an operator can trust, on the real daemon and the real Docker
//! engine: rates, never lifetimes; unreadable figures are unmeasured, never
//! zero; every act has a record, even when gestor is killed in the middle.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

/// The records of one cycle of the run (cycles count from 1 in each run).
fn of_cycle(records: &[serde_json::Value], cycle: u64) -> Vec<&serde_json::Value> {
    records.iter().filter(|r| r["cycle"] == cycle).collect()
}

fn events<'a>(records: &[&'a serde_json::Value], container_id: &str) -> Vec<&'a str> {
    records
        .iter()
        .filter(|r| r["container_id"] == container_id)
        .filter_map(|r| r["event"].as_str())
        .collect()
}

/// Waits until no process of the container runs `stress` (its busy part is over).
fn wait_idle(id: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let top = docker(&["top", id, "-o", "pid,comm"]);
        let busy = top
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().last())
            .any(|comm| comm == "stress" || comm == "timeout");
        if !busy {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} still busy: {top}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_idle_old_container_outlives_a_busy_new_one_and_nothing_dies_on_first_sight() {
    let scope = Scope::new("lifetime");
    let sink = RecordSink::start();
    let spool = tempfile::tempdir().unwrap();
    // Busy for 12 s on a whole core, then idle: its lifetime average stays
    // far above the new one's rate, its rate now is 0.
    let old_name = unique("cpu");
    let old = scope.run_args(
        &old_name,
        &["gestor.managed=true", "gestor.type=cpu"],
        &["--cpus", "1"],
        &["sh", "-c", "timeout 12 stress --cpu 1; exec sleep infinity"],
    );
    wait_idle(&old);
    // Busy now, on 0.3 of a core.
    let new_name = unique("cpu");
    let new = scope.run_with(
        &new_name,
        &["gestor.managed=true", "gestor.type=cpu"],
        &["--cpus", "0.3"],
        "stress --cpu 1",
    );
    let d = Daemon::start(&[
        "--interval",
        "3",
        "--only-label",
        scope.label.as_str(),
        "--logger-url",
        &sink.url,
        "--spool-dir",
        spool.path().to_str().unwrap(),
        "--stop-timeout",
        "1",
    ]);
    d.wait_for(
        "the second cycle's records",
        Duration::from_secs(60),
        || {
            sink.records()
                .iter()
                .any(|r| r["event"] == "cycle" && r["cycle"] == 2)
        },
    );
    let records = sink.records();
    // First cycle: no rate for anyone, so nobody is kept or killed.
    let first = of_cycle(&records, 1);
    assert_eq!(events(&first, &old), ["unmeasured"], "{first:#?}");
    assert_eq!(events(&first, &new), ["unmeasured"], "{first:#?}");
    assert!(
        first
            .iter()
            .all(|r| r["event"] != "kill" && r["event"] != "intent"),
        "{first:#?}"
    );
    // Second cycle: rates now. The idle one is kept, the busy one killed.
    let second = of_cycle(&records, 2);
    assert_eq!(events(&second, &old), ["keep"], "{second:#?}");
    let new_events = events(&second, &new);
    assert!(
        new_events.contains(&"intent") && new_events.contains(&"kill"),
        "{second:#?}"
    );
    d.wait_for("the busy one gone", Duration::from_secs(20), || {
        scope.state_of(&new_name).is_none()
    });
    assert_eq!(scope.state_of(&old_name).as_deref(), Some("running"));
}

/// A static program that reads /dev/zero and writes /dev/null as fast as it
/// may; with `hide`, it first makes itself non-dumpable, so /proc/<pid>/io
/// refuses a reader without CAP_SYS_PTRACE.
fn io_program(dir: &std::path::Path) -> std::path::PathBuf {
    let src = dir.join("io.c");
    std::fs::write(
        &src,
        r#"#include <fcntl.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
int main(int argc, char **argv) {
	static char buf[65536];
	int in = open("/dev/zero", O_RDONLY), out = open("/dev/null", O_WRONLY);
	if (argc > 1 && strcmp(argv[1], "hide") == 0)
		prctl(PR_SET_DUMPABLE, 0);
	for (;;)
		if (read(in, buf, sizeof(buf)) < 0 || write(out, buf, sizeof(buf)) < 0)
			return 1;
}
"#,
    )
    .unwrap();
    let bin = dir.join("io");
    let out = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("gcc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

#[test]
fn a_container_whose_io_cannot_be_read_is_unmeasured_not_kept_as_lightest() {
    let scope = Scope::new("nodump");
    let dir = tempfile::tempdir().unwrap();
    let bin = io_program(dir.path());
    let mount = format!("{}:/io:ro", bin.display());
    // The hidden one does five times the I/O of the visible one: read as
    // zero, it would be kept as the lightest and the visible one killed.
    let hidden_name = unique("io");
    let hidden = scope.run_args(
        &hidden_name,
        &["gestor.managed=true", "gestor.type=io"],
        &["--cpus", "0.5", "-v", &mount],
        &["/io", "hide"],
    );
    let seen_name = unique("io");
    let seen = scope.run_args(
        &seen_name,
        &["gestor.managed=true", "gestor.type=io"],
        &["--cpus", "0.1", "-v", &mount],
        &["/io"],
    );
    // gestor as root without CAP_SYS_PTRACE: the non-dumpable process's
    // /proc/<pid>/io answers EACCES (root with the capability reads it).
    let d = Daemon::start_under(
        &[
            "setpriv",
            "--bounding-set=-sys_ptrace",
            "--inh-caps=-sys_ptrace",
        ],
        &[
            "--interval",
            "2",
            "--only-label",
            scope.label.as_str(),
            "--logger-url",
            "",
            "--source",
            "userspace",
        ],
    );
    d.wait_cycles(3, Duration::from_secs(60));
    let state = d.state();
    let verdict = |id: &str| {
        state["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no verdict for {id}: {state}"))
    };
    let h = verdict(&hidden);
    assert_eq!(h["action"], "ignore", "{h}");
    assert!(
        h["reason"]
            .as_str()
            .unwrap()
            .contains("I/O counters could not be read"),
        "{h}"
    );
    assert_eq!(h["usage"]["io_unavailable"], true, "{h}");
    assert_eq!(verdict(&seen)["action"], "keep", "{state}");
    assert_eq!(state["kills"], 0, "{state}");
    let m = d.metrics();
    assert_eq!(
        metric(
            &m,
            "gestor_containers_unmeasured{resource=\"io\",why=\"unreadable\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(scope.state_of(&hidden_name).as_deref(), Some("running"));
    assert_eq!(scope.state_of(&seen_name).as_deref(), Some("running"));
}

#[test]
fn a_kill_cut_short_by_sigkill_still_gets_its_record_after_a_restart() {
    let scope = Scope::new("intent");
    let sink = RecordSink::start();
    let spool = tempfile::tempdir().unwrap();
    let spool_dir = spool.path().to_str().unwrap().to_string();
    // The keeper uses no CPU; the other, stress as PID 1, ignores SIGTERM:
    // its stop waits the whole 15 s grace.
    let (keeper_name, keeper) = scope.managed("cpu", "sleep infinity");
    let (victim_name, victim) = scope.managed("cpu", "stress --cpu 1");
    let args = [
        "--interval",
        "2",
        "--only-label",
        scope.label.as_str(),
        "--logger-url",
        &sink.url,
        "--spool-dir",
        &spool_dir,
        "--stop-timeout",
        "15",
    ];
    let mut first = Daemon::start(&args);
    first.wait_for("the slow stop under way", Duration::from_secs(60), || {
        first.log().contains("\"event\":\"stopping\"")
    });
    // SIGKILL in the middle of the stop: no outcome record from this run.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let before_restart = sink.of(&victim);
    assert!(
        before_restart.iter().all(|r| r["event"] != "kill"),
        "no kill record before the restart: {before_restart:#?}"
    );
    let second = Daemon::start(&args);
    second.wait_for("the victim's kill record", Duration::from_secs(90), || {
        sink.of(&victim).iter().any(|r| r["event"] == "kill")
    });
    // Its intent was recorded (before the act), and the kill record names it.
    let records = sink.of(&victim);
    let intents: Vec<&str> = records
        .iter()
        .filter(|r| r["event"] == "intent")
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert!(!intents.is_empty(), "{records:#?}");
    let first_intent = intents[0];
    // The intent of the killed run is resolved: by a record that names it.
    let resolved: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["details"]["intent"] == first_intent)
        .collect();
    assert!(
        resolved.iter().any(|r| r["details"]["recovered"] == true
            && (r["event"] == "kill" || r["event"] == "kill_failed")),
        "the interrupted intent {first_intent} has no outcome: {records:#?}"
    );
    second.wait_for("the victim removed", Duration::from_secs(60), || {
        scope.state_of(&victim_name).is_none()
    });
    assert_eq!(scope.state_of(&keeper_name).as_deref(), Some("running"));
    assert!(sink.of(&keeper).iter().all(|r| r["event"] != "kill"));
    // Nothing is left in the journal once resolved.
    let journal = spool.path().join("intents");
    second.wait_for("an empty journal", Duration::from_secs(20), || {
        std::fs::read_dir(&journal)
            .map(|d| d.flatten().count() == 0)
            .unwrap_or(true)
    });
}

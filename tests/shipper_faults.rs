//! Log shipping when the log service cannot be reached and the spool cannot
//! take everything: drops are bounded and counted, gestor keeps running.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

/// Bytes of the spool's segments (finished or being written): not the
/// lock's pid file, nor the intent journal's directory beside them.
fn spool_bytes_on_disk(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.ends_with(".jsonl") || name.ends_with(".jsonl.tmp")
        })
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum()
}

#[test]
fn a_full_spool_drops_counted_records_and_gestor_keeps_running() {
    let scope = Scope::new("spoolfull");
    scope.managed("cpu", "stress --cpu 1");
    let dir = tempfile::tempdir().unwrap();
    let dead = DeadPort::new();
    let url = dead.url();
    let d = Daemon::start(&[
        "--interval",
        "0.2",
        "--only-label",
        scope.label.as_str(),
        "--logger-url",
        &url,
        "--spool-dir",
        dir.path().to_str().unwrap(),
        "--spool-max-bytes",
        "4096",
        "--log-memory-records",
        "4",
    ]);
    d.wait_for("drops", Duration::from_secs(30), || {
        metric_required(
            &d.metrics(),
            "gestor_log_records_dropped_total{reason=\"spool_full\"}",
        ) > 0.0
    });
    d.wait_cycles(5, Duration::from_secs(20));
    let m = d.metrics();
    assert!(metric_required(&m, "gestor_log_spool_bytes") <= 4096.0);
    assert!(spool_bytes_on_disk(dir.path()) <= 4096);
    assert_eq!(metric_required(&m, "gestor_log_records_sent_total"), 0.0);
    // Every record is accounted for: waiting, or dropped and counted. Cycles
    // go on producing, so the three figures are compared in one scrape taken
    // between a cycle's hand-over and the next (most are).
    d.wait_for(
        "produced = queued + dropped",
        Duration::from_secs(20),
        || {
            let m = d.metrics();
            let produced = metric_required(&m, "gestor_log_records_total");
            let queued = metric_required(&m, "gestor_log_queue_records");
            let dropped = metric_required(
                &m,
                "gestor_log_records_dropped_total{reason=\"spool_full\"}",
            );
            eprintln!("produced {produced}, queued {queued}, dropped {dropped}");
            produced > 0.0 && produced == queued + dropped
        },
    );
    assert!(d.log().contains("log spool full; records dropped"));
    assert!(d.get("/healthz").is_some());
}

#[test]
fn a_spool_on_a_full_disk_is_counted_and_gestor_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("tiny");
    std::fs::create_dir(&mnt).unwrap();
    let ok = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=64k",
            "gestor-test",
            mnt.to_str().unwrap(),
        ])
        .status()
        .expect("mount (the tests run as root)");
    assert!(ok.success(), "cannot mount a tmpfs (the tests run as root)");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());

    let scope = Scope::new("diskfull");
    scope.managed("cpu", "stress --cpu 1");
    let dead = DeadPort::new();
    let url = dead.url();
    let d = Daemon::start(&[
        "--interval",
        "0.2",
        "--only-label",
        scope.label.as_str(),
        "--logger-url",
        &url,
        "--spool-dir",
        mnt.to_str().unwrap(),
        "--log-memory-records",
        "4",
    ]);
    d.wait_for("I/O drops", Duration::from_secs(60), || {
        metric_required(
            &d.metrics(),
            "gestor_log_records_dropped_total{reason=\"spool_io\"}",
        ) > 0.0
    });
    d.wait_cycles(5, Duration::from_secs(20));
    let m = d.metrics();
    assert_eq!(
        metric_required(&m, "gestor_cycle_stage_success{stage=\"read\"}"),
        1.0
    );
    assert!(d.log().contains("No space left on device"), "{}", d.log());
    assert!(metric_required(&m, "gestor_log_spool_bytes") <= 64.0 * 1024.0);
    assert!(d.get("/healthz").is_some());
}

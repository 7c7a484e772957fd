//! The spool when the disk misbehaves, with the real `gestor` binary, real
//! files and a real HTTP log receiver started here (on port 0): a read-only
//! spool, a second gestor on the same spool, segments that cannot be read
//! and a corrupt one. Nothing is lost; what is wrong is said plainly.
//!
//! Root is needed (as for the rest of the suite): a read-only spool is made
//! with a read-only bind mount, since root writes through `chmod 0555`.

mod common;

use common::*;
use gestor::ship::records::{Record, RecordContext, RecordIds};
use gestor::ship::spool::Spool;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A log service stand-in: answers POST /logs with `status`, and keeps the
/// records of the batches it answers 200 to.
struct Receiver {
    url: String,
    status: Arc<AtomicU16>,
    records: Arc<Mutex<Vec<serde_json::Value>>>,
    _runtime: tokio::runtime::Runtime,
}

type ReceiverState = (Arc<AtomicU16>, Arc<Mutex<Vec<serde_json::Value>>>);

impl Receiver {
    fn start(status: u16) -> Receiver {
        use axum::extract::State;
        use axum::http::StatusCode;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let status = Arc::new(AtomicU16::new(status));
        let records = Arc::new(Mutex::new(Vec::new()));
        let state: ReceiverState = (status.clone(), records.clone());
        let app = axum::Router::new()
            .route(
                "/logs",
                axum::routing::post(
                    |State((status, records)): State<ReceiverState>,
                     axum::Json(batch): axum::Json<Vec<serde_json::Value>>| async move {
                        let code = status.load(Ordering::SeqCst);
                        if code == 200 {
                            records.lock().unwrap().extend(batch);
                        }
                        StatusCode::from_u16(code).unwrap()
                    },
                ),
            )
            .with_state(state);
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            url,
            status,
            records,
            _runtime: runtime,
        }
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn ids(&self) -> BTreeSet<String> {
        self.records
            .lock()
            .unwrap()
            .iter()
            .filter_map(|r| r["id"].as_str().map(String::from))
            .collect()
    }

    /// The cycles of run `run_id` whose cycle record arrived.
    fn cycles_of(&self, run_id: &str) -> BTreeSet<u64> {
        cycles_of(&self.records.lock().unwrap(), run_id)
    }
}

fn cycles_of(records: &[serde_json::Value], run_id: &str) -> BTreeSet<u64> {
    records
        .iter()
        .filter(|r| r["run_id"] == run_id && r["event"] == "cycle")
        .filter_map(|r| r["cycle"].as_u64())
        .collect()
}

/// The records in the spool's segment files.
fn spooled(dir: &Path) -> Vec<serde_json::Value> {
    segment_files(dir)
        .iter()
        .flat_map(|p| Spool::read(p).map(|s| s.records).unwrap_or_default())
        .map(|r| serde_json::to_value(r).unwrap())
        .collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    v.sort();
    v
}

/// `dir` bind-mounted on itself read-only: writes fail with EROFS even for
/// root. Unmounted on drop.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn new(dir: &Path) -> ReadOnly {
        mount(&["--bind", dir.to_str().unwrap(), dir.to_str().unwrap()]);
        let guard = ReadOnly(dir.to_path_buf());
        mount(&["-o", "remount,bind,ro", dir.to_str().unwrap()]);
        let probe = std::fs::write(dir.join("probe"), "x").unwrap_err();
        assert_eq!(probe.raw_os_error(), Some(libc::EROFS), "{probe}");
        guard
    }

    fn make_writable(&self) {
        mount(&["-o", "remount,bind,rw", self.0.to_str().unwrap()]);
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount(args: &[&str]) {
    let ok = Command::new("mount")
        .args(args)
        .status()
        .expect("mount (the tests run as root)");
    assert!(
        ok.success(),
        "mount {args:?} failed (the tests run as root)"
    );
}

/// A scope with no containers: each cycle makes exactly one record, its
/// `cycle` record, so a cycle's record stands for all it made.
fn empty_scope() -> String {
    format!("gestor.scope={}", unique("spool-empty"))
}

/// Stops the daemon (SIGTERM) and checks that every cycle it finished has
/// its record at the receiver or, undelivered, in the spool.
fn stop_and_check_nothing_lost(d: &mut Daemon, receiver: &Receiver, spool: &Path) -> usize {
    let run_id = d.state()["run_id"].as_str().unwrap().to_string();
    let (status, _) = d.terminate();
    assert!(status.success(), "{status}\n{}", d.log());
    let finished = d.log().matches("\"cycle done\"").count() as u64;
    assert!(finished >= 3, "{}", d.log());
    let mut have = receiver.cycles_of(&run_id);
    have.extend(cycles_of(&spooled(spool), &run_id));
    let missing: Vec<u64> = (1..=finished).filter(|c| !have.contains(c)).collect();
    assert!(
        missing.is_empty(),
        "records of finished cycles lost: {missing:?}"
    );
    finished as usize
}

#[test]
fn a_read_only_spool_keeps_records_in_memory_says_so_and_loses_none() {
    let receiver = Receiver::start(503);
    let root = tempfile::tempdir().unwrap();
    let spool = root.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    let read_only = ReadOnly::new(&spool);
    let scope = empty_scope();
    let mut d = Daemon::start(&[
        "--interval",
        "0.2",
        "--only-label",
        &scope,
        "--logger-url",
        &receiver.url,
        "--spool-dir",
        spool.to_str().unwrap(),
        "--log-memory-records",
        "1000",
    ]);
    d.wait_for("failed spool writes", Duration::from_secs(30), || {
        metric_required(&d.metrics(), "gestor_log_spool_write_errors_total") >= 5.0
    });
    // Said once, plainly, with the cause: not once per cycle.
    let log = d.log();
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("cannot write the log spool ("))
        .collect();
    assert_eq!(said.len(), 1, "{log}");
    assert!(said[0].contains("Read-only file system"), "{}", said[0]);
    assert!(said[0].contains(spool.to_str().unwrap()), "{}", said[0]);
    // Kept in memory, within the bound: every record produced is queued
    // (compared in one scrape between two cycles), none dropped, none on
    // disk.
    d.wait_for("produced = queued", Duration::from_secs(20), || {
        let m = d.metrics();
        let produced = metric_required(&m, "gestor_log_records_total");
        let queued = metric_required(&m, "gestor_log_queue_records");
        produced >= 5.0 && produced == queued
    });
    let m = d.metrics();
    assert!(metric_required(&m, "gestor_log_queue_records") <= 1000.0);
    assert_eq!(
        metric_sum(&m, "gestor_log_records_dropped_total"),
        0.0,
        "{m}"
    );
    assert!(segment_files(&spool).is_empty());

    // The disk can be written again: what waited in memory goes to disk,
    // while the log service still refuses.
    read_only.make_writable();
    d.wait_for(
        "memory written to the spool",
        Duration::from_secs(30),
        || {
            d.log()
                .contains("log records kept in memory are in the spool now")
        },
    );
    assert!(d.log().contains("the log spool can be written again"));
    let run_id = d.state()["run_id"].as_str().unwrap().to_string();
    let on_disk = cycles_of(&spooled(&spool), &run_id);
    assert!(
        on_disk.contains(&1),
        "cycle 1's record on disk: {on_disk:?}"
    );

    // The log service answers: everything arrives.
    receiver.answer(200);
    d.wait_for("records delivered", Duration::from_secs(30), || {
        receiver.cycles_of(&run_id).len() >= 10
    });
    let finished = stop_and_check_nothing_lost(&mut d, &receiver, &spool);
    eprintln!("read-only spool: {finished} cycles, every record delivered or spooled");
}

#[test]
fn a_second_gestor_on_the_same_spool_is_refused_and_the_first_loses_nothing() {
    let receiver = Receiver::start(503);
    let root = tempfile::tempdir().unwrap();
    let spool = root.path().join("spool");
    let spool_arg = spool.to_str().unwrap();
    let scope = empty_scope();
    let mut first = Daemon::start(&[
        "--interval",
        "0.2",
        "--only-label",
        &scope,
        "--logger-url",
        &receiver.url,
        "--spool-dir",
        spool_arg,
    ]);
    first.wait_for("segments in the spool", Duration::from_secs(30), || {
        segment_files(&spool).len() >= 3
    });
    let want = format!(
        "gestor: the spool {spool_arg} is in use by another gestor (pid {}); give this one its own --spool-dir",
        first.child.id()
    );
    // `gestor once` beside the daemon, and a second daemon: both refused,
    // in one line, before doing anything.
    let common = [
        "--only-label",
        &scope,
        "--logger-url",
        &receiver.url,
        "--spool-dir",
        spool_arg,
        "--create-logger=false",
    ];
    for command in [
        vec!["once"],
        vec!["run", "--listen", "127.0.0.1:0", "--interval", "0.2"],
    ] {
        let out = run_with_deadline(&command, &common, Duration::from_secs(30));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command:?}: {stderr}");
        assert_eq!(stderr.trim_end(), want, "{command:?}");
        assert!(out.stdout.is_empty(), "{command:?} ran a cycle");
    }
    // Only the first one's records are in the spool.
    let run_id = first.state()["run_id"].as_str().unwrap().to_string();
    let records = spooled(&spool);
    assert!(records.iter().all(|r| r["run_id"] == run_id.as_str()));

    receiver.answer(200);
    first.wait_for("records delivered", Duration::from_secs(30), || {
        receiver.cycles_of(&run_id).len() >= 10
    });
    let finished = stop_and_check_nothing_lost(&mut first, &receiver, &spool);
    // Once the first is gone, the spool is free again.
    let out = run_with_deadline(&["once"], &common, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("second gestor refused; the first's {finished} cycles all delivered or spooled");
}

/// Runs `gestor <command> <args>` to completion, killed past `deadline`.
fn run_with_deadline(command: &[&str], args: &[&str], deadline: Duration) -> std::process::Output {
    let mut child = Command::new(gestor_bin())
        .args(command)
        .args(args)
        .env_remove("GESTOR_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + deadline;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            panic!("gestor {command:?} still running after {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn record_lines(records: &[Record]) -> String {
    records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect()
}

#[test]
fn unreadable_segments_are_read_again_later_and_a_corrupt_one_is_moved_aside() {
    let receiver = Receiver::start(200);
    let root = tempfile::tempdir().unwrap();
    let spool = root.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    // What an earlier run left: 6 records in 4 segments (and a directory).
    let ids = RecordIds::random();
    let ctx = RecordContext {
        ids: &ids,
        host: "earlier",
        cycle: 1,
        time: "2026-01-01T00:00:00.000Z",
    };
    let old: Vec<Record> = (0..6)
        .map(|i| ctx.record("cycle", format!("old {i}")))
        .collect();
    // 1: a FIFO in a segment's place (a plain read would block forever).
    let fifo = spool.join("00000000000000000001-2.jsonl");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // 2: a directory in a segment's place.
    let dir = spool.join("00000000000000000002-1.jsonl");
    std::fs::create_dir(&dir).unwrap();
    // 3: a complete line that is not a record between two records.
    let corrupt = spool.join("00000000000000000003-3.jsonl");
    std::fs::write(
        &corrupt,
        record_lines(&old[2..3]) + "{\"half\": \"a record\"}\n" + &record_lines(&old[3..4]),
    )
    .unwrap();
    // 4: a torn last line (what a crash mid-write leaves).
    let torn = spool.join("00000000000000000004-2.jsonl");
    let text = record_lines(&old[4..6]);
    std::fs::write(&torn, &text[..text.len() - 30]).unwrap();

    let scope = empty_scope();
    let mut d = Daemon::start(&[
        "--interval",
        "0.5",
        "--only-label",
        &scope,
        "--logger-url",
        &receiver.url,
        "--spool-dir",
        spool.to_str().unwrap(),
    ]);
    let old_ids = |r: &[Record]| -> BTreeSet<String> { r.iter().map(|r| r.id.clone()).collect() };
    // What can be read is delivered, past what cannot.
    d.wait_for("the readable old records", Duration::from_secs(30), || {
        receiver.ids().is_superset(&old_ids(&old[2..5]))
    });
    // The metric counts before the segment is renamed, and a delivered
    // segment is deleted after the receiver has its records: each waited
    // for, not looked at once.
    d.wait_for(
        "the corrupt segment counted",
        Duration::from_secs(30),
        || metric_required(&d.metrics(), "gestor_log_spool_corrupt_total") == 1.0,
    );
    let aside = spool.join("00000000000000000003-3.jsonl.corrupt");
    d.wait_for(
        "the corrupt segment moved aside",
        Duration::from_secs(30),
        || aside.is_file() && !corrupt.exists(),
    );
    d.wait_for(
        "the torn segment, delivered, deleted",
        Duration::from_secs(30),
        || !torn.exists(),
    );
    let m = d.metrics();
    assert_eq!(
        metric_required(&m, "gestor_log_records_dropped_total{reason=\"corrupt\"}"),
        2.0,
        "one bad line and one torn line"
    );
    // The unreadable ones: read again and again, never deleted.
    d.wait_for("several failed reads", Duration::from_secs(30), || {
        metric_required(&d.metrics(), "gestor_log_spool_read_errors_total") >= 6.0
    });
    assert!(dir.is_dir());
    let fifo_kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&fifo_kind));
    let log = d.log();
    assert!(
        log.lines()
            .any(|l| l.contains("cannot read a spool segment now")
                && l.contains(fifo.to_str().unwrap())),
        "{log}"
    );
    // The FIFO's place gets its segment back: it is delivered.
    std::fs::remove_file(&fifo).unwrap();
    std::fs::write(&fifo, record_lines(&old[..2])).unwrap();
    d.wait_for("the segment once readable", Duration::from_secs(60), || {
        receiver.ids().is_superset(&old_ids(&old[..2]))
    });
    d.wait_for(
        "the segment deleted once delivered",
        Duration::from_secs(10),
        || !fifo.exists(),
    );
    let (status, _) = d.terminate();
    assert!(status.success());
    // Left: the directory (never deleted) and the corrupt file, aside.
    assert!(dir.is_dir());
    assert!(aside.is_file());
    assert!(
        !receiver.ids().contains(&old[5].id),
        "the torn record cannot arrive"
    );
}

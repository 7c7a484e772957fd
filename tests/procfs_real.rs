//! The userspace collector on this machine's real /proc, with a real Docker
//! container: its processes are found with the full container ID, their CPU
//! time grows, and the snapshot is valid both for gestor's parser and for the
//! JSON Schema (checked by Debian's python3-jsonschema).
//!
//! Needs a running Docker engine and the `gestor/stress:latest` image
//! (`scripts/setup-test-host.sh` provides both) and `python3-jsonschema`.

use std::collections::{hash_map::RandomState, BTreeSet};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use gestor::collect::procfs::collect;
use gestor::collect::snapshot::{self, Process, Snapshot};

const DOCKER: &str = "/usr/bin/docker";
const PYTHON: &str = "/usr/bin/python3";
const IMAGE: &str = "gestor/stress:latest";
const SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/sysinfo.schema.json");
const WAIT: Duration = Duration::from_secs(20);

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn docker(args: &[&str]) -> String {
    let out = run(DOCKER, args);
    assert!(
        out.status.success(),
        "docker {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn random_hex() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// A stress container with a label unique to this test run, removed on drop
/// (with every other container carrying that label), even when the test
/// fails.
struct Container {
    label: String,
    id: String,
    pid: u32,
}

impl Container {
    fn start(command: &[&str]) -> Container {
        assert!(
            Path::new(DOCKER).exists(),
            "{DOCKER} not found: install docker.io (scripts/setup-test-host.sh does)"
        );
        let info = run(DOCKER, &["info", "--format", "{{.ServerVersion}}"]);
        assert!(
            info.status.success(),
            "the Docker engine does not answer (run scripts/ensure-docker.sh): {}",
            String::from_utf8_lossy(&info.stderr).trim()
        );
        let label = format!("gestor.scope=procfs-test-{}", random_hex());
        let mut container = Container {
            label,
            id: String::new(),
            pid: 0,
        };
        let mut args = vec!["run", "-d", "--label", &container.label, IMAGE];
        args.extend_from_slice(command);
        let short = docker(&args);
        container.id = docker(&["inspect", "--format", "{{.Id}}", &short]);
        assert!(
            snapshot::is_container_id(&container.id),
            "docker inspect gave {:?}",
            container.id
        );
        let pid = docker(&["inspect", "--format", "{{.State.Pid}}", &container.id]);
        container.pid = pid.parse().unwrap_or_else(|_| panic!("State.Pid {pid:?}"));
        assert!(
            container.pid > 0,
            "container {} is not running",
            container.id
        );
        container
    }

    /// Host pids of the container's processes, as Docker sees them.
    fn top_pids(&self) -> BTreeSet<u32> {
        docker(&["top", &self.id, "-eo", "pid"])
            .lines()
            .skip(1)
            .map(|l| l.trim().parse().unwrap())
            .collect()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let filter = format!("label={}", self.label);
        let out = run(DOCKER, &["ps", "-aq", "--filter", &filter]);
        let ids = String::from_utf8_lossy(&out.stdout).to_string();
        for id in ids.split_whitespace() {
            let _ = run(DOCKER, &["rm", "-f", id]);
        }
    }
}

fn of_container<'a>(s: &'a Snapshot, id: &str) -> Vec<&'a Process> {
    s.processes
        .iter()
        .filter(|p| p.container_id.as_deref() == Some(id))
        .collect()
}

fn cpu_ns(s: &Snapshot, id: &str) -> u64 {
    of_container(s, id).iter().map(|p| p.cpu_time_ns).sum()
}

/// Validates a document against schema/sysinfo.schema.json with Debian's
/// python3-jsonschema (Draft 2020-12).
fn validate_with_schema(json: &[u8]) {
    let script = "import json, sys, jsonschema\n\
        schema = json.load(open(sys.argv[1]))\n\
        jsonschema.Draft202012Validator.check_schema(schema)\n\
        doc = json.load(sys.stdin)\n\
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=str)\n\
        for e in errors[:5]:\n    print(list(e.absolute_path), e.message)\n\
        sys.exit(1 if errors else 0)\n";
    let check = run(PYTHON, &["-c", "import jsonschema"]);
    assert!(
        check.status.success(),
        "{PYTHON} cannot import jsonschema: install Debian's python3-jsonschema \
         (apt-get install -y python3-jsonschema): {}",
        String::from_utf8_lossy(&check.stderr).trim()
    );
    let mut child = Command::new(PYTHON)
        .args(["-c", script, SCHEMA])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start python3");
    child.stdin.take().unwrap().write_all(json).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the snapshot does not match {SCHEMA}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Collects until `done` holds or WAIT passes; returns the last snapshot.
fn collect_until(all: bool, done: impl Fn(&Snapshot) -> bool) -> Snapshot {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = collect(Path::new("/proc"), all).expect("collect from /proc");
        if done(&s) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn finds_a_real_container_and_its_cpu_time_grows() {
    let c = Container::start(&["stress", "--cpu", "1"]);
    // stress forks its worker right after start: wait for parent + worker.
    let first = collect_until(false, |s| of_container(s, &c.id).len() >= 2);
    let procs = of_container(&first, &c.id);
    assert_eq!(
        procs.len(),
        2,
        "want stress and its worker in {}: {procs:#?}",
        c.id
    );

    // Exactly the processes Docker says are in the container.
    let found: BTreeSet<u32> = procs.iter().map(|p| p.pid).collect();
    assert_eq!(found, c.top_pids());

    // Only container processes when not asked for all of them.
    assert!(first.processes.iter().all(|p| p.container_id.is_some()));

    let parent = procs
        .iter()
        .find(|p| p.pid == c.pid)
        .expect("the container's init process");
    assert_eq!(parent.cmdline, "stress --cpu 1");
    assert_eq!(parent.comm, "stress");
    let worker = procs.iter().find(|p| p.pid != c.pid).unwrap();
    assert_eq!(worker.ppid, c.pid);
    assert_eq!(worker.comm, "stress");
    for p in &procs {
        assert_eq!(p.cgroup, format!("/docker/{}", c.id));
        assert!(p.rss_kib > 0 && p.vsz_kib >= p.rss_kib, "{p:?}");
        assert!(
            p.start_time_ns > 0 && p.start_time_ns <= first.uptime_ns,
            "{p:?}"
        );
        assert!(
            p.rchar > 0 || p.pid != c.pid,
            "the parent read its binary: {p:?}"
        );
    }

    // The worker spins: CPU time grows (bounded wait; 10 ms tick resolution).
    let before = cpu_ns(&first, &c.id);
    let second = collect_until(false, |s| cpu_ns(s, &c.id) > before + 50_000_000);
    let after = cpu_ns(&second, &c.id);
    assert!(
        after > before,
        "CPU time of {} did not grow: {before} ns then {after} ns",
        c.id
    );
    assert!(second.uptime_ns > first.uptime_ns);
    assert!(second.system.cpu_time_ns.busy() > first.system.cpu_time_ns.busy());

    // The document round-trips through gestor's parser and fits the schema.
    let json = serde_json::to_vec(&second).unwrap();
    assert_eq!(snapshot::parse(&json).unwrap(), second);
    validate_with_schema(&json);
}

#[test]
fn all_processes_snapshot_is_valid() {
    let c = Container::start(&["stress", "--cpu", "1"]);
    let s = collect_until(true, |s| of_container(s, &c.id).len() >= 2);
    assert_eq!(of_container(&s, &c.id).len(), 2);
    let me = s
        .processes
        .iter()
        .find(|p| p.pid == std::process::id())
        .expect("this test's own process");
    assert_eq!(me.container_id, None);
    assert!(me.cmdline.contains("procfs_real"), "{me:?}");
    assert!(
        s.processes
            .iter()
            .any(|p| p.container_id.is_none() && p.cmdline.is_empty()),
        "kernel threads have an empty cmdline"
    );

    let json = serde_json::to_vec(&s).unwrap();
    assert_eq!(snapshot::parse(&json).unwrap(), s);
    validate_with_schema(&json);
}

/// Timing on this machine: `cargo test --release --test procfs_real -- --ignored --nocapture`.
#[test]
#[ignore = "prints timings; run by hand"]
fn collect_timing() {
    let root = Path::new("/proc");
    for all in [false, true] {
        let rounds = 200;
        let mut n = 0;
        let started = Instant::now();
        for _ in 0..rounds {
            n = collect(root, all).unwrap().processes.len();
        }
        let pids = std::fs::read_dir(root)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .map(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .bytes()
                            .all(|b| b.is_ascii_digit())
                    })
                    .unwrap_or(false)
            })
            .count();
        println!(
            "collect(all_processes={all}): {:?} per call, {pids} pids in /proc, {n} reported",
            started.elapsed() / rounds
        );
    }
}

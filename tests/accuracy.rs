//! gestor's figures against the kernel's own per-cgroup accounting, on real
//! containers over the same window: a steady CPU container, a RAM container
//! and a fork-heavy one (a shell running short commands: its work is done by
//! children that live a few milliseconds). CPU within 10 % of the cgroup's
//! `cpuacct.usage` (v1) or `cpu.stat usage_usec` (v2); resident memory within
//! 10 % of the cgroup's `rss` (v1) or `anon` (v2).
//!
//! The snapshots come from the collector gestor runs when the module is not
//! loaded, on the host's /proc; usage is computed by the daemon's own code.
//! `bench/accuracy.sh` runs this with `--nocapture` and prints the figures.

mod common;

use common::*;
use gestor::collect::procfs::collect;
use gestor::collect::snapshot::Snapshot;
use gestor::collect::usage::container_usage;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long each comparison window lasts.
const WINDOW: Duration = Duration::from_secs(6);

/// The cgroup files of a container: found from its init process's cgroup.
struct Cgroup {
    cpu: PathBuf,
    memory: PathBuf,
    v2: bool,
}

impl Cgroup {
    fn of(id: &str) -> Cgroup {
        let pid = docker(&["inspect", "-f", "{{.State.Pid}}", id]);
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let path_of = |controller: &str| {
            text.lines().find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
                controllers
                    .split(',')
                    .any(|c| c == controller)
                    .then(|| path.to_string())
            })
        };
        let first_existing = |candidates: Vec<PathBuf>| {
            candidates
                .into_iter()
                .find(|p| p.exists())
                .unwrap_or_else(|| panic!("no cgroup file for {id} in {text}"))
        };
        if let (Some(cpu), Some(mem)) = (path_of("cpuacct"), path_of("memory")) {
            let cpu = first_existing(
                ["cpuacct", "cpu,cpuacct", "cpuacct,cpu"]
                    .iter()
                    .map(|m| {
                        Path::new("/sys/fs/cgroup")
                            .join(m)
                            .join(cpu.trim_start_matches('/'))
                            .join("cpuacct.usage")
                    })
                    .collect(),
            );
            let memory = Path::new("/sys/fs/cgroup/memory")
                .join(mem.trim_start_matches('/'))
                .join("memory.stat");
            Cgroup {
                cpu,
                memory,
                v2: false,
            }
        } else {
            let path = text
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .expect("a cgroup v2 line");
            let dir = Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
            Cgroup {
                cpu: dir.join("cpu.stat"),
                memory: dir.join("memory.stat"),
                v2: true,
            }
        }
    }

    /// CPU time charged to the cgroup, ns.
    fn cpu_ns(&self) -> u64 {
        let text = std::fs::read_to_string(&self.cpu).unwrap();
        if self.v2 {
            stat_value(&text, "usage_usec") * 1000
        } else {
            text.trim().parse().unwrap()
        }
    }

    /// Anonymous resident memory of the cgroup, bytes.
    fn rss_bytes(&self) -> u64 {
        let text = std::fs::read_to_string(&self.memory).unwrap();
        stat_value(&text, if self.v2 { "anon" } else { "rss" })
    }
}

fn stat_value(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

/// A snapshot, with the cgroup's CPU read just before and after it.
fn bracketed(cg: &Cgroup) -> (Snapshot, f64) {
    let before = cg.cpu_ns();
    let snap = collect(Path::new("/proc"), false).unwrap();
    let after = cg.cpu_ns();
    (snap, (before as f64 + after as f64) / 2.0)
}

/// gestor's and the cgroup's CPU over one window, in cores.
fn cpu_over_window(id: &str) -> (f64, f64) {
    let cg = Cgroup::of(id);
    let (s0, c0) = bracketed(&cg);
    std::thread::sleep(WINDOW);
    let (s1, c1) = bracketed(&cg);
    let seconds = (s1.uptime_ns - s0.uptime_ns) as f64 / 1e9;
    let usage = container_usage(Some(&s0), &s1);
    let u = usage.get(id).unwrap_or_else(|| panic!("no usage for {id}"));
    (
        u.counted.cpu_time_ns as f64 / 1e9 / seconds,
        (c1 - c0) / 1e9 / seconds,
    )
}

fn within(gestor: f64, kernel: f64, tolerance: f64) -> bool {
    kernel > 0.0 && ((gestor - kernel) / kernel).abs() <= tolerance
}

fn report(what: &str, gestor: f64, kernel: f64, unit: &str) {
    eprintln!(
        "accuracy: {what}: gestor {gestor:.3} {unit}, cgroup {kernel:.3} {unit}, difference {:+.1} %",
        (gestor - kernel) / kernel * 100.0
    );
}

/// Waits until the cgroup has used some CPU (the container got going).
fn wait_cpu(id: &str) {
    let cg = Cgroup::of(id);
    let start = cg.cpu_ns();
    let deadline = Instant::now() + Duration::from_secs(20);
    while cg.cpu_ns() < start + 200_000_000 {
        assert!(Instant::now() < deadline, "{id} used no CPU in 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn cpu_of_a_steady_container_matches_the_cgroup() {
    let scope = Scope::new("acc-cpu");
    let (_, id) = scope.managed("cpu", "stress --cpu 1");
    wait_cpu(&id);
    let (gestor, kernel) = cpu_over_window(&id);
    report("steady cpu container, CPU", gestor, kernel, "cores");
    assert!(
        within(gestor, kernel, 0.10),
        "gestor {gestor}, cgroup {kernel}"
    );
}

#[test]
fn cpu_of_a_fork_heavy_container_matches_the_cgroup() {
    let scope = Scope::new("acc-fork");
    let name = unique("cpu");
    // A loop of short commands: each /bin/true lives a few milliseconds, is
    // reaped by the shell, and its CPU is charged to the shell's children.
    let id = scope.run_args(
        &name,
        &["gestor.managed=true", "gestor.type=cpu"],
        &["--cpus", "0.5"],
        &["sh", "-c", "while :; do /bin/true; done"],
    );
    wait_cpu(&id);
    let (gestor, kernel) = cpu_over_window(&id);
    report("fork-heavy container, CPU", gestor, kernel, "cores");
    assert!(
        within(gestor, kernel, 0.10),
        "gestor {gestor}, cgroup {kernel}"
    );
}

#[test]
fn memory_of_a_ram_container_matches_the_cgroup() {
    let scope = Scope::new("acc-ram");
    let (_, id) = scope.managed("ram", "stress --vm 1 --vm-bytes 64M --vm-keep");
    scope.wait_rss(&id, 64 * 1024, Duration::from_secs(30));
    let cg = Cgroup::of(&id);
    let kernel_before = cg.rss_bytes();
    let snap = collect(Path::new("/proc"), false).unwrap();
    let kernel_after = cg.rss_bytes();
    let kernel = (kernel_before + kernel_after) as f64 / 2.0;
    let usage = container_usage(None, &snap);
    let gestor = usage[&id].memory_bytes as f64;
    report(
        "ram container, resident memory",
        gestor / 1048576.0,
        kernel / 1048576.0,
        "MiB",
    );
    assert!(
        within(gestor, kernel, 0.10),
        "gestor {gestor}, cgroup {kernel}"
    );
}

/// Seconds since the container's process named `comm` started (the youngest).
fn age_of(id: &str, comm: &str) -> Option<f64> {
    let top = docker(&["top", id, "-o", "pid,comm"]);
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    top.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let pid = f.next()?;
            (f.next()? == comm).then_some(pid)
        })
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let after = &stat[stat.rfind(')')? + 2..];
            let start: f64 = after.split_whitespace().nth(19)?.parse().ok()?;
            Some(uptime - start / 100.0)
        })
        .reduce(f64::min)
}

/// Waits until the container's youngest `comm` is between `from` and `to`
/// seconds old.
fn wait_age(id: &str, comm: &str, from: f64, to: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !age_of(id, comm).is_some_and(|a| a >= from && a < to) {
        assert!(
            Instant::now() < deadline,
            "no {comm} of {from}-{to} s in {id}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// gestor's CPU (cores) and I/O (chars read + written per second) of a
/// container over one window, from the processes alone, and the cgroup's CPU.
fn cpu_and_io_over_window(id: &str) -> (f64, f64, f64) {
    let cg = Cgroup::of(id);
    let (s0, c0) = bracketed(&cg);
    std::thread::sleep(WINDOW);
    let (s1, c1) = bracketed(&cg);
    let seconds = (s1.uptime_ns - s0.uptime_ns) as f64 / 1e9;
    let usage = container_usage(Some(&s0), &s1);
    let u = usage.get(id).unwrap_or_else(|| panic!("no usage for {id}"));
    (
        u.counted.cpu_time_ns as f64 / 1e9 / seconds,
        u.io_chars_per_second(),
        (c1 - c0) / 1e9 / seconds,
    )
}

/// The same work done by one long-lived process, and by children that live
/// four seconds each and are waited for (the kernel then folds each child's
/// CPU and I/O into its parent): the figures agree with each other, and the
/// CPU with the cgroup's. The window starts when a child has worked for 2 s
/// (it ends within the window): counted twice, its first 2 s of I/O would
/// add about a third to the 6 s window. The I/O (read/write chars) has no cgroup counter to
/// compare with: on cgroup v1 the block I/O counters read 0 here, and chars
/// are counted per task only.
#[test]
fn work_done_by_children_counts_as_work_done_by_one_process() {
    let scope = Scope::new("acc-children");
    let labels = ["gestor.managed=true", "gestor.type=io"];
    // Both CPU-bound at 0.1 of a core (the scope's limit): the same rate.
    let alone = scope.run_args(
        &unique("io"),
        &labels,
        &[],
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=64k"],
    );
    let children = scope.run_args(
        &unique("io"),
        &labels,
        &[],
        &[
            "sh",
            "-c",
            "while :; do timeout 4 dd if=/dev/zero of=/dev/null bs=64k 2>/dev/null; done",
        ],
    );
    wait_cpu(&alone);
    wait_cpu(&children);
    let (cpu_alone, io_alone, kernel_alone) = cpu_and_io_over_window(&alone);
    wait_age(&children, "dd", 2.0, 2.3);
    let (cpu_children, io_children, kernel_children) = cpu_and_io_over_window(&children);
    report("one process, CPU", cpu_alone, kernel_alone, "cores");
    report(
        "children of 4 s, CPU",
        cpu_children,
        kernel_children,
        "cores",
    );
    // The two get slightly different shares of a core: compare the I/O per
    // CPU second the kernel charged each.
    let (per_cpu_alone, per_cpu_children) =
        (io_alone / kernel_alone, io_children / kernel_children);
    eprintln!(
        "accuracy: I/O per CPU second: children of 4 s {:.0} MiB, one process {:.0} MiB, difference {:+.1} %",
        per_cpu_children / 1048576.0,
        per_cpu_alone / 1048576.0,
        (per_cpu_children - per_cpu_alone) / per_cpu_alone * 100.0
    );
    assert!(
        within(cpu_alone, kernel_alone, 0.10),
        "one process: gestor {cpu_alone}, cgroup {kernel_alone}"
    );
    assert!(
        within(cpu_children, kernel_children, 0.10),
        "children: gestor {cpu_children}, cgroup {kernel_children}"
    );
    assert!(
        within(per_cpu_children, per_cpu_alone, 0.10),
        "I/O: children {io_children} B/s on {kernel_children} cores, one process {io_alone} B/s on {kernel_alone} cores"
    );
}

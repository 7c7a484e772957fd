//! Per-container usage: processes grouped by container ID, and rates computed
//! from two samples of the same container. Pure.
//!
//! A rate is only ever a growth over the interval between two snapshots that
//! both saw the container: a container seen for the first time has none yet
//! ([`RateBasis::FirstSight`]), and is not judged until it has (a lifetime
//! average would make a container that was busy an hour ago look heavier
//! than one busy now).
//!
//! Which figure each resource uses:
//! - **CPU**: the growth of the container's cgroup CPU counter (`cpuacct.usage`
//!   or `cpu.stat usage_usec`) when gestor can read it in both snapshots: the
//!   kernel charges it for every process the container ever ran, children
//!   reaped automatically included. Otherwise the processes' own time plus the
//!   time of the children they reaped (`children_cpu_time_ns`), without
//!   counting twice a process alive at the last snapshot and reaped since.
//! - **Memory**: the resident set of the live processes, plus the container's
//!   tmpfs/shm pages (the cgroup's `shmem`) when readable.
//! - **Disk and I/O**: the processes' `/proc/<pid>/io` counters, with the same
//!   correction as CPU for reaped children (the kernel folds a reaped child's
//!   I/O into its parent, as it folds its CPU time). A container with a
//!   process whose counters could not be read is *unmeasured* for I/O and
//!   disk, never counted as idle. The I/O of children reaped automatically
//!   (`SIGCHLD` ignored) reaches no parent and no cgroup counter on cgroup v1:
//!   it is not seen.

use crate::collect::snapshot::{Process, Snapshot};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// Cumulative counters of one container's processes, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub processes: u32,
    /// CPU time of the live processes and of the children they reaped.
    pub cpu_time_ns: u64,
    pub rss_bytes: u64,
    pub read_bytes: u64,
    /// Net of cancelled writes.
    pub write_bytes: u64,
    pub rchar: u64,
    pub wchar: u64,
    pub syscr: u64,
    pub syscw: u64,
}

impl Totals {
    fn add(&mut self, c: &Counters) {
        self.cpu_time_ns = self.cpu_time_ns.saturating_add(c.cpu_time_ns);
        self.read_bytes = self.read_bytes.saturating_add(c.read_bytes);
        self.write_bytes = self.write_bytes.saturating_add(c.write_bytes);
        self.rchar = self.rchar.saturating_add(c.rchar);
        self.wchar = self.wchar.saturating_add(c.wchar);
        self.syscr = self.syscr.saturating_add(c.syscr);
        self.syscw = self.syscw.saturating_add(c.syscw);
    }
}

/// How the rates were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateBasis {
    /// Over the interval since the previous snapshot, which saw the
    /// container too.
    Interval,
    /// Seen for the first time: no rate yet (the rates read 0 and the
    /// container is not judged on them).
    FirstSight,
}

/// Where a container's CPU figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuSource {
    /// The container's cgroup counter.
    Cgroup,
    /// Its processes' CPU times (the cgroup counter was not readable).
    Processes,
}

/// What one container used, as the policy, the metrics and the logs see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Usage {
    pub totals: Totals,
    /// What the rates were computed from: the growth over the interval
    /// (zero at first sight).
    pub counted: Totals,
    /// Share of one core (2.0 = two cores busy).
    pub cpu_cores: f64,
    /// Share of all the host's CPUs, 0..1.
    pub cpu_ratio: f64,
    /// Resident memory of the live processes, plus the container's tmpfs/shm
    /// pages when its cgroup is readable.
    pub memory_bytes: u64,
    /// Share of the host's RAM, 0..1.
    pub memory_ratio: f64,
    pub disk_read_bytes_per_second: f64,
    pub disk_write_bytes_per_second: f64,
    pub io_read_chars_per_second: f64,
    pub io_write_chars_per_second: f64,
    pub io_syscalls_per_second: f64,
    pub basis: RateBasis,
    pub cpu_source: CpuSource,
    /// A process's I/O counters could not be read (in this snapshot or the
    /// previous one): the disk and I/O figures mean nothing.
    pub io_unavailable: bool,
}

impl Usage {
    /// Characters moved through read/write calls per second: the io type's resource.
    pub fn io_chars_per_second(&self) -> f64 {
        self.io_read_chars_per_second + self.io_write_chars_per_second
    }

    /// Whether the rates were measured over an interval.
    pub fn has_rates(&self) -> bool {
        self.basis == RateBasis::Interval
    }
}

/// Host-wide figures of one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HostUsage {
    pub cpus: u32,
    /// Busy share of all CPUs since the previous snapshot (since boot on the first).
    pub cpu_ratio: f64,
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    /// Own CPU time and that of the reaped children.
    cpu_time_ns: u64,
    /// Of which the reaped children's.
    children_cpu_time_ns: u64,
    read_bytes: u64,
    write_bytes: u64,
    rchar: u64,
    wchar: u64,
    syscr: u64,
    syscw: u64,
}

impl Counters {
    fn of(p: &Process) -> Counters {
        Counters {
            cpu_time_ns: p.cpu_with_children_ns(),
            children_cpu_time_ns: p.children_cpu_time_ns,
            read_bytes: p.read_bytes,
            write_bytes: p.net_write_bytes(),
            rchar: p.rchar,
            wchar: p.wchar,
            syscr: p.syscr,
            syscw: p.syscw,
        }
    }

    /// Growth since `before`; a counter that went backwards counts as 0.
    fn since(&self, before: &Counters) -> Counters {
        Counters {
            cpu_time_ns: self.cpu_time_ns.saturating_sub(before.cpu_time_ns),
            children_cpu_time_ns: self
                .children_cpu_time_ns
                .saturating_sub(before.children_cpu_time_ns),
            read_bytes: self.read_bytes.saturating_sub(before.read_bytes),
            write_bytes: self.write_bytes.saturating_sub(before.write_bytes),
            rchar: self.rchar.saturating_sub(before.rchar),
            wchar: self.wchar.saturating_sub(before.wchar),
            syscr: self.syscr.saturating_sub(before.syscr),
            syscw: self.syscw.saturating_sub(before.syscw),
        }
    }

    fn add(&mut self, other: &Counters) {
        self.cpu_time_ns = self.cpu_time_ns.saturating_add(other.cpu_time_ns);
        self.read_bytes = self.read_bytes.saturating_add(other.read_bytes);
        self.write_bytes = self.write_bytes.saturating_add(other.write_bytes);
        self.rchar = self.rchar.saturating_add(other.rchar);
        self.wchar = self.wchar.saturating_add(other.wchar);
        self.syscr = self.syscr.saturating_add(other.syscr);
        self.syscw = self.syscw.saturating_add(other.syscw);
    }
}

/// A process is the same process across snapshots when pid and start time match
/// (pids are reused).
type ProcessKey = (u32, u64);

/// What would be counted twice unless taken off. When a process that was
/// alive in the previous snapshot has since been reaped by a process of its
/// container (it waited for it), the kernel folds its whole CPU time and I/O
/// into the reaper (`cutime`/`cstime`, the reaper's `/proc/<pid>/io`),
/// including what it had done before the previous snapshot, which was counted
/// then. For each container, the counters the reaped processes had at the
/// previous snapshot. A process whose parent was outside the container
/// (`docker exec`) is reaped outside it: nothing of it comes back, nothing to
/// take off.
fn reaped_before<'a>(
    previous: &'a Snapshot,
    current_keys: &HashSet<ProcessKey>,
) -> HashMap<&'a str, Counters> {
    let container_of: HashMap<u32, &str> = previous
        .processes
        .iter()
        .filter_map(|p| Some((p.pid, p.container_id.as_deref()?)))
        .collect();
    let mut out: HashMap<&str, Counters> = HashMap::new();
    for p in &previous.processes {
        let Some(id) = p.container_id.as_deref() else {
            continue;
        };
        let gone = !current_keys.contains(&(p.pid, p.start_time_ns));
        if gone && container_of.get(&p.ppid) == Some(&id) {
            out.entry(id).or_default().add(&Counters::of(p));
        }
    }
    out
}

/// Takes the reaped processes' earlier counters off a container's growth.
///
/// CPU: at most what the children time grew by (a child reaped automatically,
/// `SIGCHLD` ignored, folds into nobody). I/O has no children-only counter,
/// so the children time tells how much of the reaped processes was folded in:
/// their I/O is taken off in the share their CPU time came back (all of it
/// when they were waited for; none when they were reaped automatically; all
/// when they had used no CPU, as a wait is the norm). Never below zero.
fn without_reaped(mut grown: Counters, children_grown_ns: u64, reaped: &Counters) -> Counters {
    let cpu_back = reaped.cpu_time_ns.min(children_grown_ns);
    grown.cpu_time_ns = grown.cpu_time_ns.saturating_sub(cpu_back);
    let folded = if reaped.cpu_time_ns == 0 {
        1.0
    } else {
        cpu_back as f64 / reaped.cpu_time_ns as f64
    };
    let off = |grew: u64, before: u64| grew.saturating_sub((before as f64 * folded) as u64);
    grown.read_bytes = off(grown.read_bytes, reaped.read_bytes);
    grown.write_bytes = off(grown.write_bytes, reaped.write_bytes);
    grown.rchar = off(grown.rchar, reaped.rchar);
    grown.wchar = off(grown.wchar, reaped.wchar);
    grown.syscr = off(grown.syscr, reaped.syscr);
    grown.syscw = off(grown.syscw, reaped.syscw);
    grown
}

/// The cgroup CPU counter's growth for a container, when both snapshots have
/// it and it did not go backwards (a counter reset, or another cgroup).
fn cgroup_cpu_grown(previous: Option<&Snapshot>, current: &Snapshot, id: &str) -> Option<u64> {
    let now = current.cgroups.get(id)?.cpu_usage_ns?;
    let then = previous?.cgroups.get(id)?.cpu_usage_ns?;
    now.checked_sub(then)
}

/// Computes each container's usage in `current`, with rates over the
/// interval since `previous` for the containers it saw too; the others are
/// at first sight, with no rates. Processes without a container ID are
/// ignored. See the module's documentation for the figure of each resource.
pub fn container_usage(previous: Option<&Snapshot>, current: &Snapshot) -> HashMap<String, Usage> {
    let elapsed_ns = previous
        .map(|p| current.uptime_ns.saturating_sub(p.uptime_ns))
        .filter(|&ns| ns > 0);
    let previous = previous.filter(|_| elapsed_ns.is_some());
    let before: HashMap<ProcessKey, Counters> = previous
        .map(|prev| {
            prev.processes
                .iter()
                .filter(|p| p.container_id.is_some())
                .map(|p| ((p.pid, p.start_time_ns), Counters::of(p)))
                .collect()
        })
        .unwrap_or_default();
    // Containers seen before, and those whose I/O was unreadable then.
    let mut seen_before: HashSet<&str> = HashSet::new();
    let mut io_unreadable_before: HashSet<&str> = HashSet::new();
    for p in previous.iter().flat_map(|prev| &prev.processes) {
        if let Some(id) = p.container_id.as_deref() {
            seen_before.insert(id);
            if p.io_unavailable {
                io_unreadable_before.insert(id);
            }
        }
    }
    let current_keys: HashSet<ProcessKey> = current
        .processes
        .iter()
        .map(|p| (p.pid, p.start_time_ns))
        .collect();
    let reaped = previous
        .map(|prev| reaped_before(prev, &current_keys))
        .unwrap_or_default();

    #[derive(Default)]
    struct Acc {
        totals: Totals,
        interval: Counters,
        /// Growth of the reaped children's time, over the interval.
        children_grown_ns: u64,
        io_unavailable: bool,
    }
    let mut by_container: HashMap<&str, Acc> = HashMap::new();
    let prev_uptime = previous.map_or(0, |p| p.uptime_ns);
    for p in &current.processes {
        let Some(id) = p.container_id.as_deref() else {
            continue;
        };
        let acc = by_container.entry(id).or_default();
        let now = Counters::of(p);
        acc.totals.processes += 1;
        acc.totals.rss_bytes = acc.totals.rss_bytes.saturating_add(p.rss_kib * 1024);
        acc.totals.add(&now);
        acc.io_unavailable |= p.io_unavailable;
        let grown = match before.get(&(p.pid, p.start_time_ns)) {
            Some(then) => {
                let g = now.since(then);
                acc.children_grown_ns += g.children_cpu_time_ns;
                g
            }
            // Born during the interval: everything it did, it did in it.
            None if p.start_time_ns >= prev_uptime => now,
            // Existed but was not seen (moved into the container): unknown share.
            None => Counters::default(),
        };
        acc.interval.add(&grown);
    }

    let mem_total_bytes = current.system.mem_total_kib.saturating_mul(1024).max(1);
    let cpus = f64::from(current.system.cpu_count.max(1));
    by_container
        .into_iter()
        .map(|(id, acc)| {
            let measured = elapsed_ns.filter(|_| seen_before.contains(id));
            let mut counted = Counters::default();
            let mut cpu_source = CpuSource::Processes;
            if measured.is_some() {
                let no_reaped = Counters::default();
                let reaped = reaped.get(id).unwrap_or(&no_reaped);
                counted = without_reaped(acc.interval, acc.children_grown_ns, reaped);
                if let Some(ns) = cgroup_cpu_grown(previous, current, id) {
                    counted.cpu_time_ns = ns;
                    cpu_source = CpuSource::Cgroup;
                }
            }
            let counted = Totals {
                processes: 0,
                cpu_time_ns: counted.cpu_time_ns,
                rss_bytes: 0,
                read_bytes: counted.read_bytes,
                write_bytes: counted.write_bytes,
                rchar: counted.rchar,
                wchar: counted.wchar,
                syscr: counted.syscr,
                syscw: counted.syscw,
            };
            let seconds = measured.map_or(0.0, |ns| ns as f64 / 1e9);
            let per_second = |v: u64| {
                if seconds > 0.0 {
                    v as f64 / seconds
                } else {
                    0.0
                }
            };
            let cpu_cores = per_second(counted.cpu_time_ns) / 1e9;
            let shmem = current
                .cgroups
                .get(id)
                .and_then(|c| c.shmem_bytes)
                .unwrap_or(0);
            let memory_bytes = acc.totals.rss_bytes.saturating_add(shmem);
            let usage = Usage {
                totals: acc.totals,
                counted,
                cpu_cores,
                cpu_ratio: (cpu_cores / cpus).clamp(0.0, 1.0),
                memory_bytes,
                memory_ratio: (memory_bytes as f64 / mem_total_bytes as f64).clamp(0.0, 1.0),
                disk_read_bytes_per_second: per_second(counted.read_bytes),
                disk_write_bytes_per_second: per_second(counted.write_bytes),
                io_read_chars_per_second: per_second(counted.rchar),
                io_write_chars_per_second: per_second(counted.wchar),
                io_syscalls_per_second: per_second(counted.syscr.saturating_add(counted.syscw)),
                basis: if measured.is_some() {
                    RateBasis::Interval
                } else {
                    RateBasis::FirstSight
                },
                cpu_source,
                io_unavailable: acc.io_unavailable || io_unreadable_before.contains(id),
            };
            (id.to_string(), usage)
        })
        .collect()
}

/// Host CPU and memory from one snapshot (and the previous one, for CPU).
pub fn host_usage(previous: Option<&Snapshot>, current: &Snapshot) -> HostUsage {
    let now = current.system.cpu_time_ns;
    let (busy, total) = match previous {
        Some(prev) if now.total() > prev.system.cpu_time_ns.total() => {
            let then = prev.system.cpu_time_ns;
            (
                now.busy().saturating_sub(then.busy()),
                now.total() - then.total(),
            )
        }
        _ => (now.busy(), now.total()),
    };
    HostUsage {
        cpus: current.system.cpu_count,
        cpu_ratio: if total == 0 {
            0.0
        } else {
            (busy as f64 / total as f64).clamp(0.0, 1.0)
        },
        memory_total_bytes: current.system.mem_total_kib.saturating_mul(1024),
        memory_available_bytes: current.system.mem_available_kib.saturating_mul(1024),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::snapshot::{CpuTimes, SourceKind, System};

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn proc_in(id: Option<&str>, pid: u32, cpu_s: f64, rss_mib: u64, wbytes: u64) -> Process {
        Process {
            pid,
            ppid: 1,
            comm: "stress".into(),
            cmdline: "stress".into(),
            container_id: id.map(String::from),
            cgroup: String::new(),
            state: "R".into(),
            rss_kib: rss_mib * 1024,
            vsz_kib: 0,
            mem_pct_x100: 0,
            cpu_time_ns: (cpu_s * 1e9) as u64,
            start_time_ns: 1_000_000_000,
            read_bytes: 0,
            write_bytes: wbytes,
            rchar: 0,
            wchar: wbytes,
            syscr: 0,
            syscw: 0,
            ..Default::default()
        }
    }

    fn snap(uptime_s: u64, busy_s: u64, idle_s: u64, processes: Vec<Process>) -> Snapshot {
        Snapshot {
            version: 1,
            source: SourceKind::Userspace,
            timestamp_ns: 0,
            uptime_ns: uptime_s * 1_000_000_000,
            system: System {
                cpu_count: 2,
                cpu_time_ns: CpuTimes {
                    user: busy_s * 1_000_000_000,
                    idle: idle_s * 1_000_000_000,
                    ..Default::default()
                },
                mem_total_kib: 1024 * 1024,
                mem_available_kib: 512 * 1024,
                ..Default::default()
            },
            processes,
            cgroups: Default::default(),
        }
    }

    #[test]
    fn groups_processes_by_container_and_skips_the_rest() {
        let s = snap(
            11,
            0,
            0,
            vec![
                proc_in(Some(A), 10, 1.0, 10, 0),
                proc_in(Some(A), 11, 2.0, 20, 0),
                proc_in(Some(B), 12, 0.0, 5, 0),
                proc_in(None, 13, 50.0, 500, 0),
            ],
        );
        let u = container_usage(None, &s);
        assert_eq!(u.len(), 2);
        assert_eq!(u[A].totals.processes, 2);
        assert_eq!(u[A].memory_bytes, 30 * 1024 * 1024);
        assert_eq!(u[A].totals.cpu_time_ns, 3_000_000_000);
        assert!((u[A].memory_ratio - 30.0 / 1024.0).abs() < 1e-9);
        // First sight: no rate yet, whatever the processes did before (no
        // lifetime average: busy an hour ago is not busy now).
        assert_eq!(u[A].basis, RateBasis::FirstSight);
        assert!(!u[A].has_rates());
        assert_eq!(u[A].cpu_cores, 0.0);
        assert_eq!(u[A].cpu_ratio, 0.0);
    }

    #[test]
    fn rates_over_the_interval_between_two_snapshots() {
        let before = snap(10, 0, 0, vec![proc_in(Some(A), 10, 5.0, 10, 1000)]);
        let after = snap(20, 0, 0, vec![proc_in(Some(A), 10, 15.0, 10, 51_000)]);
        let u = container_usage(Some(&before), &after);
        assert_eq!(u[A].basis, RateBasis::Interval);
        assert!((u[A].cpu_cores - 1.0).abs() < 1e-9);
        assert!((u[A].cpu_ratio - 0.5).abs() < 1e-9);
        assert!((u[A].disk_write_bytes_per_second - 5000.0).abs() < 1e-9);
        assert!((u[A].io_write_chars_per_second - 5000.0).abs() < 1e-9);
    }

    #[test]
    fn a_reused_pid_is_a_new_process_and_exits_do_not_go_negative() {
        let before = snap(
            10,
            0,
            0,
            vec![
                proc_in(Some(A), 10, 100.0, 10, 0),
                proc_in(Some(A), 11, 100.0, 10, 0),
            ],
        );
        let mut reborn = proc_in(Some(A), 10, 1.0, 10, 0);
        reborn.start_time_ns = 15_000_000_000;
        let after = snap(20, 0, 0, vec![reborn]);
        let u = container_usage(Some(&before), &after);
        // pid 11 exited, pid 10 was reused: only the new process's 1 s counts.
        assert!((u[A].cpu_cores - 0.1).abs() < 1e-9, "{}", u[A].cpu_cores);
    }

    fn child(id: &str, pid: u32, ppid: u32, start_s: u64, cpu_s: f64, children_s: f64) -> Process {
        let mut p = proc_in(Some(id), pid, cpu_s, 1, 0);
        p.ppid = ppid;
        p.start_time_ns = start_s * 1_000_000_000;
        p.children_cpu_time_ns = (children_s * 1e9) as u64;
        p
    }

    #[test]
    fn the_cpu_of_reaped_children_counts() {
        // A shell (pid 10) runs short commands one after the other: each is
        // born and reaped between two snapshots, its time lands in the
        // shell's children time.
        let before = snap(10, 0, 0, vec![child(A, 10, 1, 1, 0.5, 2.0)]);
        let after = snap(20, 0, 0, vec![child(A, 10, 1, 1, 1.0, 9.5)]);
        let u = container_usage(Some(&before), &after);
        // 0.5 s of its own and 7.5 s of its children over 10 s.
        assert!((u[A].cpu_cores - 0.8).abs() < 1e-9, "{}", u[A].cpu_cores);
        assert_eq!(u[A].counted.cpu_time_ns, 8_000_000_000);
        assert_eq!(u[A].totals.cpu_time_ns, 10_500_000_000);
    }

    #[test]
    fn a_long_lived_child_reaped_is_not_counted_twice() {
        // stress (pid 10) and its worker (pid 11, 100 s of CPU by the first
        // snapshot). The worker dies after 4 more seconds and is reaped:
        // its 104 s land in stress's children time.
        let before = snap(
            10,
            0,
            0,
            vec![
                child(A, 10, 1, 1, 0.0, 0.0),
                child(A, 11, 10, 1, 100.0, 0.0),
            ],
        );
        let after = snap(20, 0, 0, vec![child(A, 10, 1, 1, 0.0, 104.0)]);
        let u = container_usage(Some(&before), &after);
        assert!((u[A].cpu_cores - 0.4).abs() < 1e-9, "{}", u[A].cpu_cores);
    }

    #[test]
    fn a_process_reaped_outside_the_container_takes_nothing_off() {
        // pid 20 came in through `docker exec`: its parent is outside the
        // container. It ends; the container's own shell reaps short
        // commands meanwhile. Nothing of pid 20's comes back, nothing is
        // taken off the shell's children time.
        let before = snap(
            10,
            0,
            0,
            vec![
                child(A, 10, 1, 1, 0.0, 0.0),
                child(A, 20, 999, 1, 50.0, 0.0),
            ],
        );
        let after = snap(20, 0, 0, vec![child(A, 10, 1, 1, 0.0, 6.0)]);
        let u = container_usage(Some(&before), &after);
        assert!((u[A].cpu_cores - 0.6).abs() < 1e-9, "{}", u[A].cpu_cores);
    }

    /// A process of container `id` that did `io` bytes of reads and writes.
    fn io_proc(id: &str, pid: u32, ppid: u32, cpu_s: f64, children_s: f64, io: u64) -> Process {
        let mut p = child(id, pid, ppid, 1, cpu_s, children_s);
        p.rchar = io;
        p.wchar = io;
        p.read_bytes = io;
        p.write_bytes = io;
        p
    }

    #[test]
    fn the_io_of_a_child_reaped_by_wait_is_not_counted_twice() {
        // A worker (pid 11) had done 100 MB of I/O by the first snapshot; it
        // does 10 MB more and exits; its parent waits for it: the kernel folds
        // its whole 110 MB (and its CPU) into the parent. The parent did 5 MB
        // itself. Over the interval: 15 MB, not 115.
        let before = snap(
            10,
            0,
            0,
            vec![
                io_proc(A, 10, 1, 0.0, 0.0, 0),
                io_proc(A, 11, 10, 2.0, 0.0, 100_000_000),
            ],
        );
        let after = snap(20, 0, 0, vec![io_proc(A, 10, 1, 0.0, 3.0, 115_000_000)]);
        let u = container_usage(Some(&before), &after);
        assert_eq!(u[A].counted.rchar, 15_000_000);
        assert_eq!(u[A].counted.write_bytes, 15_000_000);
        assert!((u[A].disk_write_bytes_per_second - 1_500_000.0).abs() < 1e-6);
        assert!((u[A].cpu_cores - 0.1).abs() < 1e-9, "{}", u[A].cpu_cores);
    }

    #[test]
    fn a_child_reaped_automatically_takes_nothing_off() {
        // The same worker, but the parent ignores SIGCHLD: nothing of it is
        // folded in (the children time does not grow), so nothing of its
        // earlier I/O is taken off the parent's own 5 MB.
        let before = snap(
            10,
            0,
            0,
            vec![
                io_proc(A, 10, 1, 0.0, 0.0, 0),
                io_proc(A, 11, 10, 2.0, 0.0, 100_000_000),
            ],
        );
        let after = snap(20, 0, 0, vec![io_proc(A, 10, 1, 0.0, 0.0, 5_000_000)]);
        let u = container_usage(Some(&before), &after);
        assert_eq!(u[A].counted.rchar, 5_000_000);
        assert_eq!(u[A].counted.write_bytes, 5_000_000);
    }

    #[test]
    fn unreadable_io_makes_the_container_unmeasured_not_idle() {
        let mut hidden = io_proc(A, 10, 1, 1.0, 0.0, 0);
        hidden.io_unavailable = true;
        let before = snap(
            10,
            0,
            0,
            vec![hidden.clone(), io_proc(B, 20, 1, 1.0, 0.0, 0)],
        );
        let after = snap(20, 0, 0, vec![hidden, io_proc(B, 20, 1, 2.0, 0.0, 0)]);
        let u = container_usage(Some(&before), &after);
        assert!(u[A].io_unavailable);
        assert!(!u[B].io_unavailable);
        // Unreadable in the previous snapshot only: still no I/O rate now.
        let mut was_hidden = io_proc(B, 20, 1, 1.0, 0.0, 0);
        was_hidden.io_unavailable = true;
        let before = snap(10, 0, 0, vec![was_hidden]);
        let after = snap(20, 0, 0, vec![io_proc(B, 20, 1, 2.0, 0.0, 1_000)]);
        assert!(container_usage(Some(&before), &after)[B].io_unavailable);
    }

    #[test]
    fn the_cgroup_counters_give_cpu_and_tmpfs_memory() {
        use crate::collect::snapshot::CgroupCounters;
        // Processes say 1 s of CPU over 10 s; the cgroup, which also saw
        // children reaped automatically, says 4 s: the cgroup is the figure.
        let mut before = snap(10, 0, 0, vec![proc_in(Some(A), 10, 1.0, 10, 0)]);
        let mut after = snap(20, 0, 0, vec![proc_in(Some(A), 10, 2.0, 10, 0)]);
        before.cgroups.insert(
            A.into(),
            CgroupCounters {
                cpu_usage_ns: Some(5_000_000_000),
                shmem_bytes: Some(0),
            },
        );
        after.cgroups.insert(
            A.into(),
            CgroupCounters {
                cpu_usage_ns: Some(9_000_000_000),
                shmem_bytes: Some(64 << 20),
            },
        );
        let u = container_usage(Some(&before), &after);
        assert_eq!(u[A].cpu_source, CpuSource::Cgroup);
        assert!((u[A].cpu_cores - 0.4).abs() < 1e-9, "{}", u[A].cpu_cores);
        // 10 MiB resident + 64 MiB in its tmpfs.
        assert_eq!(u[A].memory_bytes, 74 << 20);
        // Without the previous snapshot's counter: the processes' figure.
        before.cgroups.clear();
        let u = container_usage(Some(&before), &after);
        assert_eq!(u[A].cpu_source, CpuSource::Processes);
        assert!((u[A].cpu_cores - 0.1).abs() < 1e-9, "{}", u[A].cpu_cores);
    }

    #[test]
    fn cancelled_writes_are_not_disk_writes() {
        let mut p = proc_in(Some(A), 10, 0.0, 1, 10_000);
        p.cancelled_write_bytes = 4_000;
        let s = snap(11, 0, 0, vec![p]);
        let u = container_usage(None, &s);
        assert_eq!(u[A].totals.write_bytes, 6_000);
    }

    #[test]
    fn host_cpu_ratio_uses_the_interval() {
        let before = snap(10, 10, 10, vec![]);
        let after = snap(20, 25, 15, vec![]);
        let h = host_usage(Some(&before), &after);
        assert!((h.cpu_ratio - 0.75).abs() < 1e-9);
        assert_eq!(h.memory_total_bytes, 1024 * 1024 * 1024);
        assert_eq!(h.memory_available_bytes, 512 * 1024 * 1024);
        let first = host_usage(None, &before);
        assert!((first.cpu_ratio - 0.5).abs() < 1e-9);
    }
}

//! The userspace collector: builds the same [`Snapshot`] the kernel module
//! publishes, from procfs, for hosts where `/proc/sysinfo_202200075` does not
//! exist.
//!
//! Designed like node_exporter's procfs collectors: one pure parser per file
//! (`parse_stat`, `parse_io`, `parse_meminfo`, `parse_proc_stat`,
//! `parse_uptime`, `parse_cmdline`, `parse_comm`), tested with plain strings,
//! and one I/O function, [`collect`], that reads the files under any procfs
//! root (`/proc`, or `/host/proc` when gestor runs in a container with the
//! host's procfs mounted there).
//!
//! Per process it reads `stat` first (state, ppid, CPU times, start time,
//! virtual size and RSS, so no `statm` or `status` is needed; the start time
//! tells a process from an earlier one with the same pid), then `cgroup`
//! (which decides whether the process is in a container) and, for the
//! processes it reports, `cmdline` and `io`. A [`Collector`] with its cache
//! keeps `cgroup` and `cmdline` between snapshots, and skips a process it
//! knows to be outside any container without reading anything. Each file is
//! read with one `open` and `read` into a buffer that each scanning thread
//! reuses.
//!
//! Processes come and go during a scan: a process whose files disappear
//! (`ENOENT`, `ESRCH`) or come back empty is skipped silently; one whose `io`
//! is not readable (`EACCES`: a non-dumpable process, or another user's when
//! gestor is not root) is reported with `io_unavailable` (its counters read 0
//! and mean nothing: its container's I/O is unmeasured). Any other per-process failure skips that process with a
//! warning; only the system files (`meminfo`, `stat`, the root directory)
//! fail the whole collection.

mod cache;
mod files;
pub mod parse;
mod scan;

pub use cache::IDENTITY_REFRESH_READS;
pub use files::{ns_per_tick, page_size};
pub use parse::MAX_CMDLINE_BYTES;
pub use scan::{CollectError, PARALLEL_MIN_ENTRIES};

use crate::collect::snapshot::Snapshot;
use cache::ProcessCache;
use scan::scan;
use std::path::{Path, PathBuf};

/// Builds a snapshot from the procfs mounted at `procfs_root` (normally
/// `/proc`): the system figures and every process in a container, or every
/// process when `all_processes` is set. `uptime_ns` comes from
/// `<root>/uptime` (10 ms resolution), or from CLOCK_BOOTTIME when that file
/// does not exist. Fails only when the system files cannot be read or parsed;
/// the error names the file.
pub fn collect(procfs_root: &Path, all_processes: bool) -> Result<Snapshot, CollectError> {
    Collector::new(procfs_root, all_processes, false).collect()
}

/// At most this many threads scan at once.
const MAX_SCAN_THREADS: usize = 4;

/// How many threads scan a large procfs: one per CPU gestor may use (the
/// affinity mask and the cgroup's CPU quota count), at most
/// `MAX_SCAN_THREADS`.
fn scan_threads() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .clamp(1, MAX_SCAN_THREADS)
}

/// The userspace collector, kept from one snapshot to the next so that each
/// process's cgroup and command line (which almost never change while it
/// lives) are read once, not at every snapshot: a process in a container
/// then costs two reads (`stat`, `io`) instead of four.
///
/// A large procfs is read by several threads at once, each over its own
/// share of the pids (`pid % shares`), with its own part of the cache, so
/// they share nothing but the list of entries: the reads are system calls
/// into independent processes' files, and spread over the CPUs. The shares
/// are fixed when the collector is made, so a process's cached identity is
/// always in the same part.
pub struct Collector {
    root: PathBuf,
    all_processes: bool,
    /// One cache per share of the pids; empty when nothing is cached.
    caches: Vec<ProcessCache>,
    shares: usize,
}

impl Collector {
    /// `cache`: keep identities between snapshots (else read everything every time).
    pub fn new(root: &Path, all_processes: bool, cache: bool) -> Collector {
        Collector::with_threads(root, all_processes, cache, scan_threads())
    }

    /// A collector that scans a large procfs with `threads` threads.
    pub fn with_threads(
        root: &Path,
        all_processes: bool,
        cache: bool,
        threads: usize,
    ) -> Collector {
        let shares = threads.max(1);
        Collector {
            root: root.to_path_buf(),
            all_processes,
            caches: if cache {
                (0..shares).map(|_| ProcessCache::default()).collect()
            } else {
                Vec::new()
            },
            shares,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// One snapshot (see [`collect`]).
    pub fn collect(&mut self) -> Result<Snapshot, CollectError> {
        for c in &mut self.caches {
            c.read += 1;
        }
        let snapshot = scan(
            &self.root,
            self.all_processes,
            self.shares,
            &mut self.caches,
        );
        if snapshot.is_ok() {
            for c in &mut self.caches {
                c.sweep();
            }
        }
        snapshot
    }

    #[cfg(test)]
    fn cached_pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .caches
            .iter()
            .flat_map(|c| c.entries.keys().copied())
            .collect();
        pids.sort_unstable();
        pids
    }
}

#[cfg(test)]
mod tests {
    use super::files::boottime_ns;
    use super::parse::samples::*;
    use super::*;
    use crate::collect::snapshot::{Process, SourceKind};
    use std::fs;

    /// A fake procfs tree in a temporary directory.
    struct FakeProc {
        dir: tempfile::TempDir,
    }

    impl FakeProc {
        fn new() -> Self {
            let fake = FakeProc {
                dir: tempfile::tempdir().unwrap(),
            };
            fake.file("meminfo", MEMINFO.as_bytes());
            fake.file("stat", PROC_STAT.as_bytes());
            fake.file("uptime", b"391.86 310.64\n");
            fs::create_dir(fake.root().join("self")).unwrap();
            fake.file("self/stat", b"junk");
            fake.file("sys", b"not a pid");
            fake
        }

        fn root(&self) -> &Path {
            self.dir.path()
        }

        fn file(&self, rel: &str, contents: &[u8]) {
            let path = self.root().join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, contents).unwrap();
        }

        fn process(&self, pid: u32, cgroup: &str, stat: &str, cmdline: &[u8], io: Option<&str>) {
            self.file(&format!("{pid}/cgroup"), cgroup.as_bytes());
            self.file(&format!("{pid}/stat"), stat.as_bytes());
            self.file(&format!("{pid}/cmdline"), cmdline);
            if let Some(io) = io {
                self.file(&format!("{pid}/io"), io.as_bytes());
            }
        }
    }

    fn stat_line(pid: u32, ppid: u32) -> String {
        STRESS_STAT
            .replacen("17896", &pid.to_string(), 1)
            .replacen("17869", &ppid.to_string(), 1)
    }

    fn fake_tree() -> FakeProc {
        let fake = FakeProc::new();
        let in_docker = format!("4:memory:/docker/{ID}\n0::/docker/{ID}\n");
        // The container's two processes.
        fake.process(
            300,
            &in_docker,
            &stat_line(300, 200),
            b"stress\0--cpu\x001\0",
            Some(IO),
        );
        fake.process(
            301,
            &in_docker,
            &stat_line(301, 300),
            b"stress\0--cpu\x001\0",
            Some(IO),
        );
        // A host process.
        fake.process(
            1,
            "4:memory:/\n0::/init.scope\n",
            &stat_line(1, 0),
            b"/sbin/init\0",
            Some(IO),
        );
        // A container process without an io file (no I/O accounting): zeros.
        fake.process(302, &in_docker, &stat_line(302, 300), b"", None);
        // Vanished between reading cgroup and stat: skipped.
        fake.file("303/cgroup", in_docker.as_bytes());
        // Vanished before cgroup was read: an empty directory.
        fs::create_dir(fake.root().join("304")).unwrap();
        // An empty cgroup file (process exited while reading).
        fake.file("305/cgroup", b"");
        // A garbled stat: skipped with a warning, the scan goes on.
        fake.process(306, &in_docker, "306 (x) ?", b"", Some(IO));
        fake
    }

    #[test]
    fn the_collector_keeps_identities_and_reads_them_again_when_due_or_reused() {
        let fake = fake_tree();
        let mut cached = Collector::new(fake.root(), false, true);
        let mut plain = Collector::new(fake.root(), false, false);
        let cmdline = |s: &Snapshot, pid: u32| {
            s.processes
                .iter()
                .find(|p| p.pid == pid)
                .map(|p| p.cmdline.clone())
        };
        assert_eq!(
            cmdline(&cached.collect().unwrap(), 300).as_deref(),
            Some("stress --cpu 1")
        );
        // The process rewrites its argv; its stat and io are read every time.
        fake.file("300/cmdline", b"renamed\0");
        fake.file(
            "300/io",
            IO.replace("rchar: 53468", "rchar: 99999").as_bytes(),
        );
        let second = cached.collect().unwrap();
        let p300 = second.processes.iter().find(|p| p.pid == 300).unwrap();
        assert_eq!(p300.cmdline, "stress --cpu 1", "kept from the first read");
        assert_eq!(p300.rchar, 99999, "counters are read every time");
        assert_eq!(
            cmdline(&plain.collect().unwrap(), 300).as_deref(),
            Some("renamed")
        );
        // Due for a refresh: read again.
        for _ in 2..IDENTITY_REFRESH_READS {
            cached.collect().unwrap();
        }
        assert_eq!(
            cmdline(&cached.collect().unwrap(), 300).as_deref(),
            Some("renamed")
        );
        // A new process under an old pid (another start time) is read afresh.
        fake.file("301/cmdline", b"new\0");
        fake.file(
            "301/stat",
            stat_line(301, 300).replace(" 39396 ", " 40000 ").as_bytes(),
        );
        assert_eq!(
            cmdline(&cached.collect().unwrap(), 301).as_deref(),
            Some("new")
        );
        // A process that left (pid 301 gone) is forgotten.
        std::fs::remove_dir_all(fake.root().join("301")).unwrap();
        cached.collect().unwrap();
        assert!(!cached.cached_pids().contains(&301));
    }

    #[test]
    fn a_scan_on_several_threads_finds_what_one_thread_finds() {
        let fake = FakeProc::new();
        let in_docker = format!("0::/docker/{ID}\n");
        let count = PARALLEL_MIN_ENTRIES as u32 + 100;
        for pid in 2..2 + count {
            let (cgroup, cmdline) = if pid % 3 == 0 {
                ("0::/user.slice\n".to_string(), "host\0".to_string())
            } else {
                (in_docker.clone(), format!("stress\0{pid}\0"))
            };
            fake.process(
                pid,
                &cgroup,
                &stat_line(pid, 1),
                cmdline.as_bytes(),
                Some(IO),
            );
        }
        // The time differs, and a second read with a cache says it used it.
        let strip = |mut s: Snapshot| {
            s.timestamp_ns = 0;
            for p in &mut s.processes {
                p.cmdline_cached = false;
            }
            s
        };
        let one = strip(
            Collector::with_threads(fake.root(), false, false, 1)
                .collect()
                .unwrap(),
        );
        assert_eq!(
            one.processes.len(),
            (2..2 + count).filter(|p| p % 3 != 0).count()
        );
        for cache in [false, true] {
            let mut three = Collector::with_threads(fake.root(), false, cache, 3);
            for _ in 0..2 {
                assert_eq!(strip(three.collect().unwrap()), one, "cache {cache}");
            }
        }
        let mut cached = Collector::with_threads(fake.root(), true, true, 3);
        cached.collect().unwrap();
        assert_eq!(cached.cached_pids(), (2..2 + count).collect::<Vec<_>>());
    }

    #[test]
    fn a_long_command_line_is_flagged_cut_and_a_kept_one_cached() {
        let fake = fake_tree();
        let in_docker = format!("0::/docker/{ID}\n");
        let long = format!("stress\0{}\0", "x".repeat(2000));
        fake.process(
            400,
            &in_docker,
            &stat_line(400, 1),
            long.as_bytes(),
            Some(IO),
        );
        let mut c = Collector::with_threads(fake.root(), false, true, 1);
        let first = c.collect().unwrap();
        let p = first.processes.iter().find(|p| p.pid == 400).unwrap();
        assert!(p.cmdline_truncated && !p.cmdline_cached, "{p:?}");
        assert_eq!(p.cmdline.len(), MAX_CMDLINE_BYTES);
        let short = first.processes.iter().find(|p| p.pid == 300).unwrap();
        assert!(!short.cmdline_truncated);
        let second = c.collect().unwrap();
        let p = second.processes.iter().find(|p| p.pid == 400).unwrap();
        assert!(p.cmdline_truncated && p.cmdline_cached, "{p:?}");
    }

    #[test]
    fn collect_from_a_fake_tree_reports_container_processes() {
        let fake = fake_tree();
        let s = collect(fake.root(), false).unwrap();
        assert_eq!(s.version, 3);
        assert_eq!(s.source, SourceKind::Userspace);
        assert_eq!(s.uptime_ns, 391_860_000_000);
        assert!(s.timestamp_ns > 1_700_000_000_000_000_000);
        assert_eq!(s.system.cpu_count, 2);
        assert_eq!(s.system.cpu_time_ns.user, 35662 * ns_per_tick());
        assert_eq!(s.system.mem_total_kib, 24570000);
        assert_eq!(s.system.mem_used_kib, 24570000 - 22000000);
        assert_eq!(s.system.mem_cached_kib, 1500000);
        assert_eq!(s.system.swap_free_kib, 1000000);

        let pids: Vec<u32> = s.processes.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [300, 301, 302]);
        let p = &s.processes[0];
        let rss_kib = 37 * page_size() / 1024;
        assert_eq!(
            *p,
            Process {
                pid: 300,
                ppid: 200,
                comm: "stress".into(),
                cmdline: "stress --cpu 1".into(),
                container_id: Some(ID.into()),
                cgroup: format!("/docker/{ID}"),
                state: "R".into(),
                rss_kib,
                vsz_kib: 3465216 / 1024,
                mem_pct_x100: (rss_kib * 10_000 / 24570000) as u32,
                cpu_time_ns: 47 * ns_per_tick(),
                children_cpu_time_ns: 7 * ns_per_tick(),
                start_time_ns: 39396 * ns_per_tick(),
                read_bytes: 4096,
                write_bytes: 8192,
                cancelled_write_bytes: 0,
                rchar: 53468,
                wchar: 7815,
                syscr: 51,
                syscw: 8,
                cmdline_unavailable: false,
                io_unavailable: false,
                cmdline_cached: false,
                cmdline_truncated: false,
                cgroup_truncated: false,
            }
        );
        assert_eq!(s.processes[1].ppid, 300);
        let no_io = &s.processes[2];
        assert_eq!((no_io.rchar, no_io.write_bytes, no_io.syscw), (0, 0, 0));
        assert_eq!(no_io.cmdline, "");

        // What we produce is what the kernel's document parses into.
        let json = serde_json::to_vec(&s).unwrap();
        assert_eq!(crate::collect::snapshot::parse(&json).unwrap(), s);
    }

    #[test]
    fn collect_all_processes_includes_host_processes() {
        let fake = fake_tree();
        let s = collect(fake.root(), true).unwrap();
        let pids: Vec<u32> = s.processes.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [1, 300, 301, 302]);
        assert_eq!(s.processes[0].container_id, None);
        assert_eq!(s.processes[0].cgroup, "/init.scope");
        assert_eq!(s.processes[0].cmdline, "/sbin/init");
    }

    #[test]
    fn collect_uses_boottime_without_an_uptime_file() {
        let fake = fake_tree();
        fs::remove_file(fake.root().join("uptime")).unwrap();
        let before = boottime_ns();
        let s = collect(fake.root(), false).unwrap();
        assert!(s.uptime_ns >= before && s.uptime_ns <= boottime_ns());
    }

    #[test]
    fn collect_errors_name_the_file() {
        for (file, contents, needle) in [
            ("meminfo", None, "cannot read"),
            ("stat", None, "cannot read"),
            ("meminfo", Some("MemTotal: 1 kB\n"), "cannot parse"),
            ("stat", Some("intr 1\n"), "cannot parse"),
            ("uptime", Some("soon"), "cannot parse"),
        ] {
            let fake = fake_tree();
            let path = fake.root().join(file);
            match contents {
                None => fs::remove_file(&path).unwrap(),
                Some(text) => fs::write(&path, text).unwrap(),
            }
            let err = collect(fake.root(), false).unwrap_err().to_string();
            assert!(err.contains(needle), "{file}: {err}");
            assert!(err.contains(&path.display().to_string()), "{file}: {err}");
        }
        let missing = Path::new("/nonexistent/gestor-procfs");
        let err = collect(missing, false).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/gestor-procfs/"), "{err}");
    }

    #[test]
    fn collect_from_the_real_proc_validates() {
        let s = collect(Path::new("/proc"), true).unwrap();
        assert!(s.processes.iter().any(|p| p.pid == std::process::id()));
        let json = serde_json::to_vec(&s).unwrap();
        crate::collect::snapshot::parse(&json).unwrap();
    }
}

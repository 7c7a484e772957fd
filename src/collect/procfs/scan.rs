//! One scan of a procfs: the system files, then every process, on one
//! thread or (a large procfs) on several, each over its own share of the
//! pids and of the cache.

use crate::collect::cgroup;
use crate::collect::procfs::cache::{Identity, ProcessCache};
use crate::collect::procfs::files::{
    boottime_ns, now_ns, ns_per_tick, online_cpus, page_size, read_into, text, Eof,
};
use crate::collect::procfs::parse::{
    parse_cmdline, parse_comm, parse_io, parse_meminfo, parse_proc_stat, parse_stat, parse_uptime,
    truncate_chars, FormatError, MAX_CGROUP_CHARS, MAX_CMDLINE_BYTES,
};
use crate::collect::snapshot::{Process, Snapshot, SourceKind, System, FORMAT_VERSION};
use std::io;
use std::path::{Path, PathBuf};

/// Why the userspace collector could not produce a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot parse {}: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: FormatError,
    },
}

/// Largest per-process file read (`cgroup`, `stat`, `io`), a safety bound.
const MAX_PROCESS_FILE_BYTES: usize = 64 * 1024;

/// Below this many `/proc` entries a scan runs on one thread: starting a
/// thread would cost more than it saves.
pub const PARALLEL_MIN_ENTRIES: usize = 512;

/// Reads and parses one system file; both failures name the path.
fn system_file<T>(
    path: PathBuf,
    buf: &mut Vec<u8>,
    parse: impl FnOnce(&str) -> Result<T, FormatError>,
) -> Result<T, CollectError> {
    if let Err(source) = read_into(&path, buf, usize::MAX, Eof::AtZero) {
        return Err(CollectError::Read { path, source });
    }
    parse(&text(buf)).map_err(|source| CollectError::Parse { path, source })
}

/// What happened to one process during the scan.
#[derive(Debug)]
enum Skip {
    /// Not in a container and not listing every process.
    NotInContainer,
    /// Gone (or going) while we read it.
    Vanished,
    /// Something unexpected; logged.
    Failed(PathBuf, String),
}

/// How the scan treats an error reading one of a process's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ErrorClass {
    Vanished,
    PermissionDenied,
    Other,
}

pub(super) fn classify(e: &io::Error) -> ErrorClass {
    match e.kind() {
        io::ErrorKind::NotFound => ErrorClass::Vanished,
        io::ErrorKind::PermissionDenied => ErrorClass::PermissionDenied,
        _ if e.raw_os_error() == Some(libc::ESRCH) => ErrorClass::Vanished,
        _ => ErrorClass::Other,
    }
}

/// Constants of one scan.
struct Scan<'a> {
    root: &'a Path,
    all_processes: bool,
    ns_per_tick: u64,
    page_size: u64,
    mem_total_kib: u64,
}

impl Scan<'_> {
    fn read(&self, path: &Path, buf: &mut Vec<u8>, limit: usize) -> Result<(), Skip> {
        read_into(path, buf, limit, Eof::AtShortRead).map_err(|e| match classify(&e) {
            ErrorClass::Vanished => Skip::Vanished,
            _ => Skip::Failed(path.to_path_buf(), e.to_string()),
        })
    }

    /// One process. Its stat is read first (the start time tells this
    /// process from an earlier one with the same pid); its cgroup and
    /// command line come from `cache` when this process was read before and
    /// they are not due for a refresh, else from its files (and are kept).
    fn process(
        &self,
        pid: u32,
        ino: u64,
        path: &mut PathBuf,
        buf: &mut Vec<u8>,
        cache: Option<&mut ProcessCache>,
    ) -> Result<Process, Skip> {
        let mut cache = cache;
        if !self.all_processes && cache.as_mut().is_some_and(|c| c.known_outside(pid, ino)) {
            return Err(Skip::NotInContainer);
        }
        path.clear();
        path.push(self.root);
        path.push(pid.to_string());

        path.push("stat");
        self.read(path, buf, MAX_PROCESS_FILE_BYTES)?;
        if buf.is_empty() {
            return Err(Skip::Vanished);
        }
        let stat = parse_stat(buf).map_err(|e| Skip::Failed(path.clone(), e.to_string()))?;

        // `cached`: the cgroup and command line are the ones kept, not read now.
        let (facts, cached) = match cache {
            Some(c) => match c.fresh(pid, stat.starttime) {
                Some(f) => (f, true),
                None => {
                    let f = self.identity(path, buf)?;
                    c.keep(pid, ino, stat.starttime, f.clone());
                    (f, false)
                }
            },
            None => (self.identity(path, buf)?, false),
        };
        let (container_id, cgroup) = match facts.container {
            Some((id, cgroup_path)) => (Some(id), cgroup_path),
            None if self.all_processes => (None, facts.display_cgroup.clone()),
            None => return Err(Skip::NotInContainer),
        };

        path.set_file_name("io");
        // `None`: the counters cannot be read; the process is reported with
        // `io_unavailable`, never as a process that did no I/O.
        let io = match read_into(path, buf, MAX_PROCESS_FILE_BYTES, Eof::AtShortRead) {
            Ok(()) => {
                Some(parse_io(&text(buf)).map_err(|e| Skip::Failed(path.clone(), e.to_string()))?)
            }
            Err(e) => match classify(&e) {
                ErrorClass::PermissionDenied => None,
                // No `io` file in a directory that is still there: a kernel
                // without task I/O accounting. Otherwise the process is gone.
                ErrorClass::Vanished if e.kind() == io::ErrorKind::NotFound => {
                    path.pop();
                    if path.is_dir() {
                        None
                    } else {
                        return Err(Skip::Vanished);
                    }
                }
                ErrorClass::Vanished => return Err(Skip::Vanished),
                ErrorClass::Other => return Err(Skip::Failed(path.clone(), e.to_string())),
            },
        };

        let io_unavailable = io.is_none();
        let io = io.unwrap_or_default();
        let rss_kib = stat.rss_pages.saturating_mul(self.page_size) / 1024;
        let mem_pct_x100 = (u128::from(rss_kib) * 10_000 / u128::from(self.mem_total_kib.max(1)))
            .min(10_000) as u32;
        Ok(Process {
            pid,
            ppid: stat.ppid,
            comm: parse_comm(&stat.comm),
            cmdline: facts.cmdline,
            container_id,
            cgroup,
            state: stat.state.to_string(),
            rss_kib,
            vsz_kib: stat.vsize / 1024,
            mem_pct_x100,
            cpu_time_ns: stat
                .utime
                .saturating_add(stat.stime)
                .saturating_mul(self.ns_per_tick),
            children_cpu_time_ns: stat
                .cutime
                .saturating_add(stat.cstime)
                .saturating_mul(self.ns_per_tick),
            start_time_ns: stat.starttime.saturating_mul(self.ns_per_tick),
            read_bytes: io.read_bytes,
            write_bytes: io.write_bytes,
            cancelled_write_bytes: io.cancelled_write_bytes,
            rchar: io.rchar,
            wchar: io.wchar,
            syscr: io.syscr,
            syscw: io.syscw,
            cmdline_unavailable: false,
            io_unavailable,
            cmdline_cached: cached,
            cmdline_truncated: facts.cmdline_truncated,
            cgroup_truncated: facts.cgroup_truncated,
        })
    }

    /// What rarely changes for a live process: its cgroup (and container)
    /// and its command line. `path` ends in the process's directory entry.
    fn identity(&self, path: &mut PathBuf, buf: &mut Vec<u8>) -> Result<Identity, Skip> {
        path.set_file_name("cgroup");
        self.read(path, buf, MAX_PROCESS_FILE_BYTES)?;
        if buf.is_empty() {
            return Err(Skip::Vanished);
        }
        let cgroup_text = text(buf);
        let too_long = |p: &str| p.chars().nth(MAX_CGROUP_CHARS).is_some();
        let mut cgroup_truncated = false;
        let container = cgroup::container_from_proc_cgroup(&cgroup_text).map(|(id, p)| {
            cgroup_truncated = too_long(&p);
            (id, truncate_chars(p, MAX_CGROUP_CHARS))
        });
        let display_cgroup = if container.is_none() && self.all_processes {
            let p = cgroup::display_path(&cgroup_text);
            cgroup_truncated = too_long(p);
            truncate_chars(p.to_string(), MAX_CGROUP_CHARS)
        } else {
            String::new()
        };
        // A process outside any container needs no command line (unless
        // every process is listed). One byte more than is reported tells
        // a command line that was cut.
        let (cmdline, cmdline_truncated) = if container.is_some() || self.all_processes {
            path.set_file_name("cmdline");
            self.read(path, buf, MAX_CMDLINE_BYTES + 1)?;
            (parse_cmdline(buf), buf.len() > MAX_CMDLINE_BYTES)
        } else {
            (String::new(), false)
        };
        Ok(Identity {
            container,
            display_cgroup,
            cmdline,
            cmdline_truncated,
            cgroup_truncated,
        })
    }
}

/// The numbered entries of a procfs root: (pid, inode of `/proc/<pid>`).
fn list_pids(procfs_root: &Path) -> Result<Vec<(u32, u64)>, CollectError> {
    use std::os::unix::fs::DirEntryExt;
    let entries = std::fs::read_dir(procfs_root).map_err(|source| CollectError::Read {
        path: procfs_root.to_path_buf(),
        source,
    })?;
    Ok(entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name();
            let pid = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|&pid| pid > 0)?;
            Some((pid, entry.ino()))
        })
        .collect())
}

impl Scan<'_> {
    /// The processes of one share of the pids, with that share's cache.
    fn share(&self, pids: &[(u32, u64)], mut cache: Option<&mut ProcessCache>) -> Vec<Process> {
        let mut buf = Vec::with_capacity(16 * 1024);
        let mut path = PathBuf::with_capacity(self.root.as_os_str().len() + 32);
        let mut processes = Vec::new();
        for &(pid, ino) in pids {
            match self.process(pid, ino, &mut path, &mut buf, cache.as_deref_mut()) {
                Ok(p) => processes.push(p),
                Err(Skip::NotInContainer | Skip::Vanished) => {}
                Err(Skip::Failed(file, message)) => {
                    tracing::warn!(pid, file = %file.display(), %message, "skipping process");
                }
            }
        }
        processes
    }
}

pub(super) fn scan(
    procfs_root: &Path,
    all_processes: bool,
    shares: usize,
    caches: &mut [ProcessCache],
) -> Result<Snapshot, CollectError> {
    let mut buf = Vec::with_capacity(16 * 1024);
    let ns_per_tick = ns_per_tick();

    let timestamp_ns = now_ns();
    let uptime_path = procfs_root.join("uptime");
    let uptime_ns = match read_into(&uptime_path, &mut buf, usize::MAX, Eof::AtZero) {
        Ok(()) => parse_uptime(&text(&buf)).map_err(|source| CollectError::Parse {
            path: uptime_path,
            source,
        })?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => boottime_ns(),
        Err(source) => {
            return Err(CollectError::Read {
                path: uptime_path,
                source,
            })
        }
    };
    let stat = system_file(procfs_root.join("stat"), &mut buf, |t| {
        parse_proc_stat(t, ns_per_tick)
    })?;
    let mem = system_file(procfs_root.join("meminfo"), &mut buf, parse_meminfo)?;

    let system = System {
        cpu_count: if stat.cpu_count > 0 {
            stat.cpu_count
        } else {
            online_cpus()
        },
        cpu_time_ns: stat.cpu_time_ns,
        mem_total_kib: mem.total_kib,
        mem_free_kib: mem.free_kib.min(mem.total_kib),
        mem_available_kib: mem.available_kib.min(mem.total_kib),
        mem_used_kib: mem.total_kib.saturating_sub(mem.available_kib),
        mem_cached_kib: mem.cached_kib,
        swap_total_kib: mem.swap_total_kib,
        swap_free_kib: mem.swap_free_kib,
    };

    let scan = Scan {
        root: procfs_root,
        all_processes,
        ns_per_tick,
        page_size: page_size(),
        mem_total_kib: mem.total_kib,
    };
    let pids = list_pids(procfs_root)?;
    let shares = shares.max(1);
    // Not `vec![...; shares]`: its clones would not keep the capacity.
    let mut parts: Vec<Vec<(u32, u64)>> = (0..shares)
        .map(|_| Vec::with_capacity(pids.len() / shares + 1))
        .collect();
    for &(pid, ino) in &pids {
        parts[pid as usize % shares].push((pid, ino));
    }
    let mut caches: Vec<Option<&mut ProcessCache>> = if caches.is_empty() {
        (0..shares).map(|_| None).collect()
    } else {
        caches.iter_mut().map(Some).collect()
    };
    let mut processes: Vec<Process> = if shares > 1 && pids.len() >= PARALLEL_MIN_ENTRIES {
        let scan = &scan;
        std::thread::scope(|threads| {
            let mut work = parts.iter().zip(caches.iter_mut());
            let (first_part, first_cache) = work.next().expect("at least one share");
            let others: Vec<_> = work
                .map(|(part, cache)| {
                    let cache = cache.as_deref_mut();
                    std::thread::Builder::new()
                        .name("gestor-procfs".into())
                        .spawn_scoped(threads, move || scan.share(part, cache))
                })
                .collect();
            let mut all = scan.share(first_part, first_cache.as_deref_mut());
            for (other, part) in others.into_iter().zip(&parts[1..]) {
                match other.map(|handle| handle.join()) {
                    Ok(Ok(found)) => all.extend(found),
                    // No thread to spare (or it panicked): this share is
                    // read here, not lost.
                    _ => all.extend(scan.share(part, None)),
                }
            }
            all
        })
    } else {
        parts
            .iter()
            .zip(caches.iter_mut())
            .flat_map(|(part, cache)| scan.share(part, cache.as_deref_mut()))
            .collect()
    };
    processes.sort_unstable_by_key(|p| p.pid);

    Ok(Snapshot {
        version: FORMAT_VERSION,
        source: SourceKind::Userspace,
        timestamp_ns,
        uptime_ns,
        system,
        processes,
        cgroups: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified() {
        assert_eq!(
            classify(&io::Error::from(io::ErrorKind::NotFound)),
            ErrorClass::Vanished
        );
        assert_eq!(
            classify(&io::Error::from_raw_os_error(libc::ESRCH)),
            ErrorClass::Vanished
        );
        assert_eq!(
            classify(&io::Error::from_raw_os_error(libc::EACCES)),
            ErrorClass::PermissionDenied
        );
        assert_eq!(
            classify(&io::Error::from_raw_os_error(libc::EIO)),
            ErrorClass::Other
        );
    }
}

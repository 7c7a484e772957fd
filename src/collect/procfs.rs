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
//! is not readable (`EACCES`, when not running as root) is reported with zero
//! I/O counters. Any other per-process failure skips that process with a
//! warning; only the system files (`meminfo`, `stat`, the root directory)
//! fail the whole collection.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::collect::cgroup;
use crate::collect::snapshot::{
    lossy_utf8_per_byte, CpuTimes, Process, Snapshot, SourceKind, System, FORMAT_VERSION,
};

/// Longest command line reported, in bytes before decoding (as the kernel
/// module does).
pub const MAX_CMDLINE_BYTES: usize = 1024;

/// Longest cgroup path reported, in characters (the schema's `maxLength`).
const MAX_CGROUP_CHARS: usize = 4096;

/// Longest comm reported, in characters (the schema's `maxLength`).
const MAX_COMM_CHARS: usize = 64;

const NS_PER_SEC: u64 = 1_000_000_000;

/// First read size; the read size doubles while a file fills it.
const READ_CHUNK: usize = 4096;

/// Largest per-process file read (`cgroup`, `stat`, `io`), a safety bound.
const MAX_PROCESS_FILE_BYTES: usize = 64 * 1024;

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

/// What is wrong with the text of one procfs file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub String);

fn format_error(message: impl Into<String>) -> FormatError {
    FormatError(message.into())
}

/// The fields gestor uses from `/proc/<pid>/stat`, in the file's units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stat {
    pub pid: u32,
    /// Raw task name bytes (between the first `(` and the last `)`).
    pub comm: Vec<u8>,
    pub state: char,
    pub ppid: u32,
    /// User and system CPU time of the whole thread group, in clock ticks.
    pub utime: u64,
    pub stime: u64,
    /// User and system CPU time of the children it has waited for, in ticks.
    pub cutime: u64,
    pub cstime: u64,
    /// Start time after boot, in clock ticks.
    pub starttime: u64,
    /// Virtual size in bytes.
    pub vsize: u64,
    /// Resident set size in pages.
    pub rss_pages: u64,
}

/// Parses `/proc/<pid>/stat`. The task name may hold any byte but NUL,
/// spaces and parentheses included, so it ends at the *last* `)`.
pub fn parse_stat(bytes: &[u8]) -> Result<Stat, FormatError> {
    let open = bytes
        .iter()
        .position(|&b| b == b'(')
        .ok_or_else(|| format_error("no `(` before the task name"))?;
    let close = bytes
        .iter()
        .rposition(|&b| b == b')')
        .filter(|&close| close > open)
        .ok_or_else(|| format_error("no `)` after the task name"))?;
    let pid = std::str::from_utf8(&bytes[..open])
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .ok_or_else(|| format_error("the pid before the task name is not a number"))?;
    let rest = std::str::from_utf8(&bytes[close + 1..])
        .map_err(|_| format_error("the fields after the task name are not ASCII"))?;
    // Fields after the name, numbered from 0: the stat(5) field number - 3.
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let field = |index: usize, name: &str| -> Result<&str, FormatError> {
        fields
            .get(index)
            .copied()
            .ok_or_else(|| format_error(format!("missing field `{name}`")))
    };
    let number = |index: usize, name: &str| -> Result<u64, FormatError> {
        let text = field(index, name)?;
        // rss is a signed long in some kernels' output; a negative value
        // means none.
        if text.starts_with('-') && text[1..].bytes().all(|b| b.is_ascii_digit()) {
            return Ok(0);
        }
        text.parse::<u64>()
            .map_err(|_| format_error(format!("field `{name}` is not a number: {text:?}")))
    };
    let state_text = field(0, "state")?;
    let mut chars = state_text.chars();
    let state = match (chars.next(), chars.next()) {
        (Some(c), None) if is_state(c) => c,
        _ => return Err(format_error(format!("unknown state {state_text:?}"))),
    };
    let ppid = number(1, "ppid")?;
    Ok(Stat {
        pid,
        comm: bytes[open + 1..close].to_vec(),
        state,
        ppid: u32::try_from(ppid).map_err(|_| format_error(format!("ppid {ppid} too large")))?,
        utime: number(11, "utime")?,
        stime: number(12, "stime")?,
        cutime: number(13, "cutime")?,
        cstime: number(14, "cstime")?,
        starttime: number(19, "starttime")?,
        vsize: number(20, "vsize")?,
        rss_pages: number(21, "rss")?,
    })
}

fn is_state(c: char) -> bool {
    matches!(c, 'R' | 'S' | 'D' | 'T' | 't' | 'X' | 'Z' | 'P' | 'I' | 'K')
}

/// The counters of `/proc/<pid>/io`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Io {
    pub rchar: u64,
    pub wchar: u64,
    pub syscr: u64,
    pub syscw: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub cancelled_write_bytes: u64,
}

/// Parses `/proc/<pid>/io` (`key: value` lines). Every counter is required.
pub fn parse_io(text: &str) -> Result<Io, FormatError> {
    let mut io = Io::default();
    let mut seen = 0u8;
    for (key, value) in key_values(text) {
        let (slot, bit) = match key {
            "rchar" => (&mut io.rchar, 1),
            "wchar" => (&mut io.wchar, 2),
            "syscr" => (&mut io.syscr, 4),
            "syscw" => (&mut io.syscw, 8),
            "read_bytes" => (&mut io.read_bytes, 16),
            "write_bytes" => (&mut io.write_bytes, 32),
            "cancelled_write_bytes" => (&mut io.cancelled_write_bytes, 64),
            _ => continue,
        };
        *slot = value
            .parse()
            .map_err(|_| format_error(format!("`{key}` is not a number: {value:?}")))?;
        seen |= bit;
    }
    if seen != 127 {
        return Err(format_error(
            "missing counters (want rchar, wchar, syscr, syscw, read_bytes, write_bytes, cancelled_write_bytes)",
        ));
    }
    Ok(io)
}

/// `key: value` pairs, one a line, value trimmed.
fn key_values(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines().filter_map(|line| {
        let (key, value) = line.split_once(':')?;
        Some((key.trim(), value.trim()))
    })
}

/// The lines of `/proc/meminfo` gestor uses, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemInfo {
    pub total_kib: u64,
    pub free_kib: u64,
    pub available_kib: u64,
    pub cached_kib: u64,
    pub swap_total_kib: u64,
    pub swap_free_kib: u64,
}

/// Parses `/proc/meminfo`. MemTotal, MemFree and MemAvailable are required;
/// Cached, SwapTotal and SwapFree are 0 when absent.
pub fn parse_meminfo(text: &str) -> Result<MemInfo, FormatError> {
    let mut m = MemInfo::default();
    let mut seen = 0u8;
    for (key, value) in key_values(text) {
        let (slot, bit) = match key {
            "MemTotal" => (&mut m.total_kib, 1),
            "MemFree" => (&mut m.free_kib, 2),
            "MemAvailable" => (&mut m.available_kib, 4),
            "Cached" => (&mut m.cached_kib, 0),
            "SwapTotal" => (&mut m.swap_total_kib, 0),
            "SwapFree" => (&mut m.swap_free_kib, 0),
            _ => continue,
        };
        let number = value.strip_suffix("kB").unwrap_or(value).trim_end();
        *slot = number
            .parse()
            .map_err(|_| format_error(format!("`{key}` is not a number of kB: {value:?}")))?;
        seen |= bit;
    }
    for (bit, key) in [(1, "MemTotal"), (2, "MemFree"), (4, "MemAvailable")] {
        if seen & bit == 0 {
            return Err(format_error(format!("no `{key}` line")));
        }
    }
    if m.total_kib == 0 {
        return Err(format_error("MemTotal is 0"));
    }
    Ok(m)
}

/// What gestor uses from `/proc/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcStat {
    /// The first (`cpu`) line, converted to ns.
    pub cpu_time_ns: CpuTimes,
    /// How many `cpuN` lines there are: the online CPUs.
    pub cpu_count: u32,
}

/// Parses `/proc/stat`: the first `cpu` line (user, nice, system, idle,
/// iowait, irq, softirq, steal in USER_HZ ticks; later kernels' guest fields
/// are already included in user and nice) converted with `ns_per_tick`, and
/// the number of `cpuN` lines.
pub fn parse_proc_stat(text: &str, ns_per_tick: u64) -> Result<ProcStat, FormatError> {
    let mut total = None;
    let mut cpu_count = 0u32;
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        match words.next() {
            Some("cpu") if total.is_none() => {
                let mut ticks = [0u64; 8];
                let mut n = 0;
                for (slot, word) in ticks.iter_mut().zip(words) {
                    *slot = word.parse().map_err(|_| {
                        format_error(format!("`cpu` line has a non-number {word:?}"))
                    })?;
                    n += 1;
                }
                if n < 4 {
                    return Err(format_error("`cpu` line has fewer than 4 fields"));
                }
                let ns = |t: u64| t.saturating_mul(ns_per_tick);
                total = Some(CpuTimes {
                    user: ns(ticks[0]),
                    nice: ns(ticks[1]),
                    system: ns(ticks[2]),
                    idle: ns(ticks[3]),
                    iowait: ns(ticks[4]),
                    irq: ns(ticks[5]),
                    softirq: ns(ticks[6]),
                    steal: ns(ticks[7]),
                });
            }
            Some(word)
                if word.len() > 3
                    && word.starts_with("cpu")
                    && word[3..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                cpu_count += 1;
            }
            _ => {}
        }
    }
    let cpu_time_ns = total.ok_or_else(|| format_error("no `cpu` line"))?;
    Ok(ProcStat {
        cpu_time_ns,
        cpu_count,
    })
}

/// Parses `/proc/uptime` ("12345.67 23456.78"): the first number, seconds
/// since boot with a decimal fraction, as ns.
pub fn parse_uptime(text: &str) -> Result<u64, FormatError> {
    let word = text
        .split_ascii_whitespace()
        .next()
        .ok_or_else(|| format_error("empty"))?;
    let bad = || format_error(format!("not a number of seconds: {word:?}"));
    let (secs, frac) = word.split_once('.').unwrap_or((word, ""));
    if secs.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let secs: u64 = secs.parse().map_err(|_| bad())?;
    let frac_ns = if frac.is_empty() {
        0
    } else {
        frac.parse::<u64>().map_err(|_| bad())? * 10u64.pow(9 - frac.len() as u32)
    };
    secs.checked_mul(NS_PER_SEC)
        .and_then(|ns| ns.checked_add(frac_ns))
        .ok_or_else(bad)
}

/// Turns the contents of `/proc/<pid>/cmdline` into the reported string: at
/// most [`MAX_CMDLINE_BYTES`] bytes, the NUL that ends the last argument
/// dropped, the NULs between arguments turned into single spaces, and bytes
/// that are not UTF-8 replaced one by one with U+FFFD. Empty for kernel
/// threads and zombies.
pub fn parse_cmdline(raw: &[u8]) -> String {
    let raw = &raw[..raw.len().min(MAX_CMDLINE_BYTES)];
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    let joined: Vec<u8> = raw.iter().map(|&b| if b == 0 { b' ' } else { b }).collect();
    lossy_utf8_per_byte(&joined)
}

/// The task name as reported: decoded byte by byte, at most 64 characters.
pub fn parse_comm(raw: &[u8]) -> String {
    truncate_chars(lossy_utf8_per_byte(raw), MAX_COMM_CHARS)
}

fn truncate_chars(mut s: String, max: usize) -> String {
    if let Some((at, _)) = s.char_indices().nth(max) {
        s.truncate(at);
    }
    s
}

/// Nanoseconds per USER_HZ clock tick (the unit of `/proc/stat` and
/// `/proc/<pid>/stat` times): 10,000,000 with the usual USER_HZ of 100.
pub fn ns_per_tick() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    match u64::try_from(hz) {
        Ok(hz) if hz > 0 => NS_PER_SEC / hz,
        _ => NS_PER_SEC / 100,
    }
}

/// The size of a memory page in bytes (the unit of the RSS in
/// `/proc/<pid>/stat`).
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    match u64::try_from(size) {
        Ok(size) if size > 0 => size,
        _ => 4096,
    }
}

fn online_cpus() -> u32 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u32::try_from(n).ok().filter(|&n| n > 0).unwrap_or(1)
}

/// CLOCK_BOOTTIME in ns.
fn boottime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        return 0;
    }
    u64::try_from(ts.tv_sec)
        .unwrap_or(0)
        .saturating_mul(NS_PER_SEC)
        .saturating_add(u64::try_from(ts.tv_nsec).unwrap_or(0))
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// How [`read_into`] knows it has reached the end of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eof {
    /// A read returns 0 (always right).
    AtZero,
    /// A read returns less than asked. That saves the extra `read` returning
    /// 0 (a sixth of the cost of a small procfs file), and is right for the
    /// per-process files read here (`stat`, `io`, `cgroup` are single-record
    /// seq_files, which fill the whole buffer unless the file ends; `cmdline`
    /// reads fill it too; regular files in a fake tree as well) but NOT for
    /// multi-record seq_files such as `smaps`, which stop at a record.
    AtShortRead,
}

/// Reads a file into `buf` (cleared first), at most `limit` bytes.
fn read_into(path: &Path, buf: &mut Vec<u8>, limit: usize, eof: Eof) -> io::Result<()> {
    buf.clear();
    let mut file = File::open(path)?;
    loop {
        let start = buf.len();
        let want = start.max(READ_CHUNK).min(limit - start);
        if want == 0 {
            return Ok(());
        }
        buf.resize(start + want, 0);
        match file.read(&mut buf[start..]) {
            Ok(n) => {
                buf.truncate(start + n);
                if n == 0 || (n < want && eof == Eof::AtShortRead) {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => buf.truncate(start),
            Err(e) => {
                buf.clear();
                return Err(e);
            }
        }
    }
}

/// Text of a file that should be ASCII, decoded per byte if it is not.
fn text(buf: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(buf) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(lossy_utf8_per_byte(buf)),
    }
}

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
enum ErrorClass {
    Vanished,
    PermissionDenied,
    Other,
}

fn classify(e: &io::Error) -> ErrorClass {
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

        let facts = match cache {
            Some(c) => match c.fresh(pid, stat.starttime) {
                Some(f) => f,
                None => {
                    let f = self.identity(path, buf)?;
                    c.keep(pid, ino, stat.starttime, f.clone());
                    f
                }
            },
            None => self.identity(path, buf)?,
        };
        let (container_id, cgroup) = match facts.container {
            Some((id, cgroup_path)) => (Some(id), cgroup_path),
            None if self.all_processes => (None, facts.display_cgroup.clone()),
            None => return Err(Skip::NotInContainer),
        };

        path.set_file_name("io");
        let io = match read_into(path, buf, MAX_PROCESS_FILE_BYTES, Eof::AtShortRead) {
            Ok(()) => {
                parse_io(&text(buf)).map_err(|e| Skip::Failed(path.clone(), e.to_string()))?
            }
            Err(e) => match classify(&e) {
                ErrorClass::PermissionDenied => Io::default(),
                // No `io` file in a directory that is still there: a kernel
                // without task I/O accounting. Otherwise the process is gone.
                ErrorClass::Vanished if e.kind() == io::ErrorKind::NotFound => {
                    path.pop();
                    if path.is_dir() {
                        Io::default()
                    } else {
                        return Err(Skip::Vanished);
                    }
                }
                ErrorClass::Vanished => return Err(Skip::Vanished),
                ErrorClass::Other => return Err(Skip::Failed(path.clone(), e.to_string())),
            },
        };

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
        let container = cgroup::container_from_proc_cgroup(&cgroup_text)
            .map(|(id, p)| (id, truncate_chars(p, MAX_CGROUP_CHARS)));
        let display_cgroup = if container.is_none() && self.all_processes {
            truncate_chars(
                cgroup::display_path(&cgroup_text).to_string(),
                MAX_CGROUP_CHARS,
            )
        } else {
            String::new()
        };
        // A process outside any container needs no command line (unless
        // every process is listed).
        let cmdline = if container.is_some() || self.all_processes {
            path.set_file_name("cmdline");
            self.read(path, buf, MAX_CMDLINE_BYTES)?;
            parse_cmdline(buf)
        } else {
            String::new()
        };
        Ok(Identity {
            container,
            display_cgroup,
            cmdline,
        })
    }
}

/// A process's cgroup and command line, as last read.
#[derive(Debug, Clone, PartialEq)]
struct Identity {
    /// (container ID, cgroup path) when in a container.
    container: Option<(String, String)>,
    /// The cgroup path to show for a process outside any container.
    display_cgroup: String,
    cmdline: String,
}

/// How many collections a process's cgroup and command line are kept
/// before they are read again: they almost never change while a process
/// lives, and a process that moved to another cgroup is seen within this
/// many cycles.
pub const IDENTITY_REFRESH_READS: u64 = 30;

/// One cached process: which process it is (the inode of its `/proc/<pid>`
/// directory, a new one for each process that gets the pid, and its start
/// time), its identity, when that was read and when it was last seen.
#[derive(Debug)]
struct Cached {
    ino: u64,
    starttime: u64,
    identity: Identity,
    read_at: u64,
    seen: u64,
}

/// The identities of the processes of the last collections, by pid.
#[derive(Debug, Default)]
struct ProcessCache {
    entries: HashMap<u32, Cached>,
    /// The number of the collection under way.
    read: u64,
}

impl ProcessCache {
    fn due(&self, c: &Cached) -> bool {
        self.read - c.read_at >= IDENTITY_REFRESH_READS
    }

    /// True when `pid` is the same process as before (same directory
    /// inode), known to be outside any container: nothing of it needs
    /// reading, not even its stat.
    fn known_outside(&mut self, pid: u32, ino: u64) -> bool {
        let read = self.read;
        let skip = self
            .entries
            .get(&pid)
            .is_some_and(|c| c.ino == ino && c.identity.container.is_none() && !self.due(c));
        if skip {
            if let Some(c) = self.entries.get_mut(&pid) {
                c.seen = read;
            }
        }
        skip
    }

    /// The identity of this process (pid and start time) if it is fresh.
    fn fresh(&mut self, pid: u32, starttime: u64) -> Option<Identity> {
        let read = self.read;
        let c = self.entries.get(&pid)?;
        if c.starttime != starttime || self.due(c) {
            return None;
        }
        let identity = c.identity.clone();
        if let Some(c) = self.entries.get_mut(&pid) {
            c.seen = read;
        }
        Some(identity)
    }

    fn keep(&mut self, pid: u32, ino: u64, starttime: u64, identity: Identity) {
        self.entries.insert(
            pid,
            Cached {
                ino,
                starttime,
                identity,
                read_at: self.read,
                seen: self.read,
            },
        );
    }

    /// Forgets the processes the collection under way did not see (gone).
    fn sweep(&mut self) {
        let read = self.read;
        self.entries.retain(|_, c| c.seen == read);
    }
}

/// Builds a snapshot from the procfs mounted at `procfs_root` (normally
/// `/proc`): the system figures and every process in a container, or every
/// process when `all_processes` is set. `uptime_ns` comes from
/// `<root>/uptime` (10 ms resolution), or from CLOCK_BOOTTIME when that file
/// does not exist. Fails only when the system files cannot be read or parsed;
/// the error names the file.
pub fn collect(procfs_root: &Path, all_processes: bool) -> Result<Snapshot, CollectError> {
    Collector::new(procfs_root, all_processes, false).collect()
}

/// Below this many `/proc` entries a scan runs on one thread: starting a
/// thread would cost more than it saves.
pub const PARALLEL_MIN_ENTRIES: usize = 512;

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

fn scan(
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::fs;

    const ID: &str = "a5965c2060b9d063b96b7b09d23fa0eef7e01be99223c7940294c5d648881461";

    const STRESS_STAT: &str = "17896 (stress) R 17869 17869 17869 0 -1 4194368 12 0 0 0 \
        44 3 5 2 20 0 1 0 39396 3465216 37 18446744073709551615 94390596108288 \
        94390596120085 140724344950400 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 \
        94390596132016 94390596132896 94391519141888 140724344958745 \
        140724344958760 140724344958760 140724344958952 0\n";

    const MEMINFO: &str = "MemTotal:       24570000 kB\nMemFree:        20000000 kB\n\
        MemAvailable:   22000000 kB\nBuffers:          100000 kB\nCached:          1500000 kB\n\
        SwapCached:            0 kB\nSwapTotal:       1048576 kB\nSwapFree:        1000000 kB\n\
        HugePages_Total:       0\n";

    const PROC_STAT: &str = "cpu  35662 0 10062 31064 687 0 220 103 0 0\n\
        cpu0 16874 0 4446 17383 76 0 11 52 0 0\n\
        cpu1 18787 0 5616 13681 610 0 208 51 0 0\n\
        intr 1 2 3\nctxt 123\nbtime 1764379200\nprocesses 999\n\
        procs_running 2\nprocs_blocked 0\nsoftirq 1 2 3\n";

    const IO: &str = "rchar: 53468\nwchar: 7815\nsyscr: 51\nsyscw: 8\n\
        read_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n";

    #[test]
    fn stat_of_a_real_process() {
        let s = parse_stat(STRESS_STAT.as_bytes()).unwrap();
        assert_eq!(
            s,
            Stat {
                pid: 17896,
                comm: b"stress".to_vec(),
                state: 'R',
                ppid: 17869,
                utime: 44,
                stime: 3,
                cutime: 5,
                cstime: 2,
                starttime: 39396,
                vsize: 3465216,
                rss_pages: 37,
            }
        );
    }

    #[test]
    fn stat_comm_with_spaces_and_parentheses() {
        let line = STRESS_STAT.replace("(stress)", "(a) R 1 (b) )");
        let s = parse_stat(line.as_bytes()).unwrap();
        assert_eq!(s.comm, b"a) R 1 (b) ");
        assert_eq!(s.state, 'R');
        assert_eq!(s.ppid, 17869);
        assert_eq!(s.utime, 44);

        let line = STRESS_STAT.replace("(stress)", "()");
        assert_eq!(parse_stat(line.as_bytes()).unwrap().comm, b"");

        let line = STRESS_STAT.replace("(stress)", "(new\nline)");
        assert_eq!(parse_stat(line.as_bytes()).unwrap().comm, b"new\nline");
    }

    #[test]
    fn stat_comm_with_invalid_utf8() {
        let mut line = b"7 (\xff\xfe\") S 1".to_vec();
        line.extend_from_slice(&STRESS_STAT.as_bytes()["17896 (stress) R 17869".len()..]);
        let s = parse_stat(&line).unwrap();
        assert_eq!(s.comm, b"\xff\xfe\"");
        assert_eq!(parse_comm(&s.comm), "\u{FFFD}\u{FFFD}\"");
    }

    #[test]
    fn stat_of_kernel_thread_and_zombie() {
        let kthread = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 1 0 0 20 0 1 0 1 0 0 \
            18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
        let s = parse_stat(kthread.as_bytes()).unwrap();
        assert_eq!(
            (s.pid, s.ppid, s.state, s.vsize, s.rss_pages),
            (2, 0, 'S', 0, 0)
        );
        let zombie = STRESS_STAT.replace(" R 17869", " Z 17869");
        assert_eq!(parse_stat(zombie.as_bytes()).unwrap().state, 'Z');
        let idle = STRESS_STAT.replace(" R 17869", " I 17869");
        assert_eq!(parse_stat(idle.as_bytes()).unwrap().state, 'I');
    }

    #[test]
    fn stat_errors() {
        let cases: [(&[u8], &str); 7] = [
            (b"", "no `(`"),
            (b"12 stress R 1", "no `(`"),
            (b"12 (stress R 1", "no `)`"),
            (b"x (stress) R 1", "pid"),
            (b"12 (stress) R 1 2 3", "missing field `utime`"),
            (b"12 (stress) W 1", "unknown state"),
            (b"12 (stress) R x", "`ppid` is not a number"),
        ];
        for (input, needle) in cases {
            let err = parse_stat(input).unwrap_err().to_string();
            assert!(
                err.contains(needle),
                "{:?}: {err}",
                String::from_utf8_lossy(input)
            );
        }
        let line = STRESS_STAT.replace(" 39396 ", " 3939x ");
        let err = parse_stat(line.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("starttime"), "{err}");
    }

    #[test]
    fn stat_negative_rss_is_zero() {
        let line = STRESS_STAT.replace(" 3465216 37 ", " 3465216 -1 ");
        assert_eq!(parse_stat(line.as_bytes()).unwrap().rss_pages, 0);
    }

    #[test]
    fn io_counters() {
        assert_eq!(
            parse_io(IO).unwrap(),
            Io {
                rchar: 53468,
                wchar: 7815,
                syscr: 51,
                syscw: 8,
                read_bytes: 4096,
                write_bytes: 8192,
                cancelled_write_bytes: 0,
            }
        );
        let err = parse_io("rchar: 1\n").unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
        let err = parse_io(&IO.replace("51", "5x1")).unwrap_err().to_string();
        assert!(err.contains("syscr"), "{err}");
    }

    #[test]
    fn meminfo_fields() {
        assert_eq!(
            parse_meminfo(MEMINFO).unwrap(),
            MemInfo {
                total_kib: 24570000,
                free_kib: 20000000,
                available_kib: 22000000,
                cached_kib: 1500000,
                swap_total_kib: 1048576,
                swap_free_kib: 1000000,
            }
        );
        let no_available = MEMINFO.replace("MemAvailable:   22000000 kB\n", "");
        let err = parse_meminfo(&no_available).unwrap_err().to_string();
        assert!(err.contains("MemAvailable"), "{err}");
        let err = parse_meminfo(&MEMINFO.replace("24570000", "lots")).unwrap_err();
        assert!(err.to_string().contains("MemTotal"), "{err}");
        let zero = MEMINFO.replace("24570000", "0");
        assert!(parse_meminfo(&zero).is_err());
        let minimal = "MemTotal: 10 kB\nMemFree: 5 kB\nMemAvailable: 7 kB\n";
        assert_eq!(parse_meminfo(minimal).unwrap().swap_total_kib, 0);
    }

    #[test]
    fn proc_stat_first_cpu_line_and_count() {
        let s = parse_proc_stat(PROC_STAT, 10_000_000).unwrap();
        assert_eq!(s.cpu_count, 2);
        assert_eq!(
            s.cpu_time_ns,
            CpuTimes {
                user: 356_620_000_000,
                nice: 0,
                system: 100_620_000_000,
                idle: 310_640_000_000,
                iowait: 6_870_000_000,
                irq: 0,
                softirq: 2_200_000_000,
                steal: 1_030_000_000,
            }
        );
    }

    #[test]
    fn proc_stat_old_kernel_and_errors() {
        let old = "cpu 1 2 3 4\ncpu0 1 2 3 4\n";
        let s = parse_proc_stat(old, 1).unwrap();
        assert_eq!(
            (s.cpu_time_ns.idle, s.cpu_time_ns.steal, s.cpu_count),
            (4, 0, 1)
        );
        assert!(parse_proc_stat("cpu 1 2 3\n", 1).is_err());
        assert!(parse_proc_stat("cpu0 1 2 3 4\n", 1).is_err());
        assert!(parse_proc_stat("cpu 1 2 x 4\n", 1).is_err());
        assert!(parse_proc_stat("", 1).is_err());
        // `cpufreq`-like words are not CPUs.
        assert_eq!(
            parse_proc_stat("cpu 1 2 3 4\ncpux 1\ncpu 9 9 9 9\n", 1)
                .unwrap()
                .cpu_count,
            0
        );
    }

    #[test]
    fn uptime_seconds_to_ns() {
        assert_eq!(parse_uptime("391.86 310.64\n"), Ok(391_860_000_000));
        assert_eq!(parse_uptime("5 1"), Ok(5_000_000_000));
        assert_eq!(parse_uptime("0.000000001"), Ok(1));
        for bad in [
            "",
            "x.5 1",
            ".5 1",
            "1.x 1",
            "1.0000000001",
            "-1.0",
            "99999999999999999999.0",
        ] {
            assert!(parse_uptime(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cmdline_joins_arguments() {
        assert_eq!(parse_cmdline(b"stress\0--cpu\x001\0"), "stress --cpu 1");
        assert_eq!(parse_cmdline(b""), "");
        assert_eq!(parse_cmdline(b"a\0\0b\0"), "a  b");
        assert_eq!(parse_cmdline(b"a\0\0"), "a ");
        // setproctitle-style: no NUL at the end.
        assert_eq!(
            parse_cmdline(b"nginx: master process"),
            "nginx: master process"
        );
        assert_eq!(parse_cmdline(b"x\xffy\0"), "x\u{FFFD}y");
        assert_eq!(
            parse_cmdline(b"\"quoted\"\0back\\slash\0"),
            "\"quoted\" back\\slash"
        );
    }

    #[test]
    fn cmdline_is_bounded_to_1024_bytes() {
        let long = vec![b'a'; 5000];
        assert_eq!(parse_cmdline(&long).len(), MAX_CMDLINE_BYTES);
        let mut exact = vec![b'a'; MAX_CMDLINE_BYTES - 1];
        exact.push(0);
        assert_eq!(parse_cmdline(&exact).len(), MAX_CMDLINE_BYTES - 1);
        // A multi-byte character cut at the limit becomes one U+FFFD per byte.
        let mut cut = vec![b'a'; MAX_CMDLINE_BYTES - 1];
        cut.extend_from_slice("é".as_bytes());
        let s = parse_cmdline(&cut);
        assert!(s.ends_with("a\u{FFFD}"), "{s:?}");
    }

    #[test]
    fn comm_is_bounded() {
        assert_eq!(parse_comm(&[b'x'; 100]).chars().count(), MAX_COMM_CHARS);
        assert_eq!(parse_comm(b"kworker/0:1-events"), "kworker/0:1-events");
    }

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

    #[test]
    fn read_into_reads_whole_files_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut buf = Vec::new();
        for size in [0, 1, READ_CHUNK - 1, READ_CHUNK, READ_CHUNK + 1, 100_000] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            fs::write(&path, &data).unwrap();
            for eof in [Eof::AtZero, Eof::AtShortRead] {
                read_into(&path, &mut buf, usize::MAX, eof).unwrap();
                assert_eq!(buf, data, "size {size} {eof:?}");
                read_into(&path, &mut buf, 1000, eof).unwrap();
                assert_eq!(buf, data[..size.min(1000)], "size {size} {eof:?} limited");
            }
        }
        let missing = dir.path().join("missing");
        let err = read_into(&missing, &mut buf, 10, Eof::AtZero).unwrap_err();
        assert_eq!(classify(&err), ErrorClass::Vanished);

        // A multi-record seq_file stops a read at a record: only reading to a
        // zero-byte read gets all of it.
        read_into(
            Path::new("/proc/self/smaps"),
            &mut buf,
            usize::MAX,
            Eof::AtZero,
        )
        .unwrap();
        assert!(buf.len() > 2 * READ_CHUNK, "{} bytes", buf.len());
        let tail = String::from_utf8_lossy(&buf[buf.len() - 200..]);
        assert!(buf.ends_with(b"\n") && tail.contains("VmFlags:"), "{tail}");

        // Single-record procfs files come back whole with one read.
        read_into(
            Path::new("/proc/self/cgroup"),
            &mut buf,
            1 << 16,
            Eof::AtShortRead,
        )
        .unwrap();
        assert_eq!(buf, fs::read("/proc/self/cgroup").unwrap());
        assert!(buf.ends_with(b"\n"));
        read_into(
            Path::new("/proc/self/io"),
            &mut buf,
            1 << 16,
            Eof::AtShortRead,
        )
        .unwrap();
        parse_io(&text(&buf)).unwrap();
    }

    #[test]
    fn clock_constants_are_sane() {
        // USER_HZ is 100 on every Linux architecture gestor targets.
        assert_eq!(ns_per_tick(), 10_000_000);
        assert!(page_size().is_power_of_two() && page_size() >= 4096);
    }

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
        let strip = |mut s: Snapshot| {
            s.timestamp_ns = 0;
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
    fn collect_from_a_fake_tree_reports_container_processes() {
        let fake = fake_tree();
        let s = collect(fake.root(), false).unwrap();
        assert_eq!(s.version, 2);
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

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_stat(&bytes);
            let _ = parse_cmdline(&bytes);
            let _ = parse_comm(&bytes);
            let s = String::from_utf8_lossy(&bytes);
            let _ = parse_io(&s);
            let _ = parse_meminfo(&s);
            let _ = parse_proc_stat(&s, 10_000_000);
            let _ = parse_uptime(&s);
        }

        #[test]
        fn stat_roundtrips_any_comm(comm in proptest::collection::vec(1u8..=255, 0..16)) {
            let mut line = b"42 (".to_vec();
            line.extend_from_slice(&comm);
            line.extend_from_slice(&STRESS_STAT.as_bytes()["17896 (stress".len()..]);
            let s = parse_stat(&line).unwrap();
            prop_assert_eq!(s.comm, comm);
            prop_assert_eq!(s.pid, 42);
            prop_assert_eq!(s.starttime, 39396);
        }
    }
}

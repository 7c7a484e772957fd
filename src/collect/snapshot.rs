//! The sysinfo snapshot: the document `/proc/sysinfo_202200075` holds (and the
//! userspace collector produces), and its parser.
//!
//! The format is fixed by `schema/sysinfo.schema.json`. Parsing is a pure
//! function of bytes so it can be tested with plain values; reading the file
//! lives in `source.rs`.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Largest document we accept: the largest the kernel module writes (a
/// read that would need more fails there with EFBIG), 256 MiB. 10,000
/// processes take about 3 MB, 100,000 about 30 to 60 MB.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024 * 1024;

/// The format version this build writes (the userspace collector), and the
/// newest it reads. Version 3 added `cmdline_cached`, `cmdline_truncated`
/// and `cgroup_truncated`.
pub const FORMAT_VERSION: u32 = 3;

/// The oldest format version this build still reads. Version 1 lacks the
/// per-process `children_cpu_time_ns`, `cancelled_write_bytes` and
/// `cmdline_unavailable`; they read as 0 and false.
pub const OLDEST_VERSION: u32 = 1;

/// Largest pid Linux hands out (`PID_MAX_LIMIT` on 64-bit).
const PID_MAX_LIMIT: u32 = 4_194_304;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Kernel,
    Userspace,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Kernel => "kernel",
            SourceKind::Userspace => "userspace",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub version: u32,
    pub source: SourceKind,
    pub timestamp_ns: u64,
    pub uptime_ns: u64,
    pub system: System,
    pub processes: Vec<Process>,
    /// Each container's own cgroup counters, by container ID, as gestor read
    /// them right after the document (not part of the document: the kernel
    /// module publishes processes, and these are cgroupfs files).
    #[serde(skip)]
    pub cgroups: HashMap<String, CgroupCounters>,
}

/// What a container's cgroup says it used, where gestor could read it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupCounters {
    /// CPU time charged to the cgroup since it was made, in ns
    /// (`cpuacct.usage`, or `cpu.stat usage_usec` × 1000 on cgroup v2).
    pub cpu_usage_ns: Option<u64>,
    /// tmpfs/shm pages charged to the cgroup, in bytes (`memory.stat`'s
    /// `shmem`).
    pub shmem_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct System {
    pub cpu_count: u32,
    pub cpu_time_ns: CpuTimes,
    pub mem_total_kib: u64,
    pub mem_free_kib: u64,
    pub mem_available_kib: u64,
    pub mem_used_kib: u64,
    pub mem_cached_kib: u64,
    pub swap_total_kib: u64,
    pub swap_free_kib: u64,
}

/// Cumulative CPU time since boot over all CPUs, per state, in ns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl CpuTimes {
    /// Time the CPUs spent doing anything but waiting.
    pub fn busy(&self) -> u64 {
        self.user
            .saturating_add(self.nice)
            .saturating_add(self.system)
            .saturating_add(self.irq)
            .saturating_add(self.softirq)
            .saturating_add(self.steal)
    }

    pub fn total(&self) -> u64 {
        self.busy()
            .saturating_add(self.idle)
            .saturating_add(self.iowait)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    pub cmdline: String,
    pub container_id: Option<String>,
    pub cgroup: String,
    pub state: String,
    pub rss_kib: u64,
    pub vsz_kib: u64,
    pub mem_pct_x100: u32,
    pub cpu_time_ns: u64,
    /// User + system CPU time of the children this process has waited for
    /// (version 2).
    #[serde(default)]
    pub children_cpu_time_ns: u64,
    pub start_time_ns: u64,
    pub read_bytes: u64,
    /// Bytes sent to storage, as `/proc/<pid>/io` counts them (including
    /// those later cancelled: see `cancelled_write_bytes`).
    pub write_bytes: u64,
    /// Bytes this process caused not to be written after all (a truncated
    /// dirty page cache) (version 2).
    #[serde(default)]
    pub cancelled_write_bytes: u64,
    pub rchar: u64,
    pub wchar: u64,
    pub syscr: u64,
    pub syscw: u64,
    /// The command line could not be read without waiting (the module found
    /// the process's memory map lock taken); `cmdline` is then empty
    /// (version 2).
    #[serde(default)]
    pub cmdline_unavailable: bool,
    /// The I/O counters could not be read (`/proc/<pid>/io` refused: a
    /// process that made itself non-dumpable or runs as another user, when
    /// gestor is not root; or a kernel without task I/O accounting): they
    /// read 0 and mean nothing. Optional, false when absent.
    #[serde(default)]
    pub io_unavailable: bool,
    /// The command line is the text an earlier read kept, not one read now
    /// (version 3; false before).
    #[serde(default)]
    pub cmdline_cached: bool,
    /// The command line was longer than the 1024 bytes reported (version 3).
    #[serde(default)]
    pub cmdline_truncated: bool,
    /// The cgroup path was longer than the 4095 bytes reported (version 3).
    #[serde(default)]
    pub cgroup_truncated: bool,
}

impl Process {
    /// CPU time of the process and of the children it has reaped: what the
    /// kernel charges to its cgroup, as long as the process lives.
    pub fn cpu_with_children_ns(&self) -> u64 {
        self.cpu_time_ns.saturating_add(self.children_cpu_time_ns)
    }

    /// Bytes written to storage, net of the cancelled ones.
    pub fn net_write_bytes(&self) -> u64 {
        self.write_bytes.saturating_sub(self.cancelled_write_bytes)
    }
}

/// Why a document is not a valid snapshot. `line`/`column` are 1-based
/// positions in the document (0 when the problem has no position).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("document is empty")]
    Empty,
    #[error("document is {size} bytes, above the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
    #[error("invalid UTF-8 at byte {offset}")]
    InvalidUtf8 { offset: usize },
    #[error("line {line} column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// Parses and validates one sysinfo document. Never panics, whatever the bytes.
pub fn parse(bytes: &[u8]) -> Result<Snapshot, ParseError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(ParseError::TooLarge {
            size: bytes.len(),
            max: MAX_DOCUMENT_BYTES,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| ParseError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    let snapshot: Snapshot = serde_json::from_str(text).map_err(|e| ParseError::Json {
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    })?;
    validate(&snapshot)?;
    Ok(snapshot)
}

/// serde_json appends " at line L column C" to its messages; we report the
/// position in our own fields.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

/// The checks the JSON Schema makes that serde's types do not.
fn validate(s: &Snapshot) -> Result<(), ParseError> {
    let invalid = |path: String, message: String| Err(ParseError::Invalid { path, message });
    if !(OLDEST_VERSION..=FORMAT_VERSION).contains(&s.version) {
        return invalid(
            "version".into(),
            format!(
                "unsupported format version {} (this build reads {OLDEST_VERSION} to {FORMAT_VERSION})",
                s.version
            ),
        );
    }
    let sys = &s.system;
    if sys.cpu_count == 0 || sys.cpu_count > 65_536 {
        return invalid(
            "system.cpu_count".into(),
            format!("{} is out of range 1..=65536", sys.cpu_count),
        );
    }
    if sys.mem_total_kib == 0 {
        return invalid("system.mem_total_kib".into(), "must be above 0".into());
    }
    for (field, value) in [
        ("mem_free_kib", sys.mem_free_kib),
        ("mem_available_kib", sys.mem_available_kib),
        ("mem_used_kib", sys.mem_used_kib),
    ] {
        if value > sys.mem_total_kib {
            return invalid(
                format!("system.{field}"),
                format!("{value} exceeds mem_total_kib {}", sys.mem_total_kib),
            );
        }
    }
    for (i, p) in s.processes.iter().enumerate() {
        let at = |field: &str| format!("processes[{i}].{field}");
        if p.pid == 0 || p.pid > PID_MAX_LIMIT {
            return invalid(
                at("pid"),
                format!("{} is out of range 1..={PID_MAX_LIMIT}", p.pid),
            );
        }
        if p.ppid > PID_MAX_LIMIT {
            return invalid(
                at("ppid"),
                format!("{} is out of range 0..={PID_MAX_LIMIT}", p.ppid),
            );
        }
        if p.mem_pct_x100 > 10_000 {
            return invalid(
                at("mem_pct_x100"),
                format!("{} is above 10000 (100.00 %)", p.mem_pct_x100),
            );
        }
        if let Some(id) = &p.container_id {
            if !is_container_id(id) {
                return invalid(
                    at("container_id"),
                    format!("{id:?} is not 64 lowercase hex digits"),
                );
            }
        }
        if !is_state(&p.state) {
            return invalid(
                at("state"),
                format!("{:?} is not a one-letter process state", p.state),
            );
        }
    }
    Ok(())
}

/// A full container ID: 64 lowercase hex digits.
pub fn is_container_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_state(state: &str) -> bool {
    matches!(
        state,
        "R" | "S" | "D" | "T" | "t" | "X" | "Z" | "P" | "I" | "K"
    )
}

/// Decodes bytes the way the kernel module does: valid UTF-8 stays as it is,
/// and each byte that is not part of a valid sequence becomes U+FFFD (one per
/// byte, unlike `String::from_utf8_lossy`, so both sources agree exactly).
pub fn lossy_utf8_per_byte(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    loop {
        match std::str::from_utf8(bytes) {
            Ok(valid) => {
                out.push_str(valid);
                return out;
            }
            Err(e) => {
                let (valid, rest) = bytes.split_at(e.valid_up_to());
                // Safe: from_utf8 just said this prefix is valid.
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                let bad = e.error_len().unwrap_or(rest.len());
                out.extend(std::iter::repeat_n('\u{FFFD}', bad));
                bytes = &rest[bad..];
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_json() -> String {
        r#"{
  "version": 1, "source": "kernel",
  "timestamp_ns": 1764379200000000000, "uptime_ns": 5000000000,
  "system": {
    "cpu_count": 2,
    "cpu_time_ns": {"user": 100, "nice": 0, "system": 50, "idle": 800,
                    "iowait": 10, "irq": 0, "softirq": 5, "steal": 0},
    "mem_total_kib": 16000000, "mem_free_kib": 8000000,
    "mem_available_kib": 12000000, "mem_used_kib": 4000000,
    "mem_cached_kib": 2000000, "swap_total_kib": 0, "swap_free_kib": 0
  },
  "processes": [
    {"pid": 42, "ppid": 1, "comm": "stress", "cmdline": "stress --cpu 1",
     "container_id": "3fa1c0ffee3fa1c0ffee3fa1c0ffee3fa1c0ffee3fa1c0ffee3fa1c0ffee3fa1",
     "cgroup": "/docker/3fa1c0ffee3fa1c0ffee3fa1c0ffee3fa1c0ffee3fa1c0ffee3fa1c0ffee3fa1",
     "state": "R", "rss_kib": 1024, "vsz_kib": 4096, "mem_pct_x100": 1,
     "cpu_time_ns": 1000000000, "start_time_ns": 4000000000,
     "read_bytes": 0, "write_bytes": 4096, "rchar": 10, "wchar": 20,
     "syscr": 1, "syscw": 2}
  ]
}"#
        .to_string()
    }

    #[test]
    fn parses_a_valid_document() {
        let s = parse(sample_json().as_bytes()).unwrap();
        assert_eq!(s.source, SourceKind::Kernel);
        assert_eq!(s.system.cpu_count, 2);
        assert_eq!(s.processes.len(), 1);
        assert_eq!(s.processes[0].cmdline, "stress --cpu 1");
        assert_eq!(s.system.cpu_time_ns.busy(), 155);
        assert_eq!(s.system.cpu_time_ns.total(), 965);
    }

    #[test]
    fn version_2_adds_children_time_cancelled_writes_and_the_cmdline_flag() {
        let v1 = parse(sample_json().as_bytes()).unwrap();
        assert_eq!(v1.processes[0].children_cpu_time_ns, 0);
        assert!(!v1.processes[0].cmdline_unavailable);
        let doc = sample_json()
            .replace("\"version\": 1", "\"version\": 2")
            .replace(
                "\"syscr\": 1, \"syscw\": 2}",
                "\"syscr\": 1, \"syscw\": 2, \"children_cpu_time_ns\": 7000, \
             \"cancelled_write_bytes\": 96, \"cmdline_unavailable\": true}",
            );
        let v2 = parse(doc.as_bytes()).unwrap();
        let p = &v2.processes[0];
        assert_eq!(p.children_cpu_time_ns, 7000);
        assert_eq!(p.cpu_with_children_ns(), 1_000_007_000);
        assert_eq!(p.net_write_bytes(), 4096 - 96);
        assert!(p.cmdline_unavailable);
    }

    #[test]
    fn round_trips_through_serde() {
        let s = parse(sample_json().as_bytes()).unwrap();
        let again = parse(serde_json::to_string(&s).unwrap().as_bytes()).unwrap();
        assert_eq!(s, again);
    }

    #[test]
    fn empty_and_blank_documents_are_rejected() {
        assert_eq!(parse(b""), Err(ParseError::Empty));
        assert_eq!(parse(b" \n\t"), Err(ParseError::Empty));
    }

    #[test]
    fn truncated_document_reports_position() {
        let doc = sample_json();
        let cut = &doc.as_bytes()[..doc.len() / 2];
        match parse(cut) {
            Err(ParseError::Json { line, column, .. }) => {
                assert!(line > 1, "line {line}");
                assert!(column > 0);
            }
            other => panic!("expected a JSON error, got {other:?}"),
        }
    }

    #[test]
    fn wrong_types_and_missing_fields_name_the_field() {
        let doc = sample_json().replace("\"cpu_count\": 2", "\"cpu_count\": \"two\"");
        let err = parse(doc.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("invalid type"), "{err}");

        let doc = sample_json().replace("\"rss_kib\": 1024, ", "");
        let err = parse(doc.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("missing field `rss_kib`"), "{err}");

        let doc = sample_json().replace("\"steal\": 0", "\"steal\": 0, \"extra\": 1");
        let err = parse(doc.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("unknown field `extra`"), "{err}");
    }

    #[test]
    fn numbers_out_of_range_are_rejected() {
        let cases = [
            ("\"pid\": 42", "\"pid\": 0", "processes[0].pid"),
            ("\"pid\": 42", "\"pid\": 99999999", "processes[0].pid"),
            (
                "\"mem_pct_x100\": 1",
                "\"mem_pct_x100\": 10001",
                "mem_pct_x100",
            ),
            ("\"cpu_count\": 2", "\"cpu_count\": 0", "cpu_count"),
            ("\"rss_kib\": 1024", "\"rss_kib\": -1", "invalid value"),
            (
                "\"rss_kib\": 1024",
                "\"rss_kib\": 18446744073709551616",
                "line",
            ),
            (
                "\"version\": 1",
                "\"version\": 4",
                "unsupported format version",
            ),
            (
                "\"version\": 1",
                "\"version\": 0",
                "unsupported format version",
            ),
            (
                "\"mem_free_kib\": 8000000",
                "\"mem_free_kib\": 17000000",
                "exceeds mem_total_kib",
            ),
            ("\"state\": \"R\"", "\"state\": \"running\"", "state"),
        ];
        for (from, to, needle) in cases {
            let doc = sample_json().replace(from, to);
            assert_ne!(doc, sample_json(), "{from} not found in the sample");
            let err = parse(doc.as_bytes()).expect_err(to).to_string();
            assert!(err.contains(needle), "{to}: {err}");
        }
    }

    #[test]
    fn bad_container_id_is_rejected() {
        let doc = sample_json().replace("3fa1c0ffee3fa1\",", "3FA1C0FFEE3FA1\",");
        assert_ne!(doc, sample_json());
        let err = parse(doc.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("container_id"), "{err}");
    }

    #[test]
    fn invalid_utf8_is_an_error_with_offset() {
        let mut doc = sample_json().into_bytes();
        let at = doc.windows(6).position(|w| w == b"stress").unwrap();
        doc[at] = 0xff;
        assert_eq!(parse(&doc), Err(ParseError::InvalidUtf8 { offset: at }));
    }

    #[test]
    fn oversized_document_is_rejected_without_parsing() {
        let big = vec![b'{'; MAX_DOCUMENT_BYTES + 1];
        assert!(matches!(parse(&big), Err(ParseError::TooLarge { .. })));
    }

    #[test]
    fn lossy_decoding_replaces_each_bad_byte() {
        assert_eq!(lossy_utf8_per_byte(b"abc"), "abc");
        assert_eq!(lossy_utf8_per_byte(b"a\xffb"), "a\u{FFFD}b");
        assert_eq!(lossy_utf8_per_byte(b"\xff\xfe"), "\u{FFFD}\u{FFFD}");
        assert_eq!(lossy_utf8_per_byte("é\"\\".as_bytes()), "é\"\\");
        assert_eq!(lossy_utf8_per_byte(b"\xe2\x82"), "\u{FFFD}\u{FFFD}");
    }
}

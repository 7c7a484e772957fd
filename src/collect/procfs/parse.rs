//! The pure parsers of the procfs collector, one per file, tested with
//! plain strings: `stat`, `io`, `meminfo`, `/proc/stat`, `uptime`, `cmdline`
//! and `comm`.

use crate::collect::snapshot::{lossy_utf8_per_byte, CpuTimes};

/// Longest command line reported, in bytes before decoding (as the kernel
/// module does).
pub const MAX_CMDLINE_BYTES: usize = 1024;

/// Longest cgroup path reported, in characters (the schema's `maxLength`).
pub(super) const MAX_CGROUP_CHARS: usize = 4096;

/// Longest comm reported, in characters (the schema's `maxLength`).
const MAX_COMM_CHARS: usize = 64;

pub(super) const NS_PER_SEC: u64 = 1_000_000_000;

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

pub(super) fn truncate_chars(mut s: String, max: usize) -> String {
    if let Some((at, _)) = s.char_indices().nth(max) {
        s.truncate(at);
    }
    s
}

/// Sample files for the collector's tests.
#[cfg(test)]
pub(super) mod samples {
    pub const ID: &str = "a5965c2060b9d063b96b7b09d23fa0eef7e01be99223c7940294c5d648881461";

    pub const STRESS_STAT: &str = "17896 (stress) R 17869 17869 17869 0 -1 4194368 12 0 0 0 \
        44 3 5 2 20 0 1 0 39396 3465216 37 18446744073709551615 94390596108288 \
        94390596120085 140724344950400 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 \
        94390596132016 94390596132896 94391519141888 140724344958745 \
        140724344958760 140724344958760 140724344958952 0\n";

    pub const MEMINFO: &str = "MemTotal:       24570000 kB\nMemFree:        20000000 kB\n\
        MemAvailable:   22000000 kB\nBuffers:          100000 kB\nCached:          1500000 kB\n\
        SwapCached:            0 kB\nSwapTotal:       1048576 kB\nSwapFree:        1000000 kB\n\
        HugePages_Total:       0\n";

    pub const PROC_STAT: &str = "cpu  35662 0 10062 31064 687 0 220 103 0 0\n\
        cpu0 16874 0 4446 17383 76 0 11 52 0 0\n\
        cpu1 18787 0 5616 13681 610 0 208 51 0 0\n\
        intr 1 2 3\nctxt 123\nbtime 1764379200\nprocesses 999\n\
        procs_running 2\nprocs_blocked 0\nsoftirq 1 2 3\n";

    pub const IO: &str = "rchar: 53468\nwchar: 7815\nsyscr: 51\nsyscw: 8\n\
        read_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n";
}

#[cfg(test)]
mod tests {
    use super::samples::*;
    use super::*;
    use proptest::prelude::*;

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

//! The collector's file reads and clocks: one `open` and `read` into a
//! reused buffer, and the kernel's clock and page constants.

use crate::collect::procfs::parse::NS_PER_SEC;
use crate::collect::snapshot::lossy_utf8_per_byte;
use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// First read size; the read size doubles while a file fills it.
const READ_CHUNK: usize = 4096;

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

pub(super) fn online_cpus() -> u32 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u32::try_from(n).ok().filter(|&n| n > 0).unwrap_or(1)
}

/// CLOCK_BOOTTIME in ns.
pub(super) fn boottime_ns() -> u64 {
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

pub(super) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// How [`read_into`] knows it has reached the end of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Eof {
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
pub(super) fn read_into(path: &Path, buf: &mut Vec<u8>, limit: usize, eof: Eof) -> io::Result<()> {
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
pub(super) fn text(buf: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(buf) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(lossy_utf8_per_byte(buf)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::procfs::parse::parse_io;
    use crate::collect::procfs::scan::{classify, ErrorClass};
    use std::fs;

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
}

//! The write-ahead spool: every cycle's log records, on disk, until the log
//! service has acknowledged them.
//!
//! A cycle's records become one segment, `<seq>-<count>.jsonl`, written the
//! way databases write: to `<name>.tmp`, fsync, rename, fsync the directory.
//! The sender reads segments oldest first and unlinks each once delivered.
//! So a crash (SIGKILL, OOM, power loss) loses nothing a cycle finished, and
//! the log service's idempotence on record ids makes a resent segment
//! harmless.
//!
//! On open, whatever a crash left is salvaged: a `.tmp` whose rename never
//! happened (and `.bad` files an older gestor set aside) becomes a segment
//! again. A torn write can only cut a segment's last line short: that line
//! is counted and skipped, the rest delivered. A complete line that is not a
//! record is damage a crash cannot explain: the segment's records that parse
//! are delivered and the file is moved aside to `<name>.corrupt`, never
//! deleted. Nothing is ever deleted unread: a segment that cannot be read
//! now (an I/O error, something other than a file in its place) stays and is
//! read again later, with a growing delay.
//!
//! Every method does file I/O: the spool is owned by one thread of its own
//! (`writer.rs`), never called from the async runtime.

use crate::ship::lock::{LockError, SpoolLock};
use crate::ship::records::Record;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One segment on disk.
#[derive(Debug, Clone)]
pub struct Segment {
    pub path: PathBuf,
    /// Lines in the file (records, or corrupt lines to be counted).
    pub lines: usize,
    pub bytes: u64,
    /// Set while the segment cannot be read: when to try again.
    retry: Option<Retry>,
}

#[derive(Debug, Clone, Copy)]
struct Retry {
    at: Instant,
    delay: Duration,
}

/// The records of a segment that parse, and the lines that did not.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentRecords {
    pub records: Vec<Record>,
    /// Complete (newline-terminated) lines that are not records.
    pub bad_lines: usize,
    /// The last line is cut short and does not parse: a torn write.
    pub torn_tail: bool,
}

impl SegmentRecords {
    /// Lines given up on, the torn one included.
    pub fn unparsed(&self) -> usize {
        self.bad_lines + usize::from(self.torn_tail)
    }

    /// Damaged beyond what a crash mid-write leaves: kept aside, not deleted.
    pub fn is_corrupt(&self) -> bool {
        self.bad_lines > 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool is full ({used} of {max} bytes)")]
    Full { used: u64, max: u64 },
    #[error("cannot write the spool in {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
}

/// What a file name in the spool directory is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    /// `<seq>-<count>.jsonl`.
    Segment { seq: u64, count: Option<usize> },
    /// A write whose rename never happened (`.jsonl.tmp`), or what an older
    /// gestor left (`.tmp`, `.bad`): salvaged as `<target>`.
    Salvage { seq: u64, target: String },
    /// A segment moved aside as corrupt: kept for the operator, and its
    /// sequence number is never reused.
    Quarantined { seq: u64 },
}

/// Classifies a file name of the spool directory (None: not the spool's).
fn classify(name: &str) -> Option<Found> {
    let seq_of = |stem: &str| -> Option<(u64, Option<usize>)> {
        let (seq, count) = stem.split_once('-')?;
        Some((seq.parse().ok()?, count.parse().ok()))
    };
    if let Some(i) = name.find(".jsonl.corrupt") {
        return seq_of(&name[..i]).map(|(seq, _)| Found::Quarantined { seq });
    }
    if let Some(stem) = name.strip_suffix(".jsonl") {
        return seq_of(stem).map(|(seq, count)| Found::Segment { seq, count });
    }
    let stem = name
        .strip_suffix(".jsonl.tmp")
        .or_else(|| name.strip_suffix(".tmp"))
        .or_else(|| name.strip_suffix(".bad"))?;
    seq_of(stem).map(|(seq, _)| Found::Salvage {
        seq,
        target: format!("{stem}.jsonl"),
    })
}

/// Parses the lines of a segment: records that parse; bad lines counted.
pub fn parse_segment(bytes: &[u8]) -> SegmentRecords {
    let mut out = SegmentRecords {
        records: Vec::new(),
        bad_lines: 0,
        torn_tail: false,
    };
    let terminated = bytes.ends_with(b"\n");
    let lines: Vec<&[u8]> = bytes.split(|&c| c == b'\n').collect();
    let last = lines.len() - 1;
    for (i, line) in lines.into_iter().enumerate() {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Record>(line) {
            Ok(r) => out.records.push(r),
            Err(_) if i == last && !terminated => out.torn_tail = true,
            Err(_) => out.bad_lines += 1,
        }
    }
    out
}

fn count_lines(bytes: &[u8]) -> usize {
    bytes
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .count()
}

/// Reads a segment's bytes without ever blocking on what is not a regular
/// file: a FIFO put in a segment's place would block a plain `read` forever,
/// a directory or a symbolic link is refused.
fn read_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other(format!(
            "not a regular file ({:?})",
            meta.file_type()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// fsync of a directory: makes a rename in it durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// None until the directory could be created and locked (it is retried
    /// at each append).
    lock: Option<SpoolLock>,
    segments: VecDeque<Segment>,
    bytes: u64,
    next_seq: u64,
}

impl Spool {
    /// Locks the spool directory and finds (and salvages) what a previous
    /// run left. Fails when the directory cannot be locked (another gestor
    /// holds it, or it cannot be created).
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, LockError> {
        let lock = SpoolLock::acquire(dir)?;
        Ok(Spool::locked(dir, max_bytes, lock))
    }

    /// A spool whose directory is already locked: finds what it holds.
    pub fn locked(dir: &Path, max_bytes: u64, lock: SpoolLock) -> Spool {
        let mut spool = Spool::detached(dir, max_bytes);
        spool.lock = Some(lock);
        spool.scan();
        spool
    }

    /// A spool whose directory could not be locked yet (it could not be
    /// created): appends fail, and try again to lock it.
    pub fn detached(dir: &Path, max_bytes: u64) -> Spool {
        Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            lock: None,
            segments: VecDeque::new(),
            bytes: 0,
            next_seq: 0,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn scan(&mut self) {
        let mut found: Vec<(u64, Segment)> = Vec::new();
        let mut salvaged = 0;
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::error!(spool = %self.dir.display(), error = %e, "cannot list the log spool; segments left by an earlier run are not delivered until the next start");
                return;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(kind) = classify(&name) else {
                continue;
            };
            let mut path = entry.path();
            let (seq, count) = match kind {
                Found::Quarantined { seq } => {
                    self.next_seq = self.next_seq.max(seq + 1);
                    continue;
                }
                Found::Segment { seq, count } => (seq, count),
                Found::Salvage { seq, target } => {
                    // When the rename fails (a read-only spool), the file is
                    // read where it is.
                    let target = self.dir.join(target);
                    if !target.exists() && std::fs::rename(&path, &target).is_ok() {
                        salvaged += 1;
                        path = target;
                    }
                    (seq, None)
                }
            };
            // A segment that cannot be read now is kept, its size as the
            // directory says and its lines as its name says, and read again
            // by the sender.
            let (lines, bytes) = match read_bytes(&path) {
                Ok(bytes) => (count_lines(&bytes), bytes.len() as u64),
                Err(_) => (
                    count.unwrap_or(0),
                    entry.metadata().map(|m| m.len()).unwrap_or(0),
                ),
            };
            found.push((
                seq,
                Segment {
                    path,
                    lines,
                    bytes,
                    retry: None,
                },
            ));
        }
        if salvaged > 0 {
            let _ = sync_dir(&self.dir);
        }
        found.sort_by_key(|(seq, _)| *seq);
        for (seq, seg) in found {
            self.bytes += seg.bytes;
            self.next_seq = self.next_seq.max(seq + 1);
            self.segments.push_back(seg);
        }
        if !self.segments.is_empty() {
            tracing::info!(
                spool = %self.dir.display(),
                segments = self.segments.len(),
                records = self.lines(),
                salvaged,
                "found undelivered log records in the spool"
            );
        }
    }

    /// Records waiting on disk (lines: a corrupt one is counted when read).
    pub fn lines(&self) -> usize {
        self.segments.iter().map(|s| s.lines).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.segments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Locks the directory if that has not been possible yet.
    fn attach(&mut self) -> Result<(), SpoolError> {
        if self.lock.is_none() {
            let lock = SpoolLock::acquire(&self.dir)?;
            let dir = self.dir.clone();
            *self = Spool::locked(&dir, self.max_bytes, lock);
        }
        Ok(())
    }

    /// Writes records as one new segment: temporary file, fsync, rename,
    /// fsync of the directory. When this returns Ok the records survive a
    /// crash.
    pub fn append(&mut self, records: &[Record]) -> Result<(), SpoolError> {
        self.attach()?;
        let mut body = Vec::with_capacity(records.len() * 512);
        for r in records {
            serde_json::to_writer(&mut body, r).expect("records serialise");
            body.push(b'\n');
        }
        let size = body.len() as u64;
        if self.bytes + size > self.max_bytes {
            return Err(SpoolError::Full {
                used: self.bytes,
                max: self.max_bytes,
            });
        }
        let seq = self.next_seq;
        let path = self.dir.join(format!("{seq:020}-{}.jsonl", records.len()));
        let tmp = self
            .dir
            .join(format!("{seq:020}-{}.jsonl.tmp", records.len()));
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            sync_dir(&self.dir)
        })();
        if let Err(source) = written {
            let _ = std::fs::remove_file(&tmp);
            let _ = std::fs::remove_file(&path);
            return Err(SpoolError::Io { path: tmp, source });
        }
        self.next_seq += 1;
        self.bytes += size;
        self.segments.push_back(Segment {
            path,
            lines: records.len(),
            bytes: size,
            retry: None,
        });
        Ok(())
    }

    /// The oldest segment that is not waiting for a retry at `now`.
    pub fn first_due(&self, now: Instant) -> Option<&Segment> {
        self.segments
            .iter()
            .find(|s| s.retry.is_none_or(|r| r.at <= now))
    }

    /// When the next segment waiting for a retry is due, if any.
    pub fn earliest_retry(&self) -> Option<Instant> {
        self.segments
            .iter()
            .filter_map(|s| s.retry.map(|r| r.at))
            .min()
    }

    /// Reads a segment (without blocking on a FIFO in its place).
    pub fn read(path: &Path) -> std::io::Result<SegmentRecords> {
        read_bytes(path).map(|bytes| parse_segment(&bytes))
    }

    /// Puts off reading a segment that could not be read: `min` after the
    /// first failure, doubling up to `max`. Returns the delay.
    pub fn defer(&mut self, path: &Path, now: Instant, min: Duration, max: Duration) -> Duration {
        let Some(seg) = self.segments.iter_mut().find(|s| s.path == path) else {
            return min;
        };
        let delay = seg.retry.map_or(min, |r| (r.delay * 2).min(max));
        seg.retry = Some(Retry {
            at: now + delay,
            delay,
        });
        delay
    }

    /// Takes a segment off the queue without touching its file (it vanished).
    pub fn forget(&mut self, path: &Path) -> Option<Segment> {
        let i = self.segments.iter().position(|s| s.path == path)?;
        let seg = self.segments.remove(i)?;
        self.bytes = self.bytes.saturating_sub(seg.bytes);
        Some(seg)
    }

    /// Deletes a delivered segment. The directory is not fsynced: an unlink
    /// a crash undoes only sends the segment again, which the log service
    /// ignores, and one fsync fewer is one wait fewer on a busy disk.
    pub fn remove(&mut self, path: &Path) {
        if self.forget(path).is_none() {
            return;
        }
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(segment = %path.display(), error = %e, "cannot delete a delivered spool segment; it will be sent again at the next start (the log service ignores records it holds)")
            }
        }
    }

    /// Moves a corrupt segment aside to `<name>.corrupt` (or `.corrupt.<n>`
    /// when that name is taken), off the queue. When the move fails the file
    /// stays where it is, to be read (and moved) again at the next start.
    pub fn quarantine(&mut self, path: &Path) -> std::io::Result<PathBuf> {
        self.forget(path);
        let mut target = PathBuf::from(format!("{}.corrupt", path.display()));
        let mut n = 1;
        while target.exists() {
            target = PathBuf::from(format!("{}.corrupt.{n}", path.display()));
            n += 1;
        }
        std::fs::rename(path, &target)?;
        Ok(target)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ship::records::{RecordContext, RecordIds};

    pub(crate) fn records(n: usize) -> Vec<Record> {
        let ids = RecordIds::random();
        let ctx = RecordContext {
            ids: &ids,
            host: "h",
            cycle: 1,
            time: "2026-01-01T00:00:00.000Z",
        };
        (0..n)
            .map(|i| ctx.record("cycle", format!("r{i}")))
            .collect()
    }

    /// The spool's files (the lock's pid file left out).
    pub(crate) fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != crate::ship::lock::PID_FILE)
            .collect();
        v.sort();
        v
    }

    fn line(r: &Record) -> String {
        serde_json::to_string(r).unwrap() + "\n"
    }

    /// Reads the first due segment, as the sender does.
    fn read_first(s: &Spool) -> Option<(PathBuf, SegmentRecords)> {
        let seg = s.first_due(Instant::now())?;
        Some((seg.path.clone(), Spool::read(&seg.path).unwrap()))
    }

    #[test]
    fn segments_keep_their_order_across_reopen_and_go_when_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        let all = records(5);
        s.append(&all[..2]).unwrap();
        s.append(&all[2..]).unwrap();
        assert_eq!(files(dir.path()).len(), 2, "no temporary file left");
        drop(s);
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.lines(), 5);
        let (path, first) = read_first(&s).unwrap();
        assert_eq!(first.records, all[..2].to_vec());
        s.remove(&path);
        let (path, second) = read_first(&s).unwrap();
        assert_eq!(second.records, all[2..].to_vec());
        s.remove(&path);
        assert!(read_first(&s).is_none());
        assert_eq!(s.bytes(), 0);
        assert!(files(dir.path()).is_empty());
    }

    #[test]
    fn the_spool_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 600).unwrap();
        let r = records(10);
        s.append(&r[..1]).unwrap();
        let err = s.append(&r).unwrap_err();
        assert!(matches!(err, SpoolError::Full { .. }), "{err}");
        assert_eq!(s.lines(), 1);
    }

    #[test]
    fn a_torn_last_line_is_counted_and_the_rest_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        let r = records(3);
        s.append(&r).unwrap();
        let path = s.first_due(Instant::now()).unwrap().path.clone();
        drop(s);
        // A crash mid-write: the last record is cut in half.
        let text = std::fs::read(&path).unwrap();
        std::fs::write(&path, &text[..text.len() - 40]).unwrap();
        let s = Spool::open(dir.path(), 1 << 20).unwrap();
        let (_, front) = read_first(&s).unwrap();
        assert_eq!(front.records, r[..2].to_vec());
        assert!(front.torn_tail);
        assert_eq!(front.unparsed(), 1);
        assert!(!front.is_corrupt(), "a torn tail is what a crash leaves");
    }

    #[test]
    fn a_bad_complete_line_makes_the_segment_corrupt() {
        let r = records(3);
        let text = line(&r[0]) + "{\"not\": \"a record\"}\n" + &line(&r[1]) + &line(&r[2]);
        let parsed = parse_segment(text.as_bytes());
        assert_eq!(parsed.records, r.to_vec());
        assert_eq!(parsed.bad_lines, 1);
        assert!(!parsed.torn_tail);
        assert!(parsed.is_corrupt());
        // A bad last line that is complete is not a torn write either.
        let parsed = parse_segment((line(&r[0]) + "garbage\n").as_bytes());
        assert!(parsed.is_corrupt());
        // A record without its newline is still a record.
        let text = line(&r[0]) + line(&r[1]).trim_end();
        let parsed = parse_segment(text.as_bytes());
        assert_eq!(parsed.records, r[..2].to_vec());
        assert_eq!(parsed.unparsed(), 0);
        // Zeros a crash left past the last complete line: torn.
        let mut bytes = line(&r[0]).into_bytes();
        bytes.extend([0u8; 100]);
        let parsed = parse_segment(&bytes);
        assert_eq!(parsed.records, r[..1].to_vec());
        assert!(parsed.torn_tail && !parsed.is_corrupt());
        assert_eq!(parse_segment(b"").unparsed(), 0);
    }

    #[test]
    fn names_are_classified() {
        assert_eq!(
            classify("00000000000000000007-3.jsonl"),
            Some(Found::Segment {
                seq: 7,
                count: Some(3)
            })
        );
        assert_eq!(
            classify("00000000000000000007-3.jsonl.tmp"),
            Some(Found::Salvage {
                seq: 7,
                target: "00000000000000000007-3.jsonl".into()
            })
        );
        assert_eq!(
            classify("00000000000000000002-1.bad"),
            Some(Found::Salvage {
                seq: 2,
                target: "00000000000000000002-1.jsonl".into()
            })
        );
        assert_eq!(
            classify("00000000000000000009-3.jsonl.corrupt.2"),
            Some(Found::Quarantined { seq: 9 })
        );
        for other in ["gestor.pid", "notes.txt", "x-1.jsonl", "12.jsonl", ".tmp"] {
            assert_eq!(classify(other), None, "{other}");
        }
    }

    #[test]
    fn what_a_crash_or_an_older_gestor_left_is_salvaged() {
        let dir = tempfile::tempdir().unwrap();
        let r = records(4);
        // A write whose rename never happened, with a torn tail.
        std::fs::write(
            dir.path().join("00000000000000000003-2.jsonl.tmp"),
            line(&r[2]) + &line(&r[3])[..10],
        )
        .unwrap();
        // A segment an older gestor set aside whole for one bad line.
        std::fs::write(
            dir.path().join("00000000000000000001-2.bad"),
            line(&r[0]) + "not json\n" + &line(&r[1]),
        )
        .unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(
            files(dir.path()),
            vec![
                "00000000000000000001-2.jsonl",
                "00000000000000000003-2.jsonl"
            ]
        );
        let (path, first) = read_first(&s).unwrap();
        assert_eq!(first.records, vec![r[0].clone(), r[1].clone()]);
        assert_eq!(first.unparsed(), 1);
        assert!(first.is_corrupt());
        let aside = s.quarantine(&path).unwrap();
        assert_eq!(
            aside.file_name().unwrap(),
            "00000000000000000001-2.jsonl.corrupt"
        );
        let (path, second) = read_first(&s).unwrap();
        assert_eq!(second.records, vec![r[2].clone()]);
        assert!(second.torn_tail && !second.is_corrupt());
        s.remove(&path);
        // New segments come after what was found.
        s.append(&r[..1]).unwrap();
        assert_eq!(
            files(dir.path()),
            vec![
                "00000000000000000001-2.jsonl.corrupt",
                "00000000000000000004-1.jsonl"
            ]
        );
    }

    #[test]
    fn a_quarantined_segment_is_never_overwritten_nor_its_number_reused() {
        let dir = tempfile::tempdir().unwrap();
        let r = records(2);
        std::fs::write(
            dir.path().join("00000000000000000005-1.jsonl.corrupt"),
            "kept for the operator\n",
        )
        .unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(s.is_empty(), "a quarantined file is not a segment");
        s.append(&r[..1]).unwrap();
        let path = s.first_due(Instant::now()).unwrap().path.clone();
        assert_eq!(path.file_name().unwrap(), "00000000000000000006-1.jsonl");
        // Even were a name to repeat, the evidence already aside stays.
        let same = dir.path().join("00000000000000000005-1.jsonl");
        std::fs::write(&same, "garbage\n").unwrap();
        drop(s);
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        let aside = s.quarantine(&same).unwrap();
        assert_eq!(
            aside.file_name().unwrap(),
            "00000000000000000005-1.jsonl.corrupt.1"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("00000000000000000005-1.jsonl.corrupt"))
                .unwrap(),
            "kept for the operator\n"
        );
    }

    #[test]
    fn a_segment_that_cannot_be_read_is_kept_and_put_off_with_a_growing_delay() {
        let dir = tempfile::tempdir().unwrap();
        let r = records(3);
        // A directory and a FIFO where segments should be: reading either
        // fails at once (a FIFO must not block the reader).
        std::fs::create_dir(dir.path().join("00000000000000000001-2.jsonl")).unwrap();
        let fifo = dir.path().join("00000000000000000002-4.jsonl");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        std::fs::write(dir.path().join("00000000000000000003-1.jsonl"), line(&r[0])).unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(
            s.lines(),
            2 + 4 + 1,
            "unreadable ones counted by their names"
        );
        let (min, max) = (Duration::from_millis(100), Duration::from_millis(350));
        let t0 = Instant::now();
        let mut delays = Vec::new();
        for round in 0..4 {
            let now = t0 + Duration::from_secs(round * 10);
            for _ in 0..2 {
                let seg = s.first_due(now).unwrap().path.clone();
                let err = Spool::read(&seg).unwrap_err();
                assert!(err.to_string().contains("not a regular file"), "{err}");
                let d = s.defer(&seg, now, min, max);
                if seg == fifo {
                    delays.push(d);
                }
            }
            // Both put off: the readable one behind them is next.
            let due = s.first_due(now).unwrap();
            assert!(due.path.ends_with("00000000000000000003-1.jsonl"));
            assert_eq!(s.earliest_retry(), Some(now + delays[round as usize]));
        }
        assert_eq!(
            delays,
            [100, 200, 350, 350].map(Duration::from_millis).to_vec()
        );
        assert_eq!(files(dir.path()).len(), 3, "nothing deleted");
    }

    #[test]
    fn an_uncreatable_spool_directory_fails_appends_and_is_tried_again() {
        let root = tempfile::tempdir().unwrap();
        let blocker = root.path().join("not-a-dir");
        std::fs::write(&blocker, "").unwrap();
        let dir = blocker.join("spool");
        assert!(matches!(
            Spool::open(&dir, 1 << 20),
            Err(LockError::Io { .. })
        ));
        let mut s = Spool::detached(&dir, 1 << 20);
        assert!(matches!(
            s.append(&records(1)),
            Err(SpoolError::Lock(LockError::Io { .. }))
        ));
        // The obstacle goes: the next append locks the directory and writes.
        std::fs::remove_file(&blocker).unwrap();
        s.append(&records(2)).unwrap();
        assert_eq!(s.lines(), 2);
        assert!(matches!(
            Spool::open(&dir, 1 << 20),
            Err(LockError::Busy { .. })
        ));
    }
}

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
//! again; in any segment, a line that does not parse (a torn write) is
//! counted and skipped, never the whole file.

use crate::ship::records::Record;
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One segment on disk.
#[derive(Debug, Clone)]
pub struct Segment {
    pub path: PathBuf,
    /// Lines in the file (records, or corrupt lines to be counted).
    pub lines: usize,
    pub bytes: u64,
}

/// The records of a segment that parse, and how many lines did not.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentRecords {
    pub records: Vec<Record>,
    pub corrupt: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool is full ({used} of {max} bytes)")]
    Full { used: u64, max: u64 },
    #[error("cannot write the spool in {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segments: VecDeque<Segment>,
    bytes: u64,
    next_seq: u64,
    usable: bool,
}

/// Parses the lines of a segment: records that parse, corrupt lines counted.
pub fn parse_segment(bytes: &[u8]) -> SegmentRecords {
    let mut out = SegmentRecords {
        records: Vec::new(),
        corrupt: 0,
    };
    for line in bytes.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<Record>(line) {
            Ok(r) => out.records.push(r),
            Err(_) => out.corrupt += 1,
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

/// fsync of a directory: makes a rename or an unlink in it durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl Spool {
    /// Opens the spool directory and finds (and salvages) what a previous run
    /// left.
    pub fn open(dir: &Path, max_bytes: u64) -> Spool {
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segments: VecDeque::new(),
            bytes: 0,
            next_seq: 0,
            usable: true,
        };
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::error!(spool = %dir.display(), error = %e, "cannot create the log spool; undelivered records will only be kept in memory");
            spool.usable = false;
            return spool;
        }
        let mut found: Vec<(u64, Segment)> = Vec::new();
        let mut salvaged = 0;
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let mut path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(String::from) else {
                continue;
            };
            // `X.jsonl.tmp` (a write whose rename never happened), and `X.tmp`
            // or `X.bad` from older gestors: their complete lines are records.
            let stem = if let Some(base) = name.strip_suffix(".jsonl.tmp") {
                Some(base.to_string())
            } else if let Some(base) = name
                .strip_suffix(".tmp")
                .or_else(|| name.strip_suffix(".bad"))
            {
                Some(base.to_string())
            } else {
                name.strip_suffix(".jsonl").map(String::from)
            };
            let Some(stem) = stem else { continue };
            let Some(seq) = stem
                .split_once('-')
                .and_then(|(s, _)| s.parse::<u64>().ok())
            else {
                continue;
            };
            if !name.ends_with(".jsonl") {
                let target = dir.join(format!("{stem}.jsonl"));
                if std::fs::rename(&path, &target).is_err() {
                    continue;
                }
                salvaged += 1;
                path = target;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            found.push((
                seq,
                Segment {
                    path,
                    lines: count_lines(&bytes),
                    bytes: bytes.len() as u64,
                },
            ));
        }
        if salvaged > 0 {
            let _ = sync_dir(dir);
        }
        found.sort_by_key(|(seq, _)| *seq);
        for (seq, seg) in found {
            spool.bytes += seg.bytes;
            spool.next_seq = spool.next_seq.max(seq + 1);
            spool.segments.push_back(seg);
        }
        if !spool.segments.is_empty() {
            tracing::info!(
                segments = spool.segments.len(),
                records = spool.lines(),
                salvaged,
                "found undelivered log records in the spool"
            );
        }
        spool
    }

    /// Records waiting on disk (lines: a corrupt one is counted when read).
    pub fn lines(&self) -> usize {
        self.segments.iter().map(|s| s.lines).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Writes records as one new segment: temporary file, fsync, rename,
    /// fsync of the directory. When this returns Ok the records survive a
    /// crash.
    pub fn append(&mut self, records: &[Record]) -> Result<(), SpoolError> {
        if !self.usable {
            return Err(SpoolError::Io {
                path: self.dir.clone(),
                source: std::io::Error::other("spool directory unavailable"),
            });
        }
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
        });
        Ok(())
    }

    /// The oldest segment, if any.
    pub fn front(&self) -> Option<&Segment> {
        self.segments.front()
    }

    /// Reads the oldest segment. A segment that cannot be read at all (it
    /// vanished, or an I/O error) reads as empty with every line corrupt, so
    /// it never blocks the queue.
    pub fn read_front(&self) -> Option<SegmentRecords> {
        let seg = self.segments.front()?;
        Some(match std::fs::read(&seg.path) {
            Ok(bytes) => parse_segment(&bytes),
            Err(e) => {
                tracing::error!(segment = %seg.path.display(), error = %e, "cannot read a spool segment; its records are counted as corrupt");
                SegmentRecords {
                    records: Vec::new(),
                    corrupt: seg.lines,
                }
            }
        })
    }

    /// Deletes the oldest segment once everything in it is dealt with.
    pub fn pop_front(&mut self) {
        if let Some(seg) = self.segments.pop_front() {
            self.bytes = self.bytes.saturating_sub(seg.bytes);
            match std::fs::remove_file(&seg.path) {
                Ok(()) => {
                    let _ = sync_dir(&self.dir);
                }
                Err(e) => {
                    tracing::warn!(segment = %seg.path.display(), error = %e, "cannot delete a delivered spool segment")
                }
            }
        }
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

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn segments_keep_their_order_across_reopen_and_go_when_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20);
        let all = records(5);
        s.append(&all[..2]).unwrap();
        s.append(&all[2..]).unwrap();
        assert_eq!(files(dir.path()).len(), 2, "no temporary file left");
        drop(s);
        let mut s = Spool::open(dir.path(), 1 << 20);
        assert_eq!(s.lines(), 5);
        assert_eq!(s.read_front().unwrap().records, all[..2].to_vec());
        s.pop_front();
        assert_eq!(s.read_front().unwrap().records, all[2..].to_vec());
        s.pop_front();
        assert!(s.read_front().is_none());
        assert_eq!(s.bytes(), 0);
        assert!(files(dir.path()).is_empty());
    }

    #[test]
    fn the_spool_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 600);
        let r = records(10);
        s.append(&r[..1]).unwrap();
        let err = s.append(&r).unwrap_err();
        assert!(matches!(err, SpoolError::Full { .. }), "{err}");
        assert_eq!(s.lines(), 1);
    }

    #[test]
    fn a_torn_last_line_is_counted_and_the_rest_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20);
        let r = records(3);
        s.append(&r).unwrap();
        let path = s.front().unwrap().path.clone();
        drop(s);
        // A crash mid-write: the last record is cut in half.
        let text = std::fs::read(&path).unwrap();
        std::fs::write(&path, &text[..text.len() - 40]).unwrap();
        let s = Spool::open(dir.path(), 1 << 20);
        let front = s.read_front().unwrap();
        assert_eq!(front.records, r[..2].to_vec());
        assert_eq!(front.corrupt, 1);
    }

    #[test]
    fn what_a_crash_or_an_older_gestor_left_is_salvaged() {
        let dir = tempfile::tempdir().unwrap();
        let r = records(4);
        let line = |rec: &Record| serde_json::to_string(rec).unwrap() + "\n";
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
        let mut s = Spool::open(dir.path(), 1 << 20);
        assert_eq!(
            files(dir.path()),
            vec![
                "00000000000000000001-2.jsonl",
                "00000000000000000003-2.jsonl"
            ]
        );
        let first = s.read_front().unwrap();
        assert_eq!(first.records, vec![r[0].clone(), r[1].clone()]);
        assert_eq!(first.corrupt, 1);
        s.pop_front();
        let second = s.read_front().unwrap();
        assert_eq!(second.records, vec![r[2].clone()]);
        assert_eq!(second.corrupt, 1);
        // New segments come after what was found.
        s.append(&r[..1]).unwrap();
        assert!(files(dir.path()).contains(&"00000000000000000004-1.jsonl".to_string()));
    }

    #[test]
    fn an_unusable_spool_directory_is_an_io_error() {
        let mut s = Spool::open(Path::new("/proc/gestor-cannot-create"), 1 << 20);
        assert!(matches!(s.append(&records(1)), Err(SpoolError::Io { .. })));
    }
}

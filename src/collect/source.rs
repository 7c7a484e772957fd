//! Where snapshots come from: the kernel module's /proc file, or the
//! userspace collector when that file does not exist.

use crate::collect::procfs;
use crate::collect::snapshot::{self, ParseError, Snapshot, SourceKind};
use crate::config::SourceMode;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path} does not exist (is gestor_containers.ko loaded? `sudo insmod gestor_containers.ko`)")]
    Missing { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse {path}: {source}")]
    Parse { path: PathBuf, source: ParseError },
    #[error("{path}: the document would be larger than the module writes (256 MiB; EFBIG)")]
    TooLarge { path: PathBuf },
    #[error("userspace collector failed: {0}")]
    Collect(#[from] procfs::CollectError),
}

/// Reads snapshots according to the configured mode.
#[derive(Debug, Clone)]
pub struct SnapshotSource {
    pub mode: SourceMode,
    pub sysinfo: PathBuf,
    pub procfs: PathBuf,
}

impl SnapshotSource {
    /// Which source the next read will use (for logs and the source metric).
    pub fn current_kind(&self) -> SourceKind {
        match self.mode {
            SourceMode::Kernel => SourceKind::Kernel,
            SourceMode::Userspace => SourceKind::Userspace,
            SourceMode::Auto if self.sysinfo.exists() => SourceKind::Kernel,
            SourceMode::Auto => SourceKind::Userspace,
        }
    }

    /// Takes one snapshot. Blocking file I/O: call from a blocking thread.
    pub fn read_blocking(&self) -> Result<Snapshot, SourceError> {
        self.read_with(&mut procfs::Collector::new(&self.procfs, false, false))
    }

    /// Takes one snapshot, the userspace one through `collector` (which may
    /// keep what it learnt for the next one).
    pub fn read_with(&self, collector: &mut procfs::Collector) -> Result<Snapshot, SourceError> {
        match self.mode {
            SourceMode::Kernel => read_file(&self.sysinfo),
            SourceMode::Userspace => Ok(collector.collect()?),
            SourceMode::Auto => match read_file(&self.sysinfo) {
                Err(SourceError::Missing { .. }) => Ok(collector.collect()?),
                // More processes than the module's largest document holds:
                // the userspace collector reads them all, more slowly.
                Err(e @ SourceError::TooLarge { .. }) => {
                    tracing::warn!(error = %e, "using the userspace collector this cycle");
                    Ok(collector.collect()?)
                }
                other => other,
            },
        }
    }
}

/// Takes snapshots on a thread of its own, within a bound.
///
/// A read can block in the kernel for as long as it likes (a FIFO given as
/// `--sysinfo`, a stuck FUSE path, `/proc/<pid>/cmdline` of a process in D
/// state), and no timeout can interrupt a blocked system call. So reads run
/// one at a time on one thread: a read that runs out of time fails its cycle,
/// and while it stays blocked the next cycles fail at once ("still blocked")
/// instead of stacking more blocked threads. When the read returns, the
/// thread serves again.
pub struct SnapshotReader {
    source: SnapshotSource,
    requests:
        std::sync::mpsc::SyncSender<tokio::sync::oneshot::Sender<Result<Snapshot, SourceError>>>,
    /// Set while a read is under way on the thread.
    busy: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// When the read under way started (for the "still blocked" message).
    busy_since: std::sync::Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("reading {what} took more than {after:?}; no kills until it answers")]
    TimedOut {
        what: String,
        after: std::time::Duration,
    },
    #[error(
        "the read of {what} started {since:?} ago is still blocked; no kills until it answers"
    )]
    StillBlocked {
        what: String,
        since: std::time::Duration,
    },
}

impl SnapshotReader {
    /// `procfs_cache`: the userspace collector keeps each process's cgroup
    /// and command line between snapshots.
    pub fn new(source: SnapshotSource, procfs_cache: bool) -> SnapshotReader {
        let (requests, incoming) = std::sync::mpsc::sync_channel::<
            tokio::sync::oneshot::Sender<Result<Snapshot, SourceError>>,
        >(1);
        let busy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let busy_since = std::sync::Arc::new(std::sync::Mutex::new(None));
        let (worker_source, worker_busy, worker_since) =
            (source.clone(), busy.clone(), busy_since.clone());
        std::thread::Builder::new()
            .name("gestor-snapshot".into())
            .spawn(move || {
                let mut collector =
                    procfs::Collector::new(&worker_source.procfs, false, procfs_cache);
                // Ends when the reader (the sending side) is dropped.
                for reply in incoming {
                    let result = worker_source.read_with(&mut collector);
                    *worker_since.lock().unwrap() = None;
                    worker_busy.store(false, std::sync::atomic::Ordering::SeqCst);
                    let _ = reply.send(result);
                }
            })
            .expect("cannot start the snapshot thread");
        SnapshotReader {
            source,
            requests,
            busy,
            busy_since,
        }
    }

    pub fn source(&self) -> &SnapshotSource {
        &self.source
    }

    fn what(&self) -> String {
        match self.source.current_kind() {
            SourceKind::Kernel => self.source.sysinfo.display().to_string(),
            SourceKind::Userspace => {
                format!("{} (userspace collector)", self.source.procfs.display())
            }
        }
    }

    /// One snapshot, or an error within `limit`.
    pub async fn read(&self, limit: std::time::Duration) -> Result<Snapshot, ReadError> {
        use std::sync::atomic::Ordering;
        if self.busy.swap(true, Ordering::SeqCst) {
            let since = self
                .busy_since
                .lock()
                .unwrap()
                .map(|t| t.elapsed())
                .unwrap_or_default();
            return Err(ReadError::StillBlocked {
                what: self.what(),
                since,
            });
        }
        *self.busy_since.lock().unwrap() = Some(std::time::Instant::now());
        let (reply, answer) = tokio::sync::oneshot::channel();
        if self.requests.try_send(reply).is_err() {
            self.busy.store(false, Ordering::SeqCst);
            return Err(ReadError::Source(SourceError::Read {
                path: PathBuf::from("<snapshot thread>"),
                source: std::io::Error::other("the snapshot thread is gone"),
            }));
        }
        match tokio::time::timeout(limit, answer).await {
            Ok(Ok(result)) => Ok(result?),
            Ok(Err(_)) => Err(ReadError::Source(SourceError::Read {
                path: PathBuf::from("<snapshot thread>"),
                source: std::io::Error::other("the snapshot thread stopped"),
            })),
            Err(_) => Err(ReadError::TimedOut {
                what: self.what(),
                after: limit,
            }),
        }
    }
}

/// Reads and parses a sysinfo document; never reads more than the parser's limit.
pub fn read_file(path: &Path) -> Result<Snapshot, SourceError> {
    let file = std::fs::File::open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            SourceError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            SourceError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    let mut bytes = Vec::with_capacity(256 * 1024);
    file.take(snapshot::MAX_DOCUMENT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| read_error(path, source))?;
    snapshot::parse(&bytes).map_err(|source| SourceError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// A failed read of the module's file: EFBIG is the module saying the
/// document would be larger than it writes (the userspace collector can
/// still read the processes).
fn read_error(path: &Path, source: std::io::Error) -> SourceError {
    if source.raw_os_error() == Some(libc::EFBIG) {
        SourceError::TooLarge {
            path: path.to_path_buf(),
        }
    } else {
        SourceError::Read {
            path: path.to_path_buf(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::snapshot::tests::sample_json;

    #[test]
    fn efbig_from_the_module_is_a_document_too_large_not_a_read_error() {
        let path = Path::new("/proc/sysinfo_202200075");
        let e = read_error(path, std::io::Error::from_raw_os_error(libc::EFBIG));
        assert!(matches!(e, SourceError::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("EFBIG"));
        let e = read_error(path, std::io::Error::from_raw_os_error(libc::EIO));
        assert!(matches!(e, SourceError::Read { .. }), "{e}");
    }

    #[tokio::test]
    async fn a_read_that_blocks_fails_in_time_and_the_next_ones_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("sysinfo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let reader = SnapshotReader::new(
            SnapshotSource {
                mode: SourceMode::Kernel,
                sysinfo: fifo.clone(),
                procfs: "/proc".into(),
            },
            true,
        );
        let limit = std::time::Duration::from_millis(200);
        let started = std::time::Instant::now();
        let err = reader.read(limit).await.unwrap_err();
        assert!(matches!(err, ReadError::TimedOut { .. }), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // The open() is still blocked: no second thread, an error at once.
        let err = reader.read(limit).await.unwrap_err();
        assert!(matches!(err, ReadError::StillBlocked { .. }), "{err}");
        // A writer comes and goes: the blocked read returns (an empty
        // document), and the reader serves again.
        std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        for _ in 0..200 {
            if !reader.busy.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        std::fs::remove_file(&fifo).unwrap();
        std::fs::write(&fifo, sample_json()).unwrap();
        let s = reader.read(limit).await.unwrap();
        assert_eq!(s.source, SourceKind::Kernel);
    }

    #[test]
    fn missing_file_says_how_to_load_the_module() {
        let err = read_file(Path::new("/nonexistent/sysinfo")).unwrap_err();
        assert!(matches!(err, SourceError::Missing { .. }));
        assert!(err.to_string().contains("insmod"), "{err}");
    }

    #[test]
    fn parse_errors_name_the_file_and_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sysinfo");
        std::fs::write(&path, "{\"version\": 1,\n \"source\": tru").unwrap();
        let err = read_file(&path).unwrap_err().to_string();
        assert!(err.contains(path.to_str().unwrap()), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn kernel_mode_reads_the_file_and_auto_prefers_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sysinfo");
        std::fs::write(&path, sample_json()).unwrap();
        for mode in [SourceMode::Kernel, SourceMode::Auto] {
            let src = SnapshotSource {
                mode,
                sysinfo: path.clone(),
                procfs: dir.path().join("no-procfs"),
            };
            assert_eq!(src.current_kind(), SourceKind::Kernel);
            assert_eq!(src.read_blocking().unwrap().source, SourceKind::Kernel);
        }
    }

    #[test]
    fn auto_does_not_fall_back_on_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sysinfo");
        std::fs::write(&path, "garbage").unwrap();
        let src = SnapshotSource {
            mode: SourceMode::Auto,
            sysinfo: path,
            procfs: "/proc".into(),
        };
        assert!(matches!(
            src.read_blocking(),
            Err(SourceError::Parse { .. })
        ));
    }

    #[test]
    fn auto_falls_back_to_userspace_when_the_file_is_missing() {
        let src = SnapshotSource {
            mode: SourceMode::Auto,
            sysinfo: "/nonexistent/sysinfo".into(),
            procfs: "/proc".into(),
        };
        assert_eq!(src.current_kind(), SourceKind::Userspace);
        let s = src.read_blocking().unwrap();
        assert_eq!(s.source, SourceKind::Userspace);
        assert!(s.system.mem_total_kib > 0);
    }
}

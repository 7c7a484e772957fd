//! Where snapshots come from: the kernel module's /proc file, or the
//! userspace collector when that file does not exist.

use crate::config::SourceMode;
use crate::procfs;
use crate::snapshot::{self, ParseError, Snapshot, SourceKind};
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
        match self.mode {
            SourceMode::Kernel => read_file(&self.sysinfo),
            SourceMode::Userspace => Ok(procfs::collect(&self.procfs, false)?),
            SourceMode::Auto => match read_file(&self.sysinfo) {
                Err(SourceError::Missing { .. }) => Ok(procfs::collect(&self.procfs, false)?),
                other => other,
            },
        }
    }

    pub async fn read(&self) -> Result<Snapshot, SourceError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.read_blocking())
            .await
            .unwrap_or_else(|e| {
                Err(SourceError::Read {
                    path: PathBuf::from("<collector thread>"),
                    source: std::io::Error::other(e.to_string()),
                })
            })
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
        .map_err(|source| SourceError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    snapshot::parse(&bytes).map_err(|source| SourceError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::tests::sample_json;

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

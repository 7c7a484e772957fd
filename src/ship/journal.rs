//! The intent journal: what a cycle is about to stop or remove, on disk
//! before it acts, so that every act that happened has a record whatever
//! ends gestor (SIGKILL, the OOM killer, a Swarm restart) in the middle.
//!
//! Before the act stage, the cycle writes one file with its intents (the way
//! the spool writes: a temporary name, fsync, rename, fsync the directory);
//! once the outcome records are committed to the spool, the file is removed.
//! A file still there at start belongs to a cycle that did not finish: gestor
//! asks Docker what became of each container and records it. A file that
//! cannot be parsed is moved aside (`.corrupt`), never deleted unread.
//!
//! Blocking file I/O: call from a blocking thread.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What one act was about to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The id of the intent's record (the outcome's record points to it).
    pub record_id: String,
    pub run_id: String,
    pub cycle: u64,
    pub container_id: String,
    pub container_name: String,
    pub container_type: String,
    /// `kill` (stop and remove) or `remove` (a stopped container).
    pub action: String,
    /// Why, as the intent's record says it.
    pub reason: String,
}

/// The intents of one cycle that did not finish, and where they were.
#[derive(Debug)]
pub struct Pending {
    pub path: PathBuf,
    pub intents: Vec<Intent>,
}

#[derive(Debug, thiserror::Error)]
#[error("intent journal {path}: {source}")]
pub struct JournalError {
    path: PathBuf,
    source: std::io::Error,
}

/// The journal's directory.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// Opens (creates) the journal in `dir`.
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        std::fs::create_dir_all(dir).map_err(|source| JournalError {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Journal {
            dir: dir.to_path_buf(),
        })
    }

    /// Writes a cycle's intents durably; returns the file to clear once the
    /// outcomes are committed.
    pub fn write(
        &self,
        run_id: &str,
        cycle: u64,
        intents: &[Intent],
    ) -> Result<PathBuf, JournalError> {
        let path = self.dir.join(format!("{run_id}-{cycle:012}.intents"));
        let tmp = path.with_extension("intents.tmp");
        let err = |source| JournalError {
            path: path.clone(),
            source,
        };
        let text = serde_json::to_vec(intents).map_err(|e| err(e.into()))?;
        let mut file = std::fs::File::create(&tmp).map_err(err)?;
        file.write_all(&text).map_err(err)?;
        file.sync_all().map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)?;
        self.sync_dir().map_err(err)?;
        Ok(path)
    }

    /// Removes a cycle's file once its outcomes are committed.
    pub fn clear(&self, path: &Path) -> Result<(), JournalError> {
        let err = |source| JournalError {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::remove_file(path) {
            Ok(()) => self.sync_dir().map_err(err),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(err(e)),
        }
    }

    /// The files of cycles that did not finish, oldest first. A file whose
    /// write never completed (`.tmp`) was written before any act: dropped. One
    /// that does not parse is moved aside to `.corrupt` and logged.
    pub fn pending(&self) -> Vec<Pending> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        names.sort();
        let mut out = Vec::new();
        for path in names {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".intents.tmp") {
                // Its rename never happened: no act started after it.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(".intents") {
                continue;
            }
            let parsed = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Vec<Intent>>(&b).map_err(|e| e.to_string()));
            match parsed {
                Ok(intents) => out.push(Pending { path, intents }),
                Err(e) => {
                    let aside = path.with_extension("intents.corrupt");
                    tracing::error!(file = %path.display(), error = %e, aside = %aside.display(), "an intent file cannot be read; moved aside");
                    let _ = std::fs::rename(&path, &aside);
                }
            }
        }
        out
    }

    fn sync_dir(&self) -> std::io::Result<()> {
        std::fs::File::open(&self.dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(n: u64) -> Intent {
        Intent {
            record_id: format!("r-{n}"),
            run_id: "run".into(),
            cycle: n,
            container_id: format!("{n:064}"),
            container_name: format!("cpu-{n}"),
            container_type: "cpu".into(),
            action: "kill".into(),
            reason: "surplus".into(),
        }
    }

    #[test]
    fn a_written_file_is_pending_until_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("intents")).unwrap();
        let a = j.write("run", 1, &[intent(1), intent(2)]).unwrap();
        let b = j.write("run", 2, &[intent(3)]).unwrap();
        // A reopened journal (gestor started again) finds both, in order.
        let j = Journal::open(&dir.path().join("intents")).unwrap();
        let pending = j.pending();
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[0].intents, vec![intent(1), intent(2)]);
        assert_eq!(pending[1].intents, vec![intent(3)]);
        j.clear(&a).unwrap();
        j.clear(&a).unwrap();
        assert_eq!(j.pending().len(), 1);
        j.clear(&b).unwrap();
        assert!(j.pending().is_empty());
    }

    #[test]
    fn unfinished_and_corrupt_files_are_not_intents() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("run-000000000001.intents.tmp"), b"[{").unwrap();
        std::fs::write(dir.path().join("run-000000000002.intents"), b"not json").unwrap();
        assert!(j.pending().is_empty());
        // The corrupt one is kept aside, not deleted.
        assert!(dir.path().join("run-000000000002.intents.corrupt").exists());
        assert!(!dir.path().join("run-000000000001.intents.tmp").exists());
    }
}

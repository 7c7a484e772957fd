//! One gestor per spool directory.
//!
//! Two gestors on one spool (a `gestor once` beside the daemon) would number
//! their segments from the same sequence and overwrite each other's. The
//! first takes an exclusive `flock` and holds it for its life; the kernel
//! releases it when the process ends, however it ends, so a crash leaves no
//! stale lock behind.
//!
//! The lock is taken on the directory itself rather than on a file in it:
//! a read-only spool (a case gestor must survive) has no room for a lock
//! file, yet two gestors must still not share it once it is writable again.
//! The holder writes its pid to `gestor.pid` when it can, and the kernel's
//! `/proc/locks` names it in any case, so the one refused can say who holds
//! the spool.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where the holder writes its pid (information only: the lock is the
/// directory's `flock`).
pub const PID_FILE: &str = "gestor.pid";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "the spool {} is in use by another gestor{}; give this one its own --spool-dir",
        dir.display(),
        holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Busy { dir: PathBuf, holder: Option<u32> },
    #[error("cannot lock the spool {}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// The held lock: dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct SpoolLock {
    _dir: File,
}

impl SpoolLock {
    /// Creates `dir` if needed and locks it, without waiting.
    pub fn acquire(dir: &Path) -> Result<SpoolLock, LockError> {
        let io = |source| LockError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let handle = File::open(dir).map_err(io)?;
        // A lock this process let go of may still be held for a moment by a
        // child it forked (the child holds a copy of the descriptor until it
        // execs, which closes it): when the holder is this very process, a
        // few more tries over half a second tell that from a real holder.
        let mut tries = 0;
        loop {
            // SAFETY: flock on a descriptor this function owns; no memory involved.
            let rc = unsafe { libc::flock(handle.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io(e));
            }
            let holder = holder_pid(dir, &handle);
            tries += 1;
            if holder != Some(std::process::id()) || tries >= 50 {
                return Err(LockError::Busy {
                    dir: dir.to_path_buf(),
                    holder,
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // Best effort: a read-only spool cannot take it, and /proc/locks
        // names the holder anyway.
        let _ = std::fs::write(dir.join(PID_FILE), format!("{}\n", std::process::id()));
        Ok(SpoolLock { _dir: handle })
    }
}

/// The pid of the process holding `dir`'s lock: the kernel's word first,
/// then what the holder wrote.
fn holder_pid(dir: &Path, handle: &File) -> Option<u32> {
    let from_kernel = handle.metadata().ok().and_then(|m| {
        let locks = std::fs::read_to_string("/proc/locks").ok()?;
        flock_holder(&locks, m.dev(), m.ino())
    });
    from_kernel.or_else(|| {
        std::fs::read_to_string(dir.join(PID_FILE))
            .ok()?
            .trim()
            .parse()
            .ok()
    })
}

/// The pid holding an exclusive `flock` on the inode (`dev`, `ino`), from
/// the text of `/proc/locks` (`1: FLOCK  ADVISORY  WRITE 1234 fe:00:5669026
/// 0 EOF`; waiters' lines carry `->` and are skipped). The device is printed
/// as hexadecimal major:minor.
pub fn flock_holder(proc_locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let want = format!("{:02x}:{:02x}:{ino}", libc::major(dev), libc::minor(dev));
    proc_locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [_, "FLOCK", _, "WRITE", pid, file, ..] if *file == want => {
                pid.parse::<u32>().ok().filter(|&p| p > 0)
            }
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let held = SpoolLock::acquire(&spool).unwrap();
        // flock conflicts between open file descriptions, even in one process.
        let err = SpoolLock::acquire(&spool).unwrap_err();
        assert!(
            matches!(&err, LockError::Busy { holder: Some(p), .. } if *p == std::process::id()),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains(&spool.display().to_string()), "{text}");
        assert!(
            text.contains(&format!("(pid {})", std::process::id())),
            "{text}"
        );
        assert!(
            text.ends_with("give this one its own --spool-dir"),
            "{text}"
        );
        drop(held);
        SpoolLock::acquire(&spool).expect("free again once the holder is gone");
    }

    #[test]
    fn a_directory_that_cannot_be_created_is_an_io_error() {
        let err = SpoolLock::acquire(Path::new("/proc/gestor-cannot-create")).unwrap_err();
        assert!(matches!(err, LockError::Io { .. }), "{err:?}");
    }

    #[test]
    fn the_holder_is_read_from_proc_locks() {
        let text = "1: FLOCK  ADVISORY  WRITE 16822 fe:00:5669026 0 EOF\n\
                    1: -> FLOCK  ADVISORY  WRITE 777 fe:00:42 0 EOF\n\
                    2: POSIX  ADVISORY  WRITE 555 fe:00:42 0 EOF\n\
                    3: FLOCK  ADVISORY  READ 666 fe:00:42 0 EOF\n\
                    4: FLOCK  ADVISORY  WRITE 4823 fe:00:42 0 EOF\n";
        let dev = libc::makedev(0xfe, 0);
        assert_eq!(flock_holder(text, dev, 42), Some(4823));
        assert_eq!(flock_holder(text, dev, 5669026), Some(16822));
        assert_eq!(flock_holder(text, dev, 43), None);
        assert_eq!(flock_holder(text, libc::makedev(8, 1), 42), None);
    }
}

//! The collector's cache: each process's cgroup and command line (which
//! almost never change while it lives), kept between snapshots by pid,
//! `/proc/<pid>` inode and start time, and read again every
//! [`IDENTITY_REFRESH_READS`] collections.

use std::collections::HashMap;

/// A process's cgroup and command line, as last read.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Identity {
    /// (container ID, cgroup path) when in a container.
    pub(super) container: Option<(String, String)>,
    /// The cgroup path to show for a process outside any container.
    pub(super) display_cgroup: String,
    pub(super) cmdline: String,
    /// The command line was longer than what is reported.
    pub(super) cmdline_truncated: bool,
    /// The cgroup path was longer than what is reported.
    pub(super) cgroup_truncated: bool,
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
pub(super) struct Cached {
    ino: u64,
    starttime: u64,
    identity: Identity,
    read_at: u64,
    seen: u64,
}

/// The identities of the processes of the last collections, by pid.
#[derive(Debug, Default)]
pub(super) struct ProcessCache {
    pub(super) entries: HashMap<u32, Cached>,
    /// The number of the collection under way.
    pub(super) read: u64,
}

impl ProcessCache {
    pub(super) fn due(&self, c: &Cached) -> bool {
        self.read - c.read_at >= IDENTITY_REFRESH_READS
    }

    /// True when `pid` is the same process as before (same directory
    /// inode), known to be outside any container: nothing of it needs
    /// reading, not even its stat.
    pub(super) fn known_outside(&mut self, pid: u32, ino: u64) -> bool {
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
    pub(super) fn fresh(&mut self, pid: u32, starttime: u64) -> Option<Identity> {
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

    pub(super) fn keep(&mut self, pid: u32, ino: u64, starttime: u64, identity: Identity) {
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
    pub(super) fn sweep(&mut self) {
        let read = self.read;
        self.entries.retain(|_, c| c.seen == read);
    }
}

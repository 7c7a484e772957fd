//! Each container's own cgroup counters: the CPU time the kernel charged to
//! its cgroup, and the tmpfs/shm pages in it.
//!
//! The snapshot counts processes. Two things escape a count of processes:
//! the CPU of children reaped automatically (`SIGCHLD` ignored: nothing
//! reaches a parent's `cutime`), and memory in the container's tmpfs or
//! `/dev/shm` (no process's resident set holds it). The cgroup counts both,
//! for every process it ever ran. So after each snapshot gestor reads, per
//! container, `cpuacct.usage` (cgroup v1) or `cpu.stat`'s `usage_usec` (v2),
//! and `memory.stat`'s `total_shmem` (v1) or `shmem` (v2), under the cgroup
//! filesystem root (`/sys/fs/cgroup`, or the host's mounted elsewhere when
//! gestor runs in a container).
//!
//! The container's cgroup directory comes from its processes' cgroup path,
//! cut after the component that names the container (a container may make
//! sub-cgroups: `/docker/<id>/init.scope`). A path seen from inside a cgroup
//! namespace (`/../<id>`) cannot be placed under the root: such a container
//! has no counters, and its figures come from its processes alone. Anything
//! unreadable is simply absent, never zero.

use crate::collect::snapshot::{CgroupCounters, Snapshot};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Largest counter file read (`memory.stat` is about 1 KiB).
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// The layout of the cgroup filesystem under the root.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Layout {
    /// cgroup v2: one hierarchy at the root.
    Unified,
    /// cgroup v1: the directories of the `cpuacct` and `memory` hierarchies
    /// (either may be missing).
    V1 {
        cpuacct: Option<PathBuf>,
        memory: Option<PathBuf>,
    },
}

/// Reads containers' cgroup counters under one root.
#[derive(Debug, Clone)]
pub struct CgroupReader {
    root: PathBuf,
    layout: Layout,
}

/// The containers of a snapshot and the cgroup path of one of their processes.
pub fn container_paths(snapshot: &Snapshot) -> Vec<(String, String)> {
    let mut dirs: HashMap<&str, &str> = HashMap::new();
    for p in &snapshot.processes {
        if let Some(id) = p.container_id.as_deref() {
            dirs.entry(id).or_insert(p.cgroup.as_str());
        }
    }
    dirs.into_iter()
        .map(|(id, path)| (id.to_string(), path.to_string()))
        .collect()
}

impl CgroupReader {
    /// A reader of the cgroup filesystem at `root`; its layout is found now
    /// (a root with `cgroup.controllers` is v2).
    pub fn new(root: &Path) -> CgroupReader {
        let layout = if root.join("cgroup.controllers").is_file() {
            Layout::Unified
        } else {
            let first_dir =
                |names: &[&str]| names.iter().map(|n| root.join(n)).find(|d| d.is_dir());
            Layout::V1 {
                cpuacct: first_dir(&["cpuacct", "cpu,cpuacct", "cpuacct,cpu"]),
                memory: first_dir(&["memory"]),
            }
        };
        CgroupReader {
            root: root.to_path_buf(),
            layout,
        }
    }

    /// The counters of each container, by ID, from the cgroup path of one of
    /// its processes (`container_paths`). Blocking file reads.
    pub fn read(&self, containers: &[(String, String)]) -> HashMap<String, CgroupCounters> {
        containers
            .iter()
            .filter_map(|(id, path)| {
                let dir = container_dir(path, id)?;
                let c = read_counters(&self.root, &self.layout, dir);
                (c != CgroupCounters::default()).then(|| (id.clone(), c))
            })
            .collect()
    }

    /// Fills `snapshot.cgroups` (see [`CgroupReader::read`]).
    pub fn read_into(&self, snapshot: &mut Snapshot) {
        snapshot.cgroups = self.read(&container_paths(snapshot));
    }
}

/// The container's own cgroup directory (relative, no leading `/`): `path`
/// cut after the component that names `id`; `None` when no component does,
/// or when the path climbs out of a cgroup namespace (`..`).
fn container_dir<'a>(path: &'a str, id: &str) -> Option<&'a str> {
    let mut end = None;
    let mut at = 0;
    for part in path.split('/') {
        if part == ".." {
            return None;
        }
        at += part.len();
        if part.contains(id) {
            end = Some(at);
            break;
        }
        at += 1;
    }
    Some(path[..end?].trim_start_matches('/'))
}

fn read_counters(root: &Path, layout: &Layout, dir: &str) -> CgroupCounters {
    match layout {
        Layout::Unified => {
            let base = root.join(dir);
            CgroupCounters {
                cpu_usage_ns: read_small(&base.join("cpu.stat"))
                    .and_then(|t| stat_value(&t, "usage_usec"))
                    .and_then(|us| us.checked_mul(1_000)),
                shmem_bytes: read_small(&base.join("memory.stat"))
                    .and_then(|t| stat_value(&t, "shmem")),
            }
        }
        Layout::V1 { cpuacct, memory } => CgroupCounters {
            cpu_usage_ns: cpuacct
                .as_ref()
                .and_then(|d| read_small(&d.join(dir).join("cpuacct.usage")))
                .and_then(|t| t.trim().parse().ok()),
            shmem_bytes: memory
                .as_ref()
                .and_then(|d| read_small(&d.join(dir).join("memory.stat")))
                .and_then(|t| stat_value(&t, "total_shmem").or_else(|| stat_value(&t, "shmem"))),
        },
    }
}

/// A small cgroup file's text; `None` when it cannot be read.
fn read_small(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_FILE_BYTES)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// The value of `key` in a `key value` per line file (`cpu.stat`, `memory.stat`).
fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::snapshot::Process;

    const ID: &str = "a5965c2060b9d063b96b7b09d23fa0eef7e01be99223c7940294c5d648881461";

    #[test]
    fn the_container_dir_is_cut_after_the_component_that_names_it() {
        let cases = [
            (format!("/docker/{ID}"), Some(format!("docker/{ID}"))),
            (
                format!("/docker/{ID}/init.scope"),
                Some(format!("docker/{ID}")),
            ),
            (
                format!("/system.slice/docker-{ID}.scope"),
                Some(format!("system.slice/docker-{ID}.scope")),
            ),
            (format!("/../{ID}"), None),
            ("/user.slice".to_string(), None),
        ];
        for (path, want) in cases {
            assert_eq!(container_dir(&path, ID).map(String::from), want, "{path}");
        }
    }

    #[test]
    fn stat_files_are_read_by_key() {
        let text = "cache 4096\nrss 8192\nshmem 12288\ntotal_shmem 16384\n";
        assert_eq!(stat_value(text, "shmem"), Some(12288));
        assert_eq!(stat_value(text, "total_shmem"), Some(16384));
        assert_eq!(stat_value(text, "swap"), None);
        assert_eq!(stat_value("usage_usec x\n", "usage_usec"), None);
    }

    fn snapshot_with(path: &str) -> Snapshot {
        let json = crate::collect::snapshot::tests::sample_json();
        let mut s = crate::collect::snapshot::parse(json.as_bytes()).unwrap();
        s.processes = vec![Process {
            pid: 7,
            container_id: Some(ID.into()),
            cgroup: path.into(),
            ..Default::default()
        }];
        s
    }

    #[test]
    fn v1_and_v2_trees_are_read_and_missing_files_are_absent() {
        let v1 = tempfile::tempdir().unwrap();
        let cpu = v1.path().join("cpu,cpuacct/docker").join(ID);
        let mem = v1.path().join("memory/docker").join(ID);
        std::fs::create_dir_all(&cpu).unwrap();
        std::fs::create_dir_all(&mem).unwrap();
        std::fs::write(cpu.join("cpuacct.usage"), "123456789\n").unwrap();
        std::fs::write(mem.join("memory.stat"), "shmem 1\ntotal_shmem 4096\n").unwrap();
        let mut s = snapshot_with(&format!("/docker/{ID}/init.scope"));
        CgroupReader::new(v1.path()).read_into(&mut s);
        assert_eq!(
            s.cgroups[ID],
            CgroupCounters {
                cpu_usage_ns: Some(123_456_789),
                shmem_bytes: Some(4096),
            }
        );

        let v2 = tempfile::tempdir().unwrap();
        std::fs::write(v2.path().join("cgroup.controllers"), "cpu memory\n").unwrap();
        let dir = v2.path().join(format!("system.slice/docker-{ID}.scope"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cpu.stat"), "usage_usec 2500\nuser_usec 2000\n").unwrap();
        let mut s = snapshot_with(&format!("/system.slice/docker-{ID}.scope"));
        CgroupReader::new(v2.path()).read_into(&mut s);
        assert_eq!(
            s.cgroups[ID],
            CgroupCounters {
                cpu_usage_ns: Some(2_500_000),
                shmem_bytes: None,
            }
        );

        // Nothing readable: no entry, so the figures come from the processes.
        let mut s = snapshot_with(&format!("/../{ID}"));
        CgroupReader::new(v2.path()).read_into(&mut s);
        assert!(s.cgroups.is_empty());
    }
}

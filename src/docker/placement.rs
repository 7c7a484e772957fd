//! Confirms each process's container against the cgroup Docker itself gave
//! that container.
//!
//! A snapshot names a process's container from a 64-hex component of its
//! cgroup path. Container IDs are no secret (every `/proc/*/cgroup` shows
//! them), and where cgroup subtrees are delegated (systemd user sessions,
//! rootless engines) any user can make a cgroup named after a real
//! container and have their processes counted as that container's. So a
//! process counts for container `<id>` only when its path lies where the
//! engine puts `<id>`:
//!
//! - cgroupfs driver: `<parent>/<id>`, `<parent>` being the container's
//!   `CgroupParent` or `/docker`;
//! - systemd driver: `<slice path>/docker-<id>.scope`, the slice being the
//!   container's `CgroupParent` or `system.slice` (`a-b.slice` lives at
//!   `/a.slice/a-b.slice`);
//! - seen from a cgroup namespace of gestor's own (gestor in a container of
//!   the same engine, default parent): `/../<id>` or `/../docker-<id>.scope`,
//!   a sibling of gestor's own cgroup.
//!
//! Sub-cgroups a container makes below its own are still that container's
//! (`/docker/<id>/init.scope`, Docker in Docker).
//!
//! The pure part decides from plain values; [`CgroupCheck`] asks Docker for
//! the driver (once) and for a container's parent (only when a path does not
//! fit the default one).

use crate::collect::snapshot::Snapshot;
use crate::docker::client::{CgroupDriver, DockerClient};
use std::collections::{HashMap, HashSet};

/// The cgroup path of a systemd slice unit: `a-b-c.slice` is
/// `/a.slice/a-b.slice/a-b-c.slice`; `-.slice` is the root.
fn slice_path(slice: &str) -> String {
    let name = slice.trim_matches('/');
    let Some(stem) = name.strip_suffix(".slice") else {
        return format!("/{name}");
    };
    if stem == "-" || stem.is_empty() {
        return String::new();
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push('/');
        path.push_str(&prefix);
        path.push_str(".slice");
    }
    path
}

/// `path` is `base` or lies below it.
fn at_or_below(path: &str, base: &str) -> bool {
    path.strip_prefix(base)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether `path` is where the engine puts container `id` (or below it).
/// `driver`: `None` when the engine could not say; then either driver's
/// default place is accepted. `parent`: the container's `CgroupParent`,
/// `None` for the default.
pub fn docker_placed(
    path: &str,
    id: &str,
    driver: Option<CgroupDriver>,
    parent: Option<&str>,
) -> bool {
    let cgroupfs = || {
        let base = match parent {
            Some(p) => format!("/{}/{id}", p.trim_matches('/')),
            None => format!("/docker/{id}"),
        };
        at_or_below(path, &base) || (parent.is_none() && at_or_below(path, &format!("/../{id}")))
    };
    let systemd = || {
        let unit = format!("docker-{id}.scope");
        let base = format!("{}/{unit}", slice_path(parent.unwrap_or("system.slice")));
        at_or_below(path, &base) || (parent.is_none() && at_or_below(path, &format!("/../{unit}")))
    };
    match driver {
        Some(CgroupDriver::Cgroupfs) => cgroupfs(),
        Some(CgroupDriver::Systemd) => systemd(),
        None => cgroupfs() || systemd(),
    }
}

/// A process whose container was not confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub pid: u32,
    pub container_id: String,
    pub cgroup: String,
}

/// Takes the container away from every process of a `known` container whose
/// path is not where the engine placed it (`parents`: the containers'
/// `CgroupParent`s learnt so far; absent means the default). Processes of
/// containers the engine does not know are left as they are: nothing is
/// decided about them. Returns what was refused.
pub fn refuse_misplaced(
    snapshot: &mut Snapshot,
    known: &HashSet<&str>,
    driver: Option<CgroupDriver>,
    parents: &HashMap<String, Option<String>>,
) -> Vec<Refusal> {
    let mut refused = Vec::new();
    for p in &mut snapshot.processes {
        let Some(id) = p.container_id.as_deref() else {
            continue;
        };
        if !known.contains(id) {
            continue;
        }
        let parent = parents.get(id).cloned().flatten();
        if !docker_placed(&p.cgroup, id, driver, parent.as_deref()) {
            refused.push(Refusal {
                pid: p.pid,
                container_id: id.to_string(),
                cgroup: p.cgroup.clone(),
            });
            p.container_id = None;
        }
    }
    refused
}

/// The containers with a process outside the engine's default place whose
/// parent has not been asked yet.
fn parents_to_ask(
    snapshot: &Snapshot,
    known: &HashSet<&str>,
    driver: Option<CgroupDriver>,
    parents: &HashMap<String, Option<String>>,
) -> Vec<String> {
    let mut ask: Vec<String> = snapshot
        .processes
        .iter()
        .filter_map(|p| Some((p, p.container_id.as_deref()?)))
        .filter(|(p, id)| {
            known.contains(id)
                && !parents.contains_key(*id)
                && !docker_placed(&p.cgroup, id, driver, None)
        })
        .map(|(_, id)| id.to_string())
        .collect();
    ask.sort();
    ask.dedup();
    ask
}

/// At most this many containers' parents are asked in one cycle (an inspect
/// each); the rest are refused this cycle and asked in the next.
const PARENTS_PER_CYCLE: usize = 8;

/// How long all of one cycle's parent lookups may take together.
const PARENT_LOOKUPS_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);

/// What the daemon keeps between cycles to confirm processes.
#[derive(Default)]
pub struct CgroupCheck {
    driver: Option<CgroupDriver>,
    /// `CgroupParent` of the containers whose processes were found outside
    /// the default place (`None`: the default after all).
    parents: HashMap<String, Option<String>>,
    /// (pid, container) pairs already reported, so each is logged once.
    reported: HashSet<(u32, String)>,
}

impl CgroupCheck {
    /// Confirms the snapshot's processes against the engine (see the module
    /// documentation); `containers`: the IDs the engine listed this cycle.
    /// Returns what was refused, each logged once.
    pub async fn confirm(
        &mut self,
        docker: &DockerClient,
        snapshot: &mut Snapshot,
        containers: &HashSet<&str>,
    ) -> Vec<Refusal> {
        if self.driver.is_none() {
            match docker.cgroup_driver().await {
                Ok(d) => {
                    tracing::info!(driver = ?d, "Docker's cgroup driver");
                    self.driver = Some(d);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot ask Docker's cgroup driver; either driver's default place is accepted this cycle")
                }
            }
        }
        let ask = parents_to_ask(snapshot, containers, self.driver, &self.parents);
        // Bounded in total, not per call: a slow engine costs the cycle at
        // most PARENT_LOOKUPS_BUDGET, whatever the number of lookups.
        let give_up = tokio::time::Instant::now() + PARENT_LOOKUPS_BUDGET;
        for id in ask.into_iter().take(PARENTS_PER_CYCLE) {
            let asked = tokio::time::timeout_at(give_up, docker.cgroup_parent(&id)).await;
            match asked {
                Ok(Ok(parent)) => {
                    self.parents.insert(id, parent);
                }
                Ok(Err(e)) => {
                    tracing::warn!(id = %crate::docker::container::short_id(&id), error = %e, "cannot ask a container's cgroup parent; its processes outside the default place are not counted this cycle")
                }
                Err(_) => {
                    tracing::warn!(
                        budget_s = PARENT_LOOKUPS_BUDGET.as_secs(),
                        "the cgroup parent lookups ran out of time; the rest are asked next cycle"
                    );
                    break;
                }
            }
        }
        self.parents
            .retain(|id, _| containers.contains(id.as_str()));
        let refused = refuse_misplaced(snapshot, containers, self.driver, &self.parents);
        let live: HashSet<(u32, String)> = refused
            .iter()
            .map(|r| (r.pid, r.container_id.clone()))
            .collect();
        for r in &refused {
            if !self.reported.contains(&(r.pid, r.container_id.clone())) {
                tracing::warn!(
                    pid = r.pid,
                    container = %crate::docker::container::short_id(&r.container_id),
                    cgroup = %r.cgroup,
                    "PROCESS NOT COUNTED: its cgroup names a container but is not where Docker placed that container"
                );
            }
        }
        self.reported = live;
        refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::snapshot::Process;
    use CgroupDriver::{Cgroupfs, Systemd};

    const ID: &str = "a5965c2060b9d063b96b7b09d23fa0eef7e01be99223c7940294c5d648881461";
    const OTHER: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn the_engines_default_places() {
        let placed = [
            (format!("/docker/{ID}"), Some(Cgroupfs)),
            (format!("/docker/{ID}/init.scope"), Some(Cgroupfs)),
            (format!("/docker/{ID}/docker/{OTHER}"), Some(Cgroupfs)),
            (format!("/system.slice/docker-{ID}.scope"), Some(Systemd)),
            // Seen from gestor's own cgroup namespace.
            (format!("/../{ID}"), Some(Cgroupfs)),
            (format!("/../docker-{ID}.scope"), Some(Systemd)),
            // Not knowing the driver: either default place.
            (format!("/docker/{ID}"), None),
            (format!("/system.slice/docker-{ID}.scope"), None),
        ];
        for (path, driver) in &placed {
            assert!(docker_placed(path, ID, *driver, None), "{path} {driver:?}");
        }
    }

    #[test]
    fn decoys_and_near_misses_are_refused() {
        let decoys = [
            format!("/user.slice/user-1000.slice/user@1000.service/x/{ID}"),
            format!("/user.slice/user-1000.slice/user@1000.service/docker/{ID}"),
            format!("/user.slice/docker-{ID}.scope"),
            format!("/x/docker/{ID}"),
            format!("/docker/{OTHER}"),
            format!("/docker/{ID}x"),
            format!("/docker/{}", &ID[..63]),
            format!("/docker/{ID}.scope"),
            format!("/../../{ID}"),
            format!("/../x/{ID}"),
            format!("/system.slice/docker-{ID}.scopeX"),
            format!("/docker/{}", ID.to_uppercase()),
            "/".to_string(),
            String::new(),
        ];
        for d in &decoys {
            assert!(!docker_placed(d, ID, Some(Cgroupfs), None), "{d}");
            assert!(!docker_placed(d, ID, Some(Systemd), None), "{d}");
            assert!(!docker_placed(d, ID, None, None), "{d}");
        }
        // The right place for the other driver is the wrong one for this one.
        for (path, driver) in [
            (format!("/docker/{ID}"), Systemd),
            (format!("/system.slice/docker-{ID}.scope"), Cgroupfs),
        ] {
            assert!(!docker_placed(&path, ID, Some(driver), None), "{path}");
        }
    }

    #[test]
    fn a_containers_own_cgroup_parent() {
        assert_eq!(slice_path("ci-jobs.slice"), "/ci.slice/ci-jobs.slice");
        assert_eq!(slice_path("-.slice"), "");
        let cases = [
            (format!("/ci/jobs/{ID}"), Cgroupfs, "/ci/jobs", true),
            (format!("/ci/jobs/{ID}"), Cgroupfs, "ci/jobs/", true),
            (format!("/docker/{ID}"), Cgroupfs, "/ci/jobs", false),
            // No relative form for a parent of its own: gestor is not its sibling.
            (format!("/../{ID}"), Cgroupfs, "/ci", false),
            (
                format!("/ci.slice/ci-jobs.slice/docker-{ID}.scope"),
                Systemd,
                "ci-jobs.slice",
                true,
            ),
            (
                format!("/system.slice/docker-{ID}.scope"),
                Systemd,
                "ci-jobs.slice",
                false,
            ),
        ];
        for (path, driver, parent, placed) in &cases {
            assert_eq!(
                docker_placed(path, ID, Some(*driver), Some(parent)),
                *placed,
                "{path} {driver:?} parent {parent}"
            );
        }
    }

    fn snapshot_of(processes: Vec<Process>) -> Snapshot {
        Snapshot {
            version: 2,
            source: crate::collect::snapshot::SourceKind::Userspace,
            timestamp_ns: 0,
            uptime_ns: 0,
            system: Default::default(),
            processes,
            cgroups: Default::default(),
        }
    }

    fn process(pid: u32, id: &str, cgroup: &str) -> Process {
        Process {
            pid,
            container_id: Some(id.into()),
            cgroup: cgroup.into(),
            ..Default::default()
        }
    }

    #[test]
    fn only_misplaced_processes_of_known_containers_lose_their_container() {
        let mut snapshot = snapshot_of(vec![
            process(1, ID, &format!("/docker/{ID}")),
            process(2, ID, &format!("/home/docker/{ID}")),
            process(3, OTHER, &format!("/elsewhere/docker/{OTHER}")),
            process(4, OTHER, &format!("/ci/{OTHER}")),
        ]);
        let known: HashSet<&str> = [ID, OTHER].into();
        let mut parents = HashMap::new();
        assert_eq!(
            parents_to_ask(&snapshot, &known, Some(Cgroupfs), &parents),
            vec![OTHER.to_string(), ID.to_string()]
        );
        parents.insert(ID.to_string(), None);
        parents.insert(OTHER.to_string(), Some("/ci".to_string()));
        let refused = refuse_misplaced(&mut snapshot, &known, Some(Cgroupfs), &parents);
        assert_eq!(
            refused.iter().map(|r| r.pid).collect::<Vec<_>>(),
            vec![2, 3]
        );
        let kept: Vec<_> = snapshot
            .processes
            .iter()
            .map(|p| p.container_id.is_some())
            .collect();
        assert_eq!(kept, vec![true, false, false, true]);
        // A container the engine did not list: nothing decided.
        let mut snapshot = snapshot_of(vec![process(5, ID, "/anywhere")]);
        assert!(
            refuse_misplaced(&mut snapshot, &HashSet::new(), Some(Cgroupfs), &parents).is_empty()
        );
        assert!(snapshot.processes[0].container_id.is_some());
    }
}

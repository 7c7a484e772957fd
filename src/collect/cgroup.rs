//! Container IDs from cgroup paths.
//!
//! A process belongs to a container when one component of its cgroup path
//! names the container, in one of the layouts the container engines use:
//!
//! - Docker, systemd driver (cgroup v1 or v2): `docker-<id>.scope`, as in
//!   `/system.slice/docker-<id>.scope`;
//! - Docker, cgroupfs driver: a bare `<id>` right under `docker`, as in
//!   `/docker/<id>` or `/docker/<id>/init.scope` (this machine's layout);
//! - containerd's CRI plugin (Kubernetes): `cri-containerd-<id>.scope`, as in
//!   `/kubepods.slice/kubepods-burstable.slice/.../cri-containerd-<id>.scope`;
//! - Podman: `libpod-<id>.scope`, as in `/machine.slice/libpod-<id>.scope`.
//!
//! When the reader sits in a cgroup namespace of its own (gestor in a
//! container on a cgroup v2 host, with the cgroupfs driver), another
//! container's path is shown relative to that namespace's root: `/../<id>`,
//! the reader's sibling under `/docker`. A bare `<id>` right under `..` is
//! matched too.
//!
//! `<id>` is exactly 64 lowercase hex digits. Podman's `libpod-conmon-<id>.scope`
//! holds the container monitor, which runs outside the container, so it does
//! not count (it falls out naturally: `conmon-<id>` is not an ID).
//!
//! Components are read from the root down and the first match wins, so with
//! nested engines (Docker in Docker: `/docker/<outer>/docker/<inner>`) the ID
//! is the outer one, the container the host's engine knows.
//!
//! Everything here is a pure function of strings; reading `/proc/<pid>/cgroup`
//! lives in `procfs.rs`.

use crate::collect::snapshot::is_container_id;

/// Prefixes of the `<prefix><id>.scope` systemd units that hold a container.
const SCOPE_PREFIXES: [&str; 3] = ["docker-", "cri-containerd-", "libpod-"];

/// The parent directory of a bare `<id>` component (cgroupfs driver), and
/// how it looks from inside a container's own cgroup namespace.
const CGROUPFS_PARENTS: [&str; 2] = ["docker", ".."];

/// The container ID a single path component names, if any.
fn id_from_component<'a>(component: &'a str, parent: Option<&str>) -> Option<&'a str> {
    if parent.is_some_and(|p| CGROUPFS_PARENTS.contains(&p)) && is_container_id(component) {
        return Some(component);
    }
    let unit = component.strip_suffix(".scope")?;
    SCOPE_PREFIXES
        .iter()
        .find_map(|prefix| unit.strip_prefix(prefix))
        .filter(|id| is_container_id(id))
}

/// The full 64-hex container ID a cgroup path names, or `None` when the path
/// is not inside a container (see the module documentation for the layouts).
pub fn container_id_from_cgroup(path: &str) -> Option<String> {
    let mut parent = None;
    for component in path.split('/').filter(|c| !c.is_empty()) {
        if let Some(id) = id_from_component(component, parent) {
            return Some(id.to_string());
        }
        parent = Some(component);
    }
    None
}

/// One line of `/proc/<pid>/cgroup`: `hierarchy-ID:controller-list:path`
/// (cgroup v1) or `0::path` (cgroup v2). Returns (hierarchy ID, path).
fn split_line(line: &str) -> Option<(&str, &str)> {
    let mut fields = line.splitn(3, ':');
    let hierarchy = fields.next()?;
    let _controllers = fields.next()?;
    let path = fields.next()?;
    Some((hierarchy, path))
}

/// Finds the container a process is in from the text of its
/// `/proc/<pid>/cgroup`: the first line (in file order) whose path names a
/// container. Returns the 64-hex ID and the whole cgroup path of that line.
pub fn container_from_proc_cgroup(contents: &str) -> Option<(String, String)> {
    contents
        .lines()
        .filter_map(split_line)
        .find_map(|(_, path)| container_id_from_cgroup(path).map(|id| (id, path.to_string())))
}

/// The cgroup path to report for a process outside any container: the cgroup
/// v2 (`0::`) path when there is one, else the path of the first line, else "".
pub fn display_path(contents: &str) -> &str {
    let mut first = None;
    for (hierarchy, path) in contents.lines().filter_map(split_line) {
        if hierarchy == "0" {
            return path;
        }
        first.get_or_insert(path);
    }
    first.unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: &str = "a5965c2060b9d063b96b7b09d23fa0eef7e01be99223c7940294c5d648881461";
    const ID2: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn id(path: &str) -> Option<String> {
        container_id_from_cgroup(path)
    }

    #[test]
    fn docker_systemd_driver() {
        assert_eq!(
            id(&format!("/system.slice/docker-{ID}.scope")).as_deref(),
            Some(ID)
        );
    }

    #[test]
    fn docker_cgroupfs_driver_and_nested_cgroups() {
        assert_eq!(id(&format!("/docker/{ID}")).as_deref(), Some(ID));
        assert_eq!(id(&format!("/docker/{ID}/")).as_deref(), Some(ID));
        assert_eq!(id(&format!("/docker/{ID}/init.scope")).as_deref(), Some(ID));
        assert_eq!(
            id(&format!("/docker/{ID}/system.slice/cron.service")).as_deref(),
            Some(ID)
        );
    }

    #[test]
    fn cgroupfs_seen_from_a_private_cgroup_namespace() {
        // gestor in a container of its own on a cgroup v2 host: a sibling
        // container's cgroup is one level above its namespace's root.
        assert_eq!(id(&format!("/../{ID}")).as_deref(), Some(ID));
        assert_eq!(id(&format!("/../{ID}/init.scope")).as_deref(), Some(ID));
        assert_eq!(
            container_from_proc_cgroup(&format!("0::/../{ID}\n")),
            Some((ID.to_string(), format!("/../{ID}")))
        );
        // Its own processes are at the namespace's root: not a container ID.
        assert_eq!(id("/"), None);
        assert_eq!(id("/.."), None);
    }

    #[test]
    fn docker_in_docker_reports_the_outer_container() {
        assert_eq!(
            id(&format!("/docker/{ID}/docker/{ID2}")).as_deref(),
            Some(ID)
        );
    }

    #[test]
    fn containerd_cri_under_kubepods() {
        assert_eq!(
            id(&format!("/system.slice/cri-containerd-{ID}.scope")).as_deref(),
            Some(ID)
        );
        let path = format!(
            "/kubepods.slice/kubepods-burstable.slice/\
             kubepods-burstable-pod8a7b6c5d_1234_5678_9abc_def012345678.slice/\
             cri-containerd-{ID}.scope"
        );
        assert_eq!(id(&path).as_deref(), Some(ID));
    }

    #[test]
    fn podman_container_but_not_conmon() {
        assert_eq!(
            id(&format!("/machine.slice/libpod-{ID}.scope")).as_deref(),
            Some(ID)
        );
        assert_eq!(
            id(&format!("/machine.slice/libpod-{ID}.scope/container")).as_deref(),
            Some(ID)
        );
        assert_eq!(
            id(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
            None
        );
    }

    #[test]
    fn paths_outside_containers() {
        for path in [
            "",
            "/",
            "/init.scope",
            "/user.slice/user-0.slice/session-1.scope",
            "/system.slice/docker.service",
            "/system.slice/containerd.service",
            "/docker",
            "/docker/",
        ] {
            assert_eq!(id(path), None, "{path}");
        }
    }

    #[test]
    fn near_misses_are_rejected() {
        let upper = ID.to_uppercase();
        let short = &ID[..63];
        let long = format!("{ID}0");
        let not_hex = format!("{}g", &ID[..63]);
        let cases = [
            format!("/docker/{short}"),
            format!("/docker/{long}"),
            format!("/docker/{upper}"),
            format!("/docker/{not_hex}"),
            format!("/system.slice/docker-{short}.scope"),
            format!("/system.slice/docker-{long}.scope"),
            format!("/system.slice/docker-{upper}.scope"),
            format!("/system.slice/docker-{ID}.scope.extra"),
            format!("/system.slice/docker-{ID}.service"),
            format!("/system.slice/docker-{ID}"),
            format!("/system.slice/docker{ID}.scope"),
            format!("/system.slice/xdocker-{ID}.scope"),
            format!("/system.slice/containerd-{ID}.scope"),
            // A bare ID is a container only right under `docker`.
            format!("/{ID}"),
            format!("/user.slice/{ID}"),
            format!("/dockerx/{ID}"),
            format!("/docker/x/{ID}"),
            format!("/docker-{ID}"),
            format!("/docker/ {ID}"),
            format!("/docker/{ID} "),
        ];
        for path in &cases {
            assert_eq!(id(path), None, "{path}");
        }
    }

    #[test]
    fn proc_cgroup_v1_hierarchy_lines() {
        let text = format!(
            "9:name=systemd:/docker/{ID}\n8:pids:/docker/{ID}\n4:memory:/docker/{ID}\n\
             1:cpu:/docker/{ID}\n0::/docker/{ID}\n"
        );
        assert_eq!(
            container_from_proc_cgroup(&text),
            Some((ID.to_string(), format!("/docker/{ID}")))
        );
    }

    #[test]
    fn proc_cgroup_v2_only() {
        let text = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(
            container_from_proc_cgroup(&text),
            Some((ID.to_string(), format!("/system.slice/docker-{ID}.scope")))
        );
    }

    #[test]
    fn proc_cgroup_first_matching_line_wins() {
        let text = format!(
            "12:cpuset:/\n11:cpu,cpuacct:/docker/{ID2}/x\n1:name=systemd:/docker/{ID}\n0::/\n"
        );
        assert_eq!(
            container_from_proc_cgroup(&text),
            Some((ID2.to_string(), format!("/docker/{ID2}/x")))
        );
    }

    #[test]
    fn proc_cgroup_path_may_contain_colons() {
        let text = format!("0::/weird:dir/docker-{ID}.scope\n");
        assert_eq!(
            container_from_proc_cgroup(&text),
            Some((ID.to_string(), format!("/weird:dir/docker-{ID}.scope")))
        );
    }

    #[test]
    fn proc_cgroup_outside_containers() {
        let host = "9:name=systemd:/\n8:pids:/\n1:cpu:/\n0::/\n";
        assert_eq!(container_from_proc_cgroup(host), None);
        assert_eq!(container_from_proc_cgroup(""), None);
        assert_eq!(
            container_from_proc_cgroup("garbage\nno colons here\n"),
            None
        );
        // An ID in the controller field is not a path.
        assert_eq!(container_from_proc_cgroup(&format!("1:{ID}:/\n")), None);
        // A line without the path field is ignored.
        assert_eq!(
            container_from_proc_cgroup(&format!("1:/docker/{ID}\n")),
            None
        );
    }

    #[test]
    fn display_path_prefers_the_unified_line() {
        assert_eq!(display_path("1:cpu:/a\n0::/user.slice\n"), "/user.slice");
        assert_eq!(display_path("2:memory:/m\n1:cpu:/a\n"), "/m");
        assert_eq!(display_path(""), "");
        assert_eq!(display_path("junk"), "");
    }

    proptest! {
        #[test]
        fn random_paths_never_panic(s in ".*") {
            let _ = container_id_from_cgroup(&s);
            let _ = container_from_proc_cgroup(&s);
            let _ = display_path(&s);
        }

        #[test]
        fn random_cgroup_shaped_text_never_panics(
            s in "([0-9]{0,2}:[a-z,=]{0,12}:(/(docker|[0-9a-f]{60,66}|docker-[0-9a-f]{64}\\.scope|x)){0,4}\n?){0,6}"
        ) {
            if let Some((found, path)) = container_from_proc_cgroup(&s) {
                prop_assert!(is_container_id(&found));
                prop_assert!(path.contains(&found));
                prop_assert!(s.contains(&path));
            }
        }

        #[test]
        fn any_id_is_found_in_each_layout(hex in "[0-9a-f]{64}") {
            for path in [
                format!("/docker/{hex}"),
                format!("/system.slice/docker-{hex}.scope"),
                format!("/kubepods.slice/cri-containerd-{hex}.scope"),
                format!("/machine.slice/libpod-{hex}.scope"),
            ] {
                let found = container_id_from_cgroup(&path);
                prop_assert_eq!(found.as_deref(), Some(hex.as_str()));
            }
        }
    }
}

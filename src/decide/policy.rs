//! The kill policy: a pure function of (usage, containers, config, now).
//!
//! For each type, keep at least `min_per_type` running managed containers —
//! those that use least of the type's own resource (ties: the newest) — and
//! kill the other managed ones, at most `max_kills_per_cycle` per cycle.
//! Managed containers that stopped (exited, dead, or created and never
//! started) and stayed so for `stopped_grace` seconds are removed: they are
//! never a type's keeper. Never a protected or unmanaged container, never the
//! log service, and nothing at all when this cycle's inputs could not be read.
//!
//! Every decision carries its reason as data ([`Reason`]); `Display` makes
//! the sentence the logs and records show.

use crate::collect::usage::Usage;
use crate::decide::plan::{Action, Plan, Verdict};
use crate::decide::reason::{Blocked, Figure, Reason};
use crate::decide::rules::Resource;
use crate::docker::container::{ActsOn, ContainerInfo, ContainerType, ExitFacts, Standing};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The default keeper margin: 10 % of the keeper's figure.
pub const DEFAULT_KEEPER_MARGIN: f64 = 0.10;

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    pub min_per_type: usize,
    pub max_kills_per_cycle: usize,
    /// Treat stress containers without gestor labels as managed.
    pub manage_unlabeled: bool,
    /// Names or IDs that are never killed, whatever their labels (the log service).
    pub never_kill: Vec<String>,
    /// Seconds a managed container may stay stopped before it is removed.
    pub stopped_grace_secs: i64,
    /// How much less (a share of its figure, 0..1) another container of its
    /// type must use to take a sitting keeper's place: identical workloads do
    /// not swap keepers on noise.
    pub keeper_margin: f64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            min_per_type: 1,
            max_kills_per_cycle: 50,
            manage_unlabeled: false,
            never_kill: Vec::new(),
            stopped_grace_secs: 10,
            keeper_margin: DEFAULT_KEEPER_MARGIN,
        }
    }
}

/// The least grace a container that was created and never started gets,
/// whatever `stopped_grace_secs` says: `docker run` creates, then starts, and
/// on a loaded host seconds can pass in between; such a container holds no
/// CPU or memory, so there is no hurry to remove it.
pub const NEVER_STARTED_GRACE_SECS: i64 = 60;

/// The grace a stopped container gets before it is removed. `created` is
/// Docker's state for a container that never started, whatever else is known:
/// a listing gives it no exit facts, an inspect (the events inventory) gives
/// empty ones (exit code 0, no finish time).
pub(super) fn grace_for(c: &ContainerInfo, config: &PolicyConfig) -> i64 {
    if c.state == "created" {
        config.stopped_grace_secs.max(NEVER_STARTED_GRACE_SECS)
    } else {
        config.stopped_grace_secs
    }
}

/// How long a stopped container has been stopped, if known: since it
/// finished, or since it was created when it never ran.
pub(super) fn stopped_for(c: &ContainerInfo, now: i64) -> Option<i64> {
    let since = match (&c.exit, c.state.as_str()) {
        (
            Some(ExitFacts {
                finished_at: Some(t),
                ..
            }),
            _,
        ) => *t,
        (Some(_), _) | (None, "created") => c.created,
        (None, _) => return None,
    };
    Some((now - since).max(0))
}

/// Decides, for this cycle, what happens to each container.
///
/// `usage` and `containers` are this cycle's inputs; an `Err` in either (the
/// snapshot or the Docker listing failed) blocks every kill and removal.
/// `now` (Unix seconds) is used for ages.
pub fn decide(
    usage: Result<&HashMap<String, Usage>, &str>,
    containers: Result<&[ContainerInfo], &str>,
    config: &PolicyConfig,
    keepers: &HashSet<String>,
    now: i64,
) -> Plan {
    let (usage, containers) = match (usage, containers) {
        (Ok(u), Ok(c)) => (u, c),
        (Err(e), _) => return Plan::blocked(Blocked::Snapshot(e.to_string())),
        (_, Err(e)) => return Plan::blocked(Blocked::Docker(e.to_string())),
    };

    let acts = ActsOn {
        manage_unlabeled: config.manage_unlabeled,
        never: config.never_kill.clone(),
    };
    let mut verdicts = Vec::with_capacity(containers.len());
    // Running managed containers with usage data, by type.
    let mut candidates: BTreeMap<ContainerType, Vec<(&ContainerInfo, &Usage)>> = BTreeMap::new();
    for c in containers {
        match settle(c, usage, config, &acts, now) {
            Settled::Verdict(v) => verdicts.push(v),
            Settled::Candidate(u) => candidates
                .entry(c.container_type())
                .or_default()
                .push((c, u)),
        }
    }
    let mut surplus_by_type: Vec<Vec<Verdict>> = Vec::new();
    for (t, list) in candidates {
        let (kept, surplus) = rank(
            list,
            Resource::of_type(t),
            config.min_per_type,
            config.keeper_margin,
            keepers,
            now,
        );
        verdicts.extend(kept);
        surplus_by_type.push(surplus);
    }
    verdicts.extend(bound_kills(surplus_by_type, config.max_kills_per_cycle));
    Plan {
        blocked: None,
        verdicts,
    }
}

/// What one container's own facts decide.
enum Settled<'a> {
    /// Its verdict, whatever the others of its type use.
    Verdict(Verdict),
    /// A running managed container with usage: ranked with its type.
    Candidate(&'a Usage),
}

/// Settles a container by its own facts: the log service, protected,
/// unmanaged, stopped, of unknown type, not running or not measured; else it
/// is a candidate of its type.
fn settle<'a>(
    c: &ContainerInfo,
    usage: &'a HashMap<String, Usage>,
    config: &PolicyConfig,
    acts: &ActsOn,
    now: i64,
) -> Settled<'a> {
    let t = c.container_type();
    let verdict = |action, reason| Settled::Verdict(Verdict::on(c, action, reason));
    let ignore = |reason| verdict(Action::Ignore, reason);
    match acts.standing(c) {
        Standing::LogService => return ignore(Reason::LogService),
        Standing::Protected => return ignore(Reason::Protected),
        Standing::NotManaged => return ignore(Reason::NotManaged),
        Standing::Managed => {}
    }
    if c.is_stopped() {
        let state = c.state.clone();
        let grace_secs = grace_for(c, config);
        match stopped_for(c, now) {
            None => ignore(Reason::StoppedUnknown { state }),
            Some(secs) if secs < grace_secs => ignore(Reason::StoppedWithinGrace {
                state,
                stopped_secs: secs,
                grace_secs,
            }),
            Some(secs) => verdict(
                Action::Remove,
                Reason::Stopped {
                    name: c.name.clone(),
                    container_type: t,
                    state,
                    exit: c.exit,
                    stopped_secs: secs,
                },
            ),
        }
    } else if t == ContainerType::Unknown {
        ignore(Reason::UnknownType)
    } else if !c.is_running() {
        ignore(Reason::NotRunning {
            state: c.state.clone(),
        })
    } else if let Some(u) = usage.get(&c.id) {
        if !u.has_rates() {
            ignore(Reason::NotMeasuredYet)
        } else if u.io_unavailable && matches!(t, ContainerType::Io | ContainerType::Disk) {
            ignore(Reason::Unmeasured { container_type: t })
        } else {
            Settled::Candidate(u)
        }
    } else {
        ignore(Reason::NoUsage)
    }
}

/// Ranks one group's candidates (a type's, or a rule's), lightest first by
/// `resource` (`None`: each container's type's own; ties: newest first,
/// then by id for a stable order): the first `count` are kept, the rest are
/// surplus, heaviest first so the per-cycle bound frees the most first.
///
/// A sitting keeper (one of `keepers`, last cycle's) is ranked as if it used
/// `keeper_margin` less than it does: another container takes its place only
/// when it uses less by more than that margin.
pub(super) fn rank(
    mut list: Vec<(&ContainerInfo, &Usage)>,
    resource: Option<Resource>,
    count: usize,
    keeper_margin: f64,
    keepers: &HashSet<String>,
    now: i64,
) -> (Vec<Verdict>, Vec<Verdict>) {
    let margin = keeper_margin.clamp(0.0, 1.0);
    let figure = |c: &ContainerInfo, u: &Usage| {
        let t = c.container_type();
        Figure::on(t, resource.or(Resource::of_type(t)), u)
    };
    let ranked = |c: &ContainerInfo, u: &Usage| {
        let value = figure(c, u).value;
        if keepers.contains(&c.id) {
            value * (1.0 - margin)
        } else {
            value
        }
    };
    list.sort_by(|(a, ua), (b, ub)| {
        ranked(a, ua)
            .total_cmp(&ranked(b, ub))
            .then(keepers.contains(&b.id).cmp(&keepers.contains(&a.id)))
            .then(b.created.cmp(&a.created))
            .then(a.id.cmp(&b.id))
    });
    let total = list.len();
    let keep = count.min(total);
    let keeping: Vec<(String, Figure)> = list[..keep]
        .iter()
        .map(|(c, u)| (c.name.clone(), figure(c, u)))
        .collect();
    let kept = list[..keep]
        .iter()
        .enumerate()
        .map(|(rank, (c, u))| {
            Verdict::on(
                c,
                Action::Keep,
                Reason::Kept {
                    name: c.name.clone(),
                    figure: figure(c, u),
                    rank: rank + 1,
                    of: total,
                    min_per_type: count,
                    age_secs: (now - c.created).max(0),
                    sitting: keepers.contains(&c.id),
                    margin,
                },
            )
        })
        .collect();
    let surplus = list[keep..]
        .iter()
        .rev()
        .map(|(c, u)| {
            Verdict::on(
                c,
                Action::Kill,
                Reason::Surplus {
                    name: c.name.clone(),
                    figure: figure(c, u),
                    keeping: keeping.clone(),
                },
            )
        })
        .collect();
    (kept, surplus)
}

/// At most `max_kills` kills, taken round-robin across types so a bound
/// does not starve one type; the rest are deferred. In the order they will
/// be carried out.
pub(super) fn bound_kills(
    mut surplus_by_type: Vec<Vec<Verdict>>,
    max_kills: usize,
) -> Vec<Verdict> {
    let mut budget = max_kills;
    let longest = surplus_by_type.iter().map(Vec::len).max().unwrap_or(0);
    let mut ordered: Vec<Verdict> = Vec::new();
    for i in 0..longest {
        for list in &mut surplus_by_type {
            let Some(v) = list.get_mut(i) else { continue };
            if budget == 0 {
                v.action = Action::Defer;
                v.reason = Reason::Deferred {
                    name: v.name.clone(),
                    container_type: v.container_type,
                    max_kills_per_cycle: max_kills,
                };
            } else {
                budget -= 1;
            }
            ordered.push(v.clone());
        }
    }
    ordered
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::collect::usage::{CpuSource, RateBasis, Totals};
    use crate::docker::container::tests::container;
    use crate::docker::container::ContainerType;
    use crate::docker::container::{LABEL_MANAGED, LABEL_PROTECTED, LABEL_TYPE};
    use proptest::prelude::*;

    pub(crate) fn usage(cpu: f64, mem: u64, io: f64, disk: f64) -> Usage {
        Usage {
            totals: Totals::default(),
            counted: Totals::default(),
            cpu_cores: cpu,
            cpu_ratio: cpu / 2.0,
            memory_bytes: mem,
            memory_ratio: 0.0,
            disk_read_bytes_per_second: 0.0,
            disk_write_bytes_per_second: disk,
            io_read_chars_per_second: io,
            io_write_chars_per_second: 0.0,
            io_syscalls_per_second: 0.0,
            basis: RateBasis::Interval,
            cpu_source: CpuSource::Processes,
            io_unavailable: false,
        }
    }

    pub(crate) fn managed(name: &str, t: &str) -> ContainerInfo {
        container(
            name,
            &[(LABEL_MANAGED, "true"), (LABEL_TYPE, t)],
            "stress --cpu 1",
        )
    }

    fn run(
        cs: &[ContainerInfo],
        us: &HashMap<String, Usage>,
        cfg: &PolicyConfig,
    ) -> HashMap<String, Action> {
        decide(Ok(us), Ok(cs), cfg, &HashSet::new(), 2_000)
            .verdicts
            .into_iter()
            .map(|v| (v.name, v.action))
            .collect()
    }

    #[test]
    fn keeps_the_lightest_of_each_type_and_kills_the_rest() {
        let cs = vec![
            managed("ram-a", "ram"),
            managed("ram-b", "ram"),
            managed("ram-c", "ram"),
            managed("cpu-a", "cpu"),
            managed("cpu-b", "cpu"),
        ];
        let mut us = HashMap::new();
        us.insert(cs[0].id.clone(), usage(0.0, 300 << 20, 0.0, 0.0));
        us.insert(cs[1].id.clone(), usage(0.0, 12 << 20, 0.0, 0.0));
        us.insert(cs[2].id.clone(), usage(0.0, 256 << 20, 0.0, 0.0));
        us.insert(cs[3].id.clone(), usage(0.9, 0, 0.0, 0.0));
        us.insert(cs[4].id.clone(), usage(0.1, 0, 0.0, 0.0));
        let plan = decide(
            Ok(&us),
            Ok(&cs),
            &PolicyConfig::default(),
            &HashSet::new(),
            2_000,
        );
        let got: HashMap<_, _> = plan
            .verdicts
            .iter()
            .map(|v| (v.name.as_str(), v.action))
            .collect();
        assert_eq!(got["ram-b"], Action::Keep);
        assert_eq!(got["ram-a"], Action::Kill);
        assert_eq!(got["ram-c"], Action::Kill);
        assert_eq!(got["cpu-b"], Action::Keep);
        assert_eq!(got["cpu-a"], Action::Kill);
        let keep = plan.verdicts.iter().find(|v| v.name == "ram-b").unwrap();
        assert!(matches!(
            keep.reason,
            Reason::Kept {
                rank: 1,
                of: 3,
                age_secs: 1000,
                ..
            }
        ));
        assert_eq!(
            keep.reason.to_string(),
            "ram: kept ram-b (memory 12.0 MiB, the lowest of 3 measured; age 1000 s)"
        );
        let kill = plan.verdicts.iter().find(|v| v.name == "ram-a").unwrap();
        match &kill.reason {
            Reason::Surplus {
                figure, keeping, ..
            } => {
                assert_eq!(figure.value, (300u64 << 20) as f64);
                assert_eq!(keeping.len(), 1);
                assert_eq!(keeping[0].0, "ram-b");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            kill.reason.to_string(),
            "ram: killed ram-a (memory 300.0 MiB); keeping ram-b at memory 12.0 MiB"
        );
    }

    #[test]
    fn each_type_is_judged_by_its_own_resource() {
        for (t, light, heavy) in [
            (
                "cpu",
                usage(0.1, 9 << 30, 9e9, 9e9),
                usage(0.9, 0, 0.0, 0.0),
            ),
            (
                "ram",
                usage(9.0, 1 << 20, 9e9, 9e9),
                usage(0.0, 2 << 20, 0.0, 0.0),
            ),
            (
                "io",
                usage(9.0, 9 << 30, 10.0, 9e9),
                usage(0.0, 0, 20.0, 0.0),
            ),
            (
                "disk",
                usage(9.0, 9 << 30, 9e9, 10.0),
                usage(0.0, 0, 0.0, 20.0),
            ),
        ] {
            let cs = vec![managed("light", t), managed("heavy", t)];
            let us = HashMap::from([(cs[0].id.clone(), light), (cs[1].id.clone(), heavy)]);
            let got = run(&cs, &us, &PolicyConfig::default());
            assert_eq!(got["light"], Action::Keep, "{t}");
            assert_eq!(got["heavy"], Action::Kill, "{t}");
        }
    }

    #[test]
    fn ties_keep_the_newest() {
        let mut old = managed("old", "io");
        old.created = 100;
        let mut new = managed("new", "io");
        new.created = 200;
        let cs = vec![old, new];
        let us: HashMap<_, _> = cs
            .iter()
            .map(|c| (c.id.clone(), usage(0.0, 0, 0.0, 0.0)))
            .collect();
        let got = run(&cs, &us, &PolicyConfig::default());
        assert_eq!(got["new"], Action::Keep);
        assert_eq!(got["old"], Action::Kill);
    }

    #[test]
    fn protected_unmanaged_and_the_log_service_are_never_killed() {
        let cs = vec![
            managed("keep-me", "cpu"),
            container(
                "prot",
                &[
                    (LABEL_MANAGED, "true"),
                    (LABEL_TYPE, "cpu"),
                    (LABEL_PROTECTED, "true"),
                ],
                "stress --cpu 1",
            ),
            container("unlabeled", &[], "stress --cpu 1"),
            managed("gestor-logger", "cpu"),
        ];
        let us: HashMap<_, _> = cs
            .iter()
            .map(|c| (c.id.clone(), usage(1.0, 0, 0.0, 0.0)))
            .collect();
        let cfg = PolicyConfig {
            never_kill: vec!["gestor-logger".into()],
            ..Default::default()
        };
        let got = run(&cs, &us, &cfg);
        assert_eq!(got["keep-me"], Action::Keep);
        assert_eq!(got["prot"], Action::Ignore);
        assert_eq!(got["unlabeled"], Action::Ignore);
        assert_eq!(got["gestor-logger"], Action::Ignore);
    }

    #[test]
    fn failed_inputs_block_every_kill() {
        let cs = vec![managed("a", "cpu"), managed("b", "cpu")];
        let us: HashMap<_, _> = cs
            .iter()
            .map(|c| (c.id.clone(), usage(1.0, 0, 0.0, 0.0)))
            .collect();
        let cfg = PolicyConfig::default();
        let p = decide(
            Err("cannot read /proc/sysinfo"),
            Ok(&cs),
            &cfg,
            &HashSet::new(),
            0,
        );
        assert_eq!(p.kills().count(), 0);
        assert_eq!(
            p.blocked,
            Some(Blocked::Snapshot("cannot read /proc/sysinfo".into()))
        );
        let p = decide(Ok(&us), Err("docker down"), &cfg, &HashSet::new(), 0);
        assert_eq!(p.kills().count(), 0);
        assert_eq!(p.blocked, Some(Blocked::Docker("docker down".into())));
        assert!(p
            .blocked
            .unwrap()
            .to_string()
            .contains("Docker listing unavailable"));
    }

    #[test]
    fn the_per_cycle_bound_defers_round_robin() {
        let mut cs = Vec::new();
        for t in ["cpu", "ram"] {
            for i in 0..4 {
                cs.push(managed(&format!("{t}-{i}"), t));
            }
        }
        let us: HashMap<_, _> = cs
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), usage(i as f64, i as u64, 0.0, 0.0)))
            .collect();
        let cfg = PolicyConfig {
            max_kills_per_cycle: 3,
            ..Default::default()
        };
        let plan = decide(Ok(&us), Ok(&cs), &cfg, &HashSet::new(), 0);
        let kills: Vec<_> = plan.kills().map(|v| v.name.clone()).collect();
        // Heaviest of each type first, alternating types.
        assert_eq!(kills, vec!["cpu-3", "ram-3", "cpu-2"]);
        let deferred = plan
            .verdicts
            .iter()
            .filter(|v| v.action == Action::Defer)
            .count();
        assert_eq!(deferred, 3);
    }

    #[test]
    fn min_per_type_above_one_and_missing_usage() {
        let cs: Vec<_> = (0..4).map(|i| managed(&format!("d{i}"), "disk")).collect();
        let mut us: HashMap<_, _> = cs
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), usage(0.0, 0, 0.0, i as f64)))
            .collect();
        us.remove(&cs[3].id);
        let cfg = PolicyConfig {
            min_per_type: 2,
            ..Default::default()
        };
        let got = run(&cs, &us, &cfg);
        assert_eq!(got["d0"], Action::Keep);
        assert_eq!(got["d1"], Action::Keep);
        assert_eq!(got["d2"], Action::Kill);
        assert_eq!(got["d3"], Action::Ignore, "no data: never killed on it");
    }

    fn stopped(name: &str, state: &str, exit: Option<ExitFacts>) -> ContainerInfo {
        let mut c = managed(name, "ram");
        c.state = state.into();
        c.exit = exit;
        c
    }

    #[test]
    fn stopped_managed_containers_are_removed_after_the_grace_and_never_kept() {
        let oom = ExitFacts {
            exit_code: 1,
            oom_killed: true,
            finished_at: Some(1_950),
        };
        let crashed = ExitFacts {
            exit_code: 2,
            oom_killed: false,
            finished_at: Some(1_995),
        };
        let mut never_started = stopped("never", "created", None);
        never_started.created = 1_900;
        // Created 30 s ago: maybe `docker run` has not started it yet.
        let mut starting = stopped("starting", "created", None);
        starting.created = 1_970;
        // The same, as an inspect reports it (the events inventory): empty
        // exit facts. Still 60 s.
        let mut inspected = stopped(
            "inspected-starting",
            "created",
            Some(ExitFacts {
                exit_code: 0,
                oom_killed: false,
                finished_at: None,
            }),
        );
        inspected.created = 1_970;
        let cs = vec![
            stopped("oom", "exited", Some(oom)),
            stopped("crashed", "exited", Some(crashed)),
            stopped("dead-unknown", "dead", None),
            never_started,
            managed("live", "ram"),
            starting,
            inspected,
        ];
        let us = HashMap::from([(cs[4].id.clone(), usage(0.0, 1 << 30, 0.0, 0.0))]);
        let cfg = PolicyConfig {
            stopped_grace_secs: 10,
            ..Default::default()
        };
        let plan = decide(Ok(&us), Ok(&cs), &cfg, &HashSet::new(), 2_000);
        let by_name: HashMap<_, _> = plan.verdicts.iter().map(|v| (v.name.as_str(), v)).collect();
        // The live one is the type's keeper, however heavy: stopped ones never are.
        assert_eq!(by_name["live"].action, Action::Keep);
        assert_eq!(by_name["oom"].action, Action::Remove);
        assert_eq!(
            by_name["oom"].reason,
            Reason::Stopped {
                name: "oom".into(),
                container_type: ContainerType::Ram,
                state: "exited".into(),
                exit: Some(oom),
                stopped_secs: 50,
            }
        );
        assert!(by_name["oom"].reason.to_string().contains("OOM killer"));
        assert_eq!(by_name["crashed"].action, Action::Ignore, "5 s < grace");
        assert_eq!(
            by_name["crashed"].reason,
            Reason::StoppedWithinGrace {
                state: "exited".into(),
                stopped_secs: 5,
                grace_secs: 10
            }
        );
        assert_eq!(by_name["dead-unknown"].action, Action::Ignore);
        assert!(matches!(
            by_name["dead-unknown"].reason,
            Reason::StoppedUnknown { .. }
        ));
        assert_eq!(by_name["never"].action, Action::Remove);
        assert_eq!(
            by_name["starting"].reason,
            Reason::StoppedWithinGrace {
                state: "created".into(),
                stopped_secs: 30,
                grace_secs: NEVER_STARTED_GRACE_SECS
            }
        );
        assert_eq!(
            by_name["inspected-starting"].reason, by_name["starting"].reason,
            "an inspected created container gets the same 60 s"
        );
        assert_eq!(plan.removals().count(), 2);
        assert_eq!(plan.kills().count(), 0);
        // A failed input blocks removals too.
        let blocked = decide(Err("x"), Ok(&cs), &cfg, &HashSet::new(), 2_000);
        assert_eq!(blocked.removals().count(), 0);
    }

    #[test]
    fn stopped_protected_or_unmanaged_containers_are_left_alone() {
        let mut prot = stopped("prot", "exited", None);
        prot.labels.insert(LABEL_PROTECTED.into(), "true".into());
        prot.created = 0;
        let mut other = container("other", &[], "sleep 1");
        other.state = "exited".into();
        other.created = 0;
        let got = run(&[prot, other], &HashMap::new(), &PolicyConfig::default());
        assert_eq!(got["prot"], Action::Ignore);
        assert_eq!(got["other"], Action::Ignore);
    }

    #[test]
    fn paused_containers_are_not_judged() {
        let mut c = managed("paused", "cpu");
        c.state = "paused".into();
        let us = HashMap::from([(c.id.clone(), usage(0.5, 0, 0.0, 0.0))]);
        let got = run(&[c], &us, &PolicyConfig::default());
        assert_eq!(got["paused"], Action::Ignore);
    }

    fn first_sight(mut u: Usage) -> Usage {
        u.basis = RateBasis::FirstSight;
        u
    }

    fn verdict_of<'a>(plan: &'a Plan, name: &str) -> &'a Verdict {
        plan.verdicts.iter().find(|v| v.name == name).unwrap()
    }

    #[test]
    fn a_container_without_a_rate_is_neither_kept_nor_killed() {
        // An old container that is idle now and a new one that is busy: the
        // new one has no rate yet. The old one is kept, nothing is killed,
        // and the new one is "not measured yet".
        let cs = vec![managed("cpu-old", "cpu"), managed("cpu-new", "cpu")];
        let us = HashMap::from([
            (cs[0].id.clone(), usage(0.0, 0, 0.0, 0.0)),
            (cs[1].id.clone(), first_sight(usage(0.0, 0, 0.0, 0.0))),
        ]);
        let plan = decide(
            Ok(&us),
            Ok(&cs),
            &PolicyConfig::default(),
            &HashSet::new(),
            2_000,
        );
        assert_eq!(verdict_of(&plan, "cpu-old").action, Action::Keep);
        let new = verdict_of(&plan, "cpu-new");
        assert_eq!(
            (new.action, &new.reason),
            (Action::Ignore, &Reason::NotMeasuredYet)
        );
        assert_eq!(plan.kills().count(), 0);
        // A type whose containers all lack a rate keeps and kills nothing.
        let us: HashMap<_, _> = cs
            .iter()
            .map(|c| (c.id.clone(), first_sight(usage(0.9, 0, 0.0, 0.0))))
            .collect();
        let plan = decide(
            Ok(&us),
            Ok(&cs),
            &PolicyConfig::default(),
            &HashSet::new(),
            2_000,
        );
        assert_eq!(plan.kills().count() + plan.keepers().count(), 0);
    }

    #[test]
    fn unreadable_io_is_not_judged_on_io_but_cpu_is() {
        let cs = vec![
            managed("io-hidden", "io"),
            managed("io-seen", "io"),
            managed("cpu-hidden", "cpu"),
            managed("cpu-seen", "cpu"),
        ];
        let mut hidden_io = usage(0.0, 0, 0.0, 0.0);
        hidden_io.io_unavailable = true;
        let mut hidden_cpu = usage(0.1, 0, 0.0, 0.0);
        hidden_cpu.io_unavailable = true;
        let us = HashMap::from([
            (cs[0].id.clone(), hidden_io),
            (cs[1].id.clone(), usage(0.0, 0, 5e6, 0.0)),
            (cs[2].id.clone(), hidden_cpu),
            (cs[3].id.clone(), usage(0.9, 0, 0.0, 0.0)),
        ]);
        let plan = decide(
            Ok(&us),
            Ok(&cs),
            &PolicyConfig::default(),
            &HashSet::new(),
            2_000,
        );
        // It reads 0 I/O but is not the lightest: it is not judged at all.
        let hidden = verdict_of(&plan, "io-hidden");
        assert_eq!(hidden.action, Action::Ignore);
        assert_eq!(
            hidden.reason,
            Reason::Unmeasured {
                container_type: ContainerType::Io
            }
        );
        assert_eq!(verdict_of(&plan, "io-seen").action, Action::Keep);
        // CPU does not need the I/O counters.
        assert_eq!(verdict_of(&plan, "cpu-hidden").action, Action::Keep);
        assert_eq!(verdict_of(&plan, "cpu-seen").action, Action::Kill);
    }

    #[test]
    fn a_keeper_stays_until_another_is_lower_by_the_margin() {
        let cs = vec![managed("cpu-a", "cpu"), managed("cpu-b", "cpu")];
        let keepers = HashSet::from([cs[0].id.clone()]);
        let cfg = PolicyConfig::default();
        // b uses 5 % less than the keeper: noise, the keeper stays.
        let us = HashMap::from([
            (cs[0].id.clone(), usage(1.00, 0, 0.0, 0.0)),
            (cs[1].id.clone(), usage(0.95, 0, 0.0, 0.0)),
        ]);
        let plan = decide(Ok(&us), Ok(&cs), &cfg, &keepers, 2_000);
        let kept = verdict_of(&plan, "cpu-a");
        assert_eq!(kept.action, Action::Keep);
        assert!(matches!(kept.reason, Reason::Kept { sitting: true, .. }));
        assert_eq!(verdict_of(&plan, "cpu-b").action, Action::Kill);
        // b uses 15 % less: it takes the place.
        let us = HashMap::from([
            (cs[0].id.clone(), usage(1.00, 0, 0.0, 0.0)),
            (cs[1].id.clone(), usage(0.85, 0, 0.0, 0.0)),
        ]);
        let plan = decide(Ok(&us), Ok(&cs), &cfg, &keepers, 2_000);
        assert_eq!(verdict_of(&plan, "cpu-b").action, Action::Keep);
        assert_eq!(verdict_of(&plan, "cpu-a").action, Action::Kill);
        // With no margin, 5 % less is enough.
        let us = HashMap::from([
            (cs[0].id.clone(), usage(1.00, 0, 0.0, 0.0)),
            (cs[1].id.clone(), usage(0.95, 0, 0.0, 0.0)),
        ]);
        let no_margin = PolicyConfig {
            keeper_margin: 0.0,
            ..PolicyConfig::default()
        };
        let plan = decide(Ok(&us), Ok(&cs), &no_margin, &keepers, 2_000);
        assert_eq!(verdict_of(&plan, "cpu-b").action, Action::Keep);
    }

    /// A container, its usage (maybe first sight, maybe with unreadable
    /// I/O), and whether it was a keeper last cycle.
    pub(crate) fn arb_container() -> impl Strategy<Value = (ContainerInfo, Option<Usage>, bool)> {
        (
            (
                0usize..5,
                0usize..4,
                any::<bool>(),
                any::<bool>(),
                0i64..1000,
            ),
            (0.0f64..4.0, 0u64..(1 << 32), any::<bool>()),
            proptest::option::of((0i64..3, any::<bool>(), proptest::option::of(0i64..1000))),
            (0u8..4, any::<bool>(), any::<bool>()),
        )
            .prop_map(
                |(
                    (t, label, running, has_usage, created),
                    (cpu, mem, cmd),
                    exit,
                    (measured, io_unavailable, was_keeper),
                )| {
                    let types = ["cpu", "ram", "io", "disk", "weird"];
                    let labels: &[(&str, &str)] = match label {
                        0 => &[(LABEL_MANAGED, "true")],
                        1 => &[(LABEL_MANAGED, "true"), (LABEL_PROTECTED, "true")],
                        2 => &[],
                        _ => &[(LABEL_MANAGED, "false")],
                    };
                    let mut l: Vec<(&str, &str)> = labels.to_vec();
                    l.push((LABEL_TYPE, types[t]));
                    let command = if cmd { "stress --io 1" } else { "sleep 9" };
                    let mut c = container(&format!("c{created}-{t}-{mem}"), &l, command);
                    c.created = created;
                    if !running {
                        c.state = "exited".into();
                        c.exit = exit.map(|(code, oom, finished)| ExitFacts {
                            exit_code: code,
                            oom_killed: oom,
                            finished_at: finished,
                        });
                    }
                    let u = has_usage.then(|| {
                        let mut u = usage(cpu, mem, cpu * 1e3, cpu * 1e6);
                        if measured == 0 {
                            u.basis = RateBasis::FirstSight;
                        }
                        u.io_unavailable = io_unavailable;
                        u
                    });
                    (c, u, was_keeper)
                },
            )
    }

    proptest! {
        /// A sitting keeper gives way exactly when a challenger uses less than
        /// (1 - margin) of its figure.
        #[test]
        fn a_keeper_gives_way_only_past_the_margin(
            keeper in 0.0f64..4.0,
            challenger in 0.0f64..4.0,
            margin in 0.0f64..0.5,
        ) {
            let cs = vec![managed("cpu-keeper", "cpu"), managed("cpu-challenger", "cpu")];
            let us = HashMap::from([
                (cs[0].id.clone(), usage(keeper, 0, 0.0, 0.0)),
                (cs[1].id.clone(), usage(challenger, 0, 0.0, 0.0)),
            ]);
            let cfg = PolicyConfig { keeper_margin: margin, ..PolicyConfig::default() };
            let plan = decide(Ok(&us), Ok(&cs), &cfg, &HashSet::from([cs[0].id.clone()]), 2_000);
            let challenger_kept = verdict_of(&plan, "cpu-challenger").action == Action::Keep;
            prop_assert_eq!(challenger_kept, challenger < keeper * (1.0 - margin));
        }
    }

    proptest! {
        #[test]
        fn policy_invariants(
            input in proptest::collection::vec(arb_container(), 0..40),
            min_per_type in 1usize..3,
            max_kills in 0usize..10,
            manage_unlabeled in any::<bool>(),
        ) {
            let mut cs = Vec::new();
            let mut us = HashMap::new();
            let mut seen = HashSet::new();
            let mut keepers = HashSet::new();
            for (c, u, was_keeper) in input {
                if !seen.insert(c.id.clone()) { continue; }
                if let Some(u) = u { us.insert(c.id.clone(), u); }
                if was_keeper { keepers.insert(c.id.clone()); }
                cs.push(c);
            }
            let cfg = PolicyConfig {
                min_per_type,
                max_kills_per_cycle: max_kills,
                manage_unlabeled,
                never_kill: vec![],
                stopped_grace_secs: 100,
                keeper_margin: DEFAULT_KEEPER_MARGIN,
            };
            let plan = decide(Ok(&us), Ok(&cs), &cfg, &keepers, 1_000);
            prop_assert_eq!(plan.verdicts.len(), cs.len());
            // Only measured containers are judged: a container without a
            // rate, or an io/disk one whose I/O was unreadable, is neither
            // kept nor killed.
            for v in plan.verdicts.iter().filter(|v| matches!(v.action, Action::Keep | Action::Kill | Action::Defer)) {
                let u = &us[&v.id];
                prop_assert!(u.has_rates(), "{} judged without a rate", v.name);
                prop_assert!(
                    !(u.io_unavailable && matches!(v.container_type, ContainerType::Io | ContainerType::Disk)),
                    "{} judged on unreadable I/O", v.name
                );
            }
            // The margin: within a type, every keeper ranks at or below every
            // killed one, a sitting keeper counted at (1 - margin) of its figure.
            let ranked = |v: &Verdict| {
                let value = Figure::of(v.container_type, &us[&v.id]).value;
                if keepers.contains(&v.id) { value * (1.0 - cfg.keeper_margin) } else { value }
            };
            for k in plan.kills() {
                for kept in plan.keepers().filter(|v| v.container_type == k.container_type) {
                    prop_assert!(ranked(kept) <= ranked(k), "kept {} over {}", kept.name, k.name);
                }
            }
            let by_id: HashMap<_, _> = cs.iter().map(|c| (c.id.as_str(), c)).collect();
            let kills: Vec<_> = plan.kills().collect();
            prop_assert!(kills.len() <= max_kills);
            for k in &kills {
                let c = by_id[k.id.as_str()];
                prop_assert!(!c.is_protected());
                prop_assert!(c.is_managed(manage_unlabeled));
                prop_assert!(us.contains_key(&c.id));
                prop_assert!(c.is_running());
            }
            for r in plan.removals() {
                let c = by_id[r.id.as_str()];
                prop_assert!(!c.is_protected());
                prop_assert!(c.is_managed(manage_unlabeled));
                prop_assert!(c.is_stopped());
            }
            for t in ContainerType::KNOWN {
                let eligible = cs.iter().filter(|c| {
                    c.container_type() == t && c.is_running() && c.is_managed(manage_unlabeled)
                }).count();
                let killed = kills.iter().filter(|v| v.container_type == t).count();
                prop_assert!(eligible - killed >= min_per_type.min(eligible));
            }
            // Failed inputs: nothing at all.
            let blocked = decide(Err("x"), Ok(&cs), &cfg, &HashSet::new(), 1_000);
            prop_assert_eq!(blocked.kills().count() + blocked.removals().count(), 0);
            let blocked = decide(Ok(&us), Err("y"), &cfg, &HashSet::new(), 1_000);
            prop_assert_eq!(blocked.kills().count() + blocked.removals().count(), 0);
        }
    }
}

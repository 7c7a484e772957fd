//! The policy engine: a pure function of (policy, usage, containers, host
//! signals, its own state, configuration, clock) that returns a plan and the
//! state for the next cycle.
//!
//! Each container is governed by the first rule whose selector matches it
//! (the log service and `gestor.protected=true` containers come first and
//! are never touched, whatever the file says). Per rule:
//! - `keep_least`: the rule's measured running containers are ranked by the
//!   rule's resource; the `count` that use least are kept, the rest stopped
//!   (a sitting keeper keeps its place unless another is lower by the keeper
//!   margin);
//! - `limit`: a measured container over the threshold is stopped once it has
//!   been over it for the rule's `for` (a measured reading under it resets
//!   the clock; a cycle without a reading neither advances nor resets it);
//! - `pressure`: while the host signal has been bad for `for`, the largest
//!   measured consumer of the rule's resource is stopped, one per cycle, at
//!   most `max_per_episode` until the signal clears;
//! - `protect`: never touched.
//!
//! Stopped containers a `stop_remove` rule governs are removed after the
//! stopped grace, as before. Stops are bounded per rule, then overall,
//! round-robin across rules. Nothing at all when the cycle's inputs failed.

use crate::collect::pressure::{HostPressure, PsiAverages};
use crate::collect::usage::Usage;
use crate::decide::plan::{Action, Plan, Verdict};
use crate::decide::policy::{bound_kills, grace_for, rank, stopped_for, PolicyConfig};
use crate::decide::reason::{Blocked, Figure, Reason};
use crate::decide::rules::{
    ActionKind, Policy, PsiResource, PsiWindow, Resource, Rule, Signal, Threshold, Trigger,
    Verdict as RuleVerdict,
};
use crate::docker::container::{ActsOn, ContainerInfo, ContainerType, Standing};
use std::collections::{HashMap, HashSet};

/// What the engine knows of the host this cycle.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Host {
    pub cpus: u32,
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
    pub pressure: HostPressure,
}

impl Host {
    /// A signal's value now: PSI in percent of time, available memory as a
    /// share of RAM; `None` when it cannot be read.
    pub fn signal(&self, signal: Signal) -> Option<f64> {
        match signal {
            Signal::MemoryAvailable => (self.memory_total_bytes > 0)
                .then(|| self.memory_available_bytes as f64 / self.memory_total_bytes as f64),
            Signal::Psi {
                resource,
                full,
                window,
            } => {
                let file = match resource {
                    PsiResource::Cpu => self.pressure.cpu,
                    PsiResource::Memory => self.pressure.memory,
                    PsiResource::Io => self.pressure.io,
                };
                let line: Option<PsiAverages> = if full { file.full } else { file.some };
                line.map(|l| match window {
                    PsiWindow::Avg10 => l.avg10,
                    PsiWindow::Avg60 => l.avg60,
                })
            }
        }
    }

    /// A threshold as an absolute value of `resource`.
    fn absolute(&self, resource: Resource, t: Threshold) -> f64 {
        match (t, resource) {
            (Threshold::Absolute(v), _) => v,
            (Threshold::HostShare(s), Resource::Cpu) => s * f64::from(self.cpus.max(1)),
            (Threshold::HostShare(s), _) => s * self.memory_total_bytes as f64,
        }
    }
}

/// A pressure rule's episode: since when its signal has been bad, and how
/// many it stopped since.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Episode {
    pub bad_since: Option<f64>,
    pub stops: usize,
}

/// What the engine carries from one cycle to the next.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    /// Last cycle's keepers (the keeper margin protects them).
    pub keepers: HashSet<String>,
    /// `limit` rules: since when (seconds) each container has been over, by
    /// (rule key, container id).
    pub over_since: HashMap<(String, String), f64>,
    /// `pressure` rules' episodes, by rule key.
    pub episodes: HashMap<String, Episode>,
}

/// Whether `u` has a usable figure of `resource` (a rate over an interval;
/// for io and disk, readable counters).
fn measured(u: &Usage, resource: Resource) -> bool {
    u.has_rates() && !(u.io_unavailable && matches!(resource, Resource::Io | Resource::Disk))
}

fn unmeasured_reason(u: &Usage, t: ContainerType) -> Reason {
    if u.has_rates() {
        Reason::Unmeasured { container_type: t }
    } else {
        Reason::NotMeasuredYet
    }
}

/// Decides, for this cycle, what happens to each container under `policy`.
/// `now` is Unix time in seconds. Returns the plan and the next state.
pub fn evaluate(
    policy: &Policy,
    usage: Result<&HashMap<String, Usage>, &str>,
    containers: Result<&[ContainerInfo], &str>,
    host: &Host,
    config: &PolicyConfig,
    state: &State,
    now: f64,
) -> (Plan, State) {
    let (usage, containers) = match (usage, containers) {
        (Ok(u), Ok(c)) => (u, c),
        (Err(e), _) => {
            return (
                Plan::blocked(Blocked::Snapshot(e.to_string())),
                state.clone(),
            )
        }
        (_, Err(e)) => return (Plan::blocked(Blocked::Docker(e.to_string())), state.clone()),
    };
    let now_secs = now as i64;
    let acts = ActsOn {
        manage_unlabeled: config.manage_unlabeled,
        never: config.never_kill.clone(),
    };
    let mut verdicts: Vec<Verdict> = Vec::with_capacity(containers.len());
    // Running containers with usage, by the index of the rule that governs them.
    let mut candidates: Vec<Vec<(&ContainerInfo, &Usage)>> = vec![Vec::new(); policy.rules.len()];
    for c in containers {
        let ignore = |reason| Verdict::on(c, Action::Ignore, reason);
        match acts.standing(c) {
            Standing::LogService => {
                verdicts.push(ignore(Reason::LogService));
                continue;
            }
            Standing::Protected => {
                verdicts.push(ignore(Reason::Protected));
                continue;
            }
            Standing::NotManaged | Standing::Managed => {}
        }
        let Some((i, rule)) = policy.governing(c, config.manage_unlabeled) else {
            verdicts.push(ignore(if c.is_managed(config.manage_unlabeled) {
                Reason::NotGoverned
            } else {
                Reason::NotManaged
            }));
            continue;
        };
        let tagged = |mut v: Verdict| {
            v.rule = Some(rule.name.clone());
            v.dry_run = rule.dry_run;
            v.stop_only = rule.action == ActionKind::Stop;
            v
        };
        let settled = if rule.verdict == RuleVerdict::Protect {
            Some(ignore(Reason::ProtectedByRule {
                rule: rule.name.clone(),
            }))
        } else if c.is_stopped() {
            Some(stopped(c, rule, config, now_secs))
        } else if matches!(rule.verdict, RuleVerdict::KeepLeast { resource: None, .. })
            && c.container_type() == ContainerType::Unknown
        {
            Some(ignore(Reason::UnknownType))
        } else if !c.is_running() {
            Some(ignore(Reason::NotRunning {
                state: c.state.clone(),
            }))
        } else {
            match usage.get(&c.id) {
                Some(u) => {
                    candidates[i].push((c, u));
                    None
                }
                None => Some(ignore(Reason::NoUsage)),
            }
        };
        if let Some(v) = settled {
            verdicts.push(tagged(v));
        }
    }

    let mut next = State::default();
    let mut stops_by_rule: Vec<Vec<Verdict>> = Vec::new();
    for (rule, list) in policy.rules.iter().zip(candidates) {
        let key = Policy::rule_key(rule);
        let (mut settled, mut stops) = match &rule.verdict {
            RuleVerdict::KeepLeast { count, resource } => {
                keep_least(list, *resource, *count, config, &state.keepers, now_secs)
            }
            RuleVerdict::Limit {
                resource,
                above,
                for_secs,
            } => {
                let limit = host.absolute(*resource, *above);
                limit_rule(
                    list, *resource, limit, *for_secs, &key, state, &mut next, now,
                )
            }
            RuleVerdict::Pressure {
                signal,
                trigger,
                for_secs,
                resource,
                max_per_episode,
            } => {
                let episode = state.episodes.get(&key).copied().unwrap_or_default();
                let (settled, stops, episode) = pressure_rule(
                    list,
                    host,
                    *signal,
                    *trigger,
                    *for_secs,
                    *resource,
                    *max_per_episode,
                    episode,
                    now,
                );
                next.episodes.insert(key.clone(), episode);
                (settled, stops)
            }
            RuleVerdict::Protect => (Vec::new(), Vec::new()),
        };
        for v in settled.iter_mut().chain(stops.iter_mut()) {
            v.rule = Some(rule.name.clone());
            v.dry_run = rule.dry_run;
            v.stop_only = rule.action == ActionKind::Stop;
        }
        next.keepers.extend(
            settled
                .iter()
                .filter(|v| v.action == Action::Keep)
                .map(|v| v.id.clone()),
        );
        verdicts.extend(settled);
        // This rule's own bound: the heaviest first; the rest deferred.
        if let Some(max) = rule.max_kills_per_cycle {
            for v in stops.iter_mut().skip(max) {
                defer(v, max);
            }
        }
        stops_by_rule.push(stops);
    }
    // The overall bound, round-robin across rules; a rule's own deferrals
    // keep their place and their reason.
    let deferred_by_rule: Vec<Verdict> = stops_by_rule
        .iter_mut()
        .flat_map(|list| {
            let (keep, deferred): (Vec<Verdict>, Vec<Verdict>) =
                list.drain(..).partition(|v| v.action == Action::Kill);
            *list = keep;
            deferred
        })
        .collect();
    verdicts.extend(bound_kills(stops_by_rule, config.max_kills_per_cycle));
    verdicts.extend(deferred_by_rule);
    (
        Plan {
            blocked: None,
            verdicts,
        },
        next,
    )
}

fn defer(v: &mut Verdict, max: usize) {
    v.action = Action::Defer;
    v.reason = Reason::Deferred {
        name: v.name.clone(),
        container_type: v.container_type,
        max_kills_per_cycle: max,
    };
}

/// A stopped container: removed after the grace under a `stop_remove` rule,
/// left under a `stop` rule.
fn stopped(c: &ContainerInfo, rule: &Rule, config: &PolicyConfig, now: i64) -> Verdict {
    let state = c.state.clone();
    if rule.action == ActionKind::Stop {
        return Verdict::on(c, Action::Ignore, Reason::StoppedLeft { state });
    }
    let grace_secs = grace_for(c, config);
    match stopped_for(c, now) {
        None => Verdict::on(c, Action::Ignore, Reason::StoppedUnknown { state }),
        Some(secs) if secs < grace_secs => Verdict::on(
            c,
            Action::Ignore,
            Reason::StoppedWithinGrace {
                state,
                stopped_secs: secs,
                grace_secs,
            },
        ),
        Some(secs) => Verdict::on(
            c,
            Action::Remove,
            Reason::Stopped {
                name: c.name.clone(),
                container_type: c.container_type(),
                state,
                exit: c.exit,
                stopped_secs: secs,
            },
        ),
    }
}

/// `keep_least`: unmeasured containers are neither kept nor stopped; the
/// measured ones are ranked.
fn keep_least(
    list: Vec<(&ContainerInfo, &Usage)>,
    resource: Option<Resource>,
    count: usize,
    config: &PolicyConfig,
    keepers: &HashSet<String>,
    now: i64,
) -> (Vec<Verdict>, Vec<Verdict>) {
    let mut settled = Vec::new();
    let mut ranked = Vec::new();
    for (c, u) in list {
        let t = c.container_type();
        match resource.or(Resource::of_type(t)) {
            Some(r) if measured(u, r) => ranked.push((c, u)),
            _ => settled.push(Verdict::on(c, Action::Ignore, unmeasured_reason(u, t))),
        }
    }
    let (kept, surplus) = rank(ranked, resource, count, config.keeper_margin, keepers, now);
    settled.extend(kept);
    (settled, surplus)
}

/// `limit`: over the limit for `for_secs`, stopped.
#[allow(clippy::too_many_arguments)]
fn limit_rule(
    list: Vec<(&ContainerInfo, &Usage)>,
    resource: Resource,
    limit: f64,
    for_secs: f64,
    key: &str,
    state: &State,
    next: &mut State,
    now: f64,
) -> (Vec<Verdict>, Vec<Verdict>) {
    let mut settled = Vec::new();
    let mut stops = Vec::new();
    for (c, u) in list {
        let t = c.container_type();
        let timer = (key.to_string(), c.id.clone());
        let figure = Figure::on(t, Some(resource), u);
        let limit_figure = Figure {
            container_type: t,
            resource: Some(resource),
            value: limit,
        };
        if !measured(u, resource) {
            // No reading: the clock neither advances nor resets.
            if let Some(&since) = state.over_since.get(&timer) {
                next.over_since.insert(timer, since);
            }
            settled.push(Verdict::on(c, Action::Ignore, unmeasured_reason(u, t)));
            continue;
        }
        if figure.value <= limit {
            settled.push(Verdict::on(
                c,
                Action::Ignore,
                Reason::WithinLimit {
                    figure,
                    limit: limit_figure,
                    over_secs: None,
                    for_secs,
                },
            ));
            continue;
        }
        let since = state
            .over_since
            .get(&timer)
            .copied()
            .unwrap_or(now)
            .min(now);
        let over_secs = now - since;
        next.over_since.insert(timer, since);
        if over_secs >= for_secs {
            stops.push(Verdict::on(
                c,
                Action::Kill,
                Reason::OverLimit {
                    name: c.name.clone(),
                    figure,
                    limit: limit_figure,
                    over_secs,
                },
            ));
        } else {
            settled.push(Verdict::on(
                c,
                Action::Ignore,
                Reason::WithinLimit {
                    figure,
                    limit: limit_figure,
                    over_secs: Some(over_secs),
                    for_secs,
                },
            ));
        }
    }
    // The most over first, so a bound stops the worst first.
    stops.sort_by(|a, b| {
        let v = |x: &Verdict| match x.reason {
            Reason::OverLimit { figure, .. } => figure.value,
            _ => 0.0,
        };
        v(b).total_cmp(&v(a)).then(a.id.cmp(&b.id))
    });
    (settled, stops)
}

/// `pressure`: while the signal has been bad for `for_secs`, the largest
/// measured consumer is stopped, one a cycle, `max_per_episode` at most.
#[allow(clippy::too_many_arguments)]
fn pressure_rule(
    list: Vec<(&ContainerInfo, &Usage)>,
    host: &Host,
    signal: Signal,
    trigger: Trigger,
    for_secs: f64,
    resource: Resource,
    max_per_episode: usize,
    mut episode: Episode,
    now: f64,
) -> (Vec<Verdict>, Vec<Verdict>, Episode) {
    let value = host.signal(signal);
    let limit = match trigger {
        Trigger::Above(v) => format!("limit: above {v}"),
        Trigger::Below(v) => format!("limit: below {:.0}%", v * 100.0),
    };
    let bad = value.map(|v| match trigger {
        Trigger::Above(l) => v > l,
        Trigger::Below(l) => v < l,
    });
    let state = match bad {
        // Unreadable: the episode neither starts nor ends.
        None => "no decision".to_string(),
        Some(false) => {
            episode = Episode::default();
            "not bad".to_string()
        }
        Some(true) => {
            let since = *episode.bad_since.get_or_insert(now);
            let bad_secs = now - since;
            if bad_secs < for_secs {
                format!("bad for {bad_secs:.0} s of the {for_secs:.0} s it takes")
            } else if episode.stops >= max_per_episode {
                format!("bad, but this episode's {max_per_episode} stops are spent")
            } else {
                String::new()
            }
        }
    };
    let act = state.is_empty();
    let mut settled = Vec::new();
    let mut measured_list = Vec::new();
    for (c, u) in list {
        if measured(u, resource) {
            measured_list.push((c, u));
        } else {
            settled.push(Verdict::on(
                c,
                Action::Ignore,
                unmeasured_reason(u, c.container_type()),
            ));
        }
    }
    // The largest consumer (ties: the oldest, then by id).
    measured_list.sort_by(|(a, ua), (b, ub)| {
        let fa = Figure::on(a.container_type(), Some(resource), ua).value;
        let fb = Figure::on(b.container_type(), Some(resource), ub).value;
        fb.total_cmp(&fa)
            .then(a.created.cmp(&b.created))
            .then(a.id.cmp(&b.id))
    });
    let mut stops = Vec::new();
    for (i, (c, u)) in measured_list.into_iter().enumerate() {
        let figure = Figure::on(c.container_type(), Some(resource), u);
        if act && i == 0 {
            episode.stops += 1;
            stops.push(Verdict::on(
                c,
                Action::Kill,
                Reason::Pressure {
                    name: c.name.clone(),
                    figure,
                    signal: signal.to_string(),
                    value: value.unwrap_or_default(),
                    limit: limit.clone(),
                    bad_secs: now - episode.bad_since.unwrap_or(now),
                },
            ));
        } else {
            settled.push(Verdict::on(
                c,
                Action::Ignore,
                Reason::PressureWatch {
                    figure,
                    signal: signal.to_string(),
                    value,
                    limit: limit.clone(),
                    state: if act {
                        "another is the largest consumer".to_string()
                    } else {
                        state.clone()
                    },
                },
            ));
        }
    }
    (settled, stops, episode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::pressure::PsiFile;
    use crate::decide::policy::decide;
    use crate::decide::policy::tests::{arb_container, managed, usage};
    use crate::decide::rules::{parse, Selector};
    use crate::docker::container::tests::container;
    use crate::docker::container::{LABEL_MANAGED, LABEL_PROTECTED, LABEL_TYPE};
    use proptest::prelude::*;

    fn host() -> Host {
        Host {
            cpus: 2,
            memory_total_bytes: 8 << 30,
            memory_available_bytes: 4 << 30,
            pressure: HostPressure::default(),
        }
    }

    fn actions(plan: &Plan) -> HashMap<String, Action> {
        plan.verdicts
            .iter()
            .map(|v| (v.id.clone(), v.action))
            .collect()
    }

    fn policy(text: &str) -> Policy {
        parse(text, None).unwrap()
    }

    /// A container of `t` with extra labels.
    fn labelled(name: &str, t: &str, labels: &[(&str, &str)]) -> ContainerInfo {
        let mut l = vec![(LABEL_MANAGED, "true"), (LABEL_TYPE, t)];
        l.extend_from_slice(labels);
        container(name, &l, "stress --cpu 1")
    }

    #[test]
    fn a_limit_stops_only_after_its_duration_and_a_reading_under_it_resets() {
        let p = policy(
            "[[rule]]\nname = \"cap\"\nselect = { type = \"ram\" }\nverdict = \"limit\"\nresource = \"memory\"\nabove = \"512MiB\"\nfor = \"20s\"\n",
        );
        let c = managed("ram-a", "ram");
        let cs = [c.clone()];
        let over = HashMap::from([(c.id.clone(), usage(0.0, 600 << 20, 0.0, 0.0))]);
        let under = HashMap::from([(c.id.clone(), usage(0.0, 100 << 20, 0.0, 0.0))]);
        let cfg = PolicyConfig::default();
        let step = |us: &HashMap<String, Usage>, s: &State, now: f64| {
            evaluate(&p, Ok(us), Ok(&cs), &host(), &cfg, s, now)
        };
        let (plan, s) = step(&over, &State::default(), 100.0);
        assert_eq!(actions(&plan)[&c.id], Action::Ignore);
        let (plan, s) = step(&over, &s, 115.0);
        assert_eq!(actions(&plan)[&c.id], Action::Ignore, "15 s of 20");
        // Under once: the clock starts again.
        let (_, s) = step(&under, &s, 118.0);
        let (plan, s) = step(&over, &s, 125.0);
        assert_eq!(actions(&plan)[&c.id], Action::Ignore);
        let (plan, _) = step(&over, &s, 145.0);
        let v = &plan.verdicts[0];
        assert_eq!(v.action, Action::Kill);
        assert_eq!(v.rule.as_deref(), Some("cap"));
        assert!(matches!(v.reason, Reason::OverLimit { over_secs, .. } if over_secs == 20.0));
    }

    #[test]
    fn a_limits_clock_survives_a_reload_that_keeps_its_name_and_selector() {
        let rule = |name: &str, typ: &str, for_s: &str| {
            policy(&format!(
                "[[rule]]\nname = \"{name}\"\nselect = {{ type = \"{typ}\" }}\nverdict = \"limit\"\nresource = \"memory\"\nabove = \"512MiB\"\nfor = \"{for_s}\"\n"
            ))
        };
        let c = managed("ram-a", "ram");
        let cs = [c.clone()];
        let over = HashMap::from([(c.id.clone(), usage(0.0, 600 << 20, 0.0, 0.0))]);
        let cfg = PolicyConfig::default();
        let (_, s) = evaluate(
            &rule("cap", "ram", "20s"),
            Ok(&over),
            Ok(&cs),
            &host(),
            &cfg,
            &State::default(),
            0.0,
        );
        // Reloaded with another duration: same name and selector, same clock.
        let (plan, _) = evaluate(
            &rule("cap", "ram", "25s"),
            Ok(&over),
            Ok(&cs),
            &host(),
            &cfg,
            &s,
            26.0,
        );
        assert_eq!(plan.verdicts[0].action, Action::Kill);
        // Another name, or another selector: a new rule, a new clock.
        for other in [rule("cap2", "ram", "25s"), policy("[[rule]]\nname = \"cap\"\nselect = { type = \"ram\", managed = true }\nverdict = \"limit\"\nresource = \"memory\"\nabove = \"512MiB\"\nfor = \"25s\"\n")] {
            let (plan, _) = evaluate(&other, Ok(&over), Ok(&cs), &host(), &cfg, &s, 26.0);
            assert_eq!(plan.verdicts[0].action, Action::Ignore);
        }
    }

    #[test]
    fn a_relative_limit_is_a_share_of_the_host() {
        let p = policy(
            "[[rule]]\nname = \"cpu\"\nselect = { type = \"cpu\" }\nverdict = \"limit\"\nresource = \"cpu\"\nabove = \"40%\"\n",
        );
        let (a, b) = (managed("cpu-a", "cpu"), managed("cpu-b", "cpu"));
        let us = HashMap::from([
            (a.id.clone(), usage(0.9, 0, 0.0, 0.0)),
            (b.id.clone(), usage(0.7, 0, 0.0, 0.0)),
        ]);
        let cs = [a.clone(), b.clone()];
        // 40 % of 2 CPUs: 0.8 cores. No `for`: at once.
        let (plan, _) = evaluate(
            &p,
            Ok(&us),
            Ok(&cs),
            &host(),
            &PolicyConfig::default(),
            &State::default(),
            10.0,
        );
        let got = actions(&plan);
        assert_eq!((got[&a.id], got[&b.id]), (Action::Kill, Action::Ignore));
    }

    #[test]
    fn pressure_stops_the_largest_one_per_cycle_until_it_clears() {
        let p = policy(
            "[[rule]]\nname = \"psi\"\nselect = { type = \"cpu\" }\nverdict = \"pressure\"\nsignal = \"cpu.some.avg10\"\nabove = 20\nfor = \"10s\"\nmax_per_episode = 2\n",
        );
        let mut cs: Vec<ContainerInfo> = (0..4)
            .map(|i| managed(&format!("cpu-{i}"), "cpu"))
            .collect();
        let us: HashMap<String, Usage> = cs
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), usage(0.1 * (i + 1) as f64, 0, 0.0, 0.0)))
            .collect();
        let mut h = host();
        let at = |avg10: f64| PsiFile {
            some: Some(PsiAverages { avg10, avg60: 0.0 }),
            full: None,
        };
        let cfg = PolicyConfig::default();
        let mut s = State::default();
        let mut stops = Vec::new();
        for (now, psi) in [
            (0.0, 50.0),
            (5.0, 50.0),
            (10.0, 50.0),
            (15.0, 50.0),
            (20.0, 50.0),
            (25.0, 5.0),
            (30.0, 50.0),
        ] {
            h.pressure.cpu = at(psi);
            let (plan, next) = evaluate(&p, Ok(&us), Ok(&cs), &h, &cfg, &s, now);
            s = next;
            let stopped: Vec<String> = plan.kills().map(|v| v.name.clone()).collect();
            // A stopped container is gone by the next cycle.
            cs.retain(|c| !stopped.contains(&c.name));
            stops.push(stopped);
        }
        // Bad from t=0; 10 s later the largest (cpu-3), then the next
        // (cpu-2), then the episode's two are spent; it clears at 25 s, and
        // a new episode starts at 30 s (not yet 10 s bad).
        let want: Vec<Vec<String>> = vec![
            vec![],
            vec![],
            vec!["cpu-3".into()],
            vec!["cpu-2".into()],
            vec![],
            vec![],
            vec![],
        ];
        assert_eq!(stops, want);
        // An unreadable signal decides nothing.
        h.pressure.cpu = PsiFile::default();
        let (plan, _) = evaluate(&p, Ok(&us), Ok(&cs), &h, &cfg, &s, 100.0);
        assert_eq!(plan.kills().count(), 0);
    }

    #[test]
    fn the_first_matching_rule_governs_and_unmatched_containers_are_not_gestors() {
        let p = policy(
            "[[rule]]\nname = \"keep-prod\"\nselect = { labels = [\"tier=prod\"] }\nverdict = \"protect\"\n\n[[rule]]\nname = \"cpu\"\nselect = { type = \"cpu\" }\nverdict = \"keep_least\"\n",
        );
        let prod = labelled("cpu-prod", "cpu", &[("tier", "prod")]);
        let a = labelled("cpu-a", "cpu", &[]);
        let b = labelled("cpu-b", "cpu", &[]);
        let r = labelled("ram-a", "ram", &[]);
        let us: HashMap<String, Usage> = [&prod, &a, &b, &r]
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), usage(1.0 - 0.1 * i as f64, 0, 0.0, 0.0)))
            .collect();
        let cs = [prod.clone(), a.clone(), b.clone(), r.clone()];
        let (plan, _) = evaluate(
            &p,
            Ok(&us),
            Ok(&cs),
            &host(),
            &PolicyConfig::default(),
            &State::default(),
            10.0,
        );
        let by_name: HashMap<&str, &Verdict> =
            plan.verdicts.iter().map(|v| (v.name.as_str(), v)).collect();
        assert_eq!(
            by_name["cpu-prod"].reason,
            Reason::ProtectedByRule {
                rule: "keep-prod".into()
            }
        );
        assert_eq!(by_name["cpu-b"].action, Action::Keep);
        assert_eq!(by_name["cpu-a"].action, Action::Kill);
        assert_eq!(by_name["ram-a"].reason, Reason::NotGoverned);
    }

    #[test]
    fn a_dry_run_rule_and_a_stop_only_rule_say_so_on_their_verdicts() {
        let p = policy(
            "[[rule]]\nname = \"cpu\"\nselect = { type = \"cpu\" }\nverdict = \"keep_least\"\ndry_run = true\n\n[[rule]]\nname = \"ram\"\nselect = { type = \"ram\" }\nverdict = \"keep_least\"\naction = \"stop\"\n",
        );
        let cs: Vec<ContainerInfo> = ["cpu", "cpu", "ram", "ram"]
            .iter()
            .enumerate()
            .map(|(i, t)| managed(&format!("{t}-{i}"), t))
            .collect();
        let us: HashMap<String, Usage> = cs
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), usage(i as f64, i as u64, 0.0, 0.0)))
            .collect();
        let (plan, _) = evaluate(
            &p,
            Ok(&us),
            Ok(&cs),
            &host(),
            &PolicyConfig::default(),
            &State::default(),
            10.0,
        );
        let kills: Vec<&Verdict> = plan.kills().collect();
        assert_eq!(kills.len(), 2);
        let cpu = kills
            .iter()
            .find(|v| v.container_type == ContainerType::Cpu)
            .unwrap();
        let ram = kills
            .iter()
            .find(|v| v.container_type == ContainerType::Ram)
            .unwrap();
        assert!(cpu.dry_run && !cpu.stop_only);
        assert!(ram.stop_only && !ram.dry_run);
    }

    /// A random policy: a few rules over types and a label, of every verdict.
    fn arb_policy() -> impl Strategy<Value = Policy> {
        let rule = (
            0usize..6,
            0usize..4,
            1usize..3,
            0.0f64..3.0,
            0u8..3,
            proptest::option::of(0usize..3),
            any::<bool>(),
        )
            .prop_map(|(sel, kind, count, limit, for_s, max, dry)| {
                let types = [
                    ContainerType::Cpu,
                    ContainerType::Ram,
                    ContainerType::Io,
                    ContainerType::Disk,
                ];
                let select = match sel {
                    0..=3 => Selector {
                        container_type: Some(types[sel]),
                        ..Selector::default()
                    },
                    4 => Selector {
                        managed: Some(true),
                        ..Selector::default()
                    },
                    _ => Selector {
                        name: Some("*".into()),
                        ..Selector::default()
                    },
                };
                let verdict = match kind {
                    0 => RuleVerdict::KeepLeast {
                        count,
                        resource: Some(Resource::Cpu),
                    },
                    1 => RuleVerdict::Limit {
                        resource: Resource::Cpu,
                        above: Threshold::Absolute(limit),
                        for_secs: f64::from(for_s) * 5.0,
                    },
                    2 => RuleVerdict::Pressure {
                        signal: Signal::MemoryAvailable,
                        trigger: Trigger::Below(0.9),
                        for_secs: 0.0,
                        resource: Resource::Cpu,
                        max_per_episode: count,
                    },
                    _ => RuleVerdict::Protect,
                };
                Rule {
                    name: String::new(),
                    select,
                    verdict,
                    dry_run: dry,
                    max_kills_per_cycle: max,
                    action: ActionKind::StopRemove,
                }
            });
        proptest::collection::vec(rule, 1..5).prop_map(|mut rules| {
            for (i, r) in rules.iter_mut().enumerate() {
                r.name = format!("r{i}");
            }
            Policy {
                rules,
                source: None,
            }
        })
    }

    fn inputs(
    ) -> impl Strategy<Value = (Vec<ContainerInfo>, HashMap<String, Usage>, HashSet<String>)> {
        proptest::collection::vec(arb_container(), 0..30).prop_map(|input| {
            let mut cs = Vec::new();
            let mut us = HashMap::new();
            let mut keepers = HashSet::new();
            let mut seen = HashSet::new();
            for (c, u, was_keeper) in input {
                if !seen.insert(c.id.clone()) {
                    continue;
                }
                if let Some(u) = u {
                    us.insert(c.id.clone(), u);
                }
                if was_keeper {
                    keepers.insert(c.id.clone());
                }
                cs.push(c);
            }
            (cs, us, keepers)
        })
    }

    /// Running managed containers of two types whose figures are close
    /// (within the keeper margin of each other or not), some sitting keepers:
    /// where the margin and the ranking decide.
    fn close_calls(
    ) -> impl Strategy<Value = (Vec<ContainerInfo>, HashMap<String, Usage>, HashSet<String>)> {
        proptest::collection::vec((0usize..2, 0usize..4, any::<bool>(), 0i64..5), 1..12).prop_map(
            |v| {
                let (mut cs, mut us, mut keepers) = (Vec::new(), HashMap::new(), HashSet::new());
                for (i, (t, level, keeper, created)) in v.into_iter().enumerate() {
                    let t = ["cpu", "ram"][t];
                    let mut c = managed(&format!("{t}-{i}"), t);
                    c.created = created;
                    let x = [1.0, 1.04, 1.08, 1.2][level];
                    us.insert(c.id.clone(), usage(x, (x * 1e9) as u64, 0.0, 0.0));
                    if keeper {
                        keepers.insert(c.id.clone());
                    }
                    cs.push(c);
                }
                (cs, us, keepers)
            },
        )
    }

    proptest! {
        /// The default policy ranks close calls exactly as today's rule.
        #[test]
        fn the_default_policy_is_todays_rule_on_close_calls((cs, us, keepers) in close_calls(), min_per_type in 1usize..3) {
            let cfg = PolicyConfig { min_per_type, ..PolicyConfig::default() };
            let today = decide(Ok(&us), Ok(&cs), &cfg, &keepers, 1_000);
            let state = State { keepers, ..State::default() };
            let (plan, _) = evaluate(
                &Policy::default_for(min_per_type), Ok(&us), Ok(&cs), &host(), &cfg, &state, 1_000.0,
            );
            prop_assert_eq!(actions(&plan), actions(&today));
        }

        /// The default policy decides exactly what gestor decided before
        /// policies existed (`policy::decide`), on any input.
        #[test]
        fn the_default_policy_is_todays_rule(
            (cs, us, keepers) in inputs(),
            min_per_type in 1usize..3,
            max_kills in 0usize..10,
            manage_unlabeled in any::<bool>(),
        ) {
            let cfg = PolicyConfig {
                min_per_type,
                max_kills_per_cycle: max_kills,
                manage_unlabeled,
                never_kill: vec![],
                stopped_grace_secs: 100,
                keeper_margin: 0.1,
            };
            let today = decide(Ok(&us), Ok(&cs), &cfg, &keepers, 1_000);
            let state = State { keepers: keepers.clone(), ..State::default() };
            let (plan, next) = evaluate(
                &Policy::default_for(min_per_type), Ok(&us), Ok(&cs), &host(), &cfg, &state, 1_000.0,
            );
            prop_assert_eq!(actions(&plan), actions(&today));
            let kept: HashSet<String> = today.keepers().map(|v| v.id.clone()).collect();
            prop_assert_eq!(next.keepers, kept);
        }

        /// Whatever the policy: the log service and protected containers are
        /// never stopped nor removed, nor a container of a `protect` rule; the
        /// bounds hold per rule and overall; a `limit` stop has been over its
        /// limit for its whole `for`.
        #[test]
        fn any_policy_keeps_its_promises(
            p in arb_policy(),
            (cs, us, keepers) in inputs(),
            max_kills in 0usize..10,
            since in proptest::collection::vec(0.0f64..30.0, 30),
        ) {
            let mut cs = cs;
            let mut log = labelled("gestor-logger", "cpu", &[]);
            log.id = "f".repeat(64);
            cs.push(log);
            let mut us = us;
            us.insert("f".repeat(64), usage(9.0, 9, 9.0, 9.0));
            let cfg = PolicyConfig {
                min_per_type: 1,
                max_kills_per_cycle: max_kills,
                manage_unlabeled: false,
                never_kill: vec!["gestor-logger".into()],
                stopped_grace_secs: 100,
                keeper_margin: 0.1,
            };
            // Timers started at random times before now.
            let now = 100.0;
            let mut state = State { keepers, ..State::default() };
            for r in &p.rules {
                for (c, s) in cs.iter().zip(&since) {
                    state.over_since.insert((Policy::rule_key(r), c.id.clone()), now - s);
                }
            }
            let (plan, _) = evaluate(&p, Ok(&us), Ok(&cs), &host(), &cfg, &state, now);
            let by_id: HashMap<&str, &ContainerInfo> = cs.iter().map(|c| (c.id.as_str(), c)).collect();
            let kills: Vec<&Verdict> = plan.kills().collect();
            prop_assert!(kills.len() <= max_kills);
            for v in plan.kills().chain(plan.removals()) {
                let c = by_id[v.id.as_str()];
                prop_assert!(c.name != "gestor-logger" && !c.labels.contains_key(LABEL_PROTECTED));
                let rule = p.rules.iter().find(|r| Some(&r.name) == v.rule.as_ref()).unwrap();
                prop_assert!(rule.verdict != RuleVerdict::Protect);
                if let (RuleVerdict::Limit { for_secs, .. }, Reason::OverLimit { over_secs, .. }) = (&rule.verdict, &v.reason) {
                    prop_assert!(over_secs >= for_secs, "{} stopped after {over_secs} s of {for_secs}", v.name);
                    let started = state.over_since[&(Policy::rule_key(rule), v.id.clone())];
                    prop_assert!(now - started >= *for_secs);
                }
            }
            for r in &p.rules {
                let n = kills.iter().filter(|v| v.rule.as_ref() == Some(&r.name)).count();
                prop_assert!(r.max_kills_per_cycle.is_none_or(|m| n <= m), "{}: {n}", r.name);
            }
        }
    }
}

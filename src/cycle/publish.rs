//! Stage 5 of a cycle, publish: log lines, records and counters for every
//! decision and what became of it, the per-container series, and the
//! /api/v1/state view of every container.

use crate::collect::usage::Usage;
use crate::cycle::act::{Acted, Outcome};
use crate::cycle::report::ContainerReport;
use crate::decide::plan::{Action, Plan, Verdict};
use crate::decide::reason::Reason;
use crate::docker::container::{short_id as short, ContainerInfo, ContainerType, ExitFacts};
use crate::metrics::{
    ContainerSample, Metrics, KILL_REASON_LIMIT, KILL_REASON_PRESSURE, KILL_REASON_SURPLUS,
    UNMEASURED_RESOURCES,
};
use crate::ship::records::{Record, RecordContext};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Log lines, records and counters for every decision and what became
/// of it.
pub fn decisions(
    metrics: &Metrics,
    ctx: &RecordContext<'_>,
    plan: &Plan,
    acted: &Acted,
    usage: &HashMap<String, Usage>,
    records: &mut Vec<Record>,
) -> Tally {
    let mut tally = Tally::default();
    let cycle = ctx.cycle;
    for v in &plan.verdicts {
        let t = v.container_type;
        let u = usage.get(&v.id);
        // An act's outcome names the intent recorded before it.
        let intent = acted.intents.get(&v.id);
        let rule = v.rule.as_deref().unwrap_or("");
        let record = |event: &str, reason: String| {
            let mut r = ctx.container_record(event, &v.id, &v.name, t, u, reason);
            r.rule = v.rule.clone();
            if let Some(intent) = intent {
                r.details = serde_json::json!({ "intent": intent });
            }
            r
        };
        let outcome = acted.outcomes.get(&v.id);
        // A failure already reported, retried within its backoff: counted,
        // logged quietly, not recorded again (see `retry`).
        if matches!(outcome, Some(Outcome::Failed { .. })) && acted.quiet.contains(&v.id) {
            if let Some(Outcome::Failed { reason, error }) = outcome {
                tally.failed += 1;
                metrics.kill_failed(t, reason);
                tracing::debug!(cycle, container = %v.name, error = %error, "failed again (backing off; reported at most hourly)");
            }
            continue;
        }
        match (v.action, outcome) {
            (Action::Ignore, _)
                if matches!(v.reason, Reason::NotMeasuredYet | Reason::Unmeasured { .. }) =>
            {
                tracing::info!(event = "unmeasured", cycle, container = %v.name, id = %short(&v.id), r#type = %t, reason = %v.reason, "not judged");
                records.push(record("unmeasured", v.reason.to_string()));
            }
            (Action::Kill | Action::Remove, Some(Outcome::Postponed)) => {
                tracing::info!(event = "postponed", cycle, container = %v.name, r#type = %t, "postponed: the cycle's time budget is spent; judged again next cycle");
            }
            (Action::Kill | Action::Remove, Some(Outcome::BackingOff)) => {
                tracing::debug!(cycle, container = %v.name, r#type = %t, "not tried: backing off after a failure");
            }
            (Action::Kill, Some(Outcome::KeeperGone { keeper, why })) => {
                let msg = format!(
                    "{t}: {} not killed: its type's keeper {keeper} {why}; judged again next cycle",
                    v.name
                );
                tracing::warn!(event = "kill_skipped", cycle, container = %v.name, r#type = %t, %keeper, "{msg}");
                records.push(record("kill_skipped", msg));
            }
            (Action::Keep, _) => {
                tracing::info!(event = "keep", cycle, container = %v.name, id = %short(&v.id), r#type = %t, reason = %v.reason, "kept");
                records.push(record("keep", v.reason.to_string()));
            }
            (Action::Defer, _) => {
                tracing::info!(event = "defer", cycle, container = %v.name, r#type = %t, reason = %v.reason, "deferred");
            }
            (Action::Kill | Action::Remove, Some(Outcome::DryRun)) => {
                let event = if v.action == Action::Kill {
                    "would_kill"
                } else {
                    "would_remove"
                };
                tracing::info!(event, cycle, container = %v.name, id = %short(&v.id), r#type = %t, reason = %v.reason, "dry run: would {}", v.action.as_str());
                records.push(record(event, format!("[dry run] {}", v.reason)));
            }
            (Action::Kill, Some(Outcome::Removed { forced })) => {
                tally.killed += 1;
                metrics.kill(rule, kill_reason(&v.reason), t);
                tracing::info!(event = "kill", cycle, container = %v.name, id = %short(&v.id), r#type = %t, rule, forced, reason = %v.reason, "killed");
                let mut reason = v.reason.to_string();
                if *forced {
                    reason.push_str(" (the stop failed: removed by force)");
                }
                records.push(record("kill", reason));
            }
            (Action::Kill, Some(Outcome::Stopped)) => {
                tally.killed += 1;
                metrics.kill(rule, kill_reason(&v.reason), t);
                tracing::info!(event = "kill", cycle, container = %v.name, id = %short(&v.id), r#type = %t, rule, reason = %v.reason, "stopped (its rule leaves it there)");
                records.push(record(
                    "kill",
                    format!("{} (stopped; its rule leaves it there)", v.reason),
                ));
            }
            (Action::Remove, Some(Outcome::Removed { .. })) => {
                tally.removed += 1;
                metrics.removed(t, removal_cause(v));
                tracing::info!(event = "remove", cycle, container = %v.name, id = %short(&v.id), r#type = %t, reason = %v.reason, "removed a stopped container");
                records.push(record("remove", v.reason.to_string()));
            }
            (Action::Kill | Action::Remove, Some(Outcome::Vanished)) => {
                tally.failed += 1;
                metrics.kill_failed(t, "vanished");
                tracing::warn!(event = "kill_failed", cycle, container = %v.name, r#type = %t, "container vanished before it could be stopped");
                records.push(record(
                    "kill_failed",
                    format!("{t}: {} vanished before it could be stopped", v.name),
                ));
            }
            (Action::Kill | Action::Remove, Some(Outcome::Changed(what))) => {
                tally.failed += 1;
                metrics.kill_failed(t, "changed");
                tracing::warn!(event = "kill_failed", cycle, container = %v.name, r#type = %t, change = %what, "not killed: it changed since the inventory saw it");
                records.push(record(
                    "kill_failed",
                    format!(
                        "{t}: {} not killed: it changed since it was judged ({what})",
                        v.name
                    ),
                ));
            }
            (Action::Kill | Action::Remove, Some(Outcome::Failed { reason, error })) => {
                tally.failed += 1;
                metrics.kill_failed(t, reason);
                let (event, verb) = if v.action == Action::Kill {
                    ("kill_failed", "kill")
                } else {
                    ("remove_failed", "remove")
                };
                let msg = format!("{t}: cannot {verb} {}: {error}", v.name);
                tracing::error!(event, cycle, container = %v.name, r#type = %t, error = %error, "{verb} failed");
                tally.errors.push(msg.clone());
                records.push(record(event, msg));
            }
            _ => {}
        }
    }
    tally
}

/// Per-container series (the containers still there) and container counts
/// by type and state.
pub fn containers(
    metrics: &Metrics,
    procfs: &Path,
    plan: &Plan,
    outcomes: &HashMap<String, Outcome>,
    usage: &HashMap<String, Usage>,
    listed: &[ContainerInfo],
) {
    let samples: Vec<ContainerSample<'_>> = plan
        .verdicts
        .iter()
        .filter(|v| !outcomes.get(&v.id).is_some_and(Outcome::gone))
        .filter_map(|v| {
            Some(ContainerSample {
                short_id: short(&v.id),
                name: &v.name,
                container_type: v.container_type,
                usage: usage.get(&v.id)?,
            })
        })
        .collect();
    metrics.set_containers(&samples);
    let mut counts: BTreeMap<(ContainerType, String), i64> = BTreeMap::new();
    for c in listed {
        if outcomes.get(&c.id).is_some_and(Outcome::gone) {
            continue;
        }
        *counts
            .entry((c.container_type(), c.state.clone()))
            .or_default() += 1;
    }
    let counts: Vec<_> = counts.into_iter().map(|((t, s), n)| (t, s, n)).collect();
    metrics.set_container_counts(&counts);
    metrics.set_unmeasured(&unmeasured(plan, usage));
    // Running containers with no process in the snapshot: a few are
    // normal (just started); all of them means the snapshot does not see
    // this host's containers (a procfs that is not the host's, cgroup
    // paths gestor cannot read), and nothing is ever judged.
    let unmeasured = plan
        .verdicts
        .iter()
        .filter(|v| v.reason == Reason::NoUsage)
        .count();
    let running = listed.iter().filter(|c| c.is_running()).count();
    if unmeasured > 1 && unmeasured == running {
        tracing::error!(
            containers = unmeasured,
            procfs = %procfs.display(),
            "NO PROCESS OF ANY RUNNING CONTAINER IN THE SNAPSHOT: nothing can be judged; is the procfs the host's, and are the cgroup paths readable?"
        );
    }
}

/// Running managed containers that could not be judged on a resource, by
/// (resource, why): none of their processes in the snapshot (every
/// resource), no rate yet (every resource: none is judged before it has
/// one), or unreadable I/O counters (io and disk).
fn unmeasured(
    plan: &Plan,
    usage: &HashMap<String, Usage>,
) -> HashMap<(&'static str, &'static str), i64> {
    let mut counts = HashMap::new();
    let mut count = |resources: &[&'static str], why: &'static str| {
        for r in resources {
            *counts.entry((*r, why)).or_default() += 1;
        }
    };
    for v in &plan.verdicts {
        let u = usage.get(&v.id);
        match (&v.reason, u) {
            (Reason::NoUsage, _) => count(&UNMEASURED_RESOURCES, "no_process"),
            (
                Reason::Kept { .. }
                | Reason::Surplus { .. }
                | Reason::Deferred { .. }
                | Reason::NotMeasuredYet
                | Reason::Unmeasured { .. }
                | Reason::OverLimit { .. }
                | Reason::WithinLimit { .. }
                | Reason::Pressure { .. }
                | Reason::PressureWatch { .. },
                Some(u),
            ) => {
                if !u.has_rates() {
                    count(&UNMEASURED_RESOURCES, "not_yet");
                } else if u.io_unavailable {
                    count(&["io", "disk"], "unreadable");
                }
            }
            _ => {}
        }
    }
    counts
}

/// The `reason` label of a kill: the kind of verdict that decided it.
fn kill_reason(reason: &Reason) -> &'static str {
    match reason {
        Reason::OverLimit { .. } => KILL_REASON_LIMIT,
        Reason::Pressure { .. } => KILL_REASON_PRESSURE,
        _ => KILL_REASON_SURPLUS,
    }
}

/// What the act stage did.
#[derive(Debug, Default)]
pub struct Tally {
    pub killed: usize,
    pub removed: usize,
    pub failed: usize,
    pub errors: Vec<String>,
}

/// Why a stopped container was removed, as the removals metric labels it.
fn removal_cause(v: &Verdict) -> &'static str {
    match &v.reason {
        Reason::Stopped { exit: Some(e), .. } if e.oom_killed => "oom_killed",
        Reason::Stopped {
            exit:
                Some(ExitFacts {
                    finished_at: Some(_),
                    ..
                }),
            ..
        } => "exited",
        Reason::Stopped { state, .. } if state == "dead" => "dead",
        _ => "never_started",
    }
}

/// The /api/v1/state view of every container the policy judged.
pub fn container_reports(
    plan: &Plan,
    outcomes: &HashMap<String, Outcome>,
    usage: &HashMap<String, Usage>,
    listed: &[ContainerInfo],
    manage_unlabeled: bool,
) -> Vec<ContainerReport> {
    let by_id: HashMap<&str, &ContainerInfo> = listed.iter().map(|c| (c.id.as_str(), c)).collect();
    plan.verdicts
        .iter()
        .map(|v| {
            let c = by_id.get(v.id.as_str());
            ContainerReport {
                id: v.id.clone(),
                short_id: short(&v.id).to_string(),
                name: v.name.clone(),
                container_type: v.container_type,
                state: c.map(|c| c.state.clone()).unwrap_or_default(),
                image: c.map(|c| c.image.clone()).unwrap_or_default(),
                managed: c.is_some_and(|c| c.is_managed(manage_unlabeled)),
                protected: c.is_some_and(|c| c.is_protected()),
                usage: usage.get(&v.id).cloned(),
                rule: v.rule.clone(),
                action: v.action,
                reason: v.reason.clone(),
                dry_run: v.dry_run,
                outcome: outcomes.get(&v.id).map(Outcome::describe),
            }
        })
        .collect()
}

//! Stage 4 of a cycle, act: stops and removes the containers the policy
//! chose, `KILL_CONCURRENCY` at a time; in a dry run, nothing.
//!
//! Before a `keep_least` rule's surplus is stopped, its keepers are
//! inspected: if one is gone or no longer running, that rule stops nothing
//! this cycle (it would otherwise end with none). A verdict of a dry-run rule
//! is not carried out; one of a rule that only stops is stopped and left
//! there. Each container to stop is re-checked against
//! Docker first. No stop or removal starts once the cycle's time budget is
//! spent (the rest is judged again next cycle), and none for a container
//! whose last try failed until its backoff has passed.

use crate::decide::plan::{Action, Plan, Verdict};
use crate::decide::reason::Reason;
use crate::docker::client::{DockerClient, KillOutcome};
use crate::docker::container::{short_id as short, ContainerInfo, ContainerType};
use crate::docker::inventory::{Inventory, Recheck};
use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt};
use std::collections::{HashMap, HashSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How many stop+remove calls run at once.
const KILL_CONCURRENCY: usize = 16;

/// What acting needs.
pub struct Act<'a> {
    pub docker: &'a DockerClient,
    pub inventory: &'a Inventory,
    /// The stop's grace period (SIGTERM, then SIGKILL).
    pub grace_secs: u32,
    pub dry_run: bool,
    /// The cycle, for the log lines.
    pub cycle: u64,
    /// No stop or removal starts after this (the cycle's budget), so the
    /// cycle ends inside the health window.
    pub start_by: Instant,
    /// Containers whose last kill or removal failed and whose retry is not
    /// due yet.
    pub backing_off: &'a HashSet<String>,
}

/// What the act stage did: each act's outcome, the failures not to report
/// again (backing off), and each act's intent record id, by container.
#[derive(Debug, Default)]
pub struct Acted {
    pub outcomes: HashMap<String, Outcome>,
    pub quiet: HashSet<String>,
    pub intents: HashMap<String, String>,
}

/// What became of one kill or removal the policy decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Removed {
        forced: bool,
    },
    /// Stopped and left there (its rule only stops).
    Stopped,
    Vanished,
    /// Not killed: the container changed since the inventory saw it.
    Changed(String),
    Failed {
        reason: &'static str,
        error: String,
    },
    /// Not started: gestor was shutting down.
    Skipped,
    DryRun,
    /// Not started: the cycle's time budget was spent; judged again next cycle.
    Postponed,
    /// Not killed: its type's keeper could not be confirmed running.
    KeeperGone {
        keeper: String,
        why: String,
    },
    /// Not tried: an earlier try failed; retried once its backoff has passed.
    BackingOff,
}

impl Outcome {
    /// The container is no longer there.
    pub fn gone(&self) -> bool {
        matches!(self, Outcome::Removed { .. } | Outcome::Vanished)
    }

    pub fn describe(&self) -> String {
        match self {
            Outcome::Removed { forced: false } => "removed".into(),
            Outcome::Removed { forced: true } => "removed by force (the stop failed)".into(),
            Outcome::Stopped => "stopped (its rule leaves it there)".into(),
            Outcome::Vanished => "vanished".into(),
            Outcome::Changed(what) => format!("not killed: it changed ({what})"),
            Outcome::Failed { error, .. } => format!("failed: {error}"),
            Outcome::Skipped => "skipped: shutting down".into(),
            Outcome::DryRun => "dry_run".into(),
            Outcome::Postponed => "postponed: the cycle's time budget was spent".into(),
            Outcome::KeeperGone { keeper, why } => {
                format!("not killed: its type's keeper {keeper} {why}")
            }
            Outcome::BackingOff => "not tried: backing off after a failure".into(),
        }
    }
}

/// Stops and removes the containers the policy chose to kill, and removes
/// the stopped ones it chose to remove, `KILL_CONCURRENCY` at a time; in a
/// dry run, nothing. No kill starts once `cancel` fired.
pub async fn carry_out(
    act: &Act<'_>,
    plan: &Plan,
    judged: &HashMap<&str, &ContainerInfo>,
    cancel: &CancellationToken,
) -> HashMap<String, Outcome> {
    // A dry run (gestor's, or the verdict's rule's) decides and does nothing.
    let (dry, work): (Vec<&Verdict>, Vec<&Verdict>) = plan
        .kills()
        .chain(plan.removals())
        .partition(|v| act.dry_run || v.dry_run);
    let mut outcomes: HashMap<String, Outcome> = dry
        .iter()
        .map(|v| (v.id.clone(), Outcome::DryRun))
        .collect();
    if work.is_empty() {
        return outcomes;
    }
    let unkept = unconfirmed_keepers(act.docker, plan).await;
    let (grace, cycle) = (act.grace_secs, act.cycle);
    let unkept = &unkept;
    let done: Vec<(String, Outcome)> = stream::iter(work)
        .map(|v| async move {
            let (id, name, action) = (v.id.clone(), &v.name, v.action);
            if cancel.is_cancelled() {
                return (id, Outcome::Skipped);
            }
            if act.backing_off.contains(&id) {
                return (id, Outcome::BackingOff);
            }
            if action == Action::Kill && matches!(v.reason, Reason::Surplus { .. }) {
                if let Some((keeper, why)) = unkept.get(&group(v)) {
                    let (keeper, why) = (keeper.clone(), why.clone());
                    return (id, Outcome::KeeperGone { keeper, why });
                }
            }
            if Instant::now() > act.start_by {
                return (id, Outcome::Postponed);
            }
            // What the policy judged may lag behind Docker (the event
            // inventory): make sure it still holds before acting.
            if let Some(c) = judged.get(id.as_str()) {
                match act.inventory.recheck(c).await {
                    Recheck::Unchanged => {}
                    Recheck::Gone => return (id, Outcome::Vanished),
                    Recheck::Changed(what) => return (id, Outcome::Changed(what)),
                    Recheck::Failed(error) => {
                        return (
                            id,
                            Outcome::Failed {
                                reason: "stop_failed",
                                error,
                            },
                        )
                    }
                }
            }
            let outcome = if action == Action::Kill {
                tracing::info!(event = "stopping", cycle, container = %name, id = %short(&id), grace_s = grace, "stopping");
                let stopped = if v.stop_only {
                    act.docker.stop_only(&id, grace, cancel).await
                } else {
                    act.docker.stop_and_remove(&id, grace, cancel).await
                };
                match stopped {
                    Ok(KillOutcome::Removed { forced }) => Outcome::Removed { forced },
                    Ok(KillOutcome::Stopped) => Outcome::Stopped,
                    Ok(KillOutcome::Vanished) => Outcome::Vanished,
                    Err(e) => Outcome::Failed {
                        reason: e.reason(),
                        error: e.to_string(),
                    },
                }
            } else {
                match act.docker.remove(&id).await {
                    Ok(()) => Outcome::Removed { forced: false },
                    Err(e) => Outcome::Failed {
                        reason: "remove_failed",
                        error: e.to_string(),
                    },
                }
            };
            (id, outcome)
        })
        .buffer_unordered(KILL_CONCURRENCY)
        .collect()
        .await;
    outcomes.extend(done);
    outcomes
}

/// The groups (a `keep_least` rule's containers; a type's, without rules)
/// that stop their surplus this cycle and have a keeper that is not running
/// now (one inspect per keeper, whatever the inventory): the keeper's name
/// and what is wrong with it.
async fn unconfirmed_keepers(
    docker: &DockerClient,
    plan: &Plan,
) -> HashMap<Group, (String, String)> {
    let killing: HashSet<Group> = plan
        .kills()
        .filter(|v| matches!(v.reason, Reason::Surplus { .. }))
        .map(group)
        .collect();
    let keepers: Vec<&Verdict> = plan
        .keepers()
        .filter(|k| killing.contains(&group(k)))
        .collect();
    let checks = join_all(keepers.iter().map(|k| docker.inspect(&k.id))).await;
    let mut out = HashMap::new();
    for (k, check) in keepers.into_iter().zip(checks) {
        let why = match check {
            Ok(Some(c)) if c.is_running() => continue,
            Ok(Some(c)) => format!("is no longer running ({})", c.state),
            Ok(None) => "is gone".to_string(),
            Err(e) => format!("could not be checked ({e})"),
        };
        tracing::warn!(r#type = %k.container_type, rule = ?k.rule, keeper = %k.name, %why, "a keeper is not running: its group kills nothing this cycle");
        out.entry(group(k)).or_insert((k.name.clone(), why));
    }
    out
}

/// Who keeps whom: a rule's containers, or a type's.
type Group = (Option<String>, Option<ContainerType>);

fn group(v: &Verdict) -> Group {
    match &v.rule {
        Some(rule) => (Some(rule.clone()), None),
        None => (None, Some(v.container_type)),
    }
}

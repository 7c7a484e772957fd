//! Stage 4 of a cycle, act: stops and removes the containers the policy
//! chose, `KILL_CONCURRENCY` at a time; in a dry run, nothing.
//!
//! Before a type's surplus is stopped, its keepers are inspected: if one is
//! gone or no longer running, that type kills nothing this cycle (it would
//! otherwise end with none). Each container to stop is re-checked against
//! Docker first. No stop or removal starts once the cycle's time budget is
//! spent (the rest is judged again next cycle), and none for a container
//! whose last try failed until its backoff has passed.

use crate::decide::plan::{Action, Plan, Verdict};
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
    let work: Vec<(String, String, Action, ContainerType)> = plan
        .kills()
        .chain(plan.removals())
        .map(|v| (v.id.clone(), v.name.clone(), v.action, v.container_type))
        .collect();
    if act.dry_run {
        return work
            .into_iter()
            .map(|(id, ..)| (id, Outcome::DryRun))
            .collect();
    }
    let unkept = unconfirmed_keepers(act.docker, plan).await;
    let (grace, cycle) = (act.grace_secs, act.cycle);
    let unkept = &unkept;
    stream::iter(work)
        .map(|(id, name, action, t)| async move {
            if cancel.is_cancelled() {
                return (id, Outcome::Skipped);
            }
            if act.backing_off.contains(&id) {
                return (id, Outcome::BackingOff);
            }
            if action == Action::Kill {
                if let Some((keeper, why)) = unkept.get(&t) {
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
                match act.docker.stop_and_remove(&id, grace, cancel).await {
                    Ok(KillOutcome::Removed { forced }) => Outcome::Removed { forced },
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
        .await
}

/// The types that have kills this cycle and a keeper that is not running
/// now (one inspect per keeper, whatever the inventory): the keeper's name
/// and what is wrong with it.
async fn unconfirmed_keepers(
    docker: &DockerClient,
    plan: &Plan,
) -> HashMap<ContainerType, (String, String)> {
    let killing: HashSet<ContainerType> = plan.kills().map(|v| v.container_type).collect();
    let keepers: Vec<&Verdict> = plan
        .keepers()
        .filter(|k| killing.contains(&k.container_type))
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
        tracing::warn!(r#type = %k.container_type, keeper = %k.name, %why, "a keeper is not running: its type kills nothing this cycle");
        out.entry(k.container_type).or_insert((k.name.clone(), why));
    }
    out
}

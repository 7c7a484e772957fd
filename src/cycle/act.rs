//! Stage 4 of a cycle, act: stops and removes the containers the policy
//! chose, each re-checked against Docker first, `KILL_CONCURRENCY` at a time;
//! in a dry run, nothing.

use crate::decide::plan::{Action, Plan};
use crate::docker::client::{DockerClient, KillOutcome};
use crate::docker::container::{short_id as short, ContainerInfo};
use crate::docker::inventory::{Inventory, Recheck};
use futures_util::stream::{self, StreamExt};
use std::collections::HashMap;
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
    let work: Vec<(String, String, Action)> = plan
        .kills()
        .chain(plan.removals())
        .map(|v| (v.id.clone(), v.name.clone(), v.action))
        .collect();
    if act.dry_run {
        return work
            .into_iter()
            .map(|(id, _, _)| (id, Outcome::DryRun))
            .collect();
    }
    let (grace, cycle) = (act.grace_secs, act.cycle);
    stream::iter(work)
        .map(|(id, name, action)| async move {
            if cancel.is_cancelled() {
                return (id, Outcome::Skipped);
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

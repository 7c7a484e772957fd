//! What the policy decides: an action and its reason for every container,
//! and whether the whole cycle is blocked.

use crate::decide::reason::{Blocked, Reason};
use crate::docker::container::{ContainerInfo, ContainerType};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A managed container kept to satisfy `min_per_type`.
    Keep,
    /// A managed container to stop and remove.
    Kill,
    /// A managed container that stopped by itself, to remove.
    Remove,
    /// A managed container that would be killed, left for a later cycle
    /// (per-cycle bound reached).
    Defer,
    /// Not ours to judge: protected, unmanaged, the log service, unknown type,
    /// not running, or no usage data this cycle.
    Ignore,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Keep => "keep",
            Action::Kill => "kill",
            Action::Remove => "remove",
            Action::Defer => "defer",
            Action::Ignore => "ignore",
        }
    }
}

/// The policy's verdict on one container.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub container_type: ContainerType,
    pub action: Action,
    pub reason: Reason,
    /// The rule that governs it (`None`: no rule does, or gestor's own
    /// protection of the log service and of protected containers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Its rule is a dry run: decided and logged, never carried out.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Its rule stops and leaves the container (no removal).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stop_only: bool,
}

impl Verdict {
    /// A verdict on `c` governed by no rule.
    pub fn on(c: &ContainerInfo, action: Action, reason: Reason) -> Verdict {
        Verdict {
            id: c.id.clone(),
            name: c.name.clone(),
            container_type: c.container_type(),
            action,
            reason,
            rule: None,
            dry_run: false,
            stop_only: false,
        }
    }
}

/// What the policy decided for one cycle.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Plan {
    /// Set when the cycle's inputs failed: then nothing is killed.
    pub blocked: Option<Blocked>,
    pub verdicts: Vec<Verdict>,
}

impl Plan {
    /// A plan that kills nothing: the cycle's inputs failed.
    pub fn blocked(why: Blocked) -> Plan {
        Plan {
            blocked: Some(why),
            verdicts: Vec::new(),
        }
    }

    /// The containers kept to satisfy `min_per_type`.
    pub fn keepers(&self) -> impl Iterator<Item = &Verdict> {
        self.verdicts.iter().filter(|v| v.action == Action::Keep)
    }

    /// Running containers to stop and remove.
    pub fn kills(&self) -> impl Iterator<Item = &Verdict> {
        self.verdicts.iter().filter(|v| v.action == Action::Kill)
    }

    /// Stopped containers to remove.
    pub fn removals(&self) -> impl Iterator<Item = &Verdict> {
        self.verdicts.iter().filter(|v| v.action == Action::Remove)
    }
}

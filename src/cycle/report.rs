//! What a cycle reports: each stage's result and every container's verdict
//! and what became of it (served at /api/v1/state, printed by `gestor once`).

use crate::collect::snapshot::SourceKind;
use crate::collect::usage::{HostUsage, Usage};
use crate::decide::plan::Action;
use crate::decide::reason::{Blocked, Reason};
use crate::decide::rules::Policy;
use crate::docker::container::ContainerType;
use serde::Serialize;
use std::collections::BTreeMap;

/// The outcome of one stage.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StageReport {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StageReport {
    pub fn ok() -> StageReport {
        StageReport {
            ok: true,
            error: None,
        }
    }

    pub fn failed(error: String) -> StageReport {
        StageReport {
            ok: false,
            error: Some(error),
        }
    }
}

/// One container as the last cycle saw it (served at /api/v1/state).
#[derive(Debug, Clone, Serialize)]
pub struct ContainerReport {
    pub id: String,
    pub short_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub container_type: ContainerType,
    pub state: String,
    pub image: String,
    pub managed: bool,
    pub protected: bool,
    pub usage: Option<Usage>,
    /// The policy rule that governs it (none: no rule selects it, or it is
    /// the log service or protected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub action: Action,
    pub reason: Reason,
    /// Its rule is a dry run: the action was decided, not carried out.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// What happened when the action was carried out (kills and removals).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

/// Everything about one cycle.
#[derive(Debug, Clone, Serialize)]
pub struct CycleReport {
    /// This gestor run (as in its records' `run_id`).
    pub run_id: String,
    pub cycle: u64,
    pub time: String,
    pub duration_seconds: f64,
    pub source: Option<SourceKind>,
    pub dry_run: bool,
    pub stages: BTreeMap<&'static str, StageReport>,
    pub blocked: Option<Blocked>,
    pub host: Option<HostUsage>,
    pub containers: Vec<ContainerReport>,
    /// The policy this cycle decided with.
    pub policy: PolicySummary,
    pub kills: usize,
    pub removals: usize,
    pub kill_failures: usize,
}

/// The policy in force, as the report and the API show it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PolicySummary {
    /// The file it was read from; none for the built-in default.
    pub file: Option<String>,
    pub rules: Vec<RuleSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleSummary {
    pub name: String,
    pub verdict: &'static str,
    pub hash: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

impl PolicySummary {
    pub fn of(policy: &Policy) -> PolicySummary {
        PolicySummary {
            file: policy.source.clone(),
            rules: policy
                .rules
                .iter()
                .map(|r| RuleSummary {
                    name: r.name.clone(),
                    verdict: r.verdict.kind(),
                    hash: Policy::rule_hash(r),
                    dry_run: r.dry_run,
                })
                .collect(),
        }
    }
}

impl CycleReport {
    pub fn ok(&self) -> bool {
        self.stages.values().all(|s| s.ok)
    }
}

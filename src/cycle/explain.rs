//! What the policy would do, container by container: the rule that governs
//! each, the figures it was judged on, the verdict and why. Printed by
//! `gestor policy explain` and served at `/api/v1/policy/explain`.

use crate::cycle::report::{CycleReport, PolicySummary};
use crate::decide::plan::Action;
use crate::decide::reason::human_bytes;
use serde::Serialize;
use std::fmt::Write;

/// One container's explanation.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub container_type: &'static str,
    /// None: no rule selects it (or gestor's own protection).
    pub rule: Option<String>,
    /// The figures it was judged on (absent: not measured).
    pub cpu_cores: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub io_chars_per_second: Option<f64>,
    pub disk_write_bytes_per_second: Option<f64>,
    pub verdict: Action,
    pub dry_run: bool,
    pub why: String,
}

/// The explanation of a cycle, with the policy it used.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub cycle: u64,
    pub time: String,
    pub policy: PolicySummary,
    pub blocked: Option<String>,
    pub containers: Vec<Entry>,
}

pub fn entries(report: &CycleReport) -> Explanation {
    let containers = report
        .containers
        .iter()
        .map(|c| {
            let u = c.usage.as_ref();
            let rates = u.filter(|u| u.has_rates());
            let io = rates.filter(|u| !u.io_unavailable);
            Entry {
                id: c.id.clone(),
                name: c.name.clone(),
                container_type: c.container_type.as_str(),
                rule: c.rule.clone(),
                cpu_cores: rates.map(|u| u.cpu_cores),
                memory_bytes: u.map(|u| u.memory_bytes),
                io_chars_per_second: io.map(|u| u.io_chars_per_second()),
                disk_write_bytes_per_second: io.map(|u| u.disk_write_bytes_per_second),
                verdict: c.action,
                dry_run: c.dry_run,
                why: c.reason.to_string(),
            }
        })
        .collect();
    Explanation {
        cycle: report.cycle,
        time: report.time.clone(),
        policy: report.policy.clone(),
        blocked: report.blocked.as_ref().map(ToString::to_string),
        containers,
    }
}

/// The explanation as a table: one line per container, sorted by rule then
/// name.
pub fn render(report: &CycleReport) -> String {
    let e = entries(report);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "policy: {} ({} rules: {})",
        e.policy.file.as_deref().unwrap_or("the default"),
        e.policy.rules.len(),
        e.policy
            .rules
            .iter()
            .map(|r| format!("{} {}", r.name, r.verdict))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(why) = &e.blocked {
        let _ = writeln!(out, "BLOCKED: {why}");
    }
    let _ = writeln!(
        out,
        "{:<24} {:<7} {:<16} {:>7} {:>10} {:>11} {:>11}  {:<8} WHY",
        "CONTAINER", "TYPE", "RULE", "CPU%", "MEM", "DISK W/s", "IO/s", "VERDICT"
    );
    let mut rows: Vec<&Entry> = e.containers.iter().collect();
    rows.sort_by(|a, b| (&a.rule, &a.name).cmp(&(&b.rule, &b.name)));
    let dash = || "-".to_string();
    for c in rows {
        let verdict = if c.dry_run && matches!(c.verdict, Action::Kill | Action::Remove) {
            format!("{}?", c.verdict.as_str())
        } else {
            c.verdict.as_str().to_string()
        };
        let _ = writeln!(
            out,
            "{:<24} {:<7} {:<16} {:>7} {:>10} {:>11} {:>11}  {:<8} {}",
            c.name.chars().take(24).collect::<String>(),
            c.container_type,
            c.rule
                .as_deref()
                .unwrap_or("-")
                .chars()
                .take(16)
                .collect::<String>(),
            c.cpu_cores
                .map_or_else(dash, |v| format!("{:.1}", v * 100.0)),
            c.memory_bytes.map_or_else(dash, |v| human_bytes(v as f64)),
            c.disk_write_bytes_per_second.map_or_else(dash, human_bytes),
            c.io_chars_per_second.map_or_else(dash, human_bytes),
            verdict,
            c.why
        );
    }
    out
}

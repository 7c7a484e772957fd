//! The table `gestor once` prints.

use crate::cycle::report::CycleReport;
use crate::decide::reason::human_bytes;
use std::fmt::Write;

/// One line per container: name, type, usage, decision, reason.
pub fn render(report: &CycleReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:<7} {:>7} {:>10} {:>11} {:>11}  {:<8} REASON",
        "CONTAINER", "TYPE", "CPU%", "MEM", "DISK W/s", "IO/s", "DECISION"
    );
    let mut rows: Vec<_> = report.containers.iter().collect();
    rows.sort_by(|a, b| (a.container_type, &a.name).cmp(&(b.container_type, &b.name)));
    for c in rows {
        // "-": not measured (no process seen, no rate yet, I/O unreadable).
        let dash = || "-".to_string();
        let (cpu, mem, disk, io) = match &c.usage {
            Some(u) if u.has_rates() && !u.io_unavailable => (
                format!("{:.1}", u.cpu_cores * 100.0),
                human_bytes(u.memory_bytes as f64),
                human_bytes(u.disk_write_bytes_per_second),
                human_bytes(u.io_chars_per_second()),
            ),
            Some(u) if u.has_rates() => (
                format!("{:.1}", u.cpu_cores * 100.0),
                human_bytes(u.memory_bytes as f64),
                dash(),
                dash(),
            ),
            Some(u) => (dash(), human_bytes(u.memory_bytes as f64), dash(), dash()),
            None => (dash(), dash(), dash(), dash()),
        };
        let decision = match (&c.outcome, report.dry_run) {
            (Some(o), _) if o != "removed" && o != "dry_run" => format!("{}!", c.action.as_str()),
            _ => c.action.as_str().to_string(),
        };
        let name: String = c.name.chars().take(24).collect();
        let _ = writeln!(
            out,
            "{:<24} {:<7} {:>7} {:>10} {:>11} {:>11}  {:<8} {}",
            name,
            c.container_type.as_str(),
            cpu,
            mem,
            disk,
            io,
            decision,
            c.reason
        );
    }
    if let Some(why) = &report.blocked {
        let _ = writeln!(out, "BLOCKED: {why}");
    }
    for (stage, s) in &report.stages {
        if let Some(e) = &s.error {
            let _ = writeln!(out, "error in {stage}: {e}");
        }
    }
    let _ = writeln!(
        out,
        "cycle {} in {:.1} ms; source {}; {} killed, {} failed{}",
        report.cycle,
        report.duration_seconds * 1e3,
        report.source.map_or("none", |s| s.as_str()),
        report.kills,
        report.kill_failures,
        if report.dry_run {
            " (dry run: nothing was killed)"
        } else {
            ""
        }
    );
    out
}

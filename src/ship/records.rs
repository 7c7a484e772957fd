//! Log records shipped to the log service: one per decision, one per cycle,
//! one per error. Pure builders; the contract is in docs/daemon.md.

use crate::collect::usage::Usage;
use crate::docker::container::ContainerType;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Unique: `<boot-unique prefix>-<cycle>-<sequence>`; the log service
    /// ignores a record whose id it already holds, so retries are safe.
    pub id: String,
    /// The gestor process run that made the record (32 hex, random per
    /// start): cycle numbers restart at 1 on every start, `(run_id, cycle)`
    /// never repeats. Empty in records spooled by an older gestor.
    #[serde(default)]
    pub run_id: String,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub host: String,
    pub cycle: u64,
    /// cycle, keep, kill, would_kill, kill_failed, error.
    pub event: String,
    pub container_id: Option<String>,
    pub container_name: Option<String>,
    pub container_type: Option<String>,
    pub cpu_ratio: Option<f64>,
    pub cpu_cores: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub memory_ratio: Option<f64>,
    pub disk_read_bytes_per_second: Option<f64>,
    pub disk_write_bytes_per_second: Option<f64>,
    pub io_read_chars_per_second: Option<f64>,
    pub io_write_chars_per_second: Option<f64>,
    pub reason: String,
    /// The policy rule that decided (container records of governed
    /// containers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

/// Hands out record ids that are unique across restarts: a random prefix per
/// process, then a counter.
#[derive(Debug)]
pub struct RecordIds {
    prefix: String,
    next: AtomicU64,
}

impl RecordIds {
    pub fn new(prefix: String) -> RecordIds {
        RecordIds {
            prefix,
            next: AtomicU64::new(0),
        }
    }

    /// A prefix from the kernel's random UUID generator.
    pub fn random() -> RecordIds {
        let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
            .map(|s| s.trim().replace('-', ""))
            .unwrap_or_else(|_| {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or_default();
                // Still 32 hex digits, as the log service expects.
                format!(
                    "{:016x}{:016x}",
                    nanos as u64,
                    u64::from(std::process::id())
                )
            });
        RecordIds::new(uuid)
    }

    /// The random part shared by every id of this run: the run's id.
    pub fn run_id(&self) -> &str {
        &self.prefix
    }

    pub fn next(&self, cycle: u64) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{}-{cycle}-{n}", self.prefix)
    }
}

/// What every record of one cycle shares.
pub struct RecordContext<'a> {
    pub ids: &'a RecordIds,
    pub host: &'a str,
    pub cycle: u64,
    pub time: &'a str,
}

/// The log service's bounds on a record's text fields, in characters
/// (`logger/app/models.py`); it also refuses U+0000 in them.
pub const MAX_NAME_CHARS: usize = 255;
pub const MAX_REASON_CHARS: usize = 8192;

/// `text` as the log service takes it: no U+0000, at most `max` characters
/// (a cut one ends in `…`). gestor's own records always pass, whatever a
/// container or host is called.
pub fn fit(text: &str, max: usize) -> String {
    let clean = text.replace('\0', "\u{FFFD}");
    if clean.chars().nth(max).is_none() {
        return clean;
    }
    let mut cut: String = clean.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

impl RecordContext<'_> {
    pub fn record(&self, event: &str, reason: String) -> Record {
        Record {
            id: self.ids.next(self.cycle),
            run_id: self.ids.run_id().to_string(),
            time: self.time.to_string(),
            host: fit(self.host, MAX_NAME_CHARS),
            cycle: self.cycle,
            event: event.to_string(),
            container_id: None,
            container_name: None,
            container_type: None,
            cpu_ratio: None,
            cpu_cores: None,
            memory_bytes: None,
            memory_ratio: None,
            disk_read_bytes_per_second: None,
            disk_write_bytes_per_second: None,
            io_read_chars_per_second: None,
            io_write_chars_per_second: None,
            reason: fit(&reason, MAX_REASON_CHARS),
            rule: None,
            details: serde_json::Value::Null,
        }
    }

    pub fn container_record(
        &self,
        event: &str,
        id: &str,
        name: &str,
        container_type: ContainerType,
        usage: Option<&Usage>,
        reason: String,
    ) -> Record {
        let mut r = self.record(event, reason);
        r.container_id = Some(id.to_string());
        r.container_name = Some(fit(name, MAX_NAME_CHARS));
        r.container_type = Some(container_type.as_str().to_string());
        if let Some(u) = usage {
            // Only figures that were measured: no rate before a container has
            // one, no disk or I/O figure when its counters could not be read.
            r.memory_bytes = Some(u.memory_bytes);
            r.memory_ratio = Some(u.memory_ratio);
            if u.has_rates() {
                r.cpu_ratio = Some(u.cpu_ratio);
                r.cpu_cores = Some(u.cpu_cores);
                if !u.io_unavailable {
                    r.disk_read_bytes_per_second = Some(u.disk_read_bytes_per_second);
                    r.disk_write_bytes_per_second = Some(u.disk_write_bytes_per_second);
                    r.io_read_chars_per_second = Some(u.io_read_chars_per_second);
                    r.io_write_chars_per_second = Some(u.io_write_chars_per_second);
                }
            }
        }
        r
    }
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-29T01:23:45.678Z`.
pub fn rfc3339_millis(t: std::time::SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    dt.format(&fmt).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fields_fit_the_log_services_bounds() {
        assert_eq!(fit("ram-3fa1", MAX_NAME_CHARS), "ram-3fa1");
        let long = "é".repeat(300);
        let cut = fit(&long, MAX_NAME_CHARS);
        assert_eq!(cut.chars().count(), MAX_NAME_CHARS);
        assert!(cut.ends_with('…'));
        assert_eq!(fit("a\0b", 10), "a\u{FFFD}b");
        let ids = RecordIds::random();
        let ctx = RecordContext {
            ids: &ids,
            host: &"h".repeat(1000),
            cycle: 1,
            time: "2026-11-29T01:23:45.678Z",
        };
        let r = ctx.container_record(
            "kill",
            &"a".repeat(64),
            &"n\0".repeat(400),
            crate::docker::container::ContainerType::Cpu,
            None,
            "r".repeat(10_000),
        );
        assert_eq!(r.host.chars().count(), MAX_NAME_CHARS);
        let name = r.container_name.unwrap();
        assert!(name.chars().count() <= MAX_NAME_CHARS && !name.contains('\0'));
        assert_eq!(r.reason.chars().count(), MAX_REASON_CHARS);
    }

    #[test]
    fn ids_are_unique_and_carry_the_cycle() {
        let ids = RecordIds::new("p".into());
        assert_eq!(ids.next(7), "p-7-0");
        assert_eq!(ids.next(7), "p-7-1");
        let a = RecordIds::random();
        let b = RecordIds::random();
        assert_ne!(a.next(1), b.next(1));
    }

    #[test]
    fn time_format() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_764_379_425_678);
        assert_eq!(rfc3339_millis(t), "2025-11-29T01:23:45.678Z");
    }

    #[test]
    fn records_serialise_with_the_contract_fields() {
        let ids = RecordIds::new("x".into());
        let ctx = RecordContext {
            ids: &ids,
            host: "h",
            cycle: 3,
            time: "2026-01-01T00:00:00.000Z",
        };
        let r = ctx.container_record(
            "kill",
            "abc",
            "ram-1",
            ContainerType::Ram,
            None,
            "why".into(),
        );
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["event"], "kill");
        assert_eq!(v["container_type"], "ram");
        assert_eq!(v["cycle"], 3);
        assert_eq!(v["run_id"], "x");
        assert!(v["memory_bytes"].is_null());
        assert!(v.get("details").is_none());
    }
}

//! The per-container series of /metrics, built at scrape time from the last
//! cycle's observation (as cAdvisor and node_exporter do with a custom
//! collector): a container that is gone is simply not in the last
//! observation, so no series outlives its container and none is removed by
//! hand.
//!
//! They change once per cycle, so the text is encoded once per cycle, at the
//! first scrape after it (not in the cycle, which would pay even when nobody
//! scrapes between two cycles), by a direct writer of the text exposition
//! format: the generic registry took 20 ms for 1,000 containers.

use crate::collect::usage::{RateBasis, Totals, Usage};
use crate::docker::container::ContainerType;
use std::collections::BTreeMap;
use std::fmt::Write;

/// One container's figures for the per-container series.
pub struct ContainerSample<'a> {
    pub short_id: &'a str,
    pub name: &'a str,
    pub container_type: ContainerType,
    pub usage: &'a Usage,
}

/// (id, name, type): the labels, in the order the text lists them.
type Key = (String, String, &'static str);

/// The counters of one container (cumulative) and its gauges (last cycle).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Series {
    cpu_seconds: f64,
    disk_read_bytes: f64,
    disk_write_bytes: f64,
    io_read_chars: f64,
    io_write_chars: f64,
    io_read_syscalls: f64,
    io_write_syscalls: f64,
    cpu_ratio: f64,
    memory_bytes: f64,
    memory_ratio: f64,
    /// The container has rates (not at first sight): its gauges of rates mean something.
    has_rates: bool,
    /// Its I/O counters were readable: its disk and I/O counters mean something.
    io_readable: bool,
}

/// What a container's counters grow by this cycle. A new series starts at
/// the container's totals (what its processes used since they started); an
/// existing one grows by the interval's growth. Growth is not a difference of
/// totals: when a process exits, the totals drop by its share while the
/// container went on working, and a high-water mark would stop counting
/// until the old peak was passed. When the rates had to start over (basis
/// `first_sight` on a series that exists: the snapshot source changed) there
/// is no interval to add.
fn counter_growth(u: &Usage, new_series: bool) -> Totals {
    match (new_series, u.basis) {
        (true, _) => u.totals,
        (false, RateBasis::Interval) => u.counted,
        (false, RateBasis::FirstSight) => Totals::default(),
    }
}

/// The per-container families: the last observation and its encoding.
#[derive(Default)]
pub struct ContainerFamilies {
    series: BTreeMap<Key, Series>,
    /// The text of `series`, once a scrape asked for it.
    text: Option<String>,
}

impl ContainerFamilies {
    /// Replaces the observation with this cycle's containers; counters go on
    /// from where they were for the containers still there.
    pub fn observe(&mut self, samples: &[ContainerSample<'_>]) {
        let mut previous = std::mem::take(&mut self.series);
        for s in samples {
            let key = (
                s.short_id.to_string(),
                s.name.to_string(),
                s.container_type.as_str(),
            );
            let before = previous.remove(&key);
            let g = counter_growth(s.usage, before.is_none());
            let b = before.unwrap_or_default();
            let u = s.usage;
            self.series.insert(
                key,
                Series {
                    cpu_seconds: b.cpu_seconds + g.cpu_time_ns as f64 / 1e9,
                    disk_read_bytes: b.disk_read_bytes + g.read_bytes as f64,
                    disk_write_bytes: b.disk_write_bytes + g.write_bytes as f64,
                    io_read_chars: b.io_read_chars + g.rchar as f64,
                    io_write_chars: b.io_write_chars + g.wchar as f64,
                    io_read_syscalls: b.io_read_syscalls + g.syscr as f64,
                    io_write_syscalls: b.io_write_syscalls + g.syscw as f64,
                    cpu_ratio: u.cpu_ratio,
                    memory_bytes: u.memory_bytes as f64,
                    memory_ratio: u.memory_ratio,
                    has_rates: u.has_rates(),
                    io_readable: !u.io_unavailable,
                },
            );
        }
        self.text = None;
    }

    /// The text exposition of the per-container families.
    pub fn text(&mut self) -> &str {
        if self.text.is_none() {
            self.text = Some(encode(&self.series));
        }
        self.text.as_deref().unwrap_or_default()
    }
}

/// One family: its name, help, type and what it shows of a container.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    value: fn(&Series) -> f64,
    /// Whether a container has a value in this family (no rate at first
    /// sight; no I/O counter when its I/O could not be read).
    shown: fn(&Series) -> bool,
}

/// The families, in name order.
const FAMILIES: [Family; 8] = [
    Family {
        name: "gestor_container_cpu_ratio",
        help: "Share of all the host's CPUs the container used over the last cycle (0..1).",
        kind: "gauge",
        value: |s| s.cpu_ratio,
        shown: |s| s.has_rates,
    },
    Family {
        name: "gestor_container_cpu_seconds_total",
        help: "CPU time used by the container's processes and the children they reaped, in seconds.",
        kind: "counter",
        value: |s| s.cpu_seconds,
        shown: |_| true,
    },
    Family {
        name: "gestor_container_disk_read_bytes_total",
        help: "Bytes the container's processes caused to be read from storage.",
        kind: "counter",
        value: |s| s.disk_read_bytes,
        shown: |s| s.io_readable,
    },
    Family {
        name: "gestor_container_disk_write_bytes_total",
        help: "Bytes the container's processes caused to be written to storage (net of cancelled writes).",
        kind: "counter",
        value: |s| s.disk_write_bytes,
        shown: |s| s.io_readable,
    },
    Family {
        name: "gestor_container_io_read_chars_total",
        help: "Bytes the container's processes read through read(2)-like calls.",
        kind: "counter",
        value: |s| s.io_read_chars,
        shown: |s| s.io_readable,
    },
    // gestor_container_io_syscalls_total (two series per container) goes here.
    Family {
        name: "gestor_container_io_write_chars_total",
        help: "Bytes the container's processes wrote through write(2)-like calls.",
        kind: "counter",
        value: |s| s.io_write_chars,
        shown: |s| s.io_readable,
    },
    Family {
        name: "gestor_container_memory_bytes",
        help: "Resident memory of the container's processes, plus its tmpfs/shm pages when its cgroup is readable, in bytes.",
        kind: "gauge",
        value: |s| s.memory_bytes,
        shown: |_| true,
    },
    Family {
        name: "gestor_container_memory_ratio",
        help: "gestor_container_memory_bytes as a share of the host's RAM (0..1).",
        kind: "gauge",
        value: |s| s.memory_ratio,
        shown: |_| true,
    },
];

/// A label value as the text format wants it (`\`, `"` and newlines escaped).
fn escaped(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\\', '"', '\n']) {
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
            .into()
    } else {
        value.into()
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn encode(series: &BTreeMap<Key, Series>) -> String {
    if series.is_empty() {
        return String::new();
    }
    // Label names in order, as the text format lists them: id, name, (op,) type.
    let id_name: Vec<String> = series
        .keys()
        .map(|(id, name, _)| format!("id=\"{}\",name=\"{}\"", escaped(id), escaped(name)))
        .collect();
    let labels: Vec<String> = id_name
        .iter()
        .zip(series.keys())
        .map(|(l, (_, _, t))| format!("{l},type=\"{t}\""))
        .collect();
    let mut out = String::with_capacity(series.len() * 1024);
    for (i, f) in FAMILIES.iter().enumerate() {
        let (name, value) = (f.name, f.value);
        if i == 5 {
            header(
                &mut out,
                "gestor_container_io_syscalls_total",
                "Read and write system calls made by the container's processes.",
                "counter",
            );
            for ((l, (_, _, t)), s) in id_name.iter().zip(series.keys()).zip(series.values()) {
                if !s.io_readable {
                    continue;
                }
                let _ = writeln!(
                    out,
                    "gestor_container_io_syscalls_total{{{l},op=\"read\",type=\"{t}\"}} {}",
                    s.io_read_syscalls
                );
                let _ = writeln!(
                    out,
                    "gestor_container_io_syscalls_total{{{l},op=\"write\",type=\"{t}\"}} {}",
                    s.io_write_syscalls
                );
            }
        }
        header(&mut out, name, f.help, f.kind);
        for (l, s) in labels.iter().zip(series.values()) {
            if !(f.shown)(s) {
                continue;
            }
            let _ = writeln!(out, "{name}{{{l}}} {}", value(s));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(total_ns: u64, grown_ns: u64, basis: RateBasis) -> Usage {
        let totals = Totals {
            processes: 1,
            cpu_time_ns: total_ns,
            ..Default::default()
        };
        Usage {
            totals,
            counted: Totals {
                cpu_time_ns: grown_ns,
                ..totals
            },
            cpu_cores: 0.5,
            cpu_ratio: 0.25,
            memory_bytes: 1024,
            memory_ratio: 0.1,
            disk_read_bytes_per_second: 0.0,
            disk_write_bytes_per_second: 0.0,
            io_read_chars_per_second: 0.0,
            io_write_chars_per_second: 0.0,
            io_syscalls_per_second: 0.0,
            basis,
            cpu_source: crate::collect::usage::CpuSource::Processes,
            io_unavailable: false,
        }
    }

    fn sample<'a>(name: &'a str, u: &'a Usage) -> ContainerSample<'a> {
        ContainerSample {
            short_id: "aaaaaaaaaaaa",
            name,
            container_type: ContainerType::Cpu,
            usage: u,
        }
    }

    fn cpu_line(f: &mut ContainerFamilies) -> Option<String> {
        f.text()
            .lines()
            .find(|l| l.starts_with("gestor_container_cpu_seconds_total{"))
            .map(String::from)
    }

    #[test]
    fn counters_add_each_interval_and_never_stop_at_a_high_water_mark() {
        let mut f = ContainerFamilies::default();
        // (totals, growth over the interval, basis, counter after)
        for (total, grown_ns, basis, want) in [
            // First sight: the container's lifetime so far.
            (3_000_000_000, 0, RateBasis::FirstSight, "3"),
            (5_000_000_000, 2_000_000_000, RateBasis::Interval, "5"),
            // A worker exited: the totals drop, the container worked 1 s more.
            (2_000_000_000, 1_000_000_000, RateBasis::Interval, "6"),
            // Rates started over (source switched): nothing to add.
            (9_000_000_000, 0, RateBasis::FirstSight, "6"),
            (9_500_000_000, 500_000_000, RateBasis::Interval, "6.5"),
        ] {
            let u = usage(total, grown_ns, basis);
            f.observe(&[sample("cpu-a", &u)]);
            assert_eq!(
                cpu_line(&mut f).unwrap(),
                format!(
                    "gestor_container_cpu_seconds_total{{id=\"aaaaaaaaaaaa\",name=\"cpu-a\",type=\"cpu\"}} {want}"
                ),
                "{total}"
            );
        }
    }

    #[test]
    fn a_container_gone_from_the_observation_has_no_series() {
        let mut f = ContainerFamilies::default();
        let u = usage(1, 1, RateBasis::Interval);
        f.observe(&[sample("cpu-a", &u), sample("cpu-b", &u)]);
        assert!(f.text().contains("cpu-b"));
        f.observe(&[sample("cpu-a", &u)]);
        assert!(!f.text().contains("cpu-b"));
        assert!(f.text().contains("cpu-a"));
        f.observe(&[]);
        assert_eq!(f.text(), "");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut f = ContainerFamilies::default();
        let u = usage(1, 1, RateBasis::Interval);
        f.observe(&[sample("we\"ird\\name\n", &u)]);
        assert!(
            f.text().contains(r#"name="we\"ird\\name\n""#),
            "{}",
            f.text()
        );
    }
}

//! gestor's Prometheus metrics, in an owned registry (no globals).
//!
//! Per-container series are removed when their container is gone, so series
//! do not pile up with 28,800 short-lived containers a day.

pub mod containers;

use crate::collect::snapshot::SourceKind;
use crate::collect::usage::HostUsage;
use crate::decide::rules::{Policy, Verdict as RuleVerdict};
use crate::docker::container::ContainerType;
use crate::docker::inventory::InventoryMetrics;
use crate::metrics::containers::ContainerFamilies;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

const NAMESPACE: &str = "gestor";

/// Why the policy kills, by the verdict of the rule: more containers than
/// a `keep_least` rule keeps, over a `limit`, the largest under `pressure`.
pub const KILL_REASON_SURPLUS: &str = "surplus";
pub const KILL_REASON_LIMIT: &str = "limit";
pub const KILL_REASON_PRESSURE: &str = "pressure";
/// Why a kill did not complete.
pub const KILL_FAILURE_REASONS: [&str; 4] = ["vanished", "stop_failed", "remove_failed", "changed"];

/// Why a stopped managed container was removed.
pub const REMOVAL_CAUSES: [&str; 4] = ["oom_killed", "exited", "dead", "never_started"];

/// The stages of one cycle, as exported in `gestor_cycle_stage_success`.
pub const STAGES: [&str; 4] = ["read", "docker", "policy", "act"];

/// The resources a container may be unmeasured for (`containers_unmeasured`).
pub const UNMEASURED_RESOURCES: [&str; 4] = ["cpu", "memory", "io", "disk"];

/// Why a container is unmeasured (`containers_unmeasured`).
pub const UNMEASURED_WHY: [&str; 3] = ["no_process", "not_yet", "unreadable"];

pub struct Metrics {
    /// gestor's own and the host's metrics, encoded at each scrape.
    registry: Registry,
    /// The per-container families, built at scrape time from the last
    /// cycle's observation (`container_metrics.rs`).
    containers_families: Mutex<ContainerFamilies>,
    host_memory_total: Gauge,
    host_memory_available: Gauge,
    host_cpu_ratio: Gauge,
    host_cpus: IntGauge,
    containers: IntGaugeVec,
    kills: IntCounterVec,
    policy_info: IntGaugeVec,
    policy_reload_failures: IntCounter,
    kill_failures: IntCounterVec,
    removals: IntCounterVec,
    unmeasured: IntGaugeVec,
    misplaced: IntGauge,
    /// Docker requests by operation; the Docker client counts into it.
    pub docker_requests: IntCounterVec,
    /// The container inventory's series; the inventory counts into them.
    pub inventory: InventoryMetrics,
    cycle_duration: Histogram,
    cycles: IntCounterVec,
    stage_success: IntGaugeVec,
    last_cycle: Gauge,
    interval: Gauge,
    health_window: Gauge,
    source: IntGaugeVec,
    errors: IntCounterVec,
    pub log_queue: IntGauge,
    pub log_spool_bytes: IntGauge,
    pub log_records: IntCounter,
    pub log_sent: IntCounter,
    pub log_retried: IntCounter,
    journal_failures: IntCounter,
    pub log_dropped: IntCounterVec,
    pub log_spool_write_errors: IntCounter,
    pub log_spool_read_errors: IntCounter,
    pub log_spool_corrupt: IntCounter,
    exported_states: Mutex<HashSet<[String; 2]>>,
}

pub use crate::metrics::containers::ContainerSample;

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace(NAMESPACE)
}

/// Registers a metric and hands it back (registration of a fresh name in a
/// fresh registry cannot fail).
fn reg<M: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: M) -> M {
    r.register(Box::new(m.clone()))
        .expect("metric names are unique");
    m
}

impl Metrics {
    pub fn new(version: &str) -> Metrics {
        let r = Registry::new();
        let m = Metrics {
            containers_families: Mutex::new(ContainerFamilies::default()),
            host_memory_total: reg(
                &r,
                Gauge::with_opts(opts("host_memory_total_bytes", "Host RAM, in bytes.")).unwrap(),
            ),
            host_memory_available: reg(
                &r,
                Gauge::with_opts(opts(
                    "host_memory_available_bytes",
                    "Host RAM available for new work (MemAvailable), in bytes.",
                ))
                .unwrap(),
            ),
            host_cpu_ratio: reg(
                &r,
                Gauge::with_opts(opts(
                    "host_cpu_usage_ratio",
                    "Busy share of all the host's CPUs over the last cycle (0..1).",
                ))
                .unwrap(),
            ),
            host_cpus: reg(
                &r,
                IntGauge::with_opts(opts("host_cpus", "Online CPUs of the host.")).unwrap(),
            ),
            containers: reg(
                &r,
                IntGaugeVec::new(
                    opts("containers", "Containers in scope, by type and Docker state."),
                    &["type", "state"],
                )
                .unwrap(),
            ),
            kills: reg(
                &r,
                IntCounterVec::new(
                    opts(
                        "kills_total",
                        "Containers stopped (and removed, unless the rule only stops), by the rule that decided, its reason (surplus, limit, pressure) and the container's type.",
                    ),
                    &["rule", "reason", "type"],
                )
                .unwrap(),
            ),
            policy_info: reg(
                &r,
                IntGaugeVec::new(
                    opts(
                        "policy_info",
                        "1 for each rule of the policy in force, with a hash of the rule (it changes when the rule does).",
                    ),
                    &["rule", "hash"],
                )
                .unwrap(),
            ),
            policy_reload_failures: reg(
                &r,
                IntCounter::with_opts(opts(
                    "policy_reload_failures_total",
                    "Policy reloads (SIGHUP, or a change of the file with --policy-watch) refused because the file did not validate: the running policy stays.",
                ))
                .unwrap(),
            ),
            kill_failures: reg(
                &r,
                IntCounterVec::new(
                    opts(
                        "kill_failures_total",
                        "Kills that did not complete, by type and reason (vanished, stop_failed, remove_failed).",
                    ),
                    &["type", "reason"],
                )
                .unwrap(),
            ),
            removals: reg(
                &r,
                IntCounterVec::new(
                    opts(
                        "removals_total",
                        "Managed containers that stopped by themselves and were removed, by type and cause (oom_killed, exited, dead, never_started).",
                    ),
                    &["type", "cause"],
                )
                .unwrap(),
            ),
            docker_requests: reg(
                &r,
                IntCounterVec::new(
                    opts(
                        "docker_requests_total",
                        "Requests gestor made to the Docker API, by operation (list, inspect, events, stop, remove, version, ...).",
                    ),
                    &["op"],
                )
                .unwrap(),
            ),
            inventory: InventoryMetrics {
            drift: reg(
                &r,
                IntCounter::with_opts(opts(
                    "inventory_drift_total",
                    "Containers the event-kept inventory had wrong when a full listing checked it (then corrected).",
                ))
                .unwrap(),
            ),
            resyncs: reg(
                &r,
                IntCounter::with_opts(opts(
                    "inventory_resyncs_total",
                    "Full listings that (re)started the event-kept inventory: at start, after each loss of the event stream, and after an event that could not be applied.",
                ))
                .unwrap(),
            ),
            events: reg(
                &r,
                IntCounterVec::new(
                    opts("inventory_events_total", "Docker container events applied to the inventory, by action."),
                    &["action"],
                )
                .unwrap(),
            ),
            stale: reg(
                &r,
                IntGauge::with_opts(opts(
                    "inventory_stale",
                    "1 while the container inventory cannot be trusted (the event stream dropped and no listing has run since): no kills.",
                ))
                .unwrap(),
            ),
            },
            unmeasured: reg(
                &r,
                IntGaugeVec::new(
                    opts(
                        "containers_unmeasured",
                        "Running containers in scope whose figure for a resource (cpu, memory, io, disk) could not be used last cycle, by why: no_process (none of its processes in the snapshot; all of them, for long: is the procfs the host's?), not_yet (no rate over an interval yet), unreadable (its I/O counters were refused). Such a container is not judged on that resource.",
                    ),
                    &["resource", "why"],
                )
                .unwrap(),
            ),
            misplaced: reg(
                &r,
                IntGauge::with_opts(opts(
                    "processes_misplaced",
                    "Processes in the last snapshot whose cgroup names a container Docker placed elsewhere (a forged or delegated cgroup): not counted for that container.",
                ))
                .unwrap(),
            ),
            cycle_duration: reg(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new("cycle_duration_seconds", "Duration of one cycle, in seconds.")
                        .namespace(NAMESPACE)
                        .buckets(vec![
                            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                            10.0, 30.0,
                        ]),
                )
                .unwrap(),
            ),
            cycles: reg(
                &r,
                IntCounterVec::new(
                    opts("cycles_total", "Cycles run, by result (ok or failed)."),
                    &["result"],
                )
                .unwrap(),
            ),
            stage_success: reg(
                &r,
                IntGaugeVec::new(
                    opts(
                        "cycle_stage_success",
                        "Whether each stage of the last cycle succeeded (1) or failed (0).",
                    ),
                    &["stage"],
                )
                .unwrap(),
            ),
            last_cycle: reg(
                &r,
                Gauge::with_opts(opts(
                    "last_cycle_timestamp_seconds",
                    "When the last cycle ended, in Unix seconds.",
                ))
                .unwrap(),
            ),
            interval: reg(
                &r,
                Gauge::with_opts(opts(
                    "cycle_interval_seconds",
                    "The configured time between cycles, in seconds.",
                ))
                .unwrap(),
            ),
            health_window: reg(
                &r,
                Gauge::with_opts(opts(
                    "health_window_seconds",
                    "How long /healthz accepts since the last cycle ended before it calls gestor stuck: 3 intervals + 30 s + the longest a stop may take (its grace + 10 s), in seconds.",
                ))
                .unwrap(),
            ),
            source: reg(
                &r,
                IntGaugeVec::new(
                    opts(
                        "snapshot_source",
                        "The snapshot source in use (1) and the other one (0).",
                    ),
                    &["source"],
                )
                .unwrap(),
            ),
            errors: reg(
                &r,
                IntCounterVec::new(opts("errors_total", "Errors, by cycle stage."), &["stage"])
                    .unwrap(),
            ),
            log_queue: reg(
                &r,
                IntGauge::with_opts(opts(
                    "log_queue_records",
                    "Log records waiting to be shipped (in memory and in the spool).",
                ))
                .unwrap(),
            ),
            log_spool_bytes: reg(
                &r,
                IntGauge::with_opts(opts("log_spool_bytes", "Size of the on-disk log spool, in bytes."))
                    .unwrap(),
            ),
            log_records: reg(
                &r,
                IntCounter::with_opts(opts(
                    "log_records_total",
                    "Log records the cycles produced and handed to the shipper.",
                ))
                .unwrap(),
            ),
            log_sent: reg(
                &r,
                IntCounter::with_opts(opts(
                    "log_records_sent_total",
                    "Log records the log service acknowledged.",
                ))
                .unwrap(),
            ),
            log_retried: reg(
                &r,
                IntCounter::with_opts(opts(
                    "log_records_retried_total",
                    "Log records sent again after a failed attempt.",
                ))
                .unwrap(),
            ),
            journal_failures: reg(
                &r,
                IntCounter::with_opts(opts(
                    "intent_journal_failures_total",
                    "Cycles whose intents could not be written to the intent journal before acting (they acted anyway: a crash then would leave those acts without a record).",
                ))
                .unwrap(),
            ),
            log_dropped: reg(
                &r,
                IntCounterVec::new(
                    opts(
                        "log_records_dropped_total",
                        "Log records given up on, by reason (spool_full, spool_io, rejected, corrupt).",
                    ),
                    &["reason"],
                )
                .unwrap(),
            ),
            log_spool_write_errors: reg(
                &r,
                IntCounter::with_opts(opts(
                    "log_spool_write_errors_total",
                    "Writes of a spool segment that failed (the records waited in memory).",
                ))
                .unwrap(),
            ),
            log_spool_read_errors: reg(
                &r,
                IntCounter::with_opts(opts(
                    "log_spool_read_errors_total",
                    "Reads of a spool segment that failed (the segment is kept and read again later).",
                ))
                .unwrap(),
            ),
            log_spool_corrupt: reg(
                &r,
                IntCounter::with_opts(opts(
                    "log_spool_corrupt_total",
                    "Spool segments found corrupt and moved aside to <name>.corrupt.",
                ))
                .unwrap(),
            ),
            exported_states: Mutex::new(HashSet::new()),
            registry: r,
        };
        let build = reg(
            &m.registry,
            IntGaugeVec::new(
                opts("build_info", "gestor's version; always 1."),
                &["version"],
            )
            .unwrap(),
        );
        build.with_label_values(&[version]).set(1);
        for stage in STAGES {
            m.stage_success.with_label_values(&[stage]).set(0);
            m.errors.with_label_values(&[stage]);
        }
        for result in ["ok", "failed"] {
            m.cycles.with_label_values(&[result]);
        }
        for op in ["version", "list", "inspect", "events", "stop", "remove"] {
            m.docker_requests.with_label_values(&[op]);
        }
        for reason in ["spool_full", "rejected", "spool_io", "corrupt"] {
            m.log_dropped.with_label_values(&[reason]);
        }
        // Initialised at 0 so rate() and dashboards work before the first
        // kill (the kills, once the policy is known: `set_policy`).
        for t in ContainerType::KNOWN {
            for reason in KILL_FAILURE_REASONS {
                m.kill_failures.with_label_values(&[t.as_str(), reason]);
            }
            for cause in REMOVAL_CAUSES {
                m.removals.with_label_values(&[t.as_str(), cause]);
            }
        }
        m.set_unmeasured(&HashMap::new());
        m
    }

    /// The per-container series: this cycle's containers (the others' go).
    pub fn set_containers(&self, samples: &[ContainerSample<'_>]) {
        self.containers_families.lock().unwrap().observe(samples);
    }

    /// Container counts by (type, state); combinations that disappeared are removed.
    pub fn set_container_counts(&self, counts: &[(ContainerType, String, i64)]) {
        let mut now = HashSet::new();
        for (t, state, n) in counts {
            self.containers
                .with_label_values(&[t.as_str(), state])
                .set(*n);
            now.insert([t.as_str().to_string(), state.clone()]);
        }
        let mut exported = self.exported_states.lock().unwrap();
        for gone in exported.difference(&now) {
            let _ = self.containers.remove_label_values(&[&gone[0], &gone[1]]);
        }
        *exported = now;
    }

    pub fn set_host(&self, h: &HostUsage) {
        self.host_memory_total.set(h.memory_total_bytes as f64);
        self.host_memory_available
            .set(h.memory_available_bytes as f64);
        self.host_cpu_ratio.set(h.cpu_ratio);
        self.host_cpus.set(i64::from(h.cpus));
    }

    pub fn set_source(&self, kind: SourceKind) {
        for k in [SourceKind::Kernel, SourceKind::Userspace] {
            self.source
                .with_label_values(&[k.as_str()])
                .set(i64::from(k == kind));
        }
    }

    pub fn kill(&self, rule: &str, reason: &str, t: ContainerType) {
        self.kills
            .with_label_values(&[rule, reason, t.as_str()])
            .inc();
    }

    /// The policy in force: `gestor_policy_info{rule,hash}` for each of its
    /// rules (the old ones go), and its kill series at 0.
    pub fn set_policy(&self, policy: &Policy) {
        self.policy_info.reset();
        for rule in &policy.rules {
            self.policy_info
                .with_label_values(&[rule.name.as_str(), Policy::rule_hash(rule).as_str()])
                .set(1);
            let reason = match rule.verdict {
                RuleVerdict::KeepLeast { .. } => KILL_REASON_SURPLUS,
                RuleVerdict::Limit { .. } => KILL_REASON_LIMIT,
                RuleVerdict::Pressure { .. } => KILL_REASON_PRESSURE,
                RuleVerdict::Protect => continue,
            };
            // A container of no known type is never stopped by the default.
            let types: Vec<ContainerType> = match rule.select.container_type {
                Some(ContainerType::Unknown) => vec![],
                Some(t) => vec![t],
                None => ContainerType::KNOWN.to_vec(),
            };
            for t in types {
                self.kills
                    .with_label_values(&[rule.name.as_str(), reason, t.as_str()]);
            }
        }
    }

    pub fn policy_reload_failed(&self) {
        self.policy_reload_failures.inc();
    }

    pub fn set_interval(&self, seconds: f64) {
        self.interval.set(seconds);
    }

    pub fn set_health_window(&self, seconds: f64) {
        self.health_window.set(seconds);
    }

    pub fn set_misplaced(&self, n: usize) {
        self.misplaced.set(n as i64);
    }

    pub fn journal_failed(&self) {
        self.journal_failures.inc();
    }

    /// Unmeasured containers by (resource, why); every pair is set, absent
    /// ones to 0.
    pub fn set_unmeasured(&self, counts: &HashMap<(&str, &str), i64>) {
        for resource in UNMEASURED_RESOURCES {
            for why in UNMEASURED_WHY {
                let n = counts.get(&(resource, why)).copied().unwrap_or(0);
                self.unmeasured.with_label_values(&[resource, why]).set(n);
            }
        }
    }

    pub fn removed(&self, t: ContainerType, cause: &str) {
        self.removals.with_label_values(&[t.as_str(), cause]).inc();
    }

    pub fn kill_failed(&self, t: ContainerType, reason: &str) {
        self.kill_failures
            .with_label_values(&[t.as_str(), reason])
            .inc();
    }

    pub fn stage(&self, stage: &str, ok: bool) {
        self.stage_success
            .with_label_values(&[stage])
            .set(i64::from(ok));
        if !ok {
            self.errors.with_label_values(&[stage]).inc();
        }
    }

    pub fn cycle_done(&self, seconds: f64, ok: bool, unix_now: f64) {
        self.cycle_duration.observe(seconds);
        self.cycles
            .with_label_values(&[if ok { "ok" } else { "failed" }])
            .inc();
        self.last_cycle.set(unix_now);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let own = encode(&self.registry);
        let mut families = self.containers_families.lock().unwrap();
        let containers = families.text();
        let mut text = String::with_capacity(own.len() + containers.len());
        text.push_str(&own);
        text.push_str(containers);
        text
    }
}

fn encode(registry: &Registry) -> String {
    let mut buf = Vec::with_capacity(16 * 1024);
    TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .expect("text encoding into a Vec cannot fail");
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::usage::{CpuSource, RateBasis, Totals, Usage};

    fn usage(cpu_ns: u64, mem: u64) -> Usage {
        let totals = Totals {
            processes: 1,
            cpu_time_ns: cpu_ns,
            rss_bytes: mem,
            ..Default::default()
        };
        Usage {
            totals,
            counted: totals,
            cpu_cores: 0.5,
            cpu_ratio: 0.25,
            memory_bytes: mem,
            memory_ratio: 0.1,
            disk_read_bytes_per_second: 0.0,
            disk_write_bytes_per_second: 0.0,
            io_read_chars_per_second: 0.0,
            io_write_chars_per_second: 0.0,
            io_syscalls_per_second: 0.0,
            basis: RateBasis::Interval,
            cpu_source: CpuSource::Processes,
            io_unavailable: false,
        }
    }

    #[test]
    fn series_of_gone_containers_are_removed() {
        let m = Metrics::new("test");
        let (a, b) = (usage(2_000_000_000, 100), usage(0, 200));
        m.set_containers(&[
            ContainerSample {
                short_id: "aaaaaaaaaaaa",
                name: "cpu-a",
                container_type: ContainerType::Cpu,
                usage: &a,
            },
            ContainerSample {
                short_id: "bbbbbbbbbbbb",
                name: "ram-b",
                container_type: ContainerType::Ram,
                usage: &b,
            },
        ]);
        let text = m.render();
        assert!(text.contains(
            "gestor_container_cpu_seconds_total{id=\"aaaaaaaaaaaa\",name=\"cpu-a\",type=\"cpu\"} 2"
        ));
        assert!(text.contains("name=\"ram-b\""));
        m.set_containers(&[ContainerSample {
            short_id: "aaaaaaaaaaaa",
            name: "cpu-a",
            container_type: ContainerType::Cpu,
            usage: &a,
        }]);
        let text = m.render();
        assert!(!text.contains("ram-b"), "{text}");
        assert!(text.contains("cpu-a"));
    }

    #[test]
    fn state_counts_drop_combinations_that_disappear() {
        let m = Metrics::new("test");
        m.set_container_counts(&[
            (ContainerType::Cpu, "running".into(), 3),
            (ContainerType::Io, "exited".into(), 1),
        ]);
        assert!(m
            .render()
            .contains("gestor_containers{state=\"exited\",type=\"io\"} 1"));
        m.set_container_counts(&[(ContainerType::Cpu, "running".into(), 2)]);
        let text = m.render();
        assert!(!text.contains("gestor_containers{state=\"exited\",type=\"io\"}"));
        assert!(text.contains("gestor_containers{state=\"running\",type=\"cpu\"} 2"));
    }

    #[test]
    fn exposition_has_the_expected_families() {
        let m = Metrics::new("1.2.3");
        m.set_source(SourceKind::Userspace);
        m.set_policy(&crate::decide::rules::Policy::default_for(1));
        m.stage("read", false);
        m.cycle_done(0.01, false, 1_700_000_000.0);
        let text = m.render();
        for needle in [
            "gestor_build_info{version=\"1.2.3\"} 1",
            "gestor_snapshot_source{source=\"userspace\"} 1",
            "gestor_snapshot_source{source=\"kernel\"} 0",
            "gestor_cycle_stage_success{stage=\"read\"} 0",
            "gestor_errors_total{stage=\"read\"} 1",
            "gestor_cycles_total{result=\"failed\"} 1",
            "gestor_cycle_duration_seconds_count 1",
            "# TYPE gestor_kills_total counter",
        ] {
            assert!(text.contains(needle), "missing {needle}\n{text}");
        }
    }
}

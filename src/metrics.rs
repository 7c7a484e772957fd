//! gestor's Prometheus metrics, in an owned registry (no globals).
//!
//! Per-container series are removed when their container is gone, so series
//! do not pile up with 28,800 short-lived containers a day.

use crate::container::ContainerType;
use crate::snapshot::SourceKind;
use crate::usage::{HostUsage, RateBasis, Totals, Usage};
use prometheus::{
    Counter, CounterVec, Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::collections::HashSet;
use std::sync::{Mutex, RwLock};

const NAMESPACE: &str = "gestor";
const CONTAINER_LABELS: [&str; 3] = ["id", "name", "type"];

/// Why the policy kills: more managed containers of a type than needed.
pub const KILL_REASON_SURPLUS: &str = "surplus";
/// Why a kill did not complete.
pub const KILL_FAILURE_REASONS: [&str; 4] = ["vanished", "stop_failed", "remove_failed", "changed"];

/// Why a stopped managed container was removed.
pub const REMOVAL_CAUSES: [&str; 4] = ["oom_killed", "exited", "dead", "never_started"];

/// The stages of one cycle, as exported in `gestor_cycle_stage_success`.
pub const STAGES: [&str; 4] = ["read", "docker", "policy", "act"];

pub struct Metrics {
    /// gestor's own and the host's metrics, encoded at each scrape.
    registry: Registry,
    /// The per-container families. They change once per cycle, so they are
    /// encoded once per cycle (in `set_containers`) into `container_text`,
    /// not at every scrape: a scrape of 1,000 containers then costs a copy.
    per_container: Registry,
    container_text: RwLock<String>,
    container_cpu_seconds: CounterVec,
    container_cpu_ratio: GaugeVec,
    container_memory_bytes: GaugeVec,
    container_memory_ratio: GaugeVec,
    container_disk_read_bytes: CounterVec,
    container_disk_write_bytes: CounterVec,
    container_io_read_chars: CounterVec,
    container_io_write_chars: CounterVec,
    container_io_syscalls: CounterVec,
    host_memory_total: Gauge,
    host_memory_available: Gauge,
    host_cpu_ratio: Gauge,
    host_cpus: IntGauge,
    containers: IntGaugeVec,
    kills: IntCounterVec,
    kill_failures: IntCounterVec,
    removals: IntCounterVec,
    unmeasured: IntGauge,
    /// Docker requests by operation; the Docker client counts into it.
    pub docker_requests: IntCounterVec,
    inventory_drift_total: IntCounter,
    inventory_resyncs: IntCounter,
    inventory_events: IntCounterVec,
    inventory_stale_gauge: IntGauge,
    cycle_duration: Histogram,
    cycles: IntCounterVec,
    stage_success: IntGaugeVec,
    last_cycle: Gauge,
    interval: Gauge,
    source: IntGaugeVec,
    errors: IntCounterVec,
    pub log_queue: IntGauge,
    pub log_spool_bytes: IntGauge,
    pub log_records: IntCounter,
    pub log_sent: IntCounter,
    pub log_retried: IntCounter,
    pub log_dropped: IntCounterVec,
    exported_containers: Mutex<HashSet<[String; 3]>>,
    exported_states: Mutex<HashSet<[String; 2]>>,
}

/// One container's figures for the per-container series.
pub struct ContainerSample<'a> {
    pub short_id: &'a str,
    pub name: &'a str,
    pub container_type: ContainerType,
    pub usage: &'a Usage,
}

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

/// What a container's counters grow by this cycle. A new series starts at
/// the container's totals (what its processes used since they started); an
/// existing one grows by the interval's growth. Growth is not a difference of
/// totals: when a process exits, the totals drop by its share while the
/// container went on working, and a high-water mark would stop counting
/// until the old peak was passed. When the rates had to start over (basis
/// `lifetime` on a series that exists: the snapshot source changed) there is
/// no interval to add.
fn counter_growth(u: &Usage, new_series: bool) -> Option<Totals> {
    match (new_series, u.basis) {
        (true, _) => Some(u.totals),
        (false, RateBasis::Interval) => Some(u.counted),
        (false, RateBasis::Lifetime) => None,
    }
}

fn add(c: &Counter, value: u64, scale: f64) {
    if value > 0 {
        c.inc_by(value as f64 * scale);
    }
}

impl Metrics {
    pub fn new(version: &str) -> Metrics {
        let r = Registry::new();
        let per_container = Registry::new();
        let cvec = |name: &str, help: &str| {
            reg(
                &per_container,
                CounterVec::new(opts(name, help), &CONTAINER_LABELS).unwrap(),
            )
        };
        let gvec = |name: &str, help: &str| {
            reg(
                &per_container,
                GaugeVec::new(opts(name, help), &CONTAINER_LABELS).unwrap(),
            )
        };
        let m = Metrics {
            container_cpu_seconds: cvec(
                "container_cpu_seconds_total",
                "CPU time used by the container's processes, in seconds.",
            ),
            container_cpu_ratio: gvec(
                "container_cpu_ratio",
                "Share of all the host's CPUs the container used over the last cycle (0..1).",
            ),
            container_memory_bytes: gvec(
                "container_memory_bytes",
                "Resident memory of the container's processes, in bytes.",
            ),
            container_memory_ratio: gvec(
                "container_memory_ratio",
                "Resident memory of the container as a share of the host's RAM (0..1).",
            ),
            container_disk_read_bytes: cvec(
                "container_disk_read_bytes_total",
                "Bytes the container's processes caused to be read from storage.",
            ),
            container_disk_write_bytes: cvec(
                "container_disk_write_bytes_total",
                "Bytes the container's processes caused to be written to storage.",
            ),
            container_io_read_chars: cvec(
                "container_io_read_chars_total",
                "Bytes the container's processes read through read(2)-like calls.",
            ),
            container_io_write_chars: cvec(
                "container_io_write_chars_total",
                "Bytes the container's processes wrote through write(2)-like calls.",
            ),
            container_io_syscalls: reg(
                &per_container,
                CounterVec::new(
                    opts(
                        "container_io_syscalls_total",
                        "Read and write system calls made by the container's processes.",
                    ),
                    &["id", "name", "type", "op"],
                )
                .unwrap(),
            ),
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
                    opts("kills_total", "Containers stopped and removed, by type and reason."),
                    &["type", "reason"],
                )
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
            inventory_drift_total: reg(
                &r,
                IntCounter::with_opts(opts(
                    "inventory_drift_total",
                    "Containers the event-kept inventory had wrong when a full listing checked it (then corrected).",
                ))
                .unwrap(),
            ),
            inventory_resyncs: reg(
                &r,
                IntCounter::with_opts(opts(
                    "inventory_resyncs_total",
                    "Full listings that (re)started the event-kept inventory: at start and after each loss of the event stream.",
                ))
                .unwrap(),
            ),
            inventory_events: reg(
                &r,
                IntCounterVec::new(
                    opts("inventory_events_total", "Docker container events applied to the inventory, by action."),
                    &["action"],
                )
                .unwrap(),
            ),
            inventory_stale_gauge: reg(
                &r,
                IntGauge::with_opts(opts(
                    "inventory_stale",
                    "1 while the container inventory cannot be trusted (the event stream dropped and no listing has run since): no kills.",
                ))
                .unwrap(),
            ),
            unmeasured: reg(
                &r,
                IntGauge::with_opts(opts(
                    "containers_unmeasured",
                    "Running containers in scope with no process in the last snapshot (none is ever judged: is the procfs the host's?).",
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
                    "The configured time between cycles, in seconds (alerts derive staleness from it).",
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
            exported_containers: Mutex::new(HashSet::new()),
            exported_states: Mutex::new(HashSet::new()),
            container_text: RwLock::new(String::new()),
            per_container,
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
        // Initialised at 0 so rate() and dashboards work before the first kill.
        for t in ContainerType::KNOWN {
            m.kills
                .with_label_values(&[t.as_str(), KILL_REASON_SURPLUS]);
            for reason in KILL_FAILURE_REASONS {
                m.kill_failures.with_label_values(&[t.as_str(), reason]);
            }
            for cause in REMOVAL_CAUSES {
                m.removals.with_label_values(&[t.as_str(), cause]);
            }
        }
        m
    }

    /// Sets the per-container series and removes those of containers that are gone.
    pub fn set_containers(&self, samples: &[ContainerSample<'_>]) {
        let mut now = HashSet::with_capacity(samples.len());
        let known = self.exported_containers.lock().unwrap().clone();
        for s in samples {
            let l = [s.short_id, s.name, s.container_type.as_str()];
            let key = l.map(String::from);
            let u = s.usage;
            if let Some(g) = counter_growth(u, !known.contains(&key)) {
                add(
                    &self.container_cpu_seconds.with_label_values(&l),
                    g.cpu_time_ns,
                    1e-9,
                );
                add(
                    &self.container_disk_read_bytes.with_label_values(&l),
                    g.read_bytes,
                    1.0,
                );
                add(
                    &self.container_disk_write_bytes.with_label_values(&l),
                    g.write_bytes,
                    1.0,
                );
                add(
                    &self.container_io_read_chars.with_label_values(&l),
                    g.rchar,
                    1.0,
                );
                add(
                    &self.container_io_write_chars.with_label_values(&l),
                    g.wchar,
                    1.0,
                );
                let [a, b, c] = l;
                add(
                    &self
                        .container_io_syscalls
                        .with_label_values(&[a, b, c, "read"]),
                    g.syscr,
                    1.0,
                );
                add(
                    &self
                        .container_io_syscalls
                        .with_label_values(&[a, b, c, "write"]),
                    g.syscw,
                    1.0,
                );
            }
            self.container_cpu_ratio
                .with_label_values(&l)
                .set(u.cpu_ratio);
            self.container_memory_bytes
                .with_label_values(&l)
                .set(u.memory_bytes as f64);
            self.container_memory_ratio
                .with_label_values(&l)
                .set(u.memory_ratio);
            now.insert(key);
        }
        let mut exported = self.exported_containers.lock().unwrap();
        for gone in exported.difference(&now) {
            let l: [&str; 3] = [&gone[0], &gone[1], &gone[2]];
            for v in [
                &self.container_cpu_seconds,
                &self.container_disk_read_bytes,
                &self.container_disk_write_bytes,
                &self.container_io_read_chars,
                &self.container_io_write_chars,
            ] {
                let _ = v.remove_label_values(&l);
            }
            for v in [
                &self.container_cpu_ratio,
                &self.container_memory_bytes,
                &self.container_memory_ratio,
            ] {
                let _ = v.remove_label_values(&l);
            }
            for op in ["read", "write"] {
                let _ = self
                    .container_io_syscalls
                    .remove_label_values(&[l[0], l[1], l[2], op]);
            }
        }
        *exported = now;
        drop(exported);
        *self.container_text.write().unwrap() = encode(&self.per_container);
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

    pub fn kill(&self, t: ContainerType, reason: &str) {
        self.kills.with_label_values(&[t.as_str(), reason]).inc();
    }

    pub fn inventory_stale(&self, stale: bool) {
        self.inventory_stale_gauge.set(i64::from(stale));
    }

    pub fn inventory_drift(&self, n: usize) {
        self.inventory_drift_total.inc_by(n as u64);
    }

    pub fn inventory_resync(&self) {
        self.inventory_resyncs.inc();
    }

    pub fn inventory_event(&self, action: &str) {
        self.inventory_events.with_label_values(&[action]).inc();
    }

    pub fn set_interval(&self, seconds: f64) {
        self.interval.set(seconds);
    }

    pub fn set_unmeasured(&self, n: usize) {
        self.unmeasured.set(n as i64);
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
        let containers = self.container_text.read().unwrap();
        let mut text = String::with_capacity(16 * 1024 + containers.len());
        text.push_str(&encode(&self.registry));
        text.push_str(&containers);
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
    use crate::usage::{RateBasis, Totals};

    /// Usage whose totals are `cpu_ns` and whose interval grew by `grown_ns`.
    fn grown(cpu_ns: u64, grown_ns: u64, basis: RateBasis) -> Usage {
        let mut u = usage(cpu_ns, 0);
        u.counted.cpu_time_ns = grown_ns;
        u.basis = basis;
        u
    }

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
    fn counters_add_each_interval_and_never_stop_at_a_high_water_mark() {
        let m = Metrics::new("test");
        // (totals, growth over the interval, basis, counter after)
        for (total, grown_ns, basis, want) in [
            // First sight: the container's lifetime so far.
            (3_000_000_000, 3_000_000_000, RateBasis::Lifetime, "3"),
            (5_000_000_000, 2_000_000_000, RateBasis::Interval, "5"),
            // A worker exited: the totals drop, the container worked 1 s more.
            (2_000_000_000, 1_000_000_000, RateBasis::Interval, "6"),
            // Rates started over (source switched): nothing to add.
            (9_000_000_000, 9_000_000_000, RateBasis::Lifetime, "6"),
            (9_500_000_000, 500_000_000, RateBasis::Interval, "6.5"),
        ] {
            let u = grown(total, grown_ns, basis);
            m.set_containers(&[ContainerSample {
                short_id: "aaaaaaaaaaaa",
                name: "cpu-a",
                container_type: ContainerType::Cpu,
                usage: &u,
            }]);
            let line = format!(
                "gestor_container_cpu_seconds_total{{id=\"aaaaaaaaaaaa\",name=\"cpu-a\",type=\"cpu\"}} {want}\n"
            );
            assert!(m.render().contains(&line), "{total}: {}", m.render());
        }
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

//! One governing cycle, in stages: collect (the snapshot and the container
//! listing, at once, each within a bound) → measure (usage from this
//! snapshot and the last trusted one) → decide (the pure policy) → act (kills
//! and removals) → publish (metrics, log lines, records).

pub mod act;
pub mod publish;
pub mod report;
pub mod table;

use crate::collect::snapshot::{Snapshot, SourceKind};
use crate::collect::source::{SnapshotReader, SnapshotSource};
use crate::collect::usage::{self, HostUsage, Usage};
use crate::config::Config;
use crate::cycle::report::{ContainerReport, CycleReport, StageReport};
use crate::decide::plan::Plan;
use crate::decide::policy::{self, PolicyConfig};
use crate::decide::reason::Blocked;
use crate::docker::client::DockerClient;
use crate::docker::container::ContainerInfo;
use crate::docker::inventory::Inventory;
use crate::docker::placement::CgroupCheck;
use crate::metrics::Metrics;
use crate::ship::records::{rfc3339_millis, Record, RecordContext, RecordIds};
use crate::ship::shipper::ShipperHandle;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// The cycle's two inputs, as collected.
struct Inputs {
    snapshot: Result<Snapshot, String>,
    containers: Result<Vec<ContainerInfo>, String>,
}

/// Usage figures from this cycle's snapshot.
struct Measured {
    usage: Result<HashMap<String, Usage>, String>,
    host: Option<HostUsage>,
    source: Option<SourceKind>,
}

/// When a cycle started, by the monotonic and the wall clock.
struct Clock {
    started: Instant,
    /// The wall-clock start, as records show it.
    time: String,
    now_unix: f64,
}

impl Clock {
    fn now() -> Clock {
        let wall = SystemTime::now();
        Clock {
            started: Instant::now(),
            time: rfc3339_millis(wall),
            now_unix: wall
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default(),
        }
    }
}

/// Each stage's result and the records of a cycle under way.
#[derive(Default)]
struct StageLog {
    stages: BTreeMap<&'static str, StageReport>,
    records: Vec<Record>,
}

impl StageLog {
    fn ok(&self) -> bool {
        self.stages.values().all(|s| s.ok)
    }
}

/// What a cycle found and did, for its report (nothing, for a cycle cut short).
#[derive(Default)]
struct Findings {
    source: Option<SourceKind>,
    blocked: Option<Blocked>,
    host: Option<HostUsage>,
    containers: Vec<ContainerReport>,
    tally: publish::Tally,
}

/// Why a snapshot that parsed cannot be used for decisions.
fn untrusted(previous: Option<&Snapshot>, current: &Snapshot) -> Option<String> {
    let prev = previous?;
    (prev.source == current.source && current.uptime_ns <= prev.uptime_ns).then(|| {
        format!(
            "the snapshot is stale: its uptime_ns ({}) did not advance since the last cycle's ({})",
            current.uptime_ns, prev.uptime_ns
        )
    })
}

/// The state that lives across cycles.
pub struct Governor {
    config: Config,
    reader: SnapshotReader,
    docker: Arc<DockerClient>,
    inventory: Inventory,
    metrics: Arc<Metrics>,
    shipper: Option<ShipperHandle>,
    ids: Arc<RecordIds>,
    host: Arc<str>,
    /// The last snapshot that was read and trusted: rates are measured from it.
    previous: Option<Snapshot>,
    /// Confirms processes' containers against Docker's own cgroup placement.
    cgroup_check: CgroupCheck,
    cycle: u64,
}

impl Governor {
    pub fn new(
        config: Config,
        docker: Arc<DockerClient>,
        inventory: Inventory,
        metrics: Arc<Metrics>,
        shipper: Option<ShipperHandle>,
    ) -> Governor {
        let reader = SnapshotReader::new(
            SnapshotSource {
                mode: config.source,
                sysinfo: config.sysinfo.clone(),
                procfs: config.procfs.clone(),
            },
            config.procfs_cache,
        );
        Governor {
            host: config.hostname().into(),
            config,
            reader,
            docker,
            inventory,
            metrics,
            shipper,
            ids: Arc::new(RecordIds::random()),
            previous: None,
            cgroup_check: CgroupCheck::default(),
            cycle: 0,
        }
    }

    pub fn source(&self) -> &SnapshotSource {
        self.reader.source()
    }

    /// The id shared by every record of this run.
    pub fn run_id(&self) -> &str {
        self.ids.run_id()
    }

    fn policy_config(&self) -> PolicyConfig {
        PolicyConfig {
            min_per_type: self.config.min_per_type,
            max_kills_per_cycle: self.config.max_kills_per_cycle,
            manage_unlabeled: self.config.manage_unlabeled,
            never_kill: vec![self.config.logger_container.clone()],
            stopped_grace_secs: self.config.stopped_grace().as_secs() as i64,
        }
    }

    /// Runs one cycle. When `cancel` fires while the inputs are being
    /// collected the cycle ends there (nothing decided); kills already
    /// started finish, and no new one starts.
    pub async fn run_cycle(&mut self, cancel: &CancellationToken) -> CycleReport {
        self.cycle += 1;
        let clock = Clock::now();
        let mut log = StageLog::default();
        let (ids, host) = (self.ids.clone(), self.host.clone());
        let ctx = RecordContext {
            ids: &ids,
            host: &host,
            cycle: self.cycle,
            time: &clock.time,
        };

        // 1. collect
        let Some(inputs) = collect(&self.reader, &mut self.inventory, &self.config, cancel).await
        else {
            tracing::info!(cycle = self.cycle, "cycle cut short: shutting down");
            log.records
                .push(ctx.record("error", "cycle cut short: gestor is shutting down".into()));
            log.stages
                .insert("read", StageReport::failed("shutting down".into()));
            return self.finish(clock, log, Findings::default()).await;
        };
        // 2. measure
        let (measured, containers, trusted) = self.measure_inputs(inputs, &ctx, &mut log).await;
        // 3. decide (pure)
        let plan = policy::decide(
            measured.usage.as_ref().map_err(String::as_str),
            containers.as_deref().map_err(String::as_str),
            &self.policy_config(),
            clock.now_unix as i64,
        );
        log.stages.insert("policy", StageReport::ok());
        if let Some(why) = &plan.blocked {
            tracing::warn!(cycle = self.cycle, reason = %why, "policy blocked");
        }
        // 4. act
        let listed: &[ContainerInfo] = containers.as_deref().unwrap_or(&[]);
        let outcomes = self.act(&plan, listed, cancel).await;
        // 5. publish
        let findings = self.publish(&ctx, plan, &outcomes, &measured, &containers, &mut log);
        if let Some(s) = trusted {
            self.previous = Some(s);
        }
        let duration = clock.started.elapsed().as_secs_f64();
        let ok = log.ok();
        log.records
            .push(self.cycle_record(&ctx, &findings, listed.len(), duration, ok));
        let report = self.finish(clock, log, findings).await;
        // Logged once the cycle's records are committed: a cycle reported
        // done has lost none of them, whatever happens next.
        tracing::info!(
            event = "cycle",
            cycle = self.cycle,
            source = measured.source.map(SourceKind::as_str).unwrap_or("none"),
            containers = listed.len(),
            kills = report.kills,
            removals = report.removals,
            kill_failures = report.kill_failures,
            duration_ms = duration * 1e3,
            ok,
            "cycle done"
        );
        report
    }

    /// Stage 2: confirms each process's container against Docker's placement,
    /// measures usage, and notes each input's stage result. Returns the usage,
    /// the containers and the snapshot to keep as the next `previous`.
    async fn measure_inputs(
        &mut self,
        inputs: Inputs,
        ctx: &RecordContext<'_>,
        log: &mut StageLog,
    ) -> (
        Measured,
        Result<Vec<ContainerInfo>, String>,
        Option<Snapshot>,
    ) {
        let Inputs {
            mut snapshot,
            containers,
        } = inputs;
        // A process counts for a container only where Docker placed it.
        if let (Ok(s), Ok(cs)) = (&mut snapshot, &containers) {
            let listed: HashSet<&str> = cs.iter().map(|c| c.id.as_str()).collect();
            let refused = self.cgroup_check.confirm(&self.docker, s, &listed).await;
            self.metrics.set_misplaced(refused.len());
        }
        let (measured, trusted) = self.measure(snapshot);
        match &measured.usage {
            Ok(_) => {
                log.stages.insert("read", StageReport::ok());
            }
            Err(msg) => {
                tracing::error!(event = "error", cycle = self.cycle, stage = "read", error = %msg, "cannot use the snapshot; no kills this cycle");
                log.records
                    .push(ctx.record("error", format!("read: {msg}")));
                log.stages.insert("read", StageReport::failed(msg.clone()));
            }
        }
        match &containers {
            Ok(_) => {
                log.stages.insert("docker", StageReport::ok());
            }
            Err(msg) => {
                tracing::error!(event = "error", cycle = self.cycle, stage = "docker", error = %msg, "cannot list containers; no kills this cycle");
                log.records
                    .push(ctx.record("error", format!("docker: {msg}")));
                log.stages
                    .insert("docker", StageReport::failed(msg.clone()));
            }
        }
        (measured, containers, trusted)
    }

    /// Stage 4: carries out the plan's kills and removals.
    async fn act(
        &self,
        plan: &Plan,
        listed: &[ContainerInfo],
        cancel: &CancellationToken,
    ) -> HashMap<String, act::Outcome> {
        let judged: HashMap<&str, &ContainerInfo> =
            listed.iter().map(|c| (c.id.as_str(), c)).collect();
        let act = act::Act {
            docker: &self.docker,
            inventory: &self.inventory,
            grace_secs: self.config.stop_timeout,
            dry_run: self.config.dry_run,
            cycle: self.cycle,
        };
        act::carry_out(&act, plan, &judged, cancel).await
    }

    /// Stage 5: records, log lines and series for what the cycle decided and
    /// did; each stage's result in the metrics.
    fn publish(
        &self,
        ctx: &RecordContext<'_>,
        plan: Plan,
        outcomes: &HashMap<String, act::Outcome>,
        measured: &Measured,
        containers: &Result<Vec<ContainerInfo>, String>,
        log: &mut StageLog,
    ) -> Findings {
        let listed: &[ContainerInfo] = containers.as_deref().unwrap_or(&[]);
        let empty = HashMap::new();
        let usage = measured.usage.as_ref().unwrap_or(&empty);
        let tally =
            publish::decisions(&self.metrics, ctx, &plan, outcomes, usage, &mut log.records);
        log.stages.insert(
            "act",
            if tally.errors.is_empty() {
                StageReport::ok()
            } else {
                StageReport::failed(tally.errors.join("; "))
            },
        );
        let reports = publish::container_reports(
            &plan,
            outcomes,
            usage,
            listed,
            self.config.manage_unlabeled,
        );
        // Per-container series: only when this cycle could read both inputs;
        // otherwise keep the last good values rather than wiping them.
        if measured.usage.is_ok() && containers.is_ok() {
            publish::containers(
                &self.metrics,
                &self.config.procfs,
                &plan,
                outcomes,
                usage,
                listed,
            );
        }
        for (stage, report) in &log.stages {
            self.metrics.stage(stage, report.ok);
        }
        Findings {
            source: measured.source,
            blocked: plan.blocked,
            host: measured.host,
            containers: reports,
            tally,
        }
    }

    /// The record that sums up a cycle.
    fn cycle_record(
        &self,
        ctx: &RecordContext<'_>,
        findings: &Findings,
        containers: usize,
        duration: f64,
        ok: bool,
    ) -> Record {
        let Findings {
            source,
            blocked,
            host,
            tally,
            ..
        } = findings;
        let mut record = ctx.record(
            "cycle",
            match blocked {
                Some(why) => why.to_string(),
                None => format!(
                    "cycle {}: {} containers, {} killed, {} removed, {} failures",
                    self.cycle, containers, tally.killed, tally.removed, tally.failed
                ),
            },
        );
        record.details = serde_json::json!({
            "containers": containers,
            "kills": tally.killed,
            "removals": tally.removed,
            "kill_failures": tally.failed,
            "duration_seconds": duration,
            "source": source.map(SourceKind::as_str),
            "host_memory_ratio": host.map(|h| (1.0 - h.memory_available_bytes as f64 / h.memory_total_bytes.max(1) as f64).clamp(0.0, 1.0)),
            "host_cpu_ratio": host.map(|h| h.cpu_ratio),
            "dry_run": self.config.dry_run,
            "ok": ok,
        });
        record
    }

    /// Ends a cycle: its duration and result in the metrics, its records
    /// committed to the spool (the cycle is finished once they are on disk),
    /// and its report.
    async fn finish(&self, clock: Clock, log: StageLog, findings: Findings) -> CycleReport {
        let duration = clock.started.elapsed().as_secs_f64();
        let ok = log.ok();
        self.metrics
            .cycle_done(duration, ok, clock.now_unix + duration);
        if let Some(shipper) = &self.shipper {
            shipper.commit(log.records).await;
        }
        CycleReport {
            run_id: self.ids.run_id().to_string(),
            cycle: self.cycle,
            time: clock.time,
            duration_seconds: duration,
            source: findings.source,
            dry_run: self.config.dry_run,
            stages: log.stages,
            blocked: findings.blocked,
            host: findings.host,
            containers: findings.containers,
            kills: findings.tally.killed,
            removals: findings.tally.removed,
            kill_failures: findings.tally.failed,
        }
    }

    /// Usage from a snapshot and the last trusted one. A snapshot from the
    /// other source (the module was loaded or unloaded) is measured from
    /// scratch: the two sources' start times never match, so rates against
    /// the old one would all read 0. A stale snapshot (time did not advance)
    /// is not trusted. Returns the snapshot to keep as the next `previous`.
    fn measure(&mut self, snapshot: Result<Snapshot, String>) -> (Measured, Option<Snapshot>) {
        let s = match snapshot {
            Ok(s) => s,
            Err(e) => {
                return (
                    Measured {
                        usage: Err(e),
                        host: None,
                        source: None,
                    },
                    None,
                )
            }
        };
        if let Some(prev) = self.previous.as_ref().filter(|p| p.source != s.source) {
            tracing::warn!(
                from = prev.source.as_str(),
                to = s.source.as_str(),
                "SNAPSHOT SOURCE changed; rates start over"
            );
            self.previous = None;
        }
        if let Some(why) = untrusted(self.previous.as_ref(), &s) {
            return (
                Measured {
                    usage: Err(why),
                    host: None,
                    source: Some(s.source),
                },
                None,
            );
        }
        let usage = usage::container_usage(self.previous.as_ref(), &s);
        let host = usage::host_usage(self.previous.as_ref(), &s);
        self.metrics.set_host(&host);
        self.metrics.set_source(s.source);
        let source = Some(s.source);
        (
            Measured {
                usage: Ok(usage),
                host: Some(host),
                source,
            },
            Some(s),
        )
    }
}

/// Reads the snapshot and lists the containers at the same time, each within
/// its bound; `None` when `cancel` fires first.
async fn collect(
    reader: &SnapshotReader,
    inventory: &mut Inventory,
    config: &Config,
    cancel: &CancellationToken,
) -> Option<Inputs> {
    let read = reader.read(config.read_timeout());
    let list = inventory.containers();
    tokio::select! {
        (snapshot, containers) = async { tokio::join!(read, list) } => Some(Inputs {
            snapshot: snapshot.map_err(|e| e.to_string()),
            containers,
        }),
        _ = cancel.cancelled() => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::snapshot::tests::sample_json;

    #[test]
    fn a_snapshot_whose_time_did_not_advance_is_stale() {
        let a = crate::collect::snapshot::parse(sample_json().as_bytes()).unwrap();
        assert_eq!(untrusted(None, &a), None);
        let why = untrusted(Some(&a), &a).unwrap();
        assert!(why.contains("stale"), "{why}");
        let mut later = a.clone();
        later.uptime_ns += 1;
        assert_eq!(untrusted(Some(&a), &later), None);
        // A switch of source is not staleness: the old one is dropped.
        let mut other = a.clone();
        other.source = match a.source {
            SourceKind::Kernel => SourceKind::Userspace,
            SourceKind::Userspace => SourceKind::Kernel,
        };
        assert_eq!(untrusted(Some(&a), &other), None);
    }
}

//! One governing cycle, in stages: collect (the snapshot and the container
//! listing, at once, each within a bound) → measure (usage from this
//! snapshot and the last trusted one) → decide (the pure policy) → act (kills
//! and removals) → publish (metrics, log lines, records).

pub mod act;
pub mod explain;
pub mod intents;
pub mod publish;
pub mod report;
pub mod retry;
pub mod table;

use crate::collect::cgroupfs::{self, CgroupReader};
use crate::collect::pressure;
use crate::collect::snapshot::{CgroupCounters, Snapshot, SourceKind};
use crate::collect::source::{SnapshotReader, SnapshotSource};
use crate::collect::usage::{self, HostUsage, Usage};
use crate::config::Config;
use crate::cycle::report::{ContainerReport, CycleReport, PolicySummary, StageReport};
use crate::cycle::retry::Retries;
use crate::decide::engine;
use crate::decide::plan::Plan;
use crate::decide::policy::PolicyConfig;
use crate::decide::reason::Blocked;
use crate::decide::rules::Policy;
use crate::docker::client::DockerClient;
use crate::docker::container::ContainerInfo;
use crate::docker::inventory::Inventory;
use crate::docker::placement::CgroupCheck;
use crate::metrics::Metrics;
use crate::ship::journal::Journal;
use crate::ship::records::{rfc3339_millis, Record, RecordContext, RecordIds};
use crate::ship::shipper::ShipperHandle;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
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
    /// Intent journal files to clear once the records are committed.
    journal_files: Vec<std::path::PathBuf>,
}

impl StageLog {
    fn ok(&self) -> bool {
        self.stages.values().all(|s| s.ok)
    }

    /// Notes how one of the cycle's inputs went: its stage ok, or failed
    /// with a log line and an error record (and no kills this cycle).
    fn input(
        &mut self,
        ctx: &RecordContext<'_>,
        stage: &'static str,
        error: Option<&String>,
        what: &str,
    ) {
        match error {
            None => {
                self.stages.insert(stage, StageReport::ok());
            }
            Some(msg) => {
                tracing::error!(event = "error", cycle = ctx.cycle, stage, error = %msg, "{what}; no kills this cycle");
                self.records
                    .push(ctx.record("error", format!("{stage}: {msg}")));
                self.stages.insert(stage, StageReport::failed(msg.clone()));
            }
        }
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
    /// The policy in force (`--policy FILE`, or the default rule); a reload
    /// replaces it between cycles.
    policy: Arc<Policy>,
    /// What the policy engine carries across cycles: the keepers (a
    /// challenger must beat them by the keeper margin), `limit` timers,
    /// `pressure` episodes.
    engine: engine::State,
    /// Confirms processes' containers against Docker's own cgroup placement.
    cgroup_check: CgroupCheck,
    /// Reads each container's own cgroup counters.
    cgroups: CgroupReader,
    /// Where intents go before acts (with a spool only: without a log
    /// service there is nothing to record).
    journal: Option<Journal>,
    /// Whether the intents of an earlier run that did not finish were
    /// resolved (the first cycle does it).
    recovered: bool,
    /// Containers whose kill or removal failed: retried with backoff.
    retries: Retries,
    cycle: u64,
}

impl Governor {
    pub fn new(
        config: Config,
        docker: Arc<DockerClient>,
        inventory: Inventory,
        metrics: Arc<Metrics>,
        shipper: Option<ShipperHandle>,
        journal: Option<Journal>,
        policy: Arc<Policy>,
    ) -> Governor {
        let reader = SnapshotReader::new(
            SnapshotSource {
                mode: config.source,
                sysinfo: config.sysinfo.clone(),
                procfs: config.procfs.clone(),
            },
            config.procfs_cache,
        );
        let cgroups = CgroupReader::new(&config.cgroupfs);
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
            policy,
            engine: engine::State::default(),
            cgroup_check: CgroupCheck::default(),
            cgroups,
            journal,
            recovered: false,
            retries: Retries::default(),
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
            keeper_margin: self.config.keeper_margin,
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

        if !self.recovered {
            self.recover(&ctx, &mut log).await;
        }
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
        let host = self.host_signals(&measured).await;
        let (plan, next) = engine::evaluate(
            &self.policy,
            measured.usage.as_ref().map_err(String::as_str),
            containers.as_deref().map_err(String::as_str),
            &host,
            &self.policy_config(),
            &self.engine,
            clock.now_unix,
        );
        if plan.blocked.is_none() {
            self.engine = next;
        }
        log.stages.insert("policy", StageReport::ok());
        if let Some(why) = &plan.blocked {
            tracing::warn!(cycle = self.cycle, reason = %why, "policy blocked");
        }
        // 4. act, each act's intent on disk first
        let listed: &[ContainerInfo] = containers.as_deref().unwrap_or(&[]);
        let empty = HashMap::new();
        let usage = measured.usage.as_ref().unwrap_or(&empty);
        let intents = self.write_intents(&ctx, &plan, usage, &mut log).await;
        let acted = self.act(&plan, listed, &clock, cancel, intents).await;
        // 5. publish
        let findings = self.publish(&ctx, plan, &acted, &measured, &containers, &mut log);
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
        if let Ok(s) = &mut snapshot {
            s.cgroups = self.cgroup_counters(s).await;
        }
        let (measured, trusted) = self.measure(snapshot);
        log.input(
            ctx,
            "read",
            measured.usage.as_ref().err(),
            "cannot use the snapshot",
        );
        log.input(
            ctx,
            "docker",
            containers.as_ref().err(),
            "cannot list containers",
        );
        (measured, containers, trusted)
    }

    /// Each container's own cgroup counters, read off the runtime (file
    /// reads); none when that fails.
    async fn cgroup_counters(&self, s: &Snapshot) -> HashMap<String, CgroupCounters> {
        let reader = self.cgroups.clone();
        let paths = cgroupfs::container_paths(s);
        tokio::task::spawn_blocking(move || reader.read(&paths))
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read the containers' cgroup counters");
                HashMap::new()
            })
    }

    /// Reads a first snapshot to measure rates from, so that the first cycle
    /// can judge (`gestor once`: one cycle, half an interval after this). A
    /// snapshot that cannot be read leaves nothing to measure from: the cycle
    /// then judges nobody.
    pub async fn prime(&mut self) {
        match self.reader.read(self.config.read_timeout()).await {
            Ok(mut s) => {
                s.cgroups = self.cgroup_counters(&s).await;
                self.previous = Some(s);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read a first snapshot to measure from"),
        }
    }

    /// What the policy engine knows of the host: CPUs and memory from the
    /// snapshot, pressure read now (small kernel files, off the runtime).
    async fn host_signals(&self, measured: &Measured) -> engine::Host {
        let procfs = self.config.procfs.clone();
        let pressure = tokio::task::spawn_blocking(move || pressure::read(&procfs))
            .await
            .unwrap_or_default();
        let h = measured.host;
        engine::Host {
            cpus: h.map_or(0, |h| h.cpus),
            memory_total_bytes: h.map_or(0, |h| h.memory_total_bytes),
            memory_available_bytes: h.map_or(0, |h| h.memory_available_bytes),
            pressure,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// Puts `policy` in force from the next cycle on. The timers of rules
    /// whose name and selector did not change go on (the engine keys them
    /// so); the others are dropped as their rules are.
    pub fn set_policy(&mut self, policy: Arc<Policy>) {
        self.metrics.set_policy(&policy);
        self.policy = policy;
    }

    /// Resolves the intents an earlier run left unfinished (its records go
    /// with this cycle's; the files are cleared once they are committed).
    async fn recover(&mut self, ctx: &RecordContext<'_>, log: &mut StageLog) {
        let Some(journal) = self.journal.clone() else {
            self.recovered = true;
            return;
        };
        let pending = match tokio::task::spawn_blocking(move || journal.pending()).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the intent journal");
                return;
            }
        };
        let (records, resolved) = intents::recover(ctx, &self.docker, pending).await;
        log.records.extend(records);
        log.journal_files.extend(resolved);
        self.recovered = true;
    }

    /// Commits the intent records of this cycle's kills and removals to the
    /// spool and to the journal, before any of them starts. When the disk
    /// cannot take them, the acts go on (a full disk may be what they cure)
    /// and the records wait in memory; that is logged and counted.
    async fn write_intents(
        &mut self,
        ctx: &RecordContext<'_>,
        plan: &Plan,
        usage: &HashMap<String, Usage>,
        log: &mut StageLog,
    ) -> HashMap<String, String> {
        if self.config.dry_run
            || (plan.kills().next().is_none() && plan.removals().next().is_none())
        {
            return HashMap::new();
        }
        let waiting = self.retries.waiting(std::time::Instant::now());
        let (records, intents) = intents::for_plan(ctx, plan, usage, &waiting);
        if intents.is_empty() {
            return HashMap::new();
        }
        for i in &intents {
            tracing::info!(event = "intent", cycle = self.cycle, container = %i.container_name, id = %crate::docker::container::short_id(&i.container_id), action = %i.action, reason = %i.reason, "about to act");
        }
        let by_container = intents
            .iter()
            .map(|i| (i.container_id.clone(), i.record_id.clone()))
            .collect();
        if let Some(shipper) = &self.shipper {
            shipper.commit(records).await;
        }
        if let Some(journal) = self.journal.clone() {
            let (run_id, cycle) = (self.ids.run_id().to_string(), self.cycle);
            match tokio::task::spawn_blocking(move || journal.write(&run_id, cycle, &intents)).await
            {
                Ok(Ok(path)) => log.journal_files.push(path),
                Ok(Err(e)) => {
                    self.metrics.journal_failed();
                    tracing::error!(error = %e, "CANNOT WRITE THE INTENT JOURNAL: acting anyway; a crash now would leave these acts without a record");
                }
                Err(e) => tracing::error!(error = %e, "cannot write the intent journal"),
            }
        }
        by_container
    }

    /// Stage 4: carries out the plan's kills and removals, within the cycle's
    /// budget and past the backoff of earlier failures; notes the failures
    /// for the backoff.
    async fn act(
        &mut self,
        plan: &Plan,
        listed: &[ContainerInfo],
        clock: &Clock,
        cancel: &CancellationToken,
        intents: HashMap<String, String>,
    ) -> act::Acted {
        let judged: HashMap<&str, &ContainerInfo> =
            listed.iter().map(|c| (c.id.as_str(), c)).collect();
        let waiting = self.retries.waiting(std::time::Instant::now());
        // No stop starts past the budget: the cycle ends inside the health
        // window, and what is left is judged again next cycle.
        let start_by = tokio::time::Instant::from_std(clock.started) + self.config.cycle_budget();
        let act = act::Act {
            docker: &self.docker,
            inventory: &self.inventory,
            grace_secs: self.config.stop_timeout,
            dry_run: self.config.dry_run,
            cycle: self.cycle,
            start_by,
            backing_off: &waiting,
        };
        let outcomes = act::carry_out(&act, plan, &judged, cancel).await;
        let now = std::time::Instant::now();
        let mut quiet = HashSet::new();
        for (id, outcome) in &outcomes {
            if matches!(outcome, act::Outcome::Failed { .. }) {
                if !self.retries.failed(id, now, self.config.interval()) {
                    quiet.insert(id.clone());
                }
            } else if outcome.gone() || *outcome == act::Outcome::Stopped {
                self.retries.done(id);
            }
        }
        if !listed.is_empty() {
            self.retries
                .keep_only(&listed.iter().map(|c| c.id.as_str()).collect());
        }
        act::Acted {
            outcomes,
            quiet,
            intents,
        }
    }

    /// Stage 5: records, log lines and series for what the cycle decided and
    /// did; each stage's result in the metrics.
    fn publish(
        &self,
        ctx: &RecordContext<'_>,
        plan: Plan,
        acted: &act::Acted,
        measured: &Measured,
        containers: &Result<Vec<ContainerInfo>, String>,
        log: &mut StageLog,
    ) -> Findings {
        let listed: &[ContainerInfo] = containers.as_deref().unwrap_or(&[]);
        let empty = HashMap::new();
        let usage = measured.usage.as_ref().unwrap_or(&empty);
        let tally = publish::decisions(&self.metrics, ctx, &plan, acted, usage, &mut log.records);
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
            &acted.outcomes,
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
                &acted.outcomes,
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
        // The outcomes are committed: the intents before them are resolved.
        if let (Some(journal), false) = (self.journal.clone(), log.journal_files.is_empty()) {
            let files = log.journal_files;
            let cleared = tokio::task::spawn_blocking(move || {
                files.iter().try_for_each(|f| journal.clear(f))
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
            if let Err(e) = cleared {
                tracing::error!(error = %e, "cannot clear the intent journal: its intents are checked again at the next start");
            }
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
            policy: PolicySummary::of(&self.policy),
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
        // Rates need two samples at least half an interval apart: a snapshot
        // that follows the last one too closely gives no rates, and the last
        // one stays the base of the next cycle's.
        let min_gap = self.config.interval() / 2;
        let too_soon = self.previous.as_ref().and_then(|prev| {
            let gap = Duration::from_nanos(s.uptime_ns.saturating_sub(prev.uptime_ns));
            (gap < min_gap).then_some(gap)
        });
        if let Some(gap) = too_soon {
            tracing::info!(
                gap_s = gap.as_secs_f64(),
                min_gap_s = min_gap.as_secs_f64(),
                "this snapshot came too soon after the last one for rates: nothing is judged this cycle"
            );
        }
        let base = self.previous.as_ref().filter(|_| too_soon.is_none());
        let usage = usage::container_usage(base, &s);
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
            too_soon.is_none().then_some(s),
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

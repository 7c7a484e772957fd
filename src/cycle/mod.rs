//! One governing cycle, in stages: collect (the snapshot and the container
//! listing, at once, each within a bound) → measure (usage from this
//! snapshot and the last trusted one) → decide (the pure policy) → act (kills
//! and removals) → publish (metrics, log lines, records).

pub mod table;

use crate::collect::snapshot::{Snapshot, SourceKind};
use crate::collect::source::{SnapshotReader, SnapshotSource};
use crate::collect::usage::{self, HostUsage, Usage};
use crate::config::Config;
use crate::decide::policy::{self, Action, Blocked, Plan, PolicyConfig, Reason, Verdict};
use crate::docker::client::{DockerClient, KillOutcome};
use crate::docker::container::{ContainerInfo, ContainerType, ExitFacts};
use crate::docker::inventory::{Inventory, Recheck};
use crate::docker::placement::CgroupCheck;
use crate::metrics::{ContainerSample, Metrics, KILL_REASON_SURPLUS};
use crate::ship::records::{rfc3339_millis, Record, RecordContext, RecordIds};
use crate::ship::shipper::ShipperHandle;
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// How many stop+remove calls run at once.
const KILL_CONCURRENCY: usize = 16;

/// The outcome of one stage.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StageReport {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StageReport {
    fn ok() -> StageReport {
        StageReport {
            ok: true,
            error: None,
        }
    }

    fn failed(error: String) -> StageReport {
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
    pub action: Action,
    pub reason: Reason,
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
    pub kills: usize,
    pub removals: usize,
    pub kill_failures: usize,
}

impl CycleReport {
    pub fn ok(&self) -> bool {
        self.stages.values().all(|s| s.ok)
    }
}

/// What became of one kill or removal the policy decided.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Removed {
        forced: bool,
    },
    Vanished,
    /// Not killed: the container changed since the inventory saw it.
    Changed(String),
    Failed {
        reason: &'static str,
        error: String,
    },
    /// Not started: gestor was shutting down.
    Skipped,
    DryRun,
}

impl Outcome {
    /// The container is no longer there.
    fn gone(&self) -> bool {
        matches!(self, Outcome::Removed { .. } | Outcome::Vanished)
    }

    fn describe(&self) -> String {
        match self {
            Outcome::Removed { forced: false } => "removed".into(),
            Outcome::Removed { forced: true } => "removed by force (the stop failed)".into(),
            Outcome::Vanished => "vanished".into(),
            Outcome::Changed(what) => format!("not killed: it changed ({what})"),
            Outcome::Failed { error, .. } => format!("failed: {error}"),
            Outcome::Skipped => "skipped: shutting down".into(),
            Outcome::DryRun => "dry_run".into(),
        }
    }
}

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
        let started = Instant::now();
        let wall = SystemTime::now();
        let time = rfc3339_millis(wall);
        let now_unix = wall
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        let mut stages = BTreeMap::new();
        let mut records: Vec<Record> = Vec::new();
        let (ids, host) = (self.ids.clone(), self.host.clone());
        let ctx = RecordContext {
            ids: &ids,
            host: &host,
            cycle: self.cycle,
            time: &time,
        };

        // 1. collect
        let Some(inputs) = collect(&self.reader, &mut self.inventory, &self.config, cancel).await
        else {
            tracing::info!(cycle = self.cycle, "cycle cut short: shutting down");
            records.push(ctx.record("error", "cycle cut short: gestor is shutting down".into()));
            stages.insert("read", StageReport::failed("shutting down".into()));
            return self.finish(started, time, stages, records, now_unix).await;
        };
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

        // 2. measure
        let (measured, trusted) = self.measure(snapshot);
        match &measured.usage {
            Ok(_) => {
                stages.insert("read", StageReport::ok());
            }
            Err(msg) => {
                tracing::error!(event = "error", cycle = self.cycle, stage = "read", error = %msg, "cannot use the snapshot; no kills this cycle");
                records.push(ctx.record("error", format!("read: {msg}")));
                stages.insert("read", StageReport::failed(msg.clone()));
            }
        }
        let containers = match containers {
            Ok(c) => {
                stages.insert("docker", StageReport::ok());
                Ok(c)
            }
            Err(msg) => {
                tracing::error!(event = "error", cycle = self.cycle, stage = "docker", error = %msg, "cannot list containers; no kills this cycle");
                records.push(ctx.record("error", format!("docker: {msg}")));
                stages.insert("docker", StageReport::failed(msg.clone()));
                Err(msg)
            }
        };

        // 3. decide (pure)
        let plan = policy::decide(
            measured.usage.as_ref().map_err(String::as_str),
            containers.as_deref().map_err(String::as_str),
            &self.policy_config(),
            now_unix as i64,
        );
        stages.insert("policy", StageReport::ok());
        if let Some(why) = &plan.blocked {
            tracing::warn!(cycle = self.cycle, reason = %why, "policy blocked");
        }

        // 4. act
        let judged: HashMap<&str, &ContainerInfo> = containers
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .map(|c| (c.id.as_str(), c))
            .collect();
        let outcomes = self.carry_out(&plan, &judged, cancel).await;

        // 5. publish
        let empty = HashMap::new();
        let usage_ref = measured.usage.as_ref().unwrap_or(&empty);
        let listed: &[ContainerInfo] = containers.as_deref().unwrap_or(&[]);
        let tally = self.publish_decisions(&ctx, &plan, &outcomes, usage_ref, &mut records);
        stages.insert(
            "act",
            if tally.errors.is_empty() {
                StageReport::ok()
            } else {
                StageReport::failed(tally.errors.join("; "))
            },
        );
        let reports = container_reports(&plan, &outcomes, usage_ref, listed, &self.config);
        // Per-container series: only when this cycle could read both inputs;
        // otherwise keep the last good values rather than wiping them.
        if measured.usage.is_ok() && containers.is_ok() {
            self.publish_containers(&plan, &outcomes, usage_ref, listed);
        }
        if let Some(s) = trusted {
            self.previous = Some(s);
        }

        for (stage, report) in &stages {
            self.metrics.stage(stage, report.ok);
        }
        let duration = started.elapsed().as_secs_f64();
        let ok = stages.values().all(|s| s.ok);
        let mut cycle_record = ctx.record(
            "cycle",
            match &plan.blocked {
                Some(why) => why.to_string(),
                None => format!(
                    "cycle {}: {} containers, {} killed, {} removed, {} failures",
                    self.cycle,
                    listed.len(),
                    tally.killed,
                    tally.removed,
                    tally.failed
                ),
            },
        );
        cycle_record.details = serde_json::json!({
            "containers": listed.len(),
            "kills": tally.killed,
            "removals": tally.removed,
            "kill_failures": tally.failed,
            "duration_seconds": duration,
            "source": measured.source.map(SourceKind::as_str),
            "host_memory_ratio": measured.host.map(|h| (1.0 - h.memory_available_bytes as f64 / h.memory_total_bytes.max(1) as f64).clamp(0.0, 1.0)),
            "host_cpu_ratio": measured.host.map(|h| h.cpu_ratio),
            "dry_run": self.config.dry_run,
            "ok": ok,
        });
        records.push(cycle_record);
        let mut report = self.finish(started, time, stages, records, now_unix).await;
        // Logged once the cycle's records are committed: a cycle reported
        // done has lost none of them, whatever happens next.
        tracing::info!(
            event = "cycle",
            cycle = self.cycle,
            source = measured.source.map(SourceKind::as_str).unwrap_or("none"),
            containers = listed.len(),
            kills = tally.killed,
            removals = tally.removed,
            kill_failures = tally.failed,
            duration_ms = duration * 1e3,
            ok,
            "cycle done"
        );
        report.source = measured.source;
        report.blocked = plan.blocked.clone();
        report.host = measured.host;
        report.containers = reports;
        report.kills = tally.killed;
        report.removals = tally.removed;
        report.kill_failures = tally.failed;
        report
    }

    /// Ends a cycle: its duration and result in the metrics, its records
    /// committed to the spool (the cycle is finished once they are on disk).
    /// The report has no containers yet.
    async fn finish(
        &self,
        started: Instant,
        time: String,
        stages: BTreeMap<&'static str, StageReport>,
        records: Vec<Record>,
        now_unix: f64,
    ) -> CycleReport {
        let duration = started.elapsed().as_secs_f64();
        let ok = stages.values().all(|s| s.ok);
        self.metrics.cycle_done(duration, ok, now_unix + duration);
        if let Some(shipper) = &self.shipper {
            shipper.commit(records).await;
        }
        CycleReport {
            run_id: self.ids.run_id().to_string(),
            cycle: self.cycle,
            time,
            duration_seconds: duration,
            source: None,
            dry_run: self.config.dry_run,
            stages,
            blocked: None,
            host: None,
            containers: Vec::new(),
            kills: 0,
            removals: 0,
            kill_failures: 0,
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

    /// Stops and removes the containers the policy chose to kill, and removes
    /// the stopped ones it chose to remove, `KILL_CONCURRENCY` at a time; in a
    /// dry run, nothing. No kill starts once `cancel` fired.
    async fn carry_out(
        &self,
        plan: &Plan,
        judged: &HashMap<&str, &ContainerInfo>,
        cancel: &CancellationToken,
    ) -> HashMap<String, Outcome> {
        let work: Vec<(String, String, Action)> = plan
            .kills()
            .chain(plan.removals())
            .map(|v| (v.id.clone(), v.name.clone(), v.action))
            .collect();
        if self.config.dry_run {
            return work
                .into_iter()
                .map(|(id, _, _)| (id, Outcome::DryRun))
                .collect();
        }
        let grace = self.config.stop_timeout;
        let cycle = self.cycle;
        stream::iter(work)
            .map(|(id, name, action)| async move {
                if cancel.is_cancelled() {
                    return (id, Outcome::Skipped);
                }
                // What the policy judged may lag behind Docker (the event
                // inventory): make sure it still holds before acting.
                if let Some(c) = judged.get(id.as_str()) {
                    match self.inventory.recheck(c).await {
                        Recheck::Unchanged => {}
                        Recheck::Gone => return (id, Outcome::Vanished),
                        Recheck::Changed(what) => return (id, Outcome::Changed(what)),
                        Recheck::Failed(error) => {
                            return (
                                id,
                                Outcome::Failed {
                                    reason: "stop_failed",
                                    error,
                                },
                            )
                        }
                    }
                }
                let outcome = if action == Action::Kill {
                    tracing::info!(event = "stopping", cycle, container = %name, id = %short(&id), grace_s = grace, "stopping");
                    match self.docker.stop_and_remove(&id, grace, cancel).await {
                        Ok(KillOutcome::Removed { forced }) => Outcome::Removed { forced },
                        Ok(KillOutcome::Vanished) => Outcome::Vanished,
                        Err(e) => Outcome::Failed {
                            reason: e.reason(),
                            error: e.to_string(),
                        },
                    }
                } else {
                    match self.docker.remove(&id).await {
                        Ok(()) => Outcome::Removed { forced: false },
                        Err(e) => Outcome::Failed {
                            reason: "remove_failed",
                            error: e.to_string(),
                        },
                    }
                };
                (id, outcome)
            })
            .buffer_unordered(KILL_CONCURRENCY)
            .collect()
            .await
    }

    /// Log lines, records and counters for every decision and what became
    /// of it.
    fn publish_decisions(
        &self,
        ctx: &RecordContext<'_>,
        plan: &Plan,
        outcomes: &HashMap<String, Outcome>,
        usage: &HashMap<String, Usage>,
        records: &mut Vec<Record>,
    ) -> Tally {
        let mut tally = Tally::default();
        let cycle = self.cycle;
        for v in &plan.verdicts {
            let t = v.container_type;
            let u = usage.get(&v.id);
            let record = |event: &str, reason: String| {
                ctx.container_record(event, &v.id, &v.name, t, u, reason)
            };
            let outcome = outcomes.get(&v.id);
            match (v.action, outcome) {
                (Action::Keep, _) => {
                    tracing::info!(event = "keep", cycle, container = %v.name, id = %short(&v.id), r#type = %t, reason = %v.reason, "kept");
                    records.push(record("keep", v.reason.to_string()));
                }
                (Action::Defer, _) => {
                    tracing::info!(event = "defer", cycle, container = %v.name, r#type = %t, reason = %v.reason, "deferred");
                }
                (Action::Kill | Action::Remove, Some(Outcome::DryRun)) => {
                    let event = if v.action == Action::Kill {
                        "would_kill"
                    } else {
                        "would_remove"
                    };
                    tracing::info!(event, cycle, container = %v.name, id = %short(&v.id), r#type = %t, reason = %v.reason, "dry run: would {}", v.action.as_str());
                    records.push(record(event, format!("[dry run] {}", v.reason)));
                }
                (Action::Kill, Some(Outcome::Removed { forced })) => {
                    tally.killed += 1;
                    self.metrics.kill(t, KILL_REASON_SURPLUS);
                    tracing::info!(event = "kill", cycle, container = %v.name, id = %short(&v.id), r#type = %t, forced, reason = %v.reason, "killed");
                    let mut reason = v.reason.to_string();
                    if *forced {
                        reason.push_str(" (the stop failed: removed by force)");
                    }
                    records.push(record("kill", reason));
                }
                (Action::Remove, Some(Outcome::Removed { .. })) => {
                    tally.removed += 1;
                    self.metrics.removed(t, removal_cause(v));
                    tracing::info!(event = "remove", cycle, container = %v.name, id = %short(&v.id), r#type = %t, reason = %v.reason, "removed a stopped container");
                    records.push(record("remove", v.reason.to_string()));
                }
                (Action::Kill | Action::Remove, Some(Outcome::Vanished)) => {
                    tally.failed += 1;
                    self.metrics.kill_failed(t, "vanished");
                    tracing::warn!(event = "kill_failed", cycle, container = %v.name, r#type = %t, "container vanished before it could be stopped");
                    records.push(record(
                        "kill_failed",
                        format!("{t}: {} vanished before it could be stopped", v.name),
                    ));
                }
                (Action::Kill | Action::Remove, Some(Outcome::Changed(what))) => {
                    tally.failed += 1;
                    self.metrics.kill_failed(t, "changed");
                    tracing::warn!(event = "kill_failed", cycle, container = %v.name, r#type = %t, change = %what, "not killed: it changed since the inventory saw it");
                    records.push(record(
                        "kill_failed",
                        format!(
                            "{t}: {} not killed: it changed since it was judged ({what})",
                            v.name
                        ),
                    ));
                }
                (Action::Kill | Action::Remove, Some(Outcome::Failed { reason, error })) => {
                    tally.failed += 1;
                    self.metrics.kill_failed(t, reason);
                    let (event, verb) = if v.action == Action::Kill {
                        ("kill_failed", "kill")
                    } else {
                        ("remove_failed", "remove")
                    };
                    let msg = format!("{t}: cannot {verb} {}: {error}", v.name);
                    tracing::error!(event, cycle, container = %v.name, r#type = %t, error = %error, "{verb} failed");
                    tally.errors.push(msg.clone());
                    records.push(record(event, msg));
                }
                _ => {}
            }
        }
        tally
    }

    /// Per-container series (the containers still there) and container counts
    /// by type and state.
    fn publish_containers(
        &self,
        plan: &Plan,
        outcomes: &HashMap<String, Outcome>,
        usage: &HashMap<String, Usage>,
        listed: &[ContainerInfo],
    ) {
        let samples: Vec<ContainerSample<'_>> = plan
            .verdicts
            .iter()
            .filter(|v| !outcomes.get(&v.id).is_some_and(Outcome::gone))
            .filter_map(|v| {
                Some(ContainerSample {
                    short_id: short(&v.id),
                    name: &v.name,
                    container_type: v.container_type,
                    usage: usage.get(&v.id)?,
                })
            })
            .collect();
        self.metrics.set_containers(&samples);
        let mut counts: BTreeMap<(ContainerType, String), i64> = BTreeMap::new();
        for c in listed {
            if outcomes.get(&c.id).is_some_and(Outcome::gone) {
                continue;
            }
            *counts
                .entry((c.container_type(), c.state.clone()))
                .or_default() += 1;
        }
        let counts: Vec<_> = counts.into_iter().map(|((t, s), n)| (t, s, n)).collect();
        self.metrics.set_container_counts(&counts);
        // Running containers with no process in the snapshot: a few are
        // normal (just started); all of them means the snapshot does not see
        // this host's containers (a procfs that is not the host's, cgroup
        // paths gestor cannot read), and nothing is ever judged.
        let unmeasured = plan
            .verdicts
            .iter()
            .filter(|v| v.reason == Reason::NoUsage)
            .count();
        self.metrics.set_unmeasured(unmeasured);
        let running = listed.iter().filter(|c| c.is_running()).count();
        if unmeasured > 1 && unmeasured == running {
            tracing::error!(
                containers = unmeasured,
                procfs = %self.config.procfs.display(),
                "NO PROCESS OF ANY RUNNING CONTAINER IN THE SNAPSHOT: nothing can be judged; is the procfs the host's, and are the cgroup paths readable?"
            );
        }
    }
}

/// What the act stage did.
#[derive(Default)]
struct Tally {
    killed: usize,
    removed: usize,
    failed: usize,
    errors: Vec<String>,
}

/// Why a stopped container was removed, as the removals metric labels it.
fn removal_cause(v: &Verdict) -> &'static str {
    match &v.reason {
        Reason::Stopped { exit: Some(e), .. } if e.oom_killed => "oom_killed",
        Reason::Stopped {
            exit:
                Some(ExitFacts {
                    finished_at: Some(_),
                    ..
                }),
            ..
        } => "exited",
        Reason::Stopped { state, .. } if state == "dead" => "dead",
        _ => "never_started",
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

/// The /api/v1/state view of every container the policy judged.
fn container_reports(
    plan: &Plan,
    outcomes: &HashMap<String, Outcome>,
    usage: &HashMap<String, Usage>,
    listed: &[ContainerInfo],
    config: &Config,
) -> Vec<ContainerReport> {
    let by_id: HashMap<&str, &ContainerInfo> = listed.iter().map(|c| (c.id.as_str(), c)).collect();
    plan.verdicts
        .iter()
        .map(|v| {
            let c = by_id.get(v.id.as_str());
            ContainerReport {
                id: v.id.clone(),
                short_id: short(&v.id).to_string(),
                name: v.name.clone(),
                container_type: v.container_type,
                state: c.map(|c| c.state.clone()).unwrap_or_default(),
                image: c.map(|c| c.image.clone()).unwrap_or_default(),
                managed: c.is_some_and(|c| c.is_managed(config.manage_unlabeled)),
                protected: c.is_some_and(|c| c.is_protected()),
                usage: usage.get(&v.id).cloned(),
                action: v.action,
                reason: v.reason.clone(),
                outcome: outcomes.get(&v.id).map(Outcome::describe),
            }
        })
        .collect()
}

fn short(id: &str) -> &str {
    crate::docker::container::short_id(id)
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

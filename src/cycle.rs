//! One governing cycle: read → docker → policy → act → publish.

use crate::config::Config;
use crate::container::{ContainerInfo, ContainerType};
use crate::docker::{DockerClient, KillOutcome};
use crate::metrics::{ContainerSample, Metrics, KILL_REASON_SURPLUS};
use crate::policy::{self, Action, PolicyConfig};
use crate::records::{rfc3339_millis, Record, RecordContext, RecordIds};
use crate::shipper::ShipperHandle;
use crate::snapshot::{Snapshot, SourceKind};
use crate::source::SnapshotSource;
use crate::usage::{self, HostUsage, Usage};
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
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
    pub reason: String,
    /// What happened when the action was carried out (kills only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

/// Everything about one cycle.
#[derive(Debug, Clone, Serialize)]
pub struct CycleReport {
    pub cycle: u64,
    pub time: String,
    pub duration_seconds: f64,
    pub source: Option<SourceKind>,
    pub dry_run: bool,
    pub stages: BTreeMap<&'static str, StageReport>,
    pub blocked: Option<String>,
    pub host: Option<HostUsage>,
    pub containers: Vec<ContainerReport>,
    pub kills: usize,
    pub kill_failures: usize,
}

impl CycleReport {
    pub fn ok(&self) -> bool {
        self.stages.values().all(|s| s.ok)
    }
}

/// The state that lives across cycles.
pub struct Governor {
    config: Config,
    source: SnapshotSource,
    docker: Arc<DockerClient>,
    metrics: Arc<Metrics>,
    shipper: Option<ShipperHandle>,
    ids: RecordIds,
    host: String,
    previous: Option<Snapshot>,
    cycle: u64,
}

impl Governor {
    pub fn new(
        config: Config,
        docker: Arc<DockerClient>,
        metrics: Arc<Metrics>,
        shipper: Option<ShipperHandle>,
    ) -> Governor {
        let source = SnapshotSource {
            mode: config.source,
            sysinfo: config.sysinfo.clone(),
            procfs: config.procfs.clone(),
        };
        Governor {
            config,
            source,
            docker,
            metrics,
            shipper,
            ids: RecordIds::random(),
            host: hostname(),
            previous: None,
            cycle: 0,
        }
    }

    pub fn source(&self) -> &SnapshotSource {
        &self.source
    }

    fn policy_config(&self) -> PolicyConfig {
        PolicyConfig {
            min_per_type: self.config.min_per_type,
            max_kills_per_cycle: self.config.max_kills_per_cycle,
            manage_unlabeled: self.config.manage_unlabeled,
            never_kill: vec![self.config.logger_container.clone()],
        }
    }

    /// Runs one cycle. Kills already started finish even if `cancel` fires;
    /// no new kill starts after it.
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
        let ctx = RecordContext {
            ids: &self.ids,
            host: &self.host,
            cycle: self.cycle,
            time: &time,
        };

        // 1. read and 2. list, at the same time: the snapshot is read on a
        // blocking thread while dockerd answers.
        let label_filters = self.config.label_filters();
        let (snapshot, listing) =
            tokio::join!(self.source.read(), self.docker.list(&label_filters));
        let (usage_map, host, source_kind) = match &snapshot {
            Ok(s) => {
                let u = usage::container_usage(self.previous.as_ref(), s);
                let h = usage::host_usage(self.previous.as_ref(), s);
                self.metrics.set_host(&h);
                self.metrics.set_source(s.source);
                stages.insert("read", StageReport::ok());
                (Ok(u), Some(h), Some(s.source))
            }
            Err(e) => {
                let msg = e.to_string();
                tracing::error!(event = "error", cycle = self.cycle, stage = "read", error = %msg, "cannot read the snapshot; no kills this cycle");
                records.push(ctx.record("error", format!("read: {msg}")));
                stages.insert("read", StageReport::failed(msg.clone()));
                (Err(msg), None, None)
            }
        };

        let containers: Result<Vec<ContainerInfo>, String> = match listing {
            Ok(c) => {
                stages.insert("docker", StageReport::ok());
                Ok(c)
            }
            Err(e) => {
                let msg = e.to_string();
                tracing::error!(event = "error", cycle = self.cycle, stage = "docker", error = %msg, "cannot list containers; no kills this cycle");
                records.push(ctx.record("error", format!("docker: {msg}")));
                stages.insert("docker", StageReport::failed(msg.clone()));
                Err(msg)
            }
        };

        // 3. policy (pure)
        let empty = HashMap::new();
        let plan = policy::decide(
            usage_map.as_ref().map_err(String::as_str),
            containers.as_deref().map_err(String::as_str),
            &self.policy_config(),
            now_unix as i64,
        );
        stages.insert("policy", StageReport::ok());
        let usage_ref = usage_map.as_ref().unwrap_or(&empty);
        let listed: &[ContainerInfo] = containers.as_deref().unwrap_or(&[]);
        let by_id: HashMap<&str, &ContainerInfo> =
            listed.iter().map(|c| (c.id.as_str(), c)).collect();
        if let Some(why) = &plan.blocked {
            tracing::warn!(cycle = self.cycle, reason = %why, "policy blocked");
        }

        // 4. act
        let outcomes = self.carry_out(plan.kills(), cancel).await;
        let (mut killed, mut failed) = (0usize, 0usize);
        let mut act_errors = Vec::new();
        for (v, outcome) in plan.kills().filter_map(|v| Some((v, outcomes.get(&v.id)?))) {
            let t = v.container_type;
            let u = usage_ref.get(&v.id);
            let (event, reason) = match outcome {
                KillOutcomeReport::DryRun | KillOutcomeReport::Skipped => continue,
                KillOutcomeReport::Removed => {
                    killed += 1;
                    self.metrics.kill(t, KILL_REASON_SURPLUS);
                    tracing::info!(event = "kill", cycle = self.cycle, container = %v.name, id = %short(&v.id), r#type = %t, reason = %v.reason, "killed");
                    ("kill", v.reason.clone())
                }
                KillOutcomeReport::Vanished => {
                    failed += 1;
                    self.metrics.kill_failed(t, "vanished");
                    tracing::warn!(event = "kill_failed", cycle = self.cycle, container = %v.name, r#type = %t, "container vanished before it could be stopped");
                    (
                        "kill_failed",
                        format!("{t}: {} vanished before it could be stopped", v.name),
                    )
                }
                KillOutcomeReport::Failed { reason, error } => {
                    failed += 1;
                    self.metrics.kill_failed(t, reason);
                    let msg = format!("{t}: cannot kill {}: {error}", v.name);
                    tracing::error!(event = "kill_failed", cycle = self.cycle, container = %v.name, r#type = %t, error = %error, "kill failed");
                    act_errors.push(msg.clone());
                    ("kill_failed", msg)
                }
            };
            records.push(ctx.container_record(event, &v.id, &v.name, t, u, reason));
        }
        stages.insert(
            "act",
            if act_errors.is_empty() {
                StageReport::ok()
            } else {
                StageReport::failed(act_errors.join("; "))
            },
        );

        // 5. publish
        let mut reports = Vec::with_capacity(plan.verdicts.len());
        let mut samples_src = Vec::new();
        for v in &plan.verdicts {
            let c = by_id.get(v.id.as_str());
            let u = usage_ref.get(&v.id);
            match v.action {
                Action::Keep => {
                    tracing::info!(event = "keep", cycle = self.cycle, container = %v.name, id = %short(&v.id), r#type = %v.container_type, reason = %v.reason, "kept");
                    records.push(ctx.container_record(
                        "keep",
                        &v.id,
                        &v.name,
                        v.container_type,
                        u,
                        v.reason.clone(),
                    ));
                }
                Action::Kill if self.config.dry_run => {
                    tracing::info!(event = "would_kill", cycle = self.cycle, container = %v.name, id = %short(&v.id), r#type = %v.container_type, reason = %v.reason, "dry run: would kill");
                    records.push(ctx.container_record(
                        "would_kill",
                        &v.id,
                        &v.name,
                        v.container_type,
                        u,
                        format!("[dry run] {}", v.reason),
                    ));
                }
                Action::Defer => {
                    tracing::info!(event = "defer", cycle = self.cycle, container = %v.name, r#type = %v.container_type, reason = %v.reason, "deferred");
                }
                _ => {}
            }
            let removed = outcomes.get(&v.id).is_some_and(KillOutcomeReport::gone);
            if let (Some(u), false) = (u, removed) {
                samples_src.push((v.id.clone(), v.name.clone(), v.container_type, u));
            }
            reports.push(ContainerReport {
                id: v.id.clone(),
                short_id: short(&v.id).to_string(),
                name: v.name.clone(),
                container_type: v.container_type,
                state: c.map(|c| c.state.clone()).unwrap_or_default(),
                image: c.map(|c| c.image.clone()).unwrap_or_default(),
                managed: c.is_some_and(|c| c.is_managed(self.config.manage_unlabeled)),
                protected: c.is_some_and(|c| c.is_protected()),
                usage: u.cloned(),
                action: v.action,
                reason: v.reason.clone(),
                outcome: outcomes.get(&v.id).map(|o| o.describe()),
            });
        }
        // Per-container series: only when this cycle could read both inputs;
        // otherwise keep the last good values rather than wiping them.
        if usage_map.is_ok() && containers.is_ok() {
            let samples: Vec<ContainerSample<'_>> = samples_src
                .iter()
                .map(|(id, name, t, u)| ContainerSample {
                    short_id: short(id),
                    name,
                    container_type: *t,
                    usage: u,
                })
                .collect();
            self.metrics.set_containers(&samples);
            let mut counts: BTreeMap<(ContainerType, String), i64> = BTreeMap::new();
            for c in listed {
                if outcomes
                    .get(&c.id)
                    .is_some_and(|o| *o == KillOutcomeReport::Removed)
                {
                    continue;
                }
                *counts
                    .entry((c.container_type(), c.state.clone()))
                    .or_default() += 1;
            }
            let counts: Vec<_> = counts.into_iter().map(|((t, s), n)| (t, s, n)).collect();
            self.metrics.set_container_counts(&counts);
        }

        for (stage, report) in &stages {
            self.metrics.stage(stage, report.ok);
        }
        let duration = started.elapsed().as_secs_f64();
        let ok = stages.values().all(|s| s.ok);
        self.metrics.cycle_done(duration, ok, now_unix + duration);

        let mut cycle_record = ctx.record(
            "cycle",
            match &plan.blocked {
                Some(why) => why.clone(),
                None => format!(
                    "cycle {}: {} containers, {} killed, {} kill failures",
                    self.cycle,
                    listed.len(),
                    killed,
                    failed
                ),
            },
        );
        cycle_record.details = serde_json::json!({
            "containers": listed.len(),
            "kills": killed,
            "kill_failures": failed,
            "duration_seconds": duration,
            "source": source_kind.map(SourceKind::as_str),
            "host_memory_ratio": host.map(|h| 1.0 - h.memory_available_bytes as f64 / h.memory_total_bytes.max(1) as f64),
            "host_cpu_ratio": host.map(|h| h.cpu_ratio),
            "dry_run": self.config.dry_run,
            "ok": ok,
        });
        records.push(cycle_record);
        tracing::info!(
            event = "cycle",
            cycle = self.cycle,
            source = source_kind.map(SourceKind::as_str).unwrap_or("none"),
            containers = listed.len(),
            kills = killed,
            kill_failures = failed,
            duration_ms = duration * 1e3,
            ok,
            "cycle done"
        );
        if let Some(shipper) = &self.shipper {
            shipper.send(records);
        }
        if let Ok(s) = snapshot {
            self.previous = Some(s);
        }

        CycleReport {
            cycle: self.cycle,
            time,
            duration_seconds: duration,
            source: source_kind,
            dry_run: self.config.dry_run,
            stages,
            blocked: plan.blocked.clone(),
            host,
            containers: reports,
            kills: killed,
            kill_failures: failed,
        }
    }
}

/// What became of one kill the policy decided.
#[derive(Debug, Clone, PartialEq)]
enum KillOutcomeReport {
    Removed,
    Vanished,
    Failed {
        reason: &'static str,
        error: String,
    },
    /// Not started: gestor was shutting down.
    Skipped,
    DryRun,
}

impl KillOutcomeReport {
    /// The container is no longer there.
    fn gone(&self) -> bool {
        matches!(
            self,
            KillOutcomeReport::Removed | KillOutcomeReport::Vanished
        )
    }

    fn describe(&self) -> String {
        match self {
            KillOutcomeReport::Removed => "removed".into(),
            KillOutcomeReport::Vanished => "vanished".into(),
            KillOutcomeReport::Failed { error, .. } => format!("failed: {error}"),
            KillOutcomeReport::Skipped => "skipped: shutting down".into(),
            KillOutcomeReport::DryRun => "dry_run".into(),
        }
    }
}

impl Governor {
    /// Stops and removes the containers the policy chose, `KILL_CONCURRENCY`
    /// at a time; in a dry run, nothing. No kill starts once `cancel` fired.
    async fn carry_out<'a>(
        &self,
        kills: impl Iterator<Item = &'a policy::Verdict>,
        cancel: &CancellationToken,
    ) -> HashMap<String, KillOutcomeReport> {
        let kills: Vec<(String, String)> = kills.map(|v| (v.id.clone(), v.name.clone())).collect();
        if self.config.dry_run {
            return kills
                .into_iter()
                .map(|(id, _)| (id, KillOutcomeReport::DryRun))
                .collect();
        }
        let timeout = self.config.stop_timeout;
        let cycle = self.cycle;
        stream::iter(kills)
            .map(|(id, name)| async move {
                if cancel.is_cancelled() {
                    return (id, KillOutcomeReport::Skipped);
                }
                tracing::info!(event = "stopping", cycle, container = %name, id = %short(&id), grace_s = timeout, "stopping");
                let outcome = match self.docker.stop_and_remove(&id, timeout, cancel).await {
                    Ok(KillOutcome::Removed) => KillOutcomeReport::Removed,
                    Ok(KillOutcome::Vanished) => KillOutcomeReport::Vanished,
                    Err(e) => KillOutcomeReport::Failed {
                        reason: e.reason(),
                        error: e.to_string(),
                    },
                };
                (id, outcome)
            })
            .buffer_unordered(KILL_CONCURRENCY)
            .collect()
            .await
    }
}

fn short(id: &str) -> &str {
    crate::container::short_id(id)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

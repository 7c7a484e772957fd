//! The daemon: the HTTP server, the log shipper, the log service container
//! and one cycle every interval, until the cancellation token fires.

use crate::config::{Config, InventoryMode};
use crate::cycle::Governor;
use crate::decide::rules::{self, Policy};
use crate::docker::client::DockerClient;
use crate::docker::container::ActsOn;
use crate::docker::inventory::{EventInventory, Inventory, ListInventory};
use crate::docker::log_service;
use crate::docker::log_service::{EndpointUpdater, LoggerEndpoint};
use crate::http::{app, AppState};
use crate::metrics::Metrics;
use crate::ship::journal::Journal;
use crate::ship::shipper::{self, ShipperConfig, ShipperHandle};
use anyhow::Context;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything `run` and `once` share.
pub struct Parts {
    pub governor: Governor,
    pub metrics: Arc<Metrics>,
    pub docker: Arc<DockerClient>,
    pub shipper_task: Option<tokio::task::JoinHandle<()>>,
    /// Tells the sender to finish: fired after the last cycle committed.
    pub shipper_stop: CancellationToken,
    /// Set when the log service's port is learnt from its container (port 0).
    pub endpoint_updater: Option<EndpointUpdater>,
}

/// Builds the governor and, when shipping is on, starts the shipper. With
/// `follow_events` (and `--inventory events`) the container inventory
/// follows Docker's events until `cancel`; otherwise it lists every cycle.
/// Fails when another gestor holds the spool directory.
pub fn build(
    config: &Config,
    policy: Policy,
    follow_events: bool,
    cancel: &CancellationToken,
) -> anyhow::Result<Parts> {
    let metrics = Arc::new(Metrics::new(VERSION));
    metrics.set_interval(config.interval);
    metrics.set_policy(&policy);
    metrics.set_health_window(config.health_window().as_secs_f64());
    let docker = Arc::new(
        DockerClient::new(&config.docker_host)
            .with_request_counter(metrics.docker_requests.clone()),
    );
    // The containers the policy may act on: only their exits are inspected.
    let acts = ActsOn {
        manage_unlabeled: config.manage_unlabeled,
        never: vec![config.logger_container.clone()],
    };
    let inventory = match config.inventory {
        InventoryMode::Events if follow_events => Inventory::Events(EventInventory::start(
            docker.clone(),
            config.label_filters(),
            acts,
            metrics.inventory.clone(),
            config.resync_every,
            cancel.clone(),
        )),
        _ => Inventory::List(ListInventory::new(
            docker.clone(),
            config.label_filters(),
            acts,
        )),
    };
    let mut endpoint_updater = None;
    let shipper_stop = CancellationToken::new();
    let (shipper, shipper_task): (Option<ShipperHandle>, _) = if config.shipping_enabled() {
        let mut shipper_config = ShipperConfig::new(
            &config.logger_url,
            config.logger_token.clone(),
            config.spool_dir.clone(),
            config.spool_max_bytes,
        );
        if log_service::spec(config).is_some_and(|s| s.host_port == 0) {
            let (updater, endpoint) = LoggerEndpoint::learnt();
            shipper_config.endpoint = endpoint;
            endpoint_updater = Some(updater);
        }
        shipper_config.memory_max_records = config.log_memory_records;
        let (h, t) = shipper::spawn(shipper_config, metrics.clone(), shipper_stop.clone())?;
        (Some(h), Some(t))
    } else {
        (None, None)
    };
    // Intents go beside the spool: without a log service there is nothing
    // to record, so nothing to journal either.
    let journal = shipper.as_ref().and_then(|_| {
        let dir = config.spool_dir.join("intents");
        Journal::open(&dir)
            .inspect_err(|e| {
                metrics.journal_failed();
                tracing::error!(error = %e, "CANNOT OPEN THE INTENT JOURNAL: acts will have no intent on disk before them");
            })
            .ok()
    });
    let governor = Governor::new(
        config.clone(),
        docker.clone(),
        inventory,
        metrics.clone(),
        shipper,
        journal,
        Arc::new(policy),
    );
    Ok(Parts {
        governor,
        metrics,
        docker,
        shipper_task,
        shipper_stop,
        endpoint_updater,
    })
}

/// Why gestor reads a policy file.
#[derive(Debug, Clone, Copy)]
enum PolicyLoad {
    Start,
    Sighup,
    FileChanged,
}

/// The policy in force at start: `--policy FILE`, or the default rule
/// (`--min-per-type` of each type, the lightest). A file that does not
/// validate is an error naming its line and column: gestor does not start.
pub fn load_policy(config: &Config) -> anyhow::Result<Policy> {
    read_policy(config, PolicyLoad::Start)
}

fn read_policy(config: &Config, why: PolicyLoad) -> anyhow::Result<Policy> {
    let Some(path) = &config.policy else {
        return Ok(Policy::default_for(config.min_per_type));
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the policy file {}", path.display()))?;
    let policy = rules::parse(&text, Some(&path.display().to_string()))
        .map_err(|e| anyhow::anyhow!("policy file {}: {e}", path.display()))?;
    tracing::info!(file = %path.display(), rules = policy.rules.len(), reason = ?why, "policy loaded");
    Ok(policy)
}

/// Reads the policy file again; a file that does not validate keeps the
/// running policy, is logged and counted.
fn reload_policy(config: &Config, governor: &mut Governor, metrics: &Metrics, why: PolicyLoad) {
    match read_policy(config, why) {
        Ok(policy) => governor.set_policy(Arc::new(policy)),
        Err(e) => {
            metrics.policy_reload_failed();
            tracing::error!(error = %format!("{e:#}"), reason = ?why, "POLICY NOT RELOADED: the running policy stays");
        }
    }
}

/// Reload requests: SIGHUP, and with `--policy-watch` a change of the
/// file (its size or modification time, looked at every second).
fn policy_reloads(
    config: &Config,
    cancel: &CancellationToken,
) -> tokio::sync::mpsc::Receiver<PolicyLoad> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let hup = tx.clone();
    let stop = cancel.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut sighup) = signal(SignalKind::hangup()) else {
            tracing::error!(
                "cannot install the SIGHUP handler: the policy reloads only with --policy-watch"
            );
            return;
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = sighup.recv() => {
                    tracing::info!("SIGHUP received: reloading the policy");
                    let _ = hup.try_send(PolicyLoad::Sighup);
                }
            }
        }
    });
    if let (true, Some(path)) = (config.policy_watch, config.policy.clone()) {
        let stop = cancel.clone();
        tokio::spawn(async move {
            let stamp = |m: std::fs::Metadata| (m.len(), m.modified().ok());
            let mut last = tokio::fs::metadata(&path).await.ok().map(stamp);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                let now = tokio::fs::metadata(&path).await.ok().map(stamp);
                if now.is_some() && now != last {
                    last = now;
                    let _ = tx.try_send(PolicyLoad::FileChanged);
                }
            }
        });
    }
    rx
}

/// Writes `addr` to `path` whole (temporary file, then rename), so a reader
/// never sees a partial address.
fn write_ready_file(path: &std::path::Path, addr: std::net::SocketAddr) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, format!("{addr}\n"))?;
    std::fs::rename(&tmp, path)
}

/// Runs the daemon until `cancel` fires.
pub async fn run(config: Config, cancel: CancellationToken) -> anyhow::Result<()> {
    let policy = load_policy(&config)?;
    let Parts {
        mut governor,
        metrics,
        docker,
        shipper_task,
        shipper_stop,
        endpoint_updater,
    } = build(&config, policy, true, &cancel)?;
    let reloads = policy_reloads(&config, &cancel);
    let state = Arc::new(AppState::new(metrics.clone(), config.health_window()));

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    // With port 0 the kernel picks: say where, for whoever started us.
    let bound = listener
        .local_addr()
        .with_context(|| format!("cannot read the address bound for {}", config.listen))?;
    if let Some(path) = &config.ready_file {
        write_ready_file(path, bound)
            .with_context(|| format!("cannot write the ready file {}", path.display()))?;
    }
    tracing::info!(listen = %bound, "listening on {bound}");
    let server_cancel = cancel.clone();
    let server = tokio::spawn(
        axum::serve(listener, app(state.clone()))
            .with_graceful_shutdown(async move { server_cancel.cancelled().await })
            .into_future(),
    );

    let kind = governor.source().current_kind();
    match kind {
        crate::collect::snapshot::SourceKind::Kernel => tracing::info!(
            source = "kernel",
            file = %config.sysinfo.display(),
            "SNAPSHOT SOURCE: kernel module file"
        ),
        crate::collect::snapshot::SourceKind::Userspace => tracing::warn!(
            source = "userspace",
            procfs = %config.procfs.display(),
            missing = %config.sysinfo.display(),
            "SNAPSHOT SOURCE: userspace /proc collector ({} is absent: gestor_containers.ko is not loaded)",
            config.sysinfo.display()
        ),
    }
    tracing::info!(
        listen = %bound,
        interval_s = config.interval,
        inventory = ?config.inventory,
        dry_run = config.dry_run,
        docker = %config.docker_host,
        logger = %config.logger_url,
        only_label = ?config.only_label,
        run_id = governor.run_id(),
        host = %config.hostname(),
        version = VERSION,
        "gestor started"
    );

    // The log service container is created in the background: cycles (and
    // shipping into the spool) start at once.
    if config.create_logger {
        if let Some(spec) = log_service::spec(&config) {
            tokio::spawn(log_service::supervise(
                config.clone(),
                spec,
                docker.clone(),
                endpoint_updater,
                cancel.clone(),
            ));
        } else {
            tracing::error!(url = %config.logger_url, "cannot derive a host port from logger_url; not creating the log service container");
        }
    }

    let mut ticker = tokio::time::interval(config.interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reloads = reloads;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(why) = reloads.recv() => {
                reload_policy(&config, &mut governor, &metrics, why);
                continue;
            }
            _ = ticker.tick() => {}
        }
        let report = governor.run_cycle(&cancel).await;
        state.record_cycle(report);
    }
    tracing::info!("shutting down");
    // The last cycle has committed its records: the sender gets its final
    // second to deliver, and the rest waits in the spool.
    drop(governor);
    shipper_stop.cancel();
    if let Some(task) = shipper_task {
        let _ = tokio::time::timeout(Duration::from_millis(1500), task).await;
    }
    let _ = tokio::time::timeout(Duration::from_millis(300), server).await;
    Ok(())
}

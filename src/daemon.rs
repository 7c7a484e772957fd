//! The daemon: the HTTP server, the log shipper, the log service container
//! and one cycle every interval, until the cancellation token fires.

use crate::config::Config;
use crate::cycle::Governor;
use crate::docker::{DockerClient, LoggerSpec};
use crate::http::{app, AppState};
use crate::metrics::Metrics;
use crate::shipper::{self, ShipperConfig, ShipperHandle};
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
}

/// Builds the governor and, when shipping is on, starts the shipper.
pub fn build(config: &Config, cancel: &CancellationToken) -> Parts {
    let metrics = Arc::new(Metrics::new(VERSION));
    let docker = Arc::new(DockerClient::new(&config.docker_host));
    let (shipper, shipper_task): (Option<ShipperHandle>, _) = if config.shipping_enabled() {
        let mut shipper_config = ShipperConfig::new(
            &config.logger_url,
            config.logger_token.clone(),
            config.spool_dir.clone(),
            config.spool_max_bytes,
        );
        shipper_config.memory_max_records = config.log_memory_records;
        let (h, t) = shipper::spawn(shipper_config, metrics.clone(), cancel.clone());
        (Some(h), Some(t))
    } else {
        (None, None)
    };
    let governor = Governor::new(config.clone(), docker.clone(), metrics.clone(), shipper);
    Parts {
        governor,
        metrics,
        docker,
        shipper_task,
    }
}

/// The log service container spec derived from the configuration: published
/// on the host and port of `logger_url`.
pub fn logger_spec(config: &Config) -> Option<LoggerSpec> {
    let rest = config
        .logger_url
        .strip_prefix("http://")
        .or_else(|| config.logger_url.strip_prefix("https://"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (authority, 80),
    };
    let host_ip = match host {
        "localhost" => "127.0.0.1".to_string(),
        h => h.trim_matches(|c| c == '[' || c == ']').to_string(),
    };
    Some(LoggerSpec {
        name: config.logger_container.clone(),
        image: config.logger_image.clone(),
        volume: config.logger_volume.clone(),
        host_ip,
        host_port: port,
        token: config.logger_token.clone(),
        healthy_timeout: Duration::from_secs(60),
    })
}

/// Runs the daemon until `cancel` fires.
pub async fn run(config: Config, cancel: CancellationToken) -> anyhow::Result<()> {
    let Parts {
        mut governor,
        metrics,
        docker,
        shipper_task,
    } = build(&config, &cancel);
    let state = Arc::new(AppState::new(metrics, config.interval()));

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let server_cancel = cancel.clone();
    let server = tokio::spawn(
        axum::serve(listener, app(state.clone()))
            .with_graceful_shutdown(async move { server_cancel.cancelled().await })
            .into_future(),
    );

    let kind = governor.source().current_kind();
    match kind {
        crate::snapshot::SourceKind::Kernel => tracing::info!(
            source = "kernel",
            file = %config.sysinfo.display(),
            "SNAPSHOT SOURCE: kernel module file"
        ),
        crate::snapshot::SourceKind::Userspace => tracing::warn!(
            source = "userspace",
            procfs = %config.procfs.display(),
            missing = %config.sysinfo.display(),
            "SNAPSHOT SOURCE: userspace /proc collector ({} is absent: gestor_containers.ko is not loaded)",
            config.sysinfo.display()
        ),
    }
    tracing::info!(
        listen = %config.listen,
        interval_s = config.interval,
        dry_run = config.dry_run,
        docker = %config.docker_host,
        logger = %config.logger_url,
        only_label = ?config.only_label,
        version = VERSION,
        "gestor started"
    );

    // The log service container is created in the background: cycles (and
    // shipping into the spool) start at once.
    if config.create_logger {
        if let Some(spec) = logger_spec(&config) {
            let docker = docker.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let mut delay = Duration::from_secs(2);
                loop {
                    match docker.ensure_logger(&spec).await {
                        Ok(id) => {
                            tracing::info!(container = %spec.name, id = %&id[..id.len().min(12)], "log service container is healthy");
                            return;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, retry_in_s = delay.as_secs(), "cannot set up the log service container")
                        }
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(60));
                }
            });
        } else {
            tracing::error!(url = %config.logger_url, "cannot derive a host port from logger_url; not creating the log service container");
        }
    }

    let mut ticker = tokio::time::interval(config.interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_kind = kind;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let report = governor.run_cycle(&cancel).await;
        // The snapshot says where it came from: no second look at the file.
        if let Some(now_kind) = report.source.filter(|k| *k != last_kind) {
            tracing::warn!(
                from = last_kind.as_str(),
                to = now_kind.as_str(),
                "SNAPSHOT SOURCE changed"
            );
            last_kind = now_kind;
        }
        state.record_cycle(report);
    }
    tracing::info!("shutting down");
    drop(governor); // closes the shipper's channel after its last batch
    if let Some(task) = shipper_task {
        let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    Ok(())
}

//! The log service's container and its address.
//!
//! With `--create-logger`, gestor creates (or reuses) the log service's
//! container, starts it and waits until it is healthy, retrying with backoff
//! ([`supervise`]). The shipper reads the service's address from a
//! [`LoggerEndpoint`]: usually a fixed URL. With `--logger-url
//! http://HOST:0`, the port Docker picked when it published the container:
//! the supervisor learns it once the container is up, and learns it again
//! when the shipper cannot connect (a restarted container may be given
//! another port).

use crate::config::Config;
use crate::docker::client::{deadline, DockerClient, DockerError};
use crate::docker::container::LABEL_PROTECTED;
use bollard::container::{Config as CreateConfig, CreateContainerOptions, StartContainerOptions};
use bollard::models::{HostConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum};
use bollard::volume::CreateVolumeOptions;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

/// The shipper's view: the current base URL (no trailing `/`), if known.
#[derive(Debug, Clone)]
pub struct LoggerEndpoint {
    url: watch::Receiver<Option<String>>,
    unreachable: Arc<Notify>,
}

/// The daemon's side of a learnt endpoint.
#[derive(Debug)]
pub struct EndpointUpdater {
    url: watch::Sender<Option<String>>,
    unreachable: Arc<Notify>,
}

impl LoggerEndpoint {
    /// An address that never changes.
    pub fn fixed(url: &str) -> LoggerEndpoint {
        let (tx, rx) = watch::channel(Some(url.trim_end_matches('/').to_string()));
        // Nobody changes a fixed URL: the sender may go.
        drop(tx);
        LoggerEndpoint {
            url: rx,
            unreachable: Arc::new(Notify::new()),
        }
    }

    /// An address learnt later through the returned updater.
    pub fn learnt() -> (EndpointUpdater, LoggerEndpoint) {
        let (tx, rx) = watch::channel(None);
        let unreachable = Arc::new(Notify::new());
        (
            EndpointUpdater {
                url: tx,
                unreachable: unreachable.clone(),
            },
            LoggerEndpoint {
                url: rx,
                unreachable,
            },
        )
    }

    pub fn current(&self) -> Option<String> {
        self.url.borrow().clone()
    }

    /// The shipper could not connect: the address may have changed.
    pub fn report_unreachable(&self) {
        self.unreachable.notify_one();
    }
}

impl EndpointUpdater {
    pub fn set(&self, url: &str) {
        let url = url.trim_end_matches('/').to_string();
        self.url.send_if_modified(|current| {
            let changed = current.as_deref() != Some(url.as_str());
            if changed {
                tracing::info!(url = %url, "log service address");
                *current = Some(url);
            }
            changed
        });
    }

    /// Waits until the shipper reports the address unreachable.
    pub async fn unreachable(&self) {
        self.unreachable.notified().await;
    }
}

/// The host port on which `c` publishes the log service's port 8000 for
/// `host_ip` (or its only binding).
fn published_port(c: &bollard::models::ContainerInspectResponse, host_ip: &str) -> Option<u16> {
    let bindings = c
        .network_settings
        .as_ref()?
        .ports
        .as_ref()?
        .get("8000/tcp")?
        .as_ref()?;
    let binding = bindings
        .iter()
        .find(|b| b.host_ip.as_deref() == Some(host_ip))
        .or_else(|| bindings.first())?;
    binding.host_port.as_deref()?.parse().ok()
}

/// The log service container gestor made sure of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggerContainer {
    pub id: String,
    pub host_port: u16,
}

/// How to create the log service container.
#[derive(Debug, Clone)]
pub struct LoggerSpec {
    pub name: String,
    pub image: String,
    pub volume: String,
    pub host_ip: String,
    /// 0: Docker picks.
    pub host_port: u16,
    pub token: Option<String>,
    pub healthy_timeout: Duration,
}

/// How the log service container's inspects are named in errors.
const INSPECT_LOGGER: &str = "inspecting the log service container";

impl DockerClient {
    /// The host port the log service container publishes now, or `None` when
    /// it is not running (Docker picks a new port at each start when it was
    /// published on port 0).
    pub async fn logger_port(&self, spec: &LoggerSpec) -> Result<Option<u16>, DockerError> {
        let Some(c) = self.inspect_response(&spec.name, INSPECT_LOGGER).await? else {
            return Ok(None);
        };
        if !c.state.as_ref().and_then(|s| s.running).unwrap_or(false) {
            return Ok(None);
        }
        Ok(published_port(&c, &spec.host_ip))
    }

    /// Creates the log service container (or reuses the existing one), starts
    /// it and waits until Docker reports it healthy. Returns its full ID and
    /// the host port its service is published on.
    pub async fn ensure_logger(&self, spec: &LoggerSpec) -> Result<LoggerContainer, DockerError> {
        let docker = self.connect().await?;
        let logger_err = |message: String| DockerError::Logger {
            name: spec.name.clone(),
            message,
        };
        let existing = self.inspect_response(&spec.name, INSPECT_LOGGER).await?;
        let id = match existing {
            Some(c) => {
                tracing::info!(container = %spec.name, "reusing the existing log service container");
                c.id.unwrap_or_else(|| spec.name.clone())
            }
            None => {
                self.bounded(
                    "create_volume",
                    &format!("creating volume {}", spec.volume),
                    deadline::CREATE,
                    docker.create_volume(CreateVolumeOptions {
                        name: spec.volume.clone(),
                        driver: "local".to_string(),
                        labels: HashMap::from([(LABEL_PROTECTED.to_string(), "true".to_string())]),
                        ..Default::default()
                    }),
                )
                .await?;
                let mut env = Vec::new();
                if let Some(token) = &spec.token {
                    env.push(format!("LOGGER_TOKEN={token}"));
                }
                let host_config = HostConfig {
                    binds: Some(vec![format!("{}:/data", spec.volume)]),
                    port_bindings: Some(HashMap::from([(
                        "8000/tcp".to_string(),
                        Some(vec![PortBinding {
                            host_ip: Some(spec.host_ip.clone()),
                            // Empty: Docker picks a free port (read back below).
                            host_port: Some(match spec.host_port {
                                0 => String::new(),
                                p => p.to_string(),
                            }),
                        }]),
                    )])),
                    restart_policy: Some(RestartPolicy {
                        name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                        maximum_retry_count: None,
                    }),
                    ..Default::default()
                };
                let config = CreateConfig {
                    image: Some(spec.image.clone()),
                    env: Some(env),
                    labels: Some(HashMap::from([
                        (LABEL_PROTECTED.to_string(), "true".to_string()),
                        ("gestor.role".to_string(), "logger".to_string()),
                    ])),
                    host_config: Some(host_config),
                    ..Default::default()
                };
                let created = self
                    .bounded(
                        "create",
                        "creating the log service container",
                        deadline::CREATE,
                        docker.create_container(
                            Some(CreateContainerOptions {
                                name: spec.name.clone(),
                                platform: None,
                            }),
                            config,
                        ),
                    )
                    .await
                    .map_err(|e| {
                        if e.is_status(404) {
                            logger_err(format!(
                                "image {} not found: build it with `docker build -t {} logger/`",
                                spec.image, spec.image
                            ))
                        } else {
                            logger_err(format!("create failed: {e}"))
                        }
                    })?;
                tracing::info!(container = %spec.name, image = %spec.image, "created the log service container");
                created.id
            }
        };
        match self
            .bounded(
                "start",
                "starting the log service container",
                deadline::CREATE,
                docker.start_container(&id, None::<StartContainerOptions<String>>),
            )
            .await
        {
            Ok(()) => {}
            Err(e) if e.is_status(304) => {} // already running
            Err(e) => return Err(logger_err(format!("start failed: {e}"))),
        }
        let healthy_by = tokio::time::Instant::now() + spec.healthy_timeout;
        loop {
            let c = self
                .inspect_response(&id, INSPECT_LOGGER)
                .await?
                .ok_or_else(|| logger_err("it was removed while starting".into()))?;
            let state = c.state.clone().unwrap_or_default();
            let health = state.health.and_then(|h| h.status).map(|s| s.to_string());
            let running = state.running.unwrap_or(false);
            let ready = match health.as_deref() {
                Some("healthy") => true,
                None | Some("none") | Some("") => running,
                _ => false,
            };
            if ready {
                let host_port = published_port(&c, &spec.host_ip).ok_or_else(|| {
                    logger_err("its port 8000 is not published on the host".into())
                })?;
                return Ok(LoggerContainer { id, host_port });
            }
            if tokio::time::Instant::now() >= healthy_by {
                return Err(logger_err(format!(
                    "not healthy after {:?} (running: {running}, health: {})",
                    spec.healthy_timeout,
                    health.unwrap_or_else(|| "none".into())
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// The log service container spec derived from the configuration: published
/// on the host and port of `logger_url` (port 0: a port Docker picks).
pub fn spec(config: &Config) -> Option<LoggerSpec> {
    let url = config.logger_endpoint().ok()??;
    let host_ip = match url.host()? {
        url::Host::Domain("localhost") => "127.0.0.1".to_string(),
        url::Host::Domain(d) => d.to_string(),
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => ip.to_string(),
    };
    Some(LoggerSpec {
        name: config.logger_container.clone(),
        image: config.logger_image.clone(),
        volume: config.logger_volume.clone(),
        host_ip,
        host_port: url.port_or_known_default()?,
        token: config.logger_token.clone(),
        healthy_timeout: Duration::from_secs(60),
    })
}

/// `logger_url` with its port replaced by the one Docker published.
fn url_with_port(config: &Config, port: u16) -> Option<String> {
    let mut url = config.logger_endpoint().ok()??;
    url.set_port(Some(port)).ok()?;
    Some(url.as_str().trim_end_matches('/').to_string())
}

/// Creates (or reuses) the log service container, retrying with backoff;
/// then, when its port was left to Docker, learns that port, and learns it
/// again each time the shipper cannot connect.
pub async fn supervise(
    config: Config,
    spec: LoggerSpec,
    docker: Arc<DockerClient>,
    updater: Option<EndpointUpdater>,
    cancel: CancellationToken,
) {
    let mut delay = Duration::from_secs(2);
    let port = loop {
        match docker.ensure_logger(&spec).await {
            Ok(c) => {
                tracing::info!(container = %spec.name, id = %&c.id[..c.id.len().min(12)], port = c.host_port, "log service container is healthy");
                break c.host_port;
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
    };
    let Some(updater) = updater else { return };
    let learn = |port| {
        if let Some(url) = url_with_port(&config, port) {
            updater.set(&url);
        }
    };
    learn(port);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = updater.unreachable() => {}
        }
        match docker.logger_port(&spec).await {
            Ok(Some(port)) => learn(port),
            Ok(None) => {} // not running: nothing to learn until it is again
            Err(e) => tracing::warn!(error = %e, "cannot look up the log service's port"),
        }
        // At most one lookup every 2 s, however often deliveries fail.
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_endpoint_keeps_its_url() {
        let e = LoggerEndpoint::fixed("http://127.0.0.1:8000/");
        assert_eq!(e.current().as_deref(), Some("http://127.0.0.1:8000"));
        e.report_unreachable();
        assert_eq!(e.current().as_deref(), Some("http://127.0.0.1:8000"));
    }

    #[tokio::test]
    async fn a_learnt_endpoint_is_unknown_until_set_and_hears_of_failures() {
        let (updater, e) = LoggerEndpoint::learnt();
        assert_eq!(e.current(), None);
        updater.set("http://127.0.0.1:41000");
        assert_eq!(e.current().as_deref(), Some("http://127.0.0.1:41000"));
        e.report_unreachable();
        // The notification is kept until the updater waits for it.
        tokio::time::timeout(std::time::Duration::from_secs(1), updater.unreachable())
            .await
            .expect("the report reaches the updater");
        updater.set("http://127.0.0.1:41001");
        assert_eq!(e.current().as_deref(), Some("http://127.0.0.1:41001"));
    }
}

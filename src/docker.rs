//! The Docker side, through bollard: list containers, stop and remove them,
//! and create the log service container. The only module that talks to Docker.

use crate::container::{ContainerInfo, LABEL_PROTECTED};
use bollard::container::{
    Config as CreateConfig, CreateContainerOptions, ListContainersOptions, RemoveContainerOptions,
    StartContainerOptions, StopContainerOptions,
};
use bollard::models::{HostConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum};
use bollard::volume::CreateVolumeOptions;
use bollard::{Docker, API_DEFAULT_VERSION};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// Seconds any one Docker request may take before we give up on it.
const REQUEST_TIMEOUT_SECS: u64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot connect to Docker at {endpoint}: {source}")]
    Connect {
        endpoint: String,
        source: bollard::errors::Error,
    },
    #[error("Docker at {endpoint}: {what} failed: {source}")]
    Request {
        endpoint: String,
        what: String,
        source: bollard::errors::Error,
    },
    #[error("log service container {name}: {message}")]
    Logger { name: String, message: String },
}

/// How one kill went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillOutcome {
    /// Stopped and removed.
    Removed,
    /// Gone before we got to it (someone else removed it).
    Vanished,
}

/// A kill that failed, and at which step.
#[derive(Debug, thiserror::Error)]
pub enum KillError {
    #[error("stop failed: {0}")]
    Stop(bollard::errors::Error),
    #[error("remove failed: {0}")]
    Remove(bollard::errors::Error),
}

impl KillError {
    pub fn reason(&self) -> &'static str {
        match self {
            KillError::Stop(_) => "stop_failed",
            KillError::Remove(_) => "remove_failed",
        }
    }
}

/// A Docker client that connects (and negotiates the API version) lazily, so
/// gestor starts before dockerd does and survives dockerd restarts.
pub struct DockerClient {
    endpoint: String,
    client: Mutex<Option<Docker>>,
}

fn is_status(e: &bollard::errors::Error, code: u16) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code, .. } if *status_code == code)
}

impl DockerClient {
    pub fn new(endpoint: &str) -> DockerClient {
        DockerClient {
            endpoint: endpoint.to_string(),
            client: Mutex::new(None),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn connect(&self) -> Result<Docker, DockerError> {
        let mut guard = self.client.lock().await;
        if let Some(d) = guard.as_ref() {
            return Ok(d.clone());
        }
        let connect_err = |source| DockerError::Connect {
            endpoint: self.endpoint.clone(),
            source,
        };
        let raw = if let Some(path) = self.endpoint.strip_prefix("unix://") {
            Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
        } else {
            Docker::connect_with_http(&self.endpoint, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
        }
        .map_err(connect_err)?;
        // Speak the server's API version (Debian's docker.io 20.10 is 1.41).
        let docker = raw.negotiate_version().await.map_err(connect_err)?;
        *guard = Some(docker.clone());
        Ok(docker)
    }

    /// Forgets the connection after a failure, so the next call reconnects and
    /// renegotiates (dockerd may have been restarted or upgraded).
    async fn reset(&self) {
        *self.client.lock().await = None;
    }

    fn request_err(
        &self,
        what: impl Into<String>,
    ) -> impl FnOnce(bollard::errors::Error) -> DockerError + '_ {
        let what = what.into();
        move |source| DockerError::Request {
            endpoint: self.endpoint.clone(),
            what,
            source,
        }
    }

    /// All containers (running or not) that carry every `label_filters` label.
    pub async fn list(
        &self,
        label_filters: &[(String, String)],
    ) -> Result<Vec<ContainerInfo>, DockerError> {
        let docker = self.connect().await?;
        let mut filters = HashMap::new();
        if !label_filters.is_empty() {
            filters.insert(
                "label".to_string(),
                label_filters
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>(),
            );
        }
        let options = ListContainersOptions::<String> {
            all: true,
            filters,
            ..Default::default()
        };
        let listed = match docker.list_containers(Some(options)).await {
            Ok(l) => l,
            Err(e) => {
                self.reset().await;
                return Err(self.request_err("listing containers")(e));
            }
        };
        Ok(listed
            .into_iter()
            .filter_map(|c| {
                let id = c.id?;
                Some(ContainerInfo {
                    name: c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .map(|n| n.trim_start_matches('/').to_string())
                        .unwrap_or_else(|| id[..id.len().min(12)].to_string()),
                    id,
                    image: c.image.unwrap_or_default(),
                    created: c.created.unwrap_or_default(),
                    state: c.state.unwrap_or_default(),
                    labels: c.labels.unwrap_or_default(),
                    command: c
                        .command
                        .unwrap_or_default()
                        .split_whitespace()
                        .map(String::from)
                        .collect(),
                })
            })
            .collect())
    }

    /// Stops (SIGTERM, then SIGKILL after `timeout_secs`) and removes one
    /// container. A container that is already gone is `Vanished`, not an error.
    ///
    /// When `cancel` fires during the stop (gestor is shutting down), the
    /// grace period is cut short: the container is killed and removed at
    /// once, so no kill is ever left half done (stopped but not removed).
    pub async fn stop_and_remove(
        &self,
        id: &str,
        timeout_secs: u32,
        cancel: &CancellationToken,
    ) -> Result<KillOutcome, KillError> {
        let docker = self.connect().await.map_err(|e| {
            KillError::Stop(bollard::errors::Error::IOError {
                err: std::io::Error::other(e.to_string()),
            })
        })?;
        let stop = docker.stop_container(
            id,
            Some(StopContainerOptions {
                t: timeout_secs.into(),
            }),
        );
        let stopped = tokio::select! {
            r = stop => Some(r),
            _ = cancel.cancelled() => None,
        };
        match stopped {
            Some(Ok(())) | None => {}
            Some(Err(e)) if is_status(&e, 404) => return Ok(KillOutcome::Vanished),
            // 304: already stopped; go on and remove it.
            Some(Err(e)) if is_status(&e, 304) => {}
            Some(Err(e)) => return Err(KillError::Stop(e)),
        }
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(KillOutcome::Removed),
            // Removed meanwhile (e.g. started with --rm): the goal is reached.
            Err(e) if is_status(&e, 404) => Ok(KillOutcome::Removed),
            // 409 "removal already in progress": same.
            Err(e) if is_status(&e, 409) => Ok(KillOutcome::Removed),
            Err(e) => Err(KillError::Remove(e)),
        }
    }

    /// The host port the log service container publishes now, or `None` when
    /// it is not running (Docker picks a new port at each start when it was
    /// published on port 0).
    pub async fn logger_port(&self, spec: &LoggerSpec) -> Result<Option<u16>, DockerError> {
        let docker = self.connect().await?;
        let c = match docker.inspect_container(&spec.name, None).await {
            Ok(c) => c,
            Err(e) if is_status(&e, 404) => return Ok(None),
            Err(e) => {
                self.reset().await;
                return Err(self.request_err("inspecting the log service container")(e));
            }
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
        let existing = docker.inspect_container(&spec.name, None).await;
        let id = match existing {
            Ok(c) => {
                tracing::info!(container = %spec.name, "reusing the existing log service container");
                c.id.unwrap_or_else(|| spec.name.clone())
            }
            Err(e) if is_status(&e, 404) => {
                docker
                    .create_volume(CreateVolumeOptions {
                        name: spec.volume.clone(),
                        driver: "local".to_string(),
                        labels: HashMap::from([(LABEL_PROTECTED.to_string(), "true".to_string())]),
                        ..Default::default()
                    })
                    .await
                    .map_err(self.request_err(format!("creating volume {}", spec.volume)))?;
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
                let created = docker
                    .create_container(
                        Some(CreateContainerOptions {
                            name: spec.name.clone(),
                            platform: None,
                        }),
                        config,
                    )
                    .await
                    .map_err(|e| {
                        if is_status(&e, 404) {
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
            Err(e) => return Err(self.request_err("inspecting the log service container")(e)),
        };
        match docker
            .start_container(&id, None::<StartContainerOptions<String>>)
            .await
        {
            Ok(()) => {}
            Err(e) if is_status(&e, 304) => {} // already running
            Err(e) => return Err(logger_err(format!("start failed: {e}"))),
        }
        let deadline = tokio::time::Instant::now() + spec.healthy_timeout;
        loop {
            let c = docker
                .inspect_container(&id, None)
                .await
                .map_err(self.request_err("inspecting the log service container"))?;
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
            if tokio::time::Instant::now() >= deadline {
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

//! The Docker side, through bollard: list, inspect and follow containers,
//! stop and remove them. The only module that talks to Docker (with
//! `log_service`, which creates the log service container through it).

use crate::docker::container::{ContainerInfo, ExitFacts};
use bollard::container::{ListContainersOptions, RemoveContainerOptions, StopContainerOptions};
use bollard::system::EventsOptions;
use bollard::{Docker, API_DEFAULT_VERSION};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// How long each kind of Docker call may take. Every call has one: a call
/// that runs out is a failed call (and a failed stage), never a stall.
/// bollard's own timeout ends at the response headers, so these bound the
/// whole call, body included.
pub mod deadline {
    use std::time::Duration;
    /// Connecting and negotiating the API version.
    pub const CONNECT: Duration = Duration::from_secs(5);
    /// Listing every container (body included).
    pub const LIST: Duration = Duration::from_secs(15);
    /// Inspecting one container.
    pub const INSPECT: Duration = Duration::from_secs(5);
    /// Beyond the stop's grace period: Docker's SIGKILL, then its wait.
    pub const STOP_MARGIN: Duration = crate::config::STOP_MARGIN;
    /// A forced removal (SIGKILL if still running, then the filesystem).
    pub const REMOVE: Duration = Duration::from_secs(30);
    /// Creating, starting a container or a volume.
    pub const CREATE: Duration = Duration::from_secs(30);
}

/// bollard's client-wide timeout: above every deadline of ours (a stop may
/// wait up to 300 s), so ours always fire first.
const CLIENT_TIMEOUT_SECS: u64 = 3_600;

/// Where the engine creates containers' cgroups (`docker info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupDriver {
    Cgroupfs,
    Systemd,
}

impl CgroupDriver {
    /// From `docker info`'s `CgroupDriver`; anything but `systemd` is
    /// Docker's cgroupfs layout (`none`, on a host without cgroups, has no
    /// container processes to confirm).
    pub fn from_docker(name: &str) -> CgroupDriver {
        if name == "systemd" {
            CgroupDriver::Systemd
        } else {
            CgroupDriver::Cgroupfs
        }
    }
}

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
    #[error("Docker at {endpoint}: {what} took more than {after:?}")]
    Timeout {
        endpoint: String,
        what: String,
        after: Duration,
    },
    #[error("log service container {name}: {message}")]
    Logger { name: String, message: String },
}

impl DockerError {
    /// Docker answered this status (e.g. 404: no such container).
    pub fn is_status(&self, code: u16) -> bool {
        matches!(self, DockerError::Request { source, .. } if is_status(source, code))
    }

    /// Docker could not be reached at all (no connection, or no answer to
    /// the version negotiation): the call cost the engine nothing.
    pub fn is_unreachable(&self) -> bool {
        match self {
            DockerError::Connect { .. } => true,
            DockerError::Timeout { what, .. } => what == CONNECTING,
            _ => false,
        }
    }
}

/// What a call that runs out of time while connecting is called.
const CONNECTING: &str = "connecting";

/// How one kill went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillOutcome {
    /// Stopped and removed; `forced` when the stop failed or ran out of time
    /// and the removal had to kill it.
    Removed { forced: bool },
    /// Stopped and left there (a rule that only stops).
    Stopped,
    /// Gone before we got to it (someone else removed it).
    Vanished,
}

/// How a `docker stop` ended.
enum Stop {
    Done,
    Gone,
    Failed(DockerError),
    /// gestor is shutting down: the grace is cut short.
    Cancelled,
}

/// A kill that failed, and at which step.
#[derive(Debug, thiserror::Error)]
pub enum KillError {
    #[error("cannot reach Docker to stop it: {0}")]
    Stop(DockerError),
    #[error("remove failed: {0}")]
    Remove(DockerError),
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
    /// Requests made, by operation (`gestor_docker_requests_total{op}`).
    requests: Option<prometheus::IntCounterVec>,
}

fn is_status(e: &bollard::errors::Error, code: u16) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code, .. } if *status_code == code)
}

impl DockerClient {
    pub fn new(endpoint: &str) -> DockerClient {
        DockerClient {
            endpoint: endpoint.to_string(),
            client: Mutex::new(None),
            requests: None,
        }
    }

    /// Counts every request in `requests`, by operation.
    pub fn with_request_counter(mut self, requests: prometheus::IntCounterVec) -> DockerClient {
        self.requests = Some(requests);
        self
    }

    fn count(&self, op: &str) {
        if let Some(r) = &self.requests {
            r.with_label_values(&[op]).inc();
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub(super) async fn connect(&self) -> Result<Docker, DockerError> {
        let mut guard = self.client.lock().await;
        if let Some(d) = guard.as_ref() {
            return Ok(d.clone());
        }
        let connect_err = |source| DockerError::Connect {
            endpoint: self.endpoint.clone(),
            source,
        };
        let raw = if let Some(path) = self.endpoint.strip_prefix("unix://") {
            Docker::connect_with_unix(path, CLIENT_TIMEOUT_SECS, API_DEFAULT_VERSION)
        } else {
            Docker::connect_with_http(&self.endpoint, CLIENT_TIMEOUT_SECS, API_DEFAULT_VERSION)
        }
        .map_err(connect_err)?;
        // Speak the server's API version (Debian's docker.io 20.10 is 1.41).
        self.count("version");
        let docker = match tokio::time::timeout(deadline::CONNECT, raw.negotiate_version()).await {
            Ok(negotiated) => negotiated.map_err(connect_err)?,
            Err(_) => {
                return Err(DockerError::Timeout {
                    endpoint: self.endpoint.clone(),
                    what: CONNECTING.into(),
                    after: deadline::CONNECT,
                })
            }
        };
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

    /// Runs one Docker call within `limit`. A failure other than an answer
    /// from dockerd (or running out of time) drops the connection, so the
    /// next call reconnects.
    pub(super) async fn bounded<T>(
        &self,
        op: &'static str,
        what: &str,
        limit: Duration,
        call: impl std::future::Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, DockerError> {
        self.count(op);
        match tokio::time::timeout(limit, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if !matches!(e, bollard::errors::Error::DockerResponseServerError { .. }) {
                    self.reset().await;
                }
                Err(self.request_err(what)(e))
            }
            Err(_) => {
                self.reset().await;
                Err(DockerError::Timeout {
                    endpoint: self.endpoint.clone(),
                    what: what.to_string(),
                    after: limit,
                })
            }
        }
    }

    /// All containers (running or not) that carry every `label_filters` label.
    pub async fn list(
        &self,
        label_filters: &[(String, String)],
    ) -> Result<Vec<ContainerInfo>, DockerError> {
        let docker = self.connect().await?;
        let filters = label_filter_map(label_filters);
        let options = ListContainersOptions::<String> {
            all: true,
            filters,
            ..Default::default()
        };
        let listed = self
            .bounded(
                "list",
                "listing containers",
                deadline::LIST,
                docker.list_containers(Some(options)),
            )
            .await?;
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
                    exit: None,
                })
            })
            .collect())
    }

    /// One container as `inspect` shows it (how it ended, when it is not
    /// running); `None` when it does not exist.
    pub async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>, DockerError> {
        Ok(self
            .inspect_response(id, "inspecting a container")
            .await?
            .and_then(info_from_inspect))
    }

    /// Docker's whole answer to an inspect, within its deadline; `None` when
    /// the container does not exist. `what` names the call in errors.
    pub(super) async fn inspect_response(
        &self,
        id: &str,
        what: &str,
    ) -> Result<Option<bollard::models::ContainerInspectResponse>, DockerError> {
        let docker = self.connect().await?;
        match self
            .bounded(
                "inspect",
                what,
                deadline::INSPECT,
                docker.inspect_container(id, None),
            )
            .await
        {
            Ok(c) => Ok(Some(c)),
            Err(e) if e.is_status(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The engine's cgroup driver (`docker info`): where it puts containers'
    /// cgroups.
    pub async fn cgroup_driver(&self) -> Result<CgroupDriver, DockerError> {
        let docker = self.connect().await?;
        let info = self
            .bounded(
                "info",
                "asking the engine's cgroup driver",
                deadline::INSPECT,
                docker.info(),
            )
            .await?;
        Ok(CgroupDriver::from_docker(
            &info
                .cgroup_driver
                .map(|d| d.to_string())
                .unwrap_or_default(),
        ))
    }

    /// The cgroup parent a container was created with (`HostConfig.CgroupParent`;
    /// `None` for the engine's default); `Ok(None)` too when it does not exist.
    pub async fn cgroup_parent(&self, id: &str) -> Result<Option<String>, DockerError> {
        Ok(self
            .inspect_response(id, "inspecting a container")
            .await?
            .and_then(|c| c.host_config?.cgroup_parent)
            .filter(|p| !p.is_empty()))
    }

    /// Docker's container events from `since` (Unix seconds: Docker replays
    /// what it has kept since then, then streams new ones) on, for the
    /// containers carrying every `label_filters` label. The stream ends with
    /// an error when the connection does.
    pub async fn container_events(
        &self,
        since: i64,
        label_filters: &[(String, String)],
    ) -> Result<
        impl futures_util::Stream<Item = Result<ContainerEvent, DockerError>> + use<>,
        DockerError,
    > {
        use futures_util::StreamExt;
        let docker = self.connect().await?;
        self.count("events");
        let mut filters = label_filter_map(label_filters);
        filters.insert("type".to_string(), vec!["container".to_string()]);
        filters.insert(
            "event".to_string(),
            EVENT_ACTIONS.iter().map(|a| a.to_string()).collect(),
        );
        let options = EventsOptions::<String> {
            since: Some(since.to_string()),
            until: None,
            filters,
        };
        let endpoint = self.endpoint.clone();
        Ok(docker.events(Some(options)).map(move |item| {
            item.map(ContainerEvent::from)
                .map_err(|source| DockerError::Request {
                    endpoint: endpoint.clone(),
                    what: "following the event stream".into(),
                    source,
                })
        }))
    }

    /// How a stopped container ended (exit code, OOM kill, when); `None`
    /// when it no longer exists.
    pub async fn exit_facts(&self, id: &str) -> Result<Option<ExitFacts>, DockerError> {
        let Some(c) = self
            .inspect_response(id, "inspecting a stopped container")
            .await?
        else {
            return Ok(None);
        };
        let state = c.state.unwrap_or_default();
        Ok(Some(ExitFacts {
            exit_code: state.exit_code.unwrap_or_default(),
            oom_killed: state.oom_killed.unwrap_or(false),
            finished_at: state.finished_at.as_deref().and_then(unix_seconds),
        }))
    }

    /// Stops (SIGTERM, then SIGKILL after `grace_secs`) and removes one
    /// container. A container that is already gone is `Vanished`, not an
    /// error.
    ///
    /// The stop may take its grace period plus a margin; when it fails or
    /// runs out of time the container is removed by force anyway (SIGKILL),
    /// so a kill never leaves it stopped but not removed. When `cancel` fires
    /// during the stop (gestor is shutting down), the grace period is cut
    /// short the same way.
    pub async fn stop_and_remove(
        &self,
        id: &str,
        grace_secs: u32,
        cancel: &CancellationToken,
    ) -> Result<KillOutcome, KillError> {
        let forced = match self.stop_within(id, grace_secs, cancel).await? {
            Stop::Done => false,
            Stop::Gone => return Ok(KillOutcome::Vanished),
            Stop::Failed(e) => {
                tracing::warn!(id = %crate::docker::container::short_id(id), error = %e, "stop failed; removing by force");
                true
            }
            Stop::Cancelled => true,
        };
        self.remove(id).await.map_err(KillError::Remove)?;
        Ok(KillOutcome::Removed { forced })
    }

    /// Stops one container (SIGTERM, then SIGKILL after `grace_secs`) and
    /// leaves it there; a stop that fails is an error (nothing removes it).
    /// When `cancel` fires the grace is cut short by a SIGKILL.
    pub async fn stop_only(
        &self,
        id: &str,
        grace_secs: u32,
        cancel: &CancellationToken,
    ) -> Result<KillOutcome, KillError> {
        match self.stop_within(id, grace_secs, cancel).await? {
            Stop::Done => Ok(KillOutcome::Stopped),
            Stop::Gone => Ok(KillOutcome::Vanished),
            Stop::Failed(e) => Err(KillError::Stop(e)),
            Stop::Cancelled => {
                let docker = self.connect().await.map_err(KillError::Stop)?;
                self.bounded(
                    "kill",
                    "killing a container",
                    deadline::REMOVE,
                    docker.kill_container::<String>(id, None),
                )
                .await
                .map_err(KillError::Stop)?;
                Ok(KillOutcome::Stopped)
            }
        }
    }

    /// `docker stop` within its grace plus a margin.
    async fn stop_within(
        &self,
        id: &str,
        grace_secs: u32,
        cancel: &CancellationToken,
    ) -> Result<Stop, KillError> {
        let docker = self.connect().await.map_err(KillError::Stop)?;
        let limit = Duration::from_secs(grace_secs.into()) + deadline::STOP_MARGIN;
        let stop = self.bounded(
            "stop",
            "stopping a container",
            limit,
            docker.stop_container(
                id,
                Some(StopContainerOptions {
                    t: grace_secs.into(),
                }),
            ),
        );
        let stopped = tokio::select! {
            r = stop => Some(r),
            _ = cancel.cancelled() => None,
        };
        Ok(match stopped {
            Some(Ok(())) => Stop::Done,
            Some(Err(e)) if e.is_status(404) => Stop::Gone,
            // 304: already stopped.
            Some(Err(e)) if e.is_status(304) => Stop::Done,
            Some(Err(e)) => Stop::Failed(e),
            None => Stop::Cancelled,
        })
    }

    /// Removes a container by force (SIGKILL if it runs), with its anonymous
    /// volumes. Gone already, or being removed, counts as done.
    pub async fn remove(&self, id: &str) -> Result<(), DockerError> {
        let docker = self.connect().await?;
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self
            .bounded(
                "remove",
                "removing a container",
                deadline::REMOVE,
                docker.remove_container(id, Some(options)),
            )
            .await
        {
            Ok(()) => Ok(()),
            // Removed meanwhile (e.g. started with --rm), or 409 "removal
            // already in progress": the goal is reached.
            Err(e) if e.is_status(404) || e.is_status(409) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The container events the inventory follows.
pub const EVENT_ACTIONS: [&str; 10] = [
    "create", "start", "restart", "die", "destroy", "rename", "pause", "unpause", "update", "oom",
];

/// One container event from Docker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    pub id: String,
    /// `create`, `start`, `die`, `destroy`, `rename`, ...
    pub action: String,
    /// Unix seconds.
    pub time: i64,
    /// Unix nanoseconds (Docker's `timeNano`).
    pub time_nano: i64,
    /// The container's name (after the event, for a rename).
    pub name: Option<String>,
}

impl From<bollard::models::EventMessage> for ContainerEvent {
    fn from(m: bollard::models::EventMessage) -> ContainerEvent {
        let actor = m.actor.unwrap_or_default();
        let name = actor
            .attributes
            .as_ref()
            .and_then(|a| a.get("name"))
            .map(|n| n.trim_start_matches('/').to_string());
        ContainerEvent {
            id: actor.id.unwrap_or_default(),
            action: m.action.unwrap_or_default(),
            time: m.time.unwrap_or_default(),
            time_nano: m.time_nano.unwrap_or_default(),
            name,
        }
    }
}

fn label_filter_map(label_filters: &[(String, String)]) -> HashMap<String, Vec<String>> {
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
    filters
}

/// What gestor keeps of an inspected container.
fn info_from_inspect(c: bollard::models::ContainerInspectResponse) -> Option<ContainerInfo> {
    let id = c.id?;
    let state = c.state.unwrap_or_default();
    let status = state.status.map(|s| s.to_string()).unwrap_or_default();
    let config = c.config.unwrap_or_default();
    let mut command = Vec::new();
    command.extend(c.path.filter(|p| !p.is_empty()));
    command.extend(c.args.unwrap_or_default());
    let running = status == "running";
    Some(ContainerInfo {
        name: c
            .name
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_else(|| id[..id.len().min(12)].to_string()),
        image: config.image.unwrap_or_default(),
        created: c
            .created
            .as_deref()
            .and_then(unix_seconds)
            .unwrap_or_default(),
        state: status,
        labels: config.labels.unwrap_or_default(),
        command,
        exit: (!running).then(|| ExitFacts {
            exit_code: state.exit_code.unwrap_or_default(),
            oom_killed: state.oom_killed.unwrap_or(false),
            finished_at: state.finished_at.as_deref().and_then(unix_seconds),
        }),
        id,
    })
}

/// An RFC 3339 time from Docker as Unix seconds; `None` for Docker's zero
/// time (`0001-01-01T00:00:00Z`: never happened).
fn unix_seconds(text: &str) -> Option<i64> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    (t.year() > 1970).then(|| t.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_is_no_connection_or_no_answer_to_connecting() {
        let refused = || bollard::errors::Error::IOError {
            err: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        let endpoint = "unix:///nonexistent".to_string();
        let connect = DockerError::Connect {
            endpoint: endpoint.clone(),
            source: refused(),
        };
        assert!(connect.is_unreachable());
        let timeout = |what: &str| DockerError::Timeout {
            endpoint: endpoint.clone(),
            what: what.into(),
            after: deadline::CONNECT,
        };
        assert!(timeout(CONNECTING).is_unreachable());
        assert!(!timeout("listing containers").is_unreachable());
        let answered = DockerError::Request {
            endpoint: endpoint.clone(),
            what: "listing containers".into(),
            source: bollard::errors::Error::DockerResponseServerError {
                status_code: 500,
                message: "no".into(),
            },
        };
        assert!(!answered.is_unreachable());
    }
}

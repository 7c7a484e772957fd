//! Configuration: command-line flags over `GESTOR_*` environment variables
//! over an optional TOML file over defaults, validated once at start-up.

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_SYSINFO: &str = "/proc/sysinfo_202200075";

#[derive(Debug, Parser)]
#[command(
    name = "gestor",
    version,
    about = "Container resource governor: keeps only the stress containers that are needed"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: one cycle every interval (the default command).
    Run,
    /// Run one cycle and print a table of containers and decisions.
    Once,
    /// Read one sysinfo snapshot (the kernel module's file by default), validate and print it.
    Snapshot {
        /// Print a one-line summary instead of the whole document.
        #[arg(long)]
        summary: bool,
    },
    /// Validate the configuration, print it as TOML and exit.
    CheckConfig,
    /// Exit 0 when the daemon at --listen answers /healthz (for container healthchecks).
    Healthcheck,
    /// The kill policy: validate a file, or explain what it would do now.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file: each error with its line and column; exit 1 on any.
    Check {
        /// The policy file (TOML).
        file: PathBuf,
    },
    /// For every container now: the rule that governs it, the figures it was
    /// judged on, the verdict and why (nothing is stopped). Uses --policy, or
    /// the default policy.
    Explain {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceMode {
    /// The kernel module's file when it exists, else the userspace collector.
    Auto,
    /// Only the kernel module's file.
    Kernel,
    /// Only the userspace collector.
    Userspace,
}

/// Where the cycle's container inventory comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InventoryMode {
    /// One listing at start, then Docker's event stream (and a full listing
    /// every `resync_every` cycles).
    Events,
    /// A full listing every cycle.
    List,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Every setting as given on the command line or in the environment; `None`
/// means "not given here" so the file or the default applies.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// TOML configuration file (keys as the long flags, with `_` for `-`).
    #[arg(long, env = "GESTOR_CONFIG", global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Seconds between cycles [default: 10].
    #[arg(long, env = "GESTOR_INTERVAL", global = true)]
    pub interval: Option<f64>,
    /// The kernel module's snapshot file [default: /proc/sysinfo_202200075].
    #[arg(long, env = "GESTOR_SYSINFO", global = true)]
    pub sysinfo: Option<PathBuf>,
    /// Where snapshots come from [default: auto].
    #[arg(long, env = "GESTOR_SOURCE", global = true)]
    pub source: Option<SourceMode>,
    /// procfs root for the userspace collector (e.g. /host/proc in a container) [default: /proc].
    #[arg(long, env = "GESTOR_PROCFS", global = true)]
    pub procfs: Option<PathBuf>,
    /// cgroup filesystem root, read for each container's own CPU and tmpfs/shm
    /// counters (e.g. /host/sys/fs/cgroup in a container) [default: /sys/fs/cgroup].
    #[arg(long, env = "GESTOR_CGROUPFS", global = true)]
    pub cgroupfs: Option<PathBuf>,
    /// Docker endpoint [default: unix:///var/run/docker.sock].
    #[arg(long, env = "GESTOR_DOCKER_HOST", global = true)]
    pub docker_host: Option<String>,
    /// HTTP address for /metrics, /healthz and /api/v1 [default: 0.0.0.0:9797].
    #[arg(long, env = "GESTOR_LISTEN", global = true)]
    pub listen: Option<SocketAddr>,
    /// Once the HTTP server listens, write its address (e.g. 127.0.0.1:40123) to this file.
    #[arg(long, env = "GESTOR_READY_FILE", global = true)]
    pub ready_file: Option<PathBuf>,
    /// Where the container inventory comes from [default: events].
    #[arg(long, env = "GESTOR_INVENTORY", global = true)]
    pub inventory: Option<InventoryMode>,
    /// With the events inventory, a full listing every this many cycles to catch drift [default: 30].
    #[arg(long, env = "GESTOR_RESYNC_EVERY", global = true)]
    pub resync_every: Option<u64>,
    /// Keep each container process's cmdline and cgroup between userspace snapshots [default: true].
    #[arg(long, env = "GESTOR_PROCFS_CACHE", global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub procfs_cache: Option<bool>,
    /// Managed containers kept per type [default: 1].
    #[arg(long, env = "GESTOR_MIN_PER_TYPE", global = true)]
    pub min_per_type: Option<usize>,
    /// Policy file (TOML): the rules that decide what is stopped [default: keep the lightest of each type].
    #[arg(long, env = "GESTOR_POLICY", global = true)]
    pub policy: Option<PathBuf>,
    /// Reload the policy file when it changes (it is always reloaded on SIGHUP) [default: false].
    #[arg(long, env = "GESTOR_POLICY_WATCH", global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub policy_watch: Option<bool>,
    /// Most containers killed in one cycle [default: 50].
    #[arg(long, env = "GESTOR_MAX_KILLS_PER_CYCLE", global = true)]
    pub max_kills_per_cycle: Option<usize>,
    /// How much less (a share, 0 to 1) another container must use to take a keeper's place [default: 0.1].
    #[arg(long, env = "GESTOR_KEEPER_MARGIN", global = true)]
    pub keeper_margin: Option<f64>,
    /// Seconds `docker stop` waits before SIGKILL [default: 2].
    #[arg(long, env = "GESTOR_STOP_TIMEOUT", global = true)]
    pub stop_timeout: Option<u32>,
    /// Seconds a managed container may stay stopped (exited, dead, never started) before it is removed [default: the interval].
    #[arg(long, env = "GESTOR_STOPPED_GRACE", global = true)]
    pub stopped_grace: Option<f64>,
    /// The host name in records (e.g. a Swarm node's, `{{.Node.Hostname}}`) [default: the kernel's hostname].
    #[arg(long, env = "GESTOR_HOSTNAME", global = true)]
    pub hostname: Option<String>,
    /// Decide and log, but kill nothing.
    #[arg(long, env = "GESTOR_DRY_RUN", global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub dry_run: Option<bool>,
    /// Treat stress containers without gestor labels as managed [default: false].
    #[arg(long, env = "GESTOR_MANAGE_UNLABELED", global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub manage_unlabeled: Option<bool>,
    /// Only consider containers carrying this label (KEY=VALUE; repeatable).
    #[arg(
        long = "only-label",
        env = "GESTOR_ONLY_LABEL",
        global = true,
        value_delimiter = ','
    )]
    pub only_label: Option<Vec<String>>,
    /// Log service URL; empty disables shipping [default: http://127.0.0.1:8000].
    #[arg(long, env = "GESTOR_LOGGER_URL", global = true)]
    pub logger_url: Option<String>,
    /// Bearer token for the log service.
    #[arg(
        long,
        env = "GESTOR_LOGGER_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub logger_token: Option<String>,
    /// Directory for records waiting for the log service [default: /var/lib/gestor/spool].
    #[arg(long, env = "GESTOR_SPOOL_DIR", global = true)]
    pub spool_dir: Option<PathBuf>,
    /// Largest size of the on-disk spool in bytes [default: 67108864].
    #[arg(long, env = "GESTOR_SPOOL_MAX_BYTES", global = true)]
    pub spool_max_bytes: Option<u64>,
    /// Log records kept in memory before the oldest go to the spool [default: 5000].
    #[arg(long, env = "GESTOR_LOG_MEMORY_RECORDS", global = true)]
    pub log_memory_records: Option<usize>,
    /// Create (or reuse) the log service container at start-up [default: true].
    #[arg(long, env = "GESTOR_CREATE_LOGGER", global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub create_logger: Option<bool>,
    /// Image of the log service container [default: gestor/logger:latest].
    #[arg(long, env = "GESTOR_LOGGER_IMAGE", global = true)]
    pub logger_image: Option<String>,
    /// Name of the log service container, never killed [default: gestor-logger].
    #[arg(long, env = "GESTOR_LOGGER_CONTAINER", global = true)]
    pub logger_container: Option<String>,
    /// Named volume for the log service's data [default: gestor-logs].
    #[arg(long, env = "GESTOR_LOGGER_VOLUME", global = true)]
    pub logger_volume: Option<String>,
    /// Format of gestor's own log lines on stdout [default: json].
    #[arg(long, env = "GESTOR_LOG_FORMAT", global = true)]
    pub log_format: Option<LogFormat>,
}

/// The validated configuration every part reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    pub interval: f64,
    pub sysinfo: PathBuf,
    pub source: SourceMode,
    pub procfs: PathBuf,
    pub cgroupfs: PathBuf,
    pub docker_host: String,
    pub listen: SocketAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_file: Option<PathBuf>,
    pub inventory: InventoryMode,
    pub resync_every: u64,
    pub procfs_cache: bool,
    pub min_per_type: usize,
    pub max_kills_per_cycle: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PathBuf>,
    pub policy_watch: bool,
    pub keeper_margin: f64,
    pub stop_timeout: u32,
    pub stopped_grace: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    pub dry_run: bool,
    pub manage_unlabeled: bool,
    pub only_label: Vec<String>,
    pub logger_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logger_token: Option<String>,
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    pub log_memory_records: usize,
    pub create_logger: bool,
    pub logger_image: String,
    pub logger_container: String,
    pub logger_volume: String,
    pub log_format: LogFormat,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Settings {
    /// Fills every setting not given on the command line or in the
    /// environment from `file`.
    fn or(self, file: Settings) -> Settings {
        Settings {
            config: self.config,
            interval: self.interval.or(file.interval),
            sysinfo: self.sysinfo.or(file.sysinfo),
            source: self.source.or(file.source),
            procfs: self.procfs.or(file.procfs),
            cgroupfs: self.cgroupfs.or(file.cgroupfs),
            docker_host: self.docker_host.or(file.docker_host),
            listen: self.listen.or(file.listen),
            ready_file: self.ready_file.or(file.ready_file),
            inventory: self.inventory.or(file.inventory),
            resync_every: self.resync_every.or(file.resync_every),
            procfs_cache: self.procfs_cache.or(file.procfs_cache),
            min_per_type: self.min_per_type.or(file.min_per_type),
            max_kills_per_cycle: self.max_kills_per_cycle.or(file.max_kills_per_cycle),
            policy: self.policy.or(file.policy),
            policy_watch: self.policy_watch.or(file.policy_watch),
            keeper_margin: self.keeper_margin.or(file.keeper_margin),
            stop_timeout: self.stop_timeout.or(file.stop_timeout),
            stopped_grace: self.stopped_grace.or(file.stopped_grace),
            hostname: self.hostname.or(file.hostname),
            dry_run: self.dry_run.or(file.dry_run),
            manage_unlabeled: self.manage_unlabeled.or(file.manage_unlabeled),
            only_label: self.only_label.or(file.only_label),
            logger_url: self.logger_url.or(file.logger_url),
            logger_token: self.logger_token.or(file.logger_token),
            spool_dir: self.spool_dir.or(file.spool_dir),
            spool_max_bytes: self.spool_max_bytes.or(file.spool_max_bytes),
            log_memory_records: self.log_memory_records.or(file.log_memory_records),
            create_logger: self.create_logger.or(file.create_logger),
            logger_image: self.logger_image.or(file.logger_image),
            logger_container: self.logger_container.or(file.logger_container),
            logger_volume: self.logger_volume.or(file.logger_volume),
            log_format: self.log_format.or(file.log_format),
        }
    }

    /// Reads the TOML file (if any), applies defaults and validates.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let merged = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                let file = parse_toml(path, &text)?;
                self.or(file)
            }
            None => self,
        };
        merged.into_config()
    }

    fn into_config(self) -> Result<Config, ConfigError> {
        let interval = self.interval.unwrap_or(10.0);
        let config = Config {
            interval,
            sysinfo: self.sysinfo.unwrap_or_else(|| DEFAULT_SYSINFO.into()),
            source: self.source.unwrap_or(SourceMode::Auto),
            procfs: self.procfs.unwrap_or_else(|| "/proc".into()),
            cgroupfs: self.cgroupfs.unwrap_or_else(|| "/sys/fs/cgroup".into()),
            docker_host: self
                .docker_host
                .unwrap_or_else(|| "unix:///var/run/docker.sock".into()),
            listen: self
                .listen
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 9797))),
            ready_file: self.ready_file,
            inventory: self.inventory.unwrap_or(InventoryMode::Events),
            resync_every: self.resync_every.unwrap_or(30),
            procfs_cache: self.procfs_cache.unwrap_or(true),
            min_per_type: self.min_per_type.unwrap_or(1),
            max_kills_per_cycle: self.max_kills_per_cycle.unwrap_or(50),
            policy: self.policy,
            policy_watch: self.policy_watch.unwrap_or(false),
            keeper_margin: self.keeper_margin.unwrap_or(0.1),
            stop_timeout: self.stop_timeout.unwrap_or(2),
            stopped_grace: self.stopped_grace.unwrap_or(interval),
            hostname: self
                .hostname
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty()),
            dry_run: self.dry_run.unwrap_or(false),
            manage_unlabeled: self.manage_unlabeled.unwrap_or(false),
            only_label: self
                .only_label
                .unwrap_or_default()
                .into_iter()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect(),
            logger_url: self
                .logger_url
                .unwrap_or_else(|| "http://127.0.0.1:8000".into())
                .trim()
                .trim_end_matches('/')
                .to_string(),
            logger_token: self.logger_token.filter(|t| !t.is_empty()),
            spool_dir: self
                .spool_dir
                .unwrap_or_else(|| "/var/lib/gestor/spool".into()),
            spool_max_bytes: self.spool_max_bytes.unwrap_or(64 << 20),
            log_memory_records: self.log_memory_records.unwrap_or(5_000),
            create_logger: self.create_logger.unwrap_or(true),
            logger_image: self
                .logger_image
                .unwrap_or_else(|| "gestor/logger:latest".into()),
            logger_container: self
                .logger_container
                .unwrap_or_else(|| "gestor-logger".into()),
            logger_volume: self.logger_volume.unwrap_or_else(|| "gestor-logs".into()),
            log_format: self.log_format.unwrap_or(LogFormat::Json),
        };
        config.validate()?;
        Ok(config)
    }
}

fn parse_toml(path: &Path, text: &str) -> Result<Settings, ConfigError> {
    // Accept the flags' spelling (`min-per-type`) as well as `min_per_type`.
    let value: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim().to_string(),
    })?;
    let normalized: toml::Table = value
        .into_iter()
        .map(|(k, v)| (k.replace('-', "_"), v))
        .collect();
    Settings::deserialize(normalized).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim().to_string(),
    })
}

impl Config {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        if !(self.interval.is_finite() && (0.1..=86_400.0).contains(&self.interval)) {
            return invalid(
                "interval",
                format!("{} is not between 0.1 and 86400 seconds", self.interval),
            );
        }
        if self.min_per_type == 0 {
            return invalid(
                "min_per_type",
                "must be at least 1 (the seed: always one of each type)".into(),
            );
        }
        if !(self.keeper_margin.is_finite() && (0.0..1.0).contains(&self.keeper_margin)) {
            return invalid(
                "keeper_margin",
                format!(
                    "{} is not a share from 0 (none) to below 1",
                    self.keeper_margin
                ),
            );
        }
        if self.stop_timeout > 300 {
            return invalid(
                "stop_timeout",
                format!("{} s is above 300 s", self.stop_timeout),
            );
        }
        if !(self.stopped_grace.is_finite()
            && (0.0..=30.0 * 86_400.0).contains(&self.stopped_grace))
        {
            return invalid(
                "stopped_grace",
                format!(
                    "{} is not between 0 and 2592000 seconds",
                    self.stopped_grace
                ),
            );
        }
        if let Some(h) = &self.hostname {
            if h.len() > 255 || h.chars().any(|c| c.is_control()) {
                return invalid(
                    "hostname",
                    format!(
                        "{h:?} is not a host name (at most 255 characters, no control characters)"
                    ),
                );
            }
        }
        if self.resync_every == 0 {
            return invalid("resync_every", "must be at least 1 (cycles)".into());
        }
        if self.log_memory_records == 0 {
            return invalid("log_memory_records", "must be at least 1".into());
        }
        for label in &self.only_label {
            match label.split_once('=') {
                Some((k, _)) if !k.is_empty() => {}
                _ => return invalid("only_label", format!("{label:?} is not KEY=VALUE")),
            }
        }
        if let Err(message) = self.logger_endpoint() {
            return invalid("logger_url", message);
        }
        if !(self.docker_host.starts_with("unix://")
            || self.docker_host.starts_with("tcp://")
            || self.docker_host.starts_with("http://"))
        {
            return invalid(
                "docker_host",
                format!(
                    "{:?} is not unix://PATH, tcp://HOST:PORT or http://HOST:PORT",
                    self.docker_host
                ),
            );
        }
        Ok(())
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(self.interval)
    }

    pub fn stopped_grace(&self) -> Duration {
        Duration::from_secs_f64(self.stopped_grace)
    }

    /// The longest one stop may take: its grace period, then Docker's
    /// SIGKILL and wait (`STOP_MARGIN`).
    pub fn stop_time(&self) -> Duration {
        Duration::from_secs(self.stop_timeout.into()) + STOP_MARGIN
    }

    /// How long /healthz accepts since the last cycle ended before it says
    /// the loop is stuck (Docker's and Swarm's health checks read it, and
    /// the GestorCycleStalled alert, through `gestor_health_window_seconds`):
    /// three intervals, 30 s, and the longest a stop may take.
    pub fn health_window(&self) -> Duration {
        self.interval() * 3 + Duration::from_secs(30) + self.stop_time()
    }

    /// How far into a cycle a stop or removal may still start: half of what
    /// the health window leaves after one interval and one stop (an
    /// interval + 15 s). A cycle whose last stop starts then still ends with
    /// as much again to spare inside the window; what is left is judged
    /// again next cycle.
    pub fn cycle_budget(&self) -> Duration {
        self.health_window()
            .saturating_sub(self.interval() + self.stop_time())
            / 2
    }

    /// How long a cycle may wait for its snapshot.
    pub fn read_timeout(&self) -> Duration {
        read_timeout(self.interval())
    }

    /// The host name records carry: the configured one, else the kernel's.
    pub fn hostname(&self) -> String {
        self.hostname.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into())
        })
    }

    /// The `only_label` filters as (key, value) pairs.
    pub fn label_filters(&self) -> Vec<(String, String)> {
        self.only_label
            .iter()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub fn shipping_enabled(&self) -> bool {
        !self.logger_url.is_empty()
    }

    /// The log service's URL, parsed; `None` when shipping is off. Port 0
    /// means "the port Docker picks when gestor creates the log service
    /// container", so it needs `create_logger`.
    pub fn logger_endpoint(&self) -> Result<Option<url::Url>, String> {
        if self.logger_url.is_empty() {
            return Ok(None);
        }
        let url = url::Url::parse(&self.logger_url)
            .map_err(|e| format!("{:?} is not a URL: {e}", self.logger_url))?;
        if url.scheme() != "http" {
            return Err(format!(
                "{:?} is not an http:// URL (TLS is not built in)",
                self.logger_url
            ));
        }
        if url.host().is_none() {
            return Err(format!("{:?} has no host", self.logger_url));
        }
        if url.port() == Some(0) && !self.create_logger {
            return Err(format!(
                "{:?}: port 0 (Docker picks the port) only works with create_logger",
                self.logger_url
            ));
        }
        Ok(Some(url))
    }
}

/// Beyond a stop's grace period: Docker's SIGKILL, then its wait.
pub const STOP_MARGIN: Duration = Duration::from_secs(10);

/// How long a cycle may wait for a snapshot: half the interval, between 1
/// and 10 s.
pub fn read_timeout(interval: Duration) -> Duration {
    (interval / 2).clamp(Duration::from_secs(1), Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["gestor"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().settings.resolve()
    }

    #[test]
    fn defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.interval, 10.0);
        assert_eq!(c.sysinfo, PathBuf::from(DEFAULT_SYSINFO));
        assert_eq!(c.listen.port(), 9797);
        assert_eq!(c.min_per_type, 1);
        assert!(!c.dry_run);
        assert!(c.create_logger);
        assert_eq!(c.stopped_grace, c.interval, "one interval by default");
        assert_eq!(c.hostname, None);
        assert!(!c.hostname().is_empty());
    }

    #[test]
    fn the_stopped_grace_follows_the_interval_unless_given() {
        assert_eq!(parse(&["--interval", "5"]).unwrap().stopped_grace, 5.0);
        let c = parse(&["--interval", "5", "--stopped-grace", "60"]).unwrap();
        assert_eq!(c.stopped_grace, 60.0);
        assert!(parse(&["--stopped-grace=-1"]).is_err());
        let c = parse(&["--hostname", "node-7"]).unwrap();
        assert_eq!(c.hostname(), "node-7");
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gestor.toml");
        std::fs::write(
            &file,
            "interval = 5.0\nmin-per-type = 3\nonly_label = [\"a=b\"]\ndry_run = true\n",
        )
        .unwrap();
        let c = parse(&[
            "--config",
            file.to_str().unwrap(),
            "--min-per-type",
            "2",
            "once",
        ])
        .unwrap();
        assert_eq!(c.interval, 5.0);
        assert_eq!(c.min_per_type, 2);
        assert_eq!(c.only_label, vec!["a=b"]);
        assert!(c.dry_run);
    }

    #[test]
    fn unknown_keys_in_the_file_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gestor.toml");
        std::fs::write(&file, "intervall = 5\n").unwrap();
        let err = parse(&["--config", file.to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `intervall`"), "{err}");
        assert!(err.contains("gestor.toml"), "{err}");
    }

    #[test]
    fn bad_values_are_rejected_with_the_key() {
        for (args, key) in [
            (vec!["--interval", "0"], "interval"),
            (vec!["--min-per-type", "0"], "min_per_type"),
            (vec!["--keeper-margin", "1"], "keeper_margin"),
            (vec!["--keeper-margin=-0.1"], "keeper_margin"),
            (vec!["--only-label", "nokey"], "only_label"),
            (vec!["--logger-url", "ftp://x"], "logger_url"),
            (vec!["--logger-url", "http://"], "logger_url"),
            (
                vec![
                    "--logger-url",
                    "http://127.0.0.1:0",
                    "--create-logger=false",
                ],
                "logger_url",
            ),
            (vec!["--docker-host", "/var/run/docker.sock"], "docker_host"),
        ] {
            let err = parse(&args).unwrap_err().to_string();
            assert!(err.contains(key), "{args:?}: {err}");
        }
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = parse(&["--config", "/nonexistent/gestor.toml"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/gestor.toml"), "{err}");
    }

    #[test]
    fn boolean_flags_take_an_optional_value() {
        assert!(parse(&["--dry-run"]).unwrap().dry_run);
        assert!(!parse(&["--dry-run=false"]).unwrap().dry_run);
        assert!(parse(&["--dry-run", "once"]).unwrap().dry_run);
        assert!(!parse(&["--create-logger=false"]).unwrap().create_logger);
        assert_eq!(
            parse(&["--only-label", "a=1,b=2"]).unwrap().only_label,
            vec!["a=1", "b=2"]
        );
        assert!(parse(&["--logger-url", ""]).unwrap().logger_url.is_empty());
    }

    #[test]
    fn logger_urls_are_parsed_as_urls() {
        for (given, host, port) in [
            ("http://127.0.0.1:8000", "127.0.0.1", 8000),
            ("http://[::1]:8000/", "[::1]", 8000),
            ("http://logger", "logger", 80),
            ("http://127.0.0.1:0", "127.0.0.1", 0),
        ] {
            let c = parse(&["--logger-url", given]).unwrap();
            let url = c.logger_endpoint().unwrap().unwrap();
            assert_eq!(url.host_str(), Some(host), "{given}");
            assert_eq!(url.port_or_known_default(), Some(port), "{given}");
        }
    }

    #[test]
    fn listen_on_port_zero_and_a_ready_file() {
        let c = parse(&["--listen", "127.0.0.1:0", "--ready-file", "/tmp/x"]).unwrap();
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.ready_file, Some(PathBuf::from("/tmp/x")));
    }

    #[test]
    fn the_health_window_holds_a_stop_and_the_budget_leaves_room_for_it() {
        for (interval, grace) in [("10", "2"), ("1", "15"), ("1", "300"), ("60", "30")] {
            let c = parse(&["--interval", interval, "--stop-timeout", grace]).unwrap();
            let window = c.health_window();
            assert_eq!(
                window,
                c.interval() * 3 + Duration::from_secs(30) + c.stop_time(),
                "{interval} {grace}"
            );
            // A stop started at the budget ends inside the window, after the
            // wait of one interval, with the budget again to spare.
            assert!(c.cycle_budget() >= c.interval() + Duration::from_secs(15));
            assert_eq!(
                c.interval() + c.cycle_budget() * 2 + c.stop_time(),
                window,
                "{interval} {grace}"
            );
        }
    }

    #[test]
    fn the_read_bound_follows_the_interval() {
        assert_eq!(
            read_timeout(Duration::from_millis(500)),
            Duration::from_secs(1)
        );
        assert_eq!(
            read_timeout(Duration::from_secs(10)),
            Duration::from_secs(5)
        );
        assert_eq!(
            read_timeout(Duration::from_secs(600)),
            Duration::from_secs(10)
        );
    }
}

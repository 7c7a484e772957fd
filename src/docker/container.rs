//! What gestor knows about one Docker container, and how it classifies it.
//! Pure: built from values the Docker client hands over.

use serde::Serialize;
use std::collections::HashMap;
use std::fmt;

pub const LABEL_MANAGED: &str = "gestor.managed";
pub const LABEL_TYPE: &str = "gestor.type";
pub const LABEL_PROTECTED: &str = "gestor.protected";

/// The four kinds of stress container, plus containers we cannot classify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerType {
    Cpu,
    Ram,
    Io,
    Disk,
    Unknown,
}

impl ContainerType {
    pub const KNOWN: [ContainerType; 4] = [
        ContainerType::Cpu,
        ContainerType::Ram,
        ContainerType::Io,
        ContainerType::Disk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ContainerType::Cpu => "cpu",
            ContainerType::Ram => "ram",
            ContainerType::Io => "io",
            ContainerType::Disk => "disk",
            ContainerType::Unknown => "unknown",
        }
    }

    pub fn from_label(value: &str) -> Option<ContainerType> {
        match value.trim().to_ascii_lowercase().as_str() {
            "cpu" => Some(ContainerType::Cpu),
            "ram" | "mem" | "memory" | "vm" => Some(ContainerType::Ram),
            "io" => Some(ContainerType::Io),
            "disk" | "hdd" => Some(ContainerType::Disk),
            _ => None,
        }
    }

    /// Classifies a `stress` command line by its worker flags (`--cpu` →
    /// cpu, `--vm` → ram, `--io` → io, `--hdd` → disk, and the short forms).
    /// A command that starts several kinds of worker, or none, is unknown.
    pub fn from_command<S: AsRef<str>>(args: &[S]) -> ContainerType {
        let Some(pos) = args
            .iter()
            .position(|a| a.as_ref().rsplit('/').next() == Some("stress"))
        else {
            return ContainerType::Unknown;
        };
        let mut found = None;
        for arg in &args[pos + 1..] {
            let flag = arg.as_ref().split('=').next().unwrap_or_default();
            let kind = match flag {
                "--cpu" | "-c" => ContainerType::Cpu,
                "--vm" | "-m" => ContainerType::Ram,
                "--io" | "-i" => ContainerType::Io,
                "--hdd" | "-d" => ContainerType::Disk,
                _ => continue,
            };
            match found {
                None => found = Some(kind),
                Some(k) if k == kind => {}
                Some(_) => return ContainerType::Unknown,
            }
        }
        found.unwrap_or(ContainerType::Unknown)
    }
}

impl fmt::Display for ContainerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One container as listed by Docker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerInfo {
    /// Full 64-hex ID.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    pub image: String,
    /// Unix seconds.
    pub created: i64,
    /// Docker's state: running, exited, created, paused, ...
    pub state: String,
    pub labels: HashMap<String, String>,
    /// Entrypoint + command, as Docker reports it.
    pub command: Vec<String>,
    /// How a container that is not running ended, from `docker inspect`
    /// (`None` for running containers, or when inspect has not answered).
    pub exit: Option<ExitFacts>,
}

/// How a stopped container ended, as `docker inspect` tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ExitFacts {
    pub exit_code: i64,
    /// The kernel's OOM killer killed a process of the container.
    pub oom_killed: bool,
    /// When it stopped (Unix seconds); `None` when it never ran.
    pub finished_at: Option<i64>,
}

impl ContainerInfo {
    pub fn short_id(&self) -> &str {
        short_id(&self.id)
    }

    fn label_is_true(&self, key: &str) -> bool {
        self.labels
            .get(key)
            .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
    }

    /// Type from the `gestor.type` label, else from the stress command.
    pub fn container_type(&self) -> ContainerType {
        self.labels
            .get(LABEL_TYPE)
            .and_then(|v| ContainerType::from_label(v))
            .unwrap_or_else(|| ContainerType::from_command(&self.command))
    }

    pub fn is_protected(&self) -> bool {
        self.label_is_true(LABEL_PROTECTED)
    }

    /// Whether gestor may kill this container: created by the generator
    /// (`gestor.managed=true`), or, when `manage_unlabeled` is set, a stress
    /// container without gestor labels. Protected containers never are.
    pub fn is_managed(&self, manage_unlabeled: bool) -> bool {
        if self.is_protected() {
            return false;
        }
        if self.labels.contains_key(LABEL_MANAGED) {
            return self.label_is_true(LABEL_MANAGED);
        }
        manage_unlabeled && ContainerType::from_command(&self.command) != ContainerType::Unknown
    }

    pub fn is_running(&self) -> bool {
        self.state == "running"
    }

    /// Stopped for good: Docker will not run it again by itself. (`paused`
    /// and `restarting` are not: they run again.)
    pub fn is_stopped(&self) -> bool {
        matches!(self.state.as_str(), "exited" | "dead" | "created")
    }
}

pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Where a container stands with gestor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The log service: never acted on, whatever its labels.
    LogService,
    /// `gestor.protected=true`.
    Protected,
    /// Not gestor's (no `gestor.managed=true`, and not a stress container
    /// taken as managed with `manage_unlabeled`).
    NotManaged,
    /// gestor may stop and remove it.
    Managed,
}

/// Which containers gestor may act on (stop, remove): managed ones, never a
/// protected one or the log service. The policy decides with it; the
/// inventory uses it to spare the others an inspect.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActsOn {
    /// Stress containers without gestor labels count as managed.
    pub manage_unlabeled: bool,
    /// Names or IDs never acted on, whatever their labels (the log service).
    pub never: Vec<String>,
}

impl ActsOn {
    pub fn standing(&self, c: &ContainerInfo) -> Standing {
        let named = |n: &String| *n == c.name || *n == c.id || n.as_str() == c.short_id();
        if self.never.iter().any(named) {
            Standing::LogService
        } else if c.is_protected() {
            Standing::Protected
        } else if !c.is_managed(self.manage_unlabeled) {
            Standing::NotManaged
        } else {
            Standing::Managed
        }
    }

    pub fn may_act_on(&self, c: &ContainerInfo) -> bool {
        self.standing(c) == Standing::Managed
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn container(name: &str, labels: &[(&str, &str)], command: &str) -> ContainerInfo {
        let id = format!("{:0<64}", hex_of(name));
        ContainerInfo {
            id,
            name: name.to_string(),
            image: "gestor/stress:latest".into(),
            created: 1_000,
            state: "running".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            command: command.split_whitespace().map(String::from).collect(),
            exit: None,
        }
    }

    fn hex_of(s: &str) -> String {
        s.bytes().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn type_comes_from_the_label_first() {
        let c = container("x", &[(LABEL_TYPE, "ram")], "stress --cpu 1");
        assert_eq!(c.container_type(), ContainerType::Ram);
    }

    #[test]
    fn type_falls_back_to_the_stress_command() {
        let cases = [
            ("stress --cpu 1", ContainerType::Cpu),
            ("stress --vm 1 --vm-bytes 64M --vm-keep", ContainerType::Ram),
            ("stress --io 1", ContainerType::Io),
            ("stress --hdd 1 --hdd-bytes 64M", ContainerType::Disk),
            ("/usr/bin/stress -c 2", ContainerType::Cpu),
            ("stress --cpu 1 --vm 1", ContainerType::Unknown),
            ("sleep 100", ContainerType::Unknown),
            ("stress", ContainerType::Unknown),
        ];
        for (cmd, want) in cases {
            let c = container("x", &[(LABEL_TYPE, "bogus")], cmd);
            assert_eq!(c.container_type(), want, "{cmd}");
        }
    }

    #[test]
    fn protected_is_never_managed() {
        let c = container(
            "logger",
            &[(LABEL_MANAGED, "true"), (LABEL_PROTECTED, "true")],
            "stress --cpu 1",
        );
        assert!(c.is_protected());
        assert!(!c.is_managed(true));
    }

    #[test]
    fn unlabeled_stress_is_managed_only_when_configured() {
        let c = container("x", &[], "stress --cpu 1");
        assert!(!c.is_managed(false));
        assert!(c.is_managed(true));
        let other = container("y", &[], "nginx -g daemon off;");
        assert!(!other.is_managed(true));
        let opted_out = container("z", &[(LABEL_MANAGED, "false")], "stress --cpu 1");
        assert!(!opted_out.is_managed(true));
    }
}

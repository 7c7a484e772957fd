//! Why the policy decided what it did, as data: each reason carries the
//! figures it used, and `Display` makes the sentence the logs and records
//! show. Tests assert the data, not the English.

use crate::collect::usage::Usage;
use crate::docker::container::{ContainerType, ExitFacts};
use serde::{Serialize, Serializer};
use std::fmt;

/// The figure a type is judged by, with its value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figure {
    pub container_type: ContainerType,
    pub value: f64,
}

impl Figure {
    pub fn of(t: ContainerType, u: &Usage) -> Figure {
        let value = match t {
            ContainerType::Cpu => u.cpu_cores,
            ContainerType::Ram => u.memory_bytes as f64,
            ContainerType::Io => u.io_chars_per_second(),
            ContainerType::Disk => u.disk_write_bytes_per_second,
            ContainerType::Unknown => 0.0,
        };
        Figure {
            container_type: t,
            value,
        }
    }
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.value;
        match self.container_type {
            ContainerType::Cpu => write!(f, "cpu {:.1}% of a core", v * 100.0),
            ContainerType::Ram => write!(f, "rss {}", human_bytes(v)),
            ContainerType::Io => write!(f, "io {}/s", human_bytes(v)),
            ContainerType::Disk => write!(f, "disk writes {}/s", human_bytes(v)),
            ContainerType::Unknown => f.write_str("no resource"),
        }
    }
}

/// Why the policy decided what it did, with the figures it used.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// Kept: the `rank`-th lightest of `of` running containers of its type.
    Kept {
        name: String,
        figure: Figure,
        rank: usize,
        of: usize,
        min_per_type: usize,
        age_secs: i64,
        /// It was a keeper the cycle before: a challenger must use less by
        /// `margin` (a share of its figure) to take its place.
        sitting: bool,
        margin: f64,
    },
    /// Killed: more running containers of its type than needed.
    Surplus {
        name: String,
        figure: Figure,
        keeping: Vec<(String, Figure)>,
    },
    /// Would be killed, but the per-cycle bound was reached.
    Deferred {
        name: String,
        container_type: ContainerType,
        max_kills_per_cycle: usize,
    },
    /// Stopped by itself longer than the grace: removed.
    Stopped {
        name: String,
        container_type: ContainerType,
        state: String,
        exit: Option<ExitFacts>,
        stopped_secs: i64,
    },
    /// Stopped, within the grace: removed later if it stays stopped.
    StoppedWithinGrace {
        state: String,
        stopped_secs: i64,
        grace_secs: i64,
    },
    /// Stopped, but how and when it ended is not known yet (inspect).
    StoppedUnknown {
        state: String,
    },
    LogService,
    Protected,
    NotManaged,
    UnknownType,
    /// Paused or restarting: it will run again.
    NotRunning {
        state: String,
    },
    NoUsage,
    /// Seen for the first time: no rate yet, so neither kept nor killed.
    NotMeasuredYet,
    /// Its type's resource could not be read for one of its processes (I/O
    /// counters refused): unmeasured, never taken for idle.
    Unmeasured {
        container_type: ContainerType,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Kept {
                name,
                figure,
                rank,
                of,
                min_per_type,
                age_secs,
                sitting,
                margin,
            } => {
                let t = figure.container_type;
                if of <= min_per_type {
                    write!(
                        f,
                        "{t}: kept {name} ({figure}; {of} of {of} measured, minimum {min_per_type})"
                    )?;
                } else {
                    write!(
                        f,
                        "{t}: kept {name} ({figure}, {} lowest of {of} measured; age {age_secs} s)",
                        ordinal(*rank)
                    )?;
                }
                if *sitting && of > min_per_type {
                    write!(
                        f,
                        "; keeper since an earlier cycle: another takes its place only at {:.0}% less",
                        margin * 100.0
                    )?;
                }
                Ok(())
            }
            Reason::Surplus {
                name,
                figure,
                keeping,
            } => {
                let kept: Vec<String> = keeping.iter().map(|(n, fig)| format!("{n} at {fig}")).collect();
                write!(
                    f,
                    "{}: killed {name} ({figure}); keeping {}",
                    figure.container_type,
                    kept.join(", ")
                )
            }
            Reason::Deferred {
                name,
                container_type,
                max_kills_per_cycle,
            } => write!(
                f,
                "{container_type}: {name} deferred: max_kills_per_cycle ({max_kills_per_cycle}) reached"
            ),
            Reason::Stopped {
                name,
                container_type,
                state,
                exit,
                stopped_secs,
            } => {
                write!(f, "{container_type}: removed {name}: ")?;
                match exit {
                    Some(e) if e.oom_killed => write!(
                        f,
                        "killed by the OOM killer (exit code {}), {state} for {stopped_secs} s",
                        e.exit_code
                    ),
                    Some(e) if e.finished_at.is_some() => {
                        write!(f, "exited with code {}, {state} for {stopped_secs} s", e.exit_code)
                    }
                    _ => write!(f, "{state}, never ran, for {stopped_secs} s"),
                }
            }
            Reason::StoppedWithinGrace {
                state,
                stopped_secs,
                grace_secs,
            } => write!(
                f,
                "{state} for {stopped_secs} s: removed if still so after {grace_secs} s"
            ),
            Reason::StoppedUnknown { state } => {
                write!(f, "{state}: how it ended is not known yet; judged next cycle")
            }
            Reason::LogService => f.write_str("the log service is never killed"),
            Reason::Protected => f.write_str("protected (gestor.protected=true)"),
            Reason::NotManaged => f.write_str("not managed by gestor"),
            Reason::UnknownType => f.write_str("managed but of unknown type"),
            Reason::NotRunning { state } => write!(f, "not running ({state})"),
            Reason::NoUsage => f.write_str("no usage data in this snapshot; judged next cycle"),
            Reason::NotMeasuredYet => {
                f.write_str("not measured yet: no rate over an interval yet; judged once it has one")
            }
            Reason::Unmeasured { container_type } => write!(
                f,
                "{container_type}: not measured: a process's I/O counters could not be read; not judged"
            ),
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Why a whole cycle kills nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Blocked {
    /// The snapshot could not be read, or could not be trusted.
    Snapshot(String),
    /// The container listing failed.
    Docker(String),
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocked::Snapshot(e) => write!(f, "no kills this cycle: snapshot unavailable ({e})"),
            Blocked::Docker(e) => {
                write!(f, "no kills this cycle: Docker listing unavailable ({e})")
            }
        }
    }
}

impl Serialize for Blocked {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

pub fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes.max(0.0);
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn ordinal(n: usize) -> String {
    match n {
        1 => "the".to_string(),
        2 => "2nd".to_string(),
        3 => "3rd".to_string(),
        _ => format!("{n}th"),
    }
}

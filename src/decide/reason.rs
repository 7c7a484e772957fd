//! Why the policy decided what it did, as data: each reason carries the
//! figures it used, and `Display` makes the sentence the logs and records
//! show. Tests assert the data, not the English.

use crate::collect::usage::Usage;
use crate::decide::rules::Resource;
use crate::docker::container::{ContainerType, ExitFacts};
use serde::{Serialize, Serializer};
use std::fmt;

/// The figure a container is judged by, with its value: a resource's
/// (by default its type's own), in that resource's unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figure {
    pub container_type: ContainerType,
    /// `None`: a type with no resource of its own (unknown).
    pub resource: Option<Resource>,
    pub value: f64,
}

impl Figure {
    /// The figure of a container of type `t` by its type's own resource.
    pub fn of(t: ContainerType, u: &Usage) -> Figure {
        Figure::on(t, Resource::of_type(t), u)
    }

    /// The figure of a container of type `t` by `resource`.
    pub fn on(t: ContainerType, resource: Option<Resource>, u: &Usage) -> Figure {
        let value = match resource {
            Some(Resource::Cpu) => u.cpu_cores,
            Some(Resource::Memory) => u.memory_bytes as f64,
            Some(Resource::Io) => u.io_chars_per_second(),
            Some(Resource::Disk) => u.disk_write_bytes_per_second,
            None => 0.0,
        };
        Figure {
            container_type: t,
            resource,
            value,
        }
    }
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.value;
        match self.resource {
            Some(Resource::Cpu) => write!(f, "cpu {:.1}% of a core", v * 100.0),
            Some(Resource::Memory) => write!(f, "memory {}", human_bytes(v)),
            Some(Resource::Io) => write!(f, "io {}/s", human_bytes(v)),
            Some(Resource::Disk) => write!(f, "disk writes {}/s", human_bytes(v)),
            None => f.write_str("no resource"),
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
    /// No rule of the policy selects it: not gestor's.
    NotGoverned,
    /// Its rule protects it.
    ProtectedByRule {
        rule: String,
    },
    /// Stopped, and its rule only stops (it is left there).
    StoppedLeft {
        state: String,
    },
    /// Over its rule's limit for long enough: stopped.
    OverLimit {
        name: String,
        figure: Figure,
        limit: Figure,
        over_secs: f64,
    },
    /// Under its rule's limit, or over it for less than the rule's `for`.
    WithinLimit {
        figure: Figure,
        limit: Figure,
        /// How long it has been over, when it is.
        over_secs: Option<f64>,
        for_secs: f64,
    },
    /// The largest consumer of its rule's resource while a host signal is bad.
    Pressure {
        name: String,
        figure: Figure,
        signal: String,
        value: f64,
        limit: String,
        bad_secs: f64,
    },
    /// Its rule watches a host signal: not bad (long enough), or another
    /// container is the largest consumer, or the episode's stops are spent.
    PressureWatch {
        figure: Figure,
        signal: String,
        value: Option<f64>,
        limit: String,
        state: String,
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
            Reason::NotGoverned => f.write_str("no rule of the policy selects it"),
            Reason::ProtectedByRule { rule } => write!(f, "protected by rule {rule:?}"),
            Reason::StoppedLeft { state } => {
                write!(f, "{state}: its rule only stops containers, so it is left")
            }
            Reason::OverLimit {
                name,
                figure,
                limit,
                over_secs,
            } => write!(
                f,
                "{}: stopped {name}: {figure}, over the limit of {} for {over_secs:.0} s",
                figure.container_type,
                LimitValue(limit)
            ),
            Reason::WithinLimit {
                figure,
                limit,
                over_secs,
                for_secs,
            } => match over_secs {
                None => write!(f, "within its limit ({figure}; limit {})", LimitValue(limit)),
                Some(s) => write!(
                    f,
                    "over its limit ({figure}; limit {}) for {s:.0} s of the {for_secs:.0} s allowed",
                    LimitValue(limit)
                ),
            },
            Reason::Pressure {
                name,
                figure,
                signal,
                value,
                limit,
                bad_secs,
            } => write!(
                f,
                "{}: stopped {name}, the largest consumer ({figure}): {signal} is {value:.1} ({limit}) for {bad_secs:.0} s",
                figure.container_type
            ),
            Reason::PressureWatch {
                figure,
                signal,
                value,
                limit,
                state,
            } => match value {
                Some(v) => write!(f, "{figure}; {signal} is {v:.1} ({limit}): {state}"),
                None => write!(f, "{figure}; {signal} cannot be read: {state}"),
            },
        }
    }
}

/// A limit, written like the figure it bounds but without the resource's
/// name (`512.0 MiB`, `80.0% of a core`).
struct LimitValue<'a>(&'a Figure);

impl fmt::Display for LimitValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        let value = text.split_once(' ').map_or(text.as_str(), |(_, v)| v);
        f.write_str(value.trim_start_matches("writes "))
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

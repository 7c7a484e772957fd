//! The kill policy as data: an ordered list of named rules, read from a TOML
//! file (`--policy FILE`) or built from the flags (the default: today's
//! keep-the-lightest-of-each-type rule). The first rule whose selector
//! matches a container governs it; a container no rule matches is not
//! gestor's. Pure: parsing and validation are functions of text, with every
//! error at its line and column.
//!
//! ```toml
//! [[rule]]
//! name = "ram-cap"
//! select = { type = "ram", labels = ["team=batch", "tier!=prod"] }
//! verdict = "limit"
//! resource = "memory"
//! above = "512MiB"
//! for = "30s"
//! ```
//!
//! The grammar, with one example per verdict, is in docs/policy.md.

use crate::docker::container::{ContainerInfo, ContainerType};
use serde::Deserialize;
use std::fmt;
use std::ops::Range;
use toml::Spanned;

/// A resource a rule judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// CPU, in cores (1.0: one core busy).
    Cpu,
    /// Memory, in bytes.
    Memory,
    /// Characters read and written per second.
    Io,
    /// Bytes written to storage per second.
    Disk,
}

impl Resource {
    pub const ALL: [Resource; 4] = [
        Resource::Cpu,
        Resource::Memory,
        Resource::Io,
        Resource::Disk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
            Resource::Io => "io",
            Resource::Disk => "disk",
        }
    }

    /// The resource a stress type is judged by.
    pub fn of_type(t: ContainerType) -> Option<Resource> {
        match t {
            ContainerType::Cpu => Some(Resource::Cpu),
            ContainerType::Ram => Some(Resource::Memory),
            ContainerType::Io => Some(Resource::Io),
            ContainerType::Disk => Some(Resource::Disk),
            ContainerType::Unknown => None,
        }
    }

    fn parse(s: &str) -> Option<Resource> {
        Resource::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A limit on a resource: absolute (cores, bytes, bytes per second), or a
/// share of the host (of its CPUs or its RAM).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    Absolute(f64),
    /// 0..1 of the host's CPUs (cpu) or RAM (memory).
    HostShare(f64),
}

/// A host signal a `pressure` rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// Pressure stall information: `/proc/pressure/<resource>`, the `some` or
    /// `full` line, its 10 s or 60 s average (a percentage of time).
    Psi {
        resource: PsiResource,
        full: bool,
        window: PsiWindow,
    },
    /// The host's available memory, as a share of its RAM (watched with `below`).
    MemoryAvailable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PsiResource {
    Cpu,
    Memory,
    Io,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PsiWindow {
    Avg10,
    Avg60,
}

impl Signal {
    fn parse(s: &str) -> Option<Signal> {
        if s == "memory.available" {
            return Some(Signal::MemoryAvailable);
        }
        let mut parts = s.split('.');
        let resource = match parts.next()? {
            "cpu" => PsiResource::Cpu,
            "memory" => PsiResource::Memory,
            "io" => PsiResource::Io,
            _ => return None,
        };
        let full = match parts.next()? {
            "some" => false,
            "full" => true,
            _ => return None,
        };
        let window = match parts.next()? {
            "avg10" => PsiWindow::Avg10,
            "avg60" => PsiWindow::Avg60,
            _ => return None,
        };
        parts.next().is_none().then_some(Signal::Psi {
            resource,
            full,
            window,
        })
    }

    /// The resource whose largest consumer a pressure episode stops.
    pub fn resource(self) -> Resource {
        match self {
            Signal::Psi {
                resource: PsiResource::Cpu,
                ..
            } => Resource::Cpu,
            Signal::Psi {
                resource: PsiResource::Io,
                ..
            } => Resource::Io,
            _ => Resource::Memory,
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signal::MemoryAvailable => f.write_str("memory.available"),
            Signal::Psi {
                resource,
                full,
                window,
            } => write!(
                f,
                "{}.{}.{}",
                match resource {
                    PsiResource::Cpu => "cpu",
                    PsiResource::Memory => "memory",
                    PsiResource::Io => "io",
                },
                if *full { "full" } else { "some" },
                match window {
                    PsiWindow::Avg10 => "avg10",
                    PsiWindow::Avg60 => "avg60",
                }
            ),
        }
    }
}

/// Which side of its limit a pressure signal is bad on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trigger {
    /// Bad above (PSI, a percentage 0..100).
    Above(f64),
    /// Bad below (available memory, a share 0..1 of RAM).
    Below(f64),
}

/// What a rule does with the containers it governs.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Keep the `count` that use least of `resource`; stop the rest.
    KeepLeast {
        count: usize,
        /// `None`: each container's own type's resource.
        resource: Option<Resource>,
    },
    /// Stop a container whose `resource` stays over `above` for `for_secs`.
    Limit {
        resource: Resource,
        above: Threshold,
        for_secs: f64,
    },
    /// While `signal` is bad for `for_secs`, stop the largest consumer of
    /// `resource`, one per cycle, at most `max_per_episode` until it clears.
    Pressure {
        signal: Signal,
        trigger: Trigger,
        for_secs: f64,
        resource: Resource,
        max_per_episode: usize,
    },
    /// Never touched.
    Protect,
}

impl Verdict {
    pub fn kind(&self) -> &'static str {
        match self {
            Verdict::KeepLeast { .. } => "keep_least",
            Verdict::Limit { .. } => "limit",
            Verdict::Pressure { .. } => "pressure",
            Verdict::Protect => "protect",
        }
    }
}

/// How a container is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ActionKind {
    /// Stop, then remove (as gestor always did).
    #[default]
    StopRemove,
    /// Stop and leave it there.
    Stop,
}

/// One condition on a label.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LabelMatch {
    Equals(String, String),
    NotEquals(String, String),
    Present(String),
}

impl LabelMatch {
    fn parse(s: &str) -> Option<LabelMatch> {
        if let Some((k, v)) = s.split_once("!=") {
            return (!k.is_empty()).then(|| LabelMatch::NotEquals(k.into(), v.into()));
        }
        if let Some((k, v)) = s.split_once('=') {
            return (!k.is_empty()).then(|| LabelMatch::Equals(k.into(), v.into()));
        }
        (!s.is_empty() && !s.contains(char::is_whitespace)).then(|| LabelMatch::Present(s.into()))
    }

    fn matches(&self, c: &ContainerInfo) -> bool {
        match self {
            LabelMatch::Equals(k, v) => c.labels.get(k) == Some(v),
            LabelMatch::NotEquals(k, v) => c.labels.get(k) != Some(v),
            LabelMatch::Present(k) => c.labels.contains_key(k),
        }
    }
}

/// Which containers a rule governs: all of its conditions hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Selector {
    pub container_type: Option<ContainerType>,
    /// gestor's own classification: `gestor.managed=true`, or a stress
    /// container without labels when `--manage-unlabeled` is on.
    pub managed: Option<bool>,
    pub labels: Vec<LabelMatch>,
    pub image: Option<String>,
    pub name: Option<String>,
}

impl Selector {
    pub fn matches(&self, c: &ContainerInfo, manage_unlabeled: bool) -> bool {
        self.container_type.is_none_or(|t| c.container_type() == t)
            && self
                .managed
                .is_none_or(|m| c.is_managed(manage_unlabeled) == m)
            && self.labels.iter().all(|l| l.matches(c))
            && self.image.as_deref().is_none_or(|g| glob(g, &c.image))
            && self.name.as_deref().is_none_or(|g| glob(g, &c.name))
    }

    /// Every container this one matches, `other` matches too (`other`'s
    /// conditions are a subset of this one's): a rule with `other`'s selector
    /// before this one leaves this one nothing. Decided on the conditions as
    /// written; a glob is compared as text, `*` matching all.
    pub fn covered_by(&self, other: &Selector) -> bool {
        let glob_covers = |o: &Option<String>, s: &Option<String>| match (o, s) {
            (None, _) => true,
            (Some(g), _) if g == "*" => true,
            (Some(g), Some(s)) => g == s,
            (Some(_), None) => false,
        };
        (other.container_type.is_none() || other.container_type == self.container_type)
            && (other.managed.is_none() || other.managed == self.managed)
            && other.labels.iter().all(|l| self.labels.contains(l))
            && glob_covers(&other.image, &self.image)
            && glob_covers(&other.name, &self.name)
    }
}

/// `*` (any run of characters) and `?` (one character) globs.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// One rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub select: Selector,
    pub verdict: Verdict,
    pub dry_run: bool,
    /// At most this many stops a cycle by this rule (`None`: only the
    /// global bound).
    pub max_kills_per_cycle: Option<usize>,
    pub action: ActionKind,
}

/// A policy: its rules in order, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub rules: Vec<Rule>,
    /// The file it was read from; `None` for the built-in default.
    pub source: Option<String>,
}

impl Policy {
    /// The built-in default: for each stress type, keep the `min_per_type`
    /// managed containers that use least of the type's own resource and stop
    /// the rest (gestor's rule before policies existed); and managed
    /// containers of no known type, which it never stops but, once stopped,
    /// removes like the others.
    pub fn default_for(min_per_type: usize) -> Policy {
        let types = ContainerType::KNOWN
            .into_iter()
            .chain([ContainerType::Unknown]);
        let rules = types
            .map(|t| Rule {
                name: t.as_str().to_string(),
                select: Selector {
                    container_type: Some(t),
                    managed: Some(true),
                    ..Selector::default()
                },
                verdict: Verdict::KeepLeast {
                    count: min_per_type,
                    resource: None,
                },
                dry_run: false,
                max_kills_per_cycle: None,
                action: ActionKind::StopRemove,
            })
            .collect();
        Policy {
            rules,
            source: None,
        }
    }

    /// The first rule that governs `c`, with its index.
    pub fn governing(&self, c: &ContainerInfo, manage_unlabeled: bool) -> Option<(usize, &Rule)> {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, r)| r.select.matches(c, manage_unlabeled))
    }

    /// A short hash of a rule (all of it), for `gestor_policy_info{rule,hash}`:
    /// it changes when the rule does. FNV-1a over the rule as written out,
    /// the same from one build to the next.
    pub fn rule_hash(rule: &Rule) -> String {
        format!("{:016x}", fnv1a(format!("{rule:?}").as_bytes()))
    }

    /// A rule's identity across reloads: its name and selector (a rule
    /// whose name and selector stay keeps its timers).
    pub fn rule_key(rule: &Rule) -> String {
        format!(
            "{}#{:016x}",
            rule.name,
            fnv1a(format!("{:?}", rule.select).as_bytes())
        )
    }
}

/// FNV-1a, 64 bits.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// An error in a policy file, at its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// 1-based; 0 when the error has no position.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(
                f,
                "line {}, column {}: {}",
                self.line, self.column, self.message
            )
        }
    }
}

impl std::error::Error for PolicyError {}

/// The file's text as written: every key, no defaults resolved yet.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIn {
    #[serde(default)]
    rule: Vec<Spanned<RuleIn>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleIn {
    name: Spanned<String>,
    select: Spanned<SelectorIn>,
    verdict: Spanned<String>,
    count: Option<Spanned<i64>>,
    resource: Option<Spanned<String>>,
    above: Option<Spanned<toml::Value>>,
    below: Option<Spanned<toml::Value>>,
    #[serde(rename = "for")]
    for_: Option<Spanned<String>>,
    signal: Option<Spanned<String>>,
    max_per_episode: Option<Spanned<i64>>,
    #[serde(default)]
    dry_run: bool,
    max_kills_per_cycle: Option<Spanned<i64>>,
    action: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SelectorIn {
    #[serde(rename = "type")]
    container_type: Option<Spanned<String>>,
    managed: Option<bool>,
    #[serde(default)]
    labels: Vec<Spanned<String>>,
    image: Option<Spanned<String>>,
    name: Option<Spanned<String>>,
}

/// Line and column (1-based) of a byte offset in `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Parses and validates a policy file. Every error names its line and
/// column; the first one found is returned.
pub fn parse(text: &str, source: Option<&str>) -> Result<Policy, PolicyError> {
    let at = |span: Range<usize>, message: String| {
        let (line, column) = position(text, span.start);
        PolicyError {
            line,
            column,
            message,
        }
    };
    let file: FileIn = toml::from_str(text).map_err(|e| {
        let message = e.message().trim().to_string();
        match e.span() {
            Some(span) => at(span, message),
            None => PolicyError {
                line: 0,
                column: 0,
                message,
            },
        }
    })?;
    if file.rule.is_empty() {
        return Err(PolicyError {
            line: 1,
            column: 1,
            message: "no rule: a policy is a list of [[rule]] tables".into(),
        });
    }
    let mut rules: Vec<Rule> = Vec::new();
    let mut starts = Vec::new();
    for spanned in &file.rule {
        let rule_span = spanned.span();
        let r = spanned.get_ref();
        let name = r.name.get_ref().trim().to_string();
        if name.is_empty() || name.len() > 64 || name.contains(|c: char| c.is_control()) {
            return Err(at(
                r.name.span(),
                "a rule's name is 1 to 64 characters, no control characters".into(),
            ));
        }
        if let Some(prev) = rules.iter().find(|p| p.name == name) {
            return Err(at(
                r.name.span(),
                format!("a second rule named {:?}", prev.name),
            ));
        }
        let select = selector(r.select.get_ref(), r.select.span(), &at)?;
        let verdict = verdict(r, rule_span.clone(), &select, &at)?;
        let max_kills_per_cycle = match &r.max_kills_per_cycle {
            None => None,
            Some(n) if *n.get_ref() >= 0 => Some(*n.get_ref() as usize),
            Some(n) => return Err(at(n.span(), "max_kills_per_cycle is 0 or more".into())),
        };
        let action = match r.action.as_ref().map(|a| (a.get_ref().as_str(), a.span())) {
            None | Some(("stop_remove", _)) => ActionKind::StopRemove,
            Some(("stop", _)) => ActionKind::Stop,
            Some((other, span)) => {
                return Err(at(
                    span,
                    format!("unknown action {other:?}: \"stop_remove\" or \"stop\""),
                ))
            }
        };
        // A rule whose containers an earlier rule takes first never governs.
        if let Some((i, earlier)) = rules
            .iter()
            .enumerate()
            .find(|(_, e)| select.covered_by(&e.select))
        {
            let _ = i;
            return Err(at(
                r.select.span(),
                format!(
                    "rule {name:?} never applies: rule {:?} before it selects every container it does",
                    earlier.name
                ),
            ));
        }
        starts.push(rule_span.start);
        rules.push(Rule {
            name,
            select,
            verdict,
            dry_run: r.dry_run,
            max_kills_per_cycle,
            action,
        });
    }
    Ok(Policy {
        rules,
        source: source.map(String::from),
    })
}

fn selector(
    s: &SelectorIn,
    span: Range<usize>,
    at: &impl Fn(Range<usize>, String) -> PolicyError,
) -> Result<Selector, PolicyError> {
    let container_type = match &s.container_type {
        None => None,
        Some(t) => Some(match t.get_ref().as_str() {
            "cpu" => ContainerType::Cpu,
            "ram" => ContainerType::Ram,
            "io" => ContainerType::Io,
            "disk" => ContainerType::Disk,
            "unknown" => ContainerType::Unknown,
            other => {
                return Err(at(
                    t.span(),
                    format!("unknown type {other:?}: cpu, ram, io, disk or unknown"),
                ))
            }
        }),
    };
    let mut labels = Vec::new();
    for l in &s.labels {
        labels.push(LabelMatch::parse(l.get_ref()).ok_or_else(|| {
            at(
                l.span(),
                format!(
                    "label {:?} is not key=value, key!=value or key",
                    l.get_ref()
                ),
            )
        })?);
    }
    let glob_of = |g: &Option<Spanned<String>>, what: &str| match g {
        Some(g) if g.get_ref().is_empty() => Err(at(
            g.span(),
            format!("an empty {what} glob matches nothing"),
        )),
        Some(g) => Ok(Some(g.get_ref().clone())),
        None => Ok(None),
    };
    let selector = Selector {
        container_type,
        managed: s.managed,
        labels,
        image: glob_of(&s.image, "image")?,
        name: glob_of(&s.name, "name")?,
    };
    if selector == Selector::default() {
        return Err(at(
            span,
            "an empty selector: give type, managed, labels, image or name (name = \"*\" selects every container)".into(),
        ));
    }
    Ok(selector)
}

fn verdict(
    r: &RuleIn,
    rule_span: Range<usize>,
    select: &Selector,
    at: &impl Fn(Range<usize>, String) -> PolicyError,
) -> Result<Verdict, PolicyError> {
    let kind = r.verdict.get_ref().as_str();
    // Keys that belong to other verdicts are a mistake, not something to ignore.
    let allowed: &[&str] = match kind {
        "keep_least" => &["count", "resource"],
        "limit" => &["resource", "above", "for"],
        "pressure" => &[
            "signal",
            "above",
            "below",
            "for",
            "resource",
            "max_per_episode",
        ],
        "protect" => &[],
        other => {
            return Err(at(
                r.verdict.span(),
                format!("unknown verdict {other:?}: keep_least, limit, pressure or protect"),
            ))
        }
    };
    let given: [(&str, Option<Range<usize>>); 7] = [
        ("count", r.count.as_ref().map(Spanned::span)),
        ("resource", r.resource.as_ref().map(Spanned::span)),
        ("above", r.above.as_ref().map(Spanned::span)),
        ("below", r.below.as_ref().map(Spanned::span)),
        ("for", r.for_.as_ref().map(Spanned::span)),
        ("signal", r.signal.as_ref().map(Spanned::span)),
        (
            "max_per_episode",
            r.max_per_episode.as_ref().map(Spanned::span),
        ),
    ];
    for (key, span) in given {
        if let Some(span) = span {
            if !allowed.contains(&key) {
                return Err(at(span, format!("`{key}` is not a key of a {kind} rule")));
            }
        }
    }
    let missing = |key: &str| at(rule_span.clone(), format!("a {kind} rule needs `{key}`"));
    let resource = match &r.resource {
        None => None,
        Some(s) => Some(Resource::parse(s.get_ref()).ok_or_else(|| {
            at(
                s.span(),
                format!(
                    "unknown resource {:?}: cpu, memory, io or disk",
                    s.get_ref()
                ),
            )
        })?),
    };
    let for_secs = match &r.for_ {
        None => 0.0,
        Some(d) => duration(d.get_ref()).ok_or_else(|| {
            at(
                d.span(),
                format!(
                    "bad duration {:?}: a number and a unit, e.g. \"500ms\", \"30s\", \"5m\", \"1h\"",
                    d.get_ref()
                ),
            )
        })?,
    };
    Ok(match kind {
        "keep_least" => {
            let count = match &r.count {
                None => 1,
                Some(n) if *n.get_ref() >= 1 => *n.get_ref() as usize,
                Some(n) => return Err(at(n.span(), "count is 1 or more".into())),
            };
            // Without `resource`, the type's own: the selector must fix a type.
            let resource = resource.or_else(|| select.container_type.and_then(Resource::of_type));
            if resource.is_none() {
                return Err(at(
                    rule_span.clone(),
                    "a keep_least rule whose selector fixes no stress type needs `resource`".into(),
                ));
            }
            Verdict::KeepLeast { count, resource }
        }
        "limit" => {
            let resource = resource.ok_or_else(|| missing("resource"))?;
            let above = r.above.as_ref().ok_or_else(|| missing("above"))?;
            let threshold =
                threshold(resource, above.get_ref()).map_err(|m| at(above.span(), m))?;
            Verdict::Limit {
                resource,
                above: threshold,
                for_secs,
            }
        }
        "pressure" => {
            let s = r.signal.as_ref().ok_or_else(|| missing("signal"))?;
            let signal = Signal::parse(s.get_ref()).ok_or_else(|| {
                at(
                    s.span(),
                    format!(
                        "unknown signal {:?}: cpu|memory|io . some|full . avg10|avg60 (e.g. \"cpu.some.avg10\"), or \"memory.available\"",
                        s.get_ref()
                    ),
                )
            })?;
            let trigger = match (&r.above, &r.below, signal) {
                (Some(a), Some(_), _) => {
                    return Err(at(a.span(), "give `above` or `below`, not both".into()))
                }
                (Some(a), None, Signal::Psi { .. }) => {
                    Trigger::Above(percent(a.get_ref()).map_err(|m| at(a.span(), m))?)
                }
                (None, Some(b), Signal::MemoryAvailable) => {
                    Trigger::Below(share(b.get_ref()).map_err(|m| at(b.span(), m))?)
                }
                (_, Some(b), Signal::Psi { .. }) => {
                    return Err(at(
                        b.span(),
                        "a pressure signal is bad above its limit: use `above`".into(),
                    ))
                }
                (Some(a), _, Signal::MemoryAvailable) => {
                    return Err(at(
                        a.span(),
                        "memory.available is bad below its limit: use `below`".into(),
                    ))
                }
                (None, None, Signal::Psi { .. }) => return Err(missing("above")),
                (None, None, Signal::MemoryAvailable) => return Err(missing("below")),
            };
            let max_per_episode = match &r.max_per_episode {
                None => usize::MAX,
                Some(n) if *n.get_ref() >= 1 => *n.get_ref() as usize,
                Some(n) => return Err(at(n.span(), "max_per_episode is 1 or more".into())),
            };
            Verdict::Pressure {
                signal,
                trigger,
                for_secs,
                resource: resource.unwrap_or(signal.resource()),
                max_per_episode,
            }
        }
        _ => Verdict::Protect,
    })
}

/// A duration: a number and a unit (`ms`, `s`, `m`, `h`), in seconds.
pub fn duration(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = s.split_at(split);
    let n: f64 = number.parse().ok()?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (secs.is_finite() && (0.0..=7.0 * 86_400.0).contains(&secs)).then_some(secs)
}

/// A size in bytes: a number, optionally with a unit (B, KB, MB, GB, TB,
/// KiB, MiB, GiB, TiB) and, for rates, `/s`.
pub fn bytes(s: &str) -> Option<f64> {
    let s = s.trim();
    let s = s.strip_suffix("/s").unwrap_or(s).trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number.parse().ok()?;
    let factor = match unit.trim() {
        "" | "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KiB" => 1024.0,
        "MiB" => 1048576.0,
        "GiB" => 1073741824.0,
        "TiB" => 1099511627776.0,
        _ => return None,
    };
    let v = n * factor;
    v.is_finite().then_some(v)
}

/// A value with `%`, as a share 0..1.
fn percent_share(s: &str) -> Option<f64> {
    let n: f64 = s.trim().strip_suffix('%')?.trim().parse().ok()?;
    (n.is_finite() && (0.0..=100.0).contains(&n)).then_some(n / 100.0)
}

/// A limit for `resource`: cpu in cores (a number) or a share of the host's
/// CPUs ("80%"); memory in bytes ("512MiB") or a share of its RAM ("10%");
/// io and disk in bytes per second ("10MiB/s").
fn threshold(resource: Resource, v: &toml::Value) -> Result<Threshold, String> {
    let bad = || {
        format!(
            "bad {resource} limit {v}: {}",
            match resource {
                Resource::Cpu => "cores (e.g. 0.8) or a share of the host's CPUs (e.g. \"50%\")",
                Resource::Memory =>
                    "a size (e.g. \"512MiB\") or a share of the host's RAM (e.g. \"10%\")",
                Resource::Io | Resource::Disk => "bytes per second (e.g. \"10MiB/s\")",
            }
        )
    };
    let t = match v {
        toml::Value::Integer(n) => Threshold::Absolute(*n as f64),
        toml::Value::Float(f) => Threshold::Absolute(*f),
        toml::Value::String(s) if s.trim().ends_with('%') => {
            if matches!(resource, Resource::Io | Resource::Disk) {
                return Err(bad());
            }
            Threshold::HostShare(percent_share(s).ok_or_else(bad)?)
        }
        toml::Value::String(s) if resource == Resource::Cpu => {
            Threshold::Absolute(s.trim().parse::<f64>().map_err(|_| bad())?)
        }
        toml::Value::String(s) => Threshold::Absolute(bytes(s).ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    match t {
        Threshold::Absolute(x) if x.is_finite() && x >= 0.0 => Ok(t),
        Threshold::HostShare(_) => Ok(t),
        _ => Err(bad()),
    }
}

/// A PSI limit: a percentage of time (a number 0..100, or "20%").
fn percent(v: &toml::Value) -> Result<f64, String> {
    let bad = || format!("bad pressure limit {v}: a percentage of time, 0 to 100 (e.g. 20)");
    let n = match v {
        toml::Value::Integer(n) => *n as f64,
        toml::Value::Float(f) => *f,
        toml::Value::String(s) => percent_share(s).ok_or_else(bad)? * 100.0,
        _ => return Err(bad()),
    };
    (n.is_finite() && (0.0..=100.0).contains(&n))
        .then_some(n)
        .ok_or_else(bad)
}

/// A share of RAM: "10%", or a number 0..1.
fn share(v: &toml::Value) -> Result<f64, String> {
    let bad = || format!("bad memory.available limit {v}: a share of RAM, e.g. \"10%\"");
    let n = match v {
        toml::Value::Float(f) => *f,
        toml::Value::String(s) => percent_share(s).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    (n.is_finite() && (0.0..=1.0).contains(&n))
        .then_some(n)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_durations_and_globs() {
        assert_eq!(duration("30s"), Some(30.0));
        assert_eq!(duration("500ms"), Some(0.5));
        assert_eq!(duration("5m"), Some(300.0));
        assert_eq!(duration("2h"), Some(7200.0));
        assert_eq!(duration("30"), None);
        assert_eq!(duration("s"), None);
        assert_eq!(duration("-1s"), None);
        assert_eq!(bytes("512MiB"), Some(536870912.0));
        assert_eq!(bytes("10MiB/s"), Some(10485760.0));
        assert_eq!(bytes("1.5 GB"), Some(1.5e9));
        assert_eq!(bytes("12"), Some(12.0));
        assert_eq!(bytes("12 parsecs"), None);
        assert!(glob("stress-*", "stress-1a"));
        assert!(glob("*", ""));
        assert!(glob("a?c*", "abcdef"));
        assert!(!glob("a?c", "ac"));
        assert!(!glob("gestor/*", "other/gestor"));
    }

    #[test]
    fn a_full_file_reads_into_rules() {
        let text = r#"
[[rule]]
name = "web"
select = { image = "nginx:*", labels = ["tier=prod"] }
verdict = "protect"

[[rule]]
name = "ram-cap"
select = { type = "ram", labels = ["team=batch", "tier!=prod", "owner"] }
verdict = "limit"
resource = "memory"
above = "512MiB"
for = "30s"
action = "stop"

[[rule]]
name = "cpu-pressure"
select = { managed = true, name = "cpu-*" }
verdict = "pressure"
signal = "cpu.some.avg10"
above = 20
for = "10s"
max_per_episode = 3
dry_run = true
max_kills_per_cycle = 1

[[rule]]
name = "disk"
select = { type = "disk" }
verdict = "keep_least"
count = 2
"#;
        let p = parse(text, Some("p.toml")).unwrap();
        assert_eq!(p.rules.len(), 4);
        assert_eq!(p.rules[0].verdict, Verdict::Protect);
        assert_eq!(
            p.rules[1].verdict,
            Verdict::Limit {
                resource: Resource::Memory,
                above: Threshold::Absolute(536870912.0),
                for_secs: 30.0
            }
        );
        assert_eq!(p.rules[1].action, ActionKind::Stop);
        assert_eq!(
            p.rules[1].select.labels,
            vec![
                LabelMatch::Equals("team".into(), "batch".into()),
                LabelMatch::NotEquals("tier".into(), "prod".into()),
                LabelMatch::Present("owner".into())
            ]
        );
        assert_eq!(
            p.rules[2].verdict,
            Verdict::Pressure {
                signal: Signal::Psi {
                    resource: PsiResource::Cpu,
                    full: false,
                    window: PsiWindow::Avg10
                },
                trigger: Trigger::Above(20.0),
                for_secs: 10.0,
                resource: Resource::Cpu,
                max_per_episode: 3
            }
        );
        assert!(p.rules[2].dry_run);
        assert_eq!(p.rules[2].max_kills_per_cycle, Some(1));
        assert_eq!(
            p.rules[3].verdict,
            Verdict::KeepLeast {
                count: 2,
                resource: Some(Resource::Disk)
            }
        );
    }

    #[test]
    fn errors_point_at_their_line_and_column() {
        let text = "[[rule]]\nname = \"a\"\nselect = { type = \"ram\" }\nverdict = \"limit\"\nresource = \"memory\"\nabove = \"512 furlongs\"\n";
        let e = parse(text, None).unwrap_err();
        assert_eq!((e.line, e.column), (6, 9), "{e}");
        assert!(e.message.contains("bad memory limit"), "{e}");
    }

    proptest::proptest! {
        /// Whatever the text, an answer and never a panic; an error has a
        /// position inside the text.
        #[test]
        fn any_text_gets_a_policy_or_a_placed_error(text in "\\PC{0,300}") {
            if let Err(e) = parse(&text, None) {
                proptest::prop_assert!(e.line <= text.lines().count().max(1) + 1);
            }
        }

        /// The same for a valid file with one character changed anywhere.
        #[test]
        fn a_valid_file_with_a_byte_changed_never_panics(at in 0usize..400, c in proptest::char::any()) {
            let text = "[[rule]]\nname = \"cap\"\nselect = { type = \"ram\", labels = [\"a=b\"] }\nverdict = \"limit\"\nresource = \"memory\"\nabove = \"512MiB\"\nfor = \"30s\"\n\n[[rule]]\nname = \"psi\"\nselect = { type = \"cpu\" }\nverdict = \"pressure\"\nsignal = \"cpu.some.avg10\"\nabove = 20\nmax_per_episode = 2\n";
            let mut chars: Vec<char> = text.chars().collect();
            let i = at % chars.len();
            chars[i] = c;
            let mutated: String = chars.into_iter().collect();
            let _ = parse(&mutated, None);
        }
    }

    #[test]
    fn the_default_policy_is_one_keep_least_rule_per_type() {
        let p = Policy::default_for(2);
        assert_eq!(p.rules.len(), 5);
        let types = ContainerType::KNOWN
            .into_iter()
            .chain([ContainerType::Unknown]);
        for (r, t) in p.rules.iter().zip(types) {
            assert_eq!(r.select.container_type, Some(t));
            assert_eq!(r.select.managed, Some(true));
            assert_eq!(
                r.verdict,
                Verdict::KeepLeast {
                    count: 2,
                    resource: None
                }
            );
        }
    }
}

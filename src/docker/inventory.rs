//! The containers gestor knows of, and where that knowledge comes from.
//!
//! `--inventory list`: every cycle lists every container (one Docker call,
//! growing with the host), and inspects the stopped ones it has not seen
//! stopped before (how they ended).
//!
//! `--inventory events` (the default): one listing at start, then Docker's
//! event stream keeps the inventory current (create, start, die, destroy,
//! rename, ...; an inspect for what an event does not say). A steady-state
//! cycle asks Docker nothing. The stream can drop (dockerd restarts, a socket
//! error) and events can be missed, so:
//! - whenever the stream ends (an error, or Docker closing it) the inventory
//!   is **stale** until a full listing has run again: the cycle treats it as
//!   a failed listing (no kills). The follower subscribes and lists again
//!   after a delay that doubles with each stream that did not stay up
//!   (`Backoff`, 0.5 s to 30 s), so a stream that ends at once costs a
//!   listing every 15 to 30 s, not one every half second; while Docker
//!   cannot be reached at all (no listing, no cost) it retries every 5 s at
//!   most, so the inventory is fresh soon after dockerd is back;
//! - the follower runs as a task of its own under a supervisor: if it panics,
//!   the inventory is stale at once, and it is started again (with the same
//!   backoff) until a listing has made the inventory fresh;
//! - every `resync_every` cycles a full listing runs anyway, and what differs
//!   from the inventory is counted (`gestor_inventory_drift_total`), logged
//!   and corrected;
//! - the cycle re-checks (one inspect) each container the policy would kill
//!   before it stops it (`Inventory::recheck`).
//!
//! In both modes only the stopped containers gestor may act on ([`ActsOn`])
//! are inspected for how they ended: the policy removes no other, and a host
//! may hold many stopped containers of other people's.
//!
//! An OOM kill: dockerd hears of it and of the exit in two notices from
//! containerd's shim, and sets `State.OOMKilled` only when the OOM notice
//! came first. Under load it can come second: the flag then stays false for
//! good, but Docker still sends an `oom` event (after `die`). The events
//! inventory keeps those events (`State::ooms`) and holds back a fresh
//! death's facts for [`OOM_SETTLE`] while they do not say OOM, so the policy
//! judges it (and names its cause) once a late notice has had time to come.
//! The list inventory has only Docker's flag.

use crate::docker::client::{ContainerEvent, DockerClient, DockerError};
use crate::docker::container::{ActsOn, ContainerInfo, ExitFacts};
use futures_util::stream::{self, StreamExt};
use prometheus::{IntCounter, IntCounterVec, IntGauge};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The inventory's own series. `Metrics` registers them in gestor's registry
/// and hands them over, so the inventory never reaches up into the metrics
/// stage.
#[derive(Debug, Clone)]
pub struct InventoryMetrics {
    /// `gestor_inventory_drift_total`.
    pub drift: IntCounter,
    /// `gestor_inventory_resyncs_total`.
    pub resyncs: IntCounter,
    /// `gestor_inventory_events_total{action}`.
    pub events: IntCounterVec,
    /// `gestor_inventory_stale`.
    pub stale: IntGauge,
}

impl InventoryMetrics {
    fn set_stale(&self, stale: bool) {
        self.stale.set(i64::from(stale));
    }

    fn drifted(&self, n: usize) {
        self.drift.inc_by(n as u64);
    }

    fn resynced(&self) {
        self.resyncs.inc();
    }

    fn applied(&self, action: &str) {
        self.events.with_label_values(&[action]).inc();
    }
}

/// How many stopped containers are inspected at once.
const INSPECT_CONCURRENCY: usize = 8;
/// Events Docker may have replayed twice are harmless; missing one is not:
/// a resubscription asks for events from this long before the listing.
const SINCE_MARGIN_SECS: i64 = 2;

/// Where the cycle's containers come from.
pub enum Inventory {
    List(ListInventory),
    Events(EventInventory),
}

impl Inventory {
    /// This cycle's containers, or why they cannot be trusted.
    pub async fn containers(&mut self) -> Result<Vec<ContainerInfo>, String> {
        match self {
            Inventory::List(l) => l.containers().await,
            Inventory::Events(e) => e.containers().await,
        }
    }

    /// Whether the container may still be killed as the policy judged it:
    /// an inspect now, when the inventory may lag behind Docker (events);
    /// the listing of this very cycle is fresh enough (list).
    pub async fn recheck(&self, judged: &ContainerInfo) -> Recheck {
        match self {
            Inventory::List(_) => Recheck::Unchanged,
            Inventory::Events(e) => e.recheck(judged).await,
        }
    }
}

/// The outcome of a re-check before a kill.
#[derive(Debug, Clone, PartialEq)]
pub enum Recheck {
    Unchanged,
    /// Gone already.
    Gone,
    /// Its labels, name or state changed since the inventory saw it.
    Changed(String),
    /// Docker could not be asked: not killed this cycle.
    Failed(String),
}

/// Whether two views of a container differ in what the policy reads.
fn differs(a: &ContainerInfo, b: &ContainerInfo) -> Option<String> {
    if a.state != b.state {
        return Some(format!("state {} -> {}", a.state, b.state));
    }
    if a.labels != b.labels {
        return Some("labels changed".into());
    }
    if a.name != b.name {
        return Some(format!("name {} -> {}", a.name, b.name));
    }
    None
}

/// Fills in how each stopped container gestor may act on ended, from
/// `known` (kept across cycles while they stay stopped) or one inspect each.
/// The others are left without: nothing reads how they ended.
async fn learn_exits(
    docker: &DockerClient,
    acts: &ActsOn,
    containers: &mut [ContainerInfo],
    known: &mut HashMap<String, ExitFacts>,
) {
    let unknown: Vec<String> = containers
        .iter()
        .filter(|c| c.is_stopped() && c.exit.is_none() && !known.contains_key(&c.id))
        .filter(|c| acts.may_act_on(c))
        .map(|c| c.id.clone())
        .collect();
    let learnt: Vec<(String, Result<Option<ExitFacts>, DockerError>)> = stream::iter(unknown)
        .map(|id| async move {
            let facts = docker.exit_facts(&id).await;
            (id, facts)
        })
        .buffer_unordered(INSPECT_CONCURRENCY)
        .collect()
        .await;
    for (id, facts) in learnt {
        match facts {
            Ok(Some(f)) => {
                known.insert(id, f);
            }
            // Removed since the listing: forgotten below.
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(id = %crate::docker::container::short_id(&id), error = %e, "cannot inspect a stopped container")
            }
        }
    }
    // Forget those that are gone or run again (a restart ends differently).
    let stopped: std::collections::HashSet<&str> = containers
        .iter()
        .filter(|c| c.is_stopped())
        .map(|c| c.id.as_str())
        .collect();
    known.retain(|id, _| stopped.contains(id.as_str()));
    for c in containers.iter_mut().filter(|c| c.is_stopped()) {
        if c.exit.is_none() {
            c.exit = known.get(&c.id).copied();
        }
    }
}

/// Lists every container every cycle.
pub struct ListInventory {
    docker: Arc<DockerClient>,
    label_filters: Vec<(String, String)>,
    acts: ActsOn,
    exits: HashMap<String, ExitFacts>,
}

impl ListInventory {
    pub fn new(
        docker: Arc<DockerClient>,
        label_filters: Vec<(String, String)>,
        acts: ActsOn,
    ) -> ListInventory {
        ListInventory {
            docker,
            label_filters,
            acts,
            exits: HashMap::new(),
        }
    }

    async fn containers(&mut self) -> Result<Vec<ContainerInfo>, String> {
        let mut listed = self
            .docker
            .list(&self.label_filters)
            .await
            .map_err(|e| e.to_string())?;
        learn_exits(&self.docker, &self.acts, &mut listed, &mut self.exits).await;
        Ok(listed)
    }
}

/// What the event follower and the cycles share.
#[derive(Default)]
struct State {
    containers: HashMap<String, ContainerInfo>,
    /// Why the event stream is not being followed (`None`: it is). Only the
    /// follower, subscribed again and having listed, clears it.
    stream_down: Option<String>,
    /// Why an event could not be applied (an inspect after it failed). The
    /// stream is fine: the next full listing clears it, and the next cycle
    /// runs one.
    gap: Option<String>,
    /// Counts gaps, so a listing clears only those that came before it.
    gaps: u64,
    /// Counts changes made by events; `touched` says when (in this count)
    /// each container was last changed by one, removals included.
    seq: u64,
    touched: HashMap<String, u64>,
    /// Docker's time (ns) of the last event applied.
    last_event_ns: i64,
    /// Since when the current subscription has been followed (listed and
    /// applying events); the supervisor takes it when the attempt ends.
    following_since: Option<Instant>,
    /// Containers Docker sent an `oom` event for in their current run.
    ooms: HashSet<String>,
    /// When the death of each container that recently died was applied.
    died: HashMap<String, Instant>,
}

/// The state, even after a panic while it was locked (a poisoned lock): the
/// panic ends the follower's attempt, its supervisor marks the inventory
/// stale, and the next listing replaces what the panic may have left half
/// done. Until the supervisor has marked it, `EventInventory::containers`
/// takes the poison itself for staleness.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    /// Why the inventory cannot be trusted now (`None`: it can).
    fn stale(&self) -> Option<&str> {
        self.stream_down.as_deref().or(self.gap.as_deref())
    }

    fn touch(&mut self, id: &str) {
        self.seq += 1;
        self.touched.insert(id.to_string(), self.seq);
    }

    /// Forgets the OOM kills and deaths of containers no longer held.
    fn forget_gone(&mut self) {
        let held = &self.containers;
        self.ooms.retain(|id| held.contains_key(id));
        self.died.retain(|id, _| held.contains_key(id));
    }

    /// A container as the policy should see it `now`: an OOM kill Docker
    /// told of by event counts even when its inspect says otherwise, and a
    /// death younger than [`OOM_SETTLE`] whose facts do not say OOM has no
    /// facts yet (judged next cycle).
    fn as_judged(&self, c: &ContainerInfo, now: Instant) -> ContainerInfo {
        let mut c = c.clone();
        let oom = self.ooms.contains(&c.id);
        if let Some(e) = c.exit.as_mut() {
            e.oom_killed |= oom;
            let fresh = self
                .died
                .get(&c.id)
                .is_some_and(|t| now.saturating_duration_since(*t) < OOM_SETTLE);
            if fresh && !e.oom_killed {
                c.exit = None;
            }
        }
        c
    }
}

/// How long a death's facts are held back when they do not say OOM: the
/// time a late `oom` event is given (see the module's documentation).
const OOM_SETTLE: Duration = Duration::from_secs(2);

/// How long a reconciliation waits for events still on their way when the
/// stream says nothing.
const SETTLE: Duration = Duration::from_secs(1);

/// How long the first cycle waits for the first listing.
const FIRST_LISTING_WAIT: Duration = crate::docker::client::deadline::LIST;

/// The first delay before the follower subscribes and lists again after the
/// stream ended: dockerd restarting is back within a second or so.
const RECONNECT_FIRST: Duration = Duration::from_millis(500);

/// The longest delay between attempts. The inventory is stale meanwhile (no
/// kills), so not much longer than a listing may take; long enough that a
/// stream that always ends at once (a proxy that drops it, a dockerd that
/// closes it) costs a full listing every 15 to 30 s, not every 0.5 s.
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// A subscription followed at least this long was a healthy stream: the
/// delay before the next one starts again from `RECONNECT_FIRST`. Anything
/// shorter counts as a failure, however it ended (an error, a clean close, a
/// panic). As long as `RECONNECT_MAX`: however the stream fails, over time a
/// reconnect (and its listing) comes at most about once per 15 s.
const STABLE_AFTER: Duration = RECONNECT_MAX;

/// The longest delay between attempts that could not reach Docker at all
/// (dockerd down or restarting). Such an attempt costs the engine nothing,
/// and once dockerd is back the inventory should be fresh within seconds,
/// as it was before the backoff (the e2e dockerd-restart test allows two
/// intervals and 5 s).
const UNREACHABLE_MAX: Duration = Duration::from_secs(5);

/// How an attempt of the follower ended, as the backoff sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Attempt {
    /// Docker could not be reached: no listing, nothing followed.
    Unreachable,
    /// Docker answered (a listing was asked for, at least); followed for
    /// this long (`None`: never got to follow).
    Reached { stayed_up: Option<Duration> },
}

/// How long the follower waits before its next attempt, jittered: after an
/// attempt that reached Docker (each one a full listing) the delay doubles
/// from `RECONNECT_FIRST` up to `RECONNECT_MAX` until one stays up
/// `STABLE_AFTER`; while Docker cannot be reached it doubles up to
/// `UNREACHABLE_MAX` only. Pure: the randomness is passed in.
#[derive(Debug, Default)]
struct Backoff {
    /// Attempts that reached Docker since the last one that stayed up.
    failures: u32,
    /// Attempts in a row that could not reach Docker.
    unreachable: u32,
}

impl Backoff {
    /// The delay before the next attempt, after `attempt`; `unit` is a
    /// random number in [0, 1).
    fn next(&mut self, attempt: Attempt, unit: f64) -> Duration {
        let (count, cap) = match attempt {
            Attempt::Unreachable => (&mut self.unreachable, UNREACHABLE_MAX),
            Attempt::Reached { stayed_up } => {
                self.unreachable = 0;
                if stayed_up.is_some_and(|d| d >= STABLE_AFTER) {
                    self.failures = 0;
                }
                (&mut self.failures, RECONNECT_MAX)
            }
        };
        let base = RECONNECT_FIRST
            .saturating_mul(1u32 << (*count).min(16))
            .min(cap);
        *count = count.saturating_add(1);
        jittered(base, unit)
    }
}

/// "Equal jitter": half of `base` fixed, half random, so the delay is never
/// under half of `base` (a lower bound the backoff can be tested on) and the
/// gestors of a fleet whose dockerds restarted together spread out.
fn jittered(base: Duration, unit: f64) -> Duration {
    base.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
}

/// A random number in [0, 1) for the jitter, from the hasher std seeds
/// randomly (no dependency for so little).
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(unix_now_ns());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Test-only faults the follower can be made to suffer, to prove its
/// supervision against the real engine.
#[cfg(test)]
#[derive(Default)]
struct Faults {
    /// Panics (once) on the first event about a container of this name,
    /// with the state locked, as a bug while applying an event would.
    panic_on: Mutex<Option<String>>,
    /// When set, a restart after a crash waits for a permit: meanwhile the
    /// test sees the inventory stale.
    restart_gate: Option<Arc<tokio::sync::Semaphore>>,
}

#[cfg(test)]
impl Faults {
    fn before_apply(&self, state: &Mutex<State>, event: &ContainerEvent) {
        let mut armed = self.panic_on.lock().unwrap();
        if armed.is_some() && *armed == event.name {
            armed.take();
            drop(armed);
            let _locked = lock(state);
            panic!("injected fault: applying {} {}", event.action, event.id);
        }
    }

    async fn before_restart(&self) {
        if let Some(gate) = &self.restart_gate {
            gate.acquire().await.expect("the gate stays open").forget();
        }
    }
}

/// What the follower's attempts and their supervisor share.
struct Follower {
    docker: Arc<DockerClient>,
    label_filters: Vec<(String, String)>,
    acts: ActsOn,
    state: Arc<Mutex<State>>,
    metrics: InventoryMetrics,
    /// Set once the first attempt is over (listed, or failed to).
    listed: tokio::sync::watch::Sender<bool>,
    cancel: CancellationToken,
    #[cfg(test)]
    faults: Faults,
}

impl Follower {
    /// A follower, and the receiver that hears when its first attempt is over.
    fn new(
        docker: Arc<DockerClient>,
        label_filters: Vec<(String, String)>,
        acts: ActsOn,
        metrics: InventoryMetrics,
        cancel: CancellationToken,
    ) -> (Follower, tokio::sync::watch::Receiver<bool>) {
        let (listed_tx, listed) = tokio::sync::watch::channel(false);
        let follower = Follower {
            docker,
            label_filters,
            acts,
            state: Arc::new(Mutex::new(State {
                stream_down: Some("the first listing has not run yet".into()),
                ..Default::default()
            })),
            metrics,
            listed: listed_tx,
            cancel,
            #[cfg(test)]
            faults: Faults::default(),
        };
        (follower, listed)
    }
}

/// The inventory kept from Docker's event stream.
pub struct EventInventory {
    docker: Arc<DockerClient>,
    label_filters: Vec<(String, String)>,
    acts: ActsOn,
    state: Arc<Mutex<State>>,
    metrics: InventoryMetrics,
    resync_every: u64,
    cycles: u64,
    /// Becomes true once the follower's first attempt is over (listed, or
    /// failed to).
    listed: tokio::sync::watch::Receiver<bool>,
}

/// Compares a full listing with the inventory and corrects the inventory:
/// the listing wins, except for containers events changed after the listing
/// began (`seq0`), which are newer than it. Returns what differed (drift).
fn correct(s: &mut State, listed: Vec<ContainerInfo>, seq0: u64) -> Vec<String> {
    let newer = |s: &State, id: &str| s.touched.get(id).is_some_and(|&t| t > seq0);
    let listed_ids: std::collections::HashSet<String> =
        listed.iter().map(|c| c.id.clone()).collect();
    let mut drift: Vec<String> = Vec::new();
    for c in &listed {
        if newer(s, &c.id) {
            continue;
        }
        match s.containers.get(&c.id) {
            None => drift.push(format!("{} missing", c.name)),
            Some(k) => {
                if let Some(d) = differs(k, c) {
                    drift.push(format!("{}: {d}", c.name));
                }
            }
        }
    }
    let gone: Vec<String> = s
        .containers
        .values()
        .filter(|k| !listed_ids.contains(&k.id) && !newer(s, &k.id))
        .map(|k| k.id.clone())
        .collect();
    for id in &gone {
        drift.push(format!("{} no longer exists", s.containers[id].name));
        s.containers.remove(id);
    }
    for c in listed {
        if !newer(s, &c.id) {
            s.containers.insert(c.id.clone(), c);
        }
    }
    s.touched.retain(|_, t| *t > seq0);
    s.forget_gone();
    drift
}

/// Applies one event: what it says without asking, an inspect for the rest.
/// Pure but for the inspect, which `inspect` performs.
///
/// A death is inspected (how it ended) only for a container gestor may act
/// on ([`ActsOn`]) and does not already hold as stopped with its exit facts
/// (a death Docker replays after a resubscription); a creation only when the
/// container is not known already (Docker never reuses an ID).
async fn apply<F, Fut>(state: &Mutex<State>, event: &ContainerEvent, acts: &ActsOn, inspect: F)
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<ContainerInfo>, DockerError>>,
{
    let known = lock(state).containers.contains_key(&event.id);
    let simple = {
        let mut guard = lock(state);
        let s = &mut *guard;
        let done = match (event.action.as_str(), s.containers.get_mut(&event.id)) {
            ("destroy", _) => {
                s.containers.remove(&event.id);
                s.ooms.remove(&event.id);
                s.died.remove(&event.id);
                true
            }
            // Docker names the container but says nothing else: no inspect.
            ("oom", _) => {
                s.ooms.insert(event.id.clone());
                true
            }
            ("create", Some(_)) => true,
            ("die", Some(c)) if !acts.may_act_on(c) => {
                c.state = "exited".into();
                c.exit = None;
                true
            }
            ("die", Some(c)) if c.is_stopped() && c.exit.is_some() => true,
            ("start" | "restart" | "unpause", Some(c)) => {
                if event.action != "unpause" {
                    // A new run: Docker's OOM flag starts false again.
                    s.ooms.remove(&event.id);
                }
                c.state = "running".into();
                c.exit = None;
                true
            }
            ("pause", Some(c)) => {
                c.state = "paused".into();
                true
            }
            ("rename", Some(c)) if event.name.is_some() => {
                c.name = event.name.clone().unwrap_or_default();
                true
            }
            // A resource update changes nothing gestor reads.
            ("update", _) if known => true,
            _ => false,
        };
        if done {
            s.touch(&event.id);
            s.last_event_ns = s.last_event_ns.max(event.time_nano);
        }
        done
    };
    if simple {
        return;
    }
    // create, die (how it ended), or an event about a container we do not know.
    let inspected = inspect(event.id.clone()).await;
    let mut s = lock(state);
    s.last_event_ns = s.last_event_ns.max(event.time_nano);
    match inspected {
        Ok(Some(c)) => {
            s.touch(&event.id);
            if event.action == "die" && c.is_stopped() {
                s.died.insert(c.id.clone(), Instant::now());
            }
            s.containers.insert(c.id.clone(), c);
        }
        Ok(None) => {
            s.touch(&event.id);
            s.containers.remove(&event.id);
            s.forget_gone();
        }
        Err(e) => {
            // Not knowing what became of it: stale until the next listing.
            s.gaps += 1;
            s.gap = Some(format!(
                "cannot inspect {} after its {} event: {e}",
                crate::docker::container::short_id(&event.id),
                event.action
            ));
        }
    }
}

/// After a full listing that began when `gaps0` gaps had been counted: the
/// listing holds what those events were about, so their gap ends (returned).
/// A gap during the listing waits for the next one. A broken stream is not
/// ended here: only the follower, once subscribed again, does that.
fn end_gap(s: &mut State, gaps0: u64) -> Option<String> {
    if s.gaps == gaps0 {
        s.gap.take()
    } else {
        None
    }
}

fn unix_now() -> i64 {
    unix_now_ns() / 1_000_000_000
}

/// The time now in ns, as Docker stamps its events (`timeNano`).
fn unix_now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

impl EventInventory {
    /// Starts following Docker's events (in the background, until `cancel`).
    /// The inventory is stale until the first listing has run.
    pub fn start(
        docker: Arc<DockerClient>,
        label_filters: Vec<(String, String)>,
        acts: ActsOn,
        metrics: InventoryMetrics,
        resync_every: u64,
        cancel: CancellationToken,
    ) -> EventInventory {
        let (follower, listed) = Follower::new(docker, label_filters, acts, metrics, cancel);
        EventInventory::supervised(follower, listed, resync_every)
    }

    fn supervised(
        follower: Follower,
        listed: tokio::sync::watch::Receiver<bool>,
        resync_every: u64,
    ) -> EventInventory {
        let inventory = EventInventory {
            docker: follower.docker.clone(),
            label_filters: follower.label_filters.clone(),
            acts: follower.acts.clone(),
            state: follower.state.clone(),
            metrics: follower.metrics.clone(),
            resync_every: resync_every.max(1),
            cycles: 0,
            listed,
        };
        tokio::spawn(supervise(Arc::new(follower)));
        inventory
    }

    async fn containers(&mut self) -> Result<Vec<ContainerInfo>, String> {
        self.cycles += 1;
        if !*self.listed.borrow() {
            // The first cycle: give the first listing the time a listing may take.
            let _ = tokio::time::timeout(FIRST_LISTING_WAIT, self.listed.wait_for(|l| *l)).await;
        }
        let (gap, stream_down) = {
            let s = lock(&self.state);
            (s.gap.is_some(), s.stream_down.is_some())
        };
        // A gap with the stream still followed: a full listing now repairs
        // it. A broken stream is the follower's to repair (it lists once
        // subscribed again), so a listing here would not end the staleness.
        if (gap && !stream_down) || self.cycles % self.resync_every == 0 {
            self.reconcile().await?;
        }
        // Poisoned: the follower panicked with the state locked, and its
        // supervisor has not marked it stale yet.
        let crashed = self.state.is_poisoned();
        let s = lock(&self.state);
        let stale = if crashed {
            Some("the event follower crashed")
        } else {
            s.stale()
        };
        if let Some(why) = stale {
            self.metrics.set_stale(true);
            return Err(format!("the container inventory is stale: {why}"));
        }
        self.metrics.set_stale(false);
        let now = Instant::now();
        Ok(s.containers.values().map(|c| s.as_judged(c, now)).collect())
    }

    /// A full listing, compared with the inventory: what differs is drift,
    /// counted and logged, and the listing wins.
    ///
    /// Events are applied a moment after they happen, so a listing taken
    /// while some are on their way is ahead of the inventory. Before
    /// comparing, it waits until the stream has passed the listing's time (or
    /// has been quiet for `SETTLE`), and containers that events changed after
    /// the listing began are left to the events: they are newer than it.
    async fn reconcile(&mut self) -> Result<(), String> {
        let (seq0, gaps0) = {
            let s = lock(&self.state);
            (s.seq, s.gaps)
        };
        let mut listed = self
            .docker
            .list(&self.label_filters)
            .await
            .map_err(|e| e.to_string())?;
        // In ns: truncated to the second it would count as applied the
        // events of up to a second before the listing.
        let listed_ns = unix_now_ns();
        // Wait while events are still being applied (each may take an
        // inspect, so a burst can lag seconds behind under load), until the
        // stream is past the listing or has been quiet for SETTLE; never
        // longer than a listing may take.
        // A quiet stream is not enough while the listing and the inventory
        // hold different containers: on a loaded host dockerd can deliver a
        // creation's event seconds late, and the difference is only drift
        // once the stream has passed the listing or the deadline is reached.
        let give_up = tokio::time::Instant::now() + crate::docker::client::deadline::LIST;
        let listed_ids: std::collections::HashSet<&str> =
            listed.iter().map(|c| c.id.as_str()).collect();
        let mut last_seen = lock(&self.state).last_event_ns;
        let mut quiet_since = tokio::time::Instant::now();
        loop {
            let (last, same_containers) = {
                let s = lock(&self.state);
                let same = s.containers.len() == listed_ids.len()
                    && s.containers
                        .keys()
                        .all(|id| listed_ids.contains(id.as_str()));
                (s.last_event_ns, same)
            };
            let now = tokio::time::Instant::now();
            if last != last_seen {
                last_seen = last;
                quiet_since = now;
            }
            let settled = now - quiet_since >= SETTLE && same_containers;
            if last >= listed_ns || settled || now >= give_up {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        {
            // Exit facts the inventory already holds are kept; the rest is learnt below.
            let s = lock(&self.state);
            for c in listed.iter_mut().filter(|c| c.is_stopped()) {
                c.exit = s.containers.get(&c.id).and_then(|k| k.exit);
            }
        }
        let mut known = HashMap::new();
        learn_exits(&self.docker, &self.acts, &mut listed, &mut known).await;
        let mut s = lock(&self.state);
        let drift = correct(&mut s, listed, seq0);
        if !drift.is_empty() {
            self.metrics.drifted(drift.len());
            tracing::warn!(drift = drift.len(), details = %drift.join("; "), "the container inventory drifted from Docker; corrected from a full listing");
        }
        if let Some(why) = end_gap(&mut s, gaps0) {
            self.metrics.resynced();
            tracing::info!(after = %why, "container inventory listed again after a gap in its events");
        }
        Ok(())
    }

    async fn recheck(&self, judged: &ContainerInfo) -> Recheck {
        match self.docker.inspect(&judged.id).await {
            Ok(None) => {
                lock(&self.state).containers.remove(&judged.id);
                Recheck::Gone
            }
            Ok(Some(now)) => match differs(judged, &now) {
                None => Recheck::Unchanged,
                Some(d) => {
                    lock(&self.state).containers.insert(now.id.clone(), now);
                    Recheck::Changed(d)
                }
            },
            Err(e) => Recheck::Failed(e.to_string()),
        }
    }
}

/// Runs the follower's attempts, one task each, until `cancel`: subscribe,
/// list, apply events until the stream ends. However an attempt ends (the
/// stream closed or failed, it could not start, it panicked) the inventory
/// is stale until the next attempt has listed, and the next attempt waits
/// for the backoff's delay. A panic is a crash of the follower's task: the
/// supervisor is what outlives it.
async fn supervise(f: Arc<Follower>) {
    let mut backoff = Backoff::default();
    loop {
        let attempt = tokio::spawn(follow_once(f.clone())).await;
        f.listed.send_replace(true);
        let (why, crashed, unreachable) = match attempt {
            Ok(Ok(ended)) => (format!("the event stream ended: {ended}"), false, false),
            Ok(Err(e)) => (e.to_string(), false, e.is_unreachable()),
            Err(e) => (
                format!("the event follower crashed: {}", crash_cause(e)),
                true,
                false,
            ),
        };
        let delay = {
            let mut s = lock(&f.state);
            let was_down = s.stream_down.is_some();
            s.stream_down = Some(why.clone());
            f.metrics.set_stale(true);
            if f.cancel.is_cancelled() {
                return;
            }
            let stayed_up = s.following_since.take().map(|t| t.elapsed());
            let attempt = if unreachable {
                Attempt::Unreachable
            } else {
                Attempt::Reached { stayed_up }
            };
            let delay = backoff.next(attempt, random_unit());
            if crashed {
                tracing::error!(error = %why, retry_in = ?delay, "the container inventory is stale until its event follower, started again, has listed");
            } else if !was_down {
                tracing::warn!(error = %why, retry_in = ?delay, "the container inventory is stale until it is listed again");
            } else {
                tracing::debug!(error = %why, retry_in = ?delay, "cannot follow Docker's events yet");
            }
            delay
        };
        // The state may have been left half-changed by the panic: it is
        // marked stale now, and the next listing replaces it.
        f.state.clear_poison();
        #[cfg(test)]
        if crashed {
            f.faults.before_restart().await;
        }
        tokio::select! {
            _ = f.cancel.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// What a task's panic said, for the log and the staleness.
fn crash_cause(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return e.to_string();
    }
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// One subscription: events from a little before now (bollard sends the
/// request when the stream is first polled, after the listing: Docker replays
/// what happened since `since`, so nothing between the two is missed; what
/// is replayed twice is harmless), the listing, then every event as it comes.
/// Returns why the stream ended; `Err` when it could not start.
async fn follow_once(f: Arc<Follower>) -> Result<String, DockerError> {
    let since = unix_now() - SINCE_MARGIN_SECS;
    let events = f.docker.container_events(since, &f.label_filters).await?;
    let mut listed = f.docker.list(&f.label_filters).await?;
    let mut exits = HashMap::new();
    learn_exits(&f.docker, &f.acts, &mut listed, &mut exits).await;
    {
        let mut s = lock(&f.state);
        let (down, gap) = (s.stream_down.take(), s.gap.take());
        let was = down.or(gap);
        s.containers = listed.into_iter().map(|c| (c.id.clone(), c)).collect();
        s.forget_gone();
        s.following_since = Some(Instant::now());
        f.metrics.set_stale(false);
        tracing::info!(containers = s.containers.len(), after = ?was, "container inventory listed; following Docker's events");
    }
    // Whatever a panic (a cycle's, while it held the state) left behind, the
    // listing has replaced.
    f.state.clear_poison();
    f.metrics.resynced();
    f.listed.send_replace(true);
    let mut events = std::pin::pin!(events);
    loop {
        tokio::select! {
            _ = f.cancel.cancelled() => return Ok("gestor is stopping".into()),
            next = events.next() => match next {
                Some(Ok(event)) => {
                    if event.id.is_empty() {
                        continue;
                    }
                    f.metrics.applied(&event.action);
                    #[cfg(test)]
                    f.faults.before_apply(&f.state, &event);
                    apply(&f.state, &event, &f.acts, |id| {
                        let docker = f.docker.clone();
                        async move { docker.inspect(&id).await }
                    })
                    .await;
                }
                Some(Err(e)) => return Ok(e.to_string()),
                None => return Ok("Docker closed the event stream".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::container::tests::container;
    use crate::docker::container::{LABEL_MANAGED, LABEL_PROTECTED};

    /// What the daemon tells the inventory by default.
    fn acts() -> ActsOn {
        ActsOn {
            manage_unlabeled: false,
            never: vec!["gestor-logger".into()],
        }
    }

    fn event(id: &str, action: &str, name: Option<&str>) -> ContainerEvent {
        ContainerEvent {
            id: id.into(),
            action: action.into(),
            time: 0,
            time_nano: 0,
            name: name.map(String::from),
        }
    }

    fn state_with(cs: Vec<ContainerInfo>) -> Mutex<State> {
        Mutex::new(State {
            containers: cs.into_iter().map(|c| (c.id.clone(), c)).collect(),
            ..Default::default()
        })
    }

    async fn never(_: String) -> Result<Option<ContainerInfo>, DockerError> {
        panic!("no inspect expected")
    }

    #[tokio::test]
    async fn events_that_say_enough_need_no_inspect() {
        let c = container("a", &[], "stress --cpu 1");
        let id = c.id.clone();
        let state = state_with(vec![c]);
        apply(&state, &event(&id, "pause", None), &acts(), never).await;
        assert_eq!(state.lock().unwrap().containers[&id].state, "paused");
        apply(&state, &event(&id, "unpause", None), &acts(), never).await;
        assert_eq!(state.lock().unwrap().containers[&id].state, "running");
        apply(&state, &event(&id, "rename", Some("b")), &acts(), never).await;
        assert_eq!(state.lock().unwrap().containers[&id].name, "b");
        apply(&state, &event(&id, "update", None), &acts(), never).await;
        apply(&state, &event(&id, "destroy", None), &acts(), never).await;
        assert!(state.lock().unwrap().containers.is_empty());
        // Destroying what is not there is nothing.
        apply(&state, &event(&id, "destroy", None), &acts(), never).await;
    }

    #[tokio::test]
    async fn create_and_die_ask_docker() {
        let state = state_with(vec![]);
        let mut c = container("new", &[(LABEL_MANAGED, "true")], "stress --cpu 1");
        let id = c.id.clone();
        let created = c.clone();
        apply(
            &state,
            &event(&id, "create", None),
            &acts(),
            |_| async move { Ok(Some(created)) },
        )
        .await;
        assert_eq!(state.lock().unwrap().containers[&id].name, "new");
        die(&state, &mut c, 137, true).await;
        {
            let s = state.lock().unwrap();
            assert_eq!(s.containers[&id].exit.unwrap().exit_code, 137);
            assert!(s.stale().is_none());
        }
        // Replayed after a resubscription: known already, nothing to ask.
        apply(&state, &event(&id, "create", None), &acts(), never).await;
        apply(&state, &event(&id, "die", None), &acts(), never).await;
        assert_eq!(
            state.lock().unwrap().containers[&id]
                .exit
                .unwrap()
                .exit_code,
            137
        );
    }

    /// `c` dies with `exit_code`; the inspect after the `die` event says
    /// `oom_killed`.
    async fn die(state: &Mutex<State>, c: &mut ContainerInfo, exit_code: i64, oom_killed: bool) {
        c.state = "exited".into();
        c.exit = Some(ExitFacts {
            exit_code,
            oom_killed,
            finished_at: Some(5),
        });
        let died = c.clone();
        apply(state, &event(&c.id, "die", None), &acts(), |_| async move {
            Ok(Some(died))
        })
        .await;
    }

    /// The policy's view of one container now, and `later` (after the settle).
    fn judged(state: &Mutex<State>, id: &str) -> (Option<ExitFacts>, Option<ExitFacts>) {
        let s = state.lock().unwrap();
        let now = Instant::now();
        (
            s.as_judged(&s.containers[id], now).exit,
            s.as_judged(&s.containers[id], now + OOM_SETTLE).exit,
        )
    }

    #[tokio::test]
    async fn an_oom_event_after_the_death_still_names_the_oom_killer() {
        let mut c = container("ram", &[(LABEL_MANAGED, "true")], "stress --vm 1");
        let id = c.id.clone();
        let state = state_with(vec![c.clone()]);
        // Docker's flag lost the race: the inspect after `die` says no OOM.
        die(&state, &mut c, 1, false).await;
        // Fresh and not OOM: not judged yet; after the settle, as Docker says.
        assert_eq!(judged(&state, &id), (None, c.exit));
        apply(&state, &event(&id, "oom", None), &acts(), never).await;
        let oom = Some(ExitFacts {
            oom_killed: true,
            ..c.exit.unwrap()
        });
        assert_eq!(judged(&state, &id), (oom, oom));
        // A full listing keeps what the event said.
        {
            let mut s = state.lock().unwrap();
            let seq0 = s.seq;
            assert!(correct(&mut s, vec![c.clone()], seq0).is_empty());
            assert!(
                s.as_judged(&s.containers[&id], Instant::now())
                    .exit
                    .unwrap()
                    .oom_killed
            );
        }
        // Started again: a new run, Docker's flag starts false again.
        apply(&state, &event(&id, "start", None), &acts(), never).await;
        assert!(state.lock().unwrap().ooms.is_empty());
        apply(&state, &event(&id, "destroy", None), &acts(), never).await;
        let s = state.lock().unwrap();
        assert!(s.died.is_empty() && s.containers.is_empty());
    }

    #[tokio::test]
    async fn an_oom_event_before_the_death_is_judged_at_once() {
        let mut c = container("ram", &[(LABEL_MANAGED, "true")], "stress --vm 1");
        let id = c.id.clone();
        let state = state_with(vec![c.clone()]);
        apply(&state, &event(&id, "oom", None), &acts(), never).await;
        die(&state, &mut c, 1, true).await;
        assert_eq!(judged(&state, &id), (c.exit, c.exit));
    }

    #[tokio::test]
    async fn the_death_of_a_container_gestor_never_acts_on_asks_nothing() {
        let others = [
            container("other", &[], "stress --cpu 1"),
            container("optout", &[(LABEL_MANAGED, "false")], "stress --cpu 1"),
            container(
                "protected",
                &[(LABEL_MANAGED, "true"), (LABEL_PROTECTED, "true")],
                "stress --cpu 1",
            ),
            container(
                "gestor-logger",
                &[(LABEL_MANAGED, "true")],
                "stress --cpu 1",
            ),
        ];
        let state = state_with(others.to_vec());
        for c in &others {
            apply(&state, &event(&c.id, "die", None), &acts(), never).await;
            let s = state.lock().unwrap();
            assert_eq!(s.containers[&c.id].state, "exited", "{}", c.name);
            assert_eq!(s.containers[&c.id].exit, None, "{}", c.name);
        }
        // Unlabeled stress containers are gestor's when it is told so.
        let managing = ActsOn {
            manage_unlabeled: true,
            ..acts()
        };
        let asked = std::sync::atomic::AtomicBool::new(false);
        apply(
            &state,
            &event(&others[0].id, "die", None),
            &managing,
            |_| {
                asked.store(true, std::sync::atomic::Ordering::SeqCst);
                async { Ok(None) }
            },
        )
        .await;
        assert!(asked.into_inner());
    }

    #[test]
    fn acts_on_what_the_policy_may_kill_or_remove() {
        let acts = acts();
        let managed = container("m", &[(LABEL_MANAGED, "true")], "stress --cpu 1");
        assert!(acts.may_act_on(&managed));
        let unlabeled = container("u", &[], "stress --cpu 1");
        assert!(!acts.may_act_on(&unlabeled));
        assert!(ActsOn {
            manage_unlabeled: true,
            ..ActsOn::default()
        }
        .may_act_on(&unlabeled));
        let protected = container(
            "p",
            &[(LABEL_MANAGED, "true"), (LABEL_PROTECTED, "true")],
            "stress --cpu 1",
        );
        assert!(!acts.may_act_on(&protected));
        // The log service, by name, full ID or short ID.
        for never in [
            managed.name.clone(),
            managed.id.clone(),
            managed.short_id().to_string(),
        ] {
            let acts = ActsOn {
                never: vec![never.clone()],
                ..ActsOn::default()
            };
            assert!(!acts.may_act_on(&managed), "{never}");
        }
    }

    #[tokio::test]
    async fn an_inspect_that_fails_makes_the_inventory_stale() {
        let state = state_with(vec![]);
        apply(&state, &event("x", "create", None), &acts(), |_| async {
            Err(DockerError::Timeout {
                endpoint: "e".into(),
                what: "inspect".into(),
                after: Duration::from_secs(5),
            })
        })
        .await;
        {
            let s = state.lock().unwrap();
            assert!(s.stale().is_some() && s.stream_down.is_none());
            assert_eq!(s.gaps, 1);
        }
        // A container that is gone by the time it is inspected is forgotten.
        let state = state_with(vec![container("a", &[(LABEL_MANAGED, "true")], "x")]);
        let id = state
            .lock()
            .unwrap()
            .containers
            .keys()
            .next()
            .unwrap()
            .clone();
        apply(&state, &event(&id, "die", None), &acts(), |_| async {
            Ok(None)
        })
        .await;
        assert!(state.lock().unwrap().containers.is_empty());
    }

    #[test]
    fn a_listing_ends_only_the_gaps_before_it_and_never_a_broken_stream() {
        let mut s = State {
            gap: Some("cannot inspect a".into()),
            gaps: 1,
            ..Default::default()
        };
        // Another gap while the listing ran: the listing may predate it.
        assert_eq!(end_gap(&mut s, 0), None);
        assert!(s.stale().is_some());
        assert_eq!(end_gap(&mut s, 1).as_deref(), Some("cannot inspect a"));
        assert!(s.stale().is_none());
        s.stream_down = Some("the event stream ended".into());
        assert_eq!(end_gap(&mut s, 1), None);
        assert_eq!(s.stale(), Some("the event stream ended"));
    }

    #[test]
    fn a_listing_corrects_missed_events_and_counts_them() {
        let a = container("a", &[], "x");
        let b = container("b", &[], "x");
        let mut c = container("c", &[], "x");
        // The inventory missed b's creation, c's death and d's removal.
        let d = container("d", &[], "x");
        let mut s = State {
            containers: [&a, &c, &d]
                .iter()
                .map(|k| (k.id.clone(), (*k).clone()))
                .collect(),
            ..Default::default()
        };
        c.state = "exited".into();
        let listed = vec![a.clone(), b.clone(), c.clone()];
        let drift = correct(&mut s, listed.clone(), 0);
        assert_eq!(drift.len(), 3, "{drift:?}");
        let mut ids: Vec<_> = s.containers.keys().cloned().collect();
        ids.sort();
        let mut want: Vec<_> = listed.iter().map(|k| k.id.clone()).collect();
        want.sort();
        assert_eq!(ids, want);
        assert_eq!(s.containers[&c.id].state, "exited");
        // Listed again, nothing differs.
        assert!(correct(&mut s, listed, 0).is_empty());
    }

    #[test]
    fn what_events_changed_after_the_listing_began_is_not_drift() {
        let a = container("a", &[], "x");
        let b = container("b", &[], "x");
        let mut s = State::default();
        let seq0 = s.seq;
        // While the listing ran: a created (in the listing too), then
        // destroyed (so not in the inventory); b created after the listing.
        s.touch(&a.id);
        s.touch(&b.id);
        s.containers.insert(b.id.clone(), b.clone());
        let drift = correct(&mut s, vec![a.clone()], seq0);
        assert!(drift.is_empty(), "{drift:?}");
        assert!(!s.containers.contains_key(&a.id), "the later destroy wins");
        assert!(s.containers.contains_key(&b.id), "the later create wins");
    }

    #[test]
    fn reconnects_back_off_until_a_stream_stays_up() {
        let ms = Duration::from_millis;
        let reached = |stayed_up| Attempt::Reached { stayed_up };
        let mut b = Backoff::default();
        // Streams that ended at once, or listings that failed: the delay
        // doubles up to its cap (jitter left out: `unit` 1 keeps it all).
        let short = reached(Some(Duration::from_secs(1)));
        let delays: Vec<Duration> = (0..9).map(|_| b.next(short, 1.0)).collect();
        assert_eq!(
            delays,
            [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000].map(ms)
        );
        assert_eq!(b.next(reached(None), 1.0), RECONNECT_MAX);
        // Up for less than STABLE_AFTER is no better than not at all.
        assert_eq!(
            b.next(reached(Some(STABLE_AFTER - ms(1))), 1.0),
            RECONNECT_MAX
        );
        // A stream that stayed up: the next delay is the first again.
        assert_eq!(b.next(reached(Some(STABLE_AFTER)), 1.0), RECONNECT_FIRST);
        assert_eq!(b.next(short, 1.0), ms(1_000));
        // Jitter takes off at most half.
        let mut b = Backoff::default();
        assert_eq!(b.next(reached(None), 0.0), ms(250));
        assert_eq!(b.next(reached(None), 0.5), ms(750));
        assert_eq!(jittered(RECONNECT_MAX, 7.0), RECONNECT_MAX);
        assert_eq!(jittered(RECONNECT_MAX, -1.0), RECONNECT_MAX / 2);
    }

    #[test]
    fn an_unreachable_docker_is_retried_within_seconds() {
        let ms = Duration::from_millis;
        let mut b = Backoff::default();
        let delays: Vec<Duration> = (0..6).map(|_| b.next(Attempt::Unreachable, 1.0)).collect();
        assert_eq!(delays, [500, 1_000, 2_000, 4_000, 5_000, 5_000].map(ms));
        // Back (dockerd restarted), listed, and the stream ended at once:
        // the listings' own backoff, not inflated by the outage.
        let ended = Attempt::Reached {
            stayed_up: Some(ms(10)),
        };
        assert_eq!(b.next(ended, 1.0), ms(500));
        assert_eq!(b.next(ended, 1.0), ms(1_000));
        // Gone again: from the first delay again, and listings keep theirs.
        assert_eq!(b.next(Attempt::Unreachable, 1.0), ms(500));
        assert_eq!(b.next(ended, 1.0), ms(2_000));
    }

    #[test]
    fn the_jitter_is_spread_over_its_range() {
        let draws: Vec<f64> = (0..1_000).map(|_| random_unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        // Both halves drawn: 1000 draws all in one half has odds of 2^-999.
        assert!(draws.iter().any(|&u| u < 0.5) && draws.iter().any(|&u| u >= 0.5));
    }

    #[test]
    fn differences_the_policy_cares_about() {
        let a = container("a", &[("gestor.managed", "true")], "x");
        let mut b = a.clone();
        assert_eq!(differs(&a, &b), None);
        b.state = "exited".into();
        assert!(differs(&a, &b).unwrap().contains("state"));
        let mut c = a.clone();
        c.labels.insert("gestor.protected".into(), "true".into());
        assert!(differs(&a, &c).is_some());
    }

    /// Against the real engine (as in `tests/`: the Docker engine and the
    /// `gestor/stress` image that `make test` sets up): the follower panics
    /// while applying a real event, with the state locked. The inventory is
    /// stale at once, stays so while the restart is held back, and is fresh
    /// again once the restarted follower has listed; events are applied
    /// again after that.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs the Docker engine: make test-rust runs it (cargo test -- --include-ignored)"]
    async fn a_follower_that_panics_is_restarted_and_the_inventory_stale_until_it_lists() {
        use prometheus::{IntCounterVec, Opts};
        let tag = std::fs::read_to_string("/proc/sys/kernel/random/uuid").unwrap();
        let tag = &tag.trim()[..8];
        let scope = Containers(format!("gestor.scope=supervise-{tag}"));
        let poison = format!("poison-{tag}");
        let metrics = InventoryMetrics {
            drift: IntCounter::new("drift", "drift").unwrap(),
            resyncs: IntCounter::new("resyncs", "resyncs").unwrap(),
            events: IntCounterVec::new(Opts::new("events", "events"), &["action"]).unwrap(),
            stale: IntGauge::new("stale", "stale").unwrap(),
        };
        let cancel = CancellationToken::new();
        let docker = Arc::new(DockerClient::new("unix:///var/run/docker.sock"));
        let filters = vec![("gestor.scope".to_string(), format!("supervise-{tag}"))];
        let (mut follower, listed) =
            Follower::new(docker, filters, acts(), metrics.clone(), cancel.clone());
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        follower.faults = Faults {
            panic_on: Mutex::new(Some(poison.clone())),
            restart_gate: Some(gate.clone()),
        };
        let mut inventory = EventInventory::supervised(follower, listed, 1_000_000);

        let fresh = until(&mut inventory, "the first listing", |r| r.is_ok()).await;
        assert!(fresh.unwrap().is_empty());
        assert_eq!((metrics.resyncs.get(), metrics.stale.get()), (1, 0));

        scope.docker(&[
            "create", "--name", &poison, "--label", &scope.0, IMAGE, "true",
        ]);
        let why = until(&mut inventory, "the crash marked", |r| {
            r.as_ref().is_err_and(|e| e.contains("injected fault"))
        })
        .await
        .unwrap_err();
        assert!(
            why.contains("stale: the event follower crashed: injected fault: applying create"),
            "{why}"
        );
        assert_eq!(metrics.stale.get(), 1);
        // Held back: not restarted, not listed, still stale.
        assert_eq!(metrics.resyncs.get(), 1);
        assert!(inventory.containers().await.is_err());

        gate.add_permits(1);
        let fresh = until(&mut inventory, "the restarted follower's listing", |r| {
            r.is_ok()
        })
        .await
        .unwrap();
        assert_eq!(metrics.resyncs.get(), 2);
        assert_eq!(metrics.stale.get(), 0);
        assert_eq!(
            fresh.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            [poison.as_str()],
            "listed by the restarted follower"
        );
        // Following again: the removal arrives as an event.
        scope.docker(&["rm", &poison]);
        until(&mut inventory, "the removal applied", |r| {
            r.as_ref().is_ok_and(|cs| cs.is_empty())
        })
        .await
        .unwrap();
        assert_eq!(metrics.resyncs.get(), 2, "no listing since");
        cancel.cancel();
    }

    const IMAGE: &str = "gestor/stress:latest";

    /// The containers carrying one label; removed when dropped.
    struct Containers(String);

    impl Containers {
        fn docker(&self, args: &[&str]) {
            let out = std::process::Command::new("docker")
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "docker {args:?}: {out:?}");
        }
    }

    impl Drop for Containers {
        fn drop(&mut self) {
            let filter = format!("label={}", self.0);
            let _ = std::process::Command::new("sh")
                .args([
                    "-c",
                    "docker ps -aq --filter \"$1\" | xargs -r docker rm -f",
                    "sh",
                ])
                .arg(&filter)
                .output();
        }
    }

    /// Asks the inventory every 20 ms until `done` accepts its answer (or
    /// fails after 30 s).
    async fn until(
        inventory: &mut EventInventory,
        what: &str,
        done: impl Fn(&Result<Vec<ContainerInfo>, String>) -> bool,
    ) -> Result<Vec<ContainerInfo>, String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let r = inventory.containers().await;
            if done(&r) {
                return r;
            }
            assert!(tokio::time::Instant::now() < deadline, "no {what}: {r:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

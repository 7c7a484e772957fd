//! gestor: a container resource governor.
//!
//! Every cycle reads a sysinfo snapshot (from the kernel module's /proc file,
//! or from the userspace collector), joins it with Docker, decides which
//! stress containers to keep, stops and removes the others, and publishes
//! metrics and log records.
//!
//! The modules are listed in the order data flows through a cycle, after the
//! configuration every stage reads. A module uses only those listed above it
//! (`scripts/check_layers.py` checks this in `make lint`).

/// Settings: flags over environment over a TOML file, validated once.
pub mod config;

// The stages, in the order data flows through a cycle.
/// collect and measure: the snapshot (kernel module or procfs), per-container usage.
pub mod collect;
/// join: the containers Docker knows, where it placed them, the log service's container.
pub mod docker;
/// decide: the pure policy, a verdict and its reason for every container.
pub mod decide;
/// publish: /metrics.
pub mod metrics;
/// publish: log records, through a durable spool, to the log service.
pub mod ship;

// What runs the stages.
/// One cycle: collect, measure, decide, act, publish; its report.
pub mod cycle;
/// The HTTP side: /metrics, /healthz, /api/v1/state.
pub mod http;
/// The loop, the server, the shipper and the log service's container.
pub mod daemon;

pub use daemon::run;

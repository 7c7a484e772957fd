//! gestor: a container resource governor.
//!
//! Every cycle reads a sysinfo snapshot (from the kernel module's /proc file,
//! or from the userspace collector), joins it with Docker, decides which
//! stress containers to keep, stops and removes the others, and publishes
//! metrics and log records.

pub mod cgroup;
pub mod config;
pub mod container;
pub mod container_metrics;
pub mod cycle;
pub mod daemon;
pub mod docker;
pub mod endpoint;
pub mod http;
pub mod inventory;
pub mod metrics;
pub mod policy;
pub mod procfs;
pub mod records;
pub mod shipper;
pub mod snapshot;
pub mod source;
pub mod spool;
pub mod table;
pub mod usage;

pub use daemon::run;

//! gestor: a container resource governor.
//!
//! Every cycle reads a sysinfo snapshot (from the kernel module's /proc file,
//! or from the userspace collector), joins it with Docker, decides which
//! stress containers to keep, stops and removes the others, and publishes
//! metrics and log records.

pub mod cgroup;
pub mod procfs;
pub mod snapshot;

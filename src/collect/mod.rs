//! Stage 1, collect: a snapshot of the host's processes (from the kernel
//! module's /proc file, or from procfs when the module is not loaded), and
//! per-container usage measured between two snapshots.
//!
//! - `snapshot`: the document and its parser (pure);
//! - `source`: where snapshots come from, read within a bound;
//! - `procfs`: the userspace collector;
//! - `cgroup`: container IDs from cgroup paths (pure);
//! - `cgroupfs`: each container's own cgroup counters (CPU, tmpfs/shm);
//! - `pressure`: the host's pressure stall information (PSI);
//! - `usage`: per-container rates from two snapshots (pure).

pub mod cgroup;
pub mod cgroupfs;
pub mod pressure;
pub mod procfs;
pub mod snapshot;
pub mod source;
pub mod usage;

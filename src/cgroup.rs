//! Container IDs from cgroup paths (being written).

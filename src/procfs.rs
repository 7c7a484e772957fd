//! The userspace collector (being written).

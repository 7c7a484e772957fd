//! Stage 4, publish: log records for every decision, committed to a durable
//! spool and shipped to the log service.
//!
//! - `records`: the records (pure builders);
//! - `spool`: the write-ahead spool on disk;
//! - `lock`: one gestor per spool directory;
//! - `memory`: records waiting in memory when the spool cannot take them;
//! - `shared`: what the cycles, the sender and the spool thread share;
//! - `writer`: the spool's own thread, where all its file I/O happens;
//! - `journal`: a cycle's intents, on disk before it acts;
//! - `shipper`: delivery from the spool to the log service.

pub mod journal;
pub mod lock;
pub(crate) mod memory;
pub mod records;
pub(crate) mod shared;
pub mod shipper;
pub mod spool;
pub(crate) mod writer;

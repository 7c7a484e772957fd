//! Stage 4, publish: log records for every decision, committed to a durable
//! spool and shipped to the log service.
//!
//! - `records`: the records (pure builders);
//! - `spool`: the write-ahead spool on disk;
//! - `journal`: a cycle's intents, on disk before it acts;
//! - `shipper`: delivery from the spool to the log service.

pub mod journal;
pub mod records;
pub mod shipper;
pub mod spool;

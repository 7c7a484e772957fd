//! Stage 4, publish: log records for every decision, committed to a durable
//! spool and shipped to the log service.
//!
//! - `records`: the records (pure builders);
//! - `spool`: the write-ahead spool on disk;
//! - `shipper`: delivery from the spool to the log service.

pub mod records;
pub mod shipper;
pub mod spool;

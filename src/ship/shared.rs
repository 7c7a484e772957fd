//! What the cycles, the sender and the spool thread share: the memory
//! queue, the sender's wake-up, and the spool's figures as its thread last
//! published them (for the sender and the gauges). Nothing here is held
//! across a file operation.

use crate::metrics::Metrics;
use crate::ship::memory::MemoryQueue;
use crate::ship::records::Record;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

pub struct Shared {
    /// Batches the spool could not take, oldest first.
    pub memory: Mutex<MemoryQueue>,
    /// New records to send.
    pub wake: Notify,
    pub metrics: Arc<Metrics>,
    /// The spool's figures, as the spool thread last published them.
    spool_segments: AtomicUsize,
    spool_lines: AtomicUsize,
    spool_bytes: AtomicU64,
    /// Records of the segment being delivered that the service already has.
    in_flight: AtomicUsize,
}

impl Shared {
    pub fn new(metrics: Arc<Metrics>, memory_max_records: usize) -> Shared {
        Shared {
            memory: Mutex::new(MemoryQueue::new(memory_max_records)),
            wake: Notify::new(),
            metrics,
            spool_segments: AtomicUsize::new(0),
            spool_lines: AtomicUsize::new(0),
            spool_bytes: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Called by the spool thread after each change.
    pub fn publish_spool(&self, segments: usize, lines: usize, bytes: u64) {
        self.spool_segments.store(segments, Ordering::Relaxed);
        self.spool_lines.store(lines, Ordering::Relaxed);
        self.spool_bytes.store(bytes, Ordering::Relaxed);
        self.update_gauges();
    }

    pub fn set_in_flight(&self, delivered: usize) {
        self.in_flight.store(delivered, Ordering::Relaxed);
        self.update_gauges();
    }

    pub fn spool_segments(&self) -> usize {
        self.spool_segments.load(Ordering::Relaxed)
    }

    pub fn spool_lines(&self) -> usize {
        self.spool_lines.load(Ordering::Relaxed)
    }

    pub fn update_gauges(&self) {
        // Under the memory queue's lock, so that two threads' updates are
        // not interleaved.
        let memory = self.memory.lock().unwrap();
        let queued = (self.spool_lines() + memory.records())
            .saturating_sub(self.in_flight.load(Ordering::Relaxed));
        self.metrics.log_queue.set(queued as i64);
        self.metrics
            .log_spool_bytes
            .set(self.spool_bytes.load(Ordering::Relaxed) as i64);
    }

    pub fn drop_counted(&self, reason: &str, n: usize) {
        self.metrics
            .log_dropped
            .with_label_values(&[reason])
            .inc_by(n as u64);
    }

    /// Keeps records the spool could not take in memory, or drops and counts
    /// them past its bound.
    pub fn keep_in_memory(&self, records: Vec<Record>, why: &dyn std::fmt::Display) {
        let n = records.len();
        let pushed = self.memory.lock().unwrap().push(records);
        if pushed.is_err() {
            self.drop_counted("spool_io", n);
            tracing::error!(records = n, error = %why, "cannot write the log spool and memory is full; log records dropped");
        }
        self.update_gauges();
    }
}

//! The spool's own thread. Every write, fsync, read, rename and unlink of
//! the spool happens here, in order, never on the async runtime: on a host
//! whose disk is busy (disk-stress containers are the workload gestor
//! governs) one fsync can take seconds, and the runtime's two workers also
//! answer `/metrics` and `/healthz`. The cycles and the sender talk to the
//! thread through a queue and await its answers; no lock is held across any
//! file operation.

use crate::ship::lock::SpoolLock;
use crate::ship::records::Record;
use crate::ship::shared::Shared;
use crate::ship::spool::{Spool, SpoolError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// What the cycles and the sender ask of the spool.
pub enum Command {
    /// Make records durable (or keep them in memory when the disk cannot
    /// take them); answered once done.
    Commit {
        records: Vec<Record>,
        done: oneshot::Sender<()>,
    },
    /// The oldest segment that can be read now.
    ReadNext { reply: oneshot::Sender<NextSegment> },
    /// Every record of this segment is dealt with: delete it.
    Delivered { path: PathBuf },
    /// This segment's records are dealt with, but it held lines that are not
    /// records: move it aside.
    Corrupt { path: PathBuf },
    /// Try once more to write what waits in memory to the spool; answered
    /// once done.
    SpoolMemory { done: oneshot::Sender<()> },
    /// Gestor is stopping: release the spool (and its lock) and end the
    /// thread; answered once done.
    Close { done: oneshot::Sender<()> },
}

pub enum NextSegment {
    Ready {
        path: PathBuf,
        records: Vec<Record>,
        /// To be moved aside rather than deleted once dealt with.
        corrupt: bool,
    },
    /// Every segment waits to be read again; the first is due then.
    Waiting(Instant),
    Empty,
}

/// The way to the spool thread.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::UnboundedSender<Command>,
}

impl WriterHandle {
    /// Sends a command; gives it back when the thread is gone.
    pub fn send(&self, command: Command) -> Result<(), Command> {
        self.tx.send(command).map_err(|e| e.0)
    }

    /// The oldest readable segment; `Empty` when the thread is gone.
    pub async fn read_next(&self) -> NextSegment {
        let (reply, answer) = oneshot::channel();
        if self.send(Command::ReadNext { reply }).is_err() {
            return NextSegment::Empty;
        }
        answer.await.unwrap_or(NextSegment::Empty)
    }

    pub async fn spool_memory(&self) {
        let (done, answer) = oneshot::channel();
        if self.send(Command::SpoolMemory { done }).is_ok() {
            let _ = answer.await;
        }
    }

    /// Ends the spool thread, its lock released, once what was asked of it
    /// before is done.
    pub async fn close(&self) {
        let (done, answer) = oneshot::channel();
        if self.send(Command::Close { done }).is_ok() {
            let _ = answer.await;
        }
    }
}

/// Delays between reads of a segment that cannot be read.
#[derive(Debug, Clone, Copy)]
pub struct RetryDelays {
    pub min: Duration,
    pub max: Duration,
}

/// Starts the spool thread. With `lock` the spool directory is already
/// locked and is scanned there first; without, every commit tries to lock
/// it again.
pub fn start(
    dir: &Path,
    max_bytes: u64,
    lock: Option<SpoolLock>,
    shared: Arc<Shared>,
    delays: RetryDelays,
) -> std::io::Result<WriterHandle> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dir = dir.to_path_buf();
    std::thread::Builder::new()
        .name("gestor-spool".into())
        .spawn(move || {
            let spool = match lock {
                Some(lock) => Spool::locked(&dir, max_bytes, lock),
                None => Spool::detached(&dir, max_bytes),
            };
            let mut writer = Writer {
                spool,
                shared,
                delays,
                failing: None,
            };
            writer.publish();
            // The sender may have looked before the scan: what a previous
            // run left is there to send.
            writer.shared.wake.notify_one();
            while let Some(command) = rx.blocking_recv() {
                if let Command::Close { done } = command {
                    drop(writer);
                    let _ = done.send(());
                    return;
                }
                writer.handle(command);
                writer.publish();
            }
        })?;
    Ok(WriterHandle { tx })
}

struct Writer {
    spool: Spool,
    shared: Arc<Shared>,
    delays: RetryDelays,
    /// While writes fail: the error, logged once (and again if it changes).
    failing: Option<String>,
}

impl Writer {
    /// Carries out a command; the spool's figures are published before the
    /// answer, so that whoever awaited it sees them.
    fn handle(&mut self, command: Command) {
        match command {
            Command::Commit { records, done } => {
                self.commit(records);
                self.publish();
                let _ = done.send(());
            }
            Command::ReadNext { reply } => {
                let next = self.read_next();
                self.publish();
                let _ = reply.send(next);
            }
            Command::Delivered { path } => {
                self.spool.remove(&path);
                self.shared.set_in_flight(0);
            }
            Command::Corrupt { path } => {
                self.quarantine(&path);
                self.shared.set_in_flight(0);
            }
            Command::SpoolMemory { done } => {
                self.spool_memory();
                self.publish();
                let _ = done.send(());
            }
            Command::Close { done } => {
                let _ = done.send(());
            }
        }
    }

    fn publish(&self) {
        self.shared
            .publish_spool(self.spool.len(), self.spool.lines(), self.spool.bytes());
    }

    fn commit(&mut self, records: Vec<Record>) {
        let n = records.len();
        self.shared.metrics.log_records.inc_by(n as u64);
        match self.spool.append(&records) {
            Ok(()) => {
                if self.failing.take().is_some() {
                    tracing::info!(spool = %self.spool.dir().display(), "the log spool can be written again");
                }
                // Appended after this cycle's records: the log service
                // orders records by their time, not by arrival.
                self.spool_memory();
            }
            Err(SpoolError::Full { used, max }) => {
                self.shared.drop_counted("spool_full", n);
                tracing::error!(records = n, used, max, "log spool full; records dropped");
            }
            Err(e) => {
                self.shared.metrics.log_spool_write_errors.inc();
                self.write_failed(&e);
                self.shared.keep_in_memory(records, &e);
            }
        }
    }

    fn write_failed(&mut self, e: &SpoolError) {
        let text = e.to_string();
        if self.failing.as_deref() == Some(text.as_str()) {
            tracing::debug!(error = %text, "cannot write the log spool; records kept in memory");
            return;
        }
        let max = self.shared.memory.lock().unwrap().max_records();
        tracing::error!(
            spool = %self.spool.dir().display(),
            error = %text,
            memory_max_records = max,
            "cannot write the log spool ({text}): records are kept in memory, up to {max}, delivered from there, and written to the spool once it can be written again"
        );
        self.failing = Some(text);
    }

    /// Writes what waits in memory to the spool, as one segment.
    fn spool_memory(&mut self) {
        let (ids, records) = self.shared.memory.lock().unwrap().all();
        if records.is_empty() {
            return;
        }
        match self.spool.append(&records) {
            Ok(()) => {
                self.shared.memory.lock().unwrap().remove(&ids);
                tracing::info!(
                    records = records.len(),
                    "log records kept in memory are in the spool now"
                );
            }
            Err(e) => {
                tracing::debug!(error = %e, records = records.len(), "records kept in memory cannot go to the spool yet");
            }
        }
    }

    fn read_next(&mut self) -> NextSegment {
        let now = Instant::now();
        while let Some(seg) = self.spool.first_due(now) {
            let (path, lines) = (seg.path.clone(), seg.lines);
            match Spool::read(&path) {
                Ok(parsed) => {
                    if parsed.unparsed() > 0 {
                        self.shared.drop_counted("corrupt", parsed.unparsed());
                        tracing::error!(segment = %path.display(), lines = parsed.unparsed(), torn_last_line = parsed.torn_tail, "lines of the log spool that are not records skipped");
                    }
                    return NextSegment::Ready {
                        path,
                        corrupt: parsed.is_corrupt(),
                        records: parsed.records,
                    };
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.spool.forget(&path);
                    self.shared.drop_counted("spool_io", lines);
                    tracing::error!(segment = %path.display(), records = lines, "a spool segment vanished (deleted by something other than gestor); its records are lost");
                }
                Err(e) => {
                    self.shared.metrics.log_spool_read_errors.inc();
                    let delay = self
                        .spool
                        .defer(&path, now, self.delays.min, self.delays.max);
                    tracing::warn!(segment = %path.display(), error = %e, retry_in_s = delay.as_secs_f64(), "cannot read a spool segment now; it stays in the spool and is read again later");
                }
            }
        }
        match self.spool.earliest_retry() {
            Some(at) => NextSegment::Waiting(at),
            None => NextSegment::Empty,
        }
    }

    fn quarantine(&mut self, path: &Path) {
        self.shared.metrics.log_spool_corrupt.inc();
        match self.spool.quarantine(path) {
            Ok(aside) => tracing::error!(
                segment = %path.display(),
                moved_to = %aside.display(),
                "a corrupt spool segment (a complete line that is not a record) was moved aside; its records that parse were delivered"
            ),
            Err(e) => tracing::error!(
                segment = %path.display(),
                error = %e,
                "a corrupt spool segment cannot be moved aside; it stays, and is read again at the next start"
            ),
        }
    }
}

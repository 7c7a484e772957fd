//! Ships log records to the log service without ever delaying a cycle on
//! the network, and without losing what a cycle finished.
//!
//! A cycle commits its records to the write-ahead spool (`spool.rs`) before
//! it ends; a sender task delivers segments oldest first (POST /logs, in
//! batches) with retries and exponential backoff, and deletes each once the
//! service has acknowledged it. When the spool cannot be written (a full
//! disk), records wait in memory instead, up to a bound; past the spool's or
//! the memory's bound they are dropped and counted. The log service is
//! idempotent on record ids, so a batch sent again after a crash or a lost
//! answer adds nothing twice.

use crate::docker::log_service::LoggerEndpoint;
use crate::metrics::Metrics;
use crate::ship::records::Record;
use crate::ship::spool::{Spool, SpoolError};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct ShipperConfig {
    /// Where the log service is; records go to `<url>/logs`.
    pub endpoint: LoggerEndpoint,
    pub token: Option<String>,
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    /// Records kept in memory when the spool cannot be written.
    pub memory_max_records: usize,
    /// Records per POST.
    pub batch_max_records: usize,
    pub request_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// After the stop signal: how long the sender may still deliver.
    pub final_flush: Duration,
}

impl ShipperConfig {
    pub fn new(url: &str, token: Option<String>, spool_dir: PathBuf, spool_max_bytes: u64) -> Self {
        ShipperConfig {
            endpoint: LoggerEndpoint::fixed(url),
            token,
            spool_dir,
            spool_max_bytes,
            memory_max_records: 5_000,
            batch_max_records: 500,
            request_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            final_flush: Duration::from_secs(1),
        }
    }
}

/// What the cycles and the sender share.
struct Shared {
    spool: Mutex<Spool>,
    /// Batches the spool could not take (I/O errors), oldest first.
    memory: Mutex<VecDeque<Vec<Record>>>,
    /// New records to send.
    wake: Notify,
    metrics: Arc<Metrics>,
    memory_max_records: usize,
}

impl Shared {
    fn memory_records(&self) -> usize {
        self.memory.lock().unwrap().iter().map(Vec::len).sum()
    }

    fn update_gauges(&self, in_flight_done: usize) {
        let spool = self.spool.lock().unwrap();
        let queued = (spool.lines() + self.memory_records()).saturating_sub(in_flight_done);
        self.metrics.log_queue.set(queued as i64);
        self.metrics.log_spool_bytes.set(spool.bytes() as i64);
    }

    fn drop_counted(&self, reason: &str, n: usize) {
        self.metrics
            .log_dropped
            .with_label_values(&[reason])
            .inc_by(n as u64);
    }
}

/// The cycles' side: commits records, never waits on the network.
#[derive(Clone)]
pub struct ShipperHandle {
    shared: Arc<Shared>,
}

impl ShipperHandle {
    /// Makes a cycle's records durable in the spool (on a blocking thread:
    /// it fsyncs) and wakes the sender. When the spool cannot take them they
    /// wait in memory, or are dropped and counted past its bound.
    pub async fn commit(&self, records: Vec<Record>) {
        if records.is_empty() {
            return;
        }
        let shared = self.shared.clone();
        let done = tokio::task::spawn_blocking(move || commit_blocking(&shared, records)).await;
        if let Err(e) = done {
            tracing::error!(error = %e, "the spool writer failed");
        }
        self.shared.wake.notify_one();
    }
}

fn commit_blocking(shared: &Shared, records: Vec<Record>) {
    let n = records.len();
    shared.metrics.log_records.inc_by(n as u64);
    let written = shared.spool.lock().unwrap().append(&records);
    match written {
        Ok(()) => {}
        Err(SpoolError::Full { used, max }) => {
            shared.drop_counted("spool_full", n);
            tracing::error!(records = n, used, max, "log spool full; records dropped");
        }
        Err(e @ SpoolError::Io { .. }) => {
            let mut memory = shared.memory.lock().unwrap();
            let held: usize = memory.iter().map(Vec::len).sum();
            if held + n <= shared.memory_max_records {
                tracing::warn!(records = n, error = %e, "cannot write the log spool; records kept in memory");
                memory.push_back(records);
            } else {
                drop(memory);
                shared.drop_counted("spool_io", n);
                tracing::error!(records = n, error = %e, "cannot write the log spool and memory is full; log records dropped");
            }
        }
    }
    shared.update_gauges(0);
}

/// Starts the sender. It delivers until `stop` fires, then for at most
/// `final_flush` more; what is left stays in the spool for the next start.
pub fn spawn(
    config: ShipperConfig,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> (ShipperHandle, tokio::task::JoinHandle<()>) {
    let shared = Arc::new(Shared {
        spool: Mutex::new(Spool::open(&config.spool_dir, config.spool_max_bytes)),
        memory: Mutex::new(VecDeque::new()),
        wake: Notify::new(),
        metrics,
        memory_max_records: config.memory_max_records,
    });
    shared.update_gauges(0);
    let handle = ShipperHandle {
        shared: shared.clone(),
    };
    let task = tokio::spawn(async move {
        let mut sender = Sender::new(config, shared);
        sender.run(stop).await;
    });
    (handle, task)
}

/// The result of one POST.
enum Delivery {
    Delivered,
    /// Worth trying again later (network error, 5xx, 401/403, 408, 429).
    Retry(String),
    /// The service refuses these records for good (other 4xx).
    Rejected(String),
    /// The batch was above the service's body limit (413).
    TooLarge,
}

/// Where the next batch comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Spool,
    Memory,
}

struct Sender {
    config: ShipperConfig,
    shared: Arc<Shared>,
    client: reqwest::Client,
    /// The front spool segment, parsed once (its corrupt lines counted once),
    /// and how many of its records are dealt with.
    front: Option<(PathBuf, Vec<Record>)>,
    offset: usize,
    backoff: Duration,
    next_attempt: Instant,
    batch_limit: usize,
}

impl Sender {
    fn new(config: ShipperConfig, shared: Arc<Shared>) -> Sender {
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("an HTTP client without TLS builds");
        Sender {
            backoff: config.backoff_min,
            batch_limit: config.batch_max_records,
            config,
            shared,
            client,
            front: None,
            offset: 0,
            next_attempt: Instant::now(),
        }
    }

    fn pending(&self) -> bool {
        !self.shared.spool.lock().unwrap().is_empty() || self.shared.memory_records() > 0
    }

    fn update_gauges(&self) {
        self.shared.update_gauges(self.offset);
    }

    /// The next batch to send, oldest first: the front spool segment (in
    /// chunks of `batch_limit`), then what waits in memory.
    fn next_batch(&mut self) -> Option<(Source, Vec<Record>)> {
        loop {
            let mut spool = self.shared.spool.lock().unwrap();
            let Some(seg) = spool.front() else { break };
            let path = seg.path.clone();
            if self.front.as_ref().map(|(p, _)| p) != Some(&path) {
                let parsed = spool.read_front().expect("a front segment");
                if parsed.corrupt > 0 {
                    tracing::error!(segment = %path.display(), lines = parsed.corrupt, "corrupt lines in the log spool skipped");
                    self.shared.drop_counted("corrupt", parsed.corrupt);
                }
                self.front = Some((path, parsed.records));
                self.offset = 0;
            }
            let records = &self.front.as_ref().unwrap().1;
            if self.offset >= records.len() {
                spool.pop_front();
                self.front = None;
                self.offset = 0;
                continue;
            }
            let end = (self.offset + self.batch_limit).min(records.len());
            return Some((Source::Spool, records[self.offset..end].to_vec()));
        }
        let memory = self.shared.memory.lock().unwrap();
        let front = memory.front()?;
        Some((
            Source::Memory,
            front[..self.batch_limit.min(front.len())].to_vec(),
        ))
    }

    /// Takes the `n` oldest records of `source` off the queue.
    fn consume(&mut self, source: Source, n: usize) {
        match source {
            Source::Spool => {
                self.offset += n;
                let done = self
                    .front
                    .as_ref()
                    .is_some_and(|(_, r)| self.offset >= r.len());
                if done {
                    self.shared.spool.lock().unwrap().pop_front();
                    self.front = None;
                    self.offset = 0;
                }
            }
            Source::Memory => {
                let mut memory = self.shared.memory.lock().unwrap();
                if let Some(front) = memory.front_mut() {
                    front.drain(..n.min(front.len()));
                    if front.is_empty() {
                        memory.pop_front();
                    }
                }
            }
        }
    }

    async fn post(&self, records: &[Record]) -> Delivery {
        let Some(base) = self.config.endpoint.current() else {
            return Delivery::Retry(
                "the log service's address is not known yet (its container is being set up)".into(),
            );
        };
        let mut req = self.client.post(format!("{base}/logs")).json(records);
        if let Some(token) = &self.config.token {
            req = req.bearer_auth(token);
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                if status.is_success() {
                    return Delivery::Delivered;
                }
                let body = resp.text().await.unwrap_or_default();
                let body: String = body.chars().take(300).collect();
                let msg = format!("{base}/logs answered {status}: {body}");
                match status.as_u16() {
                    413 => Delivery::TooLarge,
                    401 | 403 | 408 | 429 => Delivery::Retry(msg),
                    400..=499 => Delivery::Rejected(msg),
                    _ => Delivery::Retry(msg),
                }
            }
            Err(e) => {
                if e.is_connect() {
                    self.config.endpoint.report_unreachable();
                }
                Delivery::Retry(format!("{base}/logs: {e}"))
            }
        }
    }

    /// Sends the oldest batch. Returns false when the service could not take
    /// it (back off before the next attempt).
    async fn attempt(&mut self) -> bool {
        let Some((source, batch)) = self.next_batch() else {
            return true;
        };
        let n = batch.len();
        match self.post(&batch).await {
            Delivery::Delivered => {
                self.shared.metrics.log_sent.inc_by(n as u64);
                self.consume(source, n);
                self.backoff = self.config.backoff_min;
                self.batch_limit = self.config.batch_max_records;
                true
            }
            Delivery::Rejected(msg) => {
                tracing::error!(records = n, error = %msg, "the log service rejected records; dropped");
                self.shared.drop_counted("rejected", n);
                self.consume(source, n);
                true
            }
            Delivery::TooLarge if n > 1 => {
                self.batch_limit = (n / 2).max(1);
                tracing::warn!(
                    limit = self.batch_limit,
                    "log batch too large; sending smaller batches"
                );
                true
            }
            Delivery::TooLarge => {
                tracing::error!("one log record is above the service's body limit; dropped");
                self.shared.drop_counted("rejected", n);
                self.consume(source, n);
                true
            }
            Delivery::Retry(msg) => {
                self.shared.metrics.log_retried.inc_by(n as u64);
                tracing::warn!(
                    retry_in_ms = self.backoff.as_millis() as u64,
                    error = %msg,
                    "log service unavailable; records kept for a retry"
                );
                self.next_attempt = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(self.config.backoff_max);
                false
            }
        }
    }

    async fn run(&mut self, stop: CancellationToken) {
        loop {
            if self.pending() && Instant::now() >= self.next_attempt {
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => break,
                    _ = self.attempt() => {}
                }
                self.update_gauges();
                continue;
            }
            let wait = if self.pending() {
                self.next_attempt
            } else {
                Instant::now() + Duration::from_secs(3600)
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.shared.wake.notified() => {}
                _ = tokio::time::sleep_until(wait) => {}
            }
        }
        // Stopping: the last cycle has committed. Deliver what the service
        // takes within the bound; the rest waits in the spool.
        let limit = self.config.final_flush;
        let flush = async { while self.pending() && self.attempt().await {} };
        let _ = tokio::time::timeout(limit, flush).await;
        self.update_gauges();
        let left = self
            .shared
            .spool
            .lock()
            .unwrap()
            .lines()
            .saturating_sub(self.offset);
        if left > 0 {
            tracing::info!(records = left, spool = %self.config.spool_dir.display(), "undelivered log records kept in the spool for the next start");
        }
        let in_memory = self.shared.memory_records();
        if in_memory > 0 {
            tracing::error!(
                records = in_memory,
                "log records that could not be spooled are lost at shutdown"
            );
            self.shared.drop_counted("spool_io", in_memory);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ship::spool::tests::records;
    use std::path::Path;

    /// A stand-in log service on loopback: answers each POST with the next
    /// status from `script` (then 200), stores what it accepts with a 200,
    /// and answers 413 to bodies of more than `max_records`.
    struct FakeService {
        url: String,
        stored: Arc<std::sync::Mutex<Vec<String>>>,
    }

    type FakeState = (
        Arc<std::sync::Mutex<Vec<String>>>,
        Arc<std::sync::Mutex<VecDeque<u16>>>,
    );

    async fn fake_service(script: Vec<u16>, max_records: usize) -> FakeService {
        use axum::http::StatusCode;
        let stored = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let script = Arc::new(std::sync::Mutex::new(VecDeque::from(script)));
        let state = (stored.clone(), script);
        let app = axum::Router::new()
            .route(
                "/logs",
                axum::routing::post(
                    move |axum::extract::State((stored, script)): axum::extract::State<
                        FakeState,
                    >,
                          axum::Json(batch): axum::Json<Vec<Record>>| async move {
                        if batch.len() > max_records {
                            return StatusCode::PAYLOAD_TOO_LARGE;
                        }
                        let code = script.lock().unwrap().pop_front().unwrap_or(200);
                        if code == 200 {
                            let mut s = stored.lock().unwrap();
                            for r in batch {
                                if !s.contains(&r.id) {
                                    s.push(r.id);
                                }
                            }
                        }
                        StatusCode::from_u16(code).unwrap()
                    },
                ),
            )
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeService { url, stored }
    }

    fn config(url: &str, spool: &Path) -> ShipperConfig {
        let mut c = ShipperConfig::new(url, None, spool.to_path_buf(), 1 << 20);
        c.backoff_min = Duration::from_millis(10);
        c.backoff_max = Duration::from_millis(40);
        c.memory_max_records = 8;
        c.batch_max_records = 4;
        c
    }

    /// Starts a shipper towards `url`, spooling in `spool`.
    fn start(
        url: &str,
        spool: &Path,
        metrics: &Arc<Metrics>,
    ) -> (
        ShipperHandle,
        tokio::task::JoinHandle<()>,
        CancellationToken,
    ) {
        let cancel = CancellationToken::new();
        let (h, task) = spawn(config(url, spool), metrics.clone(), cancel.clone());
        (h, task, cancel)
    }

    async fn wait_stored(svc: &FakeService, n: usize) -> Vec<String> {
        for _ in 0..300 {
            if svc.stored.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        svc.stored.lock().unwrap().clone()
    }

    fn ids(rs: &[Record]) -> Vec<String> {
        rs.iter().map(|r| r.id.clone()).collect()
    }

    #[tokio::test]
    async fn retries_until_delivered_in_order_once() {
        let svc = fake_service(vec![503, 500, 503], 100).await;
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new("t"));
        let (h, task, cancel) = start(&svc.url, dir.path(), &metrics);
        let rs = records(10);
        h.commit(rs[..3].to_vec()).await;
        h.commit(rs[3..].to_vec()).await;
        assert_eq!(wait_stored(&svc, 10).await, ids(&rs));
        assert!(metrics.log_retried.get() >= 3);
        assert_eq!(metrics.log_sent.get(), 10);
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_batch_too_large_is_split_and_a_rejected_one_is_counted() {
        let svc = fake_service(vec![], 1).await;
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new("t"));
        let (h, task, cancel) = start(&svc.url, dir.path(), &metrics);
        let rs = records(5);
        h.commit(rs.clone()).await;
        assert_eq!(wait_stored(&svc, 5).await, ids(&rs));
        cancel.cancel();
        task.await.unwrap();

        let svc = fake_service(vec![422], 100).await;
        let (h, task, cancel) = start(&svc.url, dir.path(), &metrics);
        h.commit(records(2)).await;
        for _ in 0..300 {
            if metrics.log_dropped.with_label_values(&["rejected"]).get() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            metrics.log_dropped.with_label_values(&["rejected"]).get(),
            2
        );
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn undelivered_records_survive_a_restart_through_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let dead = format!("http://127.0.0.1:{}", {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        });
        let metrics = Arc::new(Metrics::new("t"));
        let (h, task, cancel) = start(&dead, dir.path(), &metrics);
        let rs = records(20);
        for chunk in rs.chunks(3) {
            h.commit(chunk.to_vec()).await;
            // Committed means on disk, before any delivery.
        }
        assert_eq!(Spool::open(dir.path(), 1 << 20).lines(), 20);
        cancel.cancel();
        task.await.unwrap();
        assert_eq!(Spool::open(dir.path(), 1 << 20).lines(), 20);

        // Next start, the service is back: everything, oldest first, once.
        let svc = fake_service(vec![], 100).await;
        let (h, task, cancel) = start(&svc.url, dir.path(), &metrics);
        let more = records(2);
        h.commit(more.clone()).await;
        let mut want = ids(&rs);
        want.extend(ids(&more));
        assert_eq!(wait_stored(&svc, 22).await, want);
        cancel.cancel();
        task.await.unwrap();
        assert_eq!(Spool::open(dir.path(), 1 << 20).lines(), 0);
    }
}

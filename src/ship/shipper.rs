//! Ships log records to the log service without ever delaying a cycle on
//! the network, and without losing what a cycle finished.
//!
//! A cycle commits its records to the write-ahead spool (`spool.rs`, on its
//! own thread: `writer.rs`) before it ends; a sender task delivers segments
//! oldest first (POST /logs, in batches) with retries and exponential
//! backoff, and has each deleted once the service has acknowledged it. When
//! the spool cannot be written (a read-only or full disk), records wait in
//! memory instead, up to a bound, and go to the spool as soon as it can be
//! written again; past the spool's or the memory's bound they are dropped
//! and counted. The log service is idempotent on record ids, so a batch sent
//! again after a crash or a lost answer adds nothing twice.

use crate::docker::log_service::LoggerEndpoint;
use crate::metrics::Metrics;
use crate::ship::lock::{LockError, SpoolLock};
use crate::ship::records::Record;
use crate::ship::shared::Shared;
use crate::ship::writer::{self, Command, NextSegment, RetryDelays, WriterHandle};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
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

/// The cycles' side: commits records, never waits on the network.
#[derive(Clone)]
pub struct ShipperHandle {
    shared: Arc<Shared>,
    writer: WriterHandle,
}

impl ShipperHandle {
    /// Makes a cycle's records durable in the spool (on the spool's own
    /// thread: it fsyncs) and wakes the sender; returns once they are on
    /// disk. When the spool cannot take them they wait in memory, or are
    /// dropped and counted past its bound.
    pub async fn commit(&self, records: Vec<Record>) {
        if records.is_empty() {
            return;
        }
        let (done, committed) = oneshot::channel();
        match self.writer.send(Command::Commit { records, done }) {
            Ok(()) => {
                if committed.await.is_err() {
                    // Only a panic on the spool thread gets here.
                    tracing::error!(
                        "the spool thread stopped during a commit; its records may be lost"
                    );
                }
            }
            Err(Command::Commit { records, .. }) => {
                // Only after the shipper has stopped, which follows the last
                // cycle: a caller's mistake, counted.
                let n = records.len();
                self.shared.metrics.log_records.inc_by(n as u64);
                self.shared.drop_counted("spool_io", n);
                tracing::error!(
                    records = n,
                    "log records committed after the shipper stopped; dropped"
                );
            }
            Err(_) => unreachable!("send gives back the command it was given"),
        }
        self.shared.wake.notify_one();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Another gestor holds the spool directory.
    #[error(transparent)]
    Locked(LockError),
    #[error("cannot start the spool thread: {0}")]
    Thread(std::io::Error),
}

/// Locks the spool directory and starts the spool thread and the sender. The
/// sender delivers until `stop` fires, then for at most `final_flush` more;
/// what is left stays in the spool for the next start. Fails when another
/// gestor holds the spool directory; a directory that cannot be created is
/// not an error (records wait in memory, and the spool is tried again at
/// each commit).
pub fn spawn(
    config: ShipperConfig,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> Result<(ShipperHandle, tokio::task::JoinHandle<()>), StartError> {
    let lock = match SpoolLock::acquire(&config.spool_dir) {
        Ok(lock) => Some(lock),
        Err(e @ LockError::Busy { .. }) => return Err(StartError::Locked(e)),
        Err(e) => {
            tracing::error!(error = %e, "cannot open the log spool; undelivered records are kept in memory until it can be");
            None
        }
    };
    let shared = Arc::new(Shared::new(metrics, config.memory_max_records));
    let delays = RetryDelays {
        min: config.backoff_min,
        max: config.backoff_max,
    };
    let writer = writer::start(
        &config.spool_dir,
        config.spool_max_bytes,
        lock,
        shared.clone(),
        delays,
    )
    .map_err(StartError::Thread)?;
    let handle = ShipperHandle {
        shared: shared.clone(),
        writer: writer.clone(),
    };
    let task = tokio::spawn(async move {
        let mut sender = Sender::new(config, shared, writer);
        sender.run(stop).await;
    });
    Ok((handle, task))
}

/// The result of one POST.
enum Delivery {
    /// Taken; the service may have refused some records of the batch one by
    /// one (`rejected`: a description of each), storing the others.
    Delivered { rejected: Vec<String> },
    /// Worth trying again later (network error, 5xx, 401/403, 408, 429).
    Retry(String),
    /// The service refuses these records for good (other 4xx).
    Rejected(String),
    /// The batch was above the service's body limit (413).
    TooLarge,
}

/// Where a batch comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Spool,
    /// The memory queue's batch of that id.
    Memory(u64),
}

/// The spool segment being delivered, read once (its bad lines counted
/// once).
struct Front {
    path: PathBuf,
    records: Vec<Record>,
    corrupt: bool,
}

struct Sender {
    config: ShipperConfig,
    shared: Arc<Shared>,
    writer: WriterHandle,
    client: reqwest::Client,
    front: Option<Front>,
    /// How many of the front's records are dealt with.
    offset: usize,
    /// When every segment left waits to be read again, the first is due.
    spool_due: Option<Instant>,
    backoff: Duration,
    next_attempt: Instant,
    batch_limit: usize,
}

impl Sender {
    fn new(config: ShipperConfig, shared: Arc<Shared>, writer: WriterHandle) -> Sender {
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
            writer,
            client,
            front: None,
            offset: 0,
            spool_due: None,
            next_attempt: Instant::now(),
        }
    }

    /// The next batch to send: the oldest readable spool segment (in chunks
    /// of `batch_limit`), then what waits in memory.
    async fn next_batch(&mut self) -> Option<(Source, Vec<Record>)> {
        loop {
            if let Some(front) = &self.front {
                if self.offset < front.records.len() {
                    let end = (self.offset + self.batch_limit).min(front.records.len());
                    return Some((Source::Spool, front.records[self.offset..end].to_vec()));
                }
                self.finish_front();
                continue;
            }
            self.spool_due = None;
            if self.shared.spool_segments() > 0 {
                match self.writer.read_next().await {
                    NextSegment::Ready {
                        path,
                        records,
                        corrupt,
                    } => {
                        self.front = Some(Front {
                            path,
                            records,
                            corrupt,
                        });
                        self.offset = 0;
                        continue;
                    }
                    NextSegment::Waiting(at) => self.spool_due = Some(Instant::from_std(at)),
                    NextSegment::Empty => {}
                }
            }
            break;
        }
        let (id, batch) = self.shared.memory.lock().unwrap().front(self.batch_limit)?;
        Some((Source::Memory(id), batch))
    }

    /// The front segment is dealt with: the spool thread deletes it (or
    /// moves it aside). Its answer is not awaited: the next read is queued
    /// behind it.
    fn finish_front(&mut self) {
        if let Some(front) = self.front.take() {
            let command = if front.corrupt {
                Command::Corrupt { path: front.path }
            } else {
                Command::Delivered { path: front.path }
            };
            let _ = self.writer.send(command);
        }
        self.offset = 0;
    }

    /// Takes the `n` oldest records of `source` off the queue.
    fn consume(&mut self, source: Source, n: usize) {
        match source {
            Source::Spool => {
                self.offset += n;
                self.shared.set_in_flight(self.offset);
                if self
                    .front
                    .as_ref()
                    .is_some_and(|f| self.offset >= f.records.len())
                {
                    self.finish_front();
                }
            }
            Source::Memory(id) => {
                self.shared.memory.lock().unwrap().consume(id, n);
                self.shared.update_gauges();
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
                    let body = resp.text().await.unwrap_or_default();
                    return Delivery::Delivered {
                        rejected: rejected_records(&body),
                    };
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

    /// Sends one batch. Returns false when the service could not take it
    /// (back off before the next attempt).
    async fn deliver(&mut self, source: Source, batch: Vec<Record>) -> bool {
        let n = batch.len();
        match self.post(&batch).await {
            Delivery::Delivered { rejected } => {
                if !rejected.is_empty() {
                    // Refused one by one: final (sending them again cannot
                    // succeed); the rest of the batch is stored.
                    tracing::error!(records = rejected.len(), of = n, refused = %rejected.join("; "), "the log service refused records of a batch; dropped");
                    self.shared.drop_counted("rejected", rejected.len());
                }
                self.shared
                    .metrics
                    .log_sent
                    .inc_by((n - rejected.len().min(n)) as u64);
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

    /// Sends the next batch, if there is one now; false when there is none.
    async fn attempt(&mut self) -> bool {
        match self.next_batch().await {
            Some((source, batch)) => {
                self.deliver(source, batch).await;
                true
            }
            None => false,
        }
    }

    async fn run(&mut self, stop: CancellationToken) {
        loop {
            if Instant::now() >= self.next_attempt {
                let sent = tokio::select! {
                    biased;
                    _ = stop.cancelled() => break,
                    sent = self.attempt() => sent,
                };
                if sent {
                    continue;
                }
            }
            // Nothing to send now: wait for new records, the end of the
            // backoff, or a segment due to be read again.
            let far = Instant::now() + Duration::from_secs(3600);
            let wait = if self.next_attempt > Instant::now() {
                self.next_attempt
            } else {
                self.spool_due.unwrap_or(far).min(far)
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
        let flush = async {
            while let Some((source, batch)) = self.next_batch().await {
                if !self.deliver(source, batch).await {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(limit, flush).await;
        // What waits in memory gets one more chance at the disk.
        if !self.shared.memory.lock().unwrap().is_empty() {
            let _ = tokio::time::timeout(limit, self.writer.spool_memory()).await;
        }
        let left = self.shared.spool_lines().saturating_sub(self.offset);
        if left > 0 {
            tracing::info!(records = left, spool = %self.config.spool_dir.display(), "undelivered log records kept in the spool for the next start");
        }
        let in_memory = self.shared.memory.lock().unwrap().records();
        if in_memory > 0 {
            tracing::error!(
                records = in_memory,
                spool = %self.config.spool_dir.display(),
                "log records that could not be spooled are lost at shutdown"
            );
            self.shared.drop_counted("spool_io", in_memory);
        }
        // Released now rather than at exit, so that a gestor started next
        // (or a test's next shipper) finds the spool free.
        self.writer.close().await;
    }
}

/// The records a 2xx answer says were refused one by one (the log service
/// answers `{"received", "stored", "duplicates", "rejected": [{"index",
/// "id", "errors"}]}`), each as "id: why"; none when the answer says
/// nothing of it (an older service, an empty body).
fn rejected_records(body: &str) -> Vec<String> {
    let Ok(answer) = serde_json::from_str::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let Some(list) = answer.get("rejected").and_then(|r| r.as_array()) else {
        return Vec::new();
    };
    list.iter()
        .map(|r| {
            let id = r.get("id").and_then(|i| i.as_str()).map_or_else(
                || format!("#{}", r.get("index").unwrap_or(&serde_json::Value::Null)),
                String::from,
            );
            let why: String = r.get("errors").map(|e| e.to_string()).unwrap_or_default();
            format!("{id}: {}", why.chars().take(300).collect::<String>())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ship::spool::tests::{files, records};
    use crate::ship::spool::Spool;
    use std::collections::VecDeque;
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
        let (h, task) = spawn(config(url, spool), metrics.clone(), cancel.clone()).unwrap();
        (h, task, cancel)
    }

    /// What the service stored once it holds `n` records, or after 60 s
    /// (a deadline for a failing test only: a loaded machine may take
    /// seconds, and a fixed 3 s failed such a run).
    async fn wait_stored(svc: &FakeService, n: usize) -> Vec<String> {
        let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::time::Instant::now() < give_up {
            if svc.stored.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        svc.stored.lock().unwrap().clone()
    }

    /// Records in the spool's segment files, read without its lock (the
    /// shipper under test holds it).
    fn records_on_disk(dir: &Path) -> usize {
        files(dir)
            .iter()
            .filter(|n| n.ends_with(".jsonl"))
            .map(|n| Spool::read(&dir.join(n)).unwrap().records.len())
            .sum()
    }

    /// A loopback port bound but never listening, for as long as it lives:
    /// every connection to it is refused.
    struct DeadPort(socket2::Socket);

    impl DeadPort {
        fn new() -> DeadPort {
            use socket2::{Domain, Socket, Type};
            let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            let addr: std::net::SocketAddr = ([127, 0, 0, 1], 0).into();
            socket.bind(&addr.into()).unwrap();
            DeadPort(socket)
        }

        fn url(&self) -> String {
            let port = self.0.local_addr().unwrap().as_socket().unwrap().port();
            format!("http://127.0.0.1:{port}")
        }
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
        // The service stores a batch before the sender reads its answer.
        until("every record acknowledged", || metrics.log_sent.get() >= 10).await;
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
        // Delivered and deleted, so the next shipper starts empty.
        until("an empty spool", || files(dir.path()).is_empty()).await;
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

    #[test]
    fn a_partly_refused_batch_names_each_refused_record() {
        let body = r#"{"received": 3, "stored": 1, "duplicates": 0, "rejected": [
            {"index": 1, "id": "r-1", "errors": [{"loc": ["cpu_ratio"], "msg": "not finite"}]},
            {"index": 2, "id": null, "errors": []}]}"#;
        let got = rejected_records(body);
        assert_eq!(got.len(), 2);
        assert!(
            got[0].starts_with("r-1: ") && got[0].contains("not finite"),
            "{got:?}"
        );
        assert!(got[1].starts_with("#2: "), "{got:?}");
        assert!(rejected_records("{\"stored\": 3}").is_empty());
        assert!(rejected_records("").is_empty());
    }

    /// A log service that stores a batch but refuses its second record.
    async fn refusing_service() -> (String, Arc<std::sync::Mutex<usize>>) {
        let calls = Arc::new(std::sync::Mutex::new(0usize));
        let seen = calls.clone();
        let app = axum::Router::new().route(
            "/logs",
            axum::routing::post(move |axum::Json(batch): axum::Json<Vec<Record>>| {
                let seen = seen.clone();
                async move {
                    *seen.lock().unwrap() += 1;
                    axum::Json(serde_json::json!({
                        "received": batch.len(),
                        "stored": batch.len() - 1,
                        "duplicates": 0,
                        "rejected": [{"index": 1, "id": batch[1].id, "errors": [{"msg": "bad"}]}],
                    }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, calls)
    }

    #[tokio::test]
    async fn one_refused_record_costs_only_itself() {
        let (url, calls) = refusing_service().await;
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new("t"));
        let (h, task, cancel) = start(&url, dir.path(), &metrics);
        h.commit(records(3)).await;
        until("the batch sent", || metrics.log_sent.get() == 2).await;
        assert_eq!(
            metrics.log_dropped.with_label_values(&["rejected"]).get(),
            1
        );
        // Not sent again: the refusal is final, the batch delivered.
        until("an empty spool", || files(dir.path()).is_empty()).await;
        assert_eq!(*calls.lock().unwrap(), 1);
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn undelivered_records_survive_a_restart_through_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let dead_port = DeadPort::new();
        let dead = dead_port.url();
        let metrics = Arc::new(Metrics::new("t"));
        let (h, task, cancel) = start(&dead, dir.path(), &metrics);
        let rs = records(20);
        for chunk in rs.chunks(3) {
            h.commit(chunk.to_vec()).await;
            // Committed means on disk, before any delivery.
        }
        assert_eq!(records_on_disk(dir.path()), 20);
        cancel.cancel();
        task.await.unwrap();
        assert_eq!(records_on_disk(dir.path()), 20);

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
        assert_eq!(records_on_disk(dir.path()), 0);
    }

    /// Waits (polling) until `ok` holds, at most 3 s.
    async fn until(what: &str, mut ok: impl FnMut() -> bool) {
        for _ in 0..300 {
            if ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test]
    async fn a_second_shipper_on_the_same_spool_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let dead = DeadPort::new();
        let metrics = Arc::new(Metrics::new("t"));
        let (_h, task, cancel) = start(&dead.url(), dir.path(), &metrics);
        let second = spawn(
            config(&dead.url(), dir.path()),
            metrics.clone(),
            CancellationToken::new(),
        );
        let Err(StartError::Locked(e)) = second else {
            panic!("a second shipper started on a locked spool");
        };
        assert!(e.to_string().contains("in use by another gestor"), "{e}");
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn records_kept_in_memory_go_to_the_spool_once_it_can_be_written() {
        let root = tempfile::tempdir().unwrap();
        // A file where the spool's parent directory should be: the spool
        // cannot be created, so it cannot be locked nor written.
        let blocker = root.path().join("parent");
        std::fs::write(&blocker, "").unwrap();
        let dir = blocker.join("spool");
        let dead = DeadPort::new();
        let metrics = Arc::new(Metrics::new("t"));
        let (h, task, cancel) = start(&dead.url(), &dir, &metrics);
        let rs = records(5);
        h.commit(rs[..3].to_vec()).await;
        assert_eq!(metrics.log_spool_write_errors.get(), 1);
        assert_eq!(metrics.log_queue.get(), 3, "held in memory");
        std::fs::remove_file(&blocker).unwrap();
        h.commit(rs[3..].to_vec()).await;
        // Committed: the new records and those that waited are on disk.
        let mut on_disk: Vec<String> = files(&dir)
            .iter()
            .flat_map(|n| Spool::read(&dir.join(n)).unwrap().records)
            .map(|r| r.id)
            .collect();
        on_disk.sort();
        let mut want = ids(&rs);
        want.sort();
        assert_eq!(on_disk, want);
        assert_eq!(metrics.log_queue.get(), 5);
        assert_eq!(
            metrics.log_dropped.with_label_values(&["spool_io"]).get(),
            0
        );
        cancel.cancel();
        task.await.unwrap();
        // Nothing was left in memory to lose at shutdown.
        assert_eq!(
            metrics.log_dropped.with_label_values(&["spool_io"]).get(),
            0
        );
    }

    #[tokio::test]
    async fn an_unreadable_segment_is_retried_and_a_corrupt_one_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let rs = records(6);
        let line = |r: &Record| serde_json::to_string(r).unwrap() + "\n";
        // Oldest: a directory where a segment should be (cannot be read).
        let unreadable = dir.path().join("00000000000000000001-2.jsonl");
        std::fs::create_dir(&unreadable).unwrap();
        // Then a segment with a complete line that is not a record.
        let corrupt = dir.path().join("00000000000000000002-3.jsonl");
        std::fs::write(&corrupt, line(&rs[0]) + "{oops}\n" + &line(&rs[1])).unwrap();
        // Then a good one.
        std::fs::write(
            dir.path().join("00000000000000000003-1.jsonl"),
            line(&rs[2]),
        )
        .unwrap();
        let svc = fake_service(vec![], 100).await;
        let metrics = Arc::new(Metrics::new("t"));
        let (h, task, cancel) = start(&svc.url, dir.path(), &metrics);
        // What can be read is delivered past the one that cannot.
        assert_eq!(wait_stored(&svc, 3).await, ids(&rs[..3]));
        until("the corrupt segment moved aside", || {
            metrics.log_spool_corrupt.get() == 1
                && dir
                    .path()
                    .join("00000000000000000002-3.jsonl.corrupt")
                    .exists()
        })
        .await;
        assert!(!corrupt.exists());
        assert_eq!(metrics.log_dropped.with_label_values(&["corrupt"]).get(), 1);
        // The unreadable one is read again and again, never deleted.
        until("several reads of the unreadable segment", || {
            metrics.log_spool_read_errors.get() >= 3
        })
        .await;
        assert!(unreadable.is_dir());
        // Once it can be read, it is delivered.
        std::fs::remove_dir(&unreadable).unwrap();
        std::fs::write(&unreadable, line(&rs[3]) + &line(&rs[4])).unwrap();
        h.commit(rs[5..].to_vec()).await;
        let mut stored = wait_stored(&svc, 6).await;
        stored.sort();
        let mut want = ids(&rs);
        want.sort();
        assert_eq!(stored, want);
        until("an empty spool", || files(dir.path()).len() == 1).await;
        assert_eq!(
            files(dir.path()),
            vec!["00000000000000000002-3.jsonl.corrupt"]
        );
        cancel.cancel();
        task.await.unwrap();
    }

    /// A commit whose write hangs (here: the segment's temporary name is a
    /// FIFO nobody reads, so opening it blocks) must not stop the runtime.
    /// When the spool's I/O ran under a lock the sender took on the runtime,
    /// a single-threaded runtime stopped dead here.
    #[test]
    fn a_spool_write_that_hangs_does_not_stop_the_runtime() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let beats = Arc::new(AtomicU64::new(0));
        let metrics = Arc::new(Metrics::new("t"));
        let (to_runtime, mut commands) = tokio::sync::mpsc::unbounded_channel::<Vec<Record>>();
        let (committed_tx, committed) = std::sync::mpsc::channel::<()>();
        let runtime = {
            let (beats, metrics) = (beats.clone(), metrics.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    // A dead service: the sender wakes every few ms to retry.
                    let dead = DeadPort::new();
                    let (h, task, cancel) = start(&dead.url(), &path, &metrics);
                    let heart = tokio::spawn(async move {
                        loop {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            beats.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                    while let Some(batch) = commands.recv().await {
                        let h = h.clone();
                        let tx = committed_tx.clone();
                        tokio::spawn(async move {
                            h.commit(batch).await;
                            tx.send(()).unwrap();
                        });
                    }
                    heart.abort();
                    cancel.cancel();
                    task.await.unwrap();
                });
            })
        };
        let rs = records(3);
        to_runtime.send(rs[..1].to_vec()).unwrap();
        committed
            .recv_timeout(Duration::from_secs(10))
            .expect("a first commit");
        let fifo = dir.path().join("00000000000000000001-2.jsonl.tmp");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        to_runtime.send(rs[1..].to_vec()).unwrap();
        assert!(
            committed.recv_timeout(Duration::from_millis(300)).is_err(),
            "the commit waits for its write"
        );
        let before = beats.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(500));
        let during = beats.load(Ordering::Relaxed) - before;
        // Unblock the write: read what it writes. fsync of a FIFO fails, so
        // the records go to memory.
        let mut reader = std::fs::File::open(&fifo).unwrap();
        let mut written = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut written).unwrap();
        committed
            .recv_timeout(Duration::from_secs(10))
            .expect("the commit ends once its write does");
        drop(to_runtime);
        runtime.join().unwrap();
        assert!(
            during >= 20,
            "the runtime ran {during} 5 ms timers in 500 ms while a spool write hung"
        );
        assert_eq!(
            written.iter().filter(|&&b| b == b'\n').count(),
            2,
            "the write reached the FIFO"
        );
        assert_eq!(metrics.log_spool_write_errors.get(), 1);
        // Kept in memory, then written to the spool at shutdown (the FIFO
        // went with the failed write): nothing lost.
        assert_eq!(
            metrics.log_dropped.with_label_values(&["spool_io"]).get(),
            0
        );
        assert_eq!(records_on_disk(dir.path()), 3);
    }
}

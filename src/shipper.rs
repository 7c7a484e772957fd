//! Ships log records to the log service without ever delaying a cycle.
//!
//! Cycles hand their records over a channel. A background task sends them in
//! batches (POST /logs) with retries and exponential backoff. While the
//! service is down, records wait in memory and, past a bound, in an on-disk
//! spool of whole segments; they are delivered oldest first when it is back.
//! At shutdown what is still in memory goes to the spool, so a restart loses
//! nothing. The spool is bounded: past it records are dropped and counted.
//! The log service is idempotent on record ids, so a retried batch that had
//! in fact arrived adds nothing twice.

use crate::endpoint::LoggerEndpoint;
use crate::metrics::Metrics;
use crate::records::Record;
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct ShipperConfig {
    /// Where the log service is; records go to `<url>/logs`.
    pub endpoint: LoggerEndpoint,
    pub token: Option<String>,
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    /// Records kept in memory before the oldest go to the spool.
    pub memory_max_records: usize,
    /// Records per POST.
    pub batch_max_records: usize,
    pub request_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
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
        }
    }
}

/// The cycle's side: hands records over, never blocks.
#[derive(Clone)]
pub struct ShipperHandle {
    tx: mpsc::UnboundedSender<Vec<Record>>,
}

impl ShipperHandle {
    pub fn send(&self, records: Vec<Record>) {
        if !records.is_empty() && self.tx.send(records).is_err() {
            tracing::error!("log shipper is gone; records of this cycle are lost");
        }
    }
}

/// Starts the shipper task. It stops when `cancel` fires, after spooling what
/// it could not deliver.
pub fn spawn(
    config: ShipperConfig,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> (ShipperHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut shipper = Shipper::new(config, metrics);
        shipper.run(rx, cancel).await;
    });
    (ShipperHandle { tx }, task)
}

/// One spool segment on disk: `<seq>-<count>.jsonl`, written whole.
#[derive(Debug, Clone)]
struct Segment {
    path: PathBuf,
    records: usize,
    bytes: u64,
}

struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segments: VecDeque<Segment>,
    bytes: u64,
    next_seq: u64,
    usable: bool,
}

#[derive(Debug, thiserror::Error)]
enum SpoolError {
    #[error("spool is full ({used} of {max} bytes)")]
    Full { used: u64, max: u64 },
    #[error("cannot write the spool in {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Spool {
    /// Opens the spool directory and finds the segments a previous run left.
    fn open(dir: &Path, max_bytes: u64) -> Spool {
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segments: VecDeque::new(),
            bytes: 0,
            next_seq: 0,
            usable: true,
        };
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::error!(spool = %dir.display(), error = %e, "cannot create the log spool; undelivered records will only be kept in memory");
            spool.usable = false;
            return spool;
        }
        let mut found: Vec<(u64, Segment)> = Vec::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                if name.ends_with(".tmp") {
                    // A segment whose write never completed: it was never counted as kept.
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
                let Some(stem) = name.strip_suffix(".jsonl") else {
                    continue;
                };
                let Some((seq, count)) = stem.split_once('-') else {
                    continue;
                };
                let (Ok(seq), Ok(records)) = (seq.parse::<u64>(), count.parse::<usize>()) else {
                    continue;
                };
                let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
                found.push((
                    seq,
                    Segment {
                        path,
                        records,
                        bytes,
                    },
                ));
            }
        }
        found.sort_by_key(|(seq, _)| *seq);
        for (seq, seg) in found {
            spool.bytes += seg.bytes;
            spool.next_seq = spool.next_seq.max(seq + 1);
            spool.segments.push_back(seg);
        }
        if !spool.segments.is_empty() {
            tracing::info!(
                segments = spool.segments.len(),
                records = spool.records(),
                "found undelivered log records in the spool"
            );
        }
        spool
    }

    fn records(&self) -> usize {
        self.segments.iter().map(|s| s.records).sum()
    }

    /// Writes records as one new segment (temp file, fsync, rename).
    fn push(&mut self, records: &[Record]) -> Result<(), SpoolError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SpoolError::Io { path, source }
        };
        if !self.usable {
            return Err(SpoolError::Io {
                path: self.dir.clone(),
                source: std::io::Error::other("spool directory unavailable"),
            });
        }
        let mut body = Vec::with_capacity(records.len() * 512);
        for r in records {
            serde_json::to_writer(&mut body, r).expect("records serialise");
            body.push(b'\n');
        }
        let size = body.len() as u64;
        if self.bytes + size > self.max_bytes {
            return Err(SpoolError::Full {
                used: self.bytes,
                max: self.max_bytes,
            });
        }
        let seq = self.next_seq;
        let path = self.dir.join(format!("{seq:020}-{}.jsonl", records.len()));
        let tmp = path.with_extension("tmp");
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io_err(&tmp)(e));
        }
        self.next_seq += 1;
        self.bytes += size;
        self.segments.push_back(Segment {
            path,
            records: records.len(),
            bytes: size,
        });
        Ok(())
    }

    /// Reads the oldest segment. A segment that cannot be read or parsed is
    /// set aside (renamed `.bad`) so it does not block the queue forever.
    fn front(&mut self) -> Option<Vec<Record>> {
        while let Some(seg) = self.segments.front().cloned() {
            let parsed = std::fs::read(&seg.path)
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    b.split(|&c| c == b'\n')
                        .filter(|l| !l.is_empty())
                        .map(|l| serde_json::from_slice::<Record>(l).map_err(|e| e.to_string()))
                        .collect::<Result<Vec<_>, _>>()
                });
            match parsed {
                Ok(records) => return Some(records),
                Err(e) => {
                    tracing::error!(segment = %seg.path.display(), error = %e, "unreadable spool segment set aside");
                    let _ = std::fs::rename(&seg.path, seg.path.with_extension("bad"));
                    self.pop_front_accounting();
                }
            }
        }
        None
    }

    fn pop_front_accounting(&mut self) -> Option<Segment> {
        let seg = self.segments.pop_front()?;
        self.bytes = self.bytes.saturating_sub(seg.bytes);
        Some(seg)
    }

    /// Deletes the oldest segment after it was delivered.
    fn pop_front(&mut self) {
        if let Some(seg) = self.pop_front_accounting() {
            if let Err(e) = std::fs::remove_file(&seg.path) {
                tracing::warn!(segment = %seg.path.display(), error = %e, "cannot delete a delivered spool segment");
            }
        }
    }
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

struct Shipper {
    config: ShipperConfig,
    metrics: Arc<Metrics>,
    client: reqwest::Client,
    memory: VecDeque<Record>,
    spool: Spool,
    /// Records of the front spool segment already delivered.
    spool_offset: usize,
    backoff: Duration,
    next_attempt: Instant,
    batch_limit: usize,
}

impl Shipper {
    fn new(config: ShipperConfig, metrics: Arc<Metrics>) -> Shipper {
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("an HTTP client without TLS builds");
        let spool = Spool::open(&config.spool_dir, config.spool_max_bytes);
        Shipper {
            backoff: config.backoff_min,
            batch_limit: config.batch_max_records,
            config,
            metrics,
            client,
            memory: VecDeque::new(),
            spool,
            spool_offset: 0,
            next_attempt: Instant::now(),
        }
    }

    fn pending(&self) -> bool {
        !self.memory.is_empty() || !self.spool.segments.is_empty()
    }

    fn update_gauges(&self) {
        let queued = self.memory.len() + self.spool.records() - self.spool_offset;
        self.metrics.log_queue.set(queued as i64);
        self.metrics.log_spool_bytes.set(self.spool.bytes as i64);
    }

    fn accept(&mut self, batch: Vec<Record>) {
        self.metrics.log_records.inc_by(batch.len() as u64);
        self.memory.extend(batch);
        while self.memory.len() > self.config.memory_max_records {
            let n = self.config.batch_max_records.min(self.memory.len());
            let oldest: Vec<Record> = self.memory.drain(..n).collect();
            self.spool_or_drop(&oldest);
        }
        self.update_gauges();
    }

    fn spool_or_drop(&mut self, records: &[Record]) {
        if let Err(e) = self.spool.push(records) {
            let reason = match e {
                SpoolError::Full { .. } => "spool_full",
                SpoolError::Io { .. } => "spool_io",
            };
            self.metrics
                .log_dropped
                .with_label_values(&[reason])
                .inc_by(records.len() as u64);
            tracing::error!(records = records.len(), error = %e, "log records dropped");
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

    /// Sends the oldest batch: the front spool segment (in chunks of
    /// `batch_limit`, from `spool_offset`) before what is in memory.
    /// Returns whether the queue moved.
    async fn attempt(&mut self) -> bool {
        let from_spool = !self.spool.segments.is_empty();
        let batch: Vec<Record> = if from_spool {
            match self.spool.front() {
                Some(segment) => segment
                    .into_iter()
                    .skip(self.spool_offset)
                    .take(self.batch_limit)
                    .collect(),
                None => return true,
            }
        } else {
            self.memory.iter().take(self.batch_limit).cloned().collect()
        };
        if batch.is_empty() {
            if from_spool {
                self.spool.pop_front();
                self.spool_offset = 0;
            }
            return true;
        }
        let n = batch.len();
        match self.post(&batch).await {
            Delivery::Delivered => {
                self.metrics.log_sent.inc_by(n as u64);
                self.consume(from_spool, n);
                self.backoff = self.config.backoff_min;
                self.batch_limit = self.config.batch_max_records;
                true
            }
            Delivery::Rejected(msg) => {
                tracing::error!(records = n, error = %msg, "the log service rejected records; dropped");
                self.drop_records(from_spool, n, "rejected");
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
                self.drop_records(from_spool, n, "rejected");
                true
            }
            Delivery::Retry(msg) => {
                self.metrics.log_retried.inc_by(batch.len() as u64);
                tracing::warn!(
                    queued = self.memory.len() + self.spool.records(),
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

    /// Takes the `n` oldest records off the queue once they are dealt with.
    fn consume(&mut self, from_spool: bool, n: usize) {
        if from_spool {
            self.spool_offset += n;
            let segment_len = self.spool.segments.front().map_or(0, |s| s.records);
            if self.spool_offset >= segment_len {
                self.spool.pop_front();
                self.spool_offset = 0;
            }
        } else {
            self.memory.drain(..n);
        }
    }

    fn drop_records(&mut self, from_spool: bool, n: usize, reason: &str) {
        self.metrics
            .log_dropped
            .with_label_values(&[reason])
            .inc_by(n as u64);
        self.consume(from_spool, n);
    }

    async fn run(
        &mut self,
        mut rx: mpsc::UnboundedReceiver<Vec<Record>>,
        cancel: CancellationToken,
    ) {
        self.update_gauges();
        loop {
            let ready = self.pending() && Instant::now() >= self.next_attempt;
            if ready {
                // Deliver as much as we can, but keep taking new records.
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => break,
                    moved = self.attempt() => {
                        let _ = moved;
                        self.update_gauges();
                    }
                }
                while let Ok(batch) = rx.try_recv() {
                    self.accept(batch);
                }
                continue;
            }
            let wait = if self.pending() {
                self.next_attempt
            } else {
                Instant::now() + Duration::from_secs(3600)
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                batch = rx.recv() => match batch {
                    Some(b) => self.accept(b),
                    None => break,
                },
                _ = tokio::time::sleep_until(wait) => {}
            }
        }
        // Shutdown: take what the last cycle sent, try once, spool the rest.
        while let Ok(batch) = rx.try_recv() {
            self.metrics.log_records.inc_by(batch.len() as u64);
            self.memory.extend(batch);
        }
        if !self.memory.is_empty() && self.spool.segments.is_empty() {
            let _ = tokio::time::timeout(Duration::from_secs(1), self.attempt()).await;
        }
        let rest: Vec<Record> = self.memory.drain(..).collect();
        for chunk in rest.chunks(self.config.batch_max_records) {
            self.spool_or_drop(chunk);
        }
        self.update_gauges();
        let left = self.spool.records();
        if left > 0 {
            tracing::info!(records = left, spool = %self.config.spool_dir.display(), "undelivered log records kept in the spool for the next start");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{RecordContext, RecordIds};

    fn records(n: usize) -> Vec<Record> {
        let ids = RecordIds::random();
        let ctx = RecordContext {
            ids: &ids,
            host: "h",
            cycle: 1,
            time: "2026-01-01T00:00:00.000Z",
        };
        (0..n)
            .map(|i| ctx.record("cycle", format!("r{i}")))
            .collect()
    }

    #[test]
    fn spool_keeps_segments_in_order_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20);
        let all = records(5);
        s.push(&all[..2]).unwrap();
        s.push(&all[2..]).unwrap();
        drop(s);
        let mut s = Spool::open(dir.path(), 1 << 20);
        assert_eq!(s.records(), 5);
        assert_eq!(s.front().unwrap(), all[..2].to_vec());
        s.pop_front();
        assert_eq!(s.front().unwrap(), all[2..].to_vec());
        s.pop_front();
        assert!(s.front().is_none());
        assert_eq!(s.bytes, 0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn spool_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 600);
        let r = records(10);
        s.push(&r[..1]).unwrap();
        let err = s.push(&r).unwrap_err();
        assert!(matches!(err, SpoolError::Full { .. }), "{err}");
        assert_eq!(s.records(), 1);
    }

    #[test]
    fn unreadable_segments_are_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("00000000000000000000-1.jsonl"),
            "not json\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("00000000000000000001-1.tmp"), "partial").unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20);
        assert!(s.front().is_none());
        assert!(dir.path().join("00000000000000000000-1.bad").exists());
        assert!(!dir.path().join("00000000000000000001-1.tmp").exists());
    }

    #[test]
    fn unusable_spool_directory_is_an_io_error() {
        let mut s = Spool::open(Path::new("/proc/gestor-cannot-create"), 1 << 20);
        assert!(matches!(s.push(&records(1)), Err(SpoolError::Io { .. })));
    }

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
        h.send(rs[..3].to_vec());
        h.send(rs[3..].to_vec());
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
        h.send(rs.clone());
        assert_eq!(wait_stored(&svc, 5).await, ids(&rs));
        cancel.cancel();
        task.await.unwrap();

        let svc = fake_service(vec![422], 100).await;
        let (h, task, cancel) = start(&svc.url, dir.path(), &metrics);
        h.send(records(2));
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
            h.send(chunk.to_vec());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
        task.await.unwrap();
        assert_eq!(Spool::open(dir.path(), 1 << 20).records(), 20);

        // Next start, the service is back: everything, oldest first, once.
        let svc = fake_service(vec![], 100).await;
        let (h, task, cancel) = start(&svc.url, dir.path(), &metrics);
        let more = records(2);
        h.send(more.clone());
        let mut want = ids(&rs);
        want.extend(ids(&more));
        assert_eq!(wait_stored(&svc, 22).await, want);
        cancel.cancel();
        task.await.unwrap();
        assert_eq!(Spool::open(dir.path(), 1 << 20).records(), 0);
    }
}

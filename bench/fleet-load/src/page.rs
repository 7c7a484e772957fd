//! A live page (logger/app/static/live.js) held open the whole run: its
//! Server-Sent Events stream at /events, and the reads it makes: at load the
//! counters, the latest rows, the host totals and the three graphs; then,
//! after a `records` event, the graphs and the host totals once the 2 s
//! debounce has passed (every 15 s at the latest), at most one request of
//! each kind in flight.

use crate::conn::Pool;
use crate::stats;
use anyhow::{bail, Result};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

const DEBOUNCE: Duration = Duration::from_secs(2);
const REFRESH: Duration = Duration::from_secs(15);
const GRAPHS: [&str; 3] = ["memory", "cpu", "kills"];
/// Browsers' clientWidth differs from page to page; the server renders each.
const WIDTHS: [u32; 4] = [800, 1200, 640, 1024];

pub struct PageSpec {
    pub index: usize,
    pub range: String,
    pub range_seconds: u64,
    pub token: Option<String>,
}

#[derive(Default)]
pub struct PageTally {
    reads_ms: BTreeMap<&'static str, Vec<f64>>,
    read_errors: BTreeMap<String, u64>,
    busy: u64,
    sse_records_events: u64,
    sse_resyncs: u64,
    sse_bytes: u64,
    sse_errors: BTreeMap<String, u64>,
    sse_open: u64,
}

/// Counts `event: NAME` lines in a stream that arrives in pieces.
#[derive(Default)]
pub struct EventCounter {
    line: Vec<u8>,
}

impl EventCounter {
    /// Feeds a chunk; returns the names of the events whose line ended in it.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in chunk {
            if b == b'\n' {
                let line = String::from_utf8_lossy(&self.line);
                if let Some(name) = line.trim_end_matches('\r').strip_prefix("event:") {
                    out.push(name.trim().to_string());
                }
                self.line.clear();
            } else if self.line.len() < 64 {
                self.line.push(b); // only a line's start matters
            }
        }
        out
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn read(
    pool: &Pool,
    spec: &PageSpec,
    kind: &'static str,
    path: String,
    tally: &Mutex<PageTally>,
) {
    let started = Instant::now();
    let outcome = pool
        .send(
            pool.target()
                .request("GET", &path, spec.token.as_deref(), Bytes::new()),
        )
        .await;
    let took = started.elapsed().as_secs_f64() * 1000.0;
    let mut t = tally.lock().expect("tally lock");
    match outcome {
        Ok((status, _)) if status.is_success() => t.reads_ms.entry(kind).or_default().push(took),
        Ok((status, _)) if status.as_u16() == 503 => t.busy += 1,
        Ok((status, _)) => {
            *t.read_errors
                .entry(format!("{kind} {}", status.as_u16()))
                .or_default() += 1
        }
        Err(e) => *t.read_errors.entry(format!("{kind} {e:#}")).or_default() += 1,
    }
}

async fn graphs_and_hosts(pool: &Pool, spec: &PageSpec, tally: &Mutex<PageTally>) {
    let width = WIDTHS[spec.index % WIDTHS.len()];
    let stamp = now_unix() * 1000;
    let graph = |kind: &str| {
        format!(
            "/graphs/{kind}.png?range={}&width={width}&height={}&t={stamp}",
            spec.range,
            width / 2
        )
    };
    let hosts = format!(
        "/logs/hosts?since={}",
        now_unix().saturating_sub(spec.range_seconds)
    );
    tokio::join!(
        read(pool, spec, "graph", graph(GRAPHS[0]), tally),
        read(pool, spec, "graph", graph(GRAPHS[1]), tally),
        read(pool, spec, "graph", graph(GRAPHS[2]), tally),
        read(pool, spec, "hosts", hosts, tally),
    );
}

async fn follow_events(
    pool: &Pool,
    spec: &PageSpec,
    tally: &Mutex<PageTally>,
    news: &Notify,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let req = pool
        .target()
        .request("GET", "/events", spec.token.as_deref(), Bytes::new());
    let mut response = pool.target().stream(req).await?;
    if !response.status().is_success() {
        bail!("/events answered {}", response.status());
    }
    tally.lock().expect("tally lock").sse_open += 1;
    let mut counter = EventCounter::default();
    loop {
        let frame = tokio::select! {
            _ = stop.changed() => return Ok(()),
            frame = response.body_mut().frame() => frame,
        };
        let Some(frame) = frame else {
            bail!("/events ended")
        };
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        let events = counter.feed(&data);
        let mut t = tally.lock().expect("tally lock");
        t.sse_bytes += data.len() as u64;
        for name in events {
            match name.as_str() {
                "records" => {
                    t.sse_records_events += 1;
                    news.notify_one();
                }
                "resync" => t.sse_resyncs += 1,
                _ => {}
            }
        }
    }
}

/// Runs one page until `stop` turns true.
pub async fn run(
    pool: Arc<Pool>,
    spec: PageSpec,
    tally: Arc<Mutex<PageTally>>,
    stop: watch::Receiver<bool>,
) {
    let news = Notify::new();
    let first_reads = async {
        for (kind, path) in [
            ("stats", "/stats".to_string()),
            ("rows", "/logs?limit=300".to_string()),
        ] {
            read(&pool, &spec, kind, path, &tally).await;
        }
        graphs_and_hosts(&pool, &spec, &tally).await;
    };
    let events = async {
        if let Err(e) = follow_events(&pool, &spec, &tally, &news, stop.clone()).await {
            *tally
                .lock()
                .expect("tally lock")
                .sse_errors
                .entry(format!("{e:#}"))
                .or_default() += 1;
        }
    };
    let refresh = async {
        first_reads.await;
        let mut stop = stop.clone();
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = news.notified() => {}
                _ = tokio::time::sleep(REFRESH) => {}
            }
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(DEBOUNCE) => {}
            }
            graphs_and_hosts(&pool, &spec, &tally).await;
        }
    };
    tokio::join!(events, refresh);
}

/// The pages' figures, summed over pages.
pub fn summary(tally: &PageTally, pages: usize) -> Value {
    let reads: BTreeMap<&str, Value> = tally
        .reads_ms
        .iter()
        .map(|(kind, lat)| (*kind, stats::summary(lat)))
        .collect();
    json!({
        "pages": pages,
        "sse_open": tally.sse_open,
        "sse_records_events": tally.sse_records_events,
        "sse_resyncs": tally.sse_resyncs,
        "sse_bytes": tally.sse_bytes,
        "sse_errors": tally.sse_errors,
        "reads": reads,
        "reads_busy_503": tally.busy,
        "read_errors": tally.read_errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_counted_across_chunk_boundaries() {
        let mut c = EventCounter::default();
        assert!(c.feed(b"event: hel").is_empty());
        assert_eq!(c.feed(b"lo\r\ndata: {}\n\nev"), ["hello"]);
        assert_eq!(
            c.feed(b"ent: records\ndata: {\"records\": []}\n\n: ping\n"),
            ["records"]
        );
        assert_eq!(c.feed(b"event:resync\n"), ["resync"]);
        let long = vec![b'x'; 10_000];
        assert!(c.feed(&long).is_empty());
        assert!(c.feed(b"\n").is_empty());
    }
}

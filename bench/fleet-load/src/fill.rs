//! Fills the log service with a window of records: `hosts` nodes ×
//! `minutes` of 10 s cycles ending now, 8 records a cycle (1,000 hosts × 10
//! minutes: 480,000 records), in batches of whole cycles, for the reads-at-
//! scale figures.

use crate::batch::{Node, RECORDS_PER_CYCLE};
use crate::conn::Pool;
use anyhow::{bail, Result};
use bytes::Bytes;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;

pub struct Fill {
    pub first_host: u32,
    pub hosts: u32,
    pub minutes: u32,
    pub batch_cycles: usize,
    pub concurrency: usize,
    pub seed: u64,
}

/// (host index, cycle number, time) of every cycle to send, host by host.
pub fn cycles(fill: &Fill, now_ms: i64) -> Vec<(u32, u64, i64)> {
    let per_host = u64::from(fill.minutes) * 6;
    let start = now_ms - i64::from(fill.minutes) * 60_000 + 1_000;
    let mut out = Vec::with_capacity(fill.hosts as usize * per_host as usize);
    for host in fill.first_host..fill.first_host + fill.hosts {
        let phase = i64::from(host % 10_000) * 9_000 / 10_000; // spread over a cycle
        for c in 0..per_host {
            out.push((host, c + 1, start + phase + c as i64 * 10_000));
        }
    }
    out
}

pub async fn run(pool: Arc<Pool>, token: Option<String>, fill: &Fill) -> Result<Value> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let work = cycles(fill, now);
    let total = work.len() * RECORDS_PER_CYCLE;
    let queue = Arc::new(Mutex::new(
        work.chunks(fill.batch_cycles)
            .map(<[_]>::to_vec)
            .collect::<Vec<_>>(),
    ));
    let stored = Arc::new(AtomicU64::new(0));
    let seed = fill.seed;
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..fill.concurrency {
        let (pool, token, queue, stored) =
            (pool.clone(), token.clone(), queue.clone(), stored.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let Some(chunk) = queue.lock().await.pop() else {
                    return Ok(());
                };
                let mut records = Vec::with_capacity(chunk.len() * RECORDS_PER_CYCLE);
                for (host, cycle, at) in chunk {
                    // One gestor run per host for the whole window, as on a
                    // fleet (a run per cycle made 60,000 runs of 1,000 hosts).
                    let run = Node::new(host, seed);
                    let mut node = Node::new(host, seed ^ cycle).in_run(run.run_id());
                    records.extend(node.cycle(cycle, at));
                }
                let body = Bytes::from(serde_json::to_vec(&records)?);
                let (status, answer) = pool
                    .send(
                        pool.target()
                            .request("POST", "/logs", token.as_deref(), body),
                    )
                    .await?;
                if !status.is_success() {
                    bail!(
                        "POST /logs answered {status}: {}",
                        String::from_utf8_lossy(&answer[..answer.len().min(300)])
                    );
                }
                let n = serde_json::from_slice::<Value>(&answer)?["stored"]
                    .as_u64()
                    .unwrap_or(0);
                stored.fetch_add(n, Ordering::Relaxed);
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    let n = stored.load(Ordering::Relaxed);
    if n as usize != total {
        bail!("stored {n} of {total} records (ids repeated from an earlier fill?)");
    }
    Ok(json!({
        "first_host": fill.first_host, "hosts": fill.hosts, "minutes": fill.minutes, "records": n,
        "seconds": (secs * 100.0).round() / 100.0,
        "records_per_second": (n as f64 / secs).round(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_of_hosts_and_minutes() {
        let fill = Fill {
            first_host: 0,
            hosts: 1000,
            minutes: 10,
            batch_cycles: 50,
            concurrency: 2,
            seed: 1,
        };
        let now = 1_764_379_425_678;
        let all = cycles(&fill, now);
        assert_eq!(all.len() * RECORDS_PER_CYCLE, 480_000);
        assert!(all.iter().all(|&(_, _, t)| t > now - 600_000 && t < now));
        let more = Fill {
            first_host: 1000,
            hosts: 10,
            ..fill
        };
        assert!(cycles(&more, now)
            .iter()
            .all(|&(h, _, _)| (1000..1010).contains(&h)));
    }
}

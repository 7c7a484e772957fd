//! Simulated nodes: each POSTs one cycle's batch every interval, at a phase
//! of its own and with jitter, open loop (a late answer does not delay the
//! node's next cycle, as gestor's ship stage does not hold its cycle back).
//! A POST's latency counts from when it was due, so a client that falls
//! behind shows in the figures instead of hiding them.

use crate::batch::{Node, RECORDS_PER_CYCLE};
use crate::conn::Pool;
use crate::rng::Rng;
use crate::stats;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

pub struct Load {
    pub nodes: u32,
    pub seconds: f64,
    pub interval: f64,
    /// Each cycle starts up to this many seconds early or late.
    pub jitter: f64,
    pub seed: u64,
}

/// When (seconds from the start) one node sends: a first phase in
/// [0, interval), then one interval later each time, give or take `jitter`.
pub fn send_times(rng: &mut Rng, load: &Load) -> Vec<f64> {
    let mut t = rng.range(0.0, load.interval);
    let mut out = Vec::new();
    while t < load.seconds {
        out.push(t);
        t += load.interval + rng.range(-load.jitter, load.jitter);
    }
    out
}

#[derive(Default)]
struct Tally {
    latencies_ms: Vec<f64>,
    errors: BTreeMap<String, u64>,
    records: u64,
    duplicates: u64,
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Runs the fleet for `load.seconds`, waits for the last answers, and sums up.
pub async fn run(pool: Arc<Pool>, token: Option<String>, load: &Load) -> Value {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let due = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let mut nodes = Vec::new();
    for index in 0..load.nodes {
        let mut rng = Rng::new(load.seed.wrapping_mul(1_000_003) ^ u64::from(index));
        let times = send_times(&mut rng, load);
        due.fetch_add(times.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let node_seed = load.seed.wrapping_add(0xF1EE_7000);
        let (pool, token, tally) = (pool.clone(), token.clone(), tally.clone());
        nodes.push(tokio::spawn(async move {
            let mut node = Node::new(index, node_seed);
            let mut posts = Vec::with_capacity(times.len());
            for (n, at) in times.into_iter().enumerate() {
                let due = start + Duration::from_secs_f64(at);
                tokio::time::sleep_until(due).await;
                let body = serde_json::to_vec(&node.cycle(n as u64 + 1, unix_ms())).expect("json");
                let req =
                    pool.target()
                        .request("POST", "/logs", token.as_deref(), Bytes::from(body));
                let (pool, tally) = (pool.clone(), tally.clone());
                posts.push(tokio::spawn(async move {
                    let outcome = pool.send(req).await;
                    let took = due.elapsed().as_secs_f64() * 1000.0;
                    let mut t = tally.lock().expect("tally lock");
                    match outcome {
                        Ok((status, body)) if status.is_success() => {
                            t.latencies_ms.push(took);
                            let (n, dup) = stored(&body).unwrap_or((0, 0));
                            t.records += n;
                            t.duplicates += dup;
                        }
                        Ok((status, body)) => {
                            let text =
                                String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
                            *t.errors
                                .entry(format!("{} {text}", status.as_u16()))
                                .or_default() += 1;
                        }
                        Err(e) => *t.errors.entry(format!("{e:#}")).or_default() += 1,
                    }
                }));
            }
            for post in posts {
                let _ = post.await;
            }
        }));
    }
    for node in nodes {
        let _ = node.await;
    }
    let drained = start.elapsed().as_secs_f64();
    let t = tally.lock().expect("tally lock");
    let ok = t.latencies_ms.len() as f64;
    let mut out = stats::summary(&t.latencies_ms);
    out["nodes"] = json!(load.nodes);
    out["seconds"] = json!(load.seconds);
    out["drained_seconds"] = json!((drained * 100.0).round() / 100.0);
    out["offered_posts_per_second"] = json!(f64::from(load.nodes) / load.interval);
    out["posts_ok"] = json!(t.latencies_ms.len());
    out["posts_due"] = json!(due.load(std::sync::atomic::Ordering::Relaxed));
    out["posts_per_second"] = json!((ok / load.seconds * 10.0).round() / 10.0);
    out["records_stored"] = json!(t.records);
    out["records_per_second"] = json!((t.records as f64 / load.seconds).round());
    out["records_per_post"] = json!(RECORDS_PER_CYCLE);
    out["records_duplicate"] = json!(t.duplicates);
    out["errors"] = json!(t.errors.values().sum::<u64>());
    out["error_kinds"] = json!(t.errors);
    out
}

/// `stored` and `duplicates` of the service's answer to a POST.
fn stored(body: &[u8]) -> Option<(u64, u64)> {
    let v = serde_json::from_slice::<Value>(body).ok()?;
    let duplicates = v.get("duplicates").and_then(Value::as_u64).unwrap_or(0);
    Some((v.get("stored")?.as_u64()?, duplicates))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_sends_once_an_interval_within_the_run() {
        let load = Load {
            nodes: 1,
            seconds: 60.0,
            interval: 10.0,
            jitter: 1.0,
            seed: 1,
        };
        for seed in 0..50 {
            let times = send_times(&mut Rng::new(seed), &load);
            assert!((5..=7).contains(&times.len()), "{times:?}");
            assert!(times[0] < 10.0 && *times.last().unwrap() < 60.0);
            for pair in times.windows(2) {
                let gap = pair[1] - pair[0];
                assert!((9.0..=11.0).contains(&gap), "{gap}");
            }
        }
    }

    #[test]
    fn stored_is_read_from_the_answer() {
        assert_eq!(
            stored(br#"{"received":8,"stored":7,"duplicates":1}"#),
            Some((7, 1))
        );
        assert_eq!(stored(b"nonsense"), None);
    }
}

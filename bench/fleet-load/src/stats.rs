//! Latency figures: percentiles the way bench/logger_bench.py takes them
//! (the value at index floor(q * n) of the sorted list), so the Rust and the
//! Python figures of one run compare.

use serde_json::{json, Value};

pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let index = ((q * sorted.len() as f64) as usize).min(sorted.len() - 1);
    Some(sorted[index])
}

fn round1(x: Option<f64>) -> Value {
    x.map_or(Value::Null, |v| json!((v * 10.0).round() / 10.0))
}

/// `{"n", "p50_ms", "p99_ms", "max_ms"}` of latencies in milliseconds.
pub fn summary(latencies_ms: &[f64]) -> Value {
    let mut sorted = latencies_ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    json!({
        "n": sorted.len(),
        "p50_ms": round1(percentile(&sorted, 0.50)),
        "p99_ms": round1(percentile(&sorted, 0.99)),
        "max_ms": round1(sorted.last().copied()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_match_the_python_bench() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), Some(51.0));
        assert_eq!(percentile(&values, 0.99), Some(100.0));
        assert_eq!(percentile(&[3.0], 0.99), Some(3.0));
        assert_eq!(percentile(&[], 0.5), None);
        let s = summary(&[5.0, 1.0, 3.0]);
        assert_eq!(s["n"], 3);
        assert_eq!(s["p50_ms"], 3.0);
        assert_eq!(s["max_ms"], 5.0);
        assert!(summary(&[])["p99_ms"].is_null());
    }
}

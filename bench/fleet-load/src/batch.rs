//! One simulated node's records, shaped like gestor's (src/ship/records.rs,
//! docs/daemon.md): per cycle one `cycle` record, a `keep` for the one
//! container kept of each of the four types and three `kill`s of the
//! generator's surplus, i.e. 8 records, the lab load's average
//! (docs/fleet.md: ~2,980 records an hour at a 10 s cycle).

use crate::rng::Rng;
use serde_json::{json, Value};

pub const TYPES: [&str; 4] = ["cpu", "ram", "io", "disk"];
pub const RECORDS_PER_CYCLE: usize = 8;
const KILLS_PER_CYCLE: usize = 3;

/// RFC 3339 UTC with milliseconds, as gestor writes it: `2026-11-29T01:23:45.678Z`.
pub fn rfc3339_millis(unix_ms: i64) -> String {
    let days = unix_ms.div_euclid(86_400_000);
    let ms_of_day = unix_ms.rem_euclid(86_400_000);
    // Civil date from days since 1970-01-01 (H. Hinnant's days_from_civil, inverted).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, milli) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

/// A node: its host name, its gestor run and the container it keeps of each type.
pub struct Node {
    pub host: String,
    run_id: String,
    kept: Vec<(String, String, &'static str)>,
    seq: u64,
    rng: Rng,
}

impl Node {
    pub fn new(index: u32, seed: u64) -> Node {
        let mut rng = Rng::new(seed ^ (u64::from(index) << 20) ^ 0x5EED);
        let run_id = rng.hex(32);
        let kept = TYPES.iter().map(|kind| container(&mut rng, kind)).collect();
        Node {
            host: format!("node-{index:05}"),
            run_id,
            kept,
            seq: 0,
            rng,
        }
    }

    /// The same node in gestor run `run_id` (a node's cycles filled with
    /// seeds of their own still belong to one run, as on a host).
    pub fn in_run(mut self, run_id: &str) -> Node {
        self.run_id = run_id.to_owned();
        self
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    fn id(&mut self, cycle: u64) -> String {
        self.seq += 1;
        format!("{}-{cycle}-{}", self.run_id, self.seq - 1)
    }

    fn base(&mut self, cycle: u64, time: &str, event: &str, reason: String) -> Value {
        json!({
            "id": self.id(cycle), "run_id": self.run_id, "time": time, "host": self.host,
            "cycle": cycle, "event": event, "container_id": null, "container_name": null,
            "container_type": null, "cpu_ratio": null, "cpu_cores": null, "memory_bytes": null,
            "memory_ratio": null, "disk_read_bytes_per_second": null,
            "disk_write_bytes_per_second": null, "io_read_chars_per_second": null,
            "io_write_chars_per_second": null, "reason": reason,
        })
    }

    fn with_usage(&mut self, mut r: Value, (cid, name, kind): &(String, String, &str)) -> Value {
        let mib = match *kind {
            "ram" => 256.0,
            "disk" => 48.0,
            "io" => 8.0,
            _ => 4.0,
        };
        let memory = (mib * 1_048_576.0 * self.rng.range(0.8, 1.2)) as u64;
        let base = match *kind {
            "cpu" => 0.45,
            "io" => 0.1,
            "disk" => 0.08,
            _ => 0.05,
        };
        let cpu = (base * self.rng.range(0.7, 1.1) * 10_000.0_f64).round() / 10_000.0;
        let fields = [
            ("container_id", json!(cid)),
            ("container_name", json!(name)),
            ("container_type", json!(kind)),
            ("cpu_ratio", json!(cpu)),
            ("cpu_cores", json!(cpu * 2.0)),
            ("memory_bytes", json!(memory)),
            ("memory_ratio", json!(memory as f64 / 25_769_803_776.0)),
            ("disk_read_bytes_per_second", json!(0.0)),
            (
                "disk_write_bytes_per_second",
                json!(if *kind == "disk" { 1e6 } else { 0.0 }),
            ),
            (
                "io_read_chars_per_second",
                json!(if *kind == "io" { 5e5 } else { 0.0 }),
            ),
            (
                "io_write_chars_per_second",
                json!(if *kind == "io" { 5e5 } else { 0.0 }),
            ),
        ];
        for (key, value) in fields {
            r[key] = value;
        }
        r
    }

    /// The records of one cycle, as gestor POSTs them in one batch.
    pub fn cycle(&mut self, cycle: u64, unix_ms: i64) -> Vec<Value> {
        let time = rfc3339_millis(unix_ms);
        let mut out = Vec::with_capacity(RECORDS_PER_CYCLE);
        let reason = format!("cycle {cycle}: 4 containers kept, {KILLS_PER_CYCLE} killed");
        let mut r = self.base(cycle, &time, "cycle", reason);
        r["details"] = json!({
            "containers": 4 + KILLS_PER_CYCLE, "kills": KILLS_PER_CYCLE,
            "duration_seconds": 0.012, "source": "kernel",
            "host_memory_ratio": 0.4, "host_cpu_ratio": ((0.6 + 0.2 * self.rng.unit()) * 1000.0).round() / 1000.0,
        });
        out.push(r);
        for k in 0..TYPES.len() {
            let kept = self.kept[k].clone();
            let reason = format!("{}: kept {} (the lowest of 4 measured)", kept.2, kept.1);
            let r = self.base(cycle, &time, "keep", reason);
            let mut r = self.with_usage(r, &kept);
            r["rule"] = json!("keep_one_per_type");
            out.push(r);
        }
        for k in 0..KILLS_PER_CYCLE {
            let kind = TYPES[(cycle as usize + k) % TYPES.len()];
            let victim = container(&mut self.rng, kind);
            let reason = format!(
                "{kind}: surplus container of its type; {} is kept",
                self.kept[k].1
            );
            let r = self.base(cycle, &time, "kill", reason);
            let mut r = self.with_usage(r, &victim);
            r["rule"] = json!("keep_one_per_type");
            r["details"] = json!({ "intent": format!("{}-{cycle}-i{k}", self.run_id) });
            out.push(r);
        }
        out
    }
}

fn container(rng: &mut Rng, kind: &'static str) -> (String, String, &'static str) {
    let cid = rng.hex(64);
    let name = format!("{kind}-{}", &cid[..8]);
    (cid, name, kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_gestors_format() {
        assert_eq!(
            rfc3339_millis(1_764_379_425_678),
            "2025-11-29T01:23:45.678Z"
        );
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn a_cycle_is_eight_records_with_unique_ids_and_the_contract_fields() {
        let mut node = Node::new(3, 1);
        let a = node.cycle(1, 1_764_379_425_678);
        let b = node.cycle(2, 1_764_379_435_678);
        assert_eq!(a.len(), RECORDS_PER_CYCLE);
        let mut ids: Vec<&str> = a
            .iter()
            .chain(&b)
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 2 * RECORDS_PER_CYCLE);
        let events: Vec<&str> = a.iter().map(|r| r["event"].as_str().unwrap()).collect();
        assert_eq!(
            events,
            ["cycle", "keep", "keep", "keep", "keep", "kill", "kill", "kill"]
        );
        for r in &a {
            assert_eq!(r["host"], "node-00003");
            assert_eq!(r["time"], "2025-11-29T01:23:45.678Z");
            assert_eq!(r["run_id"].as_str().unwrap().len(), 32);
        }
        assert_eq!(a[1]["container_id"].as_str().unwrap().len(), 64);
        assert!(a[1]["memory_bytes"].as_u64().unwrap() > 0);
        // About gestor's 685 bytes a record as sent.
        let size = serde_json::to_vec(&a).unwrap().len() / a.len();
        assert!((450..900).contains(&size), "{size} bytes a record");
    }
}

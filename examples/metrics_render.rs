//! Benchmark: size and render time of one `/metrics` scrape with N
//! containers' series. Run through `bench/metrics.sh`.

use gestor::collect::usage::{CpuSource, RateBasis, Totals, Usage};
use gestor::docker::container::ContainerType;
use gestor::metrics::{ContainerSample, Metrics};
use std::time::Instant;

fn usage(i: u64) -> Usage {
    let totals = Totals {
        processes: 2,
        cpu_time_ns: i * 1_000_003,
        rss_bytes: i * 4096,
        read_bytes: i,
        write_bytes: i * 7,
        rchar: i * 11,
        wchar: i * 13,
        syscr: i,
        syscw: i,
    };
    Usage {
        totals,
        counted: totals,
        cpu_cores: 0.01,
        cpu_ratio: 0.005,
        memory_bytes: i * 4096,
        memory_ratio: 0.001,
        disk_read_bytes_per_second: 1.0,
        disk_write_bytes_per_second: 2.0,
        io_read_chars_per_second: 3.0,
        io_write_chars_per_second: 4.0,
        io_syscalls_per_second: 5.0,
        basis: RateBasis::Interval,
        cpu_source: CpuSource::Processes,
        io_unavailable: false,
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100, 1000]
    } else {
        sizes
    };
    for n in sizes {
        let metrics = Metrics::new("bench");
        let ids: Vec<String> = (0..n).map(|i| format!("{i:012x}")).collect();
        let names: Vec<String> = (0..n).map(|i| format!("cpu-{i:08x}")).collect();
        let usages: Vec<Usage> = (0..n as u64).map(usage).collect();
        let samples: Vec<ContainerSample<'_>> = (0..n)
            .map(|i| ContainerSample {
                short_id: &ids[i],
                name: &names[i],
                container_type: ContainerType::KNOWN[i % 4],
                usage: &usages[i],
            })
            .collect();
        let t = Instant::now();
        metrics.set_containers(&samples);
        let first_update = t.elapsed();
        // Steady state: the same containers again, as in every later cycle.
        let mut updates = Vec::new();
        let mut first_scrapes = Vec::new();
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..20 {
            let t = Instant::now();
            metrics.set_containers(&samples);
            updates.push(t.elapsed().as_secs_f64() * 1e3);
            // The first scrape after a cycle encodes the container series...
            let t = Instant::now();
            bytes = metrics.render().len();
            first_scrapes.push(t.elapsed().as_secs_f64() * 1e3);
            // ...the next ones until the next cycle copy the encoded text.
            for _ in 0..5 {
                let t = Instant::now();
                metrics.render();
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        for v in [&mut updates, &mut first_scrapes, &mut times] {
            v.sort_by(f64::total_cmp);
        }
        println!(
            "containers {n:>5}: scrape {:>8} bytes; first scrape after a cycle (encodes) median {:.2} ms; later scrapes median {:.2} ms (p95 {:.2} ms); per cycle: update of the series {:.2} ms (first sight of them all {:.2} ms)",
            bytes,
            first_scrapes[first_scrapes.len() / 2],
            times[times.len() / 2],
            times[times.len() * 95 / 100],
            updates[updates.len() / 2],
            first_update.as_secs_f64() * 1e3
        );
    }
}

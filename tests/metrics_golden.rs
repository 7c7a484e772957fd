//! The whole /metrics exposition for a fixed state, diffed against a golden
//! file: names, help texts, types, labels and values are part of the
//! contract with dashboards and alerts. Regenerate after an intended change
//! with `UPDATE_GOLDEN=1 cargo test --test metrics_golden`.

use gestor::collect::snapshot::SourceKind;
use gestor::collect::usage::{CpuSource, HostUsage, RateBasis, Totals, Usage};
use gestor::docker::container::ContainerType;
use gestor::metrics::{ContainerSample, Metrics};

fn usage(cpu_s: u64, mem_mib: u64) -> Usage {
    let totals = Totals {
        processes: 2,
        cpu_time_ns: cpu_s * 1_000_000_000,
        rss_bytes: mem_mib << 20,
        read_bytes: 4096,
        write_bytes: 8192,
        rchar: 100,
        wchar: 200,
        syscr: 3,
        syscw: 4,
    };
    Usage {
        totals,
        counted: totals,
        cpu_cores: 0.5,
        cpu_ratio: 0.25,
        memory_bytes: mem_mib << 20,
        memory_ratio: 0.125,
        disk_read_bytes_per_second: 0.0,
        disk_write_bytes_per_second: 0.0,
        io_read_chars_per_second: 0.0,
        io_write_chars_per_second: 0.0,
        io_syscalls_per_second: 0.0,
        basis: RateBasis::Interval,
        cpu_source: CpuSource::Processes,
        io_unavailable: false,
    }
}

#[test]
fn metrics_exposition_matches_the_golden_file() {
    let m = Metrics::new("0.0.0-golden");
    m.set_interval(10.0);
    let (a, b) = (usage(3, 12), usage(1, 256));
    m.set_containers(&[
        ContainerSample {
            short_id: "3fa1c0ffee00",
            name: "ram-3fa1",
            container_type: ContainerType::Ram,
            usage: &a,
        },
        ContainerSample {
            short_id: "99c0c0ffee00",
            name: "cpu-99c0",
            container_type: ContainerType::Cpu,
            usage: &b,
        },
    ]);
    m.set_container_counts(&[
        (ContainerType::Ram, "running".into(), 1),
        (ContainerType::Cpu, "running".into(), 1),
    ]);
    m.set_host(&HostUsage {
        cpus: 2,
        cpu_ratio: 0.5,
        memory_total_bytes: 8 << 30,
        memory_available_bytes: 4 << 30,
    });
    m.set_source(SourceKind::Userspace);
    m.set_policy(&gestor::decide::rules::Policy::default_for(1));
    m.kill("ram", "surplus", ContainerType::Ram);
    m.kill_failed(ContainerType::Cpu, "vanished");
    m.removed(ContainerType::Ram, "oom_killed");
    for stage in gestor::metrics::STAGES {
        m.stage(stage, stage != "docker");
    }
    m.cycle_done(0.012, false, 1_764_379_200.0);
    m.log_queue.set(7);
    m.log_sent.inc_by(42);

    let got = m.render();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/metrics.golden.txt"
    );
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &got).unwrap();
    }
    let want = std::fs::read_to_string(path).expect("golden file (UPDATE_GOLDEN=1 to create)");
    if got != want {
        let diff: Vec<String> = want
            .lines()
            .zip(got.lines())
            .filter(|(w, g)| w != g)
            .take(10)
            .map(|(w, g)| format!("- {w}\n+ {g}"))
            .collect();
        panic!(
            "/metrics differs from {path} ({} vs {} lines):\n{}",
            want.lines().count(),
            got.lines().count(),
            diff.join("\n")
        );
    }
}

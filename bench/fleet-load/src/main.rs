//! fleet-load: the log service under a fleet's traffic, from a compiled
//! client that costs the server's cores little (bench/logger.sh --fleet
//! drives it; the figures are in docs/performance.md and docs/fleet.md).
//!
//!   fleet-load run --unix SOCK --nodes 1000 --seconds 30 --pages 3
//!   fleet-load fill --unix SOCK --hosts 1000 --minutes 10
//!
//! Prints one JSON document of figures on stdout.

mod batch;
mod conn;
mod fill;
mod fleet;
mod page;
mod rng;
mod stats;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use conn::{Pool, Target};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Simulated gestor nodes and live pages against the log service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Service {
    /// The log service over TCP: http://IP:PORT.
    #[arg(long)]
    url: Option<String>,
    /// The log service over a Unix socket.
    #[arg(long)]
    unix: Option<PathBuf>,
    /// Bearer token for POST /logs (LOGGER_TOKEN).
    #[arg(long, env = "FLEET_LOAD_TOKEN")]
    token: Option<String>,
    /// Bearer token for the reads (LOGGER_READ_TOKEN).
    #[arg(long, env = "FLEET_LOAD_READ_TOKEN")]
    read_token: Option<String>,
    /// Deadline of one request, the wait for a connection included.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
}

#[derive(Subcommand)]
enum Command {
    /// Nodes POSTing one cycle's batch every interval, with live pages open.
    Run {
        #[command(flatten)]
        service: Service,
        #[arg(long)]
        nodes: u32,
        /// How long nodes send (every POST due in this time is waited for).
        #[arg(long, default_value_t = 30.0)]
        seconds: f64,
        #[arg(long, default_value_t = 10.0)]
        interval: f64,
        /// A cycle starts up to this many seconds early or late.
        #[arg(long, default_value_t = 1.0)]
        jitter: f64,
        /// Live pages open the whole time (SSE stream and the page's reads).
        #[arg(long, default_value_t = 1)]
        pages: usize,
        /// The pages' range (the live page's default is 1h).
        #[arg(long, default_value = "1h")]
        range: String,
        /// Most connections the nodes share (HTTP/1.1 keep-alive).
        #[arg(long, default_value_t = 512)]
        connections: usize,
        /// Seeds the nodes' phases and their runs' ids (default: from the
        /// clock, so the ids of two runs never meet).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Fills a window of records (hosts × minutes of 10 s cycles ending now).
    Fill {
        #[command(flatten)]
        service: Service,
        /// Hosts are node-<first_host> onwards (to add hosts to an earlier fill).
        #[arg(long, default_value_t = 0)]
        first_host: u32,
        #[arg(long)]
        hosts: u32,
        #[arg(long, default_value_t = 10)]
        minutes: u32,
        /// Cycles (8 records each) per POST.
        #[arg(long, default_value_t = 50)]
        batch_cycles: usize,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        #[arg(long)]
        seed: Option<u64>,
    },
}

fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

fn range_seconds(range: &str) -> Result<u64> {
    let (digits, unit) = range.split_at(range.len().saturating_sub(1));
    let n: u64 = digits
        .parse()
        .map_err(|_| anyhow::anyhow!("--range {range:?}: expected e.g. 15m, 1h"))?;
    Ok(n * match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("--range {range:?}: the unit is one of s, m, h, d"),
    })
}

/// User + system CPU seconds of this process so far (the client's own cost).
fn own_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, r)| r)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0 // USER_HZ is 100 on Linux
}

async fn run(cli: Cli) -> Result<serde_json::Value> {
    match cli.command {
        Command::Run {
            service,
            nodes,
            seconds,
            interval,
            jitter,
            pages,
            range,
            connections,
            seed,
        } => {
            let target = Target::from_args(service.url.as_deref(), service.unix)?;
            let timeout = Duration::from_secs_f64(service.timeout);
            if !(jitter >= 0.0 && jitter < interval / 2.0) {
                bail!(
                    "--jitter {jitter}: must be at least 0 and under half of --interval {interval}"
                );
            }
            let range_s = range_seconds(&range)?;
            let tally = Arc::new(Mutex::new(page::PageTally::default()));
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let mut page_tasks = Vec::new();
            for index in 0..pages {
                // A browser opens up to 6 connections to one server.
                let pool = Arc::new(Pool::new(target.clone(), 6, timeout));
                let spec = page::PageSpec {
                    index,
                    range: range.clone(),
                    range_seconds: range_s,
                    token: service.read_token.clone(),
                };
                page_tasks.push(tokio::spawn(page::run(
                    pool,
                    spec,
                    tally.clone(),
                    stop_rx.clone(),
                )));
            }
            let pool = Arc::new(Pool::new(target, connections, timeout));
            let seed = seed.unwrap_or_else(clock_seed);
            let load = fleet::Load {
                nodes,
                seconds,
                interval,
                jitter,
                seed,
            };
            let cpu0 = own_cpu_seconds();
            let mut out = fleet::run(pool, service.token, &load).await;
            let _ = stop_tx.send(true);
            for task in page_tasks {
                let _ = task.await;
            }
            out["client_cpu_seconds"] =
                serde_json::json!(((own_cpu_seconds() - cpu0) * 100.0).round() / 100.0);
            out["live_pages"] = page::summary(&tally.lock().expect("tally lock"), pages);
            Ok(out)
        }
        Command::Fill {
            service,
            first_host,
            hosts,
            minutes,
            batch_cycles,
            concurrency,
            seed,
        } => {
            let target = Target::from_args(service.url.as_deref(), service.unix)?;
            let pool = Arc::new(Pool::new(
                target,
                concurrency,
                Duration::from_secs_f64(service.timeout),
            ));
            let fill = fill::Fill {
                first_host,
                hosts,
                minutes,
                batch_cycles: batch_cycles.max(1),
                concurrency: concurrency.max(1),
                seed: seed.unwrap_or_else(clock_seed),
            };
            fill::run(pool, service.token, &fill).await
        }
    }
}

fn main() {
    let cli = Cli::parse();
    // One thread: the client must leave the cores to the server it measures.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(figures) => println!("{figures}"),
        Err(e) => {
            eprintln!("fleet-load: {e:#}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(range_seconds("1h").unwrap(), 3600);
        assert_eq!(range_seconds("15m").unwrap(), 900);
        assert!(range_seconds("1y").is_err());
        assert!(range_seconds("").is_err());
    }
}

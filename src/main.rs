//! The `gestor` binary: parses the configuration, starts tracing and hands
//! over to the library.

use anyhow::Context;
use clap::Parser;
use gestor::collect::source;
use gestor::config::{Cli, Command, Config, LogFormat, PolicyCommand};
use gestor::cycle::report::CycleReport;
use gestor::cycle::{explain, table};
use gestor::daemon;
use gestor::decide::rules;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GESTOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Pretty => builder.init(),
    }
}

/// Cancels the token on SIGINT or SIGTERM.
fn cancel_on_signals(cancel: CancellationToken) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
        cancel.cancel();
    });
}

/// One cycle: a listing, not an event stream. Rates need two samples: a
/// first snapshot, then the cycle half an interval later.
async fn one_cycle(
    config: &Config,
    cancel: &CancellationToken,
) -> anyhow::Result<(daemon::Parts, CycleReport)> {
    let policy = daemon::load_policy(config)?;
    let mut parts = daemon::build(config, policy, false, cancel)?;
    parts.governor.prime().await;
    tokio::select! {
        _ = tokio::time::sleep(config.interval() / 2) => {}
        _ = cancel.cancelled() => {}
    }
    let report = parts.governor.run_cycle(cancel).await;
    Ok((parts, report))
}

/// `gestor policy explain`: a cycle that acts on nothing and ships nothing
/// (no spool, no intents), then each container's rule, figures and verdict.
async fn explain(mut config: Config, json: bool) -> anyhow::Result<bool> {
    config.dry_run = true;
    config.logger_url = String::new();
    config.create_logger = false;
    let cancel = CancellationToken::new();
    cancel_on_signals(cancel.clone());
    let (_parts, report) = one_cycle(&config, &cancel).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&explain::entries(&report))?
        );
    } else {
        print!("{}", explain::render(&report));
    }
    Ok(report.ok())
}

/// `gestor policy check FILE`: every error with its line and column.
fn check_policy(file: &std::path::Path) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "gestor: cannot read the policy file {}: {e}",
                file.display()
            );
            return ExitCode::from(2);
        }
    };
    match rules::parse(&text, Some(&file.display().to_string())) {
        Ok(policy) => {
            for r in &policy.rules {
                println!("rule {:?}: {}", r.name, r.verdict.kind());
            }
            println!("{}: {} rules, valid", file.display(), policy.rules.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}:{}:{}: {}", file.display(), e.line, e.column, e.message);
            ExitCode::FAILURE
        }
    }
}

async fn once(config: Config) -> anyhow::Result<bool> {
    let cancel = CancellationToken::new();
    cancel_on_signals(cancel.clone());
    let (mut parts, report) = one_cycle(&config, &cancel).await?;
    print!("{}", table::render(&report));
    drop(parts.governor);
    // The records are in the spool: the sender delivers what it can within
    // its final second, the next run the rest.
    parts.shipper_stop.cancel();
    if let Some(task) = parts.shipper_task.take() {
        let _ = task.await;
    }
    Ok(report.ok())
}

fn snapshot(config: &Config, summary: bool) -> anyhow::Result<()> {
    let src = source::SnapshotSource {
        mode: config.source,
        sysinfo: config.sysinfo.clone(),
        procfs: config.procfs.clone(),
    };
    let snap = src.read_blocking()?;
    if summary {
        let containers: std::collections::HashSet<_> = snap
            .processes
            .iter()
            .filter_map(|p| p.container_id.as_deref())
            .collect();
        println!(
            "source {}; {} processes in {} containers; {} CPUs; {} KiB RAM ({} KiB available)",
            snap.source.as_str(),
            snap.processes.len(),
            containers.len(),
            snap.system.cpu_count,
            snap.system.mem_total_kib,
            snap.system.mem_available_kib
        );
    } else {
        println!("{}", serde_json::to_string_pretty(&snap)?);
    }
    Ok(())
}

async fn healthcheck(config: &Config) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let work = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(std::time::Duration::from_secs(3), work)
        .await
        .context("timed out")?
        .with_context(|| format!("cannot reach {addr}"))?;
    let head = String::from_utf8_lossy(&buf);
    anyhow::ensure!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{}",
        head.lines().next().unwrap_or("no answer")
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.settings.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gestor: {e}");
            return ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Run);
    if let Command::CheckConfig = command {
        match toml::to_string(&config) {
            Ok(text) => {
                print!("{text}");
                println!("# configuration is valid");
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("gestor: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Command::Policy {
        command: PolicyCommand::Check { file },
    } = &command
    {
        return check_policy(file);
    }
    if let Command::Snapshot { summary } = command {
        return match snapshot(&config, summary) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("gestor: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if !matches!(command, Command::Healthcheck) {
        init_tracing(config.log_format);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gestor: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match command {
            Command::Once => once(config).await,
            Command::Policy {
                command: PolicyCommand::Explain { json },
            } => explain(config, json).await,
            Command::Healthcheck => healthcheck(&config).await.map(|()| true),
            _ => {
                let cancel = CancellationToken::new();
                cancel_on_signals(cancel.clone());
                daemon::run(config, cancel).await.map(|()| true)
            }
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("gestor: {e:#}");
            ExitCode::FAILURE
        }
    }
}

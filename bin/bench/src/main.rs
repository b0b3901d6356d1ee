//! `bench`: every benchmark the issues ask for, in one run, written to `docs/benchmarks.md`.
//!
//! ```text
//! cargo run --release --bin bench                      # full run (minutes)
//! cargo run --release --bin bench -- --quick           # smoke run, small sizes
//! cargo run --release --bin bench -- --only replay     # one benchmark
//! ```
//!
//! Each benchmark puts the engine's figure beside a baseline measured in the same run on the same
//! database (bare INSERT, raw read, naive call count, latency lower bound), so the ratios hold on
//! a noisy machine. Everything targets loopback; every database is created fresh and dropped.

mod api;
mod calls;
mod db;
mod provision;
mod replay;
mod report;
mod seed;
mod stats;

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;

/// Runs the openvle-moodle benchmarks and writes a markdown report.
#[derive(Debug, Clone, Parser)]
#[command(name = "bench", version)]
pub struct Opts {
    /// Small sizes, for a smoke run.
    #[arg(long)]
    pub quick: bool,
    /// Run one benchmark only: api, calls, provision or replay.
    #[arg(long, value_name = "NAME")]
    pub only: Option<String>,
    /// PostgreSQL server (a fresh database is created per benchmark and dropped after).
    #[arg(
        long,
        value_name = "URL",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    pub pg: String,
    /// Where to write the report.
    #[arg(long, value_name = "FILE", default_value = "docs/benchmarks.md")]
    pub out: PathBuf,
    /// Events replayed (default 1,000,000; --quick 20,000).
    #[arg(long, value_name = "N")]
    pub replay_events: Option<u64>,
    /// Internal: the database a replay child measures.
    #[arg(long, hide = true)]
    pub child_db: Option<String>,
    /// Internal: what a replay child measures (raw or replay).
    #[arg(long, hide = true)]
    pub child_mode: Option<String>,
}

const BENCHES: [&str; 4] = ["api", "calls", "provision", "replay"];

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let opts = Opts::parse();
    if opts.only.as_deref() == Some("replay-child") {
        return match replay::child(&opts).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("replay child: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(opts).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(opts: Opts) -> anyhow::Result<()> {
    if let Some(only) = &opts.only {
        if !BENCHES.contains(&only.as_str()) {
            anyhow::bail!("--only {only}: expected one of {}", BENCHES.join(", "));
        }
    }
    let wanted = |name: &str| !matches!(opts.only.as_deref(), Some(o) if o != name);
    let started = Instant::now();
    let mut sections = Vec::new();
    if wanted("api") {
        eprintln!("== api: command throughput and latency beside a bare INSERT");
        sections.push(api::run(&opts).await);
    }
    if wanted("calls") {
        eprintln!("== calls: Moodle REST calls per deployment");
        sections.push(calls::run(&opts).await);
    }
    if wanted("provision") {
        eprintln!("== provision: provisioning time beside its lower bound");
        sections.push(provision::run(&opts).await);
    }
    if wanted("replay") {
        eprintln!("== replay: replay speed beside the raw read, peak memory");
        sections.push(replay::run(&opts).await);
    }
    let elapsed = started.elapsed();
    let markdown = report::render(&opts, &sections, elapsed);
    if let Some(dir) = opts.out.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    std::fs::write(&opts.out, &markdown)?;
    eprintln!(
        "wrote {} ({} section(s), {:.0} s)",
        opts.out.display(),
        sections.len(),
        elapsed.as_secs_f64()
    );
    println!("{markdown}");
    Ok(())
}

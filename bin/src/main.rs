//! `openvle-moodle`: the engine's one binary. It only parses configuration and wires the crates
//! together; every behaviour lives in `domain`, `projections` and `adapters`.

mod cli;
mod cmd;
mod config;

use clap::Parser;

use cli::{AuditCommand, Cli, Command, MoodleCommand};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let default_log = match cli.command {
        Command::Demo(_) => "error",
        _ => "info",
    };
    config::init_tracing(&cli.global, default_log);
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let global = &cli.global;
    match cli.command {
        Command::Serve(args) => cmd::serve::run(global, args).await?,
        Command::Worker(args) => cmd::serve::run_worker(global, args).await?,
        Command::Migrate => cmd::ops::migrate(global).await?,
        Command::Audit(AuditCommand::Verify { json }) => {
            return cmd::ops::verify(global, json).await
        }
        Command::Audit(AuditCommand::Show(args)) => {
            let store = config::open_store(global).await?;
            cmd::audit_show::run(&store, &args).await?
        }
        Command::Reconcile { event, apply, json } => {
            let store = config::open_store(global).await?;
            let settings = config::moodle_settings(global)?;
            return cmd::reconcile::run(&store, &settings, event, apply, json).await;
        }
        Command::Replay(args) => {
            let store = config::open_store(global).await?;
            let settings = config::moodle_settings(global)?;
            cmd::replay::run(&store, saga::saga_settings(&settings), &args).await?
        }
        Command::Audit(AuditCommand::Export { after, event }) => {
            cmd::ops::export(global, after, event).await?
        }
        Command::Moodle(MoodleCommand::Check { json }) => {
            return cmd::ops::moodle_check(global, json).await
        }
        Command::MoodleSim(args) => cmd::sim::run(args).await?,
        Command::Status { json } => cmd::ops::status(global, json).await?,
        Command::Retry { event_id } => cmd::ops::retry(global, &event_id).await?,
        Command::Demo(args) => cmd::demo::run(global, args).await?,
    }
    Ok(std::process::ExitCode::SUCCESS)
}

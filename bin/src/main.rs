//! `openvle-moodle`: the engine's one binary. It only parses configuration and wires the crates
//! together; every behaviour lives in `domain`, `projections` and `adapters`.

mod cli;
mod cmd;
mod config;
mod secrets;
mod settings;
#[cfg(test)]
mod shipping_tests;

use clap::FromArgMatches;

use cli::{AuditCommand, Cli, Command, MoodleCommand, WebhooksCommand};
use settings::Settings;

/// Not `#[tokio::main]`: the `VAR_FILE` secrets are put in the environment before any thread
/// exists (setting a variable while another thread reads the environment is a data race).
fn main() -> std::process::ExitCode {
    if let Err(e) =
        secrets::resolve_files(|k| std::env::var(k).ok(), |k, v| std::env::set_var(k, v))
    {
        eprintln!("error: {e:#}");
        return std::process::ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(start())
}

async fn start() -> std::process::ExitCode {
    let matches = cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let default_log = match cli.command {
        Command::Demo(_) => "error",
        _ => "info",
    };
    config::init_tracing(&cli.global, default_log);
    match run(cli, &matches).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            cmd::ops::exit_code_of(&e)
        }
    }
}

async fn run(cli: Cli, matches: &clap::ArgMatches) -> anyhow::Result<std::process::ExitCode> {
    // The demo and the simulator choose their own settings; every other command reads them once.
    let settings = match &cli.command {
        Command::Demo(_) | Command::MoodleSim(_) | Command::Completions { .. } | Command::Man => {
            None
        }
        _ => Some(Settings::from_matches(&cli.global, matches)?),
    };
    let all = || {
        settings
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no settings for this command"))
    };
    if let Command::Serve(args) = &cli.command {
        let expose = |t: &Option<api::Token>| t.as_ref().map(|t| t.expose().to_string());
        secrets::check_api_tokens(
            matches.subcommand_matches("serve"),
            expose(&args.api_token).as_deref(),
            expose(&args.audit_token).as_deref(),
        )?;
        if let Some(secret) = &args.webhooks.webhook_secret {
            let source = matches
                .subcommand_matches("serve")
                .and_then(|m| m.value_source("webhook_secret"));
            secrets::check_token(
                "OPENVLE_WEBHOOK_SECRET",
                "--webhook-secret",
                secret.expose(),
                source,
            )?;
        }
    }
    match cli.command {
        Command::Serve(args) => cmd::serve::run(all()?, args).await?,
        Command::Worker(args) => cmd::serve::run_worker(all()?, args).await?,
        Command::Migrate => cmd::ops::migrate(all()?).await?,
        Command::Audit(AuditCommand::Verify { json }) => {
            return cmd::ops::verify(all()?, json).await
        }
        Command::Audit(AuditCommand::Show(args)) => {
            let store = cmd::ops::open_read_only(all()?).await?;
            cmd::audit_show::run(&store, &args).await?
        }
        Command::Reconcile { event, apply, json } => {
            let all = all()?;
            let store = config::open_store(all).await?;
            return cmd::reconcile::run(&store, all, event, apply, json).await;
        }
        Command::Replay(args) => {
            let all = all()?;
            let store = config::open_store(all).await?;
            cmd::replay::run(&store, all.saga(), &args).await?
        }
        Command::Audit(AuditCommand::Seal) => cmd::ops::seal(all()?).await?,
        Command::Audit(AuditCommand::Export { after, event }) => {
            cmd::ops::export(all()?, after, event).await?
        }
        Command::Moodle(MoodleCommand::Check {
            json,
            probe,
            template,
        }) => {
            let probe = probe.then_some(moodle::ProbeOptions { template });
            return cmd::ops::moodle_check(all()?, json, probe).await;
        }
        Command::MoodleSim(args) => cmd::sim::run(args).await?,
        Command::Status { json } => cmd::ops::status(all()?, json).await?,
        Command::Webhooks(WebhooksCommand::Status { json }) => {
            cmd::webhooks::status(all()?, json).await?
        }
        Command::Webhooks(WebhooksCommand::Redeliver { event, message }) => {
            cmd::webhooks::redeliver(all()?, event.as_deref(), message.as_deref()).await?
        }
        Command::Retry {
            event_id,
            all: every,
            code,
            participant,
        } => match (event_id, participant) {
            (Some(event_id), Some(p)) => cmd::ops::retry_participant(all()?, &event_id, &p).await?,
            (Some(event_id), None) if !every => cmd::ops::retry(all()?, &event_id).await?,
            _ => cmd::ops::retry_parked(all()?, code.as_deref()).await?,
        },
        Command::Demo(args) => cmd::demo::run(args).await?,
        Command::Completions { shell } => cmd::generate::completions(shell)?,
        Command::Man => cmd::generate::man()?,
    }
    Ok(std::process::ExitCode::SUCCESS)
}

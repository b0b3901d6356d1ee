//! Operator commands that open the store, do one thing and exit.

use std::process::ExitCode;
use tokio::io::AsyncWriteExt;

use anyhow::Context;

use crate::config::{open_store, redact_url};
use crate::settings::Settings;

/// Exit code of a read-only command that found no database of the engine where DATABASE_URL
/// points: distinct from 2 ("problem found") and from 1 (any other error).
const NO_STORE: u8 = 3;

/// The exit code of a failed command.
pub fn exit_code_of(e: &anyhow::Error) -> ExitCode {
    let no_store = e
        .chain()
        .any(|c| matches!(c.downcast_ref(), Some(store::StoreError::NotAStore(_))));
    if no_store {
        ExitCode::from(NO_STORE)
    } else {
        ExitCode::FAILURE
    }
}

/// The store of the read-only commands (`audit verify`, `audit export`, `audit show`, `status`):
/// an existing, migrated database, opened so that nothing is created or written.
pub async fn open_read_only(settings: &Settings) -> anyhow::Result<store::Store> {
    let url = &settings.database_url;
    store::Store::open_read_only(url).await.with_context(|| {
        format!(
            "opening the event store read-only (DATABASE_URL={})",
            redact_url(url)
        )
    })
}

pub async fn seal(settings: &Settings) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let sealed = store.seal().await.context("sealing the log")?;
    eprintln!("audit chain sealed up to position {sealed}");
    Ok(())
}

pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    store.migrate().await.context("applying migrations")?;
    eprintln!("migrations applied ({})", store.backend().as_str());
    Ok(())
}

/// Exit code 0 when the chain holds, 2 when it breaks, 3 when there is no database (1 is for
/// errors). Reads only: a row inserted by hand is reported, never sealed by the check.
pub async fn verify(settings: &Settings, json: bool) -> anyhow::Result<ExitCode> {
    let store = open_read_only(settings).await?;
    let report = store.verify().await.context("verifying the audit chain")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        match &report.first_break {
            None => {
                println!(
                    "audit chain intact: {} events checked, head position {}",
                    report.checked, report.head
                );
                if report.head > report.sealed_head {
                    println!(
                        "positions after {} are not sealed yet: a running engine seals what it \
                         appends at once, so a lasting unsealed tail was written around it (or a \
                         seal failed: `openvle-moodle audit seal`)",
                        report.sealed_head
                    );
                }
            }
            Some(b) => println!(
                "audit chain BROKEN at position {}: {}",
                b.position, b.reason
            ),
        }
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

pub async fn export(settings: &Settings, after: i64, event: Option<String>) -> anyhow::Result<()> {
    let store = open_read_only(settings).await?;
    let mut out = tokio::io::BufWriter::new(tokio::io::stdout());
    let summary = store
        .export(after, event.as_deref(), &mut out)
        .await
        .context("exporting the log")?;
    out.flush().await?;
    eprintln!("exported {summary:?}");
    Ok(())
}

/// Exit code 0 when Moodle is ready for the engine, 2 when something is missing.
/// `moodle check [--json] [--probe [--template ID]]`: the preflight, and with `probe` its
/// provisioning round; exit 0 when no problem was found, 2 otherwise.
pub async fn moodle_check(
    all: &Settings,
    json: bool,
    probe: Option<moodle::ProbeOptions>,
) -> anyhow::Result<ExitCode> {
    let settings = &all.moodle;
    if !settings.enabled {
        anyhow::bail!("the Moodle integration is disabled: set MOODLE_ENABLED=true, MOODLE_URL and MOODLE_TOKEN");
    }
    let client = moodle::MoodleClient::new(settings).context("building the Moodle client")?;
    // What the recorded environments point at, when there is a store to read (read-only).
    let targets = match store::Store::open_read_only(&all.database_url).await {
        Ok(store) => api::environment_targets(&store)
            .await
            .context("reading the environments")?,
        Err(e) => {
            eprintln!(
                "note: the environments' template courses and categories are not checked: no event store read at DATABASE_URL={} ({e})",
                redact_url(&all.database_url)
            );
            Vec::new()
        }
    };
    let report = match &probe {
        Some(opts) => {
            if !json {
                eprintln!("probing: a scratch course and account are made in Moodle, then deleted");
            }
            // An interrupt would stop the round before its cleanup: while it runs, Ctrl-C only
            // says so (listening replaces the default of ending the process).
            let guard = tokio::spawn(async {
                while tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!(
                        "the probe is running: it stops after removing what it made in Moodle"
                    );
                }
            });
            let report = moodle::check_and_probe(&client, settings, &targets, opts).await;
            guard.abort();
            report
        }
        None => moodle::check_with(&client, settings, &targets).await,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render_text());
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

pub async fn status(settings: &Settings, json: bool) -> anyhow::Result<()> {
    let store = open_read_only(settings).await?;
    let status = saga::status(&store)
        .await
        .context("reading the saga's status")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render_status(&status));
    }
    Ok(())
}

pub async fn retry(settings: &Settings, event_id: &str) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let by = format!("cli:{}", whoami());
    let resumed = saga::retry(&store, event_id, &by)
        .await
        .context("resuming the saga")?;
    if resumed {
        println!("event {event_id}: saga resumed; a worker picks it up now");
    } else {
        println!("event {event_id}: nothing was parked; re-queued for a fresh look");
    }
    Ok(())
}

/// `retry EVENT --participant P`: retries one parked participant.
pub async fn retry_participant(
    settings: &Settings,
    event_id: &str,
    participant_id: &str,
) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let by = format!("cli:{}", whoami());
    let resumed = saga::retry_participant(&store, event_id, participant_id, &by)
        .await
        .context("retrying the participant")?;
    if resumed {
        println!(
            "event {event_id}: participant {participant_id} retried; a worker picks it up now"
        );
    } else {
        println!("event {event_id}: participant {participant_id} was not parked; re-queued for a fresh look");
    }
    Ok(())
}

/// `retry --all [--code X]`: resumes every parked event, or those parked with `code`.
pub async fn retry_parked(settings: &Settings, code: Option<&str>) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let by = format!("cli:{}", whoami());
    let resumed = saga::retry_parked(&store, code, &by)
        .await
        .context("resuming the parked sagas")?;
    let which = code.map_or(String::new(), |c| format!(" with code {c}"));
    if resumed.is_empty() {
        println!("no event was parked{which}");
    } else {
        for id in &resumed {
            println!("event {id}: saga resumed");
        }
        println!(
            "{} event(s) parked{which} resumed; a worker picks them up now",
            resumed.len()
        );
    }
    Ok(())
}

fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "operator".to_string())
}

fn render_status(s: &saga::SagaStatus) -> String {
    let mut out = format!(
        "saga checkpoint {} of head {} (lag {}), {} event(s) pending, {} in flight\n",
        s.checkpoint, s.head, s.lag, s.pending, s.in_flight
    );
    if s.parked.is_empty() {
        out.push_str("no parked event\n");
    } else {
        out.push_str(&format!("{} parked event(s):\n", s.parked.len()));
        for p in &s.parked {
            out.push_str(&format!(
                "  {}  [{}]  {}\n",
                p.event_id,
                p.codes.join(", "),
                p.reason.as_deref().unwrap_or("(no reason recorded)")
            ));
            if let Some(park) = &p.park {
                out.push_str(&format!("      fix: {}\n", park.fix));
            }
            for q in &p.participants {
                out.push_str(&format!(
                    "      participant {} [{}]: {}\n      fix: {}\n",
                    q.participant_id, q.code, q.reason, q.fix
                ));
            }
        }
        out.push_str("resume one with: openvle-moodle retry <event-id> [--participant <id>]; every one parked with a code: openvle-moodle retry --all --code <code>\n");
    }
    if let Some(e) = &s.last_error {
        out.push_str(&format!(
            "last Moodle error: event {} ({}): {} after {} attempt(s)\n",
            e.event_id, e.state, e.reason, e.attempts
        ));
    }
    out
}

//! `openvle-moodle reconcile [--event ID] [--apply] [--json]`: compares the Moodle state the log
//! implies with the state Moodle holds, prints the difference, and with `--apply` converges Moodle
//! through the saga (recording what it saw and what it did as saga events).
//!
//! Exit code: 0 when Moodle is (now) as the log says, 2 when drift was found (dry run) or remains
//! (after `--apply`), or an event could not be compared; 1 for errors.

use std::process::ExitCode;

use anyhow::Context;

pub async fn run(
    store: &store::Store,
    all: &crate::settings::Settings,
    event: Option<String>,
    apply: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let settings = &all.moodle;
    if !settings.enabled {
        anyhow::bail!(
            "the Moodle integration is disabled: set MOODLE_ENABLED=true, MOODLE_URL and MOODLE_TOKEN"
        );
    }
    let client = moodle::MoodleClient::new(settings).context("building the Moodle client")?;
    let config = saga::SagaConfig {
        worker_id: format!(
            "reconcile-{}",
            saga::default_worker_id(std::env::var("HOSTNAME").ok().as_deref())
        ),
        concurrency: 1,
        ..saga::SagaConfig::default()
    };
    let worker = saga::Worker::new(store.clone(), Some(client), all.saga(), config);
    let mode = if apply {
        saga::ReconcileMode::Apply
    } else {
        saga::ReconcileMode::DryRun
    };
    let report = worker
        .reconcile(event.as_deref(), mode)
        .await
        .context("reconciling Moodle with the log")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        if let (Some(id), 0) = (&event, report.checked) {
            eprintln!(
                "event {id} has no Moodle side (not deployed, or deployed without a template course)"
            );
        }
        print!("{}", report.render_table());
    }
    // Dry run: `remaining` is the drift seen; with --apply, what is left after converging.
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

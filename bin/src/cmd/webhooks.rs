//! The webhooks from the binary's side: their settings typed into a [`webhooks::WebhookConfig`]
//! for `serve`, and `webhooks status` / `webhooks redeliver`.

use std::time::Duration;

use anyhow::Context;

use crate::cli::WebhookArgs;
use crate::cmd::ops::open_read_only;
use crate::config::open_store;
use crate::settings::Settings;

/// The webhooks' configuration, None while `OPENVLE_WEBHOOK_URL` is unset. A URL without a
/// secret, or a malformed one, stops start-up with the variable named (never its value).
pub fn config(
    args: &WebhookArgs,
    worker_id: &str,
) -> anyhow::Result<Option<webhooks::WebhookConfig>> {
    let url = args.webhook_url.as_deref().filter(|u| !u.trim().is_empty());
    let secret = args.webhook_secret.as_ref().filter(|s| !s.is_empty());
    let Some(url) = url else {
        if secret.is_some() {
            tracing::warn!(
                "OPENVLE_WEBHOOK_SECRET is set but OPENVLE_WEBHOOK_URL is not: no webhooks are sent"
            );
        }
        return Ok(None);
    };
    let Some(secret) = secret else {
        anyhow::bail!(
            "OPENVLE_WEBHOOK_SECRET: required when OPENVLE_WEBHOOK_URL is set; give \
             whsec_<base64 key>, e.g. whsec_$(openssl rand -base64 32) (webhook_secret_missing)"
        );
    };
    let mut cfg = webhooks::WebhookConfig::new(url, secret.expose())?;
    cfg.timeout = Duration::from_secs(args.webhook_timeout_secs);
    cfg.concurrency = usize::try_from(args.webhook_concurrency).unwrap_or(4);
    cfg.retry_base = Duration::from_millis(args.webhook_retry_base_ms);
    cfg.retry_max =
        Duration::from_millis(args.webhook_retry_max_ms.max(args.webhook_retry_base_ms));
    cfg.max_attempts = args.webhook_max_attempts;
    cfg.max_age = Duration::from_secs(args.webhook_max_age_secs);
    cfg.worker_id = worker_id.to_string();
    Ok(Some(cfg))
}

/// `webhooks status [--json]`.
pub async fn status(settings: &Settings, json: bool) -> anyhow::Result<()> {
    let store = open_read_only(settings).await?;
    let s = webhooks::status(&store)
        .await
        .context("reading the webhooks' status")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    println!(
        "outbox: checkpoint {} of {} (lag {}), {} pending, {} dead, {} delivered kept",
        s.checkpoint, s.head, s.lag, s.pending, s.dead, s.delivered
    );
    if let Some(age) = s.oldest_pending_age_secs {
        println!("oldest pending message: {age} s old");
    }
    if let Some(e) = &s.last_error {
        println!(
            "last failed delivery: {} {} of event {} ({}, {} attempt(s)): {}",
            e.message_id, e.kind, e.event_id, e.status, e.attempts, e.error
        );
    }
    for d in &s.dead_messages {
        println!(
            "dead: {} {} of event {} after {} attempt(s): {}",
            d.message_id, d.kind, d.event_id, d.attempts, d.error
        );
    }
    if s.dead > 0 {
        println!("send them again: openvle-moodle webhooks redeliver [--event ID] [--message ID]");
    }
    Ok(())
}

/// `webhooks redeliver [--event ID] [--message ID]`.
pub async fn redeliver(
    settings: &Settings,
    event: Option<&str>,
    message: Option<&str>,
) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let n = webhooks::redeliver(&store, event, message)
        .await
        .context("queueing dead webhook messages again")?;
    if n == 0 {
        println!("no dead message matched");
    } else {
        println!(
            "{n} dead message(s) queued again, with their ids; a running serve sends them now"
        );
    }
    Ok(())
}

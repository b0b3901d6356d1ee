//! `serve` (API + worker) and `worker` (worker only).

use std::sync::Arc;

use anyhow::Context;

use crate::cli::{ServeArgs, WorkerArgs};
use crate::config::open_store;
use crate::settings::Settings;

/// Resolves when SIGTERM or Ctrl-C arrives.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown requested: finishing the work in hand");
}

/// The API's `POST /events/{id}/moodle/retry`, answered by the saga's `retry`.
struct Retry(store::Store);

impl api::SagaControl for Retry {
    fn retry<'a>(
        &'a self,
        event_id: &'a str,
        by: &'a str,
    ) -> api::BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            saga::retry(&self.0, event_id, by)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn retry_parked<'a>(
        &'a self,
        code: Option<&'a str>,
        by: &'a str,
    ) -> api::BoxFuture<'a, Result<Vec<String>, String>> {
        Box::pin(async move {
            saga::retry_parked(&self.0, code, by)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn retry_participant<'a>(
        &'a self,
        event_id: &'a str,
        participant_id: &'a str,
        by: &'a str,
    ) -> api::BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            saga::retry_participant(&self.0, event_id, participant_id, by)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn status(&self) -> api::BoxFuture<'_, Result<serde_json::Value, String>> {
        Box::pin(async move {
            let status = saga::status(&self.0).await.map_err(|e| e.to_string())?;
            serde_json::to_value(status).map_err(|e| e.to_string())
        })
    }
}

pub fn saga_control(store: &store::Store) -> Arc<dyn api::SagaControl> {
    Arc::new(Retry(store.clone()))
}

pub fn saga_config(all: &Settings, args: &WorkerArgs) -> saga::SagaConfig {
    let mut cfg = saga::SagaConfig {
        concurrency: args.concurrency.max(1),
        max_duplications: args.max_duplications.max(1),
        backoff_base: std::time::Duration::from_millis(args.retry_base_ms.max(1)),
        backoff_max: std::time::Duration::from_millis(args.retry_max_ms.max(args.retry_base_ms)),
        max_attempts: args.max_attempts,
        reconcile: all.reconcile,
        ..Default::default()
    };
    cfg.worker_id = match &args.worker_id {
        Some(id) => id.clone(),
        None => saga::default_worker_id(std::env::var("HOSTNAME").ok().as_deref()),
    };
    cfg
}

/// The process's one Moodle client (one connection pool, shared by the API and the worker),
/// None when the integration is off.
pub fn moodle_client(all: &Settings) -> anyhow::Result<Option<moodle::MoodleClient>> {
    if !all.moodle.enabled {
        return Ok(None);
    }
    moodle::MoodleClient::new(&all.moodle)
        .map(Some)
        .context("building the Moodle client")
}

/// `enabled` or `disabled`, for the start-up log lines.
fn moodle_state(all: &Settings) -> &'static str {
    if all.moodle.enabled {
        "enabled"
    } else {
        "disabled"
    }
}

pub fn build_worker(
    store: &store::Store,
    all: &Settings,
    client: Option<moodle::MoodleClient>,
    args: &WorkerArgs,
) -> saga::Worker {
    saga::Worker::new(store.clone(), client, all.saga(), saga_config(all, args))
}

pub async fn run(all: &Settings, args: ServeArgs) -> anyhow::Result<()> {
    let settings = &all.moodle;
    let config = api::ApiConfig {
        writer_token: args.api_token.clone().filter(|t| !t.is_empty()),
        audit_token: args.audit_token.clone().filter(|t| !t.is_empty()),
        moodle: settings.clone(),
        http: api::HttpLimits {
            header_timeout: std::time::Duration::from_secs(args.http_header_timeout_secs),
            body_timeout: std::time::Duration::from_secs(args.http_body_timeout_secs),
            max_connections: usize::try_from(args.http_max_connections)
                .unwrap_or(api::MAX_CONNECTIONS),
        },
        ..Default::default()
    };
    let notice = api::check_bind_policy(args.listen, &config).map_err(anyhow::Error::msg)?;
    let hooks =
        crate::cmd::webhooks::config(&args.webhooks, &saga_config(all, &args.worker).worker_id)?;
    let store = open_store(all).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!("{notice}");
    tracing::info!(
        store = store.backend().as_str(),
        moodle = moodle_state(all),
        "openvle-moodle listening on http://{}",
        args.listen
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let client = moodle_client(all)?;
    // Status and retries read and write the saga's tables, also when the worker runs elsewhere.
    let state = api::AppState::sharing(store.clone(), config, client.clone())
        .with_saga(saga_control(&store));
    let worker_task = if args.no_worker {
        None
    } else {
        let worker = build_worker(&store, all, client, &args.worker);
        let mut rx = stop_rx.clone();
        Some(tokio::spawn(async move {
            worker
                .run(async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                })
                .await
        }))
    };
    // The webhooks: their own task and tables, never in the saga's way (docs/webhooks.md).
    let webhooks_task = match hooks {
        None => None,
        Some(cfg) => {
            api::metrics::init();
            webhooks::describe_metrics();
            let hooks = webhooks::Webhooks::new(store.clone(), all.saga(), cfg)?;
            let mut rx = stop_rx.clone();
            Some(tokio::spawn(async move {
                let ran = hooks
                    .run(async move {
                        let _ = rx.wait_for(|stop| *stop).await;
                    })
                    .await;
                if let Err(e) = &ran {
                    tracing::error!(error = %e, "webhooks stopped: none are sent until a restart");
                }
                ran
            }))
        }
    };
    let mut rx = stop_rx.clone();
    let projector = tokio::spawn(views::run_projector(
        store.clone(),
        all.saga(),
        views::ProjectorOptions::default(),
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        },
    ));
    let mut rx = stop_rx.clone();
    let health = tokio::spawn(api::health::run(
        state.clone(),
        std::time::Duration::from_secs(args.moodle_check_interval_secs),
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        },
    ));
    let mut rx = stop_rx.clone();
    let mut server = tokio::spawn(api::serve(listener, state, async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }));
    // Stop on a signal, or at once if the server itself fails.
    let early = tokio::select! {
        () = shutdown_signal() => None,
        res = &mut server => Some(res),
    };
    let _ = stop_tx.send(true);
    let served = match early {
        Some(res) => res,
        None => server.await,
    };
    let _ = projector.await;
    let _ = health.await;
    if let Some(task) = webhooks_task {
        task.await.context("webhooks task")?.context("webhooks")?;
    }
    if let Some(task) = worker_task {
        task.await
            .context("worker task")?
            .context("Moodle worker")?;
    }
    served.context("HTTP server task")?.context("HTTP server")?;
    tracing::info!("stopped cleanly");
    Ok(())
}

pub async fn run_worker(all: &Settings, args: WorkerArgs) -> anyhow::Result<()> {
    let store = open_store(all).await?;
    let worker = build_worker(&store, all, moodle_client(all)?, &args);
    tracing::info!(
        store = store.backend().as_str(),
        moodle = moodle_state(all),
        "Moodle worker started"
    );
    worker
        .run(shutdown_signal())
        .await
        .context("Moodle worker")?;
    tracing::info!("worker stopped cleanly");
    Ok(())
}

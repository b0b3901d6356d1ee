//! The projector: follows the global log from the views' checkpoint, in pages, and applies each
//! page to the read models and advances the checkpoint in one transaction (see [`crate::page`]
//! for the exactly-once rule and [`crate::fold`] for the bounded fold cache).

use std::future::Future;
use std::time::Duration;

use projections::saga::SagaSettings;
use store::Store;

use crate::db;
use crate::error::ViewsError;
use crate::follow::Follower;

/// Tuning of a [`Projector`]; `Default` suits the server.
#[derive(Debug, Clone)]
pub struct ProjectorOptions {
    /// Events read and committed per transaction (clamped to the store's `MAX_PAGE`).
    pub page_size: usize,
    /// OpenVLE events whose folds stay in memory between pages.
    pub cache_capacity: usize,
    /// How long `run_projector` sleeps when caught up.
    pub poll_interval: Duration,
}

impl Default for ProjectorOptions {
    fn default() -> Self {
        ProjectorOptions {
            page_size: 1000,
            cache_capacity: 10_000,
            poll_interval: Duration::from_millis(500),
        }
    }
}

/// Follows the log into the live read models. Keep one per process and call
/// [`catch_up`](Projector::catch_up) repeatedly (or use [`run_projector`]): its fold cache
/// makes each page cost only the page.
pub struct Projector {
    store: Store,
    settings: SagaSettings,
    options: ProjectorOptions,
    follower: Follower,
}

impl Projector {
    pub fn new(store: &Store, settings: SagaSettings, options: ProjectorOptions) -> Self {
        Projector {
            follower: Follower::new(
                store,
                settings.clone(),
                options.page_size,
                options.cache_capacity,
            ),
            store: store.clone(),
            settings,
            options,
        }
    }

    /// Applies everything after the checkpoint, page by page; returns the number of log events
    /// read and committed. When the views were computed with other settings (or by an older
    /// binary that did not record them), rebuilds them first with [`crate::replay`].
    pub async fn catch_up(&mut self) -> Result<u64, ViewsError> {
        let (position, recorded) = db::read_checkpoint(&self.store).await?;
        let stale = match recorded {
            Some(s) => s != self.settings.view_fingerprint(),
            None => position > 0,
        };
        if stale {
            tracing::info!(
                "view settings changed since the views were built: rebuilding them (replay)"
            );
            let report = crate::replay::replay(
                &self.store,
                &self.settings,
                &crate::replay::ReplayOptions {
                    page_size: self.options.page_size,
                    cache_capacity: self.options.cache_capacity,
                },
                |_| {},
            )
            .await?;
            // The replay's own catch-up used its own cache; start this one afresh.
            self.follower.clear();
            return Ok(report.events + report.caught_up);
        }
        self.follower.follow().await
    }
}

/// Brings the live read models up to the head of the log once (a fresh [`Projector`]); returns
/// the number of log events applied.
pub async fn catch_up(store: &Store, settings: &SagaSettings) -> Result<u64, ViewsError> {
    Projector::new(store, settings.clone(), ProjectorOptions::default())
        .catch_up()
        .await
}

/// Keeps the live read models following the log until `shutdown` completes: catches up, then
/// polls every `options.poll_interval`. Errors are logged and retried after a back-off (the
/// database may come back); the loop only ends on shutdown.
pub async fn run_projector(
    store: Store,
    settings: SagaSettings,
    options: ProjectorOptions,
    shutdown: impl Future<Output = ()>,
) {
    let poll = options.poll_interval;
    let mut projector = Projector::new(&store, settings, options);
    let mut backoff = poll;
    tokio::pin!(shutdown);
    loop {
        let wait = match projector.catch_up().await {
            Ok(n) => {
                if n > 0 {
                    tracing::debug!(events = n, "views caught up");
                }
                backoff = poll;
                poll
            }
            Err(e) => {
                tracing::warn!(error = %e, transient = e.is_transient(), "views projector failed; retrying");
                backoff = (backoff * 2).min(Duration::from_secs(30));
                backoff
            }
        };
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

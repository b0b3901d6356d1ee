//! The replay lock: a row of `views_checkpoint` naming the running replay, with a heartbeat, so
//! that one replay runs at a time and a dead one's lock expires by itself.

use crate::db::now_ms;
use crate::error::ViewsError;
use store::{with_pool, Store};

/// The row of `views_checkpoint` that locks a running replay.
const REPLAY_LOCK: &str = "replay";
/// A replay whose heartbeat is older than this is considered dead and its lock is taken over.
const REPLAY_TAKEOVER_MS: i64 = 120_000;

/// Takes the replay lock (a row of `views_checkpoint`), refusing while another replay's
/// heartbeat is fresh.
pub(crate) async fn take_replay_lock(store: &Store, holder: &str) -> Result<(), ViewsError> {
    let now = now_ms();
    let current: Option<(Option<String>, i64)> = with_pool!(store.pool(), |p| {
        sqlx::query_as("SELECT settings, updated_at_ms FROM views_checkpoint WHERE name = $1")
            .bind(REPLAY_LOCK)
            .fetch_optional(p)
            .await?
    });
    if let Some((other, beat)) = current {
        if now - beat < REPLAY_TAKEOVER_MS {
            return Err(ViewsError::ReplayRunning {
                holder: other.unwrap_or_else(|| "unknown".into()),
                age_secs: (now - beat) / 1000,
            });
        }
    }
    // Insert, or take over a stale lock; a concurrent taker loses on the heartbeat condition.
    let taken = with_pool!(store.pool(), |p| {
        sqlx::query(
            "INSERT INTO views_checkpoint (name, position, settings, updated_at_ms) \
             VALUES ($1, 0, $2, $3) ON CONFLICT (name) DO UPDATE \
             SET settings = excluded.settings, updated_at_ms = excluded.updated_at_ms \
             WHERE views_checkpoint.updated_at_ms < $4",
        )
        .bind(REPLAY_LOCK)
        .bind(holder)
        .bind(now)
        .bind(now - REPLAY_TAKEOVER_MS)
        .execute(p)
        .await?
        .rows_affected()
    });
    if taken == 0 {
        return Err(ViewsError::ReplayRunning {
            holder: "another process".into(),
            age_secs: 0,
        });
    }
    Ok(())
}

/// Refreshes the replay lock's heartbeat.
pub(crate) async fn heartbeat(store: &Store, holder: &str) -> Result<(), ViewsError> {
    with_pool!(store.pool(), |p| {
        sqlx::query(
            "UPDATE views_checkpoint SET updated_at_ms = $1 WHERE name = $2 AND settings = $3",
        )
        .bind(now_ms())
        .bind(REPLAY_LOCK)
        .bind(holder)
        .execute(p)
        .await?;
    });
    Ok(())
}

/// Releases the replay lock (best effort: a stale lock is taken over after the delay anyway).
pub(crate) async fn release_replay_lock(store: &Store, holder: &str) {
    let result = with_pool!(store.pool(), |p| {
        sqlx::query("DELETE FROM views_checkpoint WHERE name = $1 AND settings = $2")
            .bind(REPLAY_LOCK)
            .bind(holder)
            .execute(p)
            .await
            .map(|_| ())
    });
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not release the replay lock; it expires by itself");
    }
}

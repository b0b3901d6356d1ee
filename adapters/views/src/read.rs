//! Reading the read models, and the audit story of one OpenVLE event.

use projections::view::EventView;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use store::{DbPool, LogQuery, Store, StoredEvent, MAX_PAGE};

use crate::db::{self, with_pool};
use crate::error::ViewsError;
use crate::story::StoryFilter;

/// The views' checkpoint: the last log position folded into the live read models.
pub async fn checkpoint(store: &Store) -> Result<i64, ViewsError> {
    Ok(db::read_checkpoint(store).await?.0)
}

/// The stored view of one OpenVLE event (None: unknown, never deployed, or not projected yet).
pub async fn event_view(store: &Store, event_id: &str) -> Result<Option<EventView>, ViewsError> {
    let row: Option<(Json<EventView>,)> = with_pool!(store.pool(), |p| {
        sqlx::query_as("SELECT view FROM event_views WHERE event_id = $1")
            .bind(event_id)
            .fetch_optional(p)
            .await?
    });
    Ok(row.map(|(Json(v),)| v))
}

/// One row of the Moodle-side view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct MoodleCourse {
    pub event_id: String,
    /// The recorded Moodle course (None: not created yet, or lost).
    pub course_id: Option<i64>,
    pub shortname: Option<String>,
    /// None when unknown or deleted.
    pub visible: Option<bool>,
    pub deleted: bool,
    /// The view's Moodle state: `disabled`, `not_linked`, `pending`, `in_sync` or `failed`.
    pub state: String,
    pub pending_steps: i64,
    /// Participants recorded as enrolled.
    pub enrolled: i64,
    /// Code of the last Moodle error, while it stands.
    pub last_error: Option<String>,
    pub last_position: i64,
}

const COURSE_COLUMNS: &str = "event_id, course_id, shortname, visible, deleted, state, \
     pending_steps, enrolled, last_error, last_position";

/// The Moodle-side row of one OpenVLE event.
pub async fn moodle_course(
    store: &Store,
    event_id: &str,
) -> Result<Option<MoodleCourse>, ViewsError> {
    let sql = format!("SELECT {COURSE_COLUMNS} FROM moodle_courses WHERE event_id = $1");
    Ok(with_pool!(store.pool(), |p| {
        sqlx::query_as::<_, MoodleCourse>(&sql)
            .bind(event_id)
            .fetch_optional(p)
            .await?
    }))
}

/// Every row of the three read models and the checkpoint, ordered by key: what "the views"
/// are, for comparing a replay with the live build (tests, `replay --verify`). Loads
/// everything: meant for test-sized or diagnostic use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ViewsSnapshot {
    pub checkpoint: i64,
    pub event_views: Vec<(String, serde_json::Value, i64)>,
    pub moodle_courses: Vec<MoodleCourse>,
    pub audit_index: Vec<(String, i64, String, String)>,
}

pub async fn snapshot(store: &Store) -> Result<ViewsSnapshot, ViewsError> {
    let checkpoint = checkpoint(store).await?;
    let courses_sql = format!("SELECT {COURSE_COLUMNS} FROM moodle_courses ORDER BY event_id");
    let (views, moodle_courses, audit_index) = with_pool!(store.pool(), |p| {
        let views: Vec<(String, Json<serde_json::Value>, i64)> = sqlx::query_as(
            "SELECT event_id, view, last_position FROM event_views ORDER BY event_id",
        )
        .fetch_all(p)
        .await?;
        let courses: Vec<MoodleCourse> = sqlx::query_as(&courses_sql).fetch_all(p).await?;
        let audit: Vec<(String, i64, String, String)> = sqlx::query_as(
            "SELECT event_id, position, stream, event_type FROM audit_index \
             ORDER BY event_id, position",
        )
        .fetch_all(p)
        .await?;
        (views, courses, audit)
    });
    Ok(ViewsSnapshot {
        checkpoint,
        event_views: views
            .into_iter()
            .map(|(id, Json(v), p)| (id, v, p))
            .collect(),
        moodle_courses,
        audit_index,
    })
}

/// Deletes every read-model row and resets the checkpoint to 0 (the views are then rebuilt by
/// the projector or by `replay`).
pub async fn clear(store: &Store) -> Result<(), ViewsError> {
    let sql = "DELETE FROM event_views; DELETE FROM moodle_courses; DELETE FROM audit_index; \
               UPDATE views_checkpoint SET position = 0, settings = NULL WHERE name = 'views'";
    match store.pool() {
        DbPool::Sqlite(p) => {
            let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
            for stmt in db::statements(sql) {
                sqlx::query(stmt).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
        DbPool::Postgres(p) => {
            let mut tx = p.begin().await?;
            for stmt in db::statements(sql) {
                sqlx::query(stmt).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
    }
    Ok(())
}

/// Streams one OpenVLE event's story (its `event` and `moodle_sync` streams interleaved in
/// position order) to `sink`, filtered; returns how many events were shown.
///
/// Up to the views' checkpoint the story comes from the audit index (an index-only walk of the
/// event's positions joined to the log); after it, straight from the log, so the story is
/// complete even when the projector lags or never ran. Memory: one page.
pub async fn event_story(
    store: &Store,
    event_id: &str,
    filter: &StoryFilter,
    mut sink: impl FnMut(&StoredEvent) -> Result<(), ViewsError>,
) -> Result<u64, ViewsError> {
    let page = MAX_PAGE as i64;
    let indexed_upto = match db::read_checkpoint(store).await {
        Ok((position, _)) => position,
        // No views tables (e.g. migrations not applied yet): read the log only.
        Err(ViewsError::Database(e)) => {
            tracing::debug!(error = %e, "views not readable; reading the story from the log");
            0
        }
        Err(e) => return Err(e),
    };
    let mut shown = 0u64;
    let mut after = 0i64;
    if indexed_upto > 0 {
        loop {
            let rows = db::indexed_history_page(store, event_id, after, indexed_upto, page).await?;
            let Some(last) = rows.last() else { break };
            after = last.position;
            for e in rows.iter().filter(|e| filter.matches(e)) {
                sink(e)?;
                shown += 1;
            }
        }
        // The log after the last indexed event of this stream: what the projector has not
        // indexed yet (and, should a replay have swapped in a shorter index meanwhile, what
        // it lacks), cheaply when there is nothing.
    }
    loop {
        let rows = store
            .read_page(&LogQuery {
                after,
                limit: MAX_PAGE,
                stream: Some(event_id.to_string()),
                from: filter.from,
                to: filter.to,
                ..LogQuery::default()
            })
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.position;
        for e in rows
            .iter()
            .filter(|e| e.aggregate_type == "event" || e.aggregate_type == "moodle_sync")
            .filter(|e| filter.matches(e))
        {
            sink(e)?;
            shown += 1;
        }
    }
    Ok(shown)
}

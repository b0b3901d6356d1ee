//! Reading the read models: an event's current fold (stored fold plus the tail of the log
//! after it), the stored view, the Moodle side at a glance, a snapshot for comparisons, and the
//! audit story of one OpenVLE event.

use projections::view::{EnrolmentViewState, EventFold, EventView};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use store::{with_pool, LogQuery, Store, StoreError, StoredEvent, MAX_PAGE};

use crate::db::{self, CHECKPOINT};
use crate::error::ViewsError;
use crate::fold::{apply, is_history_stream};
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

/// The stored fold of one OpenVLE event and the position it reached, when the projector wrote
/// one this binary can read. Anything else (no row, a row from before folds were stored, a fold
/// of another shape, a read-model table missing) is `None`: the caller folds from the log,
/// which is always right, only slower. A database that is unavailable is an error.
async fn stored_fold(
    store: &Store,
    event_id: &str,
) -> Result<Option<(EventFold, i64)>, ViewsError> {
    let row: Result<Option<(Option<String>, i64)>, sqlx::Error> = with_pool!(store.pool(), |p| {
        sqlx::query_as("SELECT fold, last_position FROM event_views WHERE event_id = $1")
            .bind(event_id)
            .fetch_optional(p)
            .await
    });
    let (fold, last_position) = match row.map_err(StoreError::from) {
        Ok(Some((Some(fold), last_position))) => (fold, last_position),
        Ok(_) => return Ok(None),
        Err(e) if e.is_unavailable() => return Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, event_id, "read model not readable; folding the log");
            return Ok(None);
        }
    };
    match serde_json::from_str(&fold) {
        Ok(fold) => Ok(Some((fold, last_position))),
        Err(e) => {
            tracing::warn!(error = %e, event_id, "stored fold not readable; folding the log");
            Ok(None)
        }
    }
}

/// The fold of one OpenVLE event's streams as of now: the stored fold, then the event's own
/// events after its position, read on the log's index by aggregate id and position (all of the
/// history when nothing usable is stored). As fresh as the log (an answer right after an
/// append includes it) at the cost of the tail, not of the whole history. Render it with
/// [`EventFold::view`] and the caller's settings: the fold does not depend on them.
pub async fn current_fold(store: &Store, event_id: &str) -> Result<EventFold, ViewsError> {
    let (mut fold, mut after) = stored_fold(store, event_id)
        .await?
        .unwrap_or_else(|| (EventFold::new(), 0));
    loop {
        let (rows, next) = history_page(store, event_id, after, None).await?;
        for e in &rows {
            apply(&mut fold, e)?;
        }
        match next {
            Some(next) => after = next,
            None => return Ok(fold),
        }
    }
}

/// A page of one OpenVLE event's history after `after`, in position order, from the log's own
/// index by aggregate id and position (rows of other streams with the same id left out), and
/// where the next page starts (None: this was the last).
async fn history_page(
    store: &Store,
    event_id: &str,
    after: i64,
    filter: Option<&StoryFilter>,
) -> Result<(Vec<StoredEvent>, Option<i64>), ViewsError> {
    let rows = store
        .read_page(&LogQuery {
            after,
            limit: MAX_PAGE,
            stream: Some(event_id.to_string()),
            from: filter.and_then(|f| f.from),
            to: filter.and_then(|f| f.to),
            ..LogQuery::default()
        })
        .await?;
    let next = match rows.last() {
        Some(last) if rows.len() >= MAX_PAGE => Some(last.position),
        _ => None,
    };
    let rows = rows
        .into_iter()
        .filter(|e| is_history_stream(&e.aggregate_type))
        .collect();
    Ok((rows, next))
}

/// The Moodle side of one OpenVLE event at a glance, as the projector last wrote it (derived
/// from its `event_views` row: every field is the view's or the fold's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

impl MoodleCourse {
    fn of(
        event_id: String,
        view: &EventView,
        fold: Option<&EventFold>,
        last_position: i64,
    ) -> Self {
        let m = &view.moodle;
        let state = match serde_json::to_value(m.state) {
            Ok(serde_json::Value::String(s)) => s,
            _ => format!("{:?}", m.state),
        };
        MoodleCourse {
            event_id,
            course_id: m.course_id,
            shortname: fold.and_then(|f| f.sync.shortname.clone()),
            visible: m.course_visible,
            deleted: fold.is_some_and(|f| f.sync.course_deleted),
            state,
            pending_steps: i64::try_from(m.pending_steps).unwrap_or(i64::MAX),
            enrolled: m
                .enrolments
                .iter()
                .filter(|e| e.state == EnrolmentViewState::Enrolled)
                .count() as i64,
            last_error: m.last_error.as_ref().map(|e| e.code.clone()),
            last_position,
        }
    }
}

/// An `event_views` row as stored.
type Row = (String, Json<serde_json::Value>, Option<String>, i64);

fn course_of_row((id, Json(view), fold, last_position): &Row) -> Result<MoodleCourse, ViewsError> {
    let view: EventView = serde_json::from_value(view.clone())?;
    let fold: Option<EventFold> = fold.as_deref().map(serde_json::from_str).transpose()?;
    Ok(MoodleCourse::of(
        id.clone(),
        &view,
        fold.as_ref(),
        *last_position,
    ))
}

/// The Moodle-side row of one OpenVLE event.
pub async fn moodle_course(
    store: &Store,
    event_id: &str,
) -> Result<Option<MoodleCourse>, ViewsError> {
    let row: Option<Row> = with_pool!(store.pool(), |p| {
        sqlx::query_as(
            "SELECT event_id, view, fold, last_position FROM event_views WHERE event_id = $1",
        )
        .bind(event_id)
        .fetch_optional(p)
        .await?
    });
    row.as_ref().map(course_of_row).transpose()
}

/// Every row of the read model and the checkpoint, ordered by key: what "the views" are, for
/// comparing a replay with the live build (tests, diagnostics). Loads everything: meant for
/// test-sized or diagnostic use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ViewsSnapshot {
    pub checkpoint: i64,
    pub event_views: Vec<(String, serde_json::Value, i64)>,
    /// The stored folds, by event id (None: a row without one).
    pub folds: Vec<(String, Option<serde_json::Value>)>,
    pub moodle_courses: Vec<MoodleCourse>,
    /// `(event id, position, stream, event type)` of every history row the views have folded
    /// (up to the checkpoint), read from the log's own index: what the former `audit_index`
    /// table held, now that the story reads the log directly.
    pub audit_index: Vec<(String, i64, String, String)>,
}

pub async fn snapshot(store: &Store) -> Result<ViewsSnapshot, ViewsError> {
    let checkpoint = checkpoint(store).await?;
    let (rows, audit_index) = with_pool!(store.pool(), |p| {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT event_id, view, fold, last_position FROM event_views ORDER BY event_id",
        )
        .fetch_all(p)
        .await?;
        let audit: Vec<(String, i64, String, String)> = sqlx::query_as(
            "SELECT aggregate_id, position, aggregate_type, event_type FROM events \
             WHERE aggregate_type IN ('event', 'moodle_sync') AND position <= $1 \
             ORDER BY aggregate_id, position",
        )
        .bind(checkpoint)
        .fetch_all(p)
        .await?;
        (rows, audit)
    });
    let moodle_courses = rows.iter().map(course_of_row).collect::<Result<_, _>>()?;
    let mut folds = Vec::with_capacity(rows.len());
    let mut event_views = Vec::with_capacity(rows.len());
    for (id, Json(view), fold, last_position) in rows {
        let fold = fold.as_deref().map(serde_json::from_str).transpose()?;
        folds.push((id.clone(), fold));
        event_views.push((id, view, last_position));
    }
    Ok(ViewsSnapshot {
        checkpoint,
        event_views,
        folds,
        moodle_courses,
        audit_index,
    })
}

/// Deletes every read-model row and resets the checkpoint to 0 (the views are then rebuilt by
/// the projector or by `replay`).
pub async fn clear(store: &Store) -> Result<(), ViewsError> {
    let delete = "DELETE FROM event_views";
    let reset = "UPDATE views_checkpoint SET position = 0, settings = NULL WHERE name = $1";
    let begin = store.backend().begin_serialised();
    with_pool!(store.pool(), |p| {
        let mut tx = p.begin_with(begin).await?;
        sqlx::query(delete).execute(&mut *tx).await?;
        sqlx::query(reset)
            .bind(CHECKPOINT)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    });
    Ok(())
}

/// Streams one OpenVLE event's story (its `event` and `moodle_sync` streams interleaved in
/// position order) to `sink`, filtered; returns how many events were shown.
///
/// Read from the log's own index by aggregate id and position, so the story is complete
/// whether or not the projector ran. Memory: one page.
pub async fn event_story(
    store: &Store,
    event_id: &str,
    filter: &StoryFilter,
    mut sink: impl FnMut(&StoredEvent) -> Result<(), ViewsError>,
) -> Result<u64, ViewsError> {
    let mut shown = 0u64;
    let mut after = 0i64;
    loop {
        let (rows, next) = history_page(store, event_id, after, Some(filter)).await?;
        for e in rows.iter().filter(|e| filter.matches(e)) {
            sink(e)?;
            shown += 1;
        }
        match next {
            Some(next) => after = next,
            None => return Ok(shown),
        }
    }
}

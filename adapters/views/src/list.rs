//! Lists over the read models: the events (`GET /api/v1/events`, paged, filtered) and the
//! participants found by email, username or idnumber (`GET /api/v1/participants`).
//!
//! Both read the stored views (`event_views`), never the whole log: what the projector last
//! wrote, which trails the log by at most its poll interval.

use chrono::{DateTime, Utc};
use projections::view::EventView;
use serde::Serialize;
use sqlx::types::Json;
use store::{with_pool, LogQuery, Store};

use crate::error::ViewsError;

/// At most this many events per page.
pub const MAX_LIMIT: usize = 500;

/// Filters of [`events`]: each given one must hold.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// `disabled`, `not_linked`, `pending`, `in_sync` or `failed`.
    pub moodle_state: Option<String>,
    pub environment_id: Option<String>,
    /// `deployed`, `ended` or `deleted`.
    pub status: Option<String>,
    /// Changed (by OpenVLE or the saga) at or after this time.
    pub updated_since: Option<DateTime<Utc>>,
}

/// One event in a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventSummary {
    pub id: String,
    pub environment_id: String,
    pub name: String,
    pub status: String,
    pub moodle_state: String,
    pub course_id: Option<i64>,
    pub pending_steps: u64,
    pub participants: usize,
    /// Code of the last Moodle error, while it stands.
    pub last_error: Option<String>,
    /// The last log position folded into it: the page cursor (`after`).
    pub position: i64,
}

fn text<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

impl EventSummary {
    fn of(view: &EventView, position: i64) -> EventSummary {
        EventSummary {
            id: view.id.clone(),
            environment_id: view.environment_id.clone(),
            name: view.name.clone(),
            status: text(&view.status),
            moodle_state: text(&view.moodle.state),
            course_id: view.moodle.course_id,
            pending_steps: view.moodle.pending_steps,
            participants: view.participants.len(),
            last_error: view.moodle.last_error.as_ref().map(|e| e.code.clone()),
            position,
        }
    }
}

/// Events changed after position `after` that pass `filter`, in the order they last changed
/// (oldest first), at most `limit` (1..=[`MAX_LIMIT`]); and the cursor of the next page (None:
/// this was the last). An event that changes while a client pages moves to the end and is seen
/// again: following `next` until it is None and then polling with the last cursor is a feed of
/// changes.
pub async fn events(
    store: &Store,
    filter: &EventFilter,
    after: i64,
    limit: usize,
) -> Result<(Vec<EventSummary>, Option<i64>), ViewsError> {
    let limit = limit.clamp(1, MAX_LIMIT);
    let mut after = after;
    if let Some(since) = filter.updated_since {
        // The first log row recorded at or after `since`: events folded up to it or later.
        let first = store
            .read_page(&LogQuery {
                from: Some(since),
                limit: 1,
                ..LogQuery::default()
            })
            .await?;
        match first.first() {
            Some(row) => after = after.max(row.position - 1),
            None => return Ok((Vec::new(), None)),
        }
    }
    let b = store.backend();
    let mut sql =
        String::from("SELECT view, last_position FROM event_views WHERE last_position > $1");
    let mut binds: Vec<&str> = Vec::new();
    for (key, value) in [
        ("moodle.state", &filter.moodle_state),
        ("environment_id", &filter.environment_id),
        ("status", &filter.status),
    ] {
        if let Some(v) = value {
            binds.push(v.as_str());
            sql.push_str(&format!(
                " AND {} = ${}",
                b.json_text("view", key),
                binds.len() + 1
            ));
        }
    }
    sql.push_str(&format!(
        " ORDER BY last_position LIMIT ${}",
        binds.len() + 2
    ));
    let fetch = i64::try_from(limit + 1).unwrap_or(i64::MAX);
    let rows: Vec<(Json<EventView>, i64)> = with_pool!(store.pool(), |p| {
        let mut q = sqlx::query_as(&sql).bind(after);
        for v in &binds {
            q = q.bind(*v);
        }
        q.bind(fetch).fetch_all(p).await?
    });
    let more = rows.len() > limit;
    let items: Vec<EventSummary> = rows
        .iter()
        .take(limit)
        .map(|(Json(v), pos)| EventSummary::of(v, *pos))
        .collect();
    let next = if more {
        items.last().map(|e| e.position)
    } else {
        None
    };
    Ok((items, next))
}

/// What a participant search looks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonKey {
    Email,
    Username,
    Idnumber,
}

/// A person found in one event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonInEvent {
    pub event_id: String,
    pub event_name: String,
    pub event_status: String,
    pub participant_id: String,
    pub email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idnumber: Option<String>,
    pub role: String,
    /// The Moodle account the saga linked them to (None: not yet).
    pub moodle_user_id: Option<i64>,
    /// `enrolled`, `pending`, … as the event's view shows it.
    pub enrolment: Option<String>,
}

/// Every current participant of every event whose `key` is `value` (email and username
/// compared case-insensitively, as Moodle does; idnumber exactly), at most [`MAX_LIMIT`].
pub async fn people(
    store: &Store,
    key: PersonKey,
    value: &str,
) -> Result<Vec<PersonInEvent>, ViewsError> {
    // A coarse filter in SQL (the value as it appears in the stored JSON), then the exact test.
    let needle = serde_json::to_string(value)
        .map(|quoted| quoted.trim_matches('"').to_lowercase())
        .unwrap_or_default();
    let like = format!(
        "%{}%",
        needle
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let sql = match store.backend() {
        store::Backend::Sqlite => {
            "SELECT view FROM event_views WHERE lower(view) LIKE $1 ESCAPE '\\' ORDER BY event_id"
        }
        store::Backend::Postgres => {
            "SELECT view FROM event_views WHERE lower(view::text) LIKE $1 ESCAPE '\\' ORDER BY event_id"
        }
    };
    let rows: Vec<(Json<EventView>,)> = with_pool!(store.pool(), |p| {
        sqlx::query_as(sql).bind(&like).fetch_all(p).await?
    });
    let same = |have: Option<&str>| match (key, have) {
        (PersonKey::Idnumber, Some(h)) => h == value,
        (_, Some(h)) => h.to_lowercase() == value.to_lowercase(),
        (_, None) => false,
    };
    let mut out = Vec::new();
    for (Json(view),) in rows {
        for p in &view.participants {
            let have = match key {
                PersonKey::Email => Some(p.email.as_str()),
                PersonKey::Username => p.username.as_deref(),
                PersonKey::Idnumber => p.idnumber.as_deref(),
            };
            if !same(have) {
                continue;
            }
            let enrolment = view
                .moodle
                .enrolments
                .iter()
                .find(|e| e.participant_id == p.id);
            out.push(PersonInEvent {
                event_id: view.id.clone(),
                event_name: view.name.clone(),
                event_status: text(&view.status),
                participant_id: p.id.clone(),
                email: p.email.clone(),
                username: p.username.clone(),
                idnumber: p.idnumber.clone(),
                role: text(&p.role),
                moodle_user_id: enrolment.and_then(|e| e.moodle_user_id),
                enrolment: enrolment.map(|e| text(&e.state)),
            });
            if out.len() >= MAX_LIMIT {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_enrolment_state_reads_as_its_snake_case_name() {
        assert_eq!(
            super::text(&projections::view::EnrolmentViewState::Enrolled),
            "enrolled"
        );
    }
}

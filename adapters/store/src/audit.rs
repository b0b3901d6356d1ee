//! The audit hash chain over the log.
//!
//! `audit_chain(position, event_id, prev_hash, hash)`: for each sealed event,
//! `hash = hex(sha256(prev_hash || "\n" || canonical(event)))`, with `prev_hash` the hash of the
//! previous sealed position ([`GENESIS_HASH`] for the first). `canonical(event)` is a JSON array
//! `[position, aggregate_type, aggregate_id, sequence, event_type, event_version,
//! payload, metadata, recorded_at]` where payload and metadata are re-serialised with sorted
//! keys (independent of how the database stores JSON) and recorded_at is RFC 3339 with
//! microseconds in UTC.
//!
//! Sealers are serialised (PostgreSQL: transaction-scoped advisory lock [`SEAL_LOCK_KEY`];
//! SQLite: `BEGIN IMMEDIATE`, the single writer), so the chain is one line. Because positions
//! become visible in commit order, a sealer only ever sees a prefix of the final log; positions
//! it never sees (rolled-back appends) stay unsealed holes, and an event that later appears in
//! such a hole is reported by `verify`.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::model::{BreakKind, ChainBreak, StoredEvent, VerifyReport};
use crate::sql::{event_from_row, EVENT_COLUMNS};
use crate::store::{Store, SEAL_LOCK_KEY};

/// `prev_hash` of the first sealed event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Rows read per page by `seal` and `verify` (their memory use does not grow with the log).
const AUDIT_PAGE: i64 = 1000;

/// Serialises a JSON value with object keys sorted, whatever the map implementation.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The canonical rendering of an event row that the chain hashes.
pub fn canonical_event(e: &StoredEvent) -> String {
    let fields = Value::Array(vec![
        Value::from(e.position),
        Value::from(e.aggregate_type.as_str()),
        Value::from(e.aggregate_id.as_str()),
        Value::from(e.sequence),
        Value::from(e.event_type.as_str()),
        Value::from(e.event_version.as_str()),
        Value::from(canonical_json(&e.payload)),
        Value::from(canonical_json(&e.metadata)),
        Value::from(
            e.recorded_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        ),
    ]);
    fields.to_string()
}

/// `hex(sha256(prev_hash || "\n" || canonical_event(e)))`.
pub fn chain_hash(prev_hash: &str, e: &StoredEvent) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(canonical_event(e).as_bytes());
    hex::encode(h.finalize())
}

/// One audit_chain row.
#[derive(sqlx::FromRow)]
struct Link {
    position: i64,
    event_id: String,
    prev_hash: String,
    hash: String,
}

impl Store {
    /// Extends the audit chain to the current head; returns the sealed position (0: nothing
    /// sealed yet). Concurrent sealers wait for each other; with nothing new it is cheap.
    pub async fn seal(&self) -> Result<i64, StoreError> {
        let dialect = self.backend();
        crate::with_pool!(&self.inner.pool, |pool| {
            // One sealer at a time, so the chain tail read below cannot be stale.
            let mut tx = pool.begin_with(dialect.begin_serialised()).await?;
            if let Some(lock) = dialect.advisory_lock() {
                sqlx::query(lock)
                    .bind(SEAL_LOCK_KEY)
                    .execute(&mut *tx)
                    .await?;
            }
            let tail: Option<(i64, String)> = sqlx::query_as(
                "SELECT position, hash FROM audit_chain ORDER BY position DESC LIMIT 1",
            )
            .fetch_optional(&mut *tx)
            .await?;
            let (mut sealed, mut prev) = tail.unwrap_or_else(|| (0, GENESIS_HASH.to_string()));
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2"
            );
            loop {
                let rows = sqlx::query(&sql)
                    .bind(sealed)
                    .bind(AUDIT_PAGE)
                    .fetch_all(&mut *tx)
                    .await?;
                if rows.is_empty() {
                    break;
                }
                for row in &rows {
                    let e = event_from_row(row)?;
                    let hash = chain_hash(&prev, &e);
                    sqlx::query(
                        "INSERT INTO audit_chain (position, event_id, prev_hash, hash) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(e.position)
                    .bind(e.event_id.to_string())
                    .bind(&prev)
                    .bind(&hash)
                    .execute(&mut *tx)
                    .await?;
                    sealed = e.position;
                    prev = hash;
                }
            }
            tx.commit().await?;
            Ok(sealed)
        })
    }

    /// Highest sealed position (0: nothing sealed).
    pub async fn sealed_head(&self) -> Result<i64, StoreError> {
        Ok(crate::with_pool!(&self.inner.pool, |pool| {
            sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM audit_chain")
                .fetch_one(pool)
                .await?
        }))
    }

    async fn chain_page(&self, after: i64) -> Result<Vec<Link>, StoreError> {
        Ok(crate::with_pool!(&self.inner.pool, |pool| {
            sqlx::query_as(
                "SELECT position, event_id, prev_hash, hash FROM audit_chain \
                 WHERE position > $1 ORDER BY position LIMIT $2",
            )
            .bind(after)
            .bind(AUDIT_PAGE)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Events in `(after, upto]`, at most `limit`, in position order.
    async fn events_between(
        &self,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE position > $1 AND position <= $2 \
             ORDER BY position LIMIT $3"
        );
        crate::with_pool!(&self.inner.pool, |pool| {
            sqlx::query(&sql)
                .bind(after)
                .bind(upto)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(event_from_row)
                .collect()
        })
    }

    /// Recomputes the chain from `events` in position order, a page at a time, and reports the
    /// first position where the log and the chain disagree: an edited event, a deleted one, a
    /// reordered pair, an event inserted between sealed positions, or a broken link. Events
    /// after the sealed head are not yet sealed; they are counted in `head`, not as a break.
    pub async fn verify(&self) -> Result<VerifyReport, StoreError> {
        let head = self.head().await?;
        let sealed_head = self.sealed_head().await?;
        let mut checked: u64 = 0;
        let mut cursor: i64 = 0;
        let mut prev = GENESIS_HASH.to_string();
        let report = |checked, first_break: Option<ChainBreak>| VerifyReport {
            ok: first_break.is_none(),
            checked,
            sealed_head,
            head,
            first_break,
        };
        loop {
            let links = self.chain_page(cursor).await?;
            let Some(upper) = links.last().map(|l| l.position) else {
                break;
            };
            // One more than the links: if more events than links sit in this range, one of
            // them is unsealed and the merge below stops there.
            let events = self
                .events_between(cursor, upper, links.len() as i64 + 1)
                .await?;
            let mut ev = events.iter().peekable();
            for link in &links {
                if let Some(e) = ev.peek() {
                    if e.position < link.position {
                        return Ok(report(
                            checked,
                            Some(chain_break(
                                e.position,
                                BreakKind::Unsealed,
                                format!(
                                    "event {} ({}/{} #{}) sits between sealed positions but was \
                                     never sealed: inserted after sealing",
                                    e.event_id, e.aggregate_type, e.aggregate_id, e.sequence
                                ),
                            )),
                        ));
                    }
                }
                let event = match ev.peek() {
                    Some(e) if e.position == link.position => ev.next(),
                    _ => None,
                };
                let Some(e) = event else {
                    return Ok(report(
                        checked,
                        Some(chain_break(
                            link.position,
                            BreakKind::Deleted,
                            format!(
                                "sealed event {} at position {} is missing from the log: deleted",
                                link.event_id, link.position
                            ),
                        )),
                    ));
                };
                if link.prev_hash != prev {
                    return Ok(report(
                        checked,
                        Some(chain_break(
                            link.position,
                            BreakKind::LinkBroken,
                            "the audit row's prev_hash does not match the previous sealed hash: \
                             the audit chain was altered"
                                .to_string(),
                        )),
                    ));
                }
                let hash = chain_hash(&prev, e);
                if hash != link.hash {
                    let (kind, reason) = if e.event_id.to_string() != link.event_id {
                        (
                            BreakKind::Reordered,
                            format!(
                                "position {} holds event {} ({}/{} #{}) but event {} was sealed \
                                 there: the log was reordered",
                                e.position,
                                e.event_id,
                                e.aggregate_type,
                                e.aggregate_id,
                                e.sequence,
                                link.event_id
                            ),
                        )
                    } else {
                        (
                            BreakKind::Edited,
                            format!(
                                "event {} ({}/{} #{}) differs from what was sealed: edited",
                                e.event_id, e.aggregate_type, e.aggregate_id, e.sequence
                            ),
                        )
                    };
                    return Ok(report(checked, Some(chain_break(e.position, kind, reason))));
                }
                prev = link.hash.clone();
                checked += 1;
            }
            cursor = upper;
        }
        Ok(report(checked, None))
    }
}

fn chain_break(position: i64, kind: BreakKind, reason: String) -> ChainBreak {
    ChainBreak {
        position,
        kind,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_recursively() {
        let a = json!({"b": 1, "a": {"d": [1, {"z": null, "y": "x"}], "c": true}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":true,"d":[1,{"y":"x","z":null}]},"b":1}"#
        );
    }

    #[test]
    fn hash_depends_on_prev_and_content() {
        let e = StoredEvent {
            position: 1,
            event_id: uuid::Uuid::nil(),
            aggregate_type: "event".into(),
            aggregate_id: "x".into(),
            sequence: 1,
            event_type: "Ended".into(),
            event_version: "1".into(),
            payload: json!("Ended"),
            metadata: json!({"actor": "a"}),
            recorded_at: chrono::DateTime::from_timestamp_millis(1_700_000_000_123)
                .unwrap_or_default(),
        };
        let h = chain_hash(GENESIS_HASH, &e);
        assert_eq!(h.len(), 64);
        assert_ne!(h, chain_hash(&h, &e));
        let mut edited = e.clone();
        edited.metadata = json!({"actor": "b"});
        assert_ne!(h, chain_hash(GENESIS_HASH, &edited));
        assert!(canonical_event(&e).contains("2023-11-14T22:13:20.123000Z"));
    }
}

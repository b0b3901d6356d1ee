//! Idempotency keys of the HTTP contract.
//!
//! A command may carry `Idempotency-Key`. The same key with the same body answers the first
//! answer and appends nothing; the same key with another body is refused (409
//! `idempotency_key_reused`). Keys are scoped per actor, so two clients cannot collide.
//!
//! Protocol: `idempotency_begin` → `New` (the caller runs the command, then
//! `idempotency_complete` with the answer, or `idempotency_abort` on an error, since nothing was
//! appended and the key must stay usable). A request that dies between begin and complete
//! leaves the key `InFlight`; after [`StoreOptions::idempotency_stale_after`](crate::StoreOptions)
//! a request with the same body may take it over.

use chrono::Utc;

use crate::error::StoreError;
use crate::model::IdempotencyState;
use crate::store::Store;

/// An `idempotency_keys` row as `idempotency_begin` reads it.
#[derive(sqlx::FromRow)]
struct KeyRow {
    request_hash: String,
    status: Option<i64>,
    body: Option<String>,
    started_at_ms: i64,
}

impl Store {
    async fn idem_exec(&self, sql: &str, binds: &[IdemBind<'_>]) -> Result<u64, StoreError> {
        Ok(crate::with_pool!(&self.inner.pool, |pool| {
            let mut q = sqlx::query(sql);
            for b in binds {
                q = match b {
                    IdemBind::Text(t) => q.bind(*t),
                    IdemBind::Int(i) => q.bind(*i),
                };
            }
            q.execute(pool).await?.rows_affected()
        }))
    }

    async fn idem_row(&self, key: &str, actor: &str) -> Result<Option<KeyRow>, StoreError> {
        Ok(crate::with_pool!(&self.inner.pool, |pool| {
            sqlx::query_as(
                "SELECT request_hash, CAST(status AS BIGINT) AS status, body, started_at_ms \
                 FROM idempotency_keys WHERE actor = $1 AND key = $2",
            )
            .bind(actor)
            .bind(key)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Claims `key` for `actor`, or says how it was used before.
    pub async fn idempotency_begin(
        &self,
        key: &str,
        actor: &str,
        request_hash: &str,
    ) -> Result<IdempotencyState, StoreError> {
        // A row deleted by an abort between our insert and select is retried a few times.
        for _ in 0..3 {
            let now = Utc::now().timestamp_millis();
            let inserted = self
                .idem_exec(
                    "INSERT INTO idempotency_keys (actor, key, request_hash, started_at_ms) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (actor, key) DO NOTHING",
                    &[
                        IdemBind::Text(actor),
                        IdemBind::Text(key),
                        IdemBind::Text(request_hash),
                        IdemBind::Int(now),
                    ],
                )
                .await?;
            if inserted == 1 {
                return Ok(IdempotencyState::New);
            }
            let Some(KeyRow {
                request_hash: hash,
                status,
                body,
                started_at_ms: started,
            }) = self.idem_row(key, actor).await?
            else {
                continue;
            };
            if hash != request_hash {
                return Ok(IdempotencyState::Mismatch);
            }
            if let Some(status) = status {
                return Ok(IdempotencyState::Replay {
                    status: u16::try_from(status).unwrap_or(500),
                    body: body.unwrap_or_default(),
                });
            }
            let stale_ms = i64::try_from(self.inner.options.idempotency_stale_after.as_millis())
                .unwrap_or(i64::MAX);
            if now.saturating_sub(started) >= stale_ms {
                // Take over an abandoned claim, unless another request just did.
                let taken = self
                    .idem_exec(
                        "UPDATE idempotency_keys SET started_at_ms = $1 WHERE actor = $2 \
                         AND key = $3 AND status IS NULL AND started_at_ms = $4",
                        &[
                            IdemBind::Int(now),
                            IdemBind::Text(actor),
                            IdemBind::Text(key),
                            IdemBind::Int(started),
                        ],
                    )
                    .await?;
                if taken == 1 {
                    tracing::warn!(key, actor, "taking over an abandoned idempotency key");
                    return Ok(IdempotencyState::New);
                }
            }
            return Ok(IdempotencyState::InFlight);
        }
        Ok(IdempotencyState::InFlight)
    }

    /// Records the answer given to the first request with `key`.
    pub async fn idempotency_complete(
        &self,
        key: &str,
        actor: &str,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError> {
        self.idem_exec(
            "UPDATE idempotency_keys SET status = $1, body = $2, completed_at_ms = $3 \
             WHERE actor = $4 AND key = $5",
            &[
                IdemBind::Int(i64::from(status)),
                IdemBind::Text(body),
                IdemBind::Int(Utc::now().timestamp_millis()),
                IdemBind::Text(actor),
                IdemBind::Text(key),
            ],
        )
        .await?;
        Ok(())
    }

    /// Releases a key whose request failed (nothing was appended): the key may be used again.
    pub async fn idempotency_abort(&self, key: &str, actor: &str) -> Result<(), StoreError> {
        self.idem_exec(
            "DELETE FROM idempotency_keys WHERE actor = $1 AND key = $2 AND status IS NULL",
            &[IdemBind::Text(actor), IdemBind::Text(key)],
        )
        .await?;
        Ok(())
    }
}

enum IdemBind<'a> {
    Text(&'a str),
    Int(i64),
}

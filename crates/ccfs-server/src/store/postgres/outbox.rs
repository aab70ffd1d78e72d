//! The outbox part of the PostgreSQL store: a row of `callbacks` per finished job, written by
//! [`insert_callback`] in the transaction that publishes the job, and claimed by any node with
//! `FOR UPDATE SKIP LOCKED` (the claim's lease is the callback's `next_attempt_at`).

use async_trait::async_trait;
use ccfs_protocol::{AppId, ResponseId};
use jiff::Timestamp;

use super::{get, PgStore, Tx};
use crate::model::CallbackState::{Delivered, Failed, Pending, Superseded};
use crate::model::{Attempt, Callback};
use crate::store::convert::{
    callback_state_sql, callback_state_text, ms, once_sql, opt_from_ms, parse_callback_state,
};
use crate::store::rows::callback_from_row;
use crate::store::{ClaimLimits, Outbox, RetryCallback, StoreError, StoreResult};

/// The `cb_*` columns [`callback_from_row`] reads, of the callbacks table named `c`.
pub(super) const CALLBACK_COLUMNS: &str =
    "c.response_id AS cb_response_id, c.developer_id AS cb_developer_id, \
     c.url AS cb_url, c.body AS cb_body, c.state AS cb_state, c.attempts AS cb_attempts, \
     c.next_attempt_at AS cb_next_attempt_at, c.give_up_at AS cb_give_up_at, \
     c.last_error AS cb_last_error";

/// Claims the pending callbacks due (on the `callbacks_due` partial index): `$1` now, `$2` the
/// end of the claim, `$3` the limit, `$4` the developers to skip, `$5` the most of one developer
/// (the earliest due of each). Rows another node holds locked are skipped, not waited for; a
/// row locked is checked again as it is now (`c.state`, `c.next_attempt_at`), since another node
/// may have claimed or settled it after `ranked` saw it. The lock cannot be taken in `ranked`
/// itself (PostgreSQL refuses `FOR UPDATE` next to a window function). `due_at` is each one's
/// `next_attempt_at` before the claim, to return them in due order.
fn claim_sql() -> &'static str {
    once_sql!(format!(
        "WITH ranked AS (SELECT response_id, ROW_NUMBER() OVER \
             (PARTITION BY developer_id ORDER BY next_attempt_at, response_id) AS nth \
             FROM callbacks WHERE state = {pending} AND next_attempt_at <= $1 \
             AND developer_id <> ALL($4)), \
         due AS (SELECT c.response_id, c.next_attempt_at FROM callbacks c \
             JOIN ranked r ON r.response_id = c.response_id \
             WHERE r.nth <= $5 AND c.state = {pending} AND c.next_attempt_at <= $1 \
             ORDER BY c.next_attempt_at, c.response_id LIMIT $3 FOR UPDATE OF c SKIP LOCKED) \
         UPDATE callbacks c SET next_attempt_at = $2 FROM due \
         WHERE c.response_id = due.response_id \
         RETURNING {CALLBACK_COLUMNS}, due.next_attempt_at AS due_at",
        pending = callback_state_sql(Pending)
    ))
}

/// When the next pending callback is due (on the `callbacks_due` partial index).
fn next_callback_sql() -> &'static str {
    once_sql!(format!(
        "SELECT MIN(next_attempt_at) FROM callbacks WHERE state = {}",
        callback_state_sql(Pending)
    ))
}

/// Enqueues the callback of job `id`, inside the transaction that publishes the job.
pub(super) async fn insert_callback(
    tx: &mut Tx,
    id: &ResponseId,
    cb: &Callback,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO callbacks (response_id, developer_id, url, body, state, attempts, \
         next_attempt_at, give_up_at, last_error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id.as_str())
    .bind(cb.developer_id.as_str())
    .bind(cb.url.as_str())
    .bind(&cb.body)
    .bind(callback_state_text(cb.state))
    .bind(i64::from(cb.attempts))
    .bind(ms(cb.next_attempt_at))
    .bind(ms(cb.give_up_at))
    .bind(&cb.last_error)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait]
impl Outbox for PgStore {
    async fn claim_callbacks(
        &self,
        now: Timestamp,
        claim_until: Timestamp,
        limits: &ClaimLimits<'_>,
    ) -> StoreResult<Vec<Callback>> {
        if limits.total == 0 || limits.per_developer == 0 {
            return Ok(Vec::new());
        }
        let skip: Vec<&str> = limits.skip.iter().map(AppId::as_str).collect();
        let rows = sqlx::query(claim_sql())
            .bind(ms(now))
            .bind(ms(claim_until))
            .bind(i64::from(limits.total))
            .bind(skip)
            .bind(i64::from(limits.per_developer))
            .fetch_all(&self.pool)
            .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let due_at: i64 = get(row, "due_at")?;
            if let Some(cb) = callback_from_row(row)? {
                claimed.push((due_at, cb));
            }
        }
        // RETURNING keeps no order: due order, as the claim chose them.
        claimed.sort_by(|(a, x), (b, y)| {
            (a, x.response_id.as_str()).cmp(&(b, y.response_id.as_str()))
        });
        Ok(claimed.into_iter().map(|(_, cb)| cb).collect())
    }

    async fn record_attempt(&self, id: &ResponseId, attempt: &Attempt) -> StoreResult<()> {
        // Only a pending callback changes: a late report never reopens a settled one.
        let query = match attempt {
            Attempt::Delivered => sqlx::query(once_sql!(format!(
                "UPDATE callbacks SET state = {}, attempts = attempts + 1, last_error = NULL \
                 WHERE response_id = $1 AND state = {}",
                callback_state_sql(Delivered),
                callback_state_sql(Pending)
            )))
            .bind(id.as_str()),
            Attempt::Retry {
                next_attempt_at,
                error,
            } => sqlx::query(once_sql!(format!(
                "UPDATE callbacks SET attempts = attempts + 1, next_attempt_at = $2, \
                 last_error = $3 WHERE response_id = $1 AND state = {}",
                callback_state_sql(Pending)
            )))
            .bind(id.as_str())
            .bind(ms(*next_attempt_at))
            .bind(error.as_str()),
            Attempt::GaveUp { error } => sqlx::query(once_sql!(format!(
                "UPDATE callbacks SET state = {}, attempts = attempts + 1, last_error = $2 \
                 WHERE response_id = $1 AND state = {}",
                callback_state_sql(Failed),
                callback_state_sql(Pending)
            )))
            .bind(id.as_str())
            .bind(error.as_str()),
        };
        let done = query.execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            let exists: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM callbacks WHERE response_id = $1")
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!("callback {id}")));
            }
        }
        Ok(())
    }

    async fn supersede_callback(&self, id: &ResponseId) -> StoreResult<bool> {
        let done = sqlx::query(once_sql!(format!(
            "UPDATE callbacks SET state = {} WHERE response_id = $1 AND state = {}",
            callback_state_sql(Superseded),
            callback_state_sql(Pending)
        )))
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn next_callback_at(&self) -> StoreResult<Option<Timestamp>> {
        let next: Option<i64> = sqlx::query_scalar(next_callback_sql())
            .fetch_one(&self.pool)
            .await?;
        opt_from_ms(next, "next_attempt_at")
    }
    async fn retry_callback(
        &self,
        id: &ResponseId,
        now: Timestamp,
        give_up_at: Timestamp,
    ) -> StoreResult<RetryCallback> {
        // One statement: a callback another node is attempting is pending, not failed, and
        // stays as it is.
        let done = sqlx::query(once_sql!(format!(
            "UPDATE callbacks SET state = {}, attempts = 0, next_attempt_at = $2, \
             give_up_at = $3 WHERE response_id = $1 AND state = {}",
            callback_state_sql(Pending),
            callback_state_sql(Failed)
        )))
        .bind(id.as_str())
        .bind(ms(now))
        .bind(ms(give_up_at))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(RetryCallback::Queued);
        }
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM callbacks WHERE response_id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
        Ok(match state {
            None => RetryCallback::NotFound,
            Some(text) => RetryCallback::NotFailed(
                parse_callback_state(&text)
                    .ok_or_else(|| StoreError::Corrupt(format!("callback {id}: state {text:?}")))?,
            ),
        })
    }
}

//! The outbox part of the SQLite store: a row of `callbacks` per finished job, written by
//! [`insert_callback`] in the transaction that publishes the job.

use async_trait::async_trait;
use ccfs_protocol::{AppId, ResponseId};
use jiff::Timestamp;
use sqlx::{Sqlite, Transaction};

use super::{
    callback_state_sql, callback_state_text, from_ms, ms, once_sql, opt_from_ms, SqliteStore,
};
use crate::model::CallbackState::{Delivered, Failed, Pending, Superseded};
use crate::model::{Attempt, Callback};
use crate::store::convert::parse_callback_state;
use crate::store::rows::callback_from_row;
use crate::store::RetryCallback;
use crate::store::{ClaimLimits, Outbox, StoreError, StoreResult};

/// The `cb_*` columns [`callback_from_row`] reads, as the job query names them too.
const CALLBACK_COLUMNS: &str = "response_id AS cb_response_id, developer_id AS cb_developer_id, \
     url AS cb_url, body AS cb_body, state AS cb_state, attempts AS cb_attempts, \
     next_attempt_at AS cb_next_attempt_at, give_up_at AS cb_give_up_at, \
     last_error AS cb_last_error";

/// Pending callbacks due (on the `callbacks_due` partial index), in due order: `?` now, `?` the
/// developers to skip (a JSON array of app ids), `?` the most of one developer (the earliest
/// due of each), `?` the limit.
pub(super) fn due_callbacks_sql() -> &'static str {
    once_sql!(format!(
        "SELECT {CALLBACK_COLUMNS} FROM (SELECT *, ROW_NUMBER() OVER \
             (PARTITION BY developer_id ORDER BY next_attempt_at, response_id) AS nth \
             FROM callbacks WHERE state = {} AND next_attempt_at <= ? \
             AND developer_id NOT IN (SELECT value FROM json_each(?))) \
         WHERE nth <= ? ORDER BY next_attempt_at, response_id LIMIT ?",
        callback_state_sql(Pending)
    ))
}

/// When the next pending callback is due (on the `callbacks_due` partial index).
pub(super) fn next_callback_sql() -> &'static str {
    once_sql!(format!(
        "SELECT MIN(next_attempt_at) FROM callbacks WHERE state = {}",
        callback_state_sql(Pending)
    ))
}

/// Enqueues the callback of job `id`, inside the transaction that publishes the job.
pub(super) async fn insert_callback(
    tx: &mut Transaction<'static, Sqlite>,
    id: &ResponseId,
    cb: &Callback,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO callbacks (response_id, developer_id, url, body, state, attempts, \
         next_attempt_at, give_up_at, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
impl Outbox for SqliteStore {
    async fn claim_callbacks(
        &self,
        now: Timestamp,
        claim_until: Timestamp,
        limits: &ClaimLimits<'_>,
    ) -> StoreResult<Vec<Callback>> {
        if limits.total == 0 || limits.per_developer == 0 {
            return Ok(Vec::new());
        }
        let skip =
            serde_json::to_string(&limits.skip.iter().map(AppId::as_str).collect::<Vec<_>>())
                .map_err(|e| StoreError::Corrupt(format!("app ids as JSON: {e}")))?;
        let mut tx = self.begin_immediate().await?;
        let rows = sqlx::query(due_callbacks_sql())
            .bind(ms(now))
            .bind(skip)
            .bind(i64::from(limits.per_developer))
            .bind(i64::from(limits.total))
            .fetch_all(&mut *tx)
            .await?;
        let mut claimed = rows
            .iter()
            .map(callback_from_row)
            .collect::<StoreResult<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect::<Vec<_>>();
        for cb in &mut claimed {
            sqlx::query("UPDATE callbacks SET next_attempt_at = ? WHERE response_id = ?")
                .bind(ms(claim_until))
                .bind(cb.response_id.as_str())
                .execute(&mut *tx)
                .await?;
            // Returned as stored after the claim, like the job of `claim_job`.
            cb.next_attempt_at = from_ms(ms(claim_until), "claim_until")?;
        }
        tx.commit().await?;
        Ok(claimed)
    }

    async fn record_attempt(&self, id: &ResponseId, attempt: &Attempt) -> StoreResult<()> {
        // Only a pending callback changes: a late report never reopens a settled one.
        let query = match attempt {
            Attempt::Delivered => sqlx::query(once_sql!(format!(
                "UPDATE callbacks SET state = {}, attempts = attempts + 1, last_error = NULL \
                 WHERE response_id = ? AND state = {}",
                callback_state_sql(Delivered),
                callback_state_sql(Pending)
            )))
            .bind(id.as_str()),
            Attempt::Retry {
                next_attempt_at,
                error,
            } => sqlx::query(once_sql!(format!(
                "UPDATE callbacks SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? \
                 WHERE response_id = ? AND state = {}",
                callback_state_sql(Pending)
            )))
            .bind(ms(*next_attempt_at))
            .bind(error.as_str())
            .bind(id.as_str()),
            Attempt::GaveUp { error } => sqlx::query(once_sql!(format!(
                "UPDATE callbacks SET state = {}, attempts = attempts + 1, last_error = ? \
                 WHERE response_id = ? AND state = {}",
                callback_state_sql(Failed),
                callback_state_sql(Pending)
            )))
            .bind(error.as_str())
            .bind(id.as_str()),
        };
        let done = query.execute(&self.writer).await?;
        if done.rows_affected() == 0 {
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM callbacks WHERE response_id = ?")
                    .bind(id.as_str())
                    .fetch_optional(&self.reader)
                    .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!("callback {id}")));
            }
        }
        Ok(())
    }

    async fn supersede_callback(&self, id: &ResponseId) -> StoreResult<bool> {
        let done = sqlx::query(once_sql!(format!(
            "UPDATE callbacks SET state = {} WHERE response_id = ? AND state = {}",
            callback_state_sql(Superseded),
            callback_state_sql(Pending)
        )))
        .bind(id.as_str())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn next_callback_at(&self) -> StoreResult<Option<Timestamp>> {
        let next: Option<i64> = sqlx::query_scalar(next_callback_sql())
            .fetch_one(&self.reader)
            .await?;
        opt_from_ms(next, "next_attempt_at")
    }

    async fn retry_callback(
        &self,
        id: &ResponseId,
        now: Timestamp,
        give_up_at: Timestamp,
    ) -> StoreResult<RetryCallback> {
        let mut tx = self.begin_immediate().await?;
        let done = sqlx::query(once_sql!(format!(
            "UPDATE callbacks SET state = {}, attempts = 0, next_attempt_at = ?, give_up_at = ? \
             WHERE response_id = ? AND state = {}",
            callback_state_sql(Pending),
            callback_state_sql(Failed)
        )))
        .bind(ms(now))
        .bind(ms(give_up_at))
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        let answer = if done.rows_affected() == 1 {
            RetryCallback::Queued
        } else {
            let state: Option<String> =
                sqlx::query_scalar("SELECT state FROM callbacks WHERE response_id = ?")
                    .bind(id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            match state {
                None => RetryCallback::NotFound,
                Some(text) => {
                    RetryCallback::NotFailed(parse_callback_state(&text).ok_or_else(|| {
                        StoreError::Corrupt(format!("callback {id}: state {text:?}"))
                    })?)
                }
            }
        };
        tx.commit().await?;
        Ok(answer)
    }
}

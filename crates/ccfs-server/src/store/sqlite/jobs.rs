//! The job queue part of the SQLite store: a row of `jobs` each, with the job's callback (see
//! [`super::outbox`]) joined in when read, and its idempotency key in `idempotency_keys`.

use async_trait::async_trait;
use ccfs_protocol::ResponseId;
use jiff::Timestamp;
use sqlx::Sqlite;

use super::outbox::insert_callback;
use super::{
    floor_second, is_unique_violation, job_state_sql, ms, once_sql, parse_response_id, to_i64,
    SqliteStore,
};
use crate::model::idempotency::idempotency_cutoff;
use crate::model::JobState::{Cancelled, Expired, Failed, Queued, Running, Succeeded};
use crate::model::{Callback, Idempotency, Job, JobOutcome, JobState, NewJob};
use crate::store::convert::list_jobs_sql;
use crate::store::rows::job_from_row;
use crate::store::{CancelJob, CreateJob, JobFilter, JobQueue, StoreError, StoreResult};

/// A job with its callback: the columns [`job_from_row`] reads.
const JOB_SELECT: &str = "SELECT j.response_id, j.developer_id, j.file_name, \
     j.query_begin, j.query_end, j.query_account_id, j.query_agent_id, j.callback_url, j.timezone, \
     j.csv_header, j.created_at, j.idempotency_key, j.idempotency_hash, j.state, j.attempts, \
     j.started_at, j.record_count, j.file_count, j.file_size, j.sha256, j.finished_at, \
     j.expires_at, j.file_attempt, j.error, \
     c.response_id AS cb_response_id, c.developer_id AS cb_developer_id, c.url AS cb_url, \
     c.body AS cb_body, c.state AS cb_state, c.attempts AS cb_attempts, \
     c.next_attempt_at AS cb_next_attempt_at, c.give_up_at AS cb_give_up_at, \
     c.last_error AS cb_last_error \
     FROM jobs j LEFT JOIN callbacks c ON c.response_id = j.response_id";

pub(super) async fn job_in<'c, E>(executor: E, id: &str) -> StoreResult<Option<Job>>
where
    E: sqlx::Executor<'c, Database = Sqlite>,
{
    let sql = format!("{JOB_SELECT} WHERE j.response_id = ?");
    let row = sqlx::query(&sql).bind(id).fetch_optional(executor).await?;
    row.as_ref().map(job_from_row).transpose()
}

/// Counts a developer's active jobs (on the `jobs_active` partial index).
pub(super) fn active_jobs_sql() -> &'static str {
    once_sql!(format!(
        "SELECT COUNT(*) FROM jobs WHERE developer_id = ? AND state IN ({}, {})",
        job_state_sql(Queued),
        job_state_sql(Running)
    ))
}

/// Claims the oldest claimable job (on the `jobs_claimable` partial index): `?1` the owner,
/// `?2` the end of its lease, `?3` now. A running job without a lease could never be taken
/// over, so it counts as one whose lease ran out.
pub(super) fn claim_sql() -> &'static str {
    once_sql!(format!(
        "UPDATE jobs SET state = {running}, lease_owner = ?1, lease_until = ?2, \
         attempts = attempts + 1, started_at = COALESCE(started_at, ?3) \
         WHERE response_id = (SELECT response_id FROM jobs \
             WHERE state IN ({queued}, {running}) \
               AND (state = {queued} OR lease_until IS NULL OR lease_until < ?3) \
             ORDER BY created_at, rowid LIMIT 1) \
         RETURNING response_id",
        queued = job_state_sql(Queued),
        running = job_state_sql(Running)
    ))
}

/// Succeeded jobs due to expire (on the `jobs_expiry` partial index): `?1` now, `?2` the limit.
pub(super) fn expired_jobs_sql() -> &'static str {
    once_sql!(format!(
        "{JOB_SELECT} WHERE j.state = {} AND j.expires_at <= ? \
         ORDER BY j.expires_at, j.response_id LIMIT ?",
        job_state_sql(Succeeded)
    ))
}

/// The jobs of one developer, oldest first.
pub(super) async fn jobs_of<'c, E>(executor: E, developer: &str) -> StoreResult<Vec<Job>>
where
    E: sqlx::Executor<'c, Database = Sqlite>,
{
    let sql = format!("{JOB_SELECT} WHERE j.developer_id = ? ORDER BY j.created_at, j.rowid");
    let rows = sqlx::query(&sql)
        .bind(developer)
        .fetch_all(executor)
        .await?;
    rows.iter().map(job_from_row).collect()
}

/// The listing of [`JobQueue::list_jobs`] for a state filter: one statement text per filter.
fn list_sql(state: Option<JobState>) -> String {
    let tail = list_jobs_sql(state, |n| format!("?{n}"), "j.rowid");
    format!("{JOB_SELECT}{tail}")
}

#[async_trait]
impl JobQueue for SqliteStore {
    async fn create_job(&self, new: &NewJob, max_active: u32) -> StoreResult<CreateJob> {
        let developer = new.developer_id().as_str();
        let mut tx = self.begin_immediate().await?;
        if let Some(Idempotency { key, body_hash }) = &new.idempotency {
            let existing: Option<String> = sqlx::query_scalar(
                "SELECT response_id FROM idempotency_keys \
                 WHERE developer_id = ? AND key = ? AND request_hash = ? AND created_at > ?",
            )
            .bind(developer)
            .bind(key.as_str())
            .bind(body_hash.to_hex())
            .bind(ms(idempotency_cutoff(new.created_at)))
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(id) = existing {
                return Ok(CreateJob::Existing(parse_response_id(&id)?));
            }
        }
        let active: i64 = sqlx::query_scalar(active_jobs_sql())
            .bind(developer)
            .fetch_one(&mut *tx)
            .await?;
        if active >= i64::from(max_active) {
            return Ok(CreateJob::TooMany);
        }
        let (key, hash) = match &new.idempotency {
            Some(i) => (Some(i.key.as_str()), Some(i.body_hash.to_hex())),
            None => (None, None),
        };
        let inserted = sqlx::query(once_sql!(format!(
            "INSERT INTO jobs (response_id, developer_id, file_name, query_begin, query_end, \
             query_account_id, query_agent_id, callback_url, timezone, csv_header, created_at, \
             idempotency_key, idempotency_hash, state) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {})",
            job_state_sql(Queued)
        )))
        .bind(new.response_id.as_str())
        .bind(developer)
        .bind(new.file_name.as_str())
        .bind(floor_second(new.query.begin))
        .bind(floor_second(new.query.end))
        .bind(&new.query.account_id)
        .bind(&new.query.agent_id)
        .bind(new.callback_url.as_str())
        .bind(new.timezone.name())
        .bind(new.csv_header)
        .bind(ms(new.created_at))
        .bind(key)
        .bind(&hash)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!("job {}", new.response_id)))
            }
            Err(e) => return Err(e.into()),
        }
        if let (Some(key), Some(hash)) = (key, hash) {
            // Replaces a key that expired or came with another body: the newest job answers.
            sqlx::query(
                "INSERT OR REPLACE INTO idempotency_keys (developer_id, key, request_hash, response_id, created_at) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(developer)
            .bind(key)
            .bind(hash)
            .bind(new.response_id.as_str())
            .bind(ms(new.created_at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(CreateJob::Created)
    }

    async fn job(&self, id: &ResponseId) -> StoreResult<Option<Job>> {
        job_in(&self.reader, id.as_str()).await
    }

    async fn claim_job(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<Job>> {
        let mut tx = self.begin_immediate().await?;
        let claimed: Option<String> = sqlx::query_scalar(claim_sql())
            .bind(owner)
            .bind(ms(lease_until))
            .bind(ms(now))
            .fetch_optional(&mut *tx)
            .await?;
        let Some(id) = claimed else {
            return Ok(None);
        };
        // A row that cannot be read fails the claim and rolls it back: the job stays queued,
        // and the worker tries again after a pause (see `crate::model` on corrupt rows).
        let job = job_in(&mut *tx, &id).await?;
        tx.commit().await?;
        Ok(job)
    }

    async fn renew_lease(
        &self,
        id: &ResponseId,
        owner: &str,
        lease_until: Timestamp,
    ) -> StoreResult<bool> {
        let done = sqlx::query(once_sql!(format!(
            "UPDATE jobs SET lease_until = ? \
             WHERE response_id = ? AND lease_owner = ? AND state = {}",
            job_state_sql(Running)
        )))
        .bind(ms(lease_until))
        .bind(id.as_str())
        .bind(owner)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn finish_job(
        &self,
        id: &ResponseId,
        owner: &str,
        outcome: &JobOutcome,
        callback: &Callback,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_immediate().await?;
        // lease_owner stays, to tell which node built the file.
        let done = sqlx::query(once_sql!(format!(
            "UPDATE jobs SET state = {}, lease_until = NULL, record_count = ?, file_count = ?, \
             file_size = ?, sha256 = ?, finished_at = ?, expires_at = ?, file_attempt = ?, \
             error = NULL \
             WHERE response_id = ? AND lease_owner = ? AND state = {}",
            job_state_sql(Succeeded),
            job_state_sql(Running)
        )))
        .bind(to_i64(outcome.record_count, "record_count")?)
        .bind(i64::from(outcome.file_count))
        .bind(to_i64(outcome.file_size, "file_size")?)
        .bind(&outcome.sha256)
        .bind(ms(outcome.finished_at))
        .bind(ms(outcome.expires_at))
        .bind(outcome.file_attempt.map(i64::from))
        .bind(id.as_str())
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_callback(&mut tx, id, callback).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn fail_job(
        &self,
        id: &ResponseId,
        owner: &str,
        error: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(once_sql!(format!(
            "UPDATE jobs SET state = {}, lease_until = NULL, error = ?, finished_at = ? \
             WHERE response_id = ? AND lease_owner = ? AND state = {}",
            job_state_sql(Failed),
            job_state_sql(Running)
        )))
        .bind(error)
        .bind(ms(now))
        .bind(id.as_str())
        .bind(owner)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn release_job(&self, id: &ResponseId, owner: &str) -> StoreResult<()> {
        sqlx::query(once_sql!(format!(
            "UPDATE jobs SET state = {}, lease_owner = NULL, lease_until = NULL \
             WHERE response_id = ? AND lease_owner = ? AND state = {}",
            job_state_sql(Queued),
            job_state_sql(Running)
        )))
        .bind(id.as_str())
        .bind(owner)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn expired_jobs(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<Job>> {
        let rows = sqlx::query(expired_jobs_sql())
            .bind(ms(now))
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn mark_expired(&self, id: &ResponseId) -> StoreResult<()> {
        sqlx::query(once_sql!(format!(
            "UPDATE jobs SET state = {} WHERE response_id = ? AND state = {}",
            job_state_sql(Expired),
            job_state_sql(Succeeded)
        )))
        .bind(id.as_str())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn list_jobs(&self, filter: &JobFilter, now: Timestamp) -> StoreResult<Vec<Job>> {
        let rows = sqlx::query(&list_sql(filter.state))
            .bind(filter.developer_id.as_ref().map(|d| d.as_str()))
            .bind(filter.since.map(ms))
            .bind(ms(now))
            .bind(filter.limit.map_or(i64::MAX, i64::from))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn cancel_job(
        &self,
        id: &ResponseId,
        error: &str,
        now: Timestamp,
    ) -> StoreResult<CancelJob> {
        let mut tx = self.begin_immediate().await?;
        // lease_owner stays, to tell which node was building it.
        let done = sqlx::query(once_sql!(format!(
            "UPDATE jobs SET state = {}, lease_until = NULL, error = ?, finished_at = ? \
             WHERE response_id = ? AND state IN ({}, {})",
            job_state_sql(Cancelled),
            job_state_sql(Queued),
            job_state_sql(Running)
        )))
        .bind(error)
        .bind(ms(now))
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        let job = job_in(&mut *tx, id.as_str()).await?;
        tx.commit().await?;
        Ok(match job {
            None => CancelJob::NotFound,
            Some(job) if done.rows_affected() == 1 => CancelJob::Cancelled(job),
            Some(job) => CancelJob::Ended(job),
        })
    }
}

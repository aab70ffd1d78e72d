//! Reading a stored job or callback row back into the model, the same for every store: the
//! SQL differs between SQLite and PostgreSQL, the rows they give back do not (the same column
//! names, times as integers, states as their words), so each store only says how to read a
//! text, an integer or a flag from its row type ([`StoredRow`]).

use ccfs_protocol::ZipFileName;

use super::convert::{
    corrupt, from_ms, from_second, opt_from_ms, parse_app_id, parse_callback_state,
    parse_callback_url, parse_job_state, parse_response_id, parse_zone, to_u32, to_u64,
};
use super::StoreResult;
use crate::model::{
    BodyHash, Callback, Idempotency, IdempotencyKey, Job, JobOutcome, NewJob, RecordQuery,
};

/// A row of a store's query, read by column name; a value of another type than asked is a
/// corrupt row.
pub(crate) trait StoredRow {
    fn text(&self, column: &str) -> StoreResult<String>;
    fn opt_text(&self, column: &str) -> StoreResult<Option<String>>;
    fn int(&self, column: &str) -> StoreResult<i64>;
    fn opt_int(&self, column: &str) -> StoreResult<Option<i64>>;
    fn flag(&self, column: &str) -> StoreResult<bool>;
}

/// A job with its callback (the `cb_*` columns, absent when it has none).
pub(crate) fn job_from_row(row: &impl StoredRow) -> StoreResult<Job> {
    let id = row.text("response_id")?;
    let response_id = parse_response_id(&id)?;
    let whose = format!("job {id}");
    let file_name = row.text("file_name")?;
    let file_name = ZipFileName::parse(&file_name)
        .ok_or_else(|| corrupt(format_args!("{whose}: file name {file_name:?}")))?;
    let idempotency = match (
        row.opt_text("idempotency_key")?,
        row.opt_text("idempotency_hash")?,
    ) {
        (Some(key), Some(hash)) => Some(Idempotency {
            key: IdempotencyKey::parse(&key)
                .ok_or_else(|| corrupt(format_args!("{whose}: idempotency key {key:?}")))?,
            body_hash: BodyHash::from_hex(&hash)
                .ok_or_else(|| corrupt(format_args!("{whose}: body hash {hash:?}")))?,
        }),
        (None, None) => None,
        _ => {
            return Err(corrupt(format_args!(
                "{whose}: idempotency key without hash"
            )))
        }
    };
    let state = row.text("state")?;
    let state =
        parse_job_state(&state).ok_or_else(|| corrupt(format_args!("{whose}: state {state:?}")))?;
    let outcome = match row.opt_int("record_count")? {
        None => None,
        Some(record_count) => {
            let missing = |c: &str| corrupt(format_args!("{whose}: {c} missing from the outcome"));
            let need = |c: &str| row.opt_int(c)?.ok_or_else(|| missing(c));
            Some(JobOutcome {
                record_count: to_u64(record_count, "record_count")?,
                file_count: to_u32(need("file_count")?, "file_count")?,
                file_size: to_u64(need("file_size")?, "file_size")?,
                sha256: row.opt_text("sha256")?.ok_or_else(|| missing("sha256"))?,
                finished_at: from_ms(need("finished_at")?, "finished_at")?,
                expires_at: from_ms(need("expires_at")?, "expires_at")?,
                file_attempt: row
                    .opt_int("file_attempt")?
                    .map(|a| to_u32(a, "file_attempt"))
                    .transpose()?,
            })
        }
    };
    Ok(Job {
        job: NewJob {
            response_id,
            file_name,
            query: RecordQuery {
                developer_id: parse_app_id(&row.text("developer_id")?)?,
                begin: from_second(row.int("query_begin")?, "query_begin")?,
                end: from_second(row.int("query_end")?, "query_end")?,
                account_id: row.opt_text("query_account_id")?,
                agent_id: row.opt_text("query_agent_id")?,
            },
            callback_url: parse_callback_url(&row.text("callback_url")?, &whose)?,
            timezone: parse_zone(&row.text("timezone")?, &whose)?,
            csv_header: row.flag("csv_header")?,
            created_at: from_ms(row.int("created_at")?, "created_at")?,
            idempotency,
        },
        state,
        attempts: to_u32(row.int("attempts")?, "attempts")?,
        started_at: opt_from_ms(row.opt_int("started_at")?, "started_at")?,
        outcome,
        error: row.opt_text("error")?,
        callback: callback_from_row(row)?,
    })
}

/// The `cb_*` columns of a job or callback query; `None` when the job has no callback.
pub(crate) fn callback_from_row(row: &impl StoredRow) -> StoreResult<Option<Callback>> {
    let Some(id) = row.opt_text("cb_response_id")? else {
        return Ok(None);
    };
    let whose = format!("callback {id}");
    let state = row.text("cb_state")?;
    Ok(Some(Callback {
        response_id: parse_response_id(&id)?,
        developer_id: parse_app_id(&row.text("cb_developer_id")?)?,
        url: parse_callback_url(&row.text("cb_url")?, &whose)?,
        body: row.text("cb_body")?,
        state: parse_callback_state(&state)
            .ok_or_else(|| corrupt(format_args!("{whose}: state {state:?}")))?,
        attempts: to_u32(row.int("cb_attempts")?, "callback attempts")?,
        next_attempt_at: from_ms(row.int("cb_next_attempt_at")?, "next_attempt_at")?,
        give_up_at: from_ms(row.int("cb_give_up_at")?, "give_up_at")?,
        last_error: row.opt_text("cb_last_error")?,
    }))
}

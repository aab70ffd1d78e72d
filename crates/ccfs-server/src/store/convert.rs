//! What both stores share about how values are written to SQL: the one mapping of the job and
//! callback states to their words, and the time conversions (record times as whole unix
//! seconds, every other time as unix milliseconds; see [`super::sqlite`] for the precision this
//! gives). Both schemas store times as 64-bit integers, so the conversions live here once.

use ccfs_protocol::{AppId, ResponseId};
use jiff::Timestamp;

use super::{StoreError, StoreResult};
use crate::model::{CallbackState, CallbackUrl, JobState, TimeZoneName};

// ---- records ----

/// The column names both schemas give [`ccfs_protocol::record::TEXT_COLUMNS`], in the same order.
pub(crate) const RECORD_TEXT_COLUMNS: [&str; 19] = [
    "id",
    "developer_id",
    "account_id",
    "agent_id",
    "service_no",
    "skill_id",
    "call_id",
    "op_type",
    "op_object",
    "op_cause",
    "media_type",
    "vdn_id",
    "cc_id",
    "agent_type",
    "phone_no",
    "call_in_out",
    "location_id",
    "logon_sn",
    "skill_info_sn",
];

// ---- states ----

/// How the schema writes each job state. The one place that maps them: statements that name a
/// state take it from here, the migrations' CHECK constraints and partial indexes list the same
/// words, and a test checks the two agree.
pub(crate) fn job_state_text(s: JobState) -> &'static str {
    match s {
        JobState::Queued => "queued",
        JobState::Running => "running",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        JobState::Expired => "expired",
        JobState::Cancelled => "cancelled",
    }
}

/// How the schema writes each callback state (see [`job_state_text`]).
pub(crate) fn callback_state_text(s: CallbackState) -> &'static str {
    match s {
        CallbackState::Pending => "pending",
        CallbackState::Delivered => "delivered",
        CallbackState::Failed => "failed",
        CallbackState::Superseded => "superseded",
    }
}

pub(crate) fn parse_job_state(text: &str) -> Option<JobState> {
    JobState::ALL
        .into_iter()
        .find(|s| job_state_text(*s) == text)
}

pub(crate) fn parse_callback_state(text: &str) -> Option<CallbackState> {
    CallbackState::ALL
        .into_iter()
        .find(|s| callback_state_text(*s) == text)
}

/// A job state as an SQL literal, for statement texts. Literals rather than bound parameters:
/// the planner uses a partial index (`WHERE state IN ('queued', 'running')`) only when it can
/// see at prepare time that the query's condition implies the index's.
pub(crate) fn job_state_sql(s: JobState) -> String {
    format!("'{}'", job_state_text(s))
}

/// A callback state as an SQL literal (see [`job_state_sql`]).
pub(crate) fn callback_state_sql(s: CallbackState) -> String {
    format!("'{}'", callback_state_text(s))
}

/// The condition that a job (of the table named `j`) is in `state` as a client sees it at the
/// instant `now` (an SQL expression, a parameter): see [`crate::model::Job::state_at`]. A
/// succeeded job whose file has reached its expiry is expired from that instant, before
/// retention marks it.
pub(crate) fn seen_state_sql(state: JobState, now: &str) -> String {
    let succeeded = job_state_sql(JobState::Succeeded);
    match state {
        JobState::Succeeded => format!("(j.state = {succeeded} AND j.expires_at > {now})"),
        JobState::Expired => format!(
            "(j.state = {} OR (j.state = {succeeded} AND j.expires_at <= {now}))",
            job_state_sql(JobState::Expired)
        ),
        other => format!("j.state = {}", job_state_sql(other)),
    }
}

/// What follows the job query of [`crate::store::JobQueue::list_jobs`] (the table named `j`):
/// the filter and the order, newest first. Its parameters, named by `param(n)`: 1 the developer
/// (NULL for every one), 2 the earliest acceptance (NULL for any), 3 now, 4 the limit.
/// `tiebreak` (the insertion order) orders the jobs accepted in the same millisecond, the later
/// first.
pub(crate) fn list_jobs_sql(
    state: Option<JobState>,
    param: impl Fn(u8) -> String,
    tiebreak: &str,
) -> String {
    let state = state
        .map(|s| format!(" AND {}", seen_state_sql(s, &param(3))))
        .unwrap_or_default();
    format!(
        " WHERE ({dev} IS NULL OR j.developer_id = {dev}) \
         AND ({since} IS NULL OR j.created_at >= {since}){state} \
         ORDER BY j.created_at DESC, {tiebreak} DESC LIMIT {limit}",
        dev = param(1),
        since = param(2),
        limit = param(4),
    )
}

/// A statement text built once, on first use, and then shared: for statements that take their
/// state literals from [`job_state_sql`] and [`callback_state_sql`].
macro_rules! once_sql {
    ($text:expr) => {{
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        SQL.get_or_init(|| $text).as_str()
    }};
}
pub(crate) use once_sql;

// ---- conversions ----

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub(crate) fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

pub(crate) fn from_ms(v: i64, what: &str) -> StoreResult<Timestamp> {
    Timestamp::from_millisecond(v).map_err(|e| corrupt(format_args!("{what}: {e}")))
}

pub(crate) fn opt_from_ms(v: Option<i64>, what: &str) -> StoreResult<Option<Timestamp>> {
    v.map(|v| from_ms(v, what)).transpose()
}

/// Whole seconds, rounded down (a record time as stored).
pub(crate) fn floor_second(t: Timestamp) -> i64 {
    t.as_second() - i64::from(t.subsec_nanosecond() < 0)
}

/// Whole seconds, rounded up: for integer `s`, `s >= t` exactly when `s >= ceil_second(t)`.
pub(crate) fn ceil_second(t: Timestamp) -> i64 {
    t.as_second() + i64::from(t.subsec_nanosecond() > 0)
}

pub(crate) fn from_second(v: i64, what: &str) -> StoreResult<Timestamp> {
    Timestamp::from_second(v).map_err(|e| corrupt(format_args!("{what}: {e}")))
}

pub(crate) fn to_u32(v: i64, what: &str) -> StoreResult<u32> {
    u32::try_from(v).map_err(|_| corrupt(format_args!("{what}: {v} out of range")))
}

pub(crate) fn to_u64(v: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(v).map_err(|_| corrupt(format_args!("{what}: {v} out of range")))
}

/// A count that SQLite's signed integers cannot hold is refused before it is written.
pub(crate) fn to_i64(v: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| {
        StoreError::Database(sqlx::Error::Encode(
            format!("{what}: {v} out of range").into(),
        ))
    })
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

pub(crate) fn parse_response_id(s: &str) -> StoreResult<ResponseId> {
    ResponseId::parse(s).ok_or_else(|| corrupt(format_args!("response id {s:?}")))
}

pub(crate) fn parse_app_id(s: &str) -> StoreResult<AppId> {
    AppId::parse(s).ok_or_else(|| corrupt(format_args!("app id {s:?}")))
}

pub(crate) fn parse_callback_url(s: &str, whose: &str) -> StoreResult<CallbackUrl> {
    CallbackUrl::parse(s).ok_or_else(|| corrupt(format_args!("{whose}: callback URL {s:?}")))
}

/// A stored time zone name this server can convert with; one that its time zone database does
/// not know makes the row corrupt (see [`crate::model`]).
pub(crate) fn parse_zone(name: &str, whose: &str) -> StoreResult<TimeZoneName> {
    TimeZoneName::parse(name).map_err(|e| corrupt(format_args!("{whose}: {e}")))
}

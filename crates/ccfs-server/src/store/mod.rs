//! The store: the server's durable state, as six parts, one per concern, so that the server
//! runs the same on the embedded SQLite default and on a shared database, and so that code (and
//! its test fakes) can ask for only the part it uses:
//!
//! - [`Developers`] — developers and the accounts they own; a developer's removal with all it
//!   holds.
//! - [`Records`] — agent operation records: idempotent import, streamed export.
//! - [`JobQueue`] — export jobs: accept (with idempotency keys), claim under a lease, finish,
//!   fail, release, expire; list and cancel (for operators).
//! - [`Outbox`] — finished jobs' callbacks: claim the due ones, record each attempt, queue a
//!   given-up one again (for operators).
//! - [`Replay`] — the replay cache of accepted signatures, and the purge of it and of old
//!   idempotency keys.
//! - [`Downloads`] — the download slots of every node (flow control), under leases.
//!
//! [`Store`] is their sum, implemented by [`sqlite`] (the embedded default) and [`postgres`]
//! (a database shared by several nodes); both pass the same conformance suite. Every method is one atomic step: a job is claimed, finished or
//! released, and its callback enqueued, in single transactions, so a crash between two calls
//! loses nothing. The values the store holds are the domain model's ([`crate::model`]).

pub mod developers;
pub mod downloads;
pub mod jobs;
pub mod outbox;
pub mod postgres;
pub mod records;
pub mod replay;
pub mod sqlite;
pub mod transfer;

pub(crate) mod convert;
mod rows;
mod versions;

#[cfg(test)]
pub(crate) mod conformance;

use std::sync::Arc;

use async_trait::async_trait;

pub use developers::{DeleteDeveloper, Developers, Holdings};
pub use downloads::{DownloadSlotId, Downloads};
pub use jobs::{CancelJob, CreateJob, JobFilter, JobQueue};
pub use outbox::{ClaimLimits, Outbox, RetryCallback};
pub use records::{
    BlockingReader, InsertOutcome, OnConflict, Records, RowSink, RowSource, Stop,
    MAX_CONFLICTS_LISTED,
};
pub use replay::Replay;

/// An error of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row that must be unique already exists (e.g. a developer with the same app id).
    #[error("already exists: {0}")]
    Conflict(String),
    /// A row that must exist does not.
    #[error("not found: {0}")]
    NotFound(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// An error of the SQLite store's direct connections: the records' writer (see
    /// `sqlite::record_db`) and the exports' readers (`sqlite::record_stream`).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Stored data that cannot be read back as its type (a bad time, an unknown state, a time
    /// zone this server does not know).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The work waiting or under way across every node on the database (for `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepths {
    /// Export jobs waiting for a worker.
    pub jobs_queued: u64,
    /// Export jobs claimed by a worker (a lease run out included: it is still claimed until
    /// another worker takes it over).
    pub jobs_running: u64,
    /// Callbacks neither delivered, failed for good nor superseded.
    pub callbacks_pending: u64,
}

/// The whole store: every part, and whether it answers at all.
#[async_trait]
pub trait Store: Developers + Records + JobQueue + Outbox + Replay + Downloads {
    /// Whether the store answers (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;
    /// How many jobs are queued and running and how many callbacks pending, in one statement
    /// of three counts over the partial indexes of live jobs and pending callbacks, so it
    /// costs in proportion to the work in flight, not to the history.
    async fn queue_depths(&self) -> StoreResult<QueueDepths>;
}

/// The statement of [`Store::queue_depths`], the same on both stores.
fn queue_depths_sql() -> &'static str {
    use crate::model::{CallbackState, JobState};
    use convert::{callback_state_sql, job_state_sql, once_sql};
    once_sql!(format!(
        "SELECT \
           (SELECT COUNT(*) FROM jobs WHERE state = {queued}) AS jobs_queued, \
           (SELECT COUNT(*) FROM jobs WHERE state = {running}) AS jobs_running, \
           (SELECT COUNT(*) FROM callbacks WHERE state = {pending}) AS callbacks_pending",
        queued = job_state_sql(JobState::Queued),
        running = job_state_sql(JobState::Running),
        pending = callback_state_sql(CallbackState::Pending),
    ))
}

/// Reads the row of [`queue_depths_sql`].
fn queue_depths_from(row: &impl rows::StoredRow) -> StoreResult<QueueDepths> {
    let count = |column: &str| convert::to_u64(row.int(column)?, column);
    Ok(QueueDepths {
        jobs_queued: count("jobs_queued")?,
        jobs_running: count("jobs_running")?,
        callbacks_pending: count("callbacks_pending")?,
    })
}

/// Opens the store a URL names (an SQLite file is created when missing; a PostgreSQL database
/// must exist, and is connected to with a pool of at most `pool_size` connections). Either is
/// migrated to this version's schema.
pub async fn open(url: &crate::urls::DatabaseUrl, pool_size: u32) -> StoreResult<Arc<dyn Store>> {
    match url {
        crate::urls::DatabaseUrl::Sqlite(path) => {
            Ok(Arc::new(sqlite::SqliteStore::open_path(path).await?))
        }
        crate::urls::DatabaseUrl::Postgres(url) => Ok(Arc::new(
            postgres::PgStore::open(url.expose(), pool_size).await?,
        )),
    }
}

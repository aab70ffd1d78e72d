//! The store: one async trait for developers, records, jobs, callbacks, idempotency keys and
//! the replay cache, so the server runs the same on the embedded SQLite default and on a shared
//! database. Every method is one atomic step: a job is claimed, finished or released, and its
//! callback enqueued, in single transactions, so a crash between two calls loses nothing.

pub mod sqlite;

#[cfg(test)]
pub(crate) mod conformance;

use std::sync::Arc;

use async_trait::async_trait;
pub use ccfs_protocol::messages::OnConflict;
use ccfs_protocol::{AppId, Record, ResponseId, ZipFileName};
use futures::stream::BoxStream;
use jiff::Timestamp;

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
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Stored data that cannot be read back (a bad time, an unknown state).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What a developer may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Generate, status and download.
    Export,
    /// Import records for any developer (the CTI platform's credential).
    Ingest,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Export => "export",
            Role::Ingest => "ingest",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "export" => Some(Role::Export),
            "ingest" => Some(Role::Ingest),
            _ => None,
        }
    }
}

/// A developer (tenant). Secrets are held encrypted; see `tenants`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Developer {
    pub app_id: AppId,
    pub name: String,
    /// The current secret key, encrypted with the master key.
    pub secret_enc: Vec<u8>,
    /// The previous secret key, still valid until `old_secret_until`.
    pub old_secret_enc: Option<Vec<u8>>,
    pub old_secret_until: Option<Timestamp>,
    /// IANA time zone name.
    pub timezone: String,
    /// Account ids the developer owns, sorted, without duplicates.
    pub accounts: Vec<String>,
    /// Sorted, without duplicates.
    pub roles: Vec<Role>,
    pub enabled: bool,
    /// Whether exports start with a header row.
    pub csv_header: bool,
    pub created_at: Timestamp,
}

/// Which records an export selects: one developer's, `begin <= begin_time < end`, optionally
/// one account and one agent. Streamed in `(begin_time, id)` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordQuery {
    pub developer_id: String,
    pub begin: Timestamp,
    pub end: Timestamp,
    pub account_id: Option<String>,
    pub agent_id: Option<String>,
}

/// What [`Store::insert_records`] did with a batch (or, from [`Store::check_records`], would
/// do). Records are taken in batch order: a record whose `(developer_id, id)` is not stored is
/// inserted; one equal to the stored version in all 21 columns (times at whole seconds) is
/// already present, also when the batch sent it before; any other is a conflict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// New records stored.
    pub inserted: u64,
    /// Records equal to the stored version, left as they were.
    pub already_present: u64,
    /// Records whose id is stored with different content.
    pub conflicts: u64,
    /// Conflicting records that overwrote the stored version ([`OnConflict::Replace`]; a later
    /// record of the batch with the same id overwrites an earlier one).
    pub replaced: u64,
    /// The first [`MAX_CONFLICTS_LISTED`] conflicts: each record's index in the batch and id.
    pub first_conflicts: Vec<(usize, String)>,
}

/// How many conflicts an [`InsertOutcome`] lists.
pub const MAX_CONFLICTS_LISTED: usize = ccfs_protocol::messages::MAX_CONFLICT_IDS;

impl InsertOutcome {
    /// Whether the batch stored nothing because of a conflict ([`OnConflict::Fail`]); the
    /// counts other than `conflicts` are then 0.
    pub fn failed(&self, on_conflict: OnConflict) -> bool {
        on_conflict == OnConflict::Fail && self.conflicts > 0
    }

    /// Counts one conflict, listing it while the list is short.
    pub fn conflict(&mut self, index: usize, id: &str) {
        self.conflicts += 1;
        if self.first_conflicts.len() < MAX_CONFLICTS_LISTED {
            self.first_conflicts.push((index, id.to_owned()));
        }
    }

    /// Adds the outcome of the batch that followed `self`, whose first record was record
    /// number `offset` of the whole.
    pub fn add(&mut self, next: InsertOutcome, offset: usize) {
        self.inserted += next.inserted;
        self.already_present += next.already_present;
        self.replaced += next.replaced;
        self.conflicts += next.conflicts;
        let room = MAX_CONFLICTS_LISTED.saturating_sub(self.first_conflicts.len());
        self.first_conflicts.extend(
            next.first_conflicts
                .into_iter()
                .take(room)
                .map(|(i, id)| (offset + i, id)),
        );
    }
}

/// The life of an export job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    /// Succeeded once; its file has been deleted by retention.
    Expired,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Queued,
            Self::Running,
            Self::Succeeded,
            Self::Failed,
            Self::Expired,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// A job as accepted by generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub response_id: ResponseId,
    pub developer_id: AppId,
    pub file_name: ZipFileName,
    pub query: RecordQuery,
    pub callback_url: String,
    /// The developer's time zone when the job was accepted; the export is written in it.
    pub timezone: String,
    pub csv_header: bool,
    pub created_at: Timestamp,
    /// `(Idempotency-Key, SHA-256 hex of the request body)`.
    pub idempotency: Option<(String, String)>,
}

/// The answer of [`Store::create_job`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateJob {
    Created,
    /// The idempotency key was seen with the same body in the last 24 hours: this job.
    Existing(ResponseId),
    /// The developer already has `max_active` jobs queued or running.
    TooMany,
}

/// What a finished export produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    pub record_count: u64,
    pub file_count: u32,
    pub file_size: u64,
    pub sha256: String,
    pub finished_at: Timestamp,
    pub expires_at: Timestamp,
}

/// The delivery state of a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackState {
    Pending,
    Delivered,
    Failed,
    /// The file's owner downloaded the file before the callback got through: it has no
    /// purpose any more and is not retried.
    Superseded,
}

impl CallbackState {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackState::Pending => "pending",
            CallbackState::Delivered => "delivered",
            CallbackState::Failed => "failed",
            CallbackState::Superseded => "superseded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Delivered,
            Self::Failed,
            Self::Superseded,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// A callback in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    pub response_id: ResponseId,
    pub developer_id: AppId,
    pub url: String,
    /// The exact JSON body to POST.
    pub body: String,
    pub state: CallbackState,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    /// After this instant a failed attempt gives up.
    pub give_up_at: Timestamp,
    pub last_error: Option<String>,
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub job: NewJob,
    pub state: JobState,
    /// How many times a worker has claimed the job.
    pub attempts: u32,
    pub started_at: Option<Timestamp>,
    pub outcome: Option<JobOutcome>,
    pub error: Option<String>,
    /// The job's callback, once enqueued.
    pub callback: Option<Callback>,
}

/// How one callback attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    Retry {
        next_attempt_at: Timestamp,
        error: String,
    },
    GaveUp {
        error: String,
    },
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Whether the store answers (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;

    // ---- developers ----
    /// Fails with `Conflict` when the app id exists.
    async fn insert_developer(&self, d: &Developer) -> StoreResult<()>;
    async fn developer(&self, app_id: &str) -> StoreResult<Option<Developer>>;
    /// All developers, by app id.
    async fn developers(&self) -> StoreResult<Vec<Developer>>;
    /// Replaces everything of an existing developer (accounts too); `NotFound` otherwise.
    async fn update_developer(&self, d: &Developer) -> StoreResult<()>;

    // ---- records ----
    /// Stores the records in one transaction, comparing each with the stored version of its
    /// `(developer_id, id)` inside it (see [`InsertOutcome`]). Equal records are stored once.
    /// On a conflict, `on_conflict` decides: `Fail` rolls the whole batch back (the outcome
    /// then counts only the conflicts), `Skip` keeps the stored version, `Replace` overwrites
    /// it with the record's content.
    async fn insert_records(
        &self,
        records: &[Record],
        on_conflict: OnConflict,
    ) -> StoreResult<InsertOutcome>;
    /// What `insert_records` would answer for the records now, storing nothing (reads only).
    /// Another writer may change the answer before the records are stored.
    async fn check_records(
        &self,
        records: &[Record],
        on_conflict: OnConflict,
    ) -> StoreResult<InsertOutcome>;
    /// Streams the selected records in `(begin_time, id)` order without holding them in memory.
    fn stream_records(&self, query: RecordQuery) -> BoxStream<'static, StoreResult<Record>>;

    // ---- jobs ----
    /// Stores a queued job, unless the idempotency key matches or the developer has
    /// `max_active` jobs queued or running, in one transaction.
    async fn create_job(&self, job: &NewJob, max_active: u32) -> StoreResult<CreateJob>;
    async fn job(&self, id: &ResponseId) -> StoreResult<Option<Job>>;
    /// Takes the oldest queued job, or a running one whose lease has run out, marks it running
    /// with a lease for `owner` until `lease_until`, and counts the attempt.
    async fn claim_job(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<Job>>;
    /// Extends the lease; false when `owner` no longer holds the job.
    async fn renew_lease(
        &self,
        id: &ResponseId,
        owner: &str,
        lease_until: Timestamp,
    ) -> StoreResult<bool>;
    /// Marks the job succeeded and enqueues its callback, atomically; false when `owner` no
    /// longer holds the job (another node took it over).
    async fn finish_job(
        &self,
        id: &ResponseId,
        owner: &str,
        outcome: &JobOutcome,
        callback: &Callback,
    ) -> StoreResult<bool>;
    /// Marks the job failed with a reason; no callback.
    async fn fail_job(
        &self,
        id: &ResponseId,
        owner: &str,
        error: &str,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Gives the job back to the queue (shutdown, or a retryable error).
    async fn release_job(&self, id: &ResponseId, owner: &str) -> StoreResult<()>;
    /// Succeeded jobs whose `expires_at <= now`, oldest first, at most `limit`.
    async fn expired_jobs(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<Job>>;
    /// Marks a succeeded job expired (after its file was deleted).
    async fn mark_expired(&self, id: &ResponseId) -> StoreResult<()>;

    // ---- callbacks ----
    /// Claims up to `limit` pending callbacks due at `now`: each is returned once, and not again
    /// before `claim_until` unless an attempt is recorded.
    async fn claim_callbacks(
        &self,
        now: Timestamp,
        claim_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Callback>>;
    async fn record_attempt(&self, id: &ResponseId, attempt: &Attempt) -> StoreResult<()>;
    /// The earliest `next_attempt_at` of a pending callback, to know how long to sleep.
    async fn next_callback_at(&self) -> StoreResult<Option<Timestamp>>;
    /// Stops the job's callback when it is still pending (its file was downloaded); true when
    /// it was pending. An attempt in flight meanwhile records nothing (see `record_attempt`).
    async fn supersede_callback(&self, id: &ResponseId) -> StoreResult<bool>;

    // ---- replay cache and housekeeping ----
    /// Remembers an accepted signature until `expires_at`; false when it was already there.
    async fn remember_signature(&self, signature: &str, expires_at: Timestamp)
        -> StoreResult<bool>;
    /// Deletes replay entries and idempotency keys that have expired.
    async fn purge(&self, now: Timestamp) -> StoreResult<()>;
}

/// Opens the store a URL names (an SQLite file is created when missing).
pub async fn open(url: &crate::urls::DatabaseUrl) -> StoreResult<Arc<dyn Store>> {
    match url {
        crate::urls::DatabaseUrl::Sqlite(path) => {
            Ok(Arc::new(sqlite::SqliteStore::open_path(path).await?))
        }
    }
}

//! The job queue part of the store: export jobs from acceptance to expiry. A job is claimed
//! under a lease that its worker renews; a job whose lease runs out is taken over by another
//! worker, and only the lease's holder may finish, fail or release it. An operator may cancel
//! a job that is queued or running, which takes it from its holder: the holder's next renewal
//! and its finish are refused.

use async_trait::async_trait;
use ccfs_protocol::{AppId, ResponseId};
use jiff::Timestamp;

use super::StoreResult;
use crate::model::{Callback, Job, JobOutcome, JobState, NewJob};

/// The answer of [`JobQueue::create_job`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateJob {
    Created,
    /// The idempotency key was seen with the same body in the last 24 hours: this job.
    Existing(ResponseId),
    /// The developer already has `max_active` jobs queued or running.
    TooMany,
}

/// Which jobs [`JobQueue::list_jobs`] answers, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only this developer's.
    pub developer_id: Option<AppId>,
    /// Only those in this state as a client sees it at the listing's `now`
    /// ([`Job::state_at`]): `succeeded` leaves out a file past its expiry, `expired` takes it
    /// in.
    pub state: Option<JobState>,
    /// Only those accepted at or after this instant.
    pub since: Option<Timestamp>,
    /// At most this many; all when `None`.
    pub limit: Option<u32>,
}

/// The answer of [`JobQueue::cancel_job`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelJob {
    /// The job was queued or running and is cancelled now: as stored after.
    Cancelled(Job),
    /// The job had ended already (or ended first, when its finish raced the cancel): as it is.
    Ended(Job),
    NotFound,
}

#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// Stores a queued job, unless the idempotency key matches a key of the job's developer
    /// younger than [`crate::model::idempotency::IDEMPOTENCY_TTL`] with the same body hash, or
    /// the developer has `max_active` jobs queued or running, in one transaction. A stored key
    /// that expired or came with another body then names the new job.
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
    /// The jobs `filter` selects at `now`, newest first (by acceptance).
    async fn list_jobs(&self, filter: &JobFilter, now: Timestamp) -> StoreResult<Vec<Job>>;
    /// Cancels a queued or running job in one step: it ends `cancelled` at `now` with `error`
    /// as its reason, and its lease goes, so that its holder's renewal and finish are refused.
    /// Of a cancel and a finish (or a failure) racing, exactly one changes the job.
    async fn cancel_job(
        &self,
        id: &ResponseId,
        error: &str,
        now: Timestamp,
    ) -> StoreResult<CancelJob>;
}

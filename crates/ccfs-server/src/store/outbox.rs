//! The outbox part of the store: finished jobs' callbacks (enqueued by
//! [`super::JobQueue::finish_job`] in the same transaction that publishes the job), claimed
//! when due and settled by the attempts made on them.

use async_trait::async_trait;
use ccfs_protocol::ResponseId;
use jiff::Timestamp;

use super::StoreResult;
use crate::model::{Attempt, Callback};

#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Claims up to `limit` pending callbacks due at `now`: each is returned once, and not again
    /// before `claim_until` unless an attempt is recorded.
    async fn claim_callbacks(
        &self,
        now: Timestamp,
        claim_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Callback>>;
    /// Records how an attempt ended. Only a pending callback changes: a late report never
    /// reopens a settled one. `NotFound` when the job has no callback.
    async fn record_attempt(&self, id: &ResponseId, attempt: &Attempt) -> StoreResult<()>;
    /// The earliest `next_attempt_at` of a pending callback, to know how long to sleep.
    async fn next_callback_at(&self) -> StoreResult<Option<Timestamp>>;
    /// Stops the job's callback when it is still pending (its file was downloaded); true when
    /// it was pending. An attempt in flight meanwhile records nothing (see `record_attempt`).
    async fn supersede_callback(&self, id: &ResponseId) -> StoreResult<bool>;
}

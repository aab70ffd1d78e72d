//! The outbox part of the store: finished jobs' callbacks (enqueued by
//! [`super::JobQueue::finish_job`] in the same transaction that publishes the job), claimed
//! when due and settled by the attempts made on them.

use async_trait::async_trait;
use ccfs_protocol::{AppId, ResponseId};
use jiff::Timestamp;

use super::StoreResult;
use crate::model::{Attempt, Callback, CallbackState};

#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Claims pending callbacks due at `now`, in due order, within `limits`: each is returned
    /// once, and not again before `claim_until` unless an attempt is recorded.
    async fn claim_callbacks(
        &self,
        now: Timestamp,
        claim_until: Timestamp,
        limits: &ClaimLimits<'_>,
    ) -> StoreResult<Vec<Callback>>;
    /// Records how an attempt ended. Only a pending callback changes: a late report never
    /// reopens a settled one. `NotFound` when the job has no callback.
    async fn record_attempt(&self, id: &ResponseId, attempt: &Attempt) -> StoreResult<()>;
    /// The earliest `next_attempt_at` of a pending callback, to know how long to sleep.
    async fn next_callback_at(&self) -> StoreResult<Option<Timestamp>>;
    /// Stops the job's callback when it is still pending (its file was downloaded); true when
    /// it was pending. An attempt in flight meanwhile records nothing (see `record_attempt`).
    async fn supersede_callback(&self, id: &ResponseId) -> StoreResult<bool>;
    /// Queues a callback that gave up (`failed`) again, as if it were new: pending, due at
    /// `now`, no attempt counted, given up at `give_up_at`. The last error stays until the next
    /// attempt. Any other callback is left as it is.
    async fn retry_callback(
        &self,
        id: &ResponseId,
        now: Timestamp,
        give_up_at: Timestamp,
    ) -> StoreResult<RetryCallback>;
}

/// The answer of [`Outbox::retry_callback`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryCallback {
    /// It had given up; it is pending again.
    Queued,
    /// It is in this state, which is not `failed`: left as it is.
    NotFailed(CallbackState),
    /// The job has no callback (it never succeeded), or there is no such job.
    NotFound,
}

/// How many due callbacks one claim may take, and whose.
///
/// A node claims only what it can attempt at once: a claimed row that waits for a free slot
/// would sit claimed (invisible to other nodes) until its claim runs out.
#[derive(Debug, Clone, Copy)]
pub struct ClaimLimits<'a> {
    /// Callbacks in all.
    pub total: u32,
    /// Callbacks of one developer: the earliest due of each.
    pub per_developer: u32,
    /// Developers none of whose callbacks are taken (those already at their limit).
    pub skip: &'a [AppId],
}

impl ClaimLimits<'_> {
    /// Up to `total`, whoever's they are.
    pub fn total(total: u32) -> ClaimLimits<'static> {
        ClaimLimits {
            total,
            per_developer: u32::MAX,
            skip: &[],
        }
    }
}

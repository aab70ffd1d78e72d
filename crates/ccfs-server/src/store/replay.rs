//! The replay part of the store: signatures already accepted within the timestamp window
//! (`replay = refuse`), and the purge of what has expired of them and of idempotency keys.

use async_trait::async_trait;
use jiff::Timestamp;

use super::StoreResult;

#[async_trait]
pub trait Replay: Send + Sync + 'static {
    /// Remembers an accepted signature until `expires_at`; false when it was already there.
    async fn remember_signature(&self, signature: &str, expires_at: Timestamp)
        -> StoreResult<bool>;
    /// Deletes replay entries that have expired by `now`, and idempotency keys that no longer
    /// answer at `now` (see [`crate::model::idempotency::idempotency_cutoff`]).
    async fn purge(&self, now: Timestamp) -> StoreResult<()>;
}

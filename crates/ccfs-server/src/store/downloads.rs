//! The downloads part of the store: the download slots of the whole cluster, for flow control
//! (`max_downloads`, SPEC code 0300008). Each download in progress holds one row, under a lease
//! that the node holding it renews; a row whose lease has ended counts for nothing, so the slots
//! of a node that died without releasing them free themselves, and is purged.
//!
//! A lease is live while `now < lease_until`. The clock is the caller's, as for job leases.

use async_trait::async_trait;
use jiff::Timestamp;

use super::StoreResult;

/// One slot taken by [`Downloads::acquire_download`]. Ids are never reused (an identity column,
/// SQLite `AUTOINCREMENT`), so a late release of a slot that already expired and was purged
/// can never free another download's slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DownloadSlotId(pub(crate) i64);

#[async_trait]
pub trait Downloads: Send + Sync + 'static {
    /// Takes a slot of `developer` for `holder` (a node) until `lease_until`, unless the
    /// developer already holds `max` slots whose lease is live at `now`; the developer's slots
    /// whose lease has ended are deleted first. Atomic across every node: the count and the
    /// insert happen as if alone.
    async fn acquire_download(
        &self,
        developer: &str,
        holder: &str,
        max: u32,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<DownloadSlotId>>;
    /// Extends the lease of every slot `holder` holds to `until`; how many it holds. A slot
    /// whose lease already ended is not brought back (another download may have taken its
    /// place).
    async fn renew_downloads(
        &self,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<u64>;
    /// Frees a slot; a slot already gone (released, or expired and purged) is no error.
    async fn release_download(&self, id: DownloadSlotId) -> StoreResult<()>;
    /// Frees every slot of `holder` (a node stopping cleanly, once its requests have ended).
    async fn release_downloads_of(&self, holder: &str) -> StoreResult<()>;
    /// Deletes every slot whose lease has ended by `now`, of every developer (the slots of a
    /// developer who does not download again are never purged by an acquire).
    async fn purge_downloads(&self, now: Timestamp) -> StoreResult<()>;
}

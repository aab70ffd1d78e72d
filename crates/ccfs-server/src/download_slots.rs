//! Flow control of downloads (`max_downloads`, SPEC code 0300008), counted across the cluster:
//! a download holds a slot in the store ([`crate::store::Downloads`]) from before its body is
//! streamed until the body has been sent or the client went away, so every node on one
//! database counts the same slots.
//!
//! Each slot this node holds is counted in `ccfs_downloads_in_progress` (this node's downloads,
//! while the store's slots are the cluster's), from when it is taken until it is given back.
//!
//! Leases: a slot is held under a lease of `job_lease_secs` (the same takeover time as an export
//! job's: a node that dies holding a slot frees it that long later), which this node renews for
//! all its slots at once while they are held ([`spawn_renewal`]).
//!
//! Concurrency choices:
//! - One renewal loop per node, not one per download: one indexed `UPDATE … WHERE holder = $1`
//!   every third of a lease renews every slot of the node, whatever the number of downloads,
//!   and a download that ends has no task to stop. A slot taken between two renewals starts
//!   with a whole lease of its own, so it never waits more than a third of one to be renewed.
//! - A slot is released from a task spawned by its `Drop`, because the body stream that owns it
//!   is dropped in synchronous code (by the HTTP server, when the body ends or the connection
//!   goes): the release is a store round trip that must not block there. A release that fails
//!   or never runs (the process stops first) leaves the row to its lease.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::store::{DownloadSlotId, Store, StoreResult};

/// This node's side of the cluster's download slots. Cheap to clone.
#[derive(Clone)]
pub struct DownloadSlots {
    store: Arc<dyn Store>,
    /// This node's name in the slots' `holder` column (its name in job leases too).
    node_id: String,
    lease: SignedDuration,
}

/// One download in progress: freed by [`DownloadSlot::release`] before its last bytes go out,
/// or, when the client goes away first, when dropped.
pub struct DownloadSlot {
    store: Arc<dyn Store>,
    id: DownloadSlotId,
    /// Released already: nothing left for the drop to do.
    released: bool,
}

impl DownloadSlots {
    /// Slots held by `node_id`, under leases of `lease`.
    pub fn new(store: Arc<dyn Store>, node_id: String, lease: SignedDuration) -> Self {
        Self {
            store,
            node_id,
            lease,
        }
    }

    /// A slot for `developer`, or `None` when it already has `max` downloads in progress on
    /// the nodes of this database.
    pub async fn acquire(&self, developer: &str, max: u32) -> StoreResult<Option<DownloadSlot>> {
        let now = Timestamp::now();
        let id = self
            .store
            .acquire_download(developer, &self.node_id, max, now, self.lease_from(now))
            .await?;
        Ok(id.map(|id| {
            crate::telemetry::download_started();
            DownloadSlot {
                store: self.store.clone(),
                id,
                released: false,
            }
        }))
    }

    /// Frees every slot of this node at once: for a clean stop, once no request is left that
    /// could still be streaming.
    pub async fn release_all(&self) {
        if let Err(e) = self.store.release_downloads_of(&self.node_id).await {
            tracing::warn!("cannot release this node's download slots: {e}");
        }
    }

    /// Extends the lease of every slot of this node; how many it holds.
    async fn renew(&self) -> StoreResult<u64> {
        let now = Timestamp::now();
        self.store
            .renew_downloads(&self.node_id, now, self.lease_from(now))
            .await
    }

    fn lease_from(&self, now: Timestamp) -> Timestamp {
        now.checked_add(self.lease).unwrap_or(Timestamp::MAX)
    }
}

impl DownloadSlot {
    /// Frees the slot now. The download calls it before it sends its last bytes, so that a
    /// client that asks for its next file as soon as it has this one never finds this one still
    /// counted (a release left to the drop runs a moment after the client has everything).
    pub async fn release(mut self) {
        self.released = true;
        crate::telemetry::download_ended();
        if let Err(e) = self.store.release_download(self.id).await {
            tracing::warn!("cannot release a download slot (its lease will free it): {e}");
        }
    }
}

impl Drop for DownloadSlot {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        crate::telemetry::download_ended();
        let store = self.store.clone();
        let id = self.id;
        // The HTTP server drops bodies on its runtime; without one (a runtime shutting down),
        // the lease frees the slot.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            if let Err(e) = store.release_download(id).await {
                tracing::warn!("cannot release a download slot (its lease will free it): {e}");
            }
        });
    }
}

/// Renews this node's download slots every third of a lease until `stop`. A failed renewal is
/// logged and tried again at the next tick: two more chances before the lease ends; past it,
/// the slot no longer counts and the download goes on uncounted (flow control errs towards
/// serving while the store is away).
pub fn spawn_renewal(slots: DownloadSlots, stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let lease = Duration::try_from(slots.lease).unwrap_or(Duration::from_secs(1));
        let period = (lease / 3).max(Duration::from_millis(100));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {
                    if let Err(e) = slots.renew().await {
                        tracing::warn!("cannot renew this node's download slots: {e}");
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    /// Slots on a fresh store; the directory lives as long as the slots are used.
    async fn slots(lease_secs: i64) -> (tempfile::TempDir, DownloadSlots) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/ccfs.db", dir.path().display());
        let store = SqliteStore::open(&url).await.expect("store");
        let slots = DownloadSlots::new(
            Arc::new(store),
            "node-a".into(),
            SignedDuration::from_secs(lease_secs),
        );
        (dir, slots)
    }

    /// Waits (up to 10 s, polling) until `dev` can take a slot under `max`.
    async fn until_free(slots: &DownloadSlots, dev: &str, max: u32) -> DownloadSlot {
        for _ in 0..1000 {
            if let Some(s) = slots.acquire(dev, max).await.expect("acquire") {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the slot was never released");
    }

    #[tokio::test]
    async fn slots_are_counted_and_freed_on_drop() {
        let (_dir, slots) = slots(60).await;
        let a = slots.acquire("d", 2).await.expect("a").expect("room");
        let _b = slots.acquire("d", 2).await.expect("b").expect("room");
        assert!(slots.acquire("d", 2).await.expect("c").is_none());
        assert!(slots.acquire("e", 2).await.expect("e").is_some());
        drop(a);
        let _c = until_free(&slots, "d", 2).await;
        assert!(slots.acquire("d", 2).await.expect("d").is_none());
    }

    #[tokio::test]
    async fn release_all_frees_the_nodes_slots() {
        let (_dir, slots) = slots(60).await;
        let held = slots.acquire("d", 1).await.expect("a").expect("room");
        slots.release_all().await;
        let _again = slots.acquire("d", 1).await.expect("b").expect("freed");
        assert!(slots.acquire("d", 1).await.expect("c").is_none());
        drop(held);
    }

    /// The renewal loop keeps a slot held past its first lease; without it the slot ends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn renewal_keeps_slots_past_their_lease() {
        let (_dir, slots) = slots(1).await;
        let stop = CancellationToken::new();
        let renewal = spawn_renewal(slots.clone(), stop.clone());
        let _held = slots.acquire("d", 1).await.expect("a").expect("room");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(
            slots.acquire("d", 1).await.expect("b").is_none(),
            "renewed past its first lease"
        );
        stop.cancel();
        renewal.await.expect("renewal loop");
        let _taken = until_free(&slots, "d", 1).await;
    }
}

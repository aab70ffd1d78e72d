//! Conformance: the downloads part (download slots under leases, for flow control).

use std::sync::Arc;

use super::{at_ms, BASE};
use crate::store::{DownloadSlotId, Store};

const T0: i64 = BASE * 1000;
/// The lease every slot here gets unless said otherwise: a minute.
const LEASE: i64 = 60_000;

/// A slot of `dev` for `holder`, taken at `now_ms` with a lease of [`LEASE`], when there is room
/// under `max`.
async fn take(
    store: &Arc<dyn Store>,
    dev: &str,
    holder: &str,
    max: u32,
    now_ms: i64,
) -> Option<DownloadSlotId> {
    store
        .acquire_download(dev, holder, max, at_ms(now_ms), at_ms(now_ms + LEASE))
        .await
        .expect("acquire a download slot")
}

/// The limit holds per developer, for every holder together; a release frees a slot; developers
/// are independent of each other.
pub async fn limit_and_release(store: Arc<dyn Store>) {
    let a = take(&store, "dev1", "node-a", 2, T0).await.expect("first");
    let b = take(&store, "dev1", "node-b", 2, T0 + 1)
        .await
        .expect("second");
    assert_ne!(a, b);
    assert_eq!(take(&store, "dev1", "node-a", 2, T0 + 2).await, None);
    assert_eq!(take(&store, "dev1", "node-c", 2, T0 + 2).await, None);
    // A larger limit (another node's configuration) counts the same rows.
    assert!(take(&store, "dev1", "node-c", 3, T0 + 2).await.is_some());
    assert_eq!(take(&store, "dev1", "node-c", 3, T0 + 3).await, None);

    // Another developer has a limit of its own.
    assert!(take(&store, "dev2", "node-a", 1, T0 + 3).await.is_some());
    assert_eq!(take(&store, "dev2", "node-a", 1, T0 + 4).await, None);
    assert_eq!(take(&store, "dev1", "node-a", 3, T0 + 4).await, None);

    store.release_download(a).await.expect("release");
    let c = take(&store, "dev1", "node-a", 3, T0 + 5)
        .await
        .expect("freed");
    assert_ne!(c, a, "a slot id is never reused");
    assert_eq!(take(&store, "dev1", "node-a", 3, T0 + 6).await, None);
    // Releasing twice, or a slot already gone, is no error and frees nothing more.
    store.release_download(a).await.expect("release again");
    assert_eq!(take(&store, "dev1", "node-a", 3, T0 + 7).await, None);

    // A limit of 0 refuses every download.
    assert_eq!(take(&store, "dev3", "node-a", 0, T0).await, None);
}

/// A slot whose lease has ended counts for nothing (its node died holding it), and a late
/// release of it frees nobody else's slot.
pub async fn expired_lease_frees(store: Arc<dyn Store>) {
    let dead = take(&store, "dev1", "dead-node", 1, T0)
        .await
        .expect("slot");
    assert_eq!(
        take(&store, "dev1", "node-b", 1, T0 + LEASE - 1).await,
        None
    );
    // The lease ends at T0 + LEASE exactly.
    let b = take(&store, "dev1", "node-b", 1, T0 + LEASE)
        .await
        .expect("lease ended");
    assert_ne!(b, dead);
    // The dead node comes back and releases what it held: node b's slot stays.
    store.release_download(dead).await.expect("late release");
    assert_eq!(
        take(&store, "dev1", "node-c", 1, T0 + LEASE + 1).await,
        None
    );
    store.release_download(b).await.expect("release");
    assert!(take(&store, "dev1", "node-c", 1, T0 + LEASE + 2)
        .await
        .is_some());
}

/// Renewal keeps a node's slots past their first lease, and only that node's; it does not bring
/// back a slot whose lease already ended.
pub async fn renewal(store: Arc<dyn Store>) {
    take(&store, "dev1", "node-a", 1, T0)
        .await
        .expect("a's slot");
    take(&store, "dev2", "node-a", 1, T0)
        .await
        .expect("a's other slot");
    take(&store, "dev3", "node-b", 1, T0)
        .await
        .expect("b's slot");
    let renewed = store
        .renew_downloads("node-a", at_ms(T0 + LEASE / 2), at_ms(T0 + 3 * LEASE))
        .await
        .expect("renew");
    assert_eq!(renewed, 2, "both of node a's slots");
    let later = T0 + 2 * LEASE;
    assert_eq!(
        take(&store, "dev1", "node-c", 1, later).await,
        None,
        "renewed"
    );
    assert_eq!(
        take(&store, "dev2", "node-c", 1, later).await,
        None,
        "renewed"
    );
    assert!(
        take(&store, "dev3", "node-c", 1, later).await.is_some(),
        "node b's slot was not renewed and has ended"
    );

    // Node d stalls past its lease: its renewal finds nothing to renew, and its developer's
    // slot stays free for others.
    take(&store, "dev4", "node-d", 1, T0)
        .await
        .expect("d's slot");
    let renewed = store
        .renew_downloads("node-d", at_ms(T0 + LEASE), at_ms(T0 + 3 * LEASE))
        .await
        .expect("renew");
    assert_eq!(renewed, 0);
    assert!(take(&store, "dev4", "node-c", 1, T0 + LEASE + 1)
        .await
        .is_some());
}

/// A node stopping releases all its slots at once; the purge deletes ended leases of every
/// developer, and nothing else.
pub async fn release_all_and_purge(store: Arc<dyn Store>) {
    take(&store, "dev1", "node-a", 1, T0).await.expect("slot");
    take(&store, "dev2", "node-a", 1, T0).await.expect("slot");
    take(&store, "dev3", "node-b", 1, T0).await.expect("slot");
    store
        .release_downloads_of("node-a")
        .await
        .expect("release node a");
    assert!(take(&store, "dev1", "node-c", 1, T0 + 1).await.is_some());
    assert!(take(&store, "dev2", "node-c", 1, T0 + 1).await.is_some());
    assert_eq!(take(&store, "dev3", "node-c", 1, T0 + 1).await, None);

    // Node b's slot (lease to T0 + LEASE) is purged at its end; node c's (to T0 + 1 + LEASE)
    // are kept. What is left shows in how many a renewal that does not look at the clock finds.
    store
        .purge_downloads(at_ms(T0 + LEASE))
        .await
        .expect("purge");
    let left = |holder: &'static str| {
        let store = store.clone();
        async move {
            store
                .renew_downloads(holder, at_ms(0), at_ms(T0 + LEASE + 1))
                .await
                .expect("renew")
        }
    };
    assert_eq!(left("node-b").await, 0, "purged");
    assert_eq!(left("node-c").await, 2, "kept");
}

/// Many acquires at once, of one developer, never hold more than `max` slots, and each gets a
/// slot of its own.
pub async fn concurrent_acquires(store: Arc<dyn Store>) {
    const MAX: u32 = 3;
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .acquire_download(
                        "dev1",
                        &format!("node-{}", i % 4),
                        MAX,
                        at_ms(T0 + i),
                        at_ms(T0 + LEASE),
                    )
                    .await
            })
        })
        .collect();
    let mut got = std::collections::HashSet::new();
    for t in tasks {
        if let Some(id) = t.await.expect("task").expect("acquire") {
            assert!(got.insert(id), "one slot given twice");
        }
    }
    assert_eq!(got.len(), MAX as usize, "exactly max slots taken");
}

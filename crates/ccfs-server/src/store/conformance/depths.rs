//! Conformance: the queue depths behind the `/metrics` gauges count exactly the live work.

use std::sync::Arc;

use super::{at_ms, created, finished_job, new_job, BASE};
use crate::model::Attempt;
use crate::store::{QueueDepths, Store};

pub async fn queue_depths(store: Arc<dyn Store>) {
    let depths = || async { store.queue_depths().await.expect("queue depths") };
    assert_eq!(depths().await, QueueDepths::default());

    // Two finished jobs: two pending callbacks, no live job; one delivered leaves one.
    let (j1, _) = finished_job(&store, 1, BASE * 1000 + 10_000, BASE * 1000 + 1_000_000).await;
    let (_, _) = finished_job(&store, 2, BASE * 1000 + 10_000, BASE * 1000 + 1_000_000).await;
    store
        .record_attempt(&j1.response_id, &Attempt::Delivered)
        .await
        .expect("record attempt");
    let want = |queued, running| QueueDepths {
        jobs_queued: queued,
        jobs_running: running,
        callbacks_pending: 1,
    };
    assert_eq!(depths().await, want(0, 0));

    // Three queued; one claimed runs; failed, it counts no more.
    for id in 3..=5 {
        created(&store, &new_job(id, "dev1", BASE * 1000 + 100, None)).await;
    }
    assert_eq!(depths().await, want(3, 0));
    let now = at_ms(BASE * 1000 + 1000);
    let claimed = store
        .claim_job("w", now, at_ms(BASE * 1000 + 60_000))
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(depths().await, want(2, 1));
    store
        .fail_job(&claimed.job.response_id, "w", "broken", now)
        .await
        .expect("fail");
    assert_eq!(depths().await, want(2, 0));
}

//! Conformance: the replay part (the replay cache, and the purge of it and of idempotency
//! keys).

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::{at_ms, created, new_job, rid, BASE};
use crate::store::{CreateJob, Store};

pub async fn replay_and_purge(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let min = |m: i64| SignedDuration::from_mins(m);
    assert!(store
        .remember_signature("sig1", now + min(10))
        .await
        .expect("remember"));
    assert!(!store
        .remember_signature("sig1", now + min(10))
        .await
        .expect("remember"));
    assert!(!store
        .remember_signature("sig1", now + min(20))
        .await
        .expect("remember"));

    // An expired entry is replaced, and then counts again.
    assert!(store
        .remember_signature("sig2", now - min(1))
        .await
        .expect("remember"));
    assert!(store
        .remember_signature("sig2", now + min(10))
        .await
        .expect("remember"));
    assert!(!store
        .remember_signature("sig2", now + min(10))
        .await
        .expect("remember"));

    // Purge forgets what has expired by its `now`, and nothing else.
    assert!(store
        .remember_signature("sig3", now + min(30))
        .await
        .expect("remember"));
    store.purge(now + min(15)).await.expect("purge");
    assert!(store
        .remember_signature("sig1", now + min(40))
        .await
        .expect("sig1 purged"));
    assert!(!store
        .remember_signature("sig3", now + min(40))
        .await
        .expect("sig3 kept"));

    // Idempotency keys: kept while young, gone after 24 h.
    let t0 = BASE * 1000;
    created(&store, &new_job(1, "dev1", t0, Some(("k", "h")))).await;
    store.purge(at_ms(t0 + 3_600_000)).await.expect("purge");
    let again = new_job(2, "dev1", t0 + 7_200_000, Some(("k", "h")));
    assert_eq!(
        store.create_job(&again, 100).await.expect("create"),
        CreateJob::Existing(rid(1))
    );
    store.purge(at_ms(t0 + 86_400_000)).await.expect("purge");
    assert_eq!(
        store.create_job(&again, 100).await.expect("create"),
        CreateJob::Created,
        "the key was purged"
    );
}

//! Conformance: the outbox part (claiming due callbacks, attempts, superseding).

use std::sync::Arc;

use super::{app, at_ms, finished_job, finished_job_of, job, rid, BASE};
use crate::model::{Attempt, Callback, CallbackState, Job, JobState};
use crate::store::{ClaimLimits, Store, StoreError};

pub async fn callbacks(store: Arc<dyn Store>) {
    let ms = |offset: i64| BASE * 1000 + offset;
    assert_eq!(store.next_callback_at().await.expect("next"), None);
    assert!(store
        .claim_callbacks(
            at_ms(ms(10_000_000)),
            at_ms(ms(10_060_000)),
            &ClaimLimits::total(10)
        )
        .await
        .expect("claim")
        .is_empty());

    let (j1, cb1) = finished_job(&store, 1, ms(10_000), ms(1_000_000)).await;
    let (j2, cb2) = finished_job(&store, 2, ms(20_000), ms(1_000_000)).await;
    let (j3, cb3) = finished_job(&store, 3, ms(900_000), ms(1_000_000)).await;
    assert_eq!(
        store.next_callback_at().await.expect("next"),
        Some(cb1.next_attempt_at)
    );

    // Due ones, oldest first, and then not again until the claim runs out.
    let until = at_ms(ms(80_000));
    let claimed = store
        .claim_callbacks(at_ms(ms(20_000)), until, &ClaimLimits::total(10))
        .await
        .expect("claim");
    let expect = |cb: &Callback| Callback {
        next_attempt_at: until,
        ..cb.clone()
    };
    assert_eq!(claimed, vec![expect(&cb1), expect(&cb2)]);
    assert!(store
        .claim_callbacks(
            at_ms(ms(20_000)),
            at_ms(ms(90_000)),
            &ClaimLimits::total(10)
        )
        .await
        .expect("claim")
        .is_empty());
    assert!(store
        .claim_callbacks(
            at_ms(ms(79_999)),
            at_ms(ms(90_000)),
            &ClaimLimits::total(10)
        )
        .await
        .expect("claim")
        .is_empty());
    assert_eq!(store.next_callback_at().await.expect("next"), Some(until));
    let again = store
        .claim_callbacks(
            at_ms(ms(80_000)),
            at_ms(ms(140_000)),
            &ClaimLimits::total(1),
        )
        .await
        .expect("claim");
    assert_eq!(again.len(), 1, "at most limit");
    assert_eq!(again[0].response_id, j1.response_id);
    assert!(store
        .claim_callbacks(
            at_ms(ms(80_000)),
            at_ms(ms(140_000)),
            &ClaimLimits::total(0)
        )
        .await
        .expect("claim")
        .is_empty());

    // Retry: counted, rescheduled, error kept.
    let retry_at = at_ms(ms(200_000));
    store
        .record_attempt(
            &j1.response_id,
            &Attempt::Retry {
                next_attempt_at: retry_at,
                error: "HTTP 503".into(),
            },
        )
        .await
        .expect("retry");
    let cb = job(&store, &j1.response_id)
        .await
        .callback
        .expect("callback");
    assert_eq!(
        (
            cb.state,
            cb.attempts,
            cb.next_attempt_at,
            cb.last_error.as_deref()
        ),
        (CallbackState::Pending, 1, retry_at, Some("HTTP 503"))
    );

    // Delivered: the error is cleared.
    store
        .record_attempt(
            &j2.response_id,
            &Attempt::Retry {
                next_attempt_at: at_ms(ms(100_000)),
                error: "timeout".into(),
            },
        )
        .await
        .expect("retry");
    store
        .record_attempt(&j2.response_id, &Attempt::Delivered)
        .await
        .expect("delivered");
    let cb = job(&store, &j2.response_id)
        .await
        .callback
        .expect("callback");
    assert_eq!(
        (cb.state, cb.attempts, cb.last_error),
        (CallbackState::Delivered, 2, None)
    );

    // Gave up.
    store
        .record_attempt(
            &j1.response_id,
            &Attempt::GaveUp {
                error: "refused".into(),
            },
        )
        .await
        .expect("gave up");
    let cb = job(&store, &j1.response_id)
        .await
        .callback
        .expect("callback");
    assert_eq!(
        (cb.state, cb.attempts, cb.last_error.as_deref()),
        (CallbackState::Failed, 2, Some("refused"))
    );
    assert_eq!(
        job(&store, &j1.response_id).await.state,
        JobState::Succeeded,
        "giving up keeps the file"
    );

    // Settled callbacks are neither due nor claimed.
    assert_eq!(
        store.next_callback_at().await.expect("next"),
        Some(cb3.next_attempt_at)
    );
    let claimed = store
        .claim_callbacks(
            at_ms(ms(10_000_000)),
            at_ms(ms(10_060_000)),
            &ClaimLimits::total(10),
        )
        .await
        .expect("claim");
    assert_eq!(
        claimed
            .iter()
            .map(|c| c.response_id.clone())
            .collect::<Vec<_>>(),
        vec![j3.response_id.clone()]
    );
    store
        .record_attempt(&j3.response_id, &Attempt::Delivered)
        .await
        .expect("delivered");
    assert_eq!(store.next_callback_at().await.expect("next"), None);
    assert!(store
        .claim_callbacks(
            at_ms(ms(99_000_000)),
            at_ms(ms(99_060_000)),
            &ClaimLimits::total(10)
        )
        .await
        .expect("claim")
        .is_empty());

    match store.record_attempt(&rid(99), &Attempt::Delivered).await {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("expected not found, got {other:?}"),
    }
}

pub async fn superseded(store: Arc<dyn Store>) {
    let ms = |offset: i64| BASE * 1000 + offset;
    let (j1, _) = finished_job(&store, 1, ms(10_000), ms(1_000_000)).await;
    let (j2, _) = finished_job(&store, 2, ms(10_000), ms(1_000_000)).await;
    store
        .record_attempt(&j2.response_id, &Attempt::Delivered)
        .await
        .expect("delivered");

    // A pending callback stops; a settled one stays as it is; asking twice changes nothing.
    assert!(store
        .supersede_callback(&j1.response_id)
        .await
        .expect("supersede"));
    assert!(!store
        .supersede_callback(&j1.response_id)
        .await
        .expect("supersede again"));
    assert!(!store
        .supersede_callback(&j2.response_id)
        .await
        .expect("supersede delivered"));
    assert!(!store.supersede_callback(&rid(99)).await.expect("unknown"));
    let state = |j: Job| j.callback.expect("callback").state;
    assert_eq!(
        state(job(&store, &j1.response_id).await),
        CallbackState::Superseded
    );
    assert_eq!(
        state(job(&store, &j2.response_id).await),
        CallbackState::Delivered
    );

    // Neither due nor claimed any more, and a late report of an attempt in flight is ignored.
    assert_eq!(store.next_callback_at().await.expect("next"), None);
    assert!(store
        .claim_callbacks(
            at_ms(ms(99_000_000)),
            at_ms(ms(99_060_000)),
            &ClaimLimits::total(10)
        )
        .await
        .expect("claim")
        .is_empty());
    store
        .record_attempt(
            &j1.response_id,
            &Attempt::Retry {
                next_attempt_at: at_ms(ms(200_000)),
                error: "HTTP 503".into(),
            },
        )
        .await
        .expect("late retry");
    assert_eq!(
        state(job(&store, &j1.response_id).await),
        CallbackState::Superseded
    );
}

/// A claim takes at most `per_developer` of each developer (the earliest due), none of the
/// developers to skip, and still at most `total`, in due order.
pub async fn claim_limits(store: Arc<dyn Store>) {
    let ms = |offset: i64| BASE * 1000 + offset;
    // Due order: a1 a2 b1 a3 c1 b2 (ids 1..=6).
    let mut ids = Vec::new();
    for (n, dev, due) in [
        (1, "devA", 10),
        (2, "devA", 20),
        (3, "devB", 30),
        (4, "devA", 40),
        (5, "devC", 50),
        (6, "devB", 60),
    ] {
        let (j, _) = finished_job_of(&store, dev, n, ms(due), ms(1_000_000)).await;
        ids.push(j.response_id);
    }
    let claimed = |cbs: Vec<Callback>| {
        cbs.into_iter()
            .map(|c| {
                let n = ids
                    .iter()
                    .position(|id| *id == c.response_id)
                    .expect("known");
                n + 1
            })
            .collect::<Vec<_>>()
    };
    let now = at_ms(ms(100));
    let until = at_ms(ms(50_000));

    // One each: a1 b1 c1; the total cuts the list in due order.
    let skip_none: &[ccfs_protocol::AppId] = &[];
    let one_each = |total| ClaimLimits {
        total,
        per_developer: 1,
        skip: skip_none,
    };
    let got = store
        .claim_callbacks(now, until, &one_each(2))
        .await
        .expect("claim");
    assert_eq!(
        claimed(got),
        vec![1, 3],
        "one of each developer, at most two"
    );

    // Two each, devA skipped: what is left of devB and devC (b1 was claimed), not a2 or a3.
    let skip = [app("devA")];
    let got = store
        .claim_callbacks(
            now,
            until,
            &ClaimLimits {
                total: 10,
                per_developer: 2,
                skip: &skip,
            },
        )
        .await
        .expect("claim");
    assert_eq!(claimed(got), vec![5, 6], "devA skipped");

    // Then devA's, two at most.
    let got = store
        .claim_callbacks(
            now,
            until,
            &ClaimLimits {
                total: 10,
                per_developer: 2,
                skip: skip_none,
            },
        )
        .await
        .expect("claim");
    assert_eq!(claimed(got), vec![2, 4], "devA's two left");
    assert!(store
        .claim_callbacks(now, until, &ClaimLimits::total(10))
        .await
        .expect("claim")
        .is_empty());
    assert!(store
        .claim_callbacks(at_ms(ms(60_000)), until, &one_each(0))
        .await
        .expect("claim")
        .is_empty());
}

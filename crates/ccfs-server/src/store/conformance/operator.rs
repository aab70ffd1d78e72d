//! Conformance: what operators do across the parts of the store (`ccfs jobs …`, `ccfs app
//! delete`): list and cancel jobs, queue a callback that gave up again, delete a developer
//! with everything it holds.

use std::sync::Arc;

use super::{
    app, at_ms, callback, created, developer, finished_job, finished_job_of, job, new_job, outcome,
    record, rid, BASE,
};
use crate::model::{Attempt, CallbackState, Job, JobState};
use crate::store::{
    CancelJob, ClaimLimits, CreateJob, DeleteDeveloper, Holdings, JobFilter, OnConflict,
    RetryCallback, Store,
};

fn ms(offset: i64) -> i64 {
    BASE * 1000 + offset
}

/// The byte a test response id is made of ([`rid`]), for readable assertions.
fn n(job: &Job) -> u8 {
    u8::from_str_radix(&job.job.response_id.as_str()[..2], 16).expect("test response id")
}

pub async fn cancel(store: Arc<dyn Store>) {
    let queued = new_job(1, "dev1", ms(1), None);
    let running = new_job(2, "dev1", ms(0), None);
    created(&store, &queued).await;
    created(&store, &running).await;
    let claimed = store
        .claim_job("n1", at_ms(ms(1000)), at_ms(ms(61_000)))
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(claimed.job, running);

    // A queued job: cancelled, never claimed.
    let CancelJob::Cancelled(c) = store
        .cancel_job(&queued.response_id, "stop", at_ms(ms(2000)))
        .await
        .expect("cancel")
    else {
        panic!("a queued job is cancelled");
    };
    assert_eq!(c, job(&store, &queued.response_id).await, "as stored");
    assert_eq!(
        (
            c.state,
            c.error.as_deref(),
            c.attempts,
            c.outcome,
            c.callback
        ),
        (JobState::Cancelled, Some("stop"), 0, None, None)
    );
    assert_eq!(
        store
            .claim_job("n2", at_ms(ms(3000)), at_ms(ms(63_000)))
            .await
            .expect("claim"),
        None,
        "a cancelled job is not claimed"
    );

    // A running job: cancelled; its holder can neither renew, finish, fail nor release it.
    let CancelJob::Cancelled(c) = store
        .cancel_job(&running.response_id, "stop", at_ms(ms(4000)))
        .await
        .expect("cancel")
    else {
        panic!("a running job is cancelled");
    };
    assert_eq!((c.state, c.attempts), (JobState::Cancelled, 1));
    let id = &running.response_id;
    assert!(!store
        .renew_lease(id, "n1", at_ms(ms(90_000)))
        .await
        .expect("renew"));
    let cb = callback(&running, ms(5000));
    assert!(!store
        .finish_job(id, "n1", &outcome(ms(5000), ms(900_000)), &cb)
        .await
        .expect("finish"));
    store
        .fail_job(id, "n1", "boom", at_ms(ms(5000)))
        .await
        .expect("fail");
    store.release_job(id, "n1").await.expect("release");
    let after = job(&store, id).await;
    assert_eq!(
        (
            after.state,
            after.error.as_deref(),
            after.outcome,
            after.callback
        ),
        (JobState::Cancelled, Some("stop"), None, None)
    );
    assert_eq!(store.next_callback_at().await.expect("next"), None);
    // Not even once its lease has run out.
    assert_eq!(
        store
            .claim_job("n2", at_ms(ms(10_000_000)), at_ms(ms(10_060_000)))
            .await
            .expect("claim"),
        None
    );

    // Cancelled jobs do not count as active.
    assert_eq!(
        store
            .create_job(&new_job(3, "dev1", ms(6000), None), 1)
            .await
            .expect("create"),
        CreateJob::Created
    );

    // An ended job stays as it is, and says so.
    match store
        .cancel_job(&running.response_id, "again", at_ms(ms(7000)))
        .await
        .expect("cancel")
    {
        CancelJob::Ended(j) => {
            assert_eq!(
                (j.state, j.error.as_deref()),
                (JobState::Cancelled, Some("stop"))
            )
        }
        other => panic!("expected an ended job, got {other:?}"),
    }
    let (done, _) = finished_job(&store, 4, ms(8000), ms(900_000)).await;
    match store
        .cancel_job(&done.response_id, "late", at_ms(ms(9000)))
        .await
        .expect("cancel")
    {
        CancelJob::Ended(j) => assert_eq!(j, job(&store, &done.response_id).await),
        other => panic!("expected an ended job, got {other:?}"),
    }
    assert_eq!(
        job(&store, &done.response_id).await.state,
        JobState::Succeeded
    );
    assert_eq!(
        store
            .cancel_job(&rid(99), "none", at_ms(ms(9000)))
            .await
            .expect("cancel"),
        CancelJob::NotFound
    );
}

/// A cancel and its holder's finish sent at once: exactly one changes the job, and the job is
/// either published with its callback or cancelled without one, never a mix.
pub async fn cancel_races_finish(store: Arc<dyn Store>) {
    const JOBS: u8 = 12;
    for n in 1..=JOBS {
        created(&store, &new_job(n, "dev1", ms(i64::from(n)), None)).await;
        let claimed = store
            .claim_job("w", at_ms(ms(1000)), at_ms(ms(61_000)))
            .await
            .expect("claim")
            .expect("a job");
        assert_eq!(claimed.job.response_id, rid(n));
    }
    let mut races = Vec::new();
    for n in 1..=JOBS {
        let (a, b) = (store.clone(), store.clone());
        let cb = callback(&new_job(n, "dev1", ms(i64::from(n)), None), ms(2000));
        let finish = tokio::spawn(async move {
            a.finish_job(&rid(n), "w", &outcome(ms(2000), ms(900_000)), &cb)
                .await
        });
        let cancel =
            tokio::spawn(async move { b.cancel_job(&rid(n), "stop", at_ms(ms(2000))).await });
        races.push((n, finish, cancel));
    }
    for (n, finish, cancel) in races {
        let finished = finish.await.expect("task").expect("finish");
        let cancelled = matches!(
            cancel.await.expect("task").expect("cancel"),
            CancelJob::Cancelled(_)
        );
        assert!(finished != cancelled, "job {n}: exactly one wins");
        let j = job(&store, &rid(n)).await;
        if finished {
            assert_eq!(j.state, JobState::Succeeded, "job {n}");
            assert!(j.callback.is_some() && j.outcome.is_some(), "job {n}");
        } else {
            assert_eq!(j.state, JobState::Cancelled, "job {n}");
            assert!(j.callback.is_none() && j.outcome.is_none(), "job {n}");
        }
    }
}

pub async fn list(store: Arc<dyn Store>) {
    let now = at_ms(ms(600_000));
    let list = |filter: JobFilter| {
        let store = store.clone();
        async move {
            let jobs = store.list_jobs(&filter, now).await.expect("list");
            jobs.iter().map(n).collect::<Vec<u8>>()
        }
    };
    assert!(list(JobFilter::default()).await.is_empty());

    // 1 and 2 succeeded (2's file past its expiry at `now`); 3 expired by retention; 4
    // queued, 5 cancelled, both of dev2; 6 and 7 accepted in the same millisecond.
    finished_job(&store, 1, ms(10_000), ms(900_000)).await;
    finished_job(&store, 2, ms(10_000), ms(500_000)).await;
    finished_job(&store, 3, ms(10_000), ms(400_000)).await;
    store.mark_expired(&rid(3)).await.expect("mark");
    created(&store, &new_job(4, "dev2", ms(50), None)).await;
    created(&store, &new_job(5, "dev2", ms(60), None)).await;
    store
        .cancel_job(&rid(5), "stop", at_ms(ms(70)))
        .await
        .expect("cancel");
    created(&store, &new_job(6, "dev3", ms(80), None)).await;
    created(&store, &new_job(7, "dev3", ms(80), None)).await;

    // Newest first; in one millisecond, the later accepted first.
    assert_eq!(list(JobFilter::default()).await, [7, 6, 5, 4, 3, 2, 1]);
    let all = store
        .list_jobs(&JobFilter::default(), now)
        .await
        .expect("list");
    assert_eq!(
        all[6],
        job(&store, &rid(1)).await,
        "listed jobs are complete"
    );
    assert_eq!(
        list(JobFilter {
            limit: Some(2),
            ..JobFilter::default()
        })
        .await,
        [7, 6]
    );
    assert_eq!(
        list(JobFilter {
            developer_id: Some(app("dev2")),
            ..JobFilter::default()
        })
        .await,
        [5, 4]
    );
    assert_eq!(
        list(JobFilter {
            since: Some(at_ms(ms(60))),
            ..JobFilter::default()
        })
        .await,
        [7, 6, 5],
        "accepted at or after"
    );
    // States as a client sees them at `now`.
    let state = |s: JobState| JobFilter {
        state: Some(s),
        ..JobFilter::default()
    };
    assert_eq!(list(state(JobState::Succeeded)).await, [1]);
    assert_eq!(list(state(JobState::Expired)).await, [3, 2]);
    assert_eq!(list(state(JobState::Queued)).await, [7, 6, 4]);
    assert_eq!(list(state(JobState::Cancelled)).await, [5]);
    assert!(list(state(JobState::Running)).await.is_empty());
    assert!(list(state(JobState::Failed)).await.is_empty());
    // Filters together.
    assert_eq!(
        list(JobFilter {
            developer_id: Some(app("dev3")),
            state: Some(JobState::Queued),
            since: Some(at_ms(ms(80))),
            limit: Some(1),
        })
        .await,
        [7]
    );
    assert!(list(JobFilter {
        developer_id: Some(app("nobody")),
        ..JobFilter::default()
    })
    .await
    .is_empty());
}

pub async fn retry_callback(store: Arc<dyn Store>) {
    let (j1, _) = finished_job(&store, 1, ms(10_000), ms(9_000_000)).await;
    let id = &j1.response_id;
    // Pending: left alone.
    assert_eq!(
        store
            .retry_callback(id, at_ms(ms(20_000)), at_ms(ms(90_000)))
            .await
            .expect("retry"),
        RetryCallback::NotFailed(CallbackState::Pending)
    );
    store
        .record_attempt(
            id,
            &Attempt::Retry {
                next_attempt_at: at_ms(ms(15_000)),
                error: "HTTP 503".into(),
            },
        )
        .await
        .expect("attempt");
    store
        .record_attempt(
            id,
            &Attempt::GaveUp {
                error: "HTTP 500".into(),
            },
        )
        .await
        .expect("gave up");
    assert_eq!(store.next_callback_at().await.expect("next"), None);

    // Given up: pending again, due now, no attempt counted, a new give-up instant.
    assert_eq!(
        store
            .retry_callback(id, at_ms(ms(30_000)), at_ms(ms(120_000)))
            .await
            .expect("retry"),
        RetryCallback::Queued
    );
    let cb = job(&store, id).await.callback.expect("callback");
    assert_eq!(
        (
            cb.state,
            cb.attempts,
            cb.next_attempt_at,
            cb.give_up_at,
            cb.last_error.as_deref()
        ),
        (
            CallbackState::Pending,
            0,
            at_ms(ms(30_000)),
            at_ms(ms(120_000)),
            Some("HTTP 500")
        )
    );
    assert_eq!(
        store.next_callback_at().await.expect("next"),
        Some(at_ms(ms(30_000)))
    );
    let claimed = store
        .claim_callbacks(at_ms(ms(30_000)), at_ms(ms(40_000)), &ClaimLimits::total(5))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(&claimed[0].response_id, id);
    store
        .record_attempt(id, &Attempt::Delivered)
        .await
        .expect("delivered");

    // Delivered, superseded: left alone.
    assert_eq!(
        store
            .retry_callback(id, at_ms(ms(50_000)), at_ms(ms(150_000)))
            .await
            .expect("retry"),
        RetryCallback::NotFailed(CallbackState::Delivered)
    );
    let (j2, _) = finished_job(&store, 2, ms(10_000), ms(9_000_000)).await;
    assert!(store
        .supersede_callback(&j2.response_id)
        .await
        .expect("supersede"));
    assert_eq!(
        store
            .retry_callback(&j2.response_id, at_ms(ms(50_000)), at_ms(ms(150_000)))
            .await
            .expect("retry"),
        RetryCallback::NotFailed(CallbackState::Superseded)
    );
    assert_eq!(
        job(&store, &j2.response_id).await.callback.map(|c| c.state),
        Some(CallbackState::Superseded)
    );

    // No callback: a job that never succeeded, or none at all.
    created(&store, &new_job(3, "dev1", ms(0), None)).await;
    for id in [rid(3), rid(99)] {
        assert_eq!(
            store
                .retry_callback(&id, at_ms(ms(50_000)), at_ms(ms(150_000)))
                .await
                .expect("retry"),
            RetryCallback::NotFound
        );
    }
}

pub async fn delete_developer(store: Arc<dyn Store>) {
    for dev in ["dev1", "dev2", "cti"] {
        store
            .insert_developer(&developer(dev, &["acc1"]))
            .await
            .expect("insert");
    }
    assert_eq!(
        store.holdings(&app("dev1")).await.expect("holdings"),
        Holdings::default()
    );
    // Records of dev1 and dev2 (as an ingest developer imports them: for their owners).
    let records: Vec<_> = (0..5)
        .map(|i| record("dev1", &format!("a{i}"), BASE + i, "acc1", "1001"))
        .chain((0..3).map(|i| record("dev2", &format!("b{i}"), BASE + i, "acc1", "1001")))
        .collect();
    store
        .insert_records(&records, OnConflict::Fail)
        .await
        .expect("records");
    // dev1: two published jobs and one queued with an idempotency key (cancelled below); dev2:
    // one published, one queued with the same key.
    // (Each finished job is the only one claimable when it is claimed.)
    finished_job_of(&store, "dev1", 1, ms(10_000), ms(900_000)).await;
    finished_job_of(&store, "dev1", 2, ms(10_000), ms(900_000)).await;
    finished_job_of(&store, "dev2", 4, ms(10_000), ms(900_000)).await;
    created(&store, &new_job(3, "dev1", ms(3), Some(("k", "body")))).await;
    created(&store, &new_job(5, "dev2", ms(5), Some(("k", "body")))).await;
    let slot = store
        .acquire_download("dev1", "n1", 1, at_ms(ms(0)), at_ms(ms(60_000)))
        .await
        .expect("slot");
    assert!(slot.is_some());

    let held = Holdings {
        jobs: 3,
        callbacks: 2,
        idempotency_keys: 1,
        records: 5,
    };
    assert_eq!(store.holdings(&app("dev1")).await.expect("holdings"), held);

    // Refused while a job is queued or running, with nothing changed.
    match store.delete_developer(&app("dev1")).await.expect("delete") {
        DeleteDeveloper::Active(jobs) => assert_eq!(
            jobs.iter()
                .map(|j| j.job.response_id.clone())
                .collect::<Vec<_>>(),
            [rid(3)]
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(store.holdings(&app("dev1")).await.expect("holdings"), held);
    assert!(store.developer("dev1").await.expect("get").is_some());
    store
        .cancel_job(&rid(3), "stop", at_ms(ms(20_000)))
        .await
        .expect("cancel");

    match store.delete_developer(&app("dev1")).await.expect("delete") {
        DeleteDeveloper::Deleted { held: got, jobs } => {
            assert_eq!(got, held);
            let mut ids: Vec<_> = jobs.iter().map(|j| j.job.response_id.clone()).collect();
            ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
            assert_eq!(ids, [rid(1), rid(2), rid(3)], "its jobs as they were");
        }
        other => panic!("expected a deletion, got {other:?}"),
    }
    assert_eq!(store.developer("dev1").await.expect("get"), None);
    assert_eq!(
        store.holdings(&app("dev1")).await.expect("holdings"),
        Holdings::default()
    );
    for n in 1..=3 {
        assert_eq!(store.job(&rid(n)).await.expect("get"), None);
    }
    assert_eq!(
        store.delete_developer(&app("dev1")).await.expect("delete"),
        DeleteDeveloper::NotFound
    );
    // Its download slot went too: a developer made again with its app id has a free slot
    // while the old slot's lease would still run.
    store
        .insert_developer(&developer("dev1", &[]))
        .await
        .expect("insert again");
    assert!(store
        .acquire_download("dev1", "n1", 1, at_ms(ms(0)), at_ms(ms(60_000)))
        .await
        .expect("slot")
        .is_some());

    // The others keep everything.
    assert_eq!(
        store.holdings(&app("dev2")).await.expect("holdings"),
        Holdings {
            jobs: 2,
            callbacks: 1,
            idempotency_keys: 1,
            records: 3,
        }
    );
    assert!(store.developer("cti").await.expect("get").is_some());
    assert_eq!(
        store.developer("dev2").await.expect("get"),
        Some(developer("dev2", &["acc1"]))
    );
    // dev2's idempotency key still answers its job.
    let again = new_job(6, "dev2", ms(6), Some(("k", "body")));
    assert_eq!(
        store.create_job(&again, 10).await.expect("create"),
        CreateJob::Existing(rid(5))
    );
}

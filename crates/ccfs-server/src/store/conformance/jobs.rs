//! Conformance: the job queue part (acceptance, idempotency, leases, expiry).

use std::sync::Arc;

use super::{at_ms, callback, created, finished_job, job, new_job, outcome, rid, BASE};
use crate::model::{FileKey, Job, JobOutcome, JobState};
use crate::store::{CreateJob, Store, StoreError};

pub async fn create(store: Arc<dyn Store>) {
    let t0 = BASE * 1000 + 5;
    assert_eq!(store.job(&rid(1)).await.expect("get"), None);

    let a = new_job(1, "dev1", t0, Some(("k1", "h1")));
    created(&store, &a).await;
    let stored = job(&store, &a.response_id).await;
    assert_eq!(
        stored,
        Job {
            job: a.clone(),
            state: JobState::Queued,
            attempts: 0,
            started_at: None,
            outcome: None,
            error: None,
            callback: None,
        }
    );

    // Same key and body within 24 h: the first job, even at the active-jobs limit.
    let b = new_job(2, "dev1", t0 + 3_600_000, Some(("k1", "h1")));
    assert_eq!(
        store.create_job(&b, 1).await.expect("create"),
        CreateJob::Existing(rid(1))
    );
    assert_eq!(store.job(&rid(2)).await.expect("get"), None);

    // Same key, another body: a new job, which the key then names.
    let c = new_job(3, "dev1", t0 + 3_600_000, Some(("k1", "h2")));
    created(&store, &c).await;
    let c2 = new_job(4, "dev1", t0 + 7_200_000, Some(("k1", "h2")));
    assert_eq!(
        store.create_job(&c2, 100).await.expect("create"),
        CreateJob::Existing(rid(3))
    );

    // Keys belong to one developer.
    let other = new_job(5, "dev2", t0, Some(("k1", "h2")));
    created(&store, &other).await;

    // After 24 h the key starts a new job.
    let late = new_job(6, "dev2", t0 + 86_400_001, Some(("k1", "h2")));
    created(&store, &late).await;

    // No key, no idempotency: the same body twice makes two jobs.
    created(&store, &new_job(7, "dev3", t0, None)).await;
    created(&store, &new_job(8, "dev3", t0, None)).await;

    // The same response id twice is a conflict.
    match store.create_job(&new_job(7, "dev3", t0, None), 100).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }

    // The limit counts queued and running jobs only.
    let limit = |n: u8| new_job(n, "dev4", t0 + i64::from(n), None);
    assert_eq!(
        store.create_job(&limit(20), 2).await.expect("create"),
        CreateJob::Created
    );
    assert_eq!(
        store.create_job(&limit(21), 2).await.expect("create"),
        CreateJob::Created
    );
    assert_eq!(
        store.create_job(&limit(22), 2).await.expect("create"),
        CreateJob::TooMany
    );
    assert_eq!(store.job(&rid(22)).await.expect("get"), None);
    assert_eq!(
        store
            .create_job(&new_job(23, "dev5", t0, None), 2)
            .await
            .expect("create"),
        CreateJob::Created
    );
    assert_eq!(
        store
            .create_job(&new_job(24, "dev5", t0, None), 0)
            .await
            .expect("create"),
        CreateJob::TooMany
    );

    // Claim everything; fail the dev4 jobs and one slot frees up per finished job.
    let now = at_ms(t0 + 10_000);
    while let Some(j) = store
        .claim_job("w", now, at_ms(t0 + 70_000))
        .await
        .expect("claim")
    {
        if j.job.developer_id().as_str() == "dev4" && j.job.response_id == rid(20) {
            store
                .fail_job(&j.job.response_id, "w", "boom", now)
                .await
                .expect("fail");
        }
    }
    assert_eq!(
        store.create_job(&limit(22), 2).await.expect("create"),
        CreateJob::Created
    );
    assert_eq!(
        store.create_job(&limit(25), 2).await.expect("create"),
        CreateJob::TooMany
    );
}

pub async fn lifecycle(store: Arc<dyn Store>) {
    let t = |offset_ms: i64| at_ms(BASE * 1000 + offset_ms);
    let j1 = new_job(1, "dev1", BASE * 1000 + 2000, None);
    let j2 = new_job(2, "dev1", BASE * 1000 + 1000, None);
    let j3 = new_job(3, "dev2", BASE * 1000 + 3000, None);
    created(&store, &j1).await;
    created(&store, &j2).await;

    // Oldest first.
    let c = store
        .claim_job("n1", t(10_000), t(70_000))
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(c.job, j2);
    assert_eq!(
        (c.state, c.attempts, c.started_at),
        (JobState::Running, 1, Some(t(10_000)))
    );
    assert_eq!(
        job(&store, &j2.response_id).await,
        c,
        "the claimed job is returned as stored"
    );
    let c = store
        .claim_job("n2", t(11_000), t(71_000))
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(c.job, j1);
    assert_eq!(
        store
            .claim_job("n3", t(12_000), t(72_000))
            .await
            .expect("claim"),
        None
    );

    // Only the owner renews, finishes, fails or releases.
    assert!(!store
        .renew_lease(&j2.response_id, "n2", t(100_000))
        .await
        .expect("renew"));
    assert!(store
        .renew_lease(&j2.response_id, "n1", t(100_000))
        .await
        .expect("renew"));
    // As a job published before per-attempt keys was: no attempt recorded.
    let out = JobOutcome {
        file_attempt: None,
        ..outcome(BASE * 1000 + 20_000, BASE * 1000 + 600_000)
    };
    let cb = callback(&j2, BASE * 1000 + 20_000);
    assert!(!store
        .finish_job(&j2.response_id, "n2", &out, &cb)
        .await
        .expect("finish"));
    let still = job(&store, &j2.response_id).await;
    assert_eq!(
        (still.state, still.outcome, still.callback),
        (JobState::Running, None, None)
    );
    assert_eq!(
        store.next_callback_at().await.expect("next"),
        None,
        "no callback from a refused finish"
    );

    assert!(store
        .finish_job(&j2.response_id, "n1", &out, &cb)
        .await
        .expect("finish"));
    let done = job(&store, &j2.response_id).await;
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.outcome, Some(out.clone()));
    assert_eq!(done.callback, Some(cb.clone()));
    assert_eq!(done.error, None);
    assert_eq!((done.attempts, done.started_at), (1, Some(t(10_000))));
    assert!(!store
        .finish_job(&j2.response_id, "n1", &out, &cb)
        .await
        .expect("finish twice"));
    assert!(!store
        .renew_lease(&j2.response_id, "n1", t(200_000))
        .await
        .expect("renew after finish"));

    store
        .fail_job(&j1.response_id, "n1", "not mine", t(13_000))
        .await
        .expect("fail");
    assert_eq!(job(&store, &j1.response_id).await.state, JobState::Running);
    store
        .fail_job(&j1.response_id, "n2", "disk full", t(13_000))
        .await
        .expect("fail");
    let failed = job(&store, &j1.response_id).await;
    assert_eq!(
        (
            failed.state,
            failed.error.as_deref(),
            failed.outcome,
            failed.callback
        ),
        (JobState::Failed, Some("disk full"), None, None)
    );
    assert!(!store
        .renew_lease(&j1.response_id, "n2", t(200_000))
        .await
        .expect("renew after fail"));

    // Release puts a job back; the next claim counts a second attempt and keeps started_at.
    created(&store, &j3).await;
    let c = store
        .claim_job("n1", t(20_000), t(80_000))
        .await
        .expect("claim")
        .expect("j3");
    assert_eq!(
        (c.job.response_id.clone(), c.attempts),
        (j3.response_id.clone(), 1)
    );
    store
        .release_job(&j3.response_id, "n2")
        .await
        .expect("release");
    assert_eq!(job(&store, &j3.response_id).await.state, JobState::Running);
    store
        .release_job(&j3.response_id, "n1")
        .await
        .expect("release");
    assert_eq!(job(&store, &j3.response_id).await.state, JobState::Queued);
    assert!(!store
        .renew_lease(&j3.response_id, "n1", t(90_000))
        .await
        .expect("renew after release"));
    let c = store
        .claim_job("n2", t(30_000), t(90_000))
        .await
        .expect("claim")
        .expect("j3 again");
    assert_eq!(
        (c.state, c.attempts, c.started_at),
        (JobState::Running, 2, Some(t(20_000)))
    );

    // A running job is taken over once its lease has run out, and only then.
    assert_eq!(
        store
            .claim_job("n3", t(89_999), t(150_000))
            .await
            .expect("claim"),
        None
    );
    let c = store
        .claim_job("n3", t(90_001), t(150_000))
        .await
        .expect("claim")
        .expect("taken over");
    assert_eq!(
        (c.job.response_id.clone(), c.attempts),
        (j3.response_id.clone(), 3)
    );
    assert!(!store
        .renew_lease(&j3.response_id, "n2", t(200_000))
        .await
        .expect("renew by the old owner"));
    let cb3 = callback(&j3, BASE * 1000 + 100_000);
    // Each attempt publishes the object it uploaded: the old owner's (attempt 2) is refused,
    // the new owner's (attempt 3) is recorded as the job's file.
    let stale = JobOutcome {
        file_attempt: Some(2),
        sha256: "cd".repeat(32),
        ..out.clone()
    };
    assert!(!store
        .finish_job(&j3.response_id, "n2", &stale, &cb3)
        .await
        .expect("finish by the old owner"));
    let still = job(&store, &j3.response_id).await;
    assert_eq!((still.callback, still.outcome), (None, None));
    let out3 = JobOutcome {
        file_attempt: Some(3),
        ..out.clone()
    };
    assert!(store
        .finish_job(&j3.response_id, "n3", &out3, &cb3)
        .await
        .expect("finish by the new owner"));
    let done3 = job(&store, &j3.response_id).await;
    assert_eq!(done3.callback, Some(cb3));
    assert_eq!(done3.outcome, Some(out3));
    assert_eq!(
        done3.published_key(),
        Some(FileKey::of_attempt(&j3.file_name, 3))
    );
    assert_eq!(
        job(&store, &j2.response_id).await.published_key(),
        Some(FileKey {
            name: j2.file_name.clone(),
            attempt: None
        }),
        "a job without a recorded attempt names the legacy key"
    );
    assert_eq!(
        store
            .claim_job("n4", t(10_000_000), t(10_060_000))
            .await
            .expect("claim"),
        None,
        "nothing left"
    );
}

pub async fn expiry(store: Arc<dyn Store>) {
    let ms = |offset: i64| BASE * 1000 + offset;
    let (j1, _) = finished_job(&store, 1, ms(10_000), ms(500_000)).await;
    let (j2, _) = finished_job(&store, 2, ms(10_000), ms(400_000)).await;
    let (j3, _) = finished_job(&store, 3, ms(10_000), ms(900_000)).await;
    created(&store, &new_job(4, "dev1", ms(0), None)).await;
    let ids = |jobs: Vec<Job>| {
        jobs.into_iter()
            .map(|j| j.job.response_id)
            .collect::<Vec<_>>()
    };

    assert!(store
        .expired_jobs(at_ms(ms(399_999)), 10)
        .await
        .expect("expired")
        .is_empty());
    assert_eq!(
        ids(store
            .expired_jobs(at_ms(ms(400_000)), 10)
            .await
            .expect("expired")),
        vec![j2.response_id.clone()]
    );
    assert_eq!(
        ids(store
            .expired_jobs(at_ms(ms(600_000)), 10)
            .await
            .expect("expired")),
        vec![j2.response_id.clone(), j1.response_id.clone()]
    );
    assert_eq!(
        ids(store
            .expired_jobs(at_ms(ms(600_000)), 1)
            .await
            .expect("expired")),
        vec![j2.response_id.clone()]
    );
    let listed = store
        .expired_jobs(at_ms(ms(600_000)), 1)
        .await
        .expect("expired");
    assert_eq!(
        listed[0],
        job(&store, &j2.response_id).await,
        "listed jobs are complete"
    );

    store.mark_expired(&j2.response_id).await.expect("mark");
    assert_eq!(job(&store, &j2.response_id).await.state, JobState::Expired);
    assert_eq!(
        ids(store
            .expired_jobs(at_ms(ms(10_000_000)), 10)
            .await
            .expect("expired")),
        vec![j1.response_id.clone(), j3.response_id]
    );

    // Only succeeded jobs expire.
    store.mark_expired(&rid(4)).await.expect("mark queued");
    assert_eq!(job(&store, &rid(4)).await.state, JobState::Queued);
}

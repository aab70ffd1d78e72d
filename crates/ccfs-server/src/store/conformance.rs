//! Behaviour every [`Store`] implementation must show, written against the trait only so that
//! each implementation runs the same checks on a fresh, empty database of its own.
//!
//! Times handed to the store have millisecond precision (record and query times whole seconds),
//! which is what the stores promise to round-trip.

use std::collections::HashSet;
use std::sync::Arc;

use ccfs_protocol::{AppId, Record, ResponseId, ZipFileName};
use futures::{StreamExt, TryStreamExt};
use jiff::{civil, SignedDuration, Timestamp};

use super::{
    Attempt, Callback, CallbackState, CreateJob, Developer, InsertOutcome, Job, JobOutcome,
    JobState, NewJob, OnConflict, RecordQuery, Role, Store, StoreError, MAX_CONFLICTS_LISTED,
};

/// 2024-05-01T00:00:00Z.
const BASE: i64 = 1_714_521_600;

fn at_ms(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).expect("valid test time")
}

fn at_s(s: i64) -> Timestamp {
    Timestamp::from_second(s).expect("valid test time")
}

fn app(s: &str) -> AppId {
    AppId::parse(s).expect("valid test app id")
}

fn rid(n: u8) -> ResponseId {
    ResponseId::from_bytes([n; 16])
}

fn developer(app_id: &str, accounts: &[&str]) -> Developer {
    Developer {
        app_id: app(app_id),
        name: format!("{app_id} name"),
        secret_enc: vec![1, 2, 3, 0, 255],
        old_secret_enc: Some(vec![9, 8, 7]),
        old_secret_until: Some(at_ms(BASE * 1000 + 86_400_123)),
        timezone: "Asia/Shanghai".into(),
        accounts: accounts.iter().map(|s| s.to_string()).collect(),
        roles: vec![Role::Export, Role::Ingest],
        enabled: true,
        csv_header: false,
        created_at: at_ms(BASE * 1000 + 123),
    }
}

fn record(dev: &str, id: &str, begin: i64, account: &str, agent: &str) -> Record {
    Record {
        id: id.into(),
        developer_id: dev.into(),
        account_id: account.into(),
        agent_id: agent.into(),
        service_no: "svc".into(),
        skill_id: "7".into(),
        call_id: format!("call-{id}"),
        begin_time: at_s(begin),
        end_time: at_s(begin + 5),
        op_type: "2".into(),
        op_object: "-1".into(),
        op_cause: "0".into(),
        media_type: "5".into(),
        vdn_id: "1".into(),
        cc_id: "1".into(),
        agent_type: "4".into(),
        phone_no: "10.0.0.1".into(),
        call_in_out: "1".into(),
        location_id: "0".into(),
        logon_sn: "12345".into(),
        skill_info_sn: String::new(),
    }
}

fn query(
    dev: &str,
    begin: i64,
    end: i64,
    account: Option<&str>,
    agent: Option<&str>,
) -> RecordQuery {
    RecordQuery {
        developer_id: dev.into(),
        begin: at_s(begin),
        end: at_s(end),
        account_id: account.map(Into::into),
        agent_id: agent.map(Into::into),
    }
}

/// A job of `dev` accepted at `created_ms` (unix milliseconds).
fn new_job(id: u8, dev: &str, created_ms: i64, idempotency: Option<(&str, &str)>) -> NewJob {
    let response_id = rid(id);
    NewJob {
        file_name: ZipFileName::new(civil::date(2024, 5, 1), &response_id),
        response_id,
        developer_id: app(dev),
        query: query(dev, BASE, BASE + 86_400, Some("acc1"), None),
        callback_url: "https://example.com/ccfs/cb".into(),
        timezone: "Asia/Shanghai".into(),
        csv_header: true,
        created_at: at_ms(created_ms),
        idempotency: idempotency.map(|(k, h)| (k.to_string(), h.to_string())),
    }
}

fn outcome(finished_ms: i64, expires_ms: i64) -> JobOutcome {
    JobOutcome {
        record_count: 12_345,
        file_count: 2,
        file_size: 987_654,
        sha256: "ab".repeat(32),
        finished_at: at_ms(finished_ms),
        expires_at: at_ms(expires_ms),
    }
}

fn callback(job: &NewJob, next_ms: i64) -> Callback {
    Callback {
        response_id: job.response_id.clone(),
        developer_id: job.developer_id.clone(),
        url: job.callback_url.clone(),
        body: format!(r#"{{"msgBody":{{"responseId":"{}"}}}}"#, job.response_id),
        state: CallbackState::Pending,
        attempts: 0,
        next_attempt_at: at_ms(next_ms),
        give_up_at: at_ms(next_ms + 86_400_000),
        last_error: None,
    }
}

async fn created(store: &Arc<dyn Store>, job: &NewJob) {
    assert_eq!(
        store.create_job(job, 100).await.expect("create job"),
        CreateJob::Created
    );
}

async fn job(store: &Arc<dyn Store>, id: &ResponseId) -> Job {
    store.job(id).await.expect("read job").expect("job exists")
}

/// Creates, claims and finishes a job; returns it with the callback it enqueued.
async fn finished_job(
    store: &Arc<dyn Store>,
    id: u8,
    next_ms: i64,
    expires_ms: i64,
) -> (NewJob, Callback) {
    let j = new_job(id, "dev1", BASE * 1000 + i64::from(id), None);
    created(store, &j).await;
    let now = at_ms(BASE * 1000 + 1000);
    let claimed = store
        .claim_job("w", now, at_ms(BASE * 1000 + 60_000))
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(claimed.job.response_id, j.response_id);
    let cb = callback(&j, next_ms);
    assert!(store
        .finish_job(
            &j.response_id,
            "w",
            &outcome(BASE * 1000 + 2000, expires_ms),
            &cb
        )
        .await
        .expect("finish"));
    (j, cb)
}

async fn collect(store: &Arc<dyn Store>, q: RecordQuery) -> Vec<Record> {
    store
        .stream_records(q)
        .try_collect()
        .await
        .expect("stream records")
}

fn keys(records: &[Record]) -> Vec<(i64, String)> {
    records
        .iter()
        .map(|r| (r.begin_time.as_second() - BASE, r.id.clone()))
        .collect()
}

pub async fn developers(store: Arc<dyn Store>) {
    assert_eq!(store.developer("dev-b").await.expect("get"), None);
    assert!(store.developers().await.expect("list").is_empty());

    let b = developer("dev-b", &["acc1", "acc2"]);
    store.insert_developer(&b).await.expect("insert b");
    let mut a = developer("dev-a", &[]);
    a.old_secret_enc = None;
    a.old_secret_until = None;
    a.roles = vec![Role::Ingest];
    a.enabled = false;
    a.csv_header = true;
    store.insert_developer(&a).await.expect("insert a");

    assert_eq!(
        store.developer("dev-b").await.expect("get b"),
        Some(b.clone())
    );
    assert_eq!(
        store.developer("dev-a").await.expect("get a"),
        Some(a.clone())
    );
    assert_eq!(
        store.developers().await.expect("list"),
        vec![a.clone(), b.clone()]
    );

    let mut again = developer("dev-b", &["other"]);
    again.name = "impostor".into();
    match store.insert_developer(&again).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        store.developer("dev-b").await.expect("get b"),
        Some(b.clone()),
        "a conflict changes nothing"
    );

    let mut b2 = b.clone();
    b2.name = "renamed".into();
    b2.secret_enc = vec![42; 48];
    b2.old_secret_enc = Some(b.secret_enc.clone());
    b2.old_secret_until = Some(at_ms(BASE * 1000 + 999));
    b2.timezone = "Europe/Paris".into();
    b2.accounts = vec!["acc0".into(), "acc2".into(), "acc3".into()];
    b2.roles = vec![Role::Export];
    b2.enabled = false;
    b2.csv_header = true;
    store.update_developer(&b2).await.expect("update b");
    assert_eq!(
        store.developer("dev-b").await.expect("get b"),
        Some(b2.clone())
    );

    b2.accounts.clear();
    b2.roles.clear();
    store.update_developer(&b2).await.expect("update b");
    assert_eq!(
        store.developer("dev-b").await.expect("get b"),
        Some(b2.clone())
    );

    match store.update_developer(&developer("dev-missing", &[])).await {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("expected not found, got {other:?}"),
    }
    assert_eq!(store.developers().await.expect("list"), vec![a, b2]);
}

/// Stores `records` and returns `(inserted, already present, conflicts, replaced)`, after
/// checking that `check_records` predicted exactly that outcome.
async fn insert(
    store: &Arc<dyn Store>,
    records: &[Record],
    on_conflict: OnConflict,
) -> (u64, u64, u64, u64) {
    let o = insert_outcome(store, records, on_conflict).await;
    (o.inserted, o.already_present, o.conflicts, o.replaced)
}

async fn insert_outcome(
    store: &Arc<dyn Store>,
    records: &[Record],
    on_conflict: OnConflict,
) -> InsertOutcome {
    let predicted = store
        .check_records(records, on_conflict)
        .await
        .expect("check");
    let o = store
        .insert_records(records, on_conflict)
        .await
        .expect("insert");
    assert_eq!(predicted, o, "check_records predicted another outcome");
    o
}

pub async fn records_insert(store: Arc<dyn Store>) {
    use OnConflict::*;
    let all = |store: Arc<dyn Store>| async move {
        collect(&store, query("d1", BASE - 1000, BASE + 100_000, None, None)).await
    };
    assert_eq!(insert(&store, &[], Fail).await, (0, 0, 0, 0));

    let r1 = record("d1", "r1", BASE, "acc1", "a1");
    let r2 = record("d1", "r2", BASE + 1, "acc1", "a1");
    let r3 = record("d1", "r3", BASE + 2, "acc1", "a1");
    let r4 = record("d1", "r4", BASE + 3, "acc1", "a1");
    assert_eq!(
        insert(&store, &[r1.clone(), r2.clone(), r3.clone()], Fail).await,
        (3, 0, 0, 0)
    );

    // r2 is stored already, r4 comes twice: one new row.
    assert_eq!(
        insert(&store, &[r2.clone(), r4.clone(), r4.clone()], Fail).await,
        (1, 2, 0, 0)
    );
    assert_eq!(all(store.clone()).await, vec![r1.clone(), r2, r3, r4]);

    // The same id belongs to each developer separately.
    assert_eq!(
        insert(&store, &[record("d2", "r1", BASE, "acc1", "a1")], Fail).await,
        (1, 0, 0, 0)
    );

    // More than one statement's worth, with duplicates of earlier rows and within the batch.
    let mut big: Vec<Record> = (0..2500)
        .map(|i| record("d1", &format!("big{i:05}"), BASE + 10 + i, "acc1", "a1"))
        .collect();
    big.push(r1.clone());
    big.push(big[1234].clone());
    assert_eq!(insert(&store, &big, Fail).await, (2500, 2, 0, 0));
    assert_eq!(insert(&store, &big, Fail).await, (0, 2502, 0, 0));
    assert_eq!(all(store.clone()).await.len(), 2504);
}

/// A record whose id is stored with different content: `Fail` stores nothing of the batch
/// and names the conflicts, `Skip` keeps the stored version, `Replace` overwrites it; an
/// unchanged resend is never a conflict.
pub async fn records_conflicts(store: Arc<dyn Store>) {
    use OnConflict::*;
    let all = |store: Arc<dyn Store>| async move {
        collect(&store, query("d1", BASE - 1000, BASE + 100_000, None, None)).await
    };
    let r1 = record("d1", "r1", BASE, "acc1", "a1");
    let r2 = record("d1", "r2", BASE + 1, "acc1", "a1");
    assert_eq!(
        insert(&store, &[r1.clone(), r2.clone()], Fail).await,
        (2, 0, 0, 0)
    );

    // Any column counts, the times too (at whole seconds: a finer part is not a change).
    let mut fraction = r1.clone();
    fraction.begin_time = at_ms(BASE * 1000 + 999);
    assert_eq!(insert(&store, &[fraction], Fail).await, (0, 1, 0, 0));
    let mut corrected = r1.clone();
    corrected.op_type = "3".into();
    corrected.begin_time = at_s(BASE + 50);
    let mut last_column = r2.clone();
    last_column.skill_info_sn = "9".into();
    let mut end = r2.clone();
    end.end_time = at_s(BASE + 2);

    // Fail: nothing of the batch is stored, not even the new record before the conflict.
    let r3 = record("d1", "r3", BASE + 2, "acc1", "a1");
    let o = insert_outcome(
        &store,
        &[
            r3.clone(),
            corrected.clone(),
            r2.clone(),
            last_column.clone(),
        ],
        Fail,
    )
    .await;
    assert_eq!(
        o,
        InsertOutcome {
            conflicts: 2,
            first_conflicts: vec![(1, "r1".into()), (3, "r2".into())],
            ..InsertOutcome::default()
        }
    );
    assert_eq!(all(store.clone()).await, vec![r1.clone(), r2.clone()]);
    assert_eq!(insert(&store, &[end.clone()], Fail).await, (0, 0, 1, 0));

    // Skip: the rest is stored, the stored versions stay.
    assert_eq!(
        insert(
            &store,
            &[
                r3.clone(),
                corrected.clone(),
                r2.clone(),
                last_column.clone()
            ],
            Skip
        )
        .await,
        (1, 1, 2, 0)
    );
    assert_eq!(
        all(store.clone()).await,
        vec![r1.clone(), r2.clone(), r3.clone()]
    );

    // Replace: the new content is stored, read back in every column.
    let o = insert_outcome(
        &store,
        &[corrected.clone(), r3.clone(), end.clone()],
        Replace,
    )
    .await;
    assert_eq!(
        (o.inserted, o.already_present, o.conflicts, o.replaced),
        (0, 1, 2, 2)
    );
    assert_eq!(o.first_conflicts, vec![(0, "r1".into()), (2, "r2".into())]);
    assert_eq!(
        all(store.clone()).await,
        vec![end.clone(), r3.clone(), corrected.clone()]
    );
    // Sent again unchanged, the corrected record is simply present.
    assert_eq!(
        insert(&store, &[corrected.clone(), end.clone()], Fail).await,
        (0, 2, 0, 0)
    );

    // Within one batch: a second version of a new id conflicts with the first. With Replace
    // each record is compared with the one before it, and the last one wins.
    let n1 = record("d1", "n1", BASE + 3, "acc1", "a1");
    let mut n1b = n1.clone();
    n1b.agent_id = "a2".into();
    assert_eq!(
        insert(&store, &[n1.clone(), n1b.clone()], Fail).await,
        (0, 0, 1, 0)
    );
    assert_eq!(all(store.clone()).await.len(), 3);
    assert_eq!(
        insert(&store, &[n1.clone(), n1b.clone(), n1.clone()], Skip).await,
        (1, 1, 1, 0)
    );
    assert_eq!(
        insert(&store, &[n1b.clone(), n1.clone(), n1b.clone()], Replace).await,
        (0, 0, 3, 3)
    );
    let stored = all(store.clone()).await;
    assert_eq!(stored.iter().find(|r| r.id == "n1"), Some(&n1b));

    // The same id of another developer is not a conflict.
    let mut other = corrected.clone();
    other.developer_id = "d9".into();
    other.op_type = "7".into();
    assert_eq!(insert(&store, &[other], Fail).await, (1, 0, 0, 0));

    // Across statements: conflicts past the first thousand records are found and counted in
    // full, and listed up to the limit, by their index in the whole batch.
    let big: Vec<Record> = (0..2500)
        .map(|i| record("d5", &format!("b{i:05}"), BASE + i, "acc1", "a1"))
        .collect();
    assert_eq!(insert(&store, &big, Fail).await, (2500, 0, 0, 0));
    let mut changed = big.clone();
    for r in changed.iter_mut().skip(1100).step_by(100) {
        r.phone_no = "changed".into();
    }
    changed.push(record("d5", "new", BASE, "acc1", "a1"));
    let o = insert_outcome(&store, &changed, Fail).await;
    assert_eq!((o.inserted, o.conflicts), (0, 14));
    assert_eq!(o.first_conflicts.len(), MAX_CONFLICTS_LISTED);
    assert_eq!(o.first_conflicts[0], (1100, "b01100".into()));
    assert_eq!(o.first_conflicts[9], (2000, "b02000".into()));
    let o = insert_outcome(&store, &changed, Replace).await;
    assert_eq!(
        (o.inserted, o.already_present, o.conflicts, o.replaced),
        (1, 2486, 14, 14)
    );
    let stored = collect(&store, query("d5", BASE - 10, BASE + 10_000, None, None)).await;
    assert_eq!(
        stored.iter().filter(|r| r.phone_no == "changed").count(),
        14
    );
    assert_eq!(stored.len(), 2501);
}

pub async fn records_stream(store: Arc<dyn Store>) {
    let mut records = vec![
        record("d1", "b", BASE, "acc1", "a1"),
        record("d1", "a", BASE, "acc2", "a2"),
        record("d1", "c", BASE + 10, "acc1", "a2"),
        record("d1", "d", BASE + 19, "acc2", "a1"),
        record("d1", "end", BASE + 20, "acc1", "a1"),
        record("d1", "before", BASE - 1, "acc1", "a1"),
        record("d2", "other", BASE + 5, "acc1", "a1"),
    ];
    records[1].skill_info_sn = "3".into();
    records[2].account_id = "acc1".into();
    store
        .insert_records(&records, OnConflict::Fail)
        .await
        .expect("insert");

    let got = collect(&store, query("d1", BASE, BASE + 20, None, None)).await;
    assert_eq!(
        keys(&got),
        vec![
            (0, "a".into()),
            (0, "b".into()),
            (10, "c".into()),
            (19, "d".into())
        ]
    );
    assert_eq!(got[0], records[1], "every column round-trips");
    assert_eq!(got[1], records[0]);

    let got = collect(&store, query("d1", BASE, BASE + 20, Some("acc1"), None)).await;
    assert_eq!(keys(&got), vec![(0, "b".into()), (10, "c".into())]);
    let got = collect(&store, query("d1", BASE, BASE + 20, None, Some("a2"))).await;
    assert_eq!(keys(&got), vec![(0, "a".into()), (10, "c".into())]);
    let got = collect(
        &store,
        query("d1", BASE, BASE + 21, Some("acc1"), Some("a1")),
    )
    .await;
    assert_eq!(keys(&got), vec![(0, "b".into()), (20, "end".into())]);
    let got = collect(&store, query("d1", BASE - 1, BASE, None, None)).await;
    assert_eq!(keys(&got), vec![(-1, "before".into())]);
    assert!(
        collect(&store, query("d1", BASE + 21, BASE + 100, None, None))
            .await
            .is_empty()
    );
    assert!(collect(&store, query("d1", BASE, BASE, None, None))
        .await
        .is_empty());
    assert!(
        collect(&store, query("nobody", BASE - 100, BASE + 100, None, None))
            .await
            .is_empty()
    );

    // Many records, inserted out of order, come back in (begin_time, id) order.
    let many: Vec<Record> = (0..3000)
        .rev()
        .map(|i| {
            record(
                "d3",
                &format!("m{:04}", (i * 7) % 3000),
                BASE + 1000 + i / 1000,
                "acc1",
                "a1",
            )
        })
        .collect();
    store
        .insert_records(&many, OnConflict::Fail)
        .await
        .expect("insert many");
    let got = collect(&store, query("d3", BASE, BASE + 10_000, None, None)).await;
    let mut expected = keys(&many);
    expected.sort();
    assert_eq!(keys(&got), expected);

    // A consumer that stops early drops the stream; the store goes on working.
    let first: Vec<_> = store
        .stream_records(query("d3", BASE, BASE + 10_000, None, None))
        .take(5)
        .collect()
        .await;
    assert_eq!(first.len(), 5);
    store.ping().await.expect("ping after an abandoned stream");

    // The stream owns what it needs: it outlives every other handle on the store.
    let stream = store.stream_records(query("d1", BASE, BASE + 20, None, None));
    drop(store);
    let got: Vec<Record> = stream.try_collect().await.expect("stream after drop");
    assert_eq!(got.len(), 4);
}

pub async fn jobs_create(store: Arc<dyn Store>) {
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
        if j.job.developer_id.as_str() == "dev4" && j.job.response_id == rid(20) {
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

pub async fn jobs_lifecycle(store: Arc<dyn Store>) {
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
    let out = outcome(BASE * 1000 + 20_000, BASE * 1000 + 600_000);
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
    assert!(!store
        .finish_job(&j3.response_id, "n2", &out, &cb3)
        .await
        .expect("finish by the old owner"));
    assert_eq!(job(&store, &j3.response_id).await.callback, None);
    assert!(store
        .finish_job(&j3.response_id, "n3", &out, &cb3)
        .await
        .expect("finish by the new owner"));
    assert_eq!(job(&store, &j3.response_id).await.callback, Some(cb3));
    assert_eq!(
        store
            .claim_job("n4", t(10_000_000), t(10_060_000))
            .await
            .expect("claim"),
        None,
        "nothing left"
    );
}

pub async fn callbacks(store: Arc<dyn Store>) {
    let ms = |offset: i64| BASE * 1000 + offset;
    assert_eq!(store.next_callback_at().await.expect("next"), None);
    assert!(store
        .claim_callbacks(at_ms(ms(10_000_000)), at_ms(ms(10_060_000)), 10)
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
        .claim_callbacks(at_ms(ms(20_000)), until, 10)
        .await
        .expect("claim");
    let expect = |cb: &Callback| Callback {
        next_attempt_at: until,
        ..cb.clone()
    };
    assert_eq!(claimed, vec![expect(&cb1), expect(&cb2)]);
    assert!(store
        .claim_callbacks(at_ms(ms(20_000)), at_ms(ms(90_000)), 10)
        .await
        .expect("claim")
        .is_empty());
    assert!(store
        .claim_callbacks(at_ms(ms(79_999)), at_ms(ms(90_000)), 10)
        .await
        .expect("claim")
        .is_empty());
    assert_eq!(store.next_callback_at().await.expect("next"), Some(until));
    let again = store
        .claim_callbacks(at_ms(ms(80_000)), at_ms(ms(140_000)), 1)
        .await
        .expect("claim");
    assert_eq!(again.len(), 1, "at most limit");
    assert_eq!(again[0].response_id, j1.response_id);
    assert!(store
        .claim_callbacks(at_ms(ms(80_000)), at_ms(ms(140_000)), 0)
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
        .claim_callbacks(at_ms(ms(10_000_000)), at_ms(ms(10_060_000)), 10)
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
        .claim_callbacks(at_ms(ms(99_000_000)), at_ms(ms(99_060_000)), 10)
        .await
        .expect("claim")
        .is_empty());

    match store.record_attempt(&rid(99), &Attempt::Delivered).await {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("expected not found, got {other:?}"),
    }
}

pub async fn callbacks_superseded(store: Arc<dyn Store>) {
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
        .claim_callbacks(at_ms(ms(99_000_000)), at_ms(ms(99_060_000)), 10)
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

/// Many tasks at once: write transactions wait for each other instead of failing, each job is
/// claimed once, and the active-jobs limit holds.
pub async fn concurrency(store: Arc<dyn Store>) {
    let t0 = BASE * 1000;
    let tasks: Vec<_> = (0..20u8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create_job(&new_job(i, "dev1", t0 + i64::from(i), None), 3)
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        match t.await.expect("task").expect("create") {
            CreateJob::Created => created += 1,
            CreateJob::TooMany => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 3);
    for i in 100..105u8 {
        assert_eq!(
            store
                .create_job(&new_job(i, "dev2", t0, None), 100)
                .await
                .expect("create"),
            CreateJob::Created
        );
    }

    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .claim_job(&format!("w{i}"), at_ms(t0 + 1000), at_ms(t0 + 61_000))
                    .await
            })
        })
        .collect();
    let mut claimed = HashSet::new();
    for t in tasks {
        if let Some(j) = t.await.expect("task").expect("claim") {
            assert!(claimed.insert(j.job.response_id), "a job claimed twice");
        }
    }
    assert_eq!(claimed.len(), 8);

    let batch: Vec<Record> = (0..500)
        .map(|i| record("d1", &format!("c{i}"), BASE + i, "acc1", "a1"))
        .collect();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let batch = batch.clone();
            tokio::spawn(async move { store.insert_records(&batch, OnConflict::Fail).await })
        })
        .collect();
    let mut inserted = 0;
    for t in tasks {
        inserted += t.await.expect("task").expect("insert").inserted;
    }
    assert_eq!(inserted, 500);
}

/// Generates one `#[tokio::test]` per check above, each on a fresh store made by `$fresh`: an
/// `async fn() -> (Guard, Arc<dyn Store>)` whose guard keeps the database alive for the test.
macro_rules! conformance_tests {
    ($fresh:path) => {
        $crate::store::conformance::conformance_tests!(@each $fresh;
            store_developers => developers,
            store_records_insert => records_insert,
            store_records_conflicts => records_conflicts,
            store_records_stream => records_stream,
            store_jobs_create => jobs_create,
            store_jobs_lifecycle => jobs_lifecycle,
            store_callbacks => callbacks,
            store_callbacks_superseded => callbacks_superseded,
            store_expiry => expiry,
            store_replay_and_purge => replay_and_purge,
        );
        // Several worker threads, so that concurrent claims really race.
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn store_concurrency() {
            let (_guard, store) = $fresh().await;
            $crate::store::conformance::concurrency(store).await;
        }
    };
    (@each $fresh:path; $($test:ident => $check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                let (_guard, store) = $fresh().await;
                $crate::store::conformance::$check(store).await;
            }
        )*
    };
}
pub(crate) use conformance_tests;

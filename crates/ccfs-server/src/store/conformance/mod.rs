//! Behaviour every [`Store`] implementation must show, written against the trait only so that
//! each implementation runs the same checks on a fresh, empty database of its own: one module of
//! checks per part of the store, and one list of them all ([`conformance_tests`]) that an
//! implementation runs with one line.
//!
//! Times handed to the store have millisecond precision (record and query times whole seconds),
//! which is what the stores promise to round-trip.

pub(crate) mod depths;
pub(crate) mod developers;
pub(crate) mod downloads;
pub(crate) mod jobs;
pub(crate) mod operator;
pub(crate) mod outbox;
pub(crate) mod records;
pub(crate) mod replay;

use std::collections::HashSet;
use std::sync::Arc;

use ccfs_protocol::{AppId, Record, ResponseId, ZipFileName};
use futures::TryStreamExt;
use jiff::{civil, Timestamp};

use crate::model::{
    BodyHash, Callback, CallbackState, CallbackUrl, Developer, Idempotency, IdempotencyKey, Job,
    JobOutcome, NewJob, RecordQuery, Role, TimeZoneName,
};
use crate::store::{CreateJob, OnConflict, Store};

/// 2024-05-01T00:00:00Z.
pub(crate) const BASE: i64 = 1_714_521_600;

pub(crate) fn at_ms(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).expect("valid test time")
}

fn at_s(s: i64) -> Timestamp {
    Timestamp::from_second(s).expect("valid test time")
}

fn tz(name: &str) -> TimeZoneName {
    TimeZoneName::parse(name).expect("known test time zone")
}

pub(crate) fn app(s: &str) -> AppId {
    AppId::parse(s).expect("valid test app id")
}

fn rid(n: u8) -> ResponseId {
    ResponseId::from_bytes([n; 16])
}

pub(crate) fn developer(app_id: &str, accounts: &[&str]) -> Developer {
    Developer {
        app_id: app(app_id),
        name: format!("{app_id} name"),
        secret_enc: vec![1, 2, 3, 0, 255],
        old_secret_enc: Some(vec![9, 8, 7]),
        old_secret_until: Some(at_ms(BASE * 1000 + 86_400_123)),
        timezone: tz("Asia/Shanghai"),
        accounts: accounts.iter().map(|s| s.to_string()).collect(),
        roles: vec![Role::Export, Role::Ingest],
        enabled: true,
        csv_header: false,
        created_at: at_ms(BASE * 1000 + 123),
    }
}

pub(crate) fn record(dev: &str, id: &str, begin: i64, account: &str, agent: &str) -> Record {
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

pub(crate) fn query(
    dev: &str,
    begin: i64,
    end: i64,
    account: Option<&str>,
    agent: Option<&str>,
) -> RecordQuery {
    RecordQuery {
        developer_id: app(dev),
        begin: at_s(begin),
        end: at_s(end),
        account_id: account.map(Into::into),
        agent_id: agent.map(Into::into),
    }
}

/// A job of `dev` accepted at `created_ms` (unix milliseconds); its idempotency is a key and a
/// body whose hash it carries.
pub(crate) fn new_job(
    id: u8,
    dev: &str,
    created_ms: i64,
    idempotency: Option<(&str, &str)>,
) -> NewJob {
    let response_id = rid(id);
    NewJob {
        file_name: ZipFileName::new(civil::date(2024, 5, 1), &response_id),
        response_id,
        query: query(dev, BASE, BASE + 86_400, Some("acc1"), None),
        // Parsing normalises this URL (case, percent-encoding); the store must give back the
        // same URL.
        callback_url: CallbackUrl::parse("https://Example.com/ccfs/回调?x=a b").expect("test URL"),
        timezone: tz("Asia/Shanghai"),
        csv_header: true,
        created_at: at_ms(created_ms),
        idempotency: idempotency.map(|(key, body)| Idempotency {
            key: IdempotencyKey::parse(key).expect("test key"),
            body_hash: BodyHash::of(body.as_bytes()),
        }),
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
        file_attempt: Some(1),
    }
}

fn callback(job: &NewJob, next_ms: i64) -> Callback {
    Callback {
        response_id: job.response_id.clone(),
        developer_id: job.developer_id().clone(),
        url: job.callback_url.clone(),
        body: format!(r#"{{"msgBody":{{"responseId":"{}"}}}}"#, job.response_id),
        state: CallbackState::Pending,
        attempts: 0,
        next_attempt_at: at_ms(next_ms),
        give_up_at: at_ms(next_ms + 86_400_000),
        last_error: None,
    }
}

pub(crate) async fn created(store: &Arc<dyn Store>, job: &NewJob) {
    assert_eq!(
        store.create_job(job, 100).await.expect("create job"),
        CreateJob::Created
    );
}

pub(crate) async fn job(store: &Arc<dyn Store>, id: &ResponseId) -> Job {
    store.job(id).await.expect("read job").expect("job exists")
}

/// Creates, claims and finishes a job; returns it with the callback it enqueued.
pub(crate) async fn finished_job(
    store: &Arc<dyn Store>,
    id: u8,
    next_ms: i64,
    expires_ms: i64,
) -> (NewJob, Callback) {
    finished_job_of(store, "dev1", id, next_ms, expires_ms).await
}

/// [`finished_job`] of developer `dev`.
pub(crate) async fn finished_job_of(
    store: &Arc<dyn Store>,
    dev: &str,
    id: u8,
    next_ms: i64,
    expires_ms: i64,
) -> (NewJob, Callback) {
    let j = new_job(id, dev, BASE * 1000 + i64::from(id), None);
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

pub(crate) async fn collect(store: &Arc<dyn Store>, q: RecordQuery) -> Vec<Record> {
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

/// Generates one `#[tokio::test]` per check of the modules above, each on a fresh store made by
/// `$fresh`: an `async fn() -> (Guard, Arc<dyn Store>)` whose guard keeps the database alive for
/// the test.
macro_rules! conformance_tests {
    // Attributes after the function go on every test (e.g. `#[ignore = "…"]` for a store that
    // needs a service).
    ($fresh:path $(, #[$attr:meta])* $(,)?) => {
        $crate::store::conformance::conformance_tests!(@each $fresh; [$(#[$attr])*];
            store_developers => developers::developers,
            store_records_insert => records::insert_batches,
            store_records_conflicts => records::conflicts,
            store_records_stream => records::stream,
            store_jobs_create => jobs::create,
            store_jobs_lifecycle => jobs::lifecycle,
            store_expiry => jobs::expiry,
            store_callbacks => outbox::callbacks,
            store_callbacks_superseded => outbox::superseded,
            store_callbacks_claim_limits => outbox::claim_limits,
            store_replay_and_purge => replay::replay_and_purge,
            store_operator_cancel => operator::cancel,
            store_operator_list => operator::list,
            store_operator_retry_callback => operator::retry_callback,
            store_operator_delete_developer => operator::delete_developer,
            store_downloads_limit_and_release => downloads::limit_and_release,
            store_downloads_expired_lease_frees => downloads::expired_lease_frees,
            store_downloads_renewal => downloads::renewal,
            store_downloads_release_all_and_purge => downloads::release_all_and_purge,
            store_queue_depths => depths::queue_depths,
        );
        // Several worker threads, so that concurrent claims really race.
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        $(#[$attr])*
        async fn store_concurrency() {
            let (_guard, store) = $fresh().await;
            $crate::store::conformance::concurrency(store).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        $(#[$attr])*
        async fn store_operator_cancel_races_finish() {
            let (_guard, store) = $fresh().await;
            $crate::store::conformance::operator::cancel_races_finish(store).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        $(#[$attr])*
        async fn store_downloads_concurrent_acquires() {
            let (_guard, store) = $fresh().await;
            $crate::store::conformance::downloads::concurrent_acquires(store).await;
        }
    };
    // The attributes travel as one token tree, expanded one test at a time.
    (@each $fresh:path; $attrs:tt; $($test:ident => $($check:ident)::+),* $(,)?) => {
        $(
            $crate::store::conformance::conformance_tests!(@one $fresh; $attrs; $test => $($check)::+);
        )*
    };
    (@one $fresh:path; [$(#[$attr:meta])*]; $test:ident => $($check:ident)::+) => {
        #[tokio::test]
        $(#[$attr])*
        async fn $test() {
            let (_guard, store) = $fresh().await;
            $crate::store::conformance::$($check)::+(store).await;
        }
    };
}
pub(crate) use conformance_tests;

//! Tests of the SQLite schema against the code: the migration of databases made before the
//! latest migration, the state words the schema accepts, the partial indexes the job and
//! callback queries use, and stored values that do not read as their types.

use std::borrow::Cow;

use ccfs_protocol::ResponseId;
use jiff::Timestamp;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::Row;

use super::jobs::{active_jobs_sql, claim_sql, expired_jobs_sql};
use super::outbox::{due_callbacks_sql, next_callback_sql};
use super::*;
use crate::model::{
    BodyHash, Callback, CallbackUrl, Idempotency, IdempotencyKey, JobOutcome, NewJob, RecordQuery,
};
use crate::store::{ClaimLimits, CreateJob, Developers, JobQueue, Outbox, Records};
use futures::TryStreamExt;

async fn fresh() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open_path(&dir.path().join("ccfs.db"))
        .await
        .expect("open store");
    (dir, store)
}

const T0: i64 = 1_714_521_600_000;

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).expect("time")
}

fn new_job(n: u8, idempotency: Option<Idempotency>) -> NewJob {
    let response_id = ResponseId::from_bytes([n; 16]);
    NewJob {
        file_name: ccfs_protocol::ZipFileName::new(jiff::civil::date(2024, 5, 1), &response_id),
        response_id,
        query: RecordQuery {
            developer_id: ccfs_protocol::AppId::parse("dev1").expect("app id"),
            begin: at(T0),
            end: at(T0 + 86_400_000),
            account_id: Some("acc1".into()),
            agent_id: None,
        },
        callback_url: CallbackUrl::parse("https://example.com/回调?a=b c").expect("URL"),
        timezone: TimeZoneName::parse("Asia/Shanghai").expect("zone"),
        csv_header: true,
        created_at: at(T0 + 5),
        idempotency,
    }
}

/// Creates, claims and publishes `job` with its first callback (no other job may be claimable).
async fn publish(store: &SqliteStore, job: &NewJob) {
    assert_eq!(
        store.create_job(job, 10).await.expect("create"),
        CreateJob::Created
    );
    let claimed = store
        .claim_job("w", at(T0 + 1000), at(T0 + 61_000))
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(claimed.job.response_id, job.response_id);
    let outcome = JobOutcome {
        record_count: 0,
        file_count: 1,
        file_size: 22,
        sha256: "00".repeat(32),
        finished_at: at(T0),
        expires_at: at(T0 + 1000),
        file_attempt: Some(1),
    };
    let cb = Callback::first(job, at(T0), jiff::SignedDuration::from_hours(1)).expect("callback");
    assert!(store
        .finish_job(&job.response_id, "w", &outcome, &cb)
        .await
        .expect("finish"));
}

/// A database made by the migrations before the last one, with a job (its callback and its
/// idempotency key) as that schema stored it, opens as the current schema with nothing lost.
#[tokio::test]
async fn store_an_older_database_migrates_and_keeps_its_jobs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ccfs.db");
    let mut older = sqlx::migrate!("./migrations/sqlite");
    let before: Vec<_> = older
        .migrations
        .iter()
        .filter(|m| m.version < 3)
        .cloned()
        .collect();
    assert_eq!(before.len(), 2);
    older.migrations = Cow::Owned(before);
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.expect("open");
    older.run(&pool).await.expect("older migrations");
    let key = IdempotencyKey::parse("nightly").expect("key");
    let body_hash = BodyHash::of(b"{}");
    let expected = new_job(
        1,
        Some(Idempotency {
            key: key.clone(),
            body_hash,
        }),
    );
    let id = expected.response_id.as_str();
    sqlx::query(
        "INSERT INTO jobs (response_id, developer_id, file_name, query_developer_id, query_begin, \
         query_end, query_account_id, callback_url, timezone, csv_header, created_at, \
         idempotency_key, idempotency_hash, state, attempts, started_at, lease_owner, \
         record_count, file_count, file_size, sha256, finished_at, expires_at) \
         VALUES (?, 'dev1', ?, 'dev1', ?, ?, 'acc1', ?, 'Asia/Shanghai', 1, ?, 'nightly', ?, \
         'succeeded', 1, ?, 'n1', 7, 1, 100, ?, ?, ?)",
    )
    .bind(id)
    .bind(expected.file_name.as_str())
    .bind(T0 / 1000)
    .bind(T0 / 1000 + 86_400)
    .bind(expected.callback_url.as_str())
    .bind(T0 + 5)
    .bind(body_hash.to_hex())
    .bind(T0 + 10)
    .bind("ab".repeat(32))
    .bind(T0 + 20)
    .bind(T0 + 600_000)
    .execute(&pool)
    .await
    .expect("job");
    sqlx::query(
        "INSERT INTO idempotency_keys (developer_id, key, request_hash, response_id, created_at) \
         VALUES ('dev1', 'nightly', ?, ?, ?)",
    )
    .bind(body_hash.to_hex())
    .bind(id)
    .bind(T0 + 5)
    .execute(&pool)
    .await
    .expect("key");
    sqlx::query(
        "INSERT INTO callbacks (response_id, developer_id, url, body, state, attempts, \
         next_attempt_at, give_up_at, last_error) \
         VALUES (?, 'dev1', ?, '{}', 'pending', 2, ?, ?, 'HTTP 503')",
    )
    .bind(id)
    .bind(expected.callback_url.as_str())
    .bind(T0 + 30)
    .bind(T0 + 86_400_000)
    .execute(&pool)
    .await
    .expect("callback");
    // Records imported out of time order: the rewrite of 0006 keeps them all, now stored in
    // export order.
    for (rec, begin) in [("r3", 30), ("r1", 10), ("r2", 10)] {
        sqlx::query(
            "INSERT INTO records (id, developer_id, account_id, agent_id, service_no, skill_id, \
             call_id, begin_time, end_time, op_type, op_object, op_cause, media_type, vdn_id, \
             cc_id, agent_type, phone_no, call_in_out, location_id, logon_sn, skill_info_sn) \
             VALUES (?, 'dev1', 'acc1', 'a1', '', '', '', ?, ?, '2', '', '', '', '', '', '', \
             '', '', '', '', '')",
        )
        .bind(rec)
        .bind(T0 / 1000 + begin)
        .bind(T0 / 1000 + begin + 5)
        .execute(&pool)
        .await
        .expect("record");
    }
    pool.close().await;

    let store = SqliteStore::open_path(&path).await.expect("migrate");
    let columns: Vec<String> = sqlx::query("SELECT name FROM pragma_table_info('jobs')")
        .fetch_all(&store.reader)
        .await
        .expect("columns")
        .iter()
        .map(|r| r.get::<String, _>("name"))
        .collect();
    assert!(columns.contains(&"developer_id".to_owned()));
    assert!(!columns.contains(&"query_developer_id".to_owned()));
    let job = store
        .job(&expected.response_id)
        .await
        .expect("read")
        .expect("the job survived");
    assert_eq!(job.job, expected);
    assert_eq!(
        job.outcome,
        Some(JobOutcome {
            record_count: 7,
            file_count: 1,
            file_size: 100,
            sha256: "ab".repeat(32),
            finished_at: at(T0 + 20),
            expires_at: at(T0 + 600_000),
            // Published before per-attempt keys: its file is under its name alone.
            file_attempt: None,
        })
    );
    assert_eq!(
        job.callback,
        Some(Callback {
            response_id: expected.response_id.clone(),
            developer_id: expected.developer_id().clone(),
            url: expected.callback_url.clone(),
            body: "{}".into(),
            state: CallbackState::Pending,
            attempts: 2,
            next_attempt_at: at(T0 + 30),
            give_up_at: at(T0 + 86_400_000),
            last_error: Some("HTTP 503".into()),
        }),
        "the callback survived the rewrite of its parent table"
    );
    let mut again = new_job(2, expected.idempotency.clone());
    again.created_at = at(T0 + 3_600_000);
    assert_eq!(
        store.create_job(&again, 10).await.expect("create"),
        CreateJob::Existing(expected.response_id.clone()),
        "the idempotency key survived too"
    );
    let records: Vec<(String, Timestamp)> = store
        .stream_records(RecordQuery {
            developer_id: ccfs_protocol::AppId::parse("dev1").expect("app id"),
            begin: at(T0),
            end: at(T0 + 60_000),
            account_id: None,
            agent_id: None,
        })
        .map_ok(|r| (r.id, r.begin_time))
        .try_collect()
        .await
        .expect("records");
    assert_eq!(
        records,
        [("r1", 10), ("r2", 10), ("r3", 30)].map(|(id, s)| (id.to_owned(), at(T0 + s * 1000)))
    );
    let table: String = sqlx::query_scalar("SELECT sql FROM sqlite_schema WHERE name = 'records'")
        .fetch_one(&store.reader)
        .await
        .expect("schema");
    assert!(table.contains("WITHOUT ROWID"), "{table}");
    let fk: Vec<String> = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&store.reader)
        .await
        .expect("check")
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
    assert!(fk.is_empty(), "{fk:?}");
}

/// Every state the code writes is one the schema's CHECK constraints accept, and reads back as
/// itself.
#[tokio::test]
async fn store_every_state_is_one_the_schema_accepts() {
    let (_dir, store) = fresh().await;
    let job = new_job(1, None);
    store.create_job(&job, 10).await.expect("create");
    let id = &job.response_id;
    let mut texts = std::collections::HashSet::new();
    for state in JobState::ALL {
        assert!(texts.insert(job_state_text(state)));
        sqlx::query("UPDATE jobs SET state = ? WHERE response_id = ?")
            .bind(job_state_text(state))
            .bind(id.as_str())
            .execute(&store.writer)
            .await
            .unwrap_or_else(|e| panic!("{state:?}: {e}"));
        assert_eq!(
            store.job(id).await.expect("read").expect("job").state,
            state
        );
    }
    // Job 1 is expired now, so job 2 is the one claimed and published.
    let published = new_job(2, None);
    publish(&store, &published).await;
    let id = &published.response_id;
    let mut texts = std::collections::HashSet::new();
    for state in CallbackState::ALL {
        assert!(texts.insert(callback_state_text(state)));
        sqlx::query("UPDATE callbacks SET state = ? WHERE response_id = ?")
            .bind(callback_state_text(state))
            .bind(id.as_str())
            .execute(&store.writer)
            .await
            .unwrap_or_else(|e| panic!("{state:?}: {e}"));
        let read = store.job(id).await.expect("read").expect("job");
        assert_eq!(read.callback.expect("callback").state, state);
    }
    let id = &job.response_id;
    for bad in ["Queued", "done", ""] {
        assert!(
            sqlx::query("UPDATE jobs SET state = ? WHERE response_id = ?")
                .bind(bad)
                .bind(id.as_str())
                .execute(&store.writer)
                .await
                .is_err()
        );
    }
}

/// The hot job and callback queries name their states as literals, so the planner uses the
/// partial indexes made for them.
#[tokio::test]
async fn store_job_queries_use_their_partial_indexes() {
    let (_dir, store) = fresh().await;
    for (sql, index) in [
        (active_jobs_sql(), "jobs_active"),
        (claim_sql(), "jobs_claimable"),
        (expired_jobs_sql(), "jobs_expiry"),
        (due_callbacks_sql(), "callbacks_due"),
        (next_callback_sql(), "callbacks_due"),
    ] {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut query = sqlx::query(&explain);
        for n in 0..sql.matches('?').count() {
            query = query.bind(n as i64);
        }
        let plan: Vec<String> = query
            .fetch_all(&store.reader)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|r| r.get::<String, _>("detail"))
            .collect();
        let plan = plan.join("\n");
        assert!(plan.contains(&format!("INDEX {index}")), "{sql}\n{plan}");
    }
}

/// A stored value that does not read as its type makes its row corrupt: the time zone this
/// server's database does not know, a callback URL, an idempotency key or body hash. A job
/// that cannot be read is not claimed away: the claim fails, and the job stays queued with no
/// attempt counted.
#[tokio::test]
async fn store_values_that_do_not_read_as_their_types_are_corrupt() {
    let (_dir, store) = fresh().await;
    let developer = crate::model::Developer {
        app_id: ccfs_protocol::AppId::parse("dev1").expect("app id"),
        name: "n".into(),
        secret_enc: vec![0],
        old_secret_enc: None,
        old_secret_until: None,
        timezone: TimeZoneName::utc(),
        accounts: vec![],
        roles: vec![],
        enabled: true,
        csv_header: false,
        created_at: at(T0),
    };
    store.insert_developer(&developer).await.expect("insert");
    sqlx::query("UPDATE developers SET timezone = 'Mars/Olympus_Mons'")
        .execute(&store.writer)
        .await
        .expect("update");
    match store.developer("dev1").await {
        Err(StoreError::Corrupt(e)) => assert!(e.contains("Mars/Olympus_Mons"), "{e}"),
        other => panic!("expected a corrupt row, got {other:?}"),
    }

    let key = IdempotencyKey::parse("k").expect("key");
    for (n, column, value) in [
        (1u8, "timezone", "Mars/Olympus_Mons"),
        (2, "callback_url", "ftp://example.com/cb"),
        (3, "idempotency_key", "a key"),
        (4, "idempotency_hash", "h1"),
    ] {
        let job = new_job(
            n,
            Some(Idempotency {
                key: key.clone(),
                body_hash: BodyHash::of(&[n]),
            }),
        );
        let id = &job.response_id;
        store.create_job(&job, 10).await.expect("create");
        sqlx::query(&format!(
            "UPDATE jobs SET {column} = ? WHERE response_id = ?"
        ))
        .bind(value)
        .bind(id.as_str())
        .execute(&store.writer)
        .await
        .expect("update");
        match store.job(id).await {
            Err(StoreError::Corrupt(e)) => assert!(e.contains(value), "{column}: {e}"),
            other => panic!("{column}: expected a corrupt row, got {other:?}"),
        }
        match store.claim_job("w", at(T0 + 1000), at(T0 + 61_000)).await {
            Err(StoreError::Corrupt(_)) => {}
            other => panic!("{column}: expected a corrupt row, got {other:?}"),
        }
        let (state, attempts): (String, i64) =
            sqlx::query_as("SELECT state, attempts FROM jobs WHERE response_id = ?")
                .bind(id.as_str())
                .fetch_one(&store.reader)
                .await
                .expect("raw row");
        assert_eq!((state.as_str(), attempts), ("queued", 0), "{column}");
        sqlx::query("DELETE FROM jobs WHERE response_id = ?")
            .bind(id.as_str())
            .execute(&store.writer)
            .await
            .expect("delete");
    }

    // The callback URL of a callback row too.
    publish(&store, &new_job(9, None)).await;
    sqlx::query("UPDATE callbacks SET url = '/relative'")
        .execute(&store.writer)
        .await
        .expect("update");
    assert!(matches!(
        store
            .claim_callbacks(at(T0), at(T0 + 1000), &ClaimLimits::total(10))
            .await,
        Err(StoreError::Corrupt(_))
    ));
}

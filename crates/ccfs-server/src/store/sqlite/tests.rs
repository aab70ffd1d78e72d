//! Tests of what is particular to the SQLite store: two processes on one file, an in-memory
//! database, the pragmas, the query plans, rows that cannot be read, the migration of older
//! databases, and the import and export speed. The behaviour every store shares is the
//! conformance suite's, run here with one line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ccfs_protocol::{AppId, Record, ResponseId, ZipFileName};
use futures::TryStreamExt;
use jiff::Timestamp;
use sqlx::Row;

use super::record_db::stored_sql;
use super::record_stream::export_sql;
use super::*;
use crate::model::{CallbackUrl, NewJob, RecordQuery, TimeZoneName};
use crate::store::convert::RECORD_TEXT_COLUMNS;
use crate::store::{CreateJob, Developers, JobQueue, OnConflict, Records, StoreResult};

/// A fresh database in its own temporary directory (kept alive with the store).
async fn fresh() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/nested/dir/ccfs.db", dir.path().display());
    let store = SqliteStore::open(&url).await.expect("open store");
    (dir, store)
}

async fn fresh_dyn() -> (tempfile::TempDir, Arc<dyn Store>) {
    let (dir, store) = fresh().await;
    (dir, Arc::new(store))
}

crate::store::conformance::conformance_tests!(fresh_dyn);

/// Two stores on one file stand for two processes (a server and `ccfs import`): their
/// writers meet on SQLite's lock, where `BEGIN IMMEDIATE` and the busy timeout make them
/// wait for each other instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_two_stores_on_one_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/ccfs.db", dir.path().display());
    let a: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.expect("open a"));
    let b: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.expect("open b"));
    let base = 1_714_521_600_000i64;
    let at = |ms: i64| Timestamp::from_millisecond(ms).expect("time");
    let tasks: Vec<_> = (0..40u8)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                let job = dev_job(i, at(base), at(base + 1000), at(base + i64::from(i)));
                store.create_job(&job, 30).await
            })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        if t.await.expect("task").expect("create") == CreateJob::Created {
            created += 1;
        }
    }
    assert_eq!(created, 30, "the limit holds across both");

    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while let Some(j) = store
                    .claim_job(&format!("w{i}"), at(base + 5000), at(base + 65_000))
                    .await?
                {
                    mine.push(j.job.response_id);
                }
                StoreResult::Ok(mine)
            })
        })
        .collect();
    let mut claimed = std::collections::HashSet::new();
    for t in tasks {
        for id in t.await.expect("task").expect("claim") {
            assert!(claimed.insert(id), "a job claimed twice");
        }
    }
    assert_eq!(claimed.len(), 30);
}

/// The records' direct connection and the sqlx writer are two writers of one process: while
/// batches of records are stored, jobs are created and claimed on the other connection, and
/// every write of both succeeds (they wait for each other on SQLite's lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_record_writes_and_other_writes_interleave() {
    let (_dir, store) = fresh().await;
    let store: Arc<dyn Store> = Arc::new(store);
    let base = 1_714_521_600i64;
    let records = (0..8u8).map(|b| {
        let store = store.clone();
        tokio::spawn(async move {
            let batch: Vec<Record> = (0..2_000)
                .map(|i| throughput_record(usize::from(b) * 2_000 + i, true))
                .collect();
            store.insert_records(&batch, OnConflict::Fail).await
        })
    });
    let records: Vec<_> = records.collect();
    let jobs: Vec<_> = (0..20u8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let at = |s: i64| Timestamp::from_second(s).expect("time");
                let job = dev_job(i, at(base), at(base + 1000), at(base + i64::from(i)));
                store.create_job(&job, 100).await
            })
        })
        .collect();
    let mut inserted = 0;
    for t in records {
        inserted += t.await.expect("task").expect("insert").inserted;
    }
    assert_eq!(inserted, 16_000);
    for t in jobs {
        assert_eq!(t.await.expect("task").expect("job"), CreateJob::Created);
    }
}

#[test]
fn store_sql_columns_match_the_record_columns() {
    for (sql, name) in RECORD_TEXT_COLUMNS
        .iter()
        .zip(ccfs_protocol::record::TEXT_COLUMNS)
    {
        let mut snake = String::new();
        for c in name.chars() {
            if c.is_ascii_uppercase() {
                snake.push('_');
            }
            snake.push(c.to_ascii_lowercase());
        }
        assert_eq!(*sql, snake);
    }
}

/// A job of the developer `dev` over `[begin, end)`, its id made of `i`.
fn dev_job(i: u8, begin: Timestamp, end: Timestamp, created_at: Timestamp) -> NewJob {
    let id = ResponseId::from_bytes([i; 16]);
    NewJob {
        file_name: ZipFileName::new(jiff::civil::date(2024, 5, 1), &id),
        response_id: id,
        query: RecordQuery {
            developer_id: AppId::parse("dev").expect("app id"),
            begin,
            end,
            account_id: None,
            agent_id: None,
        },
        callback_url: CallbackUrl::parse("https://example.com/cb").expect("URL"),
        timezone: TimeZoneName::utc(),
        csv_header: false,
        created_at,
        idempotency: None,
    }
}

#[tokio::test]
async fn store_open_creates_and_reopens() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/a/b/ccfs.db", dir.path().display());
    let store = SqliteStore::open(&url).await.expect("open");
    // Every text empty but the developer's.
    let mut texts: [String; 19] = Default::default();
    texts[1] = "dev".into();
    let rec = Record::from_texts(texts, Timestamp::UNIX_EPOCH, Timestamp::UNIX_EPOCH);
    assert_eq!(
        store
            .insert_records(&[rec], OnConflict::Fail)
            .await
            .expect("insert")
            .inserted,
        1
    );
    store.writer.close().await;
    store.reader.close().await;
    assert!(dir.path().join("a/b/ccfs.db").exists());

    let store = SqliteStore::open(&url).await.expect("reopen");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&store.reader)
        .await
        .expect("pragma");
    assert_eq!(mode, "wal");
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&store.reader)
        .await
        .expect("pragma");
    assert_eq!(sync, 2, "FULL");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&store.reader)
        .await
        .expect("pragma");
    assert_eq!(fk, 1);
    let q = RecordQuery {
        developer_id: AppId::parse("dev").expect("app id"),
        begin: Timestamp::UNIX_EPOCH,
        end: Timestamp::from_second(1).expect("time"),
        account_id: None,
        agent_id: None,
    };
    let got: Vec<Record> = store.stream_records(q).try_collect().await.expect("stream");
    assert_eq!(got.len(), 1, "the data survived the reopen");
}

/// The lines of an `EXPLAIN QUERY PLAN` query's answer.
async fn plan_of<'q>(
    store: &SqliteStore,
    explain: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
) -> Vec<String> {
    explain
        .fetch_all(&store.reader)
        .await
        .expect("explain")
        .iter()
        .map(|r| r.try_get::<String, _>("detail").expect("detail"))
        .collect()
}

/// The stored versions of a chunk cost one lookup in the `(developer_id, id)` index per
/// record: the pairs are the outer loop, the records table is never scanned.
#[tokio::test]
async fn store_version_lookup_uses_the_unique_index() {
    let (_dir, store) = fresh().await;
    let sql = format!("EXPLAIN QUERY PLAN {}", stored_sql());
    let plan = plan_of(&store, sqlx::query(&sql).bind("d").bind("x")).await;
    // The unique constraint's automatic index (its number depends on the table's other keys).
    assert_eq!(plan.len(), 1, "{plan:?}");
    assert!(
        plan[0].starts_with("SEARCH records USING INDEX sqlite_autoindex_records_")
            && plan[0].ends_with("(developer_id=? AND id=?)"),
        "{plan:?}"
    );
}

/// The export query reads the table in its key order (the export order): no sort, whatever the
/// filters.
#[tokio::test]
async fn store_export_query_reads_in_index_order() {
    let (_dir, store) = fresh().await;
    for (account, agent) in [
        (None, None),
        (Some("a"), None),
        (None, Some("b")),
        (Some("a"), Some("b")),
    ] {
        let q = RecordQuery {
            developer_id: AppId::parse("d").expect("app id"),
            begin: Timestamp::UNIX_EPOCH,
            end: Timestamp::UNIX_EPOCH,
            account_id: account.map(Into::into),
            agent_id: agent.map(Into::into),
        };
        let sql = format!("EXPLAIN QUERY PLAN {}", export_sql(&q));
        let mut explain = sqlx::query(&sql).bind("d").bind(0).bind(1);
        if let Some(a) = account {
            explain = explain.bind(a);
        }
        if let Some(a) = agent {
            explain = explain.bind(a);
        }
        let plan = plan_of(&store, explain).await.join("\n");
        assert!(
            plan.contains("USING PRIMARY KEY (developer_id=? AND begin_time>? AND begin_time<?)"),
            "{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }
}

/// Bad stored data is an error, never a panic.
#[tokio::test]
async fn store_corrupt_rows_are_errors() {
    let (_dir, store) = fresh().await;
    sqlx::query(
        "INSERT INTO developers (app_id, name, secret_enc, timezone, roles, enabled, csv_header, created_at) \
         VALUES ('dev1', 'n', x'00', 'UTC', 'export,admin', 1, 0, 0)",
    )
    .execute(&store.writer)
    .await
    .expect("insert");
    assert!(matches!(
        store.developer("dev1").await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store.developers().await,
        Err(StoreError::Corrupt(_))
    ));

    sqlx::query("UPDATE developers SET roles = 'export', created_at = 'yesterday'")
        .execute(&store.writer)
        .await
        .expect("update");
    assert!(matches!(
        store.developer("dev1").await,
        Err(StoreError::Corrupt(_))
    ));

    let id = ResponseId::from_bytes([7; 16]);
    sqlx::query(
        "INSERT INTO jobs (response_id, developer_id, file_name, query_begin, \
         query_end, callback_url, timezone, csv_header, created_at, state) \
         VALUES (?, 'dev1', 'not-a-zip-name', 0, 1, 'https://example.com/cb', 'UTC', 0, 0, 'queued')",
    )
    .bind(id.as_str())
    .execute(&store.writer)
    .await
    .expect("insert job");
    assert!(matches!(store.job(&id).await, Err(StoreError::Corrupt(_))));

    sqlx::query(
        "INSERT INTO records (id, developer_id, account_id, agent_id, service_no, skill_id, call_id, \
         begin_time, end_time, op_type, op_object, op_cause, media_type, vdn_id, cc_id, agent_type, \
         phone_no, call_in_out, location_id, logon_sn, skill_info_sn) \
         VALUES ('r', 'dev1', '', '', '', '', '', 10, 9223372036854775807, '', '', '', '', '', '', '', '', '', '', '', '')",
    )
    .execute(&store.writer)
    .await
    .expect("insert record");
    let q = RecordQuery {
        developer_id: AppId::parse("dev1").expect("app id"),
        begin: Timestamp::UNIX_EPOCH,
        end: Timestamp::from_second(100).expect("time"),
        account_id: None,
        agent_id: None,
    };
    let got: StoreResult<Vec<Record>> = store.stream_records(q).try_collect().await;
    assert!(matches!(got, Err(StoreError::Corrupt(_))), "{got:?}");
}

/// 1,000,000 records like a contact center's: four a second, 500 agents, 4 accounts.
/// `random_ids` gives ids that are random (as hashes or UUIDs are) rather than growing
/// with time, which decides how the `(developer_id, id)` index is written.
fn throughput_record(i: usize, random_ids: bool) -> Record {
    let n = i as i64;
    let at = |s: i64| Timestamp::from_second(s).expect("time");
    Record {
        id: if random_ids {
            format!("{:016x}{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15), i)
        } else {
            format!("{i:032x}")
        },
        developer_id: THROUGHPUT_APP.into(),
        account_id: format!("acc{}", i % 4),
        agent_id: format!("{}", 10_000 + i % 500),
        service_no: "100".into(),
        skill_id: format!("{}", i % 20),
        call_id: format!("{}-{}", THROUGHPUT_BASE + n, i % 1000),
        begin_time: at(THROUGHPUT_BASE + n / 4),
        end_time: at(THROUGHPUT_BASE + n / 4 + 30),
        op_type: "4".into(),
        op_object: "-1".into(),
        op_cause: "0".into(),
        media_type: "5".into(),
        vdn_id: "1".into(),
        cc_id: "1".into(),
        agent_type: "4".into(),
        phone_no: "10.1.2.3".into(),
        call_in_out: "1".into(),
        location_id: "0".into(),
        logon_sn: format!("{}", 1_000_000 + i % 500),
        skill_info_sn: "1".into(),
    }
}

const THROUGHPUT_APP: &str = "0123456789abcdef0123456789abcdef";
const THROUGHPUT_BASE: i64 = 1_714_521_600;

/// Inserts `total` records in batches of 5,000 into a fresh database, then streams them all;
/// prints both rates.
async fn throughput(total: usize, random_ids: bool) {
    const BATCH: usize = 5_000;
    let (_dir, store) = fresh().await;
    let mut inserted = 0;
    let mut insert_time = Duration::ZERO;
    for start in (0..total).step_by(BATCH) {
        let batch: Vec<Record> = (start..(start + BATCH).min(total))
            .map(|i| throughput_record(i, random_ids))
            .collect();
        let t = Instant::now();
        inserted += store
            .insert_records(&batch, OnConflict::Fail)
            .await
            .expect("insert")
            .inserted;
        insert_time += t.elapsed();
    }
    assert_eq!(inserted, total as u64);
    let ids = if random_ids {
        "random ids"
    } else {
        "time-ordered ids"
    };
    println!(
        "{ids}: inserted {inserted} records in {insert_time:.2?}: {:.0} records/s",
        inserted as f64 / insert_time.as_secs_f64()
    );

    let q = RecordQuery {
        developer_id: AppId::parse(THROUGHPUT_APP).expect("app id"),
        begin: Timestamp::from_second(THROUGHPUT_BASE).expect("time"),
        end: Timestamp::from_second(THROUGHPUT_BASE + total as i64).expect("time"),
        account_id: None,
        agent_id: None,
    };
    let t = Instant::now();
    let streamed = store
        .stream_records(q)
        .try_fold(0u64, |n, r| async move {
            std::hint::black_box(&r);
            Ok(n + 1)
        })
        .await
        .expect("stream");
    let elapsed = t.elapsed();
    assert_eq!(streamed, total as u64);
    println!(
        "{ids}: streamed {streamed} records in {elapsed:.2?}: {:.0} records/s",
        streamed as f64 / elapsed.as_secs_f64()
    );
}

/// Import and export speed on 1,000,000 records, with time-ordered and with random ids:
/// `cargo test --release -p ccfs-server store_throughput -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run it in release mode"]
async fn store_throughput() {
    throughput(1_000_000, false).await;
    throughput(1_000_000, true).await;
}

//! The table list against both schemas, and a populated SQLite store moved into a fresh
//! PostgreSQL schema twice: everything arrives, reads back the same, and the second run inserts
//! nothing.

use std::sync::{Arc, Mutex};

use super::tables::TABLES;
use super::*;
use crate::store::conformance::{
    at_ms, collect, created, developer, finished_job, new_job, query, record, BASE,
};
use crate::store::{OnConflict, Store};

/// Tables that hold only what lives while a node runs, and are not copied.
const NOT_COPIED: &[&str] = &["download_slots"];

/// Progress that remembers what it was told.
#[derive(Default)]
struct Seen(Mutex<Vec<(String, u64, u64)>>);

impl Progress for Seen {
    fn table(&self, name: &str, rows: u64) {
        self.0
            .lock()
            .expect("lock")
            .push((name.to_owned(), rows, 0));
    }
    fn advance(&self, rows: u64) {
        if let Some(last) = self.0.lock().expect("lock").last_mut() {
            last.2 += rows;
        }
    }
}

async fn sqlite_store(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open_path(&dir.path().join("ccfs.db"))
        .await
        .expect("open SQLite")
}

#[tokio::test]
async fn the_table_list_is_the_sqlite_schema() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = sqlite_store(&dir).await;
    let mut tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite%' AND name NOT LIKE '\\_sqlx%' ESCAPE '\\'",
    )
    .fetch_all(store.reader())
    .await
    .expect("tables");
    tables.retain(|t| !NOT_COPIED.contains(&t.as_str()));
    tables.sort();
    let mut listed: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
    listed.sort();
    assert_eq!(
        tables, listed,
        "a table is missing from the transfer's list"
    );
    for table in TABLES {
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY cid")
                .bind(table.name)
                .fetch_all(store.reader())
                .await
                .expect("columns");
        let listed: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
        assert_eq!(columns, listed, "columns of {}", table.name);
    }
}

/// The `Store` of a transfer's source, filled through the store's own interface: two
/// developers, records over several pages, a finished job with its callback, a queued job with
/// an idempotency key, a cancelled job, a remembered signature.
async fn populate(store: Arc<dyn Store>) -> Vec<crate::model::NewJob> {
    store
        .insert_developer(&developer("dev1", &["acc1", "acc2"]))
        .await
        .expect("developer");
    store
        .insert_developer(&developer("dev2", &[]))
        .await
        .expect("developer");
    let records: Vec<_> = (0..(PAGE * 2 + 17))
        .map(|i| {
            let mut r = record("dev1", &format!("r{i:06}"), BASE + i, "acc1", "7");
            // Every byte COPY and arrays must carry through.
            if i == 3 {
                r.op_object = "tab\there, \"quotes\", \\ backslash, Zoë 电话\nnewline".into();
            }
            r
        })
        .collect();
    store
        .insert_records(&records, OnConflict::Fail)
        .await
        .expect("records");
    let (done, _) = finished_job(&store, 1, BASE * 1000 + 5_000, BASE * 1000 + 86_400_000).await;
    let queued = new_job(2, "dev1", BASE * 1000 + 9, Some(("key-1", "{\"a\":1}")));
    created(&store, &queued).await;
    // A cancelled job, whose state the target's schema must accept too.
    let cancelled = new_job(3, "dev2", BASE * 1000 + 11, None);
    created(&store, &cancelled).await;
    store
        .cancel_job(&cancelled.response_id, "stop", at_ms(BASE * 1000 + 12))
        .await
        .expect("cancel");
    assert!(store
        .remember_signature("sig-1", at_ms(BASE * 1000 + 900_000))
        .await
        .expect("replay"));
    vec![done, queued, cancelled]
}

mod postgres_transfer {
    use super::*;
    use crate::store::postgres::tests::postgres_conformance::fresh_schema;
    use crate::store::postgres::PgStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL: set CCFS_TEST_POSTGRES_URL and pass --include-ignored"]
    async fn postgres_transfer_copies_everything_once_and_reads_back_the_same() {
        let dir = tempfile::tempdir().expect("temp dir");
        let from = sqlite_store(&dir).await;
        let source: Arc<dyn Store> = Arc::new(from.clone());
        let jobs = populate(source.clone()).await;
        let (_schema, options) = fresh_schema().await;
        let to = PgStore::open_with(options, 4)
            .await
            .expect("open PostgreSQL");

        // The table list is also PostgreSQL's schema (but for the identity it numbers itself).
        for table in TABLES {
            let columns: Vec<String> = sqlx::query_scalar(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 \
                 AND column_name <> 'seq' ORDER BY ordinal_position",
            )
            .bind(table.name)
            .fetch_all(to.pool())
            .await
            .expect("columns");
            let listed: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
            assert_eq!(columns, listed, "PostgreSQL columns of {}", table.name);
        }

        let seen = Seen::default();
        let first = transfer(&from, &to, &seen).await.expect("first transfer");
        let want = [
            ("developers", 2),
            ("developer_accounts", 2),
            ("jobs", 3),
            ("idempotency_keys", 1),
            ("callbacks", 1),
            ("records", PAGE as u64 * 2 + 17),
            ("replay_cache", 1),
        ];
        for (count, (table, rows)) in first.iter().zip(want) {
            assert_eq!(
                count,
                &TableCount {
                    table,
                    source: rows,
                    inserted: rows,
                    verified: rows
                }
            );
        }
        let progress = seen.0.lock().expect("lock").clone();
        assert_eq!(progress.len(), TABLES.len());
        assert!(
            progress.iter().all(|(_, total, done)| total == done),
            "{progress:?}"
        );

        // Again: nothing new, everything verified.
        let second = transfer(&from, &to, &Seen::default())
            .await
            .expect("second transfer");
        for (count, (table, rows)) in second.iter().zip(want) {
            assert_eq!(
                (count.table, count.inserted, count.verified),
                (table, 0, rows)
            );
        }

        // The target reads back what the source holds.
        let target: Arc<dyn Store> = Arc::new(to);
        for app in ["dev1", "dev2"] {
            assert_eq!(
                target.developer(app).await.expect("read"),
                source.developer(app).await.expect("read")
            );
        }
        for j in &jobs {
            assert_eq!(
                target.job(&j.response_id).await.expect("read"),
                source.job(&j.response_id).await.expect("read")
            );
        }
        let q = query("dev1", BASE, BASE + 86_400, None, None);
        assert_eq!(collect(&target, q.clone()).await, collect(&source, q).await);
        // The idempotency key answers on the target: the same key and body give the same job.
        assert_eq!(
            target.create_job(&jobs[1], 100).await.expect("create"),
            source.create_job(&jobs[1], 100).await.expect("create")
        );
        let files = published_files(&from).await.expect("files");
        assert_eq!(files.len(), 1, "the finished job's file");
        assert_eq!(
            target
                .job(&files[0].key.name.response_id())
                .await
                .expect("read")
                .and_then(|j| j.published_key()),
            Some(files[0].key.clone()),
            "the file moves under the key of the attempt its job published"
        );
        assert_eq!(files[0].key.attempt, Some(1));
    }
}

//! Tests of the PostgreSQL store: the conformance suite every store passes, and what is
//! particular to a database shared by several nodes. They need a PostgreSQL server:
//! `CCFS_TEST_POSTGRES_URL` names a database where the tests may create schemas (`.ci/run` sets
//! it); they are `#[ignore]`d, so `cargo test --workspace` passes without one and lists them as
//! ignored, and run with
//! `CCFS_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1/test cargo test --workspace postgres -- --include-ignored`.
//!
//! Every test gets a fresh schema of its own (`search_path` set at connect time, so the
//! migrations and every statement land there), dropped again when the test ends.

// The module's name puts "postgres" in every test's name, which `.ci/run` selects on.
pub(crate) mod postgres_conformance {
    use std::sync::Arc;

    use sqlx::postgres::PgConnectOptions;
    use sqlx::{ConnectOptions, Connection, Executor};

    use super::super::PgStore;
    use crate::store::Store;

    const URL_VAR: &str = "CCFS_TEST_POSTGRES_URL";

    /// Drops the test's schema when the test ends, passed or not.
    pub(crate) struct Schema {
        options: PgConnectOptions,
        name: String,
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            let options = self.options.clone();
            // The test's connections go first: one may still hold a snapshot (a stream given
            // up halfway leaves its rollback queued on its idle connection), which would make
            // the DROP wait for ever. They carry the schema's name as their application name.
            let terminate = format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = '{}' AND pid <> pg_backend_pid()",
                self.name
            );
            let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
            // The test's runtime may be gone or busy: a thread of its own with a runtime of its
            // own does the one statement.
            let dropped = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let mut conn = options.connect().await?;
                    conn.execute(terminate.as_str()).await?;
                    conn.execute(sql.as_str()).await?;
                    conn.close().await
                })
            })
            .join();
            if let Ok(Err(e)) = dropped {
                eprintln!("cannot drop the test schema {}: {e}", self.name);
            }
        }
    }

    /// The test database's connect options; a test that needs PostgreSQL fails with how to
    /// give it one when the variable is unset (the tests are `#[ignore]`d, so this is only
    /// reached with `--include-ignored`).
    fn test_options() -> PgConnectOptions {
        let url = std::env::var(URL_VAR).unwrap_or_else(|_| {
            panic!(
                "{URL_VAR} is not set: the PostgreSQL tests need a database, e.g. \
                 {URL_VAR}=postgres://postgres@127.0.0.1/test"
            )
        });
        url.parse()
            .expect("CCFS_TEST_POSTGRES_URL is a PostgreSQL URL")
    }

    /// A new, empty schema, and options whose connections use it.
    pub(crate) async fn fresh_schema() -> (Schema, PgConnectOptions) {
        let options = test_options();
        let name = format!("ccfs_test_{}", hex::encode(rand::random::<[u8; 8]>()));
        let mut conn = options
            .connect()
            .await
            .expect("connect to the test database");
        conn.execute(format!("CREATE SCHEMA {name}").as_str())
            .await
            .expect("create the test schema");
        conn.close().await.expect("close");
        let in_schema = options
            .clone()
            .options([("search_path", name.as_str())])
            .application_name(&name);
        (Schema { options, name }, in_schema)
    }

    pub(super) async fn fresh_pg() -> (Schema, Arc<dyn Store>) {
        let (schema, options) = fresh_schema().await;
        let store = PgStore::open_with(options, 8).await.expect("open store");
        (schema, Arc::new(store))
    }

    crate::store::conformance::conformance_tests!(
        fresh_pg,
        #[ignore = "needs PostgreSQL: set CCFS_TEST_POSTGRES_URL and pass --include-ignored"]
    );
}

mod postgres_nodes {
    use std::collections::HashSet;
    use std::sync::Arc;

    use super::super::PgStore;
    use super::postgres_conformance::fresh_schema;
    use crate::store::conformance::{created, new_job, BASE};
    use crate::store::JobQueue;

    /// Two nodes (two stores, two pools) on one database claim every job exactly once, and a
    /// second open of a migrated database migrates nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs PostgreSQL: set CCFS_TEST_POSTGRES_URL and pass --include-ignored"]
    async fn postgres_two_nodes_claim_each_job_once() {
        let (_schema, options) = fresh_schema().await;
        let a = Arc::new(
            PgStore::open_with(options.clone(), 4)
                .await
                .expect("node a"),
        );
        let b = Arc::new(PgStore::open_with(options, 4).await.expect("node b"));
        let t0 = BASE * 1000;
        for n in 0..40u8 {
            let store: Arc<dyn crate::store::Store> = a.clone();
            created(
                &store,
                &new_job(n + 1, &format!("dev{}", n % 4), t0 + i64::from(n), None),
            )
            .await;
        }
        let now = jiff::Timestamp::from_millisecond(t0 + 1_000).expect("time");
        let until = jiff::Timestamp::from_millisecond(t0 + 60_000).expect("time");
        let mut tasks = Vec::new();
        for (i, node) in [a, b].into_iter().enumerate() {
            for w in 0..3 {
                let node = node.clone();
                tasks.push(tokio::spawn(async move {
                    let owner = format!("node{i}-w{w}");
                    let mut got = Vec::new();
                    while let Some(job) = node.claim_job(&owner, now, until).await.expect("claim") {
                        got.push(job.job.response_id.as_str().to_owned());
                    }
                    got
                }));
            }
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("task"));
        }
        assert_eq!(all.len(), 40, "every job claimed");
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), 40, "none twice");
    }
}

mod postgres_download_slots {
    use std::collections::HashSet;
    use std::sync::Arc;

    use super::super::PgStore;
    use super::postgres_conformance::fresh_schema;
    use crate::store::conformance::BASE;
    use crate::store::Downloads;

    /// Two nodes (two stores, two pools) taking one developer's download slots at once hold no
    /// more than the limit between them: the per-developer advisory lock serialises the count
    /// across connections, not only within a pool.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs PostgreSQL: set CCFS_TEST_POSTGRES_URL and pass --include-ignored"]
    async fn postgres_two_nodes_share_the_download_limit() {
        const MAX: u32 = 2;
        let (_schema, options) = fresh_schema().await;
        let a = Arc::new(
            PgStore::open_with(options.clone(), 6)
                .await
                .expect("node a"),
        );
        let b = Arc::new(PgStore::open_with(options, 6).await.expect("node b"));
        let now = jiff::Timestamp::from_millisecond(BASE * 1000).expect("time");
        let until = jiff::Timestamp::from_millisecond(BASE * 1000 + 60_000).expect("time");
        let mut tasks = Vec::new();
        for (i, node) in [a, b].into_iter().enumerate() {
            for _ in 0..20 {
                let node = node.clone();
                tasks.push(tokio::spawn(async move {
                    node.acquire_download("dev1", &format!("node{i}"), MAX, now, until)
                        .await
                }));
            }
        }
        let mut got = HashSet::new();
        for t in tasks {
            if let Some(id) = t.await.expect("task").expect("acquire") {
                assert!(got.insert(id), "one slot given twice");
            }
        }
        assert_eq!(got.len(), MAX as usize);
    }
}

mod postgres_record_stream {
    use std::sync::Arc;

    use super::super::record_stream::{record_page_sql, snapshot};
    use super::super::PgStore;
    use super::postgres_conformance::fresh_schema;
    use crate::store::conformance::{query, record, BASE};
    use crate::store::{OnConflict, Records};

    /// Right after a bulk import, before the table has statistics, an export's page is still
    /// read from the export index in order: no plan sorts the rest of the window per page.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL: set CCFS_TEST_POSTGRES_URL and pass --include-ignored"]
    async fn postgres_export_pages_read_the_index_in_order_without_statistics() {
        let (_schema, options) = fresh_schema().await;
        let store = Arc::new(PgStore::open_with(options, 2).await.expect("open"));
        let records: Vec<_> = (0..30_000)
            .map(|i| record("dev1", &format!("r{i:06}"), BASE + i / 3, "acc1", "7"))
            .collect();
        store
            .insert_records(&records, OnConflict::Fail)
            .await
            .expect("insert");
        let q = query("dev1", BASE, BASE + 86_400, None, None);
        let mut tx = snapshot(store.pool()).await.expect("snapshot");
        let plan: Vec<String> =
            sqlx::query_scalar(&format!("EXPLAIN {}", record_page_sql(&q, false)))
                .bind("dev1")
                .bind(BASE + 86_400)
                .bind(BASE + 100)
                .bind("r000300")
                .fetch_all(&mut *tx)
                .await
                .expect("explain");
        tx.rollback().await.expect("rollback");
        let plan = plan.join("\n");
        assert!(plan.contains("Index"), "{plan}");
        assert!(!plan.contains("Sort"), "a page sorts: {plan}");
    }
}

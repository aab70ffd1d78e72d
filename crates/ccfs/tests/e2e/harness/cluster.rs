//! Several `ccfs serve` nodes sharing one store: [`PgDatabase`] is a fresh PostgreSQL database
//! made from `CCFS_TEST_POSTGRES_URL` and dropped when the test ends; [`Cluster`] runs N
//! [`TestServer`]s on it with one master key and one file store (a shared local directory, or
//! a fresh prefix of the `CCFS_TEST_S3_URL` bucket when that is set), each node with its own
//! data directory and any environment of its own.
//!
//! Tests that use it need PostgreSQL: they are `#[ignore]`d and carry "postgres" in their
//! names, like the store's own PostgreSQL tests.

use std::path::Path;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};

use super::server::TestServer;

/// The PostgreSQL server the multi-node tests may create databases on.
pub const POSTGRES_URL_VAR: &str = "CCFS_TEST_POSTGRES_URL";
/// An `s3://BUCKET[/PREFIX]` the multi-node tests store their files under, when set (with the
/// usual `AWS_*` variables); otherwise the nodes share a local directory.
pub const S3_URL_VAR: &str = "CCFS_TEST_S3_URL";

/// `hex` of `n` random bytes.
fn random_hex(n: usize) -> String {
    let bytes: Vec<u8> = (0..n).map(|_| rand::random::<u8>()).collect();
    hex::encode(bytes)
}

/// Runs `f` to completion on a runtime of its own in a thread of its own: the guard is made
/// and dropped from inside a test's runtime (where blocking on another future would panic),
/// and its `Drop` may run while that runtime is shutting down.
fn on_own_runtime<T: Send + 'static>(
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    })
    .join()
    .expect("the database thread panicked")
}

/// A fresh database `ccfs_e2e_<random>` on the server of `CCFS_TEST_POSTGRES_URL`, dropped
/// (its connections terminated first) when the guard is dropped, passed or not.
pub struct PgDatabase {
    /// Connects to the database the test URL names, to create and drop ours.
    admin: PgConnectOptions,
    name: String,
    url: String,
}

impl PgDatabase {
    /// Creates the database. Panics, saying how to give one, when the variable is unset (the
    /// tests are `#[ignore]`d, so this is only reached with `--include-ignored`).
    pub fn create() -> PgDatabase {
        let test_url = std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
            panic!(
                "{POSTGRES_URL_VAR} is not set: the multi-node tests need a PostgreSQL server, \
                 e.g. {POSTGRES_URL_VAR}=postgres://postgres@127.0.0.1/test"
            )
        });
        let admin: PgConnectOptions = test_url
            .parse()
            .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is not a PostgreSQL URL: {e}"));
        let name = format!("ccfs_e2e_{}", random_hex(8));
        // Same server, user and parameters; only the database differs.
        let mut url = reqwest::Url::parse(&test_url)
            .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is not a URL: {e}"));
        url.set_path(&format!("/{name}"));
        let create = format!("CREATE DATABASE {name}");
        let opts = admin.clone();
        on_own_runtime(async move {
            let mut conn = opts.connect().await?;
            conn.execute(create.as_str()).await?;
            conn.close().await
        })
        .unwrap_or_else(|e| panic!("cannot create the test database: {e}"));
        PgDatabase {
            admin,
            name,
            url: url.to_string(),
        }
    }

    /// `postgres://…/ccfs_e2e_<random>`: what `CCFS_DATABASE_URL` is set to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The rows of `sql` on the test database, every column read as text (cast in the query:
    /// `SELECT id::text …`).
    pub fn query_text(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        use sqlx::Row;
        let opts = self.admin.clone().database(&self.name);
        let sql = sql.to_owned();
        on_own_runtime(async move {
            let mut conn = opts.connect().await?;
            let rows = sqlx::query(sql.as_str()).fetch_all(&mut conn).await?;
            conn.close().await?;
            rows.iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| r.try_get::<Option<String>, _>(i))
                        .collect()
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
        })
        .unwrap_or_else(|e| panic!("on {}: {e}", self.name))
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        // A node killed with SIGKILL leaves its connections for the server to notice; they
        // would make the DROP fail, so they go first (FORCE does the same on PostgreSQL 13+,
        // the explicit terminate keeps older servers working).
        let terminate = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{}' AND pid <> pg_backend_pid()",
            self.name
        );
        let drop = format!("DROP DATABASE IF EXISTS {}", self.name);
        let dropped = on_own_runtime(async move {
            let mut conn = admin.connect().await?;
            conn.execute(terminate.as_str()).await?;
            conn.execute(drop.as_str()).await?;
            conn.close().await
        });
        if let Err(e) = dropped {
            eprintln!("cannot drop the test database {}: {e}", self.name);
        }
    }
}

/// Where the nodes keep their finished files.
enum SharedBlobs {
    /// One local directory every node is given as its `blob_url`.
    Dir(tempfile::TempDir),
    /// `s3://BUCKET/PREFIX/<random>`: a prefix of its own in the test bucket (not emptied
    /// afterwards; the bucket's lifecycle rules are expected to clean it).
    S3(String),
}

impl SharedBlobs {
    /// As `CCFS_BLOB_URL` names it.
    fn url(&self) -> String {
        match self {
            SharedBlobs::Dir(d) => d.path().to_str().expect("UTF-8 temp path").to_owned(),
            SharedBlobs::S3(url) => url.clone(),
        }
    }
}

/// N `ccfs serve` processes on one fresh PostgreSQL database, one master key and one file
/// store. Node `i` is `cluster.nodes[i]`; each has its own data directory (certificate, work
/// files) and its own extra environment.
///
/// Dropping it SIGKILLs every node, then drops the database.
pub struct Cluster {
    /// Declared first so they are dropped (killed) before the database goes.
    pub nodes: Vec<TestServer>,
    db: PgDatabase,
    blobs: SharedBlobs,
    /// What every node gets: database, file store, master key, the caller's shared variables.
    shared: Vec<(String, String)>,
}

impl Cluster {
    /// Starts `n` nodes with the shared environment plus `shared`, and `per_node(i)` for node
    /// `i` (which may override a shared value, e.g. `CCFS_EXPORT_WORKERS=0` for an API-only
    /// node). Nodes start one after the other, so the first one migrates the database.
    pub fn start(
        n: usize,
        shared: &[(&str, &str)],
        per_node: impl Fn(usize) -> Vec<(String, String)>,
    ) -> Cluster {
        let db = PgDatabase::create();
        let blobs = match std::env::var(S3_URL_VAR) {
            Ok(base) if !base.is_empty() => SharedBlobs::S3(format!(
                "{}/ccfs-e2e-{}",
                base.trim_end_matches('/'),
                random_hex(8)
            )),
            _ => SharedBlobs::Dir(tempfile::tempdir().expect("temp dir")),
        };
        let blob_url = blobs.url();
        let mut env: Vec<(String, String)> = vec![
            ("CCFS_DATABASE_URL".into(), db.url().to_owned()),
            ("CCFS_BLOB_URL".into(), blob_url),
            ("CCFS_MASTER_KEY".into(), random_hex(32)),
        ];
        if matches!(blobs, SharedBlobs::S3(_)) {
            // The child inherits them anyway; naming them keeps a node's environment complete
            // in one place (and [`TestServer::command`] passes them to `ccfs` commands too).
            env.extend(std::env::vars().filter(|(k, _)| k.starts_with("AWS_")));
        }
        env.extend(
            shared
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let mut cluster = Cluster {
            nodes: Vec::with_capacity(n),
            db,
            blobs,
            shared: env,
        };
        for i in 0..n {
            cluster.add_node(&per_node(i));
        }
        cluster
    }

    /// Starts one more node with the shared environment plus `extra`; returns its index.
    pub fn add_node(&mut self, extra: &[(String, String)]) -> usize {
        let mut env: Vec<(&str, &str)> = self
            .shared
            .iter()
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        self.nodes.push(TestServer::start(&env));
        self.nodes.len() - 1
    }

    pub fn db(&self) -> &PgDatabase {
        &self.db
    }

    /// The shared file directory, when the files are local (not on S3).
    pub fn blob_dir(&self) -> Option<&Path> {
        match &self.blobs {
            SharedBlobs::Dir(d) => Some(d.path()),
            SharedBlobs::S3(_) => None,
        }
    }

    /// The file store every node uses, as `CCFS_BLOB_URL` says it (a directory or `s3://…`).
    pub fn blob_url(&self) -> String {
        self.blobs.url()
    }

    /// The last `n` lines of every node's output, each under its index: for panic messages.
    pub fn log_tails(&self, n: usize) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let log = node.log();
            let lines: Vec<&str> = log.lines().collect();
            out.push_str(&format!("--- node {i} ---\n"));
            out.push_str(&lines[lines.len().saturating_sub(n)..].join("\n"));
            out.push('\n');
        }
        out
    }
}

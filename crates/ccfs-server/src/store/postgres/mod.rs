//! The PostgreSQL implementation of [`Store`]: for several `ccfs serve` nodes on one shared
//! database (SPEC section 11). One file per part of the store, like the SQLite one:
//! [`developers`], [`records`] (with [`record_stream`] for exports), [`jobs`], [`outbox`],
//! [`replay`], [`downloads`]; this one holds the connection pool and what the parts share.
//! Values are converted exactly as in the SQLite store ([`crate::store::convert`]): times are
//! BIGINT unix milliseconds, record times BIGINT unix seconds, with the same precision.
//!
//! Concurrency choices, for many processes on one database:
//! - A job or a callback is claimed with `FOR UPDATE SKIP LOCKED` under a lease (a job's
//!   `lease_until`, a callback's `next_attempt_at`): two nodes never take the same row, and
//!   neither waits for the other's transaction.
//! - Accepting a job takes a transaction-scoped advisory lock on its developer first, so that
//!   the count of the developer's active jobs and its idempotency keys are checked and written
//!   by one node at a time, across the cluster. Taking a download slot does the same, on a
//!   lock of its own (see [`downloads`]).
//! - Exports page through the export index inside one `REPEATABLE READ READ ONLY` transaction,
//!   so an export sees one snapshot and holds one page in memory (see [`record_stream`]).

mod copy_in;
mod developers;
mod downloads;
mod jobs;
mod outbox;
mod record_row;
mod record_stream;
mod records;
mod replay;

#[cfg(test)]
pub(crate) mod tests;

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};

use super::convert::corrupt;
use super::{QueueDepths, Store, StoreResult};

/// The pool size when the configuration names none (`database_pool_size`).
pub const DEFAULT_POOL_SIZE: u32 = 10;

// Time limits, chosen so that a database outage makes a request fail fast and cleanly (0300500
// with a request id, within a few seconds) instead of hanging, and so that nothing waits for
// ever on a database that stopped answering:
//
// - Acquire, [`ACQUIRE_TIMEOUT`]: the longest a query waits for a pooled connection. It is also
//   the connect time limit: when no idle connection is left, sqlx opens one and, on a refused or
//   failed connect, tries again with backoff until this deadline, each try bounded by what is
//   left of it. So it is the time a request takes to fail while the database is down; without a
//   database it cannot succeed by waiting longer, and with one a wait this long for a free
//   connection means the node is overloaded, which a fast 0300500 says better than a slow one.
// - Idle connections are tested before use (sqlx's `test_before_acquire`, on by default): one
//   that died with the database (a restart, `pg_terminate_backend`, a cut network) is dropped
//   and replaced, so the pool recovers by itself when the database is back.
// - Statement, [`STATEMENT_TIMEOUT`]: PostgreSQL's `statement_timeout`, so a statement stuck on a
//   lock or a sick server gives its connection back instead of holding it (and its locks) for
//   ever. Every statement of this store is small (exports page through records); a URL that
//   sets `statement_timeout` itself (`?options=-c statement_timeout=…`) keeps its value.
//
// A network that drops packets without closing the connection (no reset) is bounded only by the
// operating system's TCP time limits for a query already sent; a new request still fails within
// the acquire time limit, and `/readyz` answers within its own.

/// How long a query waits for a pooled connection, connecting included, before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// PostgreSQL's `statement_timeout` for this store's connections.
const STATEMENT_TIMEOUT: &str = "30s";

/// The PostgreSQL store. Cheap to clone: it is a handle to its connection pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://…` or `postgresql://…`) with a pool of
    /// at most `pool_size` connections, and migrates it.
    pub async fn open(url: &str, pool_size: u32) -> StoreResult<PgStore> {
        let options: PgConnectOptions = url.parse()?;
        Self::open_with(options, pool_size).await
    }

    /// Like [`PgStore::open`], with connect options already read (tests set a `search_path`).
    pub async fn open_with(options: PgConnectOptions, pool_size: u32) -> StoreResult<PgStore> {
        let options = if options
            .get_options()
            .is_some_and(|o| o.contains("statement_timeout"))
        {
            options
        } else {
            options.options([("statement_timeout", STATEMENT_TIMEOUT)])
        };
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        // The migrator takes an advisory lock, so nodes starting together migrate once.
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool })
    }
}

impl PgStore {
    /// The pool, for a transfer into this store ([`crate::store::transfer`]).
    pub(in crate::store) fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn queue_depths(&self) -> StoreResult<QueueDepths> {
        let row = sqlx::query(super::queue_depths_sql())
            .fetch_one(&self.pool)
            .await?;
        super::queue_depths_from(&row)
    }
}

/// A transaction of the store.
type Tx = Transaction<'static, Postgres>;

/// Ends a transaction explicitly: commits it when `result` is a value that `commit` accepts,
/// rolls it back otherwise (an error, or nothing to keep). Dropping an open transaction would
/// leave its rollback queued on the idle connection until that connection is next used, with
/// its locks (a developer's advisory lock, say) held meanwhile.
async fn settle<T>(
    tx: Tx,
    result: StoreResult<T>,
    commit: impl FnOnce(&T) -> bool,
) -> StoreResult<T> {
    match result {
        Ok(value) if commit(&value) => {
            tx.commit().await?;
            Ok(value)
        }
        Ok(value) => {
            tx.rollback().await?;
            Ok(value)
        }
        Err(e) => {
            // The error says what went wrong; a failed rollback closes the connection anyway.
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// Reads a column, reporting a missing column or a value of the wrong type as corrupt data.
fn get<'r, T>(row: &'r PgRow, column: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(column)
        .map_err(|e| corrupt(format_args!("column {column}: {e}")))
}

impl crate::store::rows::StoredRow for PgRow {
    fn text(&self, column: &str) -> StoreResult<String> {
        get(self, column)
    }
    fn opt_text(&self, column: &str) -> StoreResult<Option<String>> {
        get(self, column)
    }
    fn int(&self, column: &str) -> StoreResult<i64> {
        get(self, column)
    }
    fn opt_int(&self, column: &str) -> StoreResult<Option<i64>> {
        get(self, column)
    }
    fn flag(&self, column: &str) -> StoreResult<bool> {
        get(self, column)
    }
}

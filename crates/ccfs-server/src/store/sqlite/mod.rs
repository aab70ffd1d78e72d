//! The SQLite implementation of [`Store`]: the embedded default, one database file in the data
//! directory, with one writing connection, a pool of reading ones and the records' own direct
//! connection (see [`SqliteStore`]). One file per part of the store: [`developers`], [`records`]
//! (with [`record_db`] for imports and [`record_stream`] for exports),
//! [`jobs`], [`outbox`], [`replay`], [`downloads`]; this one holds the connections, the
//! conversions they share and the one mapping of the state enums to SQL.
//!
//! Durability and concurrency choices:
//! - WAL journal with `synchronous=FULL`: a commit is on disk when the call returns, readers
//!   never block the writer, and the writer never blocks readers.
//! - Every transaction that reads and then writes starts with `BEGIN IMMEDIATE`, which takes the
//!   write lock up front (waiting up to the busy timeout for another process, such as a
//!   `ccfs import` next to the server). A deferred transaction would take a read snapshot first
//!   and could then fail with `SQLITE_BUSY` on its first write without the busy handler ever
//!   being consulted; single-statement writes in autocommit mode are safe as they are, because
//!   SQLite retries their lock through the busy handler.
//! - The records table is stored in export order (`WITHOUT ROWID`, keyed by `(developer_id,
//!   begin_time, id)`; migration 0006). Exports read it front to back in one statement on a
//!   direct connection of their own, so an export sees one snapshot and its memory stays bounded
//!   (see [`record_stream`]).
//!
//! Time precision: record times are stored as whole unix seconds (the export shows seconds);
//! a record time is truncated, and the bounds of a record query are rounded up, so that
//! `begin <= begin_time < end` still holds for the stored seconds. The begin and end of a job's
//! query round-trip at second precision. Every other time (developer, job, callback, replay
//! cache) is stored as unix milliseconds and round-trips at millisecond precision: finer parts
//! are truncated on write.

mod developers;
mod downloads;
mod jobs;
mod outbox;
mod record_db;
mod record_stream;
mod records;
mod replay;

#[cfg(test)]
mod schema_tests;
#[cfg(test)]
mod tests;

use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use super::convert::*;
use super::{QueueDepths, Store, StoreResult};
// What the tests take from here with `use super::*`.
#[cfg(test)]
use {
    super::StoreError,
    crate::model::{CallbackState, JobState, TimeZoneName},
};

/// Reading connections. Each running export holds one for as long as it streams; the HTTP
/// handlers and the loops share the rest.
const READERS: u32 = 16;

/// How long a statement waits for a lock another process holds before failing with
/// `SQLITE_BUSY`. Inside one process, writers queue for the single writing connection instead.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a write waits for the writing connection (behind other writes, such as imports).
const WRITE_QUEUE_TIMEOUT: Duration = Duration::from_secs(60);

/// Page cache of the writing connection, in KiB (SQLite's negative `cache_size`). Records are
/// written by [`record_db`], with a cache of its own; the tables written here are small.
const WRITER_CACHE_KIB: i64 = 8 * 1024;

/// Page cache of each reading connection, in KiB. Exports read the records in index order, so
/// a small cache suffices.
const READER_CACHE_KIB: i64 = 8 * 1024;

/// The SQLite store. Cheap to clone: it is a handle to its connections.
///
/// All writes but the records' go through one connection: SQLite admits one writer at a time
/// anyway, so queueing writers in the process (fairly, without the busy handler's sleeps)
/// costs nothing. Records are written (and checked) through [`record_db`]'s direct connection,
/// which meets this one on SQLite's lock like another process would. Reads go through a pool
/// of `query_only` connections.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
    records: record_db::RecordDb,
    /// Where exports open their own connection (see [`record_stream`]).
    direct: record_stream::Direct,
}

impl SqliteStore {
    /// Opens (creating the file and its directory when missing) and migrates the database at
    /// `url`: `sqlite:///abs/path.db` or `sqlite://relative/path.db`; not `sqlite::memory:`,
    /// which the records' own connection could not share. The server opens by path
    /// ([`SqliteStore::open_path`]); tests open by URL.
    #[cfg(test)]
    pub async fn open(url: &str) -> StoreResult<SqliteStore> {
        assert!(
            !url.contains(":memory:"),
            "in-memory SQLite is not supported"
        );
        Self::open_with(<SqliteConnectOptions as std::str::FromStr>::from_str(url)?).await
    }

    /// Opens (creating the file and its directory when missing) and migrates the database file
    /// at `path` (taken as it is: no URL decoding).
    pub async fn open_path(path: &std::path::Path) -> StoreResult<SqliteStore> {
        Self::open_with(SqliteConnectOptions::new().filename(path)).await
    }

    async fn open_with(options: SqliteConnectOptions) -> StoreResult<SqliteStore> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // An in-memory database has a `file:` name without a directory, so this skips it.
        if let Some(dir) = options.get_filename().parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
            }
        }
        // The writer is never closed for idleness or age: its warm cache is the point of it
        // (and an in-memory database lives only as long as one of its connections).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(WRITE_QUEUE_TIMEOUT)
            .connect_with(
                options
                    .clone()
                    .pragma("cache_size", (-WRITER_CACHE_KIB).to_string()),
            )
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let records = record_db::RecordDb::open(options.get_filename())?;
        let direct = record_stream::Direct::new(options.get_filename());
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(
                options
                    .pragma("cache_size", (-READER_CACHE_KIB).to_string())
                    .pragma("query_only", "ON"),
            )
            .await?;
        Ok(SqliteStore {
            reader,
            writer,
            records,
            direct,
        })
    }

    /// The reading connections, for a transfer of the whole store ([`crate::store::transfer`]).
    pub(in crate::store) fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    /// A write transaction that holds the write lock from its first statement.
    async fn begin_immediate(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn queue_depths(&self) -> StoreResult<QueueDepths> {
        let row = sqlx::query(super::queue_depths_sql())
            .fetch_one(&self.reader)
            .await?;
        super::queue_depths_from(&row)
    }
}

// ---- conversions particular to SQLite ----

/// Reads a column, reporting a missing column or a value of the wrong type as corrupt data.
fn get<'r, T>(row: &'r SqliteRow, column: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(column)
        .map_err(|e| corrupt(format_args!("column {column}: {e}")))
}

impl crate::store::rows::StoredRow for SqliteRow {
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

//! The SQLite implementation of [`Store`]: the embedded default, one database file in the data
//! directory, with one writing connection and a pool of reading ones (see [`SqliteStore`]).
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
//! - Exports page through the export index inside one read transaction, so an export sees one
//!   snapshot and its memory stays bounded (see [`record_page_sql`]).
//!
//! Time precision: record times are stored as whole unix seconds (the export shows seconds);
//! a record time is truncated, and the bounds of a record query are rounded up, so that
//! `begin <= begin_time < end` still holds for the stored seconds. The begin and end of a job's
//! query round-trip at second precision. Every other time (developer, job, callback, replay
//! cache) is stored as unix milliseconds and round-trips at millisecond precision: finer parts
//! are truncated on write.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use ccfs_protocol::{AppId, Record, ResponseId, ZipFileName};
use futures::stream::{self, BoxStream};
use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Arguments, Row, Sqlite, Transaction};
use tokio::sync::mpsc;

use super::{
    Attempt, Callback, CallbackState, CreateJob, Developer, InsertOutcome, Job, JobOutcome,
    JobState, NewJob, OnConflict, RecordQuery, Role, Store, StoreError, StoreResult,
};

/// Reading connections. Each running export holds one for as long as it streams; the HTTP
/// handlers and the loops share the rest.
const READERS: u32 = 16;

/// How long a statement waits for a lock another process holds before failing with
/// `SQLITE_BUSY`. Inside one process, writers queue for the single writing connection instead.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a write waits for the writing connection (behind other writes, such as imports).
const WRITE_QUEUE_TIMEOUT: Duration = Duration::from_secs(60);

/// Page cache of the writing connection, in KiB (SQLite's negative `cache_size`). When record
/// ids are random, an import touches pages all over the `(developer_id, id)` index; keeping
/// that index in memory saves a read for most of them.
const WRITER_CACHE_KIB: i64 = 64 * 1024;

/// Page cache of each reading connection, in KiB. Exports read the records in index order, so
/// a small cache suffices.
const READER_CACHE_KIB: i64 = 8 * 1024;

/// The SQL names of [`ccfs_protocol::record::TEXT_COLUMNS`], in the same order.
const RECORD_TEXT_COLUMNS: [&str; 19] = [
    "id",
    "developer_id",
    "account_id",
    "agent_id",
    "service_no",
    "skill_id",
    "call_id",
    "op_type",
    "op_object",
    "op_cause",
    "media_type",
    "vdn_id",
    "cc_id",
    "agent_type",
    "phone_no",
    "call_in_out",
    "location_id",
    "logon_sn",
    "skill_info_sn",
];

/// Bound values per record row: the 19 texts and the two times.
const RECORD_PARAMS: usize = 21;

/// Rows per multi-row INSERT. SQLite allows 32766 bound variables per statement; 1000 rows use
/// 21000 of them, and a batch of 5000 records takes five statements.
const INSERT_CHUNK: usize = 1000;

/// Records per page of the export query (see [`record_page_sql`]).
const STREAM_PAGE: usize = 1000;

/// Pages in flight between the streaming task and the consumer: with [`STREAM_PAGE`], an
/// export holds a few thousand records in memory, whatever its size.
const STREAM_CHANNEL: usize = 4;

/// An idempotency key answers with its first job for this long.
const IDEMPOTENCY_TTL: SignedDuration = SignedDuration::from_hours(24);

/// The SQLite store. Cheap to clone: it is a handle to its two connection pools.
///
/// All writes go through one connection: SQLite admits one writer at a time anyway, so queueing
/// writers in the process (fairly, without the busy handler's sleeps) costs nothing, and the
/// writer's page cache stays valid between transactions because no other connection of the
/// process changes the file. Reads go through a pool of `query_only` connections.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating the file and its directory when missing) and migrates the database at
    /// `url`: `sqlite:///abs/path.db`, `sqlite://relative/path.db` or `sqlite::memory:`.
    pub async fn open(url: &str) -> StoreResult<SqliteStore> {
        Self::open_with(SqliteConnectOptions::from_str(url)?).await
    }

    /// As [`SqliteStore::open`], for the database file at `path` (taken as it is: no URL
    /// decoding).
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
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(
                options
                    .pragma("cache_size", (-READER_CACHE_KIB).to_string())
                    .pragma("query_only", "ON"),
            )
            .await?;
        Ok(SqliteStore { reader, writer })
    }

    /// A write transaction that holds the write lock from its first statement.
    async fn begin_immediate(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

// ---- conversions ----

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// Reads a column, reporting a missing column or a value of the wrong type as corrupt data.
fn get<'r, T>(row: &'r SqliteRow, column: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(column)
        .map_err(|e| corrupt(format_args!("column {column}: {e}")))
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn from_ms(v: i64, what: &str) -> StoreResult<Timestamp> {
    Timestamp::from_millisecond(v).map_err(|e| corrupt(format_args!("{what}: {e}")))
}

fn opt_from_ms(v: Option<i64>, what: &str) -> StoreResult<Option<Timestamp>> {
    v.map(|v| from_ms(v, what)).transpose()
}

/// Whole seconds, rounded down (a record time as stored).
fn floor_second(t: Timestamp) -> i64 {
    t.as_second() - i64::from(t.subsec_nanosecond() < 0)
}

/// Whole seconds, rounded up: for integer `s`, `s >= t` exactly when `s >= ceil_second(t)`.
fn ceil_second(t: Timestamp) -> i64 {
    t.as_second() + i64::from(t.subsec_nanosecond() > 0)
}

fn from_second(v: i64, what: &str) -> StoreResult<Timestamp> {
    Timestamp::from_second(v).map_err(|e| corrupt(format_args!("{what}: {e}")))
}

fn to_u32(v: i64, what: &str) -> StoreResult<u32> {
    u32::try_from(v).map_err(|_| corrupt(format_args!("{what}: {v} out of range")))
}

fn to_u64(v: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(v).map_err(|_| corrupt(format_args!("{what}: {v} out of range")))
}

/// A count that SQLite's signed integers cannot hold is refused before it is written.
fn to_i64(v: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| {
        StoreError::Database(sqlx::Error::Encode(
            format!("{what}: {v} out of range").into(),
        ))
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

// ---- developers ----

const DEVELOPER_SELECT: &str =
    "SELECT app_id, name, secret_enc, old_secret_enc, old_secret_until, \
     timezone, roles, enabled, csv_header, created_at, \
     (SELECT json_group_array(account_id) FROM developer_accounts a WHERE a.app_id = d.app_id) \
     AS accounts FROM developers d";

fn roles_text(roles: &[Role]) -> String {
    let mut names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.join(",")
}

fn developer_from_row(row: &SqliteRow) -> StoreResult<Developer> {
    let app_id: String = get(row, "app_id")?;
    let app_id = AppId::parse(&app_id).ok_or_else(|| corrupt(format_args!("app id {app_id:?}")))?;
    let roles_text: String = get(row, "roles")?;
    let mut roles = roles_text
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            Role::parse(s).ok_or_else(|| corrupt(format_args!("developer {app_id}: role {s:?}")))
        })
        .collect::<StoreResult<Vec<Role>>>()?;
    roles.sort_unstable();
    roles.dedup();
    let accounts_json: String = get(row, "accounts")?;
    let mut accounts: Vec<String> = serde_json::from_str(&accounts_json)
        .map_err(|e| corrupt(format_args!("developer {app_id}: accounts: {e}")))?;
    accounts.sort_unstable();
    accounts.dedup();
    Ok(Developer {
        name: get(row, "name")?,
        secret_enc: get(row, "secret_enc")?,
        old_secret_enc: get(row, "old_secret_enc")?,
        old_secret_until: opt_from_ms(get(row, "old_secret_until")?, "old_secret_until")?,
        timezone: get(row, "timezone")?,
        accounts,
        roles,
        enabled: get(row, "enabled")?,
        csv_header: get(row, "csv_header")?,
        created_at: from_ms(get(row, "created_at")?, "created_at")?,
        app_id,
    })
}

async fn insert_accounts(tx: &mut Transaction<'static, Sqlite>, d: &Developer) -> StoreResult<()> {
    for account in &d.accounts {
        // OR IGNORE: a duplicate in the list means the same ownership, not a conflict.
        sqlx::query("INSERT OR IGNORE INTO developer_accounts (app_id, account_id) VALUES (?, ?)")
            .bind(d.app_id.as_str())
            .bind(account)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

// ---- records ----

fn insert_records_sql(rows: usize) -> String {
    let mut columns = RECORD_TEXT_COLUMNS.to_vec();
    columns.extend(["begin_time", "end_time"]);
    let tuple = format!("({})", vec!["?"; RECORD_PARAMS].join(","));
    let mut sql = format!(
        "INSERT OR IGNORE INTO records ({}) VALUES ",
        columns.join(",")
    );
    sql.reserve(rows * (tuple.len() + 1));
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&tuple);
    }
    sql
}

/// The statement for a full chunk, built once: it is the one prepared and cached per connection.
fn full_chunk_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| insert_records_sql(INSERT_CHUNK))
}

fn record_arguments(chunk: &[Record]) -> StoreResult<SqliteArguments<'_>> {
    let mut args = SqliteArguments::default();
    args.reserve(chunk.len() * RECORD_PARAMS, 0);
    for r in chunk {
        for text in r.texts() {
            args.add(text).map_err(sqlx::Error::Encode)?;
        }
        args.add(floor_second(r.begin_time))
            .map_err(sqlx::Error::Encode)?;
        args.add(floor_second(r.end_time))
            .map_err(sqlx::Error::Encode)?;
    }
    Ok(args)
}

/// One page of the export query, in `(begin_time, id)` order: the first page starts at the
/// window's begin, each next one after the last record of the previous page (keyset paging on
/// the export index, so a page costs the same wherever it is in the window).
///
/// A page comes back as a single value, a JSON array of `[19 texts..., begin_time, end_time]`
/// arrays. The driver hands over results row by row through a channel from its worker thread
/// and copies every column value through SQLite's allocator (which takes a process-wide lock);
/// one value per thousand records instead of 21 per record is what lets an export stream
/// several hundred thousand records a second. JSON keeps every text intact.
fn record_page_sql(q: &RecordQuery, first: bool) -> String {
    let mut filter = String::from("developer_id = ? AND begin_time < ?");
    filter.push_str(if first {
        " AND begin_time >= ?"
    } else {
        " AND (begin_time, id) > (?, ?)"
    });
    if q.account_id.is_some() {
        filter.push_str(" AND account_id = ?");
    }
    if q.agent_id.is_some() {
        filter.push_str(" AND agent_id = ?");
    }
    let columns = RECORD_TEXT_COLUMNS.join(", ");
    format!(
        "SELECT json_group_array(json_array({columns}, begin_time, end_time)) \
         FROM (SELECT {columns}, begin_time, end_time FROM records \
               WHERE {filter} ORDER BY begin_time, id LIMIT {STREAM_PAGE})"
    )
}

/// One record of a [`record_page_sql`] page: the texts in [`RECORD_TEXT_COLUMNS`] order, then
/// the times.
#[derive(serde::Deserialize)]
#[rustfmt::skip]
struct RecordRow(
    String, String, String, String, String, String, String, String, String, String,
    String, String, String, String, String, String, String, String, String,
    i64, i64,
);

impl RecordRow {
    fn key(&self) -> (i64, &str) {
        (self.19, &self.0)
    }

    #[rustfmt::skip]
    fn into_version(self) -> Version {
        let RecordRow(t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10, t11, t12, t13, t14, t15, t16, t17, t18, begin, end) = self;
        Version {
            texts: [t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10, t11, t12, t13, t14, t15, t16, t17, t18],
            begin,
            end,
        }
    }

    fn into_record(self) -> StoreResult<Record> {
        let v = self.into_version();
        Ok(Record::from_texts(
            v.texts,
            from_second(v.begin, "record begin_time")?,
            from_second(v.end, "record end_time")?,
        ))
    }
}

/// A record as stored: its texts in [`RECORD_TEXT_COLUMNS`] order and its times in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    texts: [String; 19],
    begin: i64,
    end: i64,
}

impl Version {
    fn of(r: &Record) -> Self {
        Version {
            texts: r.texts().map(str::to_owned),
            begin: floor_second(r.begin_time),
            end: floor_second(r.end_time),
        }
    }

    /// Whether `r` would be stored as this version: all 21 columns equal.
    fn stores(&self, r: &Record) -> bool {
        self.begin == floor_second(r.begin_time)
            && self.end == floor_second(r.end_time)
            && self.texts.iter().zip(r.texts()).all(|(a, b)| a == b)
    }
}

/// The current version of each `(developer_id, id)` a batch has named so far.
type Versions = HashMap<(String, String), Version>;

/// The stored versions of the records a chunk names: one value, a JSON array like a page of
/// [`record_page_sql`], for one parameter, a JSON array of `[developer_id, id]` pairs. The
/// pairs drive the join (`CROSS JOIN` keeps them the outer loop), so each costs one lookup in
/// the `(developer_id, id)` index; a pair named twice comes back twice.
fn stored_versions_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        // Qualified: json_each has an `id` column of its own.
        let columns = RECORD_TEXT_COLUMNS.map(|c| format!("r.{c}")).join(", ");
        format!(
            "SELECT json_group_array(json_array({columns}, r.begin_time, r.end_time)) \
             FROM json_each(?) AS k CROSS JOIN records AS r \
             ON r.developer_id = json_extract(k.value, '$[0]') \
             AND r.id = json_extract(k.value, '$[1]')"
        )
    })
}

/// Adds the stored versions of `chunk`'s records to `versions`, keeping the versions already
/// there: inside the batch's write transaction they equal the stored ones; for a check, which
/// writes nothing, they are the batch's own earlier records.
async fn load_versions(
    conn: &mut sqlx::SqliteConnection,
    chunk: &[Record],
    versions: &mut Versions,
) -> StoreResult<()> {
    let keys: Vec<[&str; 2]> = chunk
        .iter()
        .map(|r| [r.developer_id.as_str(), r.id.as_str()])
        .collect();
    let keys = serde_json::to_string(&keys).map_err(|e| sqlx::Error::Encode(e.into()))?;
    let json: String = sqlx::query_scalar(stored_versions_sql())
        .bind(keys)
        .fetch_one(conn)
        .await?;
    let rows: Vec<RecordRow> =
        serde_json::from_str(&json).map_err(|e| corrupt(format_args!("stored records: {e}")))?;
    for row in rows {
        let v = row.into_version();
        versions
            .entry((v.texts[1].clone(), v.texts[0].clone()))
            .or_insert(v);
    }
    Ok(())
}

/// How the records of a chunk compare with the current versions of their ids.
#[derive(Debug, Default)]
struct Sorted<'r> {
    /// Records whose id has no version yet (each becomes the version of its id).
    new: u64,
    /// Records equal to the current version.
    same: u64,
    /// Conflicting records to write, in batch order (`Replace` only).
    replace: Vec<&'r Record>,
}

/// Compares the records of `chunk` (whose first is record number `offset` of the batch) with
/// the current versions of their ids, in order, counting conflicts into `outcome`. With
/// `Replace`, a conflicting record becomes the current version.
fn sort_chunk<'r>(
    chunk: &'r [Record],
    offset: usize,
    versions: &mut Versions,
    on_conflict: OnConflict,
    outcome: &mut InsertOutcome,
) -> Sorted<'r> {
    let mut sorted = Sorted::default();
    for (i, r) in chunk.iter().enumerate() {
        match versions.get_mut(&(r.developer_id.clone(), r.id.clone())) {
            None => {
                versions.insert((r.developer_id.clone(), r.id.clone()), Version::of(r));
                sorted.new += 1;
            }
            Some(v) if v.stores(r) => sorted.same += 1,
            Some(v) => {
                outcome.conflict(offset + i, &r.id);
                if on_conflict == OnConflict::Replace {
                    *v = Version::of(r);
                    sorted.replace.push(r);
                }
            }
        }
    }
    sorted
}

/// `UPDATE records SET <every column but the key> WHERE developer_id = ? AND id = ?`, bound by
/// [`replace_record`].
fn replace_record_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        let set = RECORD_TEXT_COLUMNS[2..]
            .iter()
            .chain(&["begin_time", "end_time"])
            .map(|c| format!("{c} = ?"))
            .collect::<Vec<_>>()
            .join(", ");
        format!("UPDATE records SET {set} WHERE developer_id = ? AND id = ?")
    })
}

/// Overwrites the stored record of `r`'s `(developer_id, id)` with `r`'s content.
async fn replace_record(conn: &mut sqlx::SqliteConnection, r: &Record) -> StoreResult<()> {
    let texts = r.texts();
    debug_assert_eq!(RECORD_TEXT_COLUMNS[..2], ["id", "developer_id"]);
    let mut query = sqlx::query(replace_record_sql());
    for text in &texts[2..] {
        query = query.bind(*text);
    }
    query
        .bind(floor_second(r.begin_time))
        .bind(floor_second(r.end_time))
        .bind(texts[1])
        .bind(texts[0])
        .execute(conn)
        .await?;
    Ok(())
}

/// Reads the next page after `after` (or the first one) and decodes it, in order.
async fn record_page(
    conn: &mut sqlx::SqliteConnection,
    q: &RecordQuery,
    after: Option<&(i64, String)>,
) -> StoreResult<Vec<RecordRow>> {
    let sql = record_page_sql(q, after.is_none());
    let mut query = sqlx::query_scalar::<_, String>(&sql)
        .bind(&q.developer_id)
        .bind(ceil_second(q.end));
    query = match after {
        None => query.bind(ceil_second(q.begin)),
        Some((begin, id)) => query.bind(*begin).bind(id.as_str()),
    };
    if let Some(account) = &q.account_id {
        query = query.bind(account);
    }
    if let Some(agent) = &q.agent_id {
        query = query.bind(agent);
    }
    let json = query.fetch_one(conn).await?;
    let mut page: Vec<RecordRow> =
        serde_json::from_str(&json).map_err(|e| corrupt(format_args!("record page: {e}")))?;
    // SQLite documents the order of an aggregate's elements as arbitrary; in practice it is the
    // subquery's order, which this check confirms for the price of one comparison a record.
    if !page.windows(2).all(|w| w[0].key() <= w[1].key()) {
        page.sort_unstable_by(|a, b| a.key().cmp(&b.key()));
    }
    Ok(page)
}

/// Runs the export query page by page, inside one read transaction so that the export sees one
/// snapshot, and sends the records until the window ends, an error is sent, or the receiver is
/// gone.
async fn produce_records(
    pool: SqlitePool,
    q: RecordQuery,
    tx: mpsc::Sender<StoreResult<Vec<Record>>>,
) {
    let result = async {
        let mut snapshot = pool.begin().await?;
        let mut after: Option<(i64, String)> = None;
        loop {
            // A selective filter can scan long for a page; watching the receiver stops that
            // scan as soon as the consumer gives up.
            let page = tokio::select! {
                biased;
                _ = tx.closed() => return Ok(()),
                page = record_page(&mut snapshot, &q, after.as_ref()) => page?,
            };
            let full = page.len() == STREAM_PAGE;
            if let Some(last) = page.last() {
                after = Some((last.19, last.0.clone()));
            }
            let records = page
                .into_iter()
                .map(RecordRow::into_record)
                .collect::<StoreResult<Vec<_>>>()?;
            if !records.is_empty() && tx.send(Ok(records)).await.is_err() {
                return Ok(());
            }
            if !full {
                return Ok(());
            }
        }
    }
    .await;
    if let Err(e) = result {
        let _ = tx.send(Err(e)).await;
    }
}

/// The consumer side of [`produce_records`].
enum RecordStream {
    /// Not polled yet: the query starts on the first poll, inside the caller's runtime.
    Idle(SqlitePool, RecordQuery),
    Running(
        mpsc::Receiver<StoreResult<Vec<Record>>>,
        std::vec::IntoIter<Record>,
    ),
    Done,
}

impl RecordStream {
    async fn next(mut self) -> Option<(StoreResult<Record>, RecordStream)> {
        loop {
            match self {
                RecordStream::Idle(pool, q) => {
                    let (tx, rx) = mpsc::channel(STREAM_CHANNEL);
                    // Detached: it ends by itself when the window ends or the receiver drops.
                    tokio::spawn(produce_records(pool, q, tx));
                    self = RecordStream::Running(rx, Vec::new().into_iter());
                }
                RecordStream::Running(mut rx, mut buf) => {
                    if let Some(record) = buf.next() {
                        return Some((Ok(record), RecordStream::Running(rx, buf)));
                    }
                    match rx.recv().await {
                        Some(Ok(batch)) => self = RecordStream::Running(rx, batch.into_iter()),
                        Some(Err(e)) => return Some((Err(e), RecordStream::Done)),
                        None => return None,
                    }
                }
                RecordStream::Done => return None,
            }
        }
    }
}

// ---- jobs and callbacks ----

const JOB_SELECT: &str =
    "SELECT j.response_id, j.developer_id, j.file_name, j.query_developer_id, \
     j.query_begin, j.query_end, j.query_account_id, j.query_agent_id, j.callback_url, j.timezone, \
     j.csv_header, j.created_at, j.idempotency_key, j.idempotency_hash, j.state, j.attempts, \
     j.started_at, j.record_count, j.file_count, j.file_size, j.sha256, j.finished_at, \
     j.expires_at, j.error, \
     c.response_id AS cb_response_id, c.developer_id AS cb_developer_id, c.url AS cb_url, \
     c.body AS cb_body, c.state AS cb_state, c.attempts AS cb_attempts, \
     c.next_attempt_at AS cb_next_attempt_at, c.give_up_at AS cb_give_up_at, \
     c.last_error AS cb_last_error \
     FROM jobs j LEFT JOIN callbacks c ON c.response_id = j.response_id";

const CALLBACK_SELECT: &str =
    "SELECT response_id AS cb_response_id, developer_id AS cb_developer_id, \
     url AS cb_url, body AS cb_body, state AS cb_state, attempts AS cb_attempts, \
     next_attempt_at AS cb_next_attempt_at, give_up_at AS cb_give_up_at, \
     last_error AS cb_last_error FROM callbacks";

fn parse_response_id(s: &str) -> StoreResult<ResponseId> {
    ResponseId::parse(s).ok_or_else(|| corrupt(format_args!("response id {s:?}")))
}

fn parse_app_id(s: &str) -> StoreResult<AppId> {
    AppId::parse(s).ok_or_else(|| corrupt(format_args!("app id {s:?}")))
}

/// The `cb_*` columns of [`JOB_SELECT`] or [`CALLBACK_SELECT`]; `None` when the job has none.
fn callback_from_row(row: &SqliteRow) -> StoreResult<Option<Callback>> {
    let Some(id) = get::<Option<String>>(row, "cb_response_id")? else {
        return Ok(None);
    };
    let state: String = get(row, "cb_state")?;
    Ok(Some(Callback {
        response_id: parse_response_id(&id)?,
        developer_id: parse_app_id(&get::<String>(row, "cb_developer_id")?)?,
        url: get(row, "cb_url")?,
        body: get(row, "cb_body")?,
        state: CallbackState::parse(&state)
            .ok_or_else(|| corrupt(format_args!("callback {id}: state {state:?}")))?,
        attempts: to_u32(get(row, "cb_attempts")?, "callback attempts")?,
        next_attempt_at: from_ms(get(row, "cb_next_attempt_at")?, "next_attempt_at")?,
        give_up_at: from_ms(get(row, "cb_give_up_at")?, "give_up_at")?,
        last_error: get(row, "cb_last_error")?,
    }))
}

fn job_from_row(row: &SqliteRow) -> StoreResult<Job> {
    let id: String = get(row, "response_id")?;
    let response_id = parse_response_id(&id)?;
    let file_name: String = get(row, "file_name")?;
    let file_name = ZipFileName::parse(&file_name)
        .ok_or_else(|| corrupt(format_args!("job {id}: file name {file_name:?}")))?;
    let idempotency = match (
        get::<Option<String>>(row, "idempotency_key")?,
        get::<Option<String>>(row, "idempotency_hash")?,
    ) {
        (Some(key), Some(hash)) => Some((key, hash)),
        (None, None) => None,
        _ => {
            return Err(corrupt(format_args!(
                "job {id}: idempotency key without hash"
            )))
        }
    };
    let state: String = get(row, "state")?;
    let state = JobState::parse(&state)
        .ok_or_else(|| corrupt(format_args!("job {id}: state {state:?}")))?;
    let outcome = match get::<Option<i64>>(row, "record_count")? {
        None => None,
        Some(record_count) => {
            let missing = |c: &str| corrupt(format_args!("job {id}: {c} missing from the outcome"));
            let need = |c: &str| get::<Option<i64>>(row, c)?.ok_or_else(|| missing(c));
            Some(JobOutcome {
                record_count: to_u64(record_count, "record_count")?,
                file_count: to_u32(need("file_count")?, "file_count")?,
                file_size: to_u64(need("file_size")?, "file_size")?,
                sha256: get::<Option<String>>(row, "sha256")?.ok_or_else(|| missing("sha256"))?,
                finished_at: from_ms(need("finished_at")?, "finished_at")?,
                expires_at: from_ms(need("expires_at")?, "expires_at")?,
            })
        }
    };
    Ok(Job {
        job: NewJob {
            response_id,
            developer_id: parse_app_id(&get::<String>(row, "developer_id")?)?,
            file_name,
            query: RecordQuery {
                developer_id: get(row, "query_developer_id")?,
                begin: from_second(get(row, "query_begin")?, "query_begin")?,
                end: from_second(get(row, "query_end")?, "query_end")?,
                account_id: get(row, "query_account_id")?,
                agent_id: get(row, "query_agent_id")?,
            },
            callback_url: get(row, "callback_url")?,
            timezone: get(row, "timezone")?,
            csv_header: get(row, "csv_header")?,
            created_at: from_ms(get(row, "created_at")?, "created_at")?,
            idempotency,
        },
        state,
        attempts: to_u32(get(row, "attempts")?, "attempts")?,
        started_at: opt_from_ms(get(row, "started_at")?, "started_at")?,
        outcome,
        error: get(row, "error")?,
        callback: callback_from_row(row)?,
    })
}

async fn job_in<'c, E>(executor: E, id: &str) -> StoreResult<Option<Job>>
where
    E: sqlx::Executor<'c, Database = Sqlite>,
{
    let sql = format!("{JOB_SELECT} WHERE j.response_id = ?");
    let row = sqlx::query(&sql).bind(id).fetch_optional(executor).await?;
    row.as_ref().map(job_from_row).transpose()
}

/// The developer columns written by insert and update, in the order [`bind_developer`] binds
/// them; `app_id` follows as the last parameter of both statements.
const DEVELOPER_FIELDS: &str = "name, secret_enc, old_secret_enc, old_secret_until, timezone, \
     roles, enabled, csv_header, created_at";

/// Binds [`DEVELOPER_FIELDS`], then `app_id`.
fn bind_developer<'q>(
    query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    d: &'q Developer,
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    query
        .bind(&d.name)
        .bind(&d.secret_enc)
        .bind(&d.old_secret_enc)
        .bind(d.old_secret_until.map(ms))
        .bind(&d.timezone)
        .bind(roles_text(&d.roles))
        .bind(d.enabled)
        .bind(d.csv_header)
        .bind(ms(d.created_at))
        .bind(d.app_id.as_str())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn insert_developer(&self, d: &Developer) -> StoreResult<()> {
        let mut tx = self.begin_immediate().await?;
        let sql = format!(
            "INSERT INTO developers ({DEVELOPER_FIELDS}, app_id) VALUES ({})",
            ["?"; 10].join(", ")
        );
        let inserted = bind_developer(sqlx::query(&sql), d).execute(&mut *tx).await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!("developer {}", d.app_id)))
            }
            Err(e) => return Err(e.into()),
        }
        insert_accounts(&mut tx, d).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn developer(&self, app_id: &str) -> StoreResult<Option<Developer>> {
        let sql = format!("{DEVELOPER_SELECT} WHERE app_id = ?");
        let row = sqlx::query(&sql)
            .bind(app_id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(developer_from_row).transpose()
    }

    async fn developers(&self) -> StoreResult<Vec<Developer>> {
        let sql = format!("{DEVELOPER_SELECT} ORDER BY app_id");
        let rows = sqlx::query(&sql).fetch_all(&self.reader).await?;
        rows.iter().map(developer_from_row).collect()
    }

    async fn update_developer(&self, d: &Developer) -> StoreResult<()> {
        let mut tx = self.begin_immediate().await?;
        let set = DEVELOPER_FIELDS
            .split(", ")
            .map(|c| format!("{c} = ?"))
            .collect::<Vec<_>>();
        let sql = format!("UPDATE developers SET {} WHERE app_id = ?", set.join(", "));
        let updated = bind_developer(sqlx::query(&sql), d)
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("developer {}", d.app_id)));
        }
        sqlx::query("DELETE FROM developer_accounts WHERE app_id = ?")
            .bind(d.app_id.as_str())
            .execute(&mut *tx)
            .await?;
        insert_accounts(&mut tx, d).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_records(
        &self,
        records: &[Record],
        on_conflict: OnConflict,
    ) -> StoreResult<InsertOutcome> {
        let mut outcome = InsertOutcome::default();
        if records.is_empty() {
            return Ok(outcome);
        }
        let mut tx = self.begin_immediate().await?;
        // Only the ids of chunks where INSERT OR IGNORE left a record out are looked up: the
        // common case, all new, costs no read.
        let mut versions = Versions::new();
        for (n, chunk) in records.chunks(INSERT_CHUNK).enumerate() {
            let args = record_arguments(chunk)?;
            let done = if chunk.len() == INSERT_CHUNK {
                sqlx::query_with(full_chunk_sql(), args)
                    .execute(&mut *tx)
                    .await?
            } else {
                // Tails come in every size: preparing them once and not caching them keeps
                // the per-connection statement cache for the statements that repeat.
                let sql = insert_records_sql(chunk.len());
                sqlx::query_with(&sql, args)
                    .persistent(false)
                    .execute(&mut *tx)
                    .await?
            };
            let inserted = done.rows_affected();
            outcome.inserted += inserted;
            if inserted == chunk.len() as u64 {
                continue;
            }
            // Every record's id is stored now: each inserted one is the first of its id in the
            // chunk and equal to its stored version, so it is counted as `same` here.
            load_versions(&mut tx, chunk, &mut versions).await?;
            let sorted = sort_chunk(
                chunk,
                n * INSERT_CHUNK,
                &mut versions,
                on_conflict,
                &mut outcome,
            );
            debug_assert_eq!(sorted.new, 0);
            outcome.already_present += sorted.same.saturating_sub(inserted);
            for r in sorted.replace {
                replace_record(&mut tx, r).await?;
                outcome.replaced += 1;
            }
        }
        if outcome.failed(on_conflict) {
            tx.rollback().await?;
            return Ok(InsertOutcome {
                conflicts: outcome.conflicts,
                first_conflicts: outcome.first_conflicts,
                ..InsertOutcome::default()
            });
        }
        tx.commit().await?;
        Ok(outcome)
    }

    async fn check_records(
        &self,
        records: &[Record],
        on_conflict: OnConflict,
    ) -> StoreResult<InsertOutcome> {
        let mut outcome = InsertOutcome::default();
        let mut versions = Versions::new();
        let mut conn = self.reader.acquire().await?;
        for (n, chunk) in records.chunks(INSERT_CHUNK).enumerate() {
            load_versions(&mut conn, chunk, &mut versions).await?;
            let sorted = sort_chunk(
                chunk,
                n * INSERT_CHUNK,
                &mut versions,
                on_conflict,
                &mut outcome,
            );
            outcome.inserted += sorted.new;
            outcome.already_present += sorted.same;
            outcome.replaced += sorted.replace.len() as u64;
        }
        if outcome.failed(on_conflict) {
            return Ok(InsertOutcome {
                conflicts: outcome.conflicts,
                first_conflicts: outcome.first_conflicts,
                ..InsertOutcome::default()
            });
        }
        Ok(outcome)
    }

    fn stream_records(&self, query: RecordQuery) -> BoxStream<'static, StoreResult<Record>> {
        stream::unfold(
            RecordStream::Idle(self.reader.clone(), query),
            RecordStream::next,
        )
        .boxed()
    }

    async fn create_job(&self, job: &NewJob, max_active: u32) -> StoreResult<CreateJob> {
        let developer = job.developer_id.as_str();
        let mut tx = self.begin_immediate().await?;
        if let Some((key, hash)) = &job.idempotency {
            let since = ms(job
                .created_at
                .checked_sub(IDEMPOTENCY_TTL)
                .unwrap_or(Timestamp::MIN));
            let existing: Option<String> = sqlx::query_scalar(
                "SELECT response_id FROM idempotency_keys \
                 WHERE developer_id = ? AND key = ? AND request_hash = ? AND created_at > ?",
            )
            .bind(developer)
            .bind(key)
            .bind(hash)
            .bind(since)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(id) = existing {
                return Ok(CreateJob::Existing(parse_response_id(&id)?));
            }
        }
        let active: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE developer_id = ? AND state IN ('queued', 'running')",
        )
        .bind(developer)
        .fetch_one(&mut *tx)
        .await?;
        if active >= i64::from(max_active) {
            return Ok(CreateJob::TooMany);
        }
        let (key, hash) = match &job.idempotency {
            Some((key, hash)) => (Some(key.as_str()), Some(hash.as_str())),
            None => (None, None),
        };
        let inserted = sqlx::query(
            "INSERT INTO jobs (response_id, developer_id, file_name, query_developer_id, query_begin, \
             query_end, query_account_id, query_agent_id, callback_url, timezone, csv_header, \
             created_at, idempotency_key, idempotency_hash, state) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued')",
        )
        .bind(job.response_id.as_str())
        .bind(developer)
        .bind(job.file_name.as_str())
        .bind(&job.query.developer_id)
        .bind(floor_second(job.query.begin))
        .bind(floor_second(job.query.end))
        .bind(&job.query.account_id)
        .bind(&job.query.agent_id)
        .bind(&job.callback_url)
        .bind(&job.timezone)
        .bind(job.csv_header)
        .bind(ms(job.created_at))
        .bind(key)
        .bind(hash)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!("job {}", job.response_id)))
            }
            Err(e) => return Err(e.into()),
        }
        if let (Some(key), Some(hash)) = (key, hash) {
            // Replaces a key that expired or came with another body: the newest job answers.
            sqlx::query(
                "INSERT OR REPLACE INTO idempotency_keys (developer_id, key, request_hash, response_id, created_at) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(developer)
            .bind(key)
            .bind(hash)
            .bind(job.response_id.as_str())
            .bind(ms(job.created_at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(CreateJob::Created)
    }

    async fn job(&self, id: &ResponseId) -> StoreResult<Option<Job>> {
        job_in(&self.reader, id.as_str()).await
    }

    async fn claim_job(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<Job>> {
        let mut tx = self.begin_immediate().await?;
        // A running job without a lease could never be taken over, so it counts as expired.
        let claimed: Option<String> = sqlx::query_scalar(
            "UPDATE jobs SET state = 'running', lease_owner = ?1, lease_until = ?2, \
             attempts = attempts + 1, started_at = COALESCE(started_at, ?3) \
             WHERE response_id = (SELECT response_id FROM jobs \
                 WHERE state IN ('queued', 'running') \
                   AND (state = 'queued' OR lease_until IS NULL OR lease_until < ?3) \
                 ORDER BY created_at, rowid LIMIT 1) \
             RETURNING response_id",
        )
        .bind(owner)
        .bind(ms(lease_until))
        .bind(ms(now))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = claimed else {
            return Ok(None);
        };
        let job = job_in(&mut *tx, &id).await?;
        tx.commit().await?;
        Ok(job)
    }

    async fn renew_lease(
        &self,
        id: &ResponseId,
        owner: &str,
        lease_until: Timestamp,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = ? WHERE response_id = ? AND lease_owner = ? AND state = 'running'",
        )
        .bind(ms(lease_until))
        .bind(id.as_str())
        .bind(owner)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn finish_job(
        &self,
        id: &ResponseId,
        owner: &str,
        outcome: &JobOutcome,
        callback: &Callback,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_immediate().await?;
        // lease_owner stays, to tell which node built the file.
        let done = sqlx::query(
            "UPDATE jobs SET state = 'succeeded', lease_until = NULL, record_count = ?, file_count = ?, \
             file_size = ?, sha256 = ?, finished_at = ?, expires_at = ?, error = NULL \
             WHERE response_id = ? AND lease_owner = ? AND state = 'running'",
        )
        .bind(to_i64(outcome.record_count, "record_count")?)
        .bind(i64::from(outcome.file_count))
        .bind(to_i64(outcome.file_size, "file_size")?)
        .bind(&outcome.sha256)
        .bind(ms(outcome.finished_at))
        .bind(ms(outcome.expires_at))
        .bind(id.as_str())
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO callbacks (response_id, developer_id, url, body, state, attempts, \
             next_attempt_at, give_up_at, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.as_str())
        .bind(callback.developer_id.as_str())
        .bind(&callback.url)
        .bind(&callback.body)
        .bind(callback.state.as_str())
        .bind(i64::from(callback.attempts))
        .bind(ms(callback.next_attempt_at))
        .bind(ms(callback.give_up_at))
        .bind(&callback.last_error)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn fail_job(
        &self,
        id: &ResponseId,
        owner: &str,
        error: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE jobs SET state = 'failed', lease_until = NULL, error = ?, finished_at = ? \
             WHERE response_id = ? AND lease_owner = ? AND state = 'running'",
        )
        .bind(error)
        .bind(ms(now))
        .bind(id.as_str())
        .bind(owner)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn release_job(&self, id: &ResponseId, owner: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL \
             WHERE response_id = ? AND lease_owner = ? AND state = 'running'",
        )
        .bind(id.as_str())
        .bind(owner)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn expired_jobs(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<Job>> {
        let sql = format!(
            "{JOB_SELECT} WHERE j.state = 'succeeded' AND j.expires_at <= ? \
             ORDER BY j.expires_at, j.response_id LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(ms(now))
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn mark_expired(&self, id: &ResponseId) -> StoreResult<()> {
        sqlx::query(
            "UPDATE jobs SET state = 'expired' WHERE response_id = ? AND state = 'succeeded'",
        )
        .bind(id.as_str())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn claim_callbacks(
        &self,
        now: Timestamp,
        claim_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Callback>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_immediate().await?;
        let sql = format!(
            "{CALLBACK_SELECT} WHERE state = 'pending' AND next_attempt_at <= ? \
             ORDER BY next_attempt_at, response_id LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(ms(now))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        let mut claimed = rows
            .iter()
            .map(callback_from_row)
            .collect::<StoreResult<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect::<Vec<_>>();
        for cb in &mut claimed {
            sqlx::query("UPDATE callbacks SET next_attempt_at = ? WHERE response_id = ?")
                .bind(ms(claim_until))
                .bind(cb.response_id.as_str())
                .execute(&mut *tx)
                .await?;
            // Returned as stored after the claim, like the job of `claim_job`.
            cb.next_attempt_at = from_ms(ms(claim_until), "claim_until")?;
        }
        tx.commit().await?;
        Ok(claimed)
    }

    async fn record_attempt(&self, id: &ResponseId, attempt: &Attempt) -> StoreResult<()> {
        // Only a pending callback changes: a late report never reopens a settled one.
        let query = match attempt {
            Attempt::Delivered => sqlx::query(
                "UPDATE callbacks SET state = 'delivered', attempts = attempts + 1, last_error = NULL \
                 WHERE response_id = ? AND state = 'pending'",
            )
            .bind(id.as_str()),
            Attempt::Retry { next_attempt_at, error } => sqlx::query(
                "UPDATE callbacks SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? \
                 WHERE response_id = ? AND state = 'pending'",
            )
            .bind(ms(*next_attempt_at))
            .bind(error.as_str())
            .bind(id.as_str()),
            Attempt::GaveUp { error } => sqlx::query(
                "UPDATE callbacks SET state = 'failed', attempts = attempts + 1, last_error = ? \
                 WHERE response_id = ? AND state = 'pending'",
            )
            .bind(error.as_str())
            .bind(id.as_str()),
        };
        let done = query.execute(&self.writer).await?;
        if done.rows_affected() == 0 {
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM callbacks WHERE response_id = ?")
                    .bind(id.as_str())
                    .fetch_optional(&self.reader)
                    .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!("callback {id}")));
            }
        }
        Ok(())
    }

    async fn supersede_callback(&self, id: &ResponseId) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE callbacks SET state = 'superseded' WHERE response_id = ? AND state = 'pending'",
        )
        .bind(id.as_str())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn next_callback_at(&self) -> StoreResult<Option<Timestamp>> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM callbacks WHERE state = 'pending'",
        )
        .fetch_one(&self.reader)
        .await?;
        opt_from_ms(next, "next_attempt_at")
    }

    async fn remember_signature(
        &self,
        signature: &str,
        expires_at: Timestamp,
    ) -> StoreResult<bool> {
        // The trait passes no clock, so "expired" is judged by this machine's clock. An expired
        // entry is overwritten in the same statement; an unexpired one makes it change nothing.
        let done = sqlx::query(
            "INSERT INTO replay_cache (signature, expires_at) VALUES (?, ?) \
             ON CONFLICT (signature) DO UPDATE SET expires_at = excluded.expires_at \
             WHERE replay_cache.expires_at <= ?",
        )
        .bind(signature)
        .bind(ms(expires_at))
        .bind(ms(Timestamp::now()))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn purge(&self, now: Timestamp) -> StoreResult<()> {
        let mut tx = self.begin_immediate().await?;
        sqlx::query("DELETE FROM replay_cache WHERE expires_at <= ?")
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at <= ?")
            .bind(ms(now
                .checked_sub(IDEMPOTENCY_TTL)
                .unwrap_or(Timestamp::MIN)))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use futures::TryStreamExt;

    use super::super::conformance;
    use super::*;

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
                    let id = ResponseId::from_bytes([i; 16]);
                    let job = NewJob {
                        file_name: ZipFileName::new(jiff::civil::date(2024, 5, 1), &id),
                        response_id: id,
                        developer_id: AppId::parse("dev").expect("app id"),
                        query: RecordQuery {
                            developer_id: "dev".into(),
                            begin: at(base),
                            end: at(base + 1000),
                            account_id: None,
                            agent_id: None,
                        },
                        callback_url: "https://example.com/cb".into(),
                        timezone: "UTC".into(),
                        csv_header: false,
                        created_at: at(base + i64::from(i)),
                        idempotency: None,
                    };
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

    /// `sqlite::memory:` works too (both pools share the one in-memory database).
    #[tokio::test]
    async fn store_in_memory() {
        let store = SqliteStore::open("sqlite::memory:").await.expect("open");
        conformance::jobs_lifecycle(Arc::new(store)).await;
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

    #[tokio::test]
    async fn store_open_creates_and_reopens() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/a/b/ccfs.db", dir.path().display());
        let store = SqliteStore::open(&url).await.expect("open");
        let rec = Record::from_texts(
            Default::default(),
            Timestamp::UNIX_EPOCH,
            Timestamp::UNIX_EPOCH,
        );
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
            developer_id: String::new(),
            begin: Timestamp::UNIX_EPOCH,
            end: Timestamp::from_second(1).expect("time"),
            account_id: None,
            agent_id: None,
        };
        let got: Vec<Record> = store.stream_records(q).try_collect().await.expect("stream");
        assert_eq!(got.len(), 1, "the data survived the reopen");
    }

    /// The stored versions of a chunk cost one lookup in the `(developer_id, id)` index per
    /// record: the pairs are the outer loop, the records table is never scanned.
    #[tokio::test]
    async fn store_version_lookup_uses_the_unique_index() {
        let (_dir, store) = fresh().await;
        let sql = format!("EXPLAIN QUERY PLAN {}", stored_versions_sql());
        let plan: Vec<String> = sqlx::query(&sql)
            .bind(r#"[["d","x"]]"#)
            .fetch_all(&store.reader)
            .await
            .expect("explain")
            .iter()
            .map(|r| r.try_get::<String, _>("detail").expect("detail"))
            .collect();
        assert_eq!(plan.len(), 2, "{plan:?}");
        assert!(plan[0].starts_with("SCAN k"), "{plan:?}");
        assert!(
            plan[1].starts_with(
                "SEARCH r USING INDEX sqlite_autoindex_records_1 (developer_id=? AND id=?)"
            ),
            "{plan:?}"
        );
    }

    /// The export query walks the export index in order: no sort, whatever the filters.
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
                developer_id: "d".into(),
                begin: Timestamp::UNIX_EPOCH,
                end: Timestamp::UNIX_EPOCH,
                account_id: account.map(Into::into),
                agent_id: agent.map(Into::into),
            };
            for first in [true, false] {
                let sql = format!("EXPLAIN QUERY PLAN {}", record_page_sql(&q, first));
                let mut explain = sqlx::query(&sql).bind("d").bind(1);
                explain = if first {
                    explain.bind(0)
                } else {
                    explain.bind(0).bind("x")
                };
                if let Some(a) = account {
                    explain = explain.bind(a);
                }
                if let Some(a) = agent {
                    explain = explain.bind(a);
                }
                let plan: Vec<String> = explain
                    .fetch_all(&store.reader)
                    .await
                    .expect("explain")
                    .iter()
                    .map(|r| r.try_get::<String, _>("detail").expect("detail"))
                    .collect();
                let plan = plan.join("\n");
                let range = if first {
                    "begin_time>? AND begin_time<?"
                } else {
                    "(begin_time,id)>(?,?) AND begin_time<?"
                };
                assert!(
                    plan.contains(&format!(
                        "USING INDEX records_export (developer_id=? AND {range})"
                    )),
                    "{plan}"
                );
                assert!(!plan.contains("TEMP B-TREE"), "{plan}");
            }
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
            "INSERT INTO jobs (response_id, developer_id, file_name, query_developer_id, query_begin, \
             query_end, callback_url, timezone, csv_header, created_at, state) \
             VALUES (?, 'dev1', 'not-a-zip-name', 'dev1', 0, 1, 'u', 'UTC', 0, 0, 'queued')",
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
            developer_id: "dev1".into(),
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
            developer_id: THROUGHPUT_APP.into(),
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
}

//! The records' own connection to the SQLite file: a direct, synchronous one (rusqlite) that
//! stores a batch with one cached single-row `INSERT OR IGNORE` per record inside one
//! transaction, SQLite's own fast path, and answers [`check`](RecordDb::check) with one
//! indexed lookup per record.
//!
//! Why not sqlx's writer: its SQLite driver sends every statement to a worker thread over a
//! channel and copies the arguments on the way, which cost more than SQLite's work for a row
//! (a multi-row statement only halves it, and then it cannot tell which rows were ignored).
//! Here the whole batch is one call on a blocking thread, and each row's `changes()` says
//! whether it was new, so only ignored rows are read back and compared.
//!
//! Two writers in one process: this connection writes only `records`, sqlx's writer writes
//! every other table. Both begin their write transactions with `BEGIN IMMEDIATE` and wait for
//! each other through SQLite's busy handler ([`BUSY_TIMEOUT`](super::BUSY_TIMEOUT)), exactly as
//! they wait for another process on the same file (`ccfs import` next to a server). A batch
//! holds the lock for its own duration only.
//!
//! Durability: the database is in WAL mode with `synchronous=FULL` on this connection too, so
//! a batch is on disk when its `COMMIT` returns; a batch that fails rolls back whole.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ccfs_protocol::Record;
use rusqlite::{Connection, OpenFlags, Row, TransactionBehavior};

use super::{floor_second, BUSY_TIMEOUT};
use crate::store::convert::RECORD_TEXT_COLUMNS;
use crate::store::{InsertOutcome, OnConflict, StoreResult};

/// Page cache of the records connection, in KiB (SQLite's negative `cache_size`). Inserts
/// touch the end of the table and one leaf page per index per record; the indexes' inner pages
/// and the recently touched leaves fit, and `ccfs import` stays within its memory budget.
const CACHE_KIB: i64 = 16 * 1024;

/// WAL pages after which a commit of this connection copies the WAL back into the database
/// (SQLite's `wal_autocheckpoint`, 1000 by default). Every checkpoint writes each page changed
/// since the last one and syncs the file: with batches of thousands of records, the default
/// checkpoints after nearly every batch, and an index page changed by ten batches is written
/// ten times. At 10,000 pages (40 MB of WAL) it is written about once.
const WAL_AUTOCHECKPOINT: u32 = 10_000;

/// The records connection. Cheap to clone.
///
/// One connection behind a mutex: SQLite admits one writer at a time, so a second one would
/// only wait on the file lock; the mutex queues this process's batches instead. It is a
/// blocking (std) mutex because it is only taken on a blocking thread
/// (`tokio::task::spawn_blocking`), never across an `.await`.
#[derive(Debug, Clone)]
pub(super) struct RecordDb {
    conn: Arc<Mutex<Connection>>,
}

impl RecordDb {
    /// Opens the (already created and migrated) database file at `path`.
    pub(super) fn open(path: &Path) -> StoreResult<RecordDb> {
        // No SQLITE_OPEN_URI: the path is taken as it is, like sqlx takes it.
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // journal_mode=WAL is a property of the file, set when sqlx's writer opened it; the
        // rest are per connection.
        conn.execute_batch(&format!(
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -{CACHE_KIB}; \
             PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT};"
        ))?;
        Ok(RecordDb {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Stores `batch` in one transaction (see `Records::insert_records`).
    pub(super) async fn insert(
        &self,
        batch: Batch,
        on_conflict: OnConflict,
    ) -> StoreResult<InsertOutcome> {
        self.run(move |conn| insert(conn, &batch, on_conflict))
            .await
    }

    /// What [`RecordDb::insert`] would answer now, writing nothing.
    pub(super) async fn check(
        &self,
        batch: Batch,
        on_conflict: OnConflict,
    ) -> StoreResult<InsertOutcome> {
        self.run(move |conn| check(conn, &batch, on_conflict)).await
    }

    /// Runs `f` on the connection on a blocking thread. The work is not cancelled when the
    /// caller stops waiting: a batch runs to its commit or rollback either way.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let conn = self.conn.clone();
        let task = tokio::task::spawn_blocking(move || {
            // A panic inside `f` leaves nothing half done that matters: an open transaction
            // is rolled back here before the connection is used again.
            let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if !conn.is_autocommit() {
                conn.execute_batch("ROLLBACK")?;
            }
            f(&mut conn)
        });
        match task.await {
            Ok(result) => Ok(result?),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// The bound values of a batch of records, copied into one buffer so that the blocking thread
/// can own them (the caller lends its records only for the duration of the call): one
/// allocation per batch instead of one per text.
pub(super) struct Batch {
    text: String,
    /// Where each text column ends in `text`: [`TEXTS`] per record.
    ends: Vec<usize>,
    /// `begin_time` and `end_time` of each record, in whole seconds.
    times: Vec<[i64; 2]>,
}

/// Text columns per record.
const TEXTS: usize = RECORD_TEXT_COLUMNS.len();

impl Batch {
    pub(super) fn of(records: &[Record]) -> Batch {
        let size: usize = records
            .iter()
            .map(|r| r.texts().iter().map(|t| t.len()).sum::<usize>())
            .sum();
        let mut batch = Batch {
            text: String::with_capacity(size),
            ends: Vec::with_capacity(records.len() * TEXTS),
            times: Vec::with_capacity(records.len()),
        };
        for r in records {
            for t in r.texts() {
                batch.text.push_str(t);
                batch.ends.push(batch.text.len());
            }
            batch
                .times
                .push([floor_second(r.begin_time), floor_second(r.end_time)]);
        }
        batch
    }

    fn len(&self) -> usize {
        self.times.len()
    }

    /// The text columns of record `i`, in [`RECORD_TEXT_COLUMNS`] order.
    fn texts(&self, i: usize) -> [&str; TEXTS] {
        let ends = &self.ends[i * TEXTS..(i + 1) * TEXTS];
        let mut start = if i == 0 { 0 } else { self.ends[i * TEXTS - 1] };
        std::array::from_fn(|c| {
            let t = &self.text[start..ends[c]];
            start = ends[c];
            t
        })
    }

    /// `(developer_id, id)` of record `i`.
    fn key(&self, i: usize) -> (&str, &str) {
        let t = self.texts(i);
        (t[1], t[0])
    }

    /// Whether records `i` and `j` would be stored alike.
    fn same(&self, i: usize, j: usize) -> bool {
        self.times[i] == self.times[j] && self.texts(i) == self.texts(j)
    }
}

/// `INSERT OR IGNORE INTO records (<texts>, begin_time, end_time) VALUES (?1, …, ?21)`.
fn insert_sql() -> String {
    let n = TEXTS + 2;
    format!(
        "INSERT OR IGNORE INTO records ({}, begin_time, end_time) VALUES ({})",
        RECORD_TEXT_COLUMNS.join(", "),
        (1..=n)
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The stored version of one `(developer_id, id)`: the texts then the times.
pub(super) fn stored_sql() -> String {
    format!(
        "SELECT {}, begin_time, end_time FROM records WHERE developer_id = ?1 AND id = ?2",
        RECORD_TEXT_COLUMNS.join(", ")
    )
}

/// `UPDATE records SET <every column but the key> WHERE developer_id = ?20 AND id = ?21`,
/// bound like [`insert_sql`] without the first two texts.
fn replace_sql() -> String {
    let set = RECORD_TEXT_COLUMNS[2..]
        .iter()
        .chain(&["begin_time", "end_time"])
        .enumerate()
        .map(|(i, c)| format!("{c} = ?{}", i + 1))
        .collect::<Vec<_>>()
        .join(", ");
    // 17 texts and the 2 times come before the key.
    format!(
        "UPDATE records SET {set} WHERE developer_id = ?{} AND id = ?{}",
        TEXTS + 1,
        TEXTS + 2
    )
}

/// Whether the stored `row` (as [`stored_sql`] reads it) equals record `i` of `batch`.
fn row_equals(row: &Row<'_>, batch: &Batch, i: usize) -> rusqlite::Result<bool> {
    for (c, text) in batch.texts(i).iter().enumerate() {
        if row.get_ref(c)?.as_str()? != *text {
            return Ok(false);
        }
    }
    let [begin, end] = batch.times[i];
    Ok(row.get::<_, i64>(TEXTS)? == begin && row.get::<_, i64>(TEXTS + 1)? == end)
}

/// Whether the stored version of record `i`'s id equals it; `None` when its id is not stored.
/// `stmt` is [`stored_sql`], prepared.
fn compare_stored(
    stmt: &mut rusqlite::Statement<'_>,
    batch: &Batch,
    i: usize,
) -> rusqlite::Result<Option<bool>> {
    let (developer, id) = batch.key(i);
    let mut rows = stmt.query([developer, id])?;
    rows.next()?
        .map(|row| row_equals(row, batch, i))
        .transpose()
}

/// The outcome of a failed (`Fail`) batch: the conflicts only.
fn only_conflicts(outcome: InsertOutcome) -> InsertOutcome {
    InsertOutcome {
        conflicts: outcome.conflicts,
        first_conflicts: outcome.first_conflicts,
        ..InsertOutcome::default()
    }
}

/// Records in batch order: each is inserted, or (when its id is stored, possibly by an earlier
/// record of the batch) compared with the stored version, which is what makes the outcome match
/// [`InsertOutcome`]'s definition record by record.
fn insert(
    conn: &mut Connection,
    batch: &Batch,
    on_conflict: OnConflict,
) -> rusqlite::Result<InsertOutcome> {
    let (insert_sql, stored_sql, replace_sql) = (insert_sql(), stored_sql(), replace_sql());
    let mut outcome = InsertOutcome::default();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(&insert_sql)?;
        let mut stored = tx.prepare_cached(&stored_sql)?;
        for i in 0..batch.len() {
            let texts = batch.texts(i);
            for (c, text) in texts.iter().enumerate() {
                insert.raw_bind_parameter(c + 1, *text)?;
            }
            let [begin, end] = batch.times[i];
            insert.raw_bind_parameter(TEXTS + 1, begin)?;
            insert.raw_bind_parameter(TEXTS + 2, end)?;
            if insert.raw_execute()? == 1 {
                outcome.inserted += 1;
                continue;
            }
            match compare_stored(&mut stored, batch, i)? {
                Some(true) => outcome.already_present += 1,
                // Ignored for another reason than its key: no other constraint can ignore a
                // row, so this is a store that changed under us; count it as a conflict.
                None => outcome.conflict(i, texts[0]),
                Some(false) => {
                    outcome.conflict(i, texts[0]);
                    if on_conflict == OnConflict::Replace {
                        let mut replace = tx.prepare_cached(&replace_sql)?;
                        for (c, text) in texts[2..].iter().enumerate() {
                            replace.raw_bind_parameter(c + 1, *text)?;
                        }
                        replace.raw_bind_parameter(TEXTS - 1, begin)?;
                        replace.raw_bind_parameter(TEXTS, end)?;
                        replace.raw_bind_parameter(TEXTS + 1, texts[1])?;
                        replace.raw_bind_parameter(TEXTS + 2, texts[0])?;
                        replace.raw_execute()?;
                        outcome.replaced += 1;
                    }
                }
            }
        }
    }
    if outcome.failed(on_conflict) {
        tx.rollback()?;
        return Ok(only_conflicts(outcome));
    }
    tx.commit()?;
    Ok(outcome)
}

/// What [`insert`] would answer now, writing nothing: the records a real insert would have
/// stored by then are remembered in memory, by their index in the batch.
fn check(
    conn: &mut Connection,
    batch: &Batch,
    on_conflict: OnConflict,
) -> rusqlite::Result<InsertOutcome> {
    let stored_sql = stored_sql();
    let mut outcome = InsertOutcome::default();
    // One read transaction: one snapshot for the whole batch (and one read lock, not one per
    // lookup). It writes nothing, so dropping it is its end.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let mut stored = tx.prepare_cached(&stored_sql)?;
    // The batch's own version of each id it has stored or replaced so far.
    let mut current: HashMap<(&str, &str), usize> = HashMap::new();
    for i in 0..batch.len() {
        let key = batch.key(i);
        let equal = match current.get(&key) {
            Some(&j) => Some(batch.same(i, j)),
            None => compare_stored(&mut stored, batch, i)?,
        };
        match equal {
            None => {
                outcome.inserted += 1;
                current.insert(key, i);
            }
            Some(true) => outcome.already_present += 1,
            Some(false) => {
                outcome.conflict(i, key.1);
                if on_conflict == OnConflict::Replace {
                    outcome.replaced += 1;
                    current.insert(key, i);
                }
            }
        }
    }
    drop(stored);
    drop(tx);
    if outcome.failed(on_conflict) {
        return Ok(only_conflicts(outcome));
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_gives_back_each_records_columns() {
        let texts = |id: &str, dev: &str| -> [String; TEXTS] {
            std::array::from_fn(|c| match c {
                0 => id.to_owned(),
                1 => dev.to_owned(),
                // An empty column at either end of a record must not shift the next one.
                2 | 18 => String::new(),
                c => format!("{id}-{c}"),
            })
        };
        let t = jiff::Timestamp::from_second(100).expect("time");
        let records = [
            Record::from_texts(texts("a", "d1"), t, t),
            Record::from_texts(texts("", "d2"), t, t),
            Record::from_texts(texts("ccc", "d1"), t, t),
        ];
        let batch = Batch::of(&records);
        assert_eq!(batch.len(), 3);
        for (i, r) in records.iter().enumerate() {
            assert_eq!(batch.texts(i), r.texts());
            assert_eq!(batch.times[i], [100, 100]);
        }
        assert_eq!(batch.key(2), ("d1", "ccc"));
        assert!(!batch.same(0, 2));
        assert!(batch.same(1, 1));
    }

    #[test]
    fn the_statements_bind_every_column_once() {
        assert!(insert_sql().ends_with("?20, ?21)"));
        let replace = replace_sql();
        assert!(replace.contains("skill_info_sn = ?17, begin_time = ?18, end_time = ?19 "));
        assert!(replace.ends_with("developer_id = ?20 AND id = ?21"));
    }
}

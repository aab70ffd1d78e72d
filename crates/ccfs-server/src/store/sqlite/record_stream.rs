//! Exports' reading of the records: the export query on a direct, synchronous connection of its
//! own (rusqlite), run on a blocking thread, each row's columns handed to the export's
//! [`RowSink`] as borrowed bytes, without building a [`Record`].
//!
//! Why not the pool's sqlx connections: sqlx hands every row from its worker thread through a
//! channel and copies every value; a million-record export spent more time there (and in
//! decoding what came out) than in compressing. One statement walks the table's key, which is
//! the export order `(developer_id, begin_time, id)`, and is one snapshot of the database: in
//! WAL mode a reader sees the database as of its statement's start, whatever is committed
//! meanwhile, and never blocks the writer. Memory stays at one row whatever the export size.
//!
//! [`Records::stream_records`](crate::store::Records::stream_records) reads through the same
//! reader, building records in batches for consumers that want them (store transfers, tests).

use std::path::PathBuf;

use ccfs_protocol::Record;
use futures::stream::{self, BoxStream, StreamExt};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::mpsc;

use super::{corrupt, BUSY_TIMEOUT, READER_CACHE_KIB};
use crate::model::RecordQuery;
use crate::store::convert::{ceil_second, from_second, RECORD_TEXT_COLUMNS};
use crate::store::{RowSink, Stop, StoreError, StoreResult};

/// Records per batch of [`stream`]: a channel hop per thousand records, not per record.
const BATCH: usize = 1000;
/// Batches in flight between the reading thread and the stream's consumer: with [`BATCH`], a
/// few thousand records in memory whatever the export size.
const CHANNEL_BATCHES: usize = 4;

/// Where the exports' direct connections open the database: its file.
#[derive(Debug, Clone)]
pub(super) struct Direct(PathBuf);

impl Direct {
    pub(super) fn new(path: &std::path::Path) -> Self {
        Self(path.to_owned())
    }

    /// A read-only connection, used by one thread at a time (so SQLite's own mutex is off). No
    /// SQLITE_OPEN_URI: the path is taken as it is, as sqlx takes it.
    fn open_reader(&self) -> StoreResult<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.0, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
        Ok(conn)
    }
}

/// The export query: the selected records in `(begin_time, id)` order, a range of the table's
/// key `(developer_id, begin_time, id)`; parameters: developer, begin, end (unix seconds, rounded
/// up), then the account and the agent when the query names them.
pub(super) fn export_sql(q: &RecordQuery) -> String {
    let mut filter = String::from("developer_id = ? AND begin_time >= ? AND begin_time < ?");
    if q.account_id.is_some() {
        filter.push_str(" AND account_id = ?");
    }
    if q.agent_id.is_some() {
        filter.push_str(" AND agent_id = ?");
    }
    // Every text column but `developer_id`, which is the query's own (see [`read_rows`]).
    let columns = RECORD_TEXT_COLUMNS
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != DEVELOPER)
        .map(|(_, c)| *c)
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {columns}, begin_time, end_time FROM records WHERE {filter} \
         ORDER BY begin_time, id"
    )
}

/// Where `developer_id` is among the text columns.
const DEVELOPER: usize = 1;

/// Runs the export query and passes every row to `sink`, until the rows end or the sink says
/// [`Stop`]. Blocking: call it on a blocking thread.
pub(super) fn read_rows(db: &Direct, q: &RecordQuery, sink: &mut dyn RowSink) -> StoreResult<()> {
    let conn = db.open_reader()?;
    let mut stmt = conn.prepare(&export_sql(q))?;
    let mut params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(5);
    let (developer, begin, end) = (
        q.developer_id.as_str(),
        ceil_second(q.begin),
        ceil_second(q.end),
    );
    params.extend([&developer as &dyn rusqlite::ToSql, &begin, &end]);
    if let Some(account) = &q.account_id {
        params.push(account);
    }
    if let Some(agent) = &q.agent_id {
        params.push(agent);
    }
    let mut rows = stmt.query(params.as_slice())?;
    // Every row's developer is the one the query selects (an exact, binary comparison), so it
    // is not read back: one column less to decode per row.
    let developer_bytes = developer.as_bytes();
    while let Some(row) = rows.next()? {
        let mut texts: [&[u8]; 19] = [b""; 19];
        texts[DEVELOPER] = developer_bytes;
        for (i, text) in texts.iter_mut().enumerate() {
            if i == DEVELOPER {
                continue;
            }
            let column = if i < DEVELOPER { i } else { i - 1 };
            *text = match row.get_ref(column)? {
                ValueRef::Text(t) => t,
                ValueRef::Null => b"",
                other => {
                    return Err(corrupt(format_args!(
                        "record column {}: a {} where text belongs",
                        RECORD_TEXT_COLUMNS[i],
                        other.data_type()
                    )))
                }
            };
        }
        let begin: i64 = row.get(18)?;
        let end: i64 = row.get(19)?;
        if sink.row(texts, begin, end) == Err(Stop) {
            break;
        }
    }
    Ok(())
}

/// [`read_rows`] as a stream of records, read on a blocking thread that starts on the first
/// poll (inside the consumer's runtime) and stops when the consumer drops the stream.
pub(super) fn stream(db: Direct, q: RecordQuery) -> BoxStream<'static, StoreResult<Record>> {
    enum State {
        Idle(Direct, RecordQuery),
        Running(mpsc::Receiver<StoreResult<Vec<Record>>>),
    }
    stream::unfold(State::Idle(db, q), |state| async move {
        let mut rx = match state {
            State::Idle(db, q) => {
                let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
                // Detached: it ends with the rows, or at its next send once the receiver is gone.
                tokio::task::spawn_blocking(move || {
                    let mut sink = Batches {
                        tx: tx.clone(),
                        batch: Vec::with_capacity(BATCH),
                        failed: None,
                    };
                    let read = read_rows(&db, &q, &mut sink);
                    let result = match (read, sink.failed.take()) {
                        (Err(e), _) | (Ok(()), Some(e)) => Err(e),
                        (Ok(()), None) => Ok(std::mem::take(&mut sink.batch)),
                    };
                    let _ = tx.blocking_send(result);
                });
                rx
            }
            State::Running(rx) => rx,
        };
        let batch = rx.recv().await?;
        Some((batch, State::Running(rx)))
    })
    .flat_map(|batch| match batch {
        Ok(records) => stream::iter(records.into_iter().map(Ok)).left_stream(),
        Err(e) => stream::iter([Err(e)]).right_stream(),
    })
    .boxed()
}

/// The sink of [`stream`]: builds records and sends them a batch at a time.
struct Batches {
    tx: mpsc::Sender<StoreResult<Vec<Record>>>,
    batch: Vec<Record>,
    /// A row that could not be made a record: the stream's last item.
    failed: Option<StoreError>,
}

impl RowSink for Batches {
    fn row(&mut self, texts: [&[u8]; 19], begin: i64, end: i64) -> Result<(), Stop> {
        let record = (|| {
            let mut owned: [String; 19] = Default::default();
            for (o, t) in owned.iter_mut().zip(texts) {
                *o = String::from_utf8(t.to_vec())
                    .map_err(|e| corrupt(format_args!("record text: {e}")))?;
            }
            Ok(Record::from_texts(
                owned,
                from_second(begin, "record begin_time")?,
                from_second(end, "record end_time")?,
            ))
        })();
        match record {
            Ok(r) => self.batch.push(r),
            Err(e) => {
                self.failed = Some(e);
                return Err(Stop);
            }
        }
        if self.batch.len() == BATCH {
            let full = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
            // The consumer is gone: stop reading.
            self.tx.blocking_send(Ok(full)).map_err(|_| Stop)?;
        }
        Ok(())
    }
}

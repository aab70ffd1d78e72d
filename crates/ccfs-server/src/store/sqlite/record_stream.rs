//! Exports' reading of the records: the export query, page by page in `(begin_time, id)`
//! order inside one read transaction, handed to the consumer through a bounded channel so that
//! an export's memory stays the same whatever its size.

use ccfs_protocol::Record;
use sqlx::SqlitePool;
use tokio::sync::mpsc;

use super::row::RecordRow;
use super::{ceil_second, corrupt};
use crate::model::RecordQuery;
use crate::store::convert::RECORD_TEXT_COLUMNS;
use crate::store::StoreResult;

/// Records per page of the export query (see [`record_page_sql`]).
const STREAM_PAGE: usize = 1000;

/// Pages in flight between the streaming task and the consumer: with [`STREAM_PAGE`], an
/// export holds a few thousand records in memory, whatever its size.
const STREAM_CHANNEL: usize = 4;

/// One page of the export query, in `(begin_time, id)` order: the first page starts at the
/// window's begin, each next one after the last record of the previous page (keyset paging on
/// the export index, so a page costs the same wherever it is in the window).
///
/// A page comes back as a single value, a JSON array of `[19 texts..., begin_time, end_time]`
/// arrays. The driver hands over results row by row through a channel from its worker thread
/// and copies every column value through SQLite's allocator (which takes a process-wide lock);
/// one value per thousand records instead of 21 per record is what lets an export stream
/// several hundred thousand records a second. JSON keeps every text intact.
pub(super) fn record_page_sql(q: &RecordQuery, first: bool) -> String {
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

/// Reads the next page after `after` (or the first one) and decodes it, in order.
async fn record_page(
    conn: &mut sqlx::SqliteConnection,
    q: &RecordQuery,
    after: Option<&(i64, String)>,
) -> StoreResult<Vec<RecordRow>> {
    let sql = record_page_sql(q, after.is_none());
    let mut query = sqlx::query_scalar::<_, String>(&sql)
        .bind(q.developer_id.as_str())
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
                let (begin, id) = last.key();
                after = Some((begin, id.to_owned()));
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
pub(super) enum RecordStream {
    /// Not polled yet: the query starts on the first poll, inside the caller's runtime.
    Idle(SqlitePool, RecordQuery),
    Running(
        mpsc::Receiver<StoreResult<Vec<Record>>>,
        std::vec::IntoIter<Record>,
    ),
    Done,
}

impl RecordStream {
    pub(super) async fn next(mut self) -> Option<(StoreResult<Record>, RecordStream)> {
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

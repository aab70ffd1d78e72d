//! Exports' reading of the records: the export query, page by page in `(begin_time, id)`
//! order inside one `REPEATABLE READ READ ONLY` transaction, so that an export sees one snapshot
//! and holds one page in memory whatever its size.

use ccfs_protocol::Record;
use sqlx::PgPool;

use super::record_row::{record_columns, version_from_row};
use super::Tx;
use crate::model::RecordQuery;
use crate::store::convert::{ceil_second, from_second};
use crate::store::StoreResult;

/// Records per page of the export query (see [`record_page_sql`]).
const STREAM_PAGE: i64 = 1000;

/// One page of the export query, in `(begin_time, id)` order: the first page starts at the
/// window's begin, each next one after the last record of the previous page (keyset paging on
/// the export index, so a page costs the same wherever it is in the window). `id` compares
/// byte by byte (the column's "C" collation), as in the SQLite store.
pub(super) fn record_page_sql(q: &RecordQuery, first: bool) -> String {
    let mut filter = String::from("developer_id = $1 AND begin_time < $2");
    let mut next = 3;
    if first {
        filter.push_str(" AND begin_time >= $3");
        next += 1;
    } else {
        filter.push_str(" AND (begin_time, id) > ($3, $4)");
        next += 2;
    }
    if q.account_id.is_some() {
        filter.push_str(&format!(" AND account_id = ${next}"));
        next += 1;
    }
    if q.agent_id.is_some() {
        filter.push_str(&format!(" AND agent_id = ${next}"));
    }
    format!(
        "SELECT {} FROM records WHERE {filter} ORDER BY begin_time, id LIMIT {STREAM_PAGE}",
        record_columns()
    )
}

/// Reads the next page after `after` (or the first one), in order.
async fn record_page(
    tx: &mut Tx,
    q: &RecordQuery,
    after: Option<&(i64, String)>,
) -> StoreResult<Vec<Record>> {
    let sql = record_page_sql(q, after.is_none());
    let mut query = sqlx::query(&sql)
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
    let rows = query.fetch_all(&mut **tx).await?;
    rows.iter()
        .map(|row| {
            let v = version_from_row(row)?;
            Ok(Record::from_texts(
                v.texts,
                from_second(v.begin, "record begin_time")?,
                from_second(v.end, "record end_time")?,
            ))
        })
        .collect()
}

/// The state of an export's stream between pages.
/// The read-only snapshot an export reads in, set up so that every page is read from the
/// export index in order.
pub(super) async fn snapshot(pool: &PgPool) -> StoreResult<Tx> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    // Each page must be the next stretch of the export index, read in order. Right after a
    // bulk import, before autovacuum has analyzed the table, the planner believes the developer
    // has a few hundred rows and picks a bitmap scan that sorts the whole rest of the window for
    // every page (measured: 500 ms a page instead of 1 ms, an export of 1M records in minutes).
    // With explicit sorts priced out, the ordered index scan is the only plan left.
    sqlx::query("SET LOCAL enable_sort = off")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

pub(super) enum RecordStream {
    /// Not polled yet: the transaction starts on the first poll.
    Idle(PgPool, RecordQuery),
    Running {
        tx: Tx,
        query: RecordQuery,
        /// The `(begin_time, id)` of the last record read; `None` before the first page.
        after: Option<(i64, String)>,
        page: std::vec::IntoIter<Record>,
        /// Whether the last page was full (so another may follow).
        more: bool,
    },
    Done,
}

impl RecordStream {
    pub(super) async fn next(self) -> Option<(StoreResult<Record>, RecordStream)> {
        match self.advance().await {
            Ok(Some((record, next))) => Some((Ok(record), next)),
            Ok(None) => None,
            Err(e) => Some((Err(e), RecordStream::Done)),
        }
    }

    async fn advance(mut self) -> StoreResult<Option<(Record, RecordStream)>> {
        loop {
            match self {
                RecordStream::Idle(pool, query) => {
                    let tx = snapshot(&pool).await?;
                    self = RecordStream::Running {
                        tx,
                        query,
                        after: None,
                        page: Vec::new().into_iter(),
                        more: true,
                    };
                }
                RecordStream::Running {
                    mut tx,
                    query,
                    after,
                    mut page,
                    more,
                } => {
                    if let Some(record) = page.next() {
                        return Ok(Some((
                            record,
                            RecordStream::Running {
                                tx,
                                query,
                                after,
                                page,
                                more,
                            },
                        )));
                    }
                    if !more {
                        // Read only: ending it commits nothing.
                        tx.commit().await?;
                        return Ok(None);
                    }
                    let records = record_page(&mut tx, &query, after.as_ref()).await?;
                    let more = records.len() as i64 == STREAM_PAGE;
                    let after = records
                        .last()
                        .map(|r| {
                            (
                                crate::store::convert::floor_second(r.begin_time),
                                r.id.clone(),
                            )
                        })
                        .or(after);
                    self = RecordStream::Running {
                        tx,
                        query,
                        after,
                        page: records.into_iter(),
                        more,
                    };
                }
                RecordStream::Done => return Ok(None),
            }
        }
    }
}

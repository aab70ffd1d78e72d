//! The records part of the SQLite store: one row of `records` per `(developer_id, id)`,
//! imported in multi-row statements and compared with the stored versions only where an insert
//! left a record out. Exports read them through [`super::record_stream`].

use std::sync::OnceLock;

use async_trait::async_trait;
use ccfs_protocol::Record;
use futures::stream::BoxStream;
use sqlx::sqlite::SqliteArguments;
use sqlx::Arguments;

use super::record_stream;
use super::row::RecordRow;
use super::{corrupt, floor_second, SqliteStore};
use crate::model::RecordQuery;
use crate::store::convert::RECORD_TEXT_COLUMNS;
use crate::store::versions::{sort_chunk, Versions};
use crate::store::{InsertOutcome, OnConflict, Records, RowSource, StoreResult};

/// Bound values per record row: the 19 texts and the two times.
const RECORD_PARAMS: usize = 21;

/// Rows per multi-row INSERT. SQLite allows 32766 bound variables per statement; 1000 rows use
/// 21000 of them, and a batch of 5000 records takes five statements.
const INSERT_CHUNK: usize = 1000;

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

/// The stored versions of the records a chunk names: one value, a JSON array of
/// `[19 texts..., begin_time, end_time]` arrays, for one parameter, a JSON array of `[developer_id, id]` pairs. The
/// pairs drive the join (`CROSS JOIN` keeps them the outer loop), so each costs one lookup in
/// the `(developer_id, id)` index; a pair named twice comes back twice.
pub(super) fn stored_versions_sql() -> &'static str {
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

#[async_trait]
impl Records for SqliteStore {
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
        record_stream::stream(self.direct.clone(), query)
    }

    fn export_rows(&self, query: RecordQuery) -> RowSource {
        let db = self.direct.clone();
        RowSource::Blocking(Box::new(move |sink| {
            record_stream::read_rows(&db, &query, sink)
        }))
    }
}

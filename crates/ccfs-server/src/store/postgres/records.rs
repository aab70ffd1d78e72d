//! The records part of the PostgreSQL store: one row of `records` per `(developer_id, id)`,
//! imported with COPY ([`super::copy_in`]) while every record is new, and otherwise in
//! multi-row statements (one array a column, unnested: 21 bound values a chunk whatever its
//! size) compared with the stored versions only where an insert left a record out, with the
//! same rules as the SQLite store ([`crate::store::versions`]). Exports read them through
//! [`super::record_stream`].

use async_trait::async_trait;
use ccfs_protocol::Record;
use futures::stream::{self, BoxStream};
use futures::StreamExt;
use sqlx::PgConnection;

use super::copy_in::copy_chunk;
use super::record_row::{record_columns, version_from_row};
use super::record_stream::RecordStream;
use super::{settle, PgStore};
use crate::model::RecordQuery;
use crate::store::convert::floor_second;
use crate::store::convert::RECORD_TEXT_COLUMNS;
use crate::store::versions::{sort_chunk, Versions};
use crate::store::{InsertOutcome, OnConflict, Records, StoreResult};

/// Records per INSERT statement: large enough that a statement's round trip is shared by many
/// records, small enough that a conflicting chunk's lookup stays cheap.
const INSERT_CHUNK: usize = 5000;

/// `INSERT … SELECT * FROM UNNEST($1::text[], …, $20::bigint[], $21::bigint[]) ON CONFLICT DO
/// NOTHING`: a record whose id is stored (or came earlier in the statement) is left out, and the
/// statement's row count is the number inserted.
fn insert_sql() -> &'static str {
    crate::store::convert::once_sql!({
        let arrays = (1..=19)
            .map(|i| format!("${i}::text[]"))
            .chain(["$20::bigint[]".into(), "$21::bigint[]".into()])
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "INSERT INTO records ({}) SELECT * FROM UNNEST({arrays}) \
             ON CONFLICT (developer_id, id) DO NOTHING",
            record_columns()
        )
    })
}

async fn insert_chunk(conn: &mut PgConnection, chunk: &[Record]) -> StoreResult<u64> {
    let mut columns: Vec<Vec<&str>> = (0..19).map(|_| Vec::with_capacity(chunk.len())).collect();
    let mut begins = Vec::with_capacity(chunk.len());
    let mut ends = Vec::with_capacity(chunk.len());
    for r in chunk {
        for (column, text) in columns.iter_mut().zip(r.texts()) {
            column.push(text);
        }
        begins.push(floor_second(r.begin_time));
        ends.push(floor_second(r.end_time));
    }
    let mut query = sqlx::query(insert_sql());
    for column in &columns {
        query = query.bind(column);
    }
    let done = query.bind(&begins).bind(&ends).execute(conn).await?;
    Ok(done.rows_affected())
}

/// Adds the stored versions of `chunk`'s records to `versions`, keeping the versions already
/// there: inside the batch's write transaction they equal the stored ones; for a check, which
/// writes nothing, they are the batch's own earlier records.
async fn load_versions(
    conn: &mut PgConnection,
    chunk: &[Record],
    versions: &mut Versions,
) -> StoreResult<()> {
    let developers: Vec<&str> = chunk.iter().map(|r| r.developer_id.as_str()).collect();
    let ids: Vec<&str> = chunk.iter().map(|r| r.id.as_str()).collect();
    let sql = crate::store::convert::once_sql!(format!(
        "SELECT {} FROM records WHERE (developer_id, id) IN \
         (SELECT * FROM UNNEST($1::text[], $2::text[]))",
        record_columns()
    ));
    let rows = sqlx::query(sql)
        .bind(&developers)
        .bind(&ids)
        .fetch_all(conn)
        .await?;
    for row in &rows {
        let v = version_from_row(row)?;
        versions
            .entry((v.texts[1].clone(), v.texts[0].clone()))
            .or_insert(v);
    }
    Ok(())
}

/// `UPDATE records SET <every column but the key> WHERE developer_id = $20 AND id = $21`.
fn replace_record_sql() -> &'static str {
    crate::store::convert::once_sql!({
        let set = RECORD_TEXT_COLUMNS[2..]
            .iter()
            .chain(&["begin_time", "end_time"])
            .enumerate()
            .map(|(i, c)| format!("{c} = ${}", i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        format!("UPDATE records SET {set} WHERE developer_id = $20 AND id = $21")
    })
}

/// Overwrites the stored record of `r`'s `(developer_id, id)` with `r`'s content.
async fn replace_record(conn: &mut PgConnection, r: &Record) -> StoreResult<()> {
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
impl Records for PgStore {
    async fn insert_records(
        &self,
        records: &[Record],
        on_conflict: OnConflict,
    ) -> StoreResult<InsertOutcome> {
        if records.is_empty() {
            return Ok(InsertOutcome::default());
        }
        let mut tx = self.pool.begin().await?;
        let result = async {
            let mut outcome = InsertOutcome::default();
            // Only the ids of chunks where the insert left a record out are looked up: the common
            // case, all new, costs no read. A concurrent writer of the same ids waits on their
            // unique index entries until this transaction ends, so what is read here stays true.
            let mut versions = Versions::new();
            for (n, chunk) in records.chunks(INSERT_CHUNK).enumerate() {
                // All new: copied, and done. Else nothing of the chunk went in, and the
                // statements below sort it out.
                if let Some(copied) = copy_chunk(&mut tx, &record_columns(), chunk).await? {
                    outcome.inserted += copied;
                    continue;
                }
                let inserted = insert_chunk(&mut tx, chunk).await?;
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
            Ok(outcome)
        }
        .await;
        // Rolled back whole on a conflict with `Fail`.
        let outcome = settle(tx, result, |o| !o.failed(on_conflict)).await?;
        if outcome.failed(on_conflict) {
            return Ok(InsertOutcome {
                conflicts: outcome.conflicts,
                first_conflicts: outcome.first_conflicts,
                ..InsertOutcome::default()
            });
        }
        Ok(outcome)
    }

    async fn check_records(
        &self,
        records: &[Record],
        on_conflict: OnConflict,
    ) -> StoreResult<InsertOutcome> {
        let mut outcome = InsertOutcome::default();
        let mut versions = Versions::new();
        let mut conn = self.pool.acquire().await?;
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
            RecordStream::Idle(self.pool.clone(), query),
            RecordStream::next,
        )
        .boxed()
    }
}

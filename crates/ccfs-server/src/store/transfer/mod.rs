//! Moves an embedded installation's store (SQLite) into a shared one (PostgreSQL), table by
//! table, for `ccfs migrate-store`.
//!
//! Each table is read in pages in its primary key's order and written with `INSERT … ON CONFLICT
//! DO NOTHING`, one page per statement. So a transfer is resumable (a run cut short leaves whole
//! pages, and the next run skips what is there) and idempotent (a second run inserts nothing),
//! and a row the target already holds is never overwritten: once nodes run on the target, its
//! rows are the newer ones. Every page is verified after it is written: each of its keys must be
//! in the target, so a transfer that ends without an error has every source row in the target.
//!
//! Values move as they are stored (sealed secret keys, times in unix milliseconds, states), so
//! the nodes of the target must use the master key of the source installation.

mod tables;

use sqlx::postgres::PgArguments;
use sqlx::sqlite::SqliteRow;
use sqlx::{Arguments, Row};

use super::convert::{corrupt, to_u32};
use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use super::StoreResult;
use crate::model::FileKey;
use tables::{Kind, Table, TABLES};

/// Rows per page: one read, one insert and one check each.
const PAGE: i64 = 5_000;

/// What a transfer reports as it goes (the `ccfs` command draws it as progress bars).
pub trait Progress: Send + Sync {
    /// A table starts; it holds `rows` rows in the source.
    fn table(&self, name: &str, rows: u64);
    /// `rows` more rows of the current table are in the target.
    fn advance(&self, rows: u64);
}

/// One table's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: &'static str,
    /// Rows in the source.
    pub source: u64,
    /// Rows this run inserted (0 for a table a previous run copied).
    pub inserted: u64,
    /// Source rows found in the target after the copy: equal to `source`.
    pub verified: u64,
}

/// Copies every table of `from` into `to` (both already migrated to this version's schema).
pub async fn transfer(
    from: &SqliteStore,
    to: &PgStore,
    progress: &dyn Progress,
) -> StoreResult<Vec<TableCount>> {
    let mut counts = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        counts.push(copy_table(from, to, table, progress).await?);
    }
    Ok(counts)
}

/// A finished export whose file a transfer must bring along.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedFile {
    /// Where the file is stored: under the same key in the target, since the job row that
    /// names it is copied as it is.
    pub key: FileKey,
    pub size: u64,
    /// Lower-case hex SHA-256, as the job recorded it.
    pub sha256: String,
}

/// `file_name, file_size, sha256, file_attempt` of a succeeded job.
type PublishedRow = (String, Option<i64>, Option<String>, Option<i64>);

/// The published files of the source's succeeded jobs (expired ones are already deleted), by
/// name. Only the attempt each job published: another attempt's upload is no file of the job.
pub async fn published_files(from: &SqliteStore) -> StoreResult<Vec<PublishedFile>> {
    let rows: Vec<PublishedRow> = sqlx::query_as(
        "SELECT file_name, file_size, sha256, file_attempt FROM jobs WHERE state = 'succeeded' \
         ORDER BY file_name",
    )
    .fetch_all(from.reader())
    .await?;
    rows.into_iter()
        .map(|(name, size, sha256, attempt)| {
            let name = ccfs_protocol::ZipFileName::parse(&name)
                .ok_or_else(|| corrupt(format_args!("jobs.file_name {name:?}")))?;
            let attempt = attempt
                .map(|a| to_u32(a, "jobs.file_attempt"))
                .transpose()?;
            match (size.and_then(|s| u64::try_from(s).ok()), sha256) {
                (Some(size), Some(sha256)) => Ok(PublishedFile {
                    key: FileKey { name, attempt },
                    size,
                    sha256,
                }),
                _ => Err(corrupt(format_args!(
                    "succeeded job of {name} without its size or SHA-256"
                ))),
            }
        })
        .collect()
}

async fn copy_table(
    from: &SqliteStore,
    to: &PgStore,
    table: &Table,
    progress: &dyn Progress,
) -> StoreResult<TableCount> {
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", table.name))
        .fetch_one(from.reader())
        .await?;
    let total = u64::try_from(total).unwrap_or(0);
    progress.table(table.name, total);
    let names: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
    let key = table.key.join(", ");
    let first_page = format!(
        "SELECT {} FROM {} ORDER BY {key} LIMIT {PAGE}",
        names.join(", "),
        table.name
    );
    let marks = vec!["?"; table.key.len()].join(", ");
    let next_page = format!(
        "SELECT {} FROM {} WHERE ({key}) > ({marks}) ORDER BY {key} LIMIT {PAGE}",
        names.join(", "),
        table.name
    );
    let insert = insert_sql(table);
    let check = check_sql(table);

    let mut count = TableCount {
        table: table.name,
        source: total,
        inserted: 0,
        verified: 0,
    };
    // The key of the last row copied: the next page starts after it.
    let mut last: Option<Vec<String>> = None;
    loop {
        let rows: Vec<SqliteRow> = match &last {
            None => sqlx::query(&first_page).fetch_all(from.reader()).await?,
            Some(key) => {
                let mut q = sqlx::query(&next_page);
                for part in key {
                    q = q.bind(part.clone());
                }
                q.fetch_all(from.reader()).await?
            }
        };
        if rows.is_empty() {
            break;
        }
        let columns = read_columns(table, &rows)?;
        let inserted = sqlx::query_with(&insert, bind_all(&columns)?)
            .execute(to.pool())
            .await?
            .rows_affected();
        let keys: Vec<Values> = table
            .key
            .iter()
            .map(|k| column_of(table, &columns, k).clone())
            .collect();
        let found: i64 = sqlx::query_scalar_with(&check, bind_all(&keys)?)
            .fetch_one(to.pool())
            .await?;
        if found != rows.len() as i64 {
            return Err(corrupt(format_args!(
                "{}: {} of {} rows of a page are not in the target after the copy",
                table.name,
                rows.len() as i64 - found,
                rows.len()
            )));
        }
        count.inserted += inserted;
        count.verified += rows.len() as u64;
        progress.advance(rows.len() as u64);
        last = Some(last_key(table, &columns)?);
        if (rows.len() as i64) < PAGE {
            break;
        }
    }
    Ok(count)
}

/// `INSERT INTO t (…) SELECT * FROM UNNEST($1::text[], …) ON CONFLICT DO NOTHING`.
fn insert_sql(table: &Table) -> String {
    let arrays = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}[]", i + 1, pg_type(c.kind)))
        .collect::<Vec<_>>()
        .join(", ");
    let names: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
    format!(
        "INSERT INTO {} ({}) SELECT * FROM UNNEST({arrays}) ON CONFLICT DO NOTHING",
        table.name,
        names.join(", ")
    )
}

/// How many of a page's keys the target holds.
fn check_sql(table: &Table) -> String {
    let arrays = (1..=table.key.len())
        .map(|i| format!("${i}::text[]"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT COUNT(*) FROM {} WHERE ({}) IN (SELECT * FROM UNNEST({arrays}))",
        table.name,
        table.key.join(", ")
    )
}

fn pg_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => "text",
        Kind::Int => "bigint",
        Kind::Flag => "boolean",
        Kind::Bytes => "bytea",
    }
}

/// A page's values of one column.
#[derive(Debug, Clone)]
enum Values {
    Text(Vec<Option<String>>),
    Int(Vec<Option<i64>>),
    Flag(Vec<Option<bool>>),
    Bytes(Vec<Option<Vec<u8>>>),
}

/// A page's rows as one value list per column, in the table's column order.
fn read_columns(table: &Table, rows: &[SqliteRow]) -> StoreResult<Vec<Values>> {
    table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let bad = |e: sqlx::Error| corrupt(format_args!("{}.{}: {e}", table.name, c.name));
            let values = match c.kind {
                Kind::Text => Values::Text(
                    rows.iter()
                        .map(|r| r.try_get(i).map_err(bad))
                        .collect::<StoreResult<_>>()?,
                ),
                Kind::Int => Values::Int(
                    rows.iter()
                        .map(|r| r.try_get(i).map_err(bad))
                        .collect::<StoreResult<_>>()?,
                ),
                Kind::Flag => Values::Flag(
                    rows.iter()
                        .map(|r| r.try_get(i).map_err(bad))
                        .collect::<StoreResult<_>>()?,
                ),
                Kind::Bytes => Values::Bytes(
                    rows.iter()
                        .map(|r| r.try_get(i).map_err(bad))
                        .collect::<StoreResult<_>>()?,
                ),
            };
            if !c.nullable && has_null(&values) {
                return Err(corrupt(format_args!(
                    "{}.{} holds NULL, which the target refuses",
                    table.name, c.name
                )));
            }
            Ok(values)
        })
        .collect()
}

fn has_null(values: &Values) -> bool {
    match values {
        Values::Text(v) => v.iter().any(Option::is_none),
        Values::Int(v) => v.iter().any(Option::is_none),
        Values::Flag(v) => v.iter().any(Option::is_none),
        Values::Bytes(v) => v.iter().any(Option::is_none),
    }
}

fn column_of<'a>(table: &Table, columns: &'a [Values], name: &str) -> &'a Values {
    let i = table
        .columns
        .iter()
        .position(|c| c.name == name)
        .unwrap_or_else(|| unreachable!("key column {name} is a column of {}", table.name));
    &columns[i]
}

/// The key of a page's last row (keys are text columns, never NULL).
fn last_key(table: &Table, columns: &[Values]) -> StoreResult<Vec<String>> {
    table
        .key
        .iter()
        .map(|k| match column_of(table, columns, k) {
            Values::Text(v) => v
                .last()
                .cloned()
                .flatten()
                .ok_or_else(|| corrupt(format_args!("{}.{k}: empty key", table.name))),
            _ => Err(corrupt(format_args!("{}.{k}: a key is text", table.name))),
        })
        .collect()
}

/// Every column as one bound array.
fn bind_all(columns: &[Values]) -> StoreResult<PgArguments> {
    let mut args = PgArguments::default();
    for values in columns {
        let added = match values {
            Values::Text(v) => args.add(v.clone()),
            Values::Int(v) => args.add(v.clone()),
            Values::Flag(v) => args.add(v.clone()),
            Values::Bytes(v) => args.add(v.clone()),
        };
        added.map_err(|e| corrupt(format_args!("cannot bind a column: {e}")))?;
    }
    Ok(args)
}

#[cfg(test)]
mod tests;

//! A record as a row of `records`: the columns a query reads and the stored version a row
//! holds, shared by the import ([`super::records`]) and the export stream
//! ([`super::record_stream`]).

use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::store::convert::{corrupt, RECORD_TEXT_COLUMNS};
use crate::store::versions::Version;
use crate::store::StoreResult;

/// The record columns a query reads, in [`version_from_row`]'s order.
pub(super) fn record_columns() -> String {
    let mut columns = RECORD_TEXT_COLUMNS.to_vec();
    columns.extend(["begin_time", "end_time"]);
    columns.join(", ")
}

/// A record row as the version it stores.
pub(super) fn version_from_row(row: &PgRow) -> StoreResult<Version> {
    let mut texts: [String; 19] = Default::default();
    for (i, t) in texts.iter_mut().enumerate() {
        *t = row
            .try_get(i)
            .map_err(|e| corrupt(format_args!("record column {i}: {e}")))?;
    }
    let time = |i: usize| -> StoreResult<i64> {
        row.try_get(i)
            .map_err(|e| corrupt(format_args!("record column {i}: {e}")))
    };
    Ok(Version {
        texts,
        begin: time(19)?,
        end: time(20)?,
    })
}

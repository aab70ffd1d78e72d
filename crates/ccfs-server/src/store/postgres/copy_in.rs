//! Records into PostgreSQL with `COPY … FROM STDIN`: the fastest way in, several times the
//! rows per second of multi-row INSERTs, because the server parses plain text rows instead of
//! planning and binding a statement. COPY cannot skip a row whose key exists, so it runs under
//! a savepoint: when a unique key is violated (a record imported before, or twice in one
//! batch) the chunk is rolled back to the savepoint and the caller takes the INSERT path, which
//! sorts out every conflict. An import of new records, the common case, never leaves COPY.

use std::io::Write;

use ccfs_protocol::Record;
use sqlx::PgConnection;

use crate::store::convert::floor_second;
use crate::store::StoreResult;

/// Bytes per COPY data message: the encoded chunk reaches the server in pieces of this size,
/// so memory holds one piece, not the chunk.
const SEND: usize = 1024 * 1024;

/// PostgreSQL's code for a unique key violation.
const UNIQUE_VIOLATION: &str = "23505";

/// Copies `chunk` into `records`. `Ok(Some(n))`: all `n` records are in. `Ok(None)`: a record's
/// key was already stored (or repeated in the chunk); nothing of the chunk is in, and the
/// transaction is usable. Any other error is returned as it is.
pub(super) async fn copy_chunk(
    conn: &mut PgConnection,
    columns: &str,
    chunk: &[Record],
) -> StoreResult<Option<u64>> {
    sqlx::query("SAVEPOINT copy_chunk")
        .execute(&mut *conn)
        .await?;
    match copy(conn, columns, chunk).await {
        Ok(n) => {
            sqlx::query("RELEASE SAVEPOINT copy_chunk")
                .execute(&mut *conn)
                .await?;
            Ok(Some(n))
        }
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(UNIQUE_VIOLATION) => {
            sqlx::query("ROLLBACK TO SAVEPOINT copy_chunk")
                .execute(&mut *conn)
                .await?;
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

async fn copy(conn: &mut PgConnection, columns: &str, chunk: &[Record]) -> sqlx::Result<u64> {
    let mut copy = conn
        .copy_in_raw(&format!("COPY records ({columns}) FROM STDIN"))
        .await?;
    let mut buf = Vec::with_capacity(SEND + 4096);
    for r in chunk {
        encode_row(r, &mut buf);
        if buf.len() >= SEND {
            copy.send(std::mem::take(&mut buf)).await?;
            buf.reserve(SEND + 4096);
        }
    }
    if !buf.is_empty() {
        copy.send(buf).await?;
    }
    copy.finish().await
}

/// One row in COPY's text format, in `record_columns()` order: the 19 text columns, then the
/// begin and end seconds; tab between columns, newline after the row.
fn encode_row(r: &Record, buf: &mut Vec<u8>) {
    for text in r.texts() {
        escape(text, buf);
        buf.push(b'\t');
    }
    // Writing into a Vec cannot fail.
    let _ = writeln!(
        buf,
        "{}\t{}",
        floor_second(r.begin_time),
        floor_second(r.end_time)
    );
}

/// A text value with COPY's escapes: backslash, tab, newline and carriage return are the bytes
/// the format gives a meaning; `\N` (NULL) cannot appear because a backslash is doubled.
fn escape(text: &str, buf: &mut Vec<u8>) {
    for &b in text.as_bytes() {
        match b {
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            _ => buf.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_as_copy_reads_them() {
        let mut buf = Vec::new();
        escape("a\tb\nc\rd\\N e", &mut buf);
        assert_eq!(buf, b"a\\tb\\nc\\rd\\\\N e");
        let mut buf = Vec::new();
        escape("Zoë 电话 \"q\",", &mut buf);
        assert_eq!(buf, "Zoë 电话 \"q\",".as_bytes());
    }
}

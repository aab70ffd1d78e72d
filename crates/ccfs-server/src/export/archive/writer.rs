//! The writer thread of an export: CSV rows into deflated zip entries, a new part every
//! `rows_per_file`, the finished file synced to disk, and how much of it is final reported as
//! it goes ([`super::stable`]).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use ccfs_protocol::record::{csv_writer, COLUMNS};
use ccfs_protocol::CsvPartName;
use jiff::civil;
use tokio::sync::{mpsc, watch};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::stable::Tracked;
use super::{Built, Feed, ZipSettings};
use crate::blobs::Stable;
use crate::export::ExportError;

/// Write buffer of the zip file: the deflate stream reaches the disk in large writes.
const FILE_BUFFER: usize = 256 * 1024;

/// Upper bound of one CSV row in bytes: every column at its longest, every character 4 UTF-8
/// bytes, every byte a doubled quote, plus the enclosing quotes and separators. Used only to
/// decide whether a part could exceed 4 GiB and so needs zip64 sizes.
const MAX_ROW_BYTES: u64 = {
    let mut sum = 0u64;
    let mut i = 0;
    while i < COLUMNS.len() {
        sum += COLUMNS[i].max_len as u64 * 4 * 2 + 3;
        i += 1;
    }
    sum
};

/// The writer thread: CSV rows into deflated zip entries, a new part every `rows_per_file`.
pub(super) fn write_zip(
    mut rx: mpsc::Receiver<Feed>,
    s: &ZipSettings,
    path: &Path,
    stable: Option<watch::Sender<Stable>>,
) -> Result<Built, ExportError> {
    let file = Tracked::new(File::create(path)?, stable);
    let options = entry_options(s);
    // One random number per export is enough: it only has to make names of exports created in
    // the same millisecond unlikely to collide, as the CC-FS names do.
    let random: u16 = rand::random_range(0..1000);
    let rows_per_file = s.rows_per_file.max(1);

    let mut zip = ZipWriter::new(BufWriter::with_capacity(FILE_BUFFER, file));
    let mut seq = 1u32;
    zip.start_file(CsvPartName::new(s.stamp, random, seq).as_str(), options)?;
    // A CSV writer per part, over the zip writer: its small buffer is the only per-part cost,
    // and rows go straight from it into the entry's deflate stream.
    let mut csv = part_writer(&mut zip, s.csv_header)?;
    let mut in_part = 0u64;
    let mut total = 0u64;
    loop {
        match rx.blocking_recv() {
            Some(Feed::Batch(batch)) => {
                for record in &batch {
                    if in_part == rows_per_file {
                        // The part's buffered rows go into its entry before the zip moves on.
                        csv.flush()?;
                        drop(csv);
                        seq = seq
                            .checked_add(1)
                            .ok_or_else(|| ExportError::Writer("too many CSV parts".into()))?;
                        zip.start_file(CsvPartName::new(s.stamp, random, seq).as_str(), options)?;
                        csv = part_writer(&mut zip, s.csv_header)?;
                        in_part = 0;
                    }
                    record.write_csv(&mut csv, &s.timezone)?;
                    in_part += 1;
                }
                total += batch.len() as u64;
            }
            Some(Feed::End) => break,
            // The feeding side stopped without finishing: leave the zip unfinished.
            None => return Err(ExportError::Aborted),
        }
    }
    csv.flush()?;
    drop(csv);
    let buffered = zip.finish()?;
    let (file, stable) = buffered
        .into_inner()
        .map_err(|e| e.into_error())?
        .into_parts();
    // The file is about to be uploaded and the job marked done: make sure it is on disk.
    file.sync_all()?;
    if let Some(tx) = stable {
        let bytes = file.metadata()?.len();
        tx.send_replace(Stable {
            bytes,
            complete: true,
        });
    }
    Ok(Built {
        record_count: total,
        file_count: seq,
    })
}

/// The CSV writer of one part, which starts with the header row when asked.
fn part_writer<W: Write>(w: W, header: bool) -> Result<csv::Writer<W>, ExportError> {
    let mut csv = csv_writer(w);
    if header {
        csv.write_record(COLUMNS.iter().map(|c| c.name))?;
    }
    Ok(csv)
}

/// Entry options: deflate at the configured level (0 stores), dated `stamp`, zip64 sizes only
/// when a part could pass 4 GiB (they cost 20 bytes and some old readers refuse them). The
/// archive itself switches to zip64 records on its own when it passes 4 GiB or 65,535 entries.
fn entry_options(s: &ZipSettings) -> SimpleFileOptions {
    let (method, level) = match s.compression_level {
        0 => (CompressionMethod::Stored, None),
        l => (CompressionMethod::Deflated, Some(i64::from(l.min(9)))),
    };
    SimpleFileOptions::default()
        .compression_method(method)
        .compression_level(level)
        .last_modified_time(zip_time(s.stamp))
        .unix_permissions(0o644)
        .large_file(needs_zip64(s.rows_per_file))
}

/// Whether a part of `rows_per_file` rows could exceed the 4 GiB of a plain zip entry.
fn needs_zip64(rows_per_file: u64) -> bool {
    rows_per_file.saturating_mul(MAX_ROW_BYTES) >= u64::from(u32::MAX)
}

/// `stamp` as a zip (MS-DOS) time; outside 1980–2107, which zip cannot express, 1980-01-01.
fn zip_time(stamp: civil::DateTime) -> zip::DateTime {
    let part = |v: i8| u8::try_from(v).unwrap_or(0);
    u16::try_from(stamp.year())
        .ok()
        .and_then(|year| {
            zip::DateTime::from_date_and_time(
                year,
                part(stamp.month()),
                part(stamp.day()),
                part(stamp.hour()),
                part(stamp.minute()),
                part(stamp.second()),
            )
            .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip64_only_when_a_part_could_pass_4_gib() {
        assert!(!needs_zip64(100_000));
        assert!(!needs_zip64(500_000));
        assert!(needs_zip64(10_000_000));
        assert!(needs_zip64(u64::MAX));
        assert_eq!(
            zip_time(civil::date(1970, 1, 1).at(0, 0, 0, 0)),
            zip::DateTime::default()
        );
    }
}

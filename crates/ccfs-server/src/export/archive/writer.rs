//! The zip writer thread of an export: the deflated pieces, in order, into one zip entry per CSV
//! part, the finished file synced to disk, and how much of it is final reported as it goes.
//!
//! The container is written by rawzip, which takes entries already deflated (the zip crate
//! deflates every entry itself, on one thread). It only appends: each entry's CRC and sizes
//! follow its data in a data descriptor (and in the central directory), so every byte is final
//! once written and the upload can take the file up to there ([`super::stable`]). Past 65,535
//! entries or 4 GiB it writes the zip64 records on its own.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use ccfs_protocol::CsvPartName;
use crc32fast::Hasher;
use rawzip::time::UtcDateTime;
use rawzip::{CompressionMethod, DataDescriptorOutput, ZipArchiveWriter};
use tokio::sync::watch;

use super::deflate::{Done, Method, Results};
use super::stable::Counted;
use super::ZipSettings;
use crate::blobs::Stable;
use crate::export::ExportError;

/// Writes the zip at `path` from `results`; the number of entries written when the results
/// ended with [`Done::End`], else [`ExportError::Aborted`].
pub(super) fn write_zip(
    mut results: Results,
    s: &ZipSettings,
    method: Method,
    path: &Path,
    stable: Option<watch::Sender<Stable>>,
) -> Result<u32, ExportError> {
    let (file, progress) = Counted::new(File::create(path)?, stable);
    let mut archive = ZipArchiveWriter::new(file);
    // One random number per export is enough: it only has to make names of exports created in
    // the same millisecond unlikely to collide, as the CC-FS names do.
    let random: u16 = rand::random_range(0..1000);
    let modified = modified(s);
    let compression = match method {
        Method::Stored => CompressionMethod::STORE,
        Method::Deflate(_) => CompressionMethod::DEFLATE,
    };
    // Results that stop without the end: the feeding side gave up (its error is the cause).
    let mut next = || match results.next() {
        Some(r) => r.map_err(ExportError::Io),
        None => Err(ExportError::Aborted),
    };
    let mut entries = 0u32;
    while let Done::Piece(mut piece) = next()? {
        let name = CsvPartName::new(s.stamp, random, piece.part);
        let (mut entry, _) = archive
            .new_file(name.as_str())
            .compression_method(compression)
            .last_modified(modified)
            .unix_permissions(0o644)
            .start()?;
        let mut crc = Hasher::new();
        loop {
            entry.write_all(&piece.bytes)?;
            crc.combine(&piece.crc);
            if piece.last {
                break;
            }
            piece = match next()? {
                Done::Piece(p) => p,
                Done::End => return Err(ExportError::Aborted),
            };
        }
        let size = crc.total_len();
        entry.finish(DataDescriptorOutput::new(crc.finalize(), size))?;
        entries += 1;
        progress.publish(false);
    }
    let file = archive.finish()?.into_file();
    // The file is about to be uploaded and the job marked done: make sure it is on disk.
    file.sync_all()?;
    progress.publish(true);
    Ok(entries)
}

/// The entries' modification time: the job's creation, whose local time in the developer's
/// zone names the parts.
fn modified(s: &ZipSettings) -> UtcDateTime {
    let instant = ccfs_protocol::time::to_instant(s.stamp, &s.timezone).unwrap_or_default();
    UtcDateTime::from_unix(instant.as_second())
}

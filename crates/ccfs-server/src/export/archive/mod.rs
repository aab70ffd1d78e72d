//! The export pipeline, independent of jobs: a stream of records in, a zip of CSV parts out.
//!
//! Two sides work at once. The async side pulls records from the store's stream and packs them
//! into batches; a blocking thread turns the batches into CSV rows, deflates them and writes the
//! zip. They meet in a bounded channel of a few batches, so memory stays at a few thousand
//! records whatever the export size, and a slow side simply makes the other wait. Either side
//! stopping (an error, a cancellation) closes the channel, which stops the other: the writer
//! thread always ends and is always awaited, so no thread outlives the export.

use std::path::{Path, PathBuf};

use ccfs_protocol::Record;
use futures::stream::{BoxStream, StreamExt};
use jiff::{civil, tz::TimeZone};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::ExportError;
use crate::files::remove_quietly;
use crate::store::StoreResult;
use writer::write_zip;

mod stable;
#[cfg(test)]
mod tests;
mod writer;

use crate::blobs::Stable;

/// Records per batch sent to the writer thread: large enough that the channel costs nothing
/// per record, small enough that a batch is a few hundred kilobytes.
pub const BATCH: usize = 1024;
/// Batches in flight between the two sides. Bounds memory; a few let the store run ahead of
/// the compressor across short stalls.
const CHANNEL_BATCHES: usize = 4;

/// How an export is written.
#[derive(Debug, Clone)]
pub struct ZipSettings {
    /// Most rows in one CSV part (at least 1).
    pub rows_per_file: u64,
    /// Deflate level 1–9; 0 stores the parts uncompressed.
    pub compression_level: u32,
    /// Start each part with the 21 column names.
    pub csv_header: bool,
    /// The developer's time zone: record times are shown in it.
    pub timezone: TimeZone,
    /// The job's creation time in the developer's time zone; it names the CSV parts and dates
    /// the zip entries.
    pub stamp: civil::DateTime,
}

/// What [`build_zip`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Built {
    pub record_count: u64,
    /// CSV parts in the zip (at least 1: an export with no records holds one empty part).
    pub file_count: u32,
}

/// What the async side sends to the writer thread. The explicit `End` lets the writer tell a
/// complete export from a channel closed because the feeding side gave up.
enum Feed {
    Batch(Vec<Record>),
    End,
}

/// Writes `records` as a zip of CSV parts to `path` (created or truncated) and syncs it to
/// disk. On an error the partial file is removed.
pub async fn build_zip(
    records: BoxStream<'static, StoreResult<Record>>,
    settings: &ZipSettings,
    path: &Path,
) -> Result<Built, ExportError> {
    build_zip_until(records, settings, path, &CancellationToken::new(), None).await
}

/// As [`build_zip`], stopping with [`ExportError::Cancelled`] as soon as `cancel` fires (the
/// job runner's shutdown and lost-lease signal), and telling `stable` how much of the file is
/// final as it is written, so that its upload can go on at the same time.
pub async fn build_zip_until(
    records: BoxStream<'static, StoreResult<Record>>,
    settings: &ZipSettings,
    path: &Path,
    cancel: &CancellationToken,
    stable: Option<watch::Sender<Stable>>,
) -> Result<Built, ExportError> {
    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    let writer_settings = settings.clone();
    let writer_path: PathBuf = path.to_owned();
    let writer =
        tokio::task::spawn_blocking(move || write_zip(rx, &writer_settings, &writer_path, stable));

    // Cancellation and the writer's end are watched around the whole feed rather than per
    // record: the select is polled only when the feed waits, so the hot loop pays nothing for
    // them. The watch on the writer matters when the store is slow: a writer that failed at
    // once is noticed without waiting for a full batch. Dropping the feed drops its sender.
    let watcher = tx.clone();
    let fed = tokio::select! {
        biased;
        () = cancel.cancelled() => Err(FeedStop::Source(ExportError::Cancelled)),
        () = watcher.closed() => Err(FeedStop::WriterGone),
        r = feed(records, tx) => r,
    };
    // The last sender: once it is gone, a writer still waiting for batches sees the channel
    // close and stops, so awaiting it below cannot hang.
    drop(watcher);
    // Always wait for the writer: it holds the file open, and it must be gone before the
    // caller deletes or uploads that file.
    let written = match writer.await {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(ExportError::Writer("the zip writer panicked".into())),
        Err(e) => Err(ExportError::Writer(e.to_string())),
    };
    let result = match fed {
        // The feeding side failed first: that is the cause; the writer only saw the channel close.
        Err(FeedStop::Source(e)) => Err(e),
        // Otherwise the writer's result tells: it is Ok only after it received `End`, and its
        // error is the cause when it hung up early.
        Ok(()) | Err(FeedStop::WriterGone) => written,
    };
    if result.is_err() {
        remove_quietly(path);
    }
    result
}

/// Why the feed stopped before sending `End`.
enum FeedStop {
    /// The record stream failed (or the export was cancelled).
    Source(ExportError),
    /// The writer thread stopped taking batches (it failed).
    WriterGone,
}

/// Pulls the records into batches and hands them to the writer, then sends `End`.
async fn feed(
    mut records: BoxStream<'static, StoreResult<Record>>,
    tx: mpsc::Sender<Feed>,
) -> Result<(), FeedStop> {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(record) = records.next().await {
        batch.push(record.map_err(|e| FeedStop::Source(e.into()))?);
        if batch.len() == BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            tx.send(Feed::Batch(full))
                .await
                .map_err(|_| FeedStop::WriterGone)?;
        }
    }
    if !batch.is_empty() {
        tx.send(Feed::Batch(batch))
            .await
            .map_err(|_| FeedStop::WriterGone)?;
    }
    tx.send(Feed::End).await.map_err(|_| FeedStop::WriterGone)
}

//! The export pipeline, independent of jobs: the store's rows in, a zip of CSV parts out.
//!
//! Four kinds of thread work at once, each on its own concern, joined by bounded channels so that
//! memory stays at a few pieces whatever the export size and a slow stage makes the others wait:
//! - the reading thread runs the store's reader (or, for a store that streams records, takes
//!   them from the async side in batches) and encodes each row as CSV into pieces of a part
//!   ([`encode`]);
//! - one deflating thread per core compresses the pieces, each primed with the bytes before it,
//!   so a part is still one deflate stream ([`deflate`]);
//! - the zip thread writes the pieces in order into the parts' entries, and says how much of the
//!   file is final so its upload can go on at the same time ([`writer`], [`stable`]).
//!
//! Any stage stopping (an error, a cancellation) closes its channels, which stops the others:
//! every thread lives in one scope that the pipeline leaves only when all have ended, so no
//! thread outlives the export, and the file is removed after any failure.

use std::path::{Path, PathBuf};

use ccfs_protocol::Record;
use futures::stream::{BoxStream, StreamExt};
use jiff::{civil, tz::TimeZone};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::ExportError;
use crate::blobs::Stable;
use crate::files::remove_quietly;
use crate::store::convert::floor_second;
use crate::store::{BlockingReader, RowSink, RowSource, Stop, StoreResult};
use deflate::Method;
use encode::{Encoder, Stopped};

mod deflate;
mod encode;
mod stable;
#[cfg(test)]
mod tests;
mod writer;

/// Records per batch sent from the async side when the store streams records: large enough that
/// the channel costs nothing per record, small enough that a batch is a few hundred kilobytes.
const BATCH: usize = 1024;
/// Batches in flight between the async side and the reading thread.
const CHANNEL_BATCHES: usize = 4;
/// Most deflating threads of one export, however many cores there are.
const MAX_DEFLATE_THREADS: usize = 8;

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

/// What the async side sends to the reading thread. The explicit `End` lets it tell a complete
/// export from a channel closed because the feeding side gave up.
enum Feed {
    Batch(Vec<Record>),
    End,
}

/// How the reading thread gets the rows.
enum Reader {
    /// The store's own blocking reader.
    Direct(BlockingReader),
    /// Batches of records from the async side.
    Fed(mpsc::Receiver<Feed>),
}

impl From<BoxStream<'static, StoreResult<Record>>> for RowSource {
    fn from(records: BoxStream<'static, StoreResult<Record>>) -> Self {
        RowSource::Stream(records)
    }
}

/// Writes the rows of `source` as a zip of CSV parts to `path` (created or truncated) and syncs
/// it to disk. On an error the partial file is removed.
pub async fn build_zip(
    source: impl Into<RowSource>,
    settings: &ZipSettings,
    path: &Path,
) -> Result<Built, ExportError> {
    build_zip_until(source, settings, path, &CancellationToken::new(), None).await
}

/// As [`build_zip`], stopping with [`ExportError::Cancelled`] as soon as `cancel` fires (the
/// job runner's shutdown and lost-lease signal), and telling `stable` how much of the file is
/// final as it is written, so that its upload can go on at the same time.
pub async fn build_zip_until(
    source: impl Into<RowSource>,
    settings: &ZipSettings,
    path: &Path,
    cancel: &CancellationToken,
    stable: Option<watch::Sender<Stable>>,
) -> Result<Built, ExportError> {
    let (reader, fed_by) = match source.into() {
        RowSource::Blocking(read) => (Reader::Direct(read), None),
        RowSource::Stream(records) => {
            let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
            (Reader::Fed(rx), Some((records, tx)))
        }
    };
    let pipeline_settings = settings.clone();
    let pipeline_path: PathBuf = path.to_owned();
    let pipeline_cancel = cancel.clone();
    // Fires when the zip thread ends, whatever the reason: a feed waiting on a slow store then
    // stops at once instead of at its next batch (the reading thread that holds the batches'
    // receiver may itself be waiting for that batch).
    let zip_ended = CancellationToken::new();
    let pipeline_zip_ended = zip_ended.clone();
    let pipeline = tokio::task::spawn_blocking(move || {
        run(
            reader,
            &pipeline_settings,
            &pipeline_path,
            stable,
            pipeline_cancel,
            pipeline_zip_ended,
        )
    });

    let fed = match fed_by {
        None => Ok(()),
        Some((records, tx)) => {
            // Cancellation and the pipeline's end are watched around the whole feed rather than
            // per record: the select is polled only when the feed waits, so the hot loop pays
            // nothing for them. The watch on the pipeline matters when the store is slow: a
            // pipeline that failed at once is noticed without waiting for a full batch.
            let watcher = tx.clone();
            let fed = tokio::select! {
                biased;
                () = cancel.cancelled() => Err(FeedStop::Source(ExportError::Cancelled)),
                () = watcher.closed() => Err(FeedStop::WriterGone),
                () = zip_ended.cancelled() => Err(FeedStop::WriterGone),
                r = feed(records, tx) => r,
            };
            // The last sender: once it is gone, a reading thread still waiting for batches sees
            // the channel close and stops, so awaiting the pipeline below cannot hang.
            drop(watcher);
            fed
        }
    };
    // Always wait for the pipeline: it holds the file open, and it must be gone before the
    // caller deletes or uploads that file.
    let written = match pipeline.await {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(ExportError::Writer("the zip writer panicked".into())),
        Err(e) => Err(ExportError::Writer(e.to_string())),
    };
    let result = match fed {
        // The feeding side failed first: that is the cause; the pipeline only saw it stop.
        Err(FeedStop::Source(e)) => Err(e),
        Ok(()) | Err(FeedStop::WriterGone) => written,
    };
    if result.is_err() {
        remove_quietly(path);
    }
    result
}

/// The blocking side: the deflating threads and the zip thread in one scope, the reading and
/// encoding on this thread.
fn run(
    reader: Reader,
    s: &ZipSettings,
    path: &Path,
    stable: Option<watch::Sender<Stable>>,
    cancel: CancellationToken,
    zip_ended: CancellationToken,
) -> Result<Built, ExportError> {
    let method = match s.compression_level {
        0 => Method::Stored,
        level => Method::Deflate(level.min(9)),
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_DEFLATE_THREADS);
    std::thread::scope(|scope| {
        let (pieces, results) = deflate::spawn(scope, threads, method)?;
        let zip = std::thread::Builder::new()
            .name("ccfs-zip".into())
            .spawn_scoped(scope, move || {
                let _ended = zip_ended.drop_guard();
                writer::write_zip(results, s, method, path, stable)
            })?;
        // Ends (and drops the encoder, which stops the deflating threads) before the zip thread
        // is joined: a zip thread waiting for pieces then sees them stop.
        let encoded = encode(reader, s, pieces, cancel);
        let written = zip
            .join()
            .unwrap_or_else(|_| Err(ExportError::Writer("the zip writer panicked".into())));
        match (encoded, written) {
            (Ok((record_count, file_count)), Ok(_)) => Ok(Built {
                record_count,
                file_count,
            }),
            // The zip thread failed, and the rest stopped because of it (the feed then ends
            // without its end, which the reading side sees as aborted).
            (Ok(_) | Err(Stopped::WriterGone | Stopped::Failed(ExportError::Aborted)), Err(e)) => {
                Err(e)
            }
            // The reading side's failure is the cause; the zip thread only saw the pieces stop.
            (Err(Stopped::Failed(e)), _) => Err(e),
            (Err(Stopped::WriterGone), Ok(_)) => Err(ExportError::Aborted),
        }
    })
}

/// Reads every row into the encoder and ends it.
fn encode(
    reader: Reader,
    s: &ZipSettings,
    pieces: deflate::Pieces,
    cancel: CancellationToken,
) -> Result<(u64, u32), Stopped> {
    let mut encoder = Encoder::new(s, pieces, cancel);
    match reader {
        Reader::Direct(read) => read(&mut encoder).map_err(|e| Stopped::Failed(e.into()))?,
        Reader::Fed(mut rx) => loop {
            match rx.blocking_recv() {
                Some(Feed::Batch(batch)) => {
                    for r in &batch {
                        let texts = r.texts().map(str::as_bytes);
                        let (begin, end) = (floor_second(r.begin_time), floor_second(r.end_time));
                        if encoder.row(texts, begin, end) == Err(Stop) {
                            // The encoder knows why; `finish` says it.
                            return encoder.finish();
                        }
                    }
                }
                Some(Feed::End) => break,
                // The feeding side stopped without finishing (its error is the cause).
                None => return Err(Stopped::Failed(ExportError::Aborted)),
            }
        },
    }
    encoder.finish()
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

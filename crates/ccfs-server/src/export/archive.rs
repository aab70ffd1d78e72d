//! The export pipeline, independent of jobs: a stream of records in, a zip of CSV parts out.
//!
//! Two sides work at once. The async side pulls records from the store's stream and packs them
//! into batches; a blocking thread turns the batches into CSV rows, deflates them and writes the
//! zip. They meet in a bounded channel of a few batches, so memory stays at a few thousand
//! records whatever the export size, and a slow side simply makes the other wait. Either side
//! stopping (an error, a cancellation) closes the channel, which stops the other: the writer
//! thread always ends and is always awaited, so no thread outlives the export.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use ccfs_protocol::record::{csv_writer, COLUMNS};
use ccfs_protocol::{CsvPartName, Record};
use futures::stream::{BoxStream, StreamExt};
use jiff::{civil, tz::TimeZone};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::ExportError;
use crate::store::StoreResult;

/// Records per batch sent to the writer thread: large enough that the channel costs nothing
/// per record, small enough that a batch is a few hundred kilobytes.
pub const BATCH: usize = 1024;
/// Batches in flight between the two sides. Bounds memory; a few let the store run ahead of
/// the compressor across short stalls.
const CHANNEL_BATCHES: usize = 4;
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
    build_zip_until(records, settings, path, &CancellationToken::new()).await
}

/// As [`build_zip`], stopping with [`ExportError::Cancelled`] as soon as `cancel` fires (the
/// job runner's shutdown and lost-lease signal).
pub async fn build_zip_until(
    records: BoxStream<'static, StoreResult<Record>>,
    settings: &ZipSettings,
    path: &Path,
    cancel: &CancellationToken,
) -> Result<Built, ExportError> {
    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    let writer_settings = settings.clone();
    let writer_path: PathBuf = path.to_owned();
    let writer = tokio::task::spawn_blocking(move || write_zip(rx, &writer_settings, &writer_path));

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
        crate::files::remove_quietly(path);
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

/// The writer thread: CSV rows into deflated zip entries, a new part every `rows_per_file`.
fn write_zip(
    mut rx: mpsc::Receiver<Feed>,
    s: &ZipSettings,
    path: &Path,
) -> Result<Built, ExportError> {
    let file = File::create(path)?;
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
    let file = buffered.into_inner().map_err(|e| e.into_error())?;
    // The file is about to be uploaded and the job marked done: make sure it is on disk.
    file.sync_all()?;
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
    use std::io::Read;

    use ccfs_protocol::record::{csv_reader, is_header_row, RawRecord};
    use futures::stream;
    use jiff::Timestamp;

    use super::*;
    use crate::store::StoreError;

    const DEV: &str = "0123456789abcdef0123456789abcdef";

    /// A realistic record number `i`, one second apart from the previous.
    fn record(i: u64) -> Record {
        let begin = Timestamp::from_second(1_714_521_600 + i as i64).unwrap();
        let end = Timestamp::from_second(1_714_521_600 + i as i64 + (i % 300) as i64).unwrap();
        Record::from_texts(
            [
                format!("{i:032x}"),
                DEV.into(),
                format!("acc{}", i % 7),
                format!("{}", 1000 + i % 500),
                if i % 3 == 0 {
                    String::new()
                } else {
                    "12".into()
                },
                format!("{}", i % 40),
                format!("1714521600-{i}"),
                format!("{}", [0, 1, 2, 3, 4, 26, 27, 38][(i % 8) as usize]),
                "-1".into(),
                format!("{}", i % 256),
                "5".into(),
                "1".into(),
                "1".into(),
                "4".into(),
                format!("10.0.{}.{}", i % 256, (i / 256) % 256),
                "0".into(),
                "1".into(),
                format!("{}", i / 100),
                if i % 5 == 0 {
                    String::new()
                } else {
                    format!("{}", i % 9)
                },
            ],
            begin,
            end,
        )
    }

    fn settings(rows_per_file: u64, tz: &str) -> ZipSettings {
        ZipSettings {
            rows_per_file,
            compression_level: 6,
            csv_header: false,
            timezone: TimeZone::get(tz).unwrap(),
            stamp: civil::date(2024, 5, 1).at(13, 4, 5, 67_000_000),
        }
    }

    fn ok_stream(records: Vec<Record>) -> BoxStream<'static, StoreResult<Record>> {
        stream::iter(records.into_iter().map(Ok)).boxed()
    }

    /// Each entry of a zip: its name and its text.
    fn read_zip(path: &Path) -> Vec<(String, String)> {
        let mut archive = zip::ZipArchive::new(File::open(path).unwrap()).unwrap();
        (0..archive.len())
            .map(|i| {
                let mut entry = archive.by_index(i).unwrap();
                assert_eq!(entry.compression(), CompressionMethod::Deflated);
                let mut text = String::new();
                entry.read_to_string(&mut text).unwrap();
                (entry.name().unwrap().into_owned(), text)
            })
            .collect()
    }

    /// Parses a part back into records (skipping a header row, which must come first).
    fn parse_part(text: &str, tz: &TimeZone) -> (bool, Vec<Record>) {
        let mut header = false;
        let mut out = Vec::new();
        for (n, row) in csv_reader(text.as_bytes()).records().enumerate() {
            let row = row.unwrap();
            if is_header_row(&row) {
                assert_eq!(n, 0, "a header row that is not first");
                header = true;
                continue;
            }
            out.push(RawRecord::from_csv(&row).unwrap().validate(tz).unwrap());
        }
        (header, out)
    }

    #[tokio::test]
    async fn parts_split_at_rows_per_file_and_round_trip_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.zip.part");
        let s = settings(100_000, "UTC");
        let n = 250_001u64;
        let built = build_zip(
            stream::iter((0..n).map(|i| Ok(record(i)))).boxed(),
            &s,
            &path,
        )
        .await
        .unwrap();
        assert_eq!(
            built,
            Built {
                record_count: n,
                file_count: 3
            }
        );
        let parts = read_zip(&path);
        assert_eq!(parts.len(), 3);
        let mut next = 0u64;
        for ((name, text), (seq, rows)) in
            parts
                .iter()
                .zip([(1u32, 100_000usize), (2, 100_000), (3, 50_001)])
        {
            let parsed = CsvPartName::parse(name).unwrap();
            assert_eq!(parsed.seq(), seq);
            assert!(name.starts_with("20240501130405067"), "{name}");
            assert!(
                name.ends_with(&format!("_agentOprInfo_{seq}.csv")),
                "{name}"
            );
            let (header, records) = parse_part(text, &s.timezone);
            assert!(!header);
            assert!(!text.starts_with("id,"));
            assert_eq!(records.len(), rows);
            for r in records {
                assert_eq!(r, record(next));
                next += 1;
            }
        }
        assert_eq!(next, n);
        // One random number per export: the parts differ only in their sequence number.
        assert_eq!(parts[0].0[..20], parts[2].0[..20]);
    }

    #[tokio::test]
    async fn an_empty_export_holds_one_empty_part() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.zip.part");
        let built = build_zip(ok_stream(vec![]), &settings(100_000, "UTC"), &path)
            .await
            .unwrap();
        assert_eq!(
            built,
            Built {
                record_count: 0,
                file_count: 1
            }
        );
        let parts = read_zip(&path);
        assert_eq!(parts.len(), 1);
        assert!(parts[0].0.ends_with("_agentOprInfo_1.csv"));
        assert_eq!(parts[0].1, "");
    }

    #[tokio::test]
    async fn header_rows_start_every_part() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.zip.part");
        let s = ZipSettings {
            csv_header: true,
            ..settings(2, "UTC")
        };
        let built = build_zip(ok_stream((0..5).map(record).collect()), &s, &path)
            .await
            .unwrap();
        assert_eq!(
            built,
            Built {
                record_count: 5,
                file_count: 3
            }
        );
        let header = COLUMNS.iter().map(|c| c.name).collect::<Vec<_>>().join(",") + "\n";
        let mut all = Vec::new();
        for (_, text) in read_zip(&path) {
            assert!(text.starts_with(&header), "{text}");
            let (had_header, records) = parse_part(&text, &s.timezone);
            assert!(had_header);
            all.extend(records);
        }
        assert_eq!(all, (0..5).map(record).collect::<Vec<_>>());

        // An empty export with a header holds the header alone.
        let built = build_zip(ok_stream(vec![]), &s, &path).await.unwrap();
        assert_eq!(built.file_count, 1);
        assert_eq!(read_zip(&path)[0].1, header);
    }

    #[tokio::test]
    async fn awkward_values_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("awkward.zip.part");
        let mut a = record(1);
        a.account_id = "acc, \"quoted\"".into();
        a.call_id = "call\n1\r\n2".into();
        a.phone_no = "Zoë 电话 ☎".into();
        a.op_cause = "\"".into();
        a.service_no = String::new();
        a.skill_info_sn = String::new();
        a.location_id = " lead and trail ".into();
        let mut b = record(2);
        b.agent_type = "'=1+2".into();
        b.skill_id = ",".into();
        let mut c = record(3);
        // Every optional column empty: the row ends in a run of commas.
        c.account_id.clear();
        for f in [
            &mut c.service_no,
            &mut c.skill_id,
            &mut c.call_id,
            &mut c.op_object,
            &mut c.op_cause,
            &mut c.media_type,
            &mut c.vdn_id,
            &mut c.cc_id,
            &mut c.agent_type,
            &mut c.phone_no,
            &mut c.call_in_out,
            &mut c.location_id,
            &mut c.logon_sn,
            &mut c.skill_info_sn,
        ] {
            f.clear();
        }
        let input = vec![a, b, c];
        let s = settings(100_000, "Asia/Shanghai");
        build_zip(ok_stream(input.clone()), &s, &path)
            .await
            .unwrap();
        let parts = read_zip(&path);
        assert_eq!(parts.len(), 1);
        assert!(std::str::from_utf8(parts[0].1.as_bytes()).is_ok());
        assert!(!parts[0].1.starts_with('\u{feff}'), "no BOM");
        assert!(parts[0].1.contains("\"call\n1\r\n2\""));
        assert!(parts[0].1.ends_with(",3,,,,,,,,,,,\n"), "{}", parts[0].1);
        let (_, back) = parse_part(&parts[0].1, &s.timezone);
        assert_eq!(back, input);
    }

    #[tokio::test]
    async fn times_are_shown_in_the_developer_zone_across_dst() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dst.zip.part");
        let s = settings(100_000, "Europe/Berlin");
        let at = |utc: &str| utc.parse::<Timestamp>().unwrap();
        let mut winter = record(1);
        winter.begin_time = at("2024-03-31T00:59:59Z");
        winter.end_time = at("2024-03-31T01:00:00Z");
        let mut fold = record(2);
        fold.begin_time = at("2024-10-27T00:30:00Z");
        fold.end_time = at("2024-10-27T01:30:00Z");
        build_zip(ok_stream(vec![winter.clone(), fold.clone()]), &s, &path)
            .await
            .unwrap();
        let text = &read_zip(&path)[0].1;
        let rows: Vec<_> = csv_reader(text.as_bytes())
            .records()
            .map(|r| r.unwrap())
            .collect();
        // 00:59:59Z is 01:59:59 CET; one second later the clocks jump to 03:00 CEST.
        assert_eq!(&rows[0][7], "2024-03-31 01:59:59");
        assert_eq!(&rows[0][8], "2024-03-31 03:00:00");
        // 00:30Z is 02:30 CEST; 01:30Z is 02:30 CET, the repeated hour.
        assert_eq!(&rows[1][7], "2024-10-27 02:30:00");
        assert_eq!(&rows[1][8], "2024-10-27 02:30:00");
        let (_, back) = parse_part(text, &s.timezone);
        assert_eq!(back[0], winter);
        // The repeated local hour reads back as its first occurrence (the CSV has no offset).
        assert_eq!(back[1].begin_time, fold.begin_time);
    }

    #[tokio::test]
    async fn a_stream_error_mid_way_fails_and_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("err.zip.part");
        let items = (0..5000u64)
            .map(|i| Ok(record(i)))
            .chain(std::iter::once(Err(StoreError::Corrupt("bad time".into()))))
            .chain((5000..6000u64).map(|i| Ok(record(i))));
        let err = build_zip(stream::iter(items).boxed(), &settings(1000, "UTC"), &path)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ExportError::Store(StoreError::Corrupt(_))),
            "{err}"
        );
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_writer_error_stops_the_feed() {
        // The work file cannot be created: the writer fails at once, and the feed must stop
        // whether the stream is endless (it would block on a full channel) or stalled (it
        // would wait for a batch that never fills).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("x.zip.part");
        let endless = stream::iter((0u64..).map(|i| Ok(record(i)))).boxed();
        let err = build_zip(endless, &settings(1000, "UTC"), &path)
            .await
            .unwrap_err();
        assert!(matches!(err, ExportError::Io(_)), "{err}");
        let stalled = stream::iter((0..10u64).map(|i| Ok(record(i))))
            .chain(stream::pending())
            .boxed();
        let err = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            build_zip(stalled, &settings(1000, "UTC"), &path),
        )
        .await
        .expect("no hang")
        .unwrap_err();
        assert!(matches!(err, ExportError::Io(_)), "{err}");
    }

    #[tokio::test]
    async fn cancellation_stops_a_stalled_export() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.zip.part");
        let stalled = stream::iter((0..10u64).map(|i| Ok(record(i))))
            .chain(stream::pending())
            .boxed();
        let cancel = CancellationToken::new();
        let s = settings(1000, "UTC");
        let run = build_zip_until(stalled, &s, &path, &cancel);
        let canceller = async {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            cancel.cancel();
        };
        let (r, ()) = tokio::join!(run, canceller);
        assert!(matches!(r, Err(ExportError::Cancelled)));
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn level_zero_stores_and_stamp_dates_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stored.zip.part");
        let s = ZipSettings {
            compression_level: 0,
            ..settings(10, "UTC")
        };
        build_zip(ok_stream((0..3).map(record).collect()), &s, &path)
            .await
            .unwrap();
        let mut archive = zip::ZipArchive::new(File::open(&path).unwrap()).unwrap();
        let entry = archive.by_index(0).unwrap();
        assert_eq!(entry.compression(), CompressionMethod::Stored);
        let t = entry.last_modified().unwrap();
        assert_eq!(
            (
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ),
            (2024, 5, 1, 13, 4, 4)
        );
    }

    #[tokio::test]
    async fn more_than_65535_parts_make_a_zip64_archive() {
        // The entry count of a plain zip is 16 bits; past it the zip crate writes the zip64 end
        // records on its own (as it does past 4 GiB of offsets), and readers find every part.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("many.zip.part");
        let s = ZipSettings {
            compression_level: 1,
            ..settings(1, "UTC")
        };
        let n = 70_000u64;
        let built = build_zip(
            stream::iter((0..n).map(|i| Ok(record(i)))).boxed(),
            &s,
            &path,
        )
        .await
        .unwrap();
        assert_eq!(
            built,
            Built {
                record_count: n,
                file_count: 70_000
            }
        );
        let mut archive = zip::ZipArchive::new(File::open(&path).unwrap()).unwrap();
        assert_eq!(archive.len(), 70_000);
        let mut last = archive.by_index(69_999).unwrap();
        assert!(last.name().unwrap().ends_with("_agentOprInfo_70000.csv"));
        let mut text = String::new();
        last.read_to_string(&mut text).unwrap();
        let (_, back) = parse_part(&text, &s.timezone);
        assert_eq!(back, vec![record(n - 1)]);
    }

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

//! The pipeline end to end: records in through [`build_zip`], a zip read back out.

use std::fs::File;
use std::io::Read;

use ccfs_protocol::record::{csv_reader, is_header_row, RawRecord, COLUMNS};
use ccfs_protocol::CsvPartName;
use futures::stream;
use jiff::Timestamp;
use zip::CompressionMethod;

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
    let run = build_zip_until(stalled, &s, &path, &cancel, None);
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

//! The rows of an import file, CSV and JSONL: any bytes give records or errors that name a
//! field, never a panic, and a record that validates writes a CSV row that reads back as the
//! same record.
#![no_main]

use ccfs_protocol::record::{csv_reader, is_header_row, RawRecord};
use ccfs_protocol::Record;
use jiff::tz::TimeZone;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tz = TimeZone::UTC;
    let mut raws = Vec::new();
    let mut reader = csv_reader(data);
    let mut row = csv::StringRecord::new();
    let mut first = true;
    while let Ok(true) = reader.read_record(&mut row) {
        if std::mem::take(&mut first) && is_header_row(&row) {
            continue;
        }
        if let Ok(raw) = RawRecord::from_csv(&row) {
            raws.push(raw);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        for line in text.lines() {
            if let Ok(raw) = RawRecord::from_json_line(line.trim()) {
                raws.push(raw);
            }
        }
    }
    for raw in raws {
        let Ok(record) = raw.validate(&tz) else {
            continue;
        };
        // The exported row, imported again, exports as the same bytes.
        let row = csv_row(&record, &tz);
        let mut back = csv_reader(row.as_slice());
        let mut read = csv::StringRecord::new();
        assert!(back.read_record(&mut read).expect("own CSV reads back"));
        let again = RawRecord::from_csv(&read)
            .expect("21 columns")
            .validate(&tz)
            .expect("an exported row validates");
        assert_eq!(csv_row(&again, &tz), row);
    }
});

fn csv_row(record: &Record, tz: &TimeZone) -> Vec<u8> {
    let mut out = Vec::new();
    record.push_csv(&mut out, tz);
    out
}

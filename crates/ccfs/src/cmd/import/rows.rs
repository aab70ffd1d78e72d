//! Reading an import file row by row, streaming, with the line each row starts on.
//!
//! CSV is the export layout (21 positional columns, RFC 4180 quoting, so a field may span
//! lines; an optional header row first). JSONL is one JSON object per line keyed by the column
//! names; blank lines are skipped. Only one row is held at a time, whatever the file size, and
//! it is read into the caller's record, whose memory is reused from row to row.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use ccfs_protocol::record::{csv_reader, is_header_row, RawRecord};

use crate::cli::Format;

/// A row that cannot be read: where it starts and why, e.g. `record: …` or `agent_id: …`.
#[derive(Debug)]
pub struct RowError {
    pub line: u64,
    pub message: String,
}

/// The rows of one file.
pub enum Rows {
    Csv {
        reader: csv::Reader<BufReader<File>>,
        row: csv::StringRecord,
        first: bool,
        line: u64,
    },
    Jsonl {
        reader: BufReader<File>,
        buf: Vec<u8>,
        line: u64,
    },
}

impl Rows {
    pub fn open(path: &Path, format: Format) -> io::Result<Self> {
        let file = BufReader::with_capacity(256 * 1024, File::open(path)?);
        Ok(match format {
            Format::Csv => Rows::Csv {
                reader: csv_reader(file),
                row: csv::StringRecord::new(),
                first: true,
                line: 1,
            },
            Format::Jsonl => Rows::Jsonl {
                reader: file,
                buf: Vec::new(),
                line: 0,
            },
        })
    }

    /// Reads the next row into `raw`; returns the line it starts on, `None` at the end of the
    /// file.
    pub fn next_row(&mut self, raw: &mut RawRecord) -> Option<Result<u64, RowError>> {
        match self {
            Rows::Csv {
                reader,
                row,
                first,
                line,
            } => loop {
                match reader.read_record(row) {
                    Ok(false) => return None,
                    Ok(true) => {
                        *line = row.position().map_or(*line, |p| p.line());
                        if std::mem::take(first) && is_header_row(row) {
                            continue;
                        }
                        let at = *line;
                        return Some(raw.read_csv(row).map(|()| at).map_err(|e| RowError {
                            line: at,
                            message: e.explain(),
                        }));
                    }
                    Err(e) => {
                        let at = e.position().map_or(*line, |p| p.line());
                        let message = match e.kind() {
                            csv::ErrorKind::Utf8 { .. } => "record: not valid UTF-8".to_owned(),
                            csv::ErrorKind::Io(io) => format!("cannot read: {io}"),
                            _ => format!("record: {e}"),
                        };
                        return Some(Err(RowError { line: at, message }));
                    }
                }
            },
            Rows::Jsonl { reader, buf, line } => loop {
                buf.clear();
                match reader.read_until(b'\n', buf) {
                    Ok(0) => return None,
                    Ok(_) => {}
                    Err(e) => {
                        return Some(Err(RowError {
                            line: *line + 1,
                            message: format!("cannot read: {e}"),
                        }))
                    }
                }
                *line += 1;
                let at = *line;
                let bytes = match (at, buf.strip_prefix(b"\xef\xbb\xbf")) {
                    (1, Some(rest)) => rest,
                    _ => buf.as_slice(),
                };
                let Ok(text) = std::str::from_utf8(bytes) else {
                    return Some(Err(RowError {
                        line: at,
                        message: "record: not valid UTF-8".into(),
                    }));
                };
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                return Some(match RawRecord::from_json_line(text) {
                    Ok(read) => {
                        *raw = read;
                        Ok(at)
                    }
                    Err(e) => Err(RowError {
                        line: at,
                        message: e.to_string(),
                    }),
                });
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(format: Format, text: &str) -> Vec<Result<(u64, RawRecord), RowError>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f");
        std::fs::write(&path, text).expect("write");
        let mut rows = Rows::open(&path, format).expect("open");
        // One record for every row, as the import reads them.
        let mut raw = RawRecord::default();
        std::iter::from_fn(|| {
            rows.next_row(&mut raw)
                .map(|r| r.map(|line| (line, raw.clone())))
        })
        .collect()
    }

    const ROW: &str = "r1,dev1,,1001,,,,2024-05-01 10:00:00,2024-05-01 10:05:00,4,,,,,,,,,,,";

    #[test]
    fn csv_lines_count_from_where_a_record_starts() {
        let header = ccfs_protocol::record::COLUMNS.map(|c| c.name).join(",");
        let text = format!("{header}\n{ROW}\n\"r\n2\",dev1,,1001,,,,2024-05-01 10:00:00,2024-05-01 10:05:00,4,,,,,,,,,,,\nbad,row\n");
        let got = rows(Format::Csv, &text);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].as_ref().map(|r| r.0).ok(), Some(2));
        assert_eq!(
            got[1].as_ref().map(|r| r.1 .0[0].as_str()).ok(),
            Some("r\n2")
        );
        assert_eq!(got[1].as_ref().map(|r| r.0).ok(), Some(3));
        let err = got[2].as_ref().err().map(|e| (e.line, e.message.as_str()));
        assert_eq!(
            err,
            Some((5, "record: the record does not have 21 columns"))
        );
    }

    #[test]
    fn jsonl_skips_blank_lines_and_names_bad_ones() {
        let text = "\u{feff}{\"id\":\"a\",\"developer_id\":\"d\",\"agent_id\":1,\"begin_time\":\"x\",\"end_time\":\"y\",\"op_type\":\"4\"}\n\n  \r\n[1]\n{\"id\":\n";
        let got = rows(Format::Jsonl, text);
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[0].as_ref().map(|r| (r.0, r.1 .0[3].as_str())).ok(),
            Some((1, "1"))
        );
        assert_eq!(
            got[1].as_ref().err().map(|e| (e.line, e.message.as_str())),
            Some((4, "record: not a JSON object"))
        );
        assert_eq!(got[2].as_ref().err().map(|e| e.line), Some(5));
    }
}

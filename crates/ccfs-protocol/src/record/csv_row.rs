//! The export's CSV encoding, appended straight to a byte buffer: comma-separated, a field
//! quoted only when it holds a comma, a quote or a line break (its quotes then doubled), `\n`
//! at the end of each row. Byte for byte what the `csv` crate writes with
//! `QuoteStyle::Necessary` and a `\n` terminator (a test holds the two side by side), without
//! its intermediate buffer and per-field state machine: an export spends a noticeable share of
//! its reading thread here, once for each of its 21 million fields per million records.

use jiff::{tz::TimeZone, Timestamp};

use super::COLUMNS;
use crate::time::{to_local, write_local};

/// Appends one export row: a record's 19 texts (in [`super::TEXT_COLUMNS`] order) and its
/// times, shown in `tz`, in the 21-column order of [`COLUMNS`].
pub fn push_csv_row(
    out: &mut Vec<u8>,
    t: [&[u8]; 19],
    begin_time: Timestamp,
    end_time: Timestamp,
    tz: &TimeZone,
) {
    let mut begin = [0u8; 19];
    let mut end = [0u8; 19];
    write_local(to_local(begin_time, tz), &mut begin);
    write_local(to_local(end_time, tz), &mut end);
    let row: [&[u8]; 21] = [
        t[0], t[1], t[2], t[3], t[4], t[5], t[6], &begin, &end, t[7], t[8], t[9], t[10], t[11],
        t[12], t[13], t[14], t[15], t[16], t[17], t[18],
    ];
    push_fields(out, row);
}

/// Appends the header row: the 21 column names.
pub fn push_csv_header(out: &mut Vec<u8>) {
    push_fields(out, COLUMNS.map(|c| c.name.as_bytes()));
}

fn push_fields(out: &mut Vec<u8>, fields: [&[u8]; 21]) {
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_field(out, field);
    }
    out.push(b'\n');
}

/// Appends one field, quoted if it must be. `\r` is quoted too although rows end with `\n`
/// alone: readers take a bare `\r` as a line end.
fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    // A fold rather than `any`: no branch per byte, and most fields are short and plain.
    let special = field.iter().fold(false, |found, &b| {
        found | (b == b',') | (b == b'"') | (b == b'\n') | (b == b'\r')
    });
    if !special {
        out.extend_from_slice(field);
        return;
    }
    out.push(b'"');
    for part in field.split_inclusive(|&b| b == b'"') {
        out.extend_from_slice(part);
        if part.last() == Some(&b'"') {
            out.push(b'"');
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the `csv` crate writes for the same fields, with the settings the encoder imitates.
    fn by_csv_crate(fields: &[&[u8]]) -> Vec<u8> {
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .terminator(csv::Terminator::Any(b'\n'))
            .quote_style(csv::QuoteStyle::Necessary)
            .from_writer(Vec::new());
        w.write_record(fields).expect("write");
        w.into_inner().expect("flush")
    }

    #[test]
    fn fields_are_encoded_as_the_csv_crate_encodes_them() {
        let awkward: [&[u8]; 16] = [
            b"",
            b"plain",
            b"a,b",
            b"\"",
            b"\"\"",
            b"say \"hi\"",
            b"\"edge",
            b"edge\"",
            b"line\nbreak",
            b"cr\rhere",
            b"\r\n",
            b",",
            b" spaced ",
            b"'single'",
            "\u{4e2d}\u{6587},\"x\"".as_bytes(),
            b"tab\there",
        ];
        for (n, field) in awkward.iter().enumerate() {
            // Each awkward value in every position, among plain and empty neighbours.
            for at in 0..21 {
                let mut fields: [&[u8]; 21] = [b"x"; 21];
                fields[(at + 5) % 21] = b"";
                fields[at] = field;
                let mut ours = Vec::new();
                push_fields(&mut ours, fields);
                assert_eq!(
                    String::from_utf8_lossy(&ours),
                    String::from_utf8_lossy(&by_csv_crate(&fields)),
                    "value {n} at column {at}"
                );
            }
        }
    }

    #[test]
    fn rows_show_times_in_the_zone_and_the_header_names_the_columns() {
        let tz = TimeZone::get("Asia/Shanghai").expect("zone");
        let texts: [&[u8]; 19] = std::array::from_fn(|i| if i == 4 { &b"a,b"[..] } else { b"v" });
        let begin = Timestamp::from_second(1_714_557_600).expect("time");
        let end = Timestamp::from_second(1_714_557_661).expect("time");
        let mut out = Vec::new();
        push_csv_row(&mut out, texts, begin, end, &tz);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "v,v,v,v,\"a,b\",v,v,2024-05-01 18:00:00,2024-05-01 18:01:01,\
             v,v,v,v,v,v,v,v,v,v,v,v\n"
        );
        let mut header = Vec::new();
        push_csv_header(&mut header);
        let names = COLUMNS.map(|c| c.name).join(",") + "\n";
        assert_eq!(String::from_utf8_lossy(&header), names);
    }
}

//! The agent operation record: the 21 positional columns of SPEC section 5, their validation,
//! and their CSV form. The CSV written by an export reads back through [`RawRecord::from_csv`]
//! unchanged, so an export re-imports as it is.

use std::io;

use jiff::{tz::TimeZone, Timestamp};
use serde_json::{Map, Value};

use crate::codes::ResultCode;
use crate::ids::AppId;
use crate::time::{parse_local, to_instant, to_local};

mod csv_row;

pub use csv_row::{push_csv_header, push_csv_row};

/// One column of the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// The column's name (also the JSON key on import).
    pub name: &'static str,
    /// Maximum length in characters (times: 19 local or an RFC 3339 string on import).
    pub max_len: usize,
    /// Whether the column must hold a value.
    pub required: bool,
}

const fn col(name: &'static str, max_len: usize, required: bool) -> Column {
    Column {
        name,
        max_len,
        required,
    }
}

/// The 21 columns, in export order.
pub const COLUMNS: [Column; 21] = [
    col("id", 32, true),
    col("developer_id", 64, true),
    col("account_id", 64, false),
    col("agent_id", 32, true),
    col("service_no", 25, false),
    col("skill_id", 25, false),
    col("call_id", 25, false),
    col("begin_time", 35, true),
    col("end_time", 35, true),
    col("op_type", 20, true),
    col("op_object", 20, false),
    col("op_cause", 20, false),
    col("media_type", 20, false),
    col("vdn_id", 20, false),
    col("cc_id", 20, false),
    col("agent_type", 20, false),
    col("phone_no", 32, false),
    col("callIn_out", 20, false),
    col("location_id", 20, false),
    col("logon_sn", 25, false),
    col("skillInfo_sn", 25, false),
];

/// Longest JSON object of a record whose values are within [`COLUMNS`]' lengths: every
/// character written as a 6-byte `\uXXXX` escape (longer than its UTF-8, at most 4 bytes), every
/// name plain, no whitespace: `{"id":"…","developer_id":"…",…}`. About 3.9 KB. (A writer that
/// escapes characters outside the Basic Multilingual Plane as surrogate pairs, 12 bytes each,
/// can exceed it; none of the usual JSON writers does so by default.)
pub const MAX_RECORD_JSON_LEN: usize = {
    let mut n = 2; // `{}`
    let mut i = 0;
    while i < COLUMNS.len() {
        // `"name":"value",`
        n += COLUMNS[i].name.len() + 6 * COLUMNS[i].max_len + 6;
        i += 1;
    }
    n
};

/// Index of `begin_time` in [`COLUMNS`].
pub const BEGIN_TIME: usize = 7;
/// Index of `end_time` in [`COLUMNS`].
pub const END_TIME: usize = 8;

/// Names of the 19 text columns (all but the two times), in column order.
pub const TEXT_COLUMNS: [&str; 19] = [
    "id",
    "developer_id",
    "account_id",
    "agent_id",
    "service_no",
    "skill_id",
    "call_id",
    "op_type",
    "op_object",
    "op_cause",
    "media_type",
    "vdn_id",
    "cc_id",
    "agent_type",
    "phone_no",
    "callIn_out",
    "location_id",
    "logon_sn",
    "skillInfo_sn",
];

/// A validated agent operation record. Times are instants; they are shown in the developer's
/// time zone when exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: String,
    pub developer_id: String,
    pub account_id: String,
    pub agent_id: String,
    pub service_no: String,
    pub skill_id: String,
    pub call_id: String,
    pub begin_time: Timestamp,
    pub end_time: Timestamp,
    pub op_type: String,
    pub op_object: String,
    pub op_cause: String,
    pub media_type: String,
    pub vdn_id: String,
    pub cc_id: String,
    pub agent_type: String,
    pub phone_no: String,
    pub call_in_out: String,
    pub location_id: String,
    pub logon_sn: String,
    pub skill_info_sn: String,
}

impl Record {
    /// The 19 text columns, in column order (see [`TEXT_COLUMNS`]).
    pub fn texts(&self) -> [&str; 19] {
        [
            &self.id,
            &self.developer_id,
            &self.account_id,
            &self.agent_id,
            &self.service_no,
            &self.skill_id,
            &self.call_id,
            &self.op_type,
            &self.op_object,
            &self.op_cause,
            &self.media_type,
            &self.vdn_id,
            &self.cc_id,
            &self.agent_type,
            &self.phone_no,
            &self.call_in_out,
            &self.location_id,
            &self.logon_sn,
            &self.skill_info_sn,
        ]
    }

    /// The 19 text columns, in column order, to overwrite in place (see
    /// [`RawRecord::validate_into`]).
    fn texts_mut(&mut self) -> [&mut String; 19] {
        [
            &mut self.id,
            &mut self.developer_id,
            &mut self.account_id,
            &mut self.agent_id,
            &mut self.service_no,
            &mut self.skill_id,
            &mut self.call_id,
            &mut self.op_type,
            &mut self.op_object,
            &mut self.op_cause,
            &mut self.media_type,
            &mut self.vdn_id,
            &mut self.cc_id,
            &mut self.agent_type,
            &mut self.phone_no,
            &mut self.call_in_out,
            &mut self.location_id,
            &mut self.logon_sn,
            &mut self.skill_info_sn,
        ]
    }

    /// Builds a record from its 19 text columns (in [`TEXT_COLUMNS`] order) and its times.
    /// No validation: for values that come from a trusted store.
    pub fn from_texts(t: [String; 19], begin_time: Timestamp, end_time: Timestamp) -> Self {
        let [id, developer_id, account_id, agent_id, service_no, skill_id, call_id, op_type, op_object, op_cause, media_type, vdn_id, cc_id, agent_type, phone_no, call_in_out, location_id, logon_sn, skill_info_sn] =
            t;
        Self {
            id,
            developer_id,
            account_id,
            agent_id,
            service_no,
            skill_id,
            call_id,
            begin_time,
            end_time,
            op_type,
            op_object,
            op_cause,
            media_type,
            vdn_id,
            cc_id,
            agent_type,
            phone_no,
            call_in_out,
            location_id,
            logon_sn,
            skill_info_sn,
        }
    }

    /// Appends the record as one CSV row, times in `tz` (see [`push_csv_row`]).
    pub fn push_csv(&self, out: &mut Vec<u8>, tz: &TimeZone) {
        push_csv_row(
            out,
            self.texts().map(str::as_bytes),
            self.begin_time,
            self.end_time,
            tz,
        );
    }

    /// The record as a JSON object keyed by column names, times in `tz` (the JSONL import form).
    pub fn to_json(&self, tz: &TimeZone) -> Map<String, Value> {
        let mut m = Map::new();
        let t = self.texts();
        let mut ti = t.iter();
        for (i, c) in COLUMNS.iter().enumerate() {
            let v = match i {
                BEGIN_TIME => crate::time::format_local(to_local(self.begin_time, tz)),
                END_TIME => crate::time::format_local(to_local(self.end_time, tz)),
                _ => ti.next().map(|s| (*s).to_owned()).unwrap_or_default(),
            };
            m.insert(c.name.to_owned(), Value::String(v));
        }
        m
    }
}

/// The CSV reader for the export layout (no header row expected; see [`is_header_row`]).
pub fn csv_reader<R: io::Read>(r: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(r)
}

/// Whether a CSV row is the optional header row.
pub fn is_header_row(row: &csv::StringRecord) -> bool {
    row.len() == COLUMNS.len() && row.iter().zip(COLUMNS.iter()).all(|(v, c)| v == c.name)
}

/// A field of a record that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {code}")]
pub struct FieldError {
    /// The column name, or `record` when the record as a whole has the wrong shape.
    pub field: &'static str,
    pub code: ResultCode,
}

impl FieldError {
    fn new(field: &'static str, code: ResultCode) -> Self {
        Self { field, code }
    }

    /// A description for people, e.g. `agent_id: the value is too long (at most 32)`.
    pub fn explain(&self) -> String {
        let max = COLUMNS
            .iter()
            .find(|c| c.name == self.field)
            .map(|c| c.max_len);
        let what = match (self.code, self.field) {
            (ResultCode::Null, _) => "the value is missing".to_owned(),
            (ResultCode::Empty, _) => "the value is empty".to_owned(),
            (ResultCode::TooLong, _) => format!("the value is too long (at most {} characters)", max.unwrap_or(0)),
            (_, "record") => "the record does not have 21 columns".to_owned(),
            (_, "begin_time" | "end_time") => "not a time 'YYYY-MM-DD hh:mm:ss' or RFC 3339 with an offset, or end_time is before begin_time".to_owned(),
            (_, "developer_id") => "not a valid developer id".to_owned(),
            _ => "the value has the wrong format".to_owned(),
        };
        format!("{}: {what}", self.field)
    }
}

/// Why a line of a JSONL import file is not a record; the `Display` text is for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("record: not valid JSON ({0})")]
    Json(String),
    #[error("record: not a JSON object")]
    NotAnObject,
    #[error("{}", .0.explain())]
    Field(FieldError),
}

/// An unvalidated record: the 21 column values as strings, in column order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawRecord(pub [String; 21]);

impl RawRecord {
    /// From a CSV row of the export layout.
    pub fn from_csv(row: &csv::StringRecord) -> Result<Self, FieldError> {
        let mut raw = Self::default();
        raw.read_csv(row)?;
        Ok(raw)
    }

    /// As [`RawRecord::from_csv`], into this record, reusing its strings' memory: a reader
    /// of many rows allocates nothing per row.
    pub fn read_csv(&mut self, row: &csv::StringRecord) -> Result<(), FieldError> {
        if row.len() != COLUMNS.len() {
            return Err(FieldError::new("record", ResultCode::BadFormat));
        }
        for (field, value) in self.0.iter_mut().zip(row.iter()) {
            field.clear();
            field.push_str(value);
        }
        Ok(())
    }

    /// From a JSON object keyed by column names. A missing or null required column is
    /// `0300001`; a missing or null optional one is empty; numbers are taken as their text.
    pub fn from_json(obj: &Map<String, Value>) -> Result<Self, FieldError> {
        let mut fields: [String; 21] = Default::default();
        for (i, c) in COLUMNS.iter().enumerate() {
            fields[i] = match obj.get(c.name) {
                Some(Value::String(s)) => s.clone(),
                other => json_field(c, other)?,
            };
        }
        Ok(Self(fields))
    }

    /// As [`RawRecord::from_json`], taking the object: its strings move into the record
    /// instead of being copied (an import batch has 210,000 of them).
    pub fn from_json_object(mut obj: Map<String, Value>) -> Result<Self, FieldError> {
        let mut fields: [String; 21] = Default::default();
        for (i, c) in COLUMNS.iter().enumerate() {
            fields[i] = match obj.remove(c.name) {
                Some(Value::String(s)) => s,
                other => json_field(c, other.as_ref())?,
            };
        }
        Ok(Self(fields))
    }

    /// From one line of a JSONL import file: a JSON object keyed by column names, as
    /// [`RawRecord::from_json`] reads it. A repeated key is not JSON here (see [`crate::json`]).
    pub fn from_json_line(text: &str) -> Result<Self, LineError> {
        match crate::json::from_str(text) {
            Ok(Value::Object(obj)) => Self::from_json_object(obj).map_err(LineError::Field),
            Ok(_) => Err(LineError::NotAnObject),
            Err(e) => Err(LineError::Json(e.to_string())),
        }
    }

    /// The developer the record belongs to (unvalidated).
    pub fn developer_id(&self) -> &str {
        &self.0[1]
    }

    /// Validates the record; local times are read in `tz`, the developer's time zone.
    pub fn validate(self, tz: &TimeZone) -> Result<Record, FieldError> {
        let (begin, end) = self.check(tz)?;
        let mut texts = self
            .0
            .into_iter()
            .enumerate()
            .filter(|(i, _)| *i != BEGIN_TIME && *i != END_TIME)
            .map(|(_, v)| v);
        let texts: [String; 19] = std::array::from_fn(|_| texts.next().unwrap_or_default());
        Ok(Record::from_texts(texts, begin, end))
    }

    /// As [`RawRecord::validate`], into `out`, reusing its strings' memory; `out` is left
    /// unspecified on an error.
    pub fn validate_into(&self, tz: &TimeZone, out: &mut Record) -> Result<(), FieldError> {
        let (begin, end) = self.check(tz)?;
        let values = self
            .0
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != BEGIN_TIME && *i != END_TIME);
        for (text, (_, value)) in out.texts_mut().into_iter().zip(values) {
            text.clear();
            text.push_str(value);
        }
        out.begin_time = begin;
        out.end_time = end;
        Ok(())
    }

    /// Every check of a record; its times when it passes.
    fn check(&self, tz: &TimeZone) -> Result<(Timestamp, Timestamp), FieldError> {
        for (v, c) in self.0.iter().zip(COLUMNS.iter()) {
            if c.required && v.is_empty() {
                return Err(FieldError::new(c.name, ResultCode::Empty));
            }
        }
        for (v, c) in self.0.iter().zip(COLUMNS.iter()) {
            // A character takes at least one byte: only a longer text needs counting.
            if v.len() > c.max_len && v.chars().count() > c.max_len {
                return Err(FieldError::new(c.name, ResultCode::TooLong));
            }
        }
        if AppId::parse(self.developer_id()).is_none() {
            return Err(FieldError::new("developer_id", ResultCode::BadFormat));
        }
        let time = |i: usize| {
            parse_time(&self.0[i], tz)
                .ok_or(FieldError::new(COLUMNS[i].name, ResultCode::BadFormat))
        };
        let begin = time(BEGIN_TIME)?;
        let end = time(END_TIME)?;
        if end < begin {
            return Err(FieldError::new("end_time", ResultCode::BadFormat));
        }
        Ok((begin, end))
    }
}

/// A column's value from JSON when it is not a string: see [`RawRecord::from_json`].
fn json_field(c: &Column, value: Option<&Value>) -> Result<String, FieldError> {
    match value {
        None | Some(Value::Null) if c.required => Err(FieldError::new(c.name, ResultCode::Null)),
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err(FieldError::new(c.name, ResultCode::BadFormat)),
    }
}

/// A record time: `YYYY-MM-DD hh:mm:ss` in `tz`, or RFC 3339 with an offset. Fractions of a
/// second are dropped: the export shows whole seconds, and re-importing it must give the same
/// record.
pub fn parse_time(s: &str, tz: &TimeZone) -> Option<Timestamp> {
    let ts = match parse_local(s) {
        Some(dt) => to_instant(dt, tz)?,
        None if s.len() > 19 => s.parse::<Timestamp>().ok()?,
        None => return None,
    };
    Timestamp::from_second(ts.as_second() - i64::from(ts.subsec_nanosecond() < 0)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawRecord {
        let mut f: [String; 21] = Default::default();
        for (i, v) in [
            "r1",
            "dev1",
            "acc, \"quoted\"",
            "1001",
            "",
            "7",
            "call\n1",
            "2024-05-01 10:00:00",
            "2024-05-01 10:05:00",
            "4",
            "-1",
            "0",
            "5",
            "1",
            "1",
            "4",
            "Zoë 电话",
            "0",
            "1",
            "77",
            "",
        ]
        .iter()
        .enumerate()
        {
            f[i] = (*v).to_owned();
        }
        RawRecord(f)
    }

    #[test]
    fn csv_round_trip_with_awkward_values() {
        let tz = TimeZone::get("America/New_York").unwrap();
        let rec = raw().validate(&tz).unwrap();
        let mut bytes = Vec::new();
        rec.push_csv(&mut bytes, &tz);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with(
            "r1,dev1,\"acc, \"\"quoted\"\"\",1001,,7,\"call\n1\",2024-05-01 10:00:00,"
        ));
        assert!(text.ends_with(",77,\n"));
        let mut r = csv_reader(bytes.as_slice());
        let row = r.records().next().unwrap().unwrap();
        assert!(!is_header_row(&row));
        let back = RawRecord::from_csv(&row).unwrap().validate(&tz).unwrap();
        assert_eq!(back, rec);
        assert_eq!(rec.begin_time.to_string(), "2024-05-01T14:00:00Z");
    }

    /// Reading and validating into records that held other values gives what the allocating
    /// forms give: no value of the earlier record is left behind.
    #[test]
    fn in_place_forms_match_the_allocating_ones() {
        let tz = TimeZone::get("America/New_York").unwrap();
        let want = raw().validate(&tz).unwrap();
        let mut bytes = Vec::new();
        want.push_csv(&mut bytes, &tz);
        let row = csv_reader(bytes.as_slice())
            .records()
            .next()
            .unwrap()
            .unwrap();
        let mut reused = RawRecord(std::array::from_fn(|i| "x".repeat(i * 3)));
        reused.read_csv(&row).unwrap();
        assert_eq!(reused, RawRecord::from_csv(&row).unwrap());
        let mut out = Record::from_texts(
            std::array::from_fn(|i| "old".repeat(i)),
            Timestamp::UNIX_EPOCH,
            Timestamp::UNIX_EPOCH,
        );
        reused.validate_into(&tz, &mut out).unwrap();
        assert_eq!(out, want);
        reused.0[3] = "9".repeat(33);
        assert_eq!(
            reused.validate_into(&tz, &mut out),
            Err(FieldError::new("agent_id", ResultCode::TooLong))
        );
    }

    #[test]
    fn json_round_trip() {
        let tz = TimeZone::UTC;
        let rec = raw().validate(&tz).unwrap();
        let back = RawRecord::from_json(&rec.to_json(&tz))
            .unwrap()
            .validate(&tz)
            .unwrap();
        assert_eq!(back, rec);
    }

    #[test]
    fn the_longest_record_fits_its_json_bound() {
        let tz = TimeZone::UTC;
        // Control characters are the values serde_json writes longest (`\u0001`, 6 bytes).
        let mut r = raw();
        for (i, c) in COLUMNS.iter().enumerate() {
            if i != 1 && i != BEGIN_TIME && i != END_TIME {
                r.0[i] = "\u{1}".repeat(c.max_len);
            }
        }
        r.0[1] = "d".repeat(64);
        let rec = r.validate(&tz).unwrap();
        let json = serde_json::to_string(&rec.to_json(&tz)).unwrap();
        assert!(json.len() <= MAX_RECORD_JSON_LEN, "{}", json.len());
        const { assert!(MAX_RECORD_JSON_LEN < 4_000) };
    }

    #[test]
    fn json_lines_refuse_repeated_keys() {
        let tz = TimeZone::UTC;
        let line = serde_json::to_string(&raw().validate(&tz).unwrap().to_json(&tz)).unwrap();
        assert!(RawRecord::from_json_line(&line).is_ok());
        let repeated = line.replacen('{', r#"{"agent_id":"9","#, 1);
        let e = RawRecord::from_json_line(&repeated).unwrap_err();
        assert!(
            matches!(&e, LineError::Json(m) if m.contains("duplicate key \"agent_id\"")),
            "{e}"
        );
        assert!(e
            .to_string()
            .starts_with("record: not valid JSON (duplicate key"));
    }

    #[test]
    fn validation_errors_name_the_field() {
        let tz = TimeZone::UTC;
        let with = |i: usize, v: &str| {
            let mut r = raw();
            r.0[i] = v.to_owned();
            r.validate(&tz).unwrap_err()
        };
        assert_eq!(with(3, ""), FieldError::new("agent_id", ResultCode::Empty));
        assert_eq!(
            with(3, &"9".repeat(33)),
            FieldError::new("agent_id", ResultCode::TooLong)
        );
        assert_eq!(
            with(7, "2024-05-01"),
            FieldError::new("begin_time", ResultCode::BadFormat)
        );
        assert_eq!(
            with(8, "2024-05-01 09:00:00"),
            FieldError::new("end_time", ResultCode::BadFormat)
        );
        assert_eq!(
            with(1, "a b"),
            FieldError::new("developer_id", ResultCode::BadFormat)
        );
        let ok = {
            let mut r = raw();
            r.0[7] = "2024-05-01T10:00:00+02:00".into();
            r.validate(&tz).unwrap()
        };
        assert_eq!(ok.begin_time.to_string(), "2024-05-01T08:00:00Z");
        let mut obj = raw().validate(&tz).unwrap().to_json(&tz);
        obj.remove("op_type");
        assert_eq!(
            RawRecord::from_json(&obj).unwrap_err(),
            FieldError::new("op_type", ResultCode::Null)
        );
        obj.insert("op_type".into(), Value::from(4));
        obj.remove("skill_id");
        let r = RawRecord::from_json(&obj).unwrap();
        assert_eq!(r.0[9], "4");
        assert_eq!(r.0[5], "");
        assert_eq!(RawRecord::from_json_object(obj.clone()), Ok(r));
        obj.remove("id");
        assert_eq!(
            RawRecord::from_json_object(obj),
            Err(FieldError::new("id", ResultCode::Null))
        );
    }
}

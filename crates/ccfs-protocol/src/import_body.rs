//! The import request read straight from the body bytes: the envelope, `msgBody.records` as
//! [`RawRecord`]s and `msgBody.onConflict`, in one pass, without a `serde_json::Value` (and its
//! map of 21 keys) per record.
//!
//! It answers exactly what [`open_request`](crate::envelope::open_request) followed by
//! [`parse_import`](crate::messages::parse_import) answer, error for error: the tests compare
//! the two on awkward and on generated bodies. The parse only gathers; what it finds (a null
//! `records`, a record's bad field) is judged once the whole body has parsed, because a body
//! that is not strict JSON anywhere (a repeated key included) is `0300007` before anything
//! else, and the SPEC's order of checks is not the order of the members in the body.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::codes::{ApiError, ResultCode};
use crate::json::StrictValue;
use crate::messages::{
    on_conflict_of, record_error, ImportRequest, MAX_IMPORT_RECORDS, ON_CONFLICT, RECORDS,
};
use crate::record::{FieldError, RawRecord, COLUMNS};
use crate::VERSION;

/// Reads an import request body (see the module doc for the errors and their order).
pub fn open_import(body: &[u8]) -> Result<ImportRequest, ApiError> {
    // Checked once here rather than string by string as a parse of bytes would: a body that is
    // not UTF-8 is no more JSON for the one than for the other (outside strings only ASCII is).
    let Ok(body) = std::str::from_utf8(body) else {
        return Err(ApiError::plain(ResultCode::NoBody));
    };
    let mut de = serde_json::Deserializer::from_str(body);
    let read = de.deserialize_map(EnvelopeVisitor).and_then(|e| {
        de.end()?;
        Ok(e)
    });
    let Ok(Envelope {
        msg_body: Some(MsgBody::Object(msg_body)),
        request,
    }) = read
    else {
        return Err(ApiError::plain(ResultCode::NoBody));
    };
    let version = request
        .as_ref()
        .and_then(|r| r.get("version"))
        .and_then(Value::as_str);
    if version != Some(VERSION) {
        return Err(ApiError::plain(ResultCode::BadVersion));
    }
    msg_body.judge()
}

/// The keys of one object read so far, so that a repeated one is refused as [`crate::json`]
/// refuses it: the expected names by bit, any other by name (rare, so a list).
#[derive(Default)]
struct SeenKeys {
    known: u32,
    others: Vec<String>,
}

impl SeenKeys {
    /// Notes `key`, known as number `known` (below 32) or not at all; an error when repeated.
    fn note<E: de::Error>(&mut self, known: Option<usize>, key: &str) -> Result<(), E> {
        let first = match known {
            Some(i) => {
                let first = self.known & (1 << i) == 0;
                self.known |= 1 << i;
                first
            }
            None if self.others.iter().any(|k| k == key) => false,
            None => {
                self.others.push(key.to_owned());
                true
            }
        };
        if first {
            Ok(())
        } else {
            Err(de::Error::custom("duplicate key"))
        }
    }
}

/// An object key, borrowed from the body when it has no escapes.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key<'de>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key::Owned(v.to_owned()))
    }
}

/// Reads any value strictly (a repeated key at any depth is an error) and keeps nothing.
fn skip_strictly<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value_seed(StrictValue).map(drop)
}

/// A value read where one JSON type is wanted. [`Shaped`] hands an object to `object` and an
/// array to `array`; a value of any other type, or the type when it is not the wanted one, is
/// read strictly (a repeated key at any depth is still an error) and becomes `unwanted`.
trait Wanted<'de>: Sized {
    type Value;
    /// What the value is, for serde's messages.
    const EXPECTING: &'static str;

    fn object<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        StrictValue.visit_map(map).map(|_| self.unwanted(false))
    }

    fn array<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        StrictValue.visit_seq(seq).map(|_| self.unwanted(false))
    }

    /// A value of another type than the wanted one; `null` when it is JSON `null`.
    fn unwanted(self, null: bool) -> Self::Value;
}

/// The seed and visitor of a [`Wanted`] value: one place for the arms of every JSON type.
struct Shaped<W>(W);

impl<'de, W: Wanted<'de>> DeserializeSeed<'de> for Shaped<W> {
    type Value = W::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<W::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, W: Wanted<'de>> Visitor<'de> for Shaped<W> {
    type Value = W::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(W::EXPECTING)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<W::Value, A::Error> {
        self.0.object(map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<W::Value, A::Error> {
        self.0.array(seq)
    }

    fn visit_bool<E>(self, _: bool) -> Result<W::Value, E> {
        Ok(self.0.unwanted(false))
    }

    fn visit_i64<E>(self, _: i64) -> Result<W::Value, E> {
        Ok(self.0.unwanted(false))
    }

    fn visit_u64<E>(self, _: u64) -> Result<W::Value, E> {
        Ok(self.0.unwanted(false))
    }

    fn visit_f64<E>(self, _: f64) -> Result<W::Value, E> {
        Ok(self.0.unwanted(false))
    }

    fn visit_str<E>(self, _: &str) -> Result<W::Value, E> {
        Ok(self.0.unwanted(false))
    }

    fn visit_unit<E>(self) -> Result<W::Value, E> {
        Ok(self.0.unwanted(true))
    }
}

/// What the envelope holds that the checks look at.
struct Envelope {
    request: Option<Value>,
    msg_body: Option<MsgBody>,
}

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request envelope")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        const NAMES: [&str; 2] = ["request", "msgBody"];
        let mut seen = SeenKeys::default();
        let mut envelope = Envelope {
            request: None,
            msg_body: None,
        };
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let key = key.as_str();
            let known = NAMES.iter().position(|n| *n == key);
            seen.note(known, key)?;
            match known {
                Some(0) => envelope.request = Some(map.next_value_seed(StrictValue)?),
                Some(_) => envelope.msg_body = Some(map.next_value_seed(Shaped(MsgBodySeed))?),
                None => skip_strictly(&mut map)?,
            }
        }
        Ok(envelope)
    }
}

/// `msgBody`: an object, or anything else (which the envelope check refuses).
enum MsgBody {
    Object(ImportBody),
    Other,
}

/// What an import `msgBody` holds that the checks look at.
struct ImportBody {
    records: Records,
    /// `onConflict`, as sent.
    on_conflict: Option<Value>,
}

impl ImportBody {
    /// The checks of [`parse_import`](crate::messages::parse_import), in its order.
    fn judge(self) -> Result<ImportRequest, ApiError> {
        let list = match self.records {
            Records::Null => return Err(ApiError::new(ResultCode::Null, RECORDS)),
            Records::NotAnArray => return Err(ApiError::new(ResultCode::BadFormat, RECORDS)),
            Records::List(list) => list,
        };
        if list.len == 0 {
            return Err(ApiError::new(ResultCode::Empty, RECORDS));
        }
        if list.len > MAX_IMPORT_RECORDS {
            return Err(ApiError::new(ResultCode::TooLong, RECORDS));
        }
        let mut body = Map::new();
        if let Some(v) = self.on_conflict {
            body.insert(ON_CONFLICT.to_owned(), v);
        }
        let on_conflict = on_conflict_of(&body)?;
        match list.first_error {
            Some(e) => Err(e),
            None => Ok(ImportRequest {
                records: list.records,
                on_conflict,
            }),
        }
    }
}

struct MsgBodySeed;

impl<'de> Wanted<'de> for MsgBodySeed {
    type Value = MsgBody;
    const EXPECTING: &'static str = "msgBody";

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<MsgBody, A::Error> {
        const NAMES: [&str; 2] = [RECORDS, ON_CONFLICT];
        let mut seen = SeenKeys::default();
        let mut body = ImportBody {
            records: Records::Null,
            on_conflict: None,
        };
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let key = key.as_str();
            let known = NAMES.iter().position(|n| *n == key);
            seen.note(known, key)?;
            match known {
                Some(0) => body.records = map.next_value_seed(Shaped(RecordsSeed))?,
                Some(_) => body.on_conflict = Some(map.next_value_seed(StrictValue)?),
                None => skip_strictly(&mut map)?,
            }
        }
        Ok(MsgBody::Object(body))
    }

    fn unwanted(self, _null: bool) -> MsgBody {
        MsgBody::Other
    }
}

/// `msgBody.records`.
enum Records {
    /// Absent or null.
    Null,
    NotAnArray,
    List(RecordList),
}

/// The records of an array, as far as they matter: past [`MAX_IMPORT_RECORDS`], or past the
/// first bad record, they are only counted (and read strictly).
struct RecordList {
    records: Vec<RawRecord>,
    len: usize,
    /// The first bad record's error, naming it.
    first_error: Option<ApiError>,
}

struct RecordsSeed;

impl<'de> Wanted<'de> for RecordsSeed {
    type Value = Records;
    const EXPECTING: &'static str = "records";

    fn array<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Records, A::Error> {
        let mut list = RecordList {
            records: Vec::new(),
            len: 0,
            first_error: None,
        };
        while let Some(record) = seq.next_element_seed(Shaped(RecordSeed))? {
            let index = list.len;
            list.len += 1;
            if list.first_error.is_some() || list.len > MAX_IMPORT_RECORDS {
                continue;
            }
            match record {
                Ok(r) => list.records.push(r),
                Err(Some(e)) => list.first_error = Some(record_error(index, &e)),
                Err(None) => {
                    list.first_error = Some(ApiError::new(
                        ResultCode::BadFormat,
                        &format!("{RECORDS}[{index}]"),
                    ))
                }
            }
        }
        // Nothing of a refused batch is needed any more.
        if list.first_error.is_some() || list.len > MAX_IMPORT_RECORDS {
            list.records = Vec::new();
        }
        Ok(Records::List(list))
    }

    fn unwanted(self, null: bool) -> Records {
        if null {
            Records::Null
        } else {
            Records::NotAnArray
        }
    }
}

/// One element of `records`: a record, or why not (`None`: not an object).
type Element = Result<RawRecord, Option<FieldError>>;

/// One element of `records`, read as [`RawRecord::from_json_object`] reads an object: the
/// columns by name, the first bad one in column order reported, other keys ignored.
struct RecordSeed;

impl<'de> Wanted<'de> for RecordSeed {
    type Value = Element;
    const EXPECTING: &'static str = "a record";

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Element, A::Error> {
        const { assert!(COLUMNS.len() <= 32, "a column is a bit of a u32") };
        let mut fields: [String; 21] = Default::default();
        let mut seen = SeenKeys::default();
        // Columns with a text value, and columns with a value of the wrong type.
        let (mut texts, mut wrong) = (0u32, 0u32);
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let key = key.as_str();
            let column = COLUMNS.iter().position(|c| c.name == key);
            seen.note(column, key)?;
            let Some(i) = column else {
                skip_strictly(&mut map)?;
                continue;
            };
            match map.next_value_seed(FieldSeed)? {
                Field::Text(s) => {
                    fields[i] = s;
                    texts |= 1 << i;
                }
                Field::Null => {}
                Field::Wrong => wrong |= 1 << i,
            }
        }
        // The first bad column in column order, as `RawRecord::from_json_object` finds it.
        for (i, c) in COLUMNS.iter().enumerate() {
            let code = if wrong & (1 << i) != 0 {
                ResultCode::BadFormat
            } else if c.required && texts & (1 << i) == 0 {
                ResultCode::Null
            } else {
                continue;
            };
            return Ok(Err(Some(FieldError {
                field: c.name,
                code,
            })));
        }
        Ok(Ok(RawRecord(fields)))
    }

    fn unwanted(self, _null: bool) -> Element {
        Err(None)
    }
}

/// A column's value: its text (a number's as serde_json writes it), null, or the wrong type.
enum Field {
    Text(String),
    Null,
    Wrong,
}

impl Field {
    /// As `json_field` of [`crate::record`] takes a number: the text of the `Value` it is.
    fn number(v: Value) -> Field {
        match v {
            Value::Number(n) => Field::Text(n.to_string()),
            _ => Field::Null,
        }
    }
}

struct FieldSeed;

impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = Field;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Field, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a column value")
    }

    fn visit_str<E>(self, v: &str) -> Result<Field, E> {
        Ok(Field::Text(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Field, E> {
        Ok(Field::Text(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Field, E> {
        Ok(Field::Text(Number::from(v).to_string()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Field, E> {
        Ok(Field::Text(Number::from(v).to_string()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Field, E> {
        Ok(Field::number(Value::from(v)))
    }

    fn visit_unit<E>(self) -> Result<Field, E> {
        Ok(Field::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Field, E> {
        Ok(Field::Wrong)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Field, A::Error> {
        StrictValue.visit_seq(seq).map(|_| Field::Wrong)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Field, A::Error> {
        StrictValue.visit_map(map).map(|_| Field::Wrong)
    }
}

#[cfg(test)]
mod tests;

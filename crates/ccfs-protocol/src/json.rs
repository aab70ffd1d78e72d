//! A strict JSON parse: the same `serde_json::Value` as `serde_json::from_slice`, except that an
//! object with a repeated key is an error at any depth.
//!
//! serde_json keeps the last of repeated keys, while other parsers keep the first or refuse; a
//! body that means one thing to a proxy or a signer and another to this server is refused
//! instead of guessed at.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Value};

/// How much of a repeated key an error message quotes: enough to find it, never a whole body.
const KEY_QUOTE: usize = 64;

/// Parses `bytes` as JSON, refusing an object with a repeated key.
pub fn from_slice(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// As [`from_slice`], for text.
pub fn from_str(text: &str) -> Result<Value, serde_json::Error> {
    from_slice(text.as_bytes())
}

/// Builds a `Value`, checking every object's keys as it goes: one map lookup per key, as
/// serde_json's own `Value` does on insert.
#[derive(Clone, Copy)]
pub(crate) struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // serde_json never hands out a non-finite number, so this is never `Null`.
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match out.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(map.next_value_seed(self)?);
                }
                Entry::Occupied(slot) => {
                    return Err(de::Error::custom(format_args!(
                        "duplicate key \"{}\"",
                        quote(slot.key())
                    )));
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// The first [`KEY_QUOTE`] characters of `key`, marked when cut.
fn quote(key: &str) -> String {
    match key.char_indices().nth(KEY_QUOTE) {
        Some((at, _)) => format!("{}…", &key[..at]),
        None => key.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_what_serde_json_parses() {
        for text in [
            r#"{"a":[1,-2,3.5,1e300,18446744073709551615,-9223372036854775808],"b":{"c":null,"d":true,"e":"\u00e9\n"}}"#,
            "[]",
            "{}",
            "  \"x\"  ",
            "0",
        ] {
            let lax: Value = serde_json::from_str(text).unwrap();
            assert_eq!(from_str(text).unwrap(), lax, "{text}");
        }
    }

    #[test]
    fn refuses_repeated_keys_at_any_depth() {
        for text in [
            r#"{"a":1,"a":2}"#,
            r#"{"a":{"b":1,"c":2,"b":3}}"#,
            r#"{"x":[{"k":1},{"k":2,"k":2}]}"#,
            r#"{"\u0061":1,"a":2}"#,
        ] {
            let e = from_str(text).unwrap_err().to_string();
            assert!(e.contains("duplicate key"), "{text}: {e}");
        }
        // The same key in sibling objects is no repetition.
        assert_eq!(
            from_str(r#"[{"k":1},{"k":2}]"#).unwrap(),
            json!([{"k":1},{"k":2}])
        );
    }

    #[test]
    fn refuses_what_serde_json_refuses() {
        for text in ["", "{", "{\"a\":1,}", "[1] x", "{\"a\":NaN}", "\"\\ud800\""] {
            assert!(from_str(text).is_err(), "{text}");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(
            from_str(&deep).is_err(),
            "the recursion limit still applies"
        );
    }

    /// The timing of both parses of a 10,000-record import body, printed for comparison
    /// (`--nocapture`; meaningful in a release build), never asserted.
    #[test]
    fn strict_parse_of_an_import_body_is_timed() {
        let tz = jiff::tz::TimeZone::UTC;
        let mut raw: [String; 21] = Default::default();
        for (i, c) in crate::record::COLUMNS.iter().enumerate() {
            raw[i] = "x".repeat(c.max_len);
        }
        raw[1] = "dev1".into();
        raw[crate::record::BEGIN_TIME] = "2024-05-01 10:00:00".into();
        raw[crate::record::END_TIME] = "2024-05-01 10:05:00".into();
        let one = crate::record::RawRecord(raw)
            .validate(&tz)
            .unwrap()
            .to_json(&tz);
        let records = vec![Value::Object(one); crate::messages::MAX_IMPORT_RECORDS];
        let body =
            serde_json::to_vec(&json!({"request":{"version":"2.0"},"msgBody":{"records":records}}))
                .unwrap();
        let time = |f: &dyn Fn() -> Value| {
            let started = std::time::Instant::now();
            let v = f();
            (started.elapsed(), v)
        };
        for _ in 0..3 {
            let (lax, a) = time(&|| serde_json::from_slice(&body).unwrap());
            let (strict, b) = time(&|| from_slice(&body).unwrap());
            assert_eq!(a, b);
            println!(
                "{} bytes: serde_json {lax:?}, strict {strict:?}",
                body.len()
            );
        }
    }

    #[test]
    fn long_repeated_keys_are_quoted_short() {
        let key = "k".repeat(10_000);
        let e = from_str(&format!(r#"{{"{key}":1,"{key}":2}}"#))
            .unwrap_err()
            .to_string();
        assert!(e.len() < 200, "{e}");
    }
}

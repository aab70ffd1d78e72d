//! Staged validation of `msgBody` fields.
//!
//! The SPEC fixes the order of checks across all fields of a request: first every missing or
//! null field (`0300001`), then every empty string (`0300002`), then every over-long value
//! (`0300003`), then formats (`0300004`). Within a stage, fields are checked in the order the
//! interface lists them. [`check`] runs the first three stages and the "must be a string" part
//! of the fourth; interface-specific format checks follow in [`crate::messages`].

use serde_json::{Map, Value};

use crate::codes::{ApiError, ResultCode};

/// How one field is checked.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub name: &'static str,
    pub required: bool,
    /// Maximum length in characters.
    pub max_len: usize,
}

impl FieldSpec {
    pub const fn required(name: &'static str, max_len: usize) -> Self {
        Self {
            name,
            required: true,
            max_len,
        }
    }
    pub const fn optional(name: &'static str, max_len: usize) -> Self {
        Self {
            name,
            required: false,
            max_len,
        }
    }
}

/// Runs the staged checks; returns each field's string value (`None` for an absent optional one),
/// in the order of `specs`.
pub fn check<'a>(
    body: &'a Map<String, Value>,
    specs: &[FieldSpec],
) -> Result<Vec<Option<&'a str>>, ApiError> {
    let value = |s: &FieldSpec| body.get(s.name).filter(|v| !v.is_null());
    for s in specs {
        if s.required && value(s).is_none() {
            return Err(ApiError::new(ResultCode::Null, s.name));
        }
    }
    for s in specs {
        if value(s).and_then(Value::as_str) == Some("") {
            return Err(ApiError::new(ResultCode::Empty, s.name));
        }
    }
    for s in specs {
        if value(s)
            .and_then(Value::as_str)
            .is_some_and(|v| v.chars().count() > s.max_len)
        {
            return Err(ApiError::new(ResultCode::TooLong, s.name));
        }
    }
    specs
        .iter()
        .map(|s| match value(s) {
            None => Ok(None),
            Some(Value::String(v)) => Ok(Some(v.as_str())),
            Some(_) => Err(ApiError::new(ResultCode::BadFormat, s.name)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SPECS: [FieldSpec; 3] = [
        FieldSpec::required("a", 3),
        FieldSpec::required("b", 3),
        FieldSpec::optional("c", 3),
    ];

    fn run(v: Value) -> Result<Vec<Option<String>>, (ResultCode, String)> {
        let m = v.as_object().unwrap().clone();
        check(&m, &SPECS)
            .map(|v| v.into_iter().map(|o| o.map(str::to_owned)).collect())
            .map_err(|e| (e.code, e.desc))
    }

    #[test]
    fn stages_run_across_fields_in_order() {
        // An empty `a` loses to a missing `b`: nulls are checked before empties.
        assert_eq!(run(json!({"a":""})).unwrap_err().0, ResultCode::Null);
        assert!(run(json!({"a":"", "b":null}))
            .unwrap_err()
            .1
            .contains(" b "));
        assert_eq!(
            run(json!({"a":"toolong", "b":""})).unwrap_err().0,
            ResultCode::Empty
        );
        assert_eq!(
            run(json!({"a":"x", "b":"x", "c":""})).unwrap_err().0,
            ResultCode::Empty
        );
        assert_eq!(
            run(json!({"a":"x", "b":"toolong"})).unwrap_err().0,
            ResultCode::TooLong
        );
        assert_eq!(
            run(json!({"a":1, "b":"toolong"})).unwrap_err().0,
            ResultCode::TooLong
        );
        assert_eq!(
            run(json!({"a":1, "b":"x"})).unwrap_err().0,
            ResultCode::BadFormat
        );
        assert_eq!(
            run(json!({"a":"é€x", "b":"x", "c":null})).unwrap(),
            vec![Some("é€x".into()), Some("x".into()), None]
        );
    }
}

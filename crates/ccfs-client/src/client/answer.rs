//! Reading a server's answer: the response envelope, leniently, into `resultData` or a typed
//! error.

use ccfs_protocol::ResultCode;
use serde_json::Value;

use crate::error::{Error, Result};

/// A lenient reading of the response envelope: only `resultCode` is required, so answers of
/// servers that leave out the legacy `response` copy still read.
fn envelope_parts(v: &Value) -> Option<(String, String, Value)> {
    let code = match v.get("resultCode")? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let desc = v
        .get("resultDesc")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let data = v.get("resultData").cloned().unwrap_or(Value::Null);
    Some((code, desc, data))
}

/// The first characters of a body, for error messages.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        s.push('…');
    }
    s
}

/// Reads an answer to a POST to `path` that should be the JSON envelope into `resultData` or
/// a typed error.
pub(crate) fn read_envelope(status: reqwest::StatusCode, path: &str, body: &[u8]) -> Result<Value> {
    let parsed = serde_json::from_slice::<Value>(body)
        .ok()
        .as_ref()
        .and_then(envelope_parts);
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        let (result_code, desc) = match parsed {
            Some((code, desc, _)) => (code, desc),
            None => (String::new(), snippet(body)),
        };
        return Err(Error::Unauthorized {
            status: status.as_u16(),
            code: ResultCode::from_code(&result_code).unwrap_or(ResultCode::AuthFailed),
            result_code,
            desc,
        });
    }
    let Some((result_code, desc, data)) = parsed else {
        return Err(Error::NotEnvelope {
            status: status.as_u16(),
            path: path.to_owned(),
            body: snippet(body)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        });
    };
    if result_code == ResultCode::Success.as_str() {
        Ok(data)
    } else {
        Err(Error::Api {
            code: ResultCode::from_code(&result_code).unwrap_or(ResultCode::Internal),
            result_code,
            desc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_read_leniently_and_typed() {
        let ok = br#"{"resultCode":"0","resultDesc":"success","resultData":{"a":1}}"#;
        assert_eq!(
            read_envelope(reqwest::StatusCode::OK, "/p", ok).unwrap()["a"],
            1
        );
        let err =
            br#"{"resultCode":"0300011","resultDesc":"The file does not exist.","resultData":""}"#;
        match read_envelope(reqwest::StatusCode::OK, "/p", err) {
            Err(Error::Api {
                code,
                result_code,
                desc,
            }) => {
                assert_eq!(code, ResultCode::FileNotFound);
                assert_eq!(result_code, "0300011");
                assert_eq!(desc, "The file does not exist.");
            }
            other => panic!("{other:?}"),
        }
        match read_envelope(
            reqwest::StatusCode::OK,
            "/p",
            br#"{"resultCode":"9999","resultDesc":"x"}"#,
        ) {
            Err(Error::Api {
                code, result_code, ..
            }) => {
                assert_eq!(code, ResultCode::Internal);
                assert_eq!(result_code, "9999");
            }
            other => panic!("{other:?}"),
        }
        match read_envelope(reqwest::StatusCode::UNAUTHORIZED, "/p", b"nope") {
            Err(Error::Unauthorized {
                status,
                result_code,
                desc,
                ..
            }) => {
                assert_eq!(status, 401);
                assert_eq!(result_code, "");
                assert_eq!(desc, "nope");
            }
            other => panic!("{other:?}"),
        }
        let e = read_envelope(
            reqwest::StatusCode::BAD_GATEWAY,
            "/prefix/CCFS/x",
            b"<html>\n  <p>bad\ngateway</p>",
        )
        .unwrap_err();
        assert!(matches!(e, Error::NotEnvelope { status: 502, .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "HTTP 502 Bad Gateway from POST /prefix/CCFS/x: not a CC-FS answer (no resultCode \
             envelope), so the server URL is probably not a CC-FS server or not its base URL; \
             the answer begins: <html> <p>bad gateway</p>"
        );
    }
}

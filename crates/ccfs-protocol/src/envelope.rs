//! The request envelope `{"request":{"version":"2.0"},"msgBody":{…}}` and the response envelope
//! that every JSON answer uses (SPEC section 2).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::codes::{ApiError, ResultCode};
use crate::VERSION;

/// The `request` member of a request envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestHeader {
    pub version: String,
}

/// A request envelope, for building requests (and callbacks) in the wire's member order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestEnvelope<T> {
    pub request: RequestHeader,
    #[serde(rename = "msgBody")]
    pub msg_body: T,
}

impl<T> RequestEnvelope<T> {
    pub fn new(msg_body: T) -> Self {
        Self {
            request: RequestHeader {
                version: VERSION.to_owned(),
            },
            msg_body,
        }
    }
}

/// Opens a request body: answers `0300007` when it is not JSON (a repeated key at any depth
/// included, see [`crate::json`]) or has no `msgBody` object, then `0300006` when
/// `request.version` is not exactly `"2.0"`. Unknown members are ignored.
pub fn open_request(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let Ok(Value::Object(mut top)) = crate::json::from_slice(body) else {
        return Err(ApiError::plain(ResultCode::NoBody));
    };
    let Some(Value::Object(msg_body)) = top.remove("msgBody") else {
        return Err(ApiError::plain(ResultCode::NoBody));
    };
    let version = top
        .get("request")
        .and_then(|r| r.get("version"))
        .and_then(Value::as_str);
    if version != Some(VERSION) {
        return Err(ApiError::plain(ResultCode::BadVersion));
    }
    Ok(msg_body)
}

/// The legacy copy of the result kept for old clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyResponse {
    pub version: String,
    #[serde(rename = "resultCode")]
    pub result_code: String,
    #[serde(rename = "resultMsg")]
    pub result_msg: String,
}

/// The JSON answer of every interface, success or error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseEnvelope {
    #[serde(rename = "resultCode")]
    pub result_code: String,
    #[serde(rename = "resultDesc")]
    pub result_desc: String,
    /// The interface's data on success; the empty string on an error.
    #[serde(rename = "resultData", default)]
    pub result_data: Value,
    pub response: LegacyResponse,
}

impl ResponseEnvelope {
    fn new(code: ResultCode, desc: String, data: Value) -> Self {
        Self {
            response: LegacyResponse {
                version: VERSION.to_owned(),
                result_code: code.as_str().to_owned(),
                result_msg: desc.clone(),
            },
            result_code: code.as_str().to_owned(),
            result_desc: desc,
            result_data: data,
        }
    }

    /// A success answer carrying `data`.
    pub fn success(data: Value) -> Self {
        Self::new(ResultCode::Success, ResultCode::Success.describe(""), data)
    }

    /// An error answer.
    pub fn error(err: &ApiError) -> Self {
        Self::new(err.code, err.desc.clone(), Value::String(String::new()))
    }

    /// `Ok(resultData)` on success, the error otherwise (unknown codes map to `Internal`).
    pub fn into_result(self) -> Result<Value, ApiError> {
        if self.result_code == ResultCode::Success.as_str() {
            Ok(self.result_data)
        } else {
            let code = ResultCode::from_code(&self.result_code).unwrap_or(ResultCode::Internal);
            Err(ApiError {
                code,
                desc: self.result_desc,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> Option<ResultCode> {
        open_request(body.as_bytes()).err().map(|e| e.code)
    }

    #[test]
    fn opening_order() {
        assert_eq!(code("not json"), Some(ResultCode::NoBody));
        assert_eq!(code("[]"), Some(ResultCode::NoBody));
        assert_eq!(
            code(r#"{"request":{"version":"1.0"}}"#),
            Some(ResultCode::NoBody)
        );
        assert_eq!(
            code(r#"{"request":{"version":"2.0"},"msgBody":null}"#),
            Some(ResultCode::NoBody)
        );
        assert_eq!(code(r#"{"msgBody":{}}"#), Some(ResultCode::BadVersion));
        assert_eq!(
            code(r#"{"request":{"version":2.0},"msgBody":{}}"#),
            Some(ResultCode::BadVersion)
        );
        assert_eq!(
            code(r#"{"request":{"version":"2.0"},"msgBody":{},"x":1}"#),
            None
        );
        // A repeated key is refused wherever it is, even where it would change nothing.
        for repeated in [
            r#"{"request":{"version":"2.0"},"msgBody":{},"msgBody":{}}"#,
            r#"{"request":{"version":"1.0","version":"2.0"},"msgBody":{}}"#,
            r#"{"request":{"version":"2.0"},"msgBody":{"a":"x","a":"x"}}"#,
            r#"{"request":{"version":"2.0"},"msgBody":{"r":[{"id":1,"id":2}]}}"#,
        ] {
            assert_eq!(code(repeated), Some(ResultCode::NoBody), "{repeated}");
        }
    }

    #[test]
    fn envelopes_serialize_as_the_wire_wants() {
        let ok =
            serde_json::to_value(ResponseEnvelope::success(serde_json::json!({"a":1}))).unwrap();
        assert_eq!(
            ok,
            serde_json::json!({"resultCode":"0","resultDesc":"success","resultData":{"a":1},
                "response":{"version":"2.0","resultCode":"0","resultMsg":"success"}})
        );
        let err = ResponseEnvelope::error(&ApiError::plain(ResultCode::FileNotFound));
        let v = serde_json::to_value(&err).unwrap();
        assert_eq!(v["resultData"], "");
        assert_eq!(v["response"]["resultCode"], "0300011");
        assert_eq!(
            err.into_result().unwrap_err().code,
            ResultCode::FileNotFound
        );
        let req = serde_json::to_string(&RequestEnvelope::new(serde_json::json!({}))).unwrap();
        assert_eq!(req, r#"{"request":{"version":"2.0"},"msgBody":{}}"#);
    }
}

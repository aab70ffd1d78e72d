//! The one error type of the HTTP layer, mapped in one place to the SPEC envelope and status:
//! API errors are HTTP 200 with their code, authentication failures HTTP 401 (`0300401`), a
//! missing role HTTP 403 (`0300401`), a body that does not arrive in time HTTP 408 (`0300007`),
//! anything unexpected HTTP 500 (`0300500`) with the request's id (see [`super::context`]),
//! whose details are only in the log, on a line with that id.
//! A [`Refusal`] is an error answered before the body was read, which closes the connection.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ccfs_protocol::auth::AuthError;
use ccfs_protocol::envelope::ResponseEnvelope;
use ccfs_protocol::{ApiError, ResultCode};

/// An error answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("authentication failed: {0}")]
    Auth(#[from] AuthError),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("the request body did not arrive within {0} s")]
    BodyTimedOut(u64),
    #[error("internal error: {0}")]
    Internal(String),
}

impl HttpError {
    /// The result code the answer carries.
    pub fn result_code(&self) -> ResultCode {
        match self {
            HttpError::Api(a) => a.code,
            HttpError::Auth(_) | HttpError::Forbidden(_) => ResultCode::AuthFailed,
            HttpError::BodyTimedOut(_) => ResultCode::NoBody,
            HttpError::Internal(_) => ResultCode::Internal,
        }
    }
}

impl From<crate::store::StoreError> for HttpError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<crate::blobs::BlobError> for HttpError {
    fn from(e: crate::blobs::BlobError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<crate::tenants::TenantError> for HttpError {
    fn from(e: crate::tenants::TenantError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<super::body::BodyError> for HttpError {
    fn from(e: super::body::BodyError) -> Self {
        use super::body::BodyError;
        match e {
            BodyError::TooLong(_) => Self::Api(ApiError::new(ResultCode::TooLong, "requestBody")),
            BodyError::Broken => Self::Api(ApiError::plain(ResultCode::NoBody)),
            BodyError::TimedOut(after) => Self::BodyTimedOut(after.as_secs()),
        }
    }
}

impl From<ResultCode> for HttpError {
    fn from(code: ResultCode) -> Self {
        Self::Api(ApiError::plain(code))
    }
}

/// An error answer that may leave part of the request body unread. On HTTP/1 such an answer
/// carries `Connection: close`, and hyper then closes the connection after it rather than
/// reading the rest of a body nobody wants (or taking it for the next request). HTTP/2 ends just
/// the stream, and forbids the header.
#[derive(Debug)]
pub struct Refusal {
    error: HttpError,
    close: bool,
}

impl Refusal {
    /// An error answered before the body of a request of `version` was read to its end.
    pub fn unread(error: impl Into<HttpError>, version: axum::http::Version) -> Self {
        Self {
            error: error.into(),
            close: version <= axum::http::Version::HTTP_11,
        }
    }
}

impl Refusal {
    /// Why authentication failed, when that is what this refuses.
    pub fn auth_error(&self) -> Option<AuthError> {
        match self.error {
            HttpError::Auth(e) => Some(e),
            _ => None,
        }
    }
}

impl From<HttpError> for Refusal {
    /// An error answered after the whole body was read: the connection may serve more.
    fn from(error: HttpError) -> Self {
        Self {
            error,
            close: false,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = self.error.into_response();
        if self.close {
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

/// A JSON envelope answer with a status.
pub fn envelope(status: StatusCode, body: ResponseEnvelope) -> Response {
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(ccfs_protocol::JSON_CONTENT_TYPE),
    );
    response
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let (status, err) = match self {
            // Logged and counted by the auth extractor, which knows the request.
            HttpError::Auth(e) => (
                StatusCode::UNAUTHORIZED,
                ApiError::new(ResultCode::AuthFailed, &e.to_string()),
            ),
            HttpError::Forbidden(reason) => (
                StatusCode::FORBIDDEN,
                ApiError::new(ResultCode::AuthFailed, reason),
            ),
            HttpError::Api(e) => (StatusCode::OK, e),
            HttpError::BodyTimedOut(secs) => {
                let mut e = ApiError::plain(ResultCode::NoBody);
                e.desc.push_str(&format!(
                    " The body did not arrive within {secs} s; send it at once after the headers."
                ));
                (StatusCode::REQUEST_TIMEOUT, e)
            }
            HttpError::Internal(detail) => {
                // The request's own id: the one on its access log line too.
                let id = super::context::current_id().to_string();
                tracing::error!(request_id = %id, "{detail}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ApiError::new(ResultCode::Internal, &id),
                )
            }
        };
        envelope(status, ResponseEnvelope::error(&err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn render(e: HttpError) -> (StatusCode, serde_json::Value) {
        let response = e.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn internal_errors_are_500_with_a_request_id_and_no_details() {
        let (status, v) = render(HttpError::Internal(
            "database /secret/path is locked".into(),
        ))
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(v["resultCode"], "0300500");
        assert_eq!(v["response"]["resultCode"], "0300500");
        assert_eq!(v["resultData"], "");
        let desc = v["resultDesc"].as_str().unwrap();
        let id = desc
            .strip_prefix("Internal error; the request id is ")
            .unwrap()
            .strip_suffix('.')
            .unwrap();
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!v.to_string().contains("secret"));
    }

    #[tokio::test]
    async fn each_kind_has_its_status() {
        let (s, v) = render(HttpError::Auth(AuthError::Replay)).await;
        assert_eq!(
            (s, v["resultCode"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("0300401"))
        );
        assert_eq!(
            v["resultDesc"],
            "Authentication failed: replayed signature."
        );
        let (s, v) = render(HttpError::Forbidden("the access key lacks the ingest role")).await;
        assert_eq!(
            (s, v["resultCode"].as_str()),
            (StatusCode::FORBIDDEN, Some("0300401"))
        );
        let (s, v) = render(ResultCode::FileNotFound.into()).await;
        assert_eq!(
            (s, v["resultCode"].as_str()),
            (StatusCode::OK, Some("0300011"))
        );
    }
}

//! The one error type of the HTTP layer, mapped in one place to the SPEC envelope and status:
//! API errors are HTTP 200 with their code, authentication failures HTTP 401 (`0300401`), a
//! missing role HTTP 403 (`0300401`), anything unexpected HTTP 500 (`0300500`) with a request id
//! whose details are only in the log.

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
    #[error("internal error: {0}")]
    Internal(String),
}

impl HttpError {
    /// The result code the answer carries.
    pub fn result_code(&self) -> ResultCode {
        match self {
            HttpError::Api(a) => a.code,
            HttpError::Auth(_) | HttpError::Forbidden(_) => ResultCode::AuthFailed,
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

impl From<ResultCode> for HttpError {
    fn from(code: ResultCode) -> Self {
        Self::Api(ApiError::plain(code))
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
            HttpError::Auth(e) => {
                metrics::counter!("ccfs_auth_failures_total", "reason" => format!("{e:?}"))
                    .increment(1);
                (
                    StatusCode::UNAUTHORIZED,
                    ApiError::new(ResultCode::AuthFailed, &e.to_string()),
                )
            }
            HttpError::Forbidden(reason) => (
                StatusCode::FORBIDDEN,
                ApiError::new(ResultCode::AuthFailed, reason),
            ),
            HttpError::Api(e) => (StatusCode::OK, e),
            HttpError::Internal(detail) => {
                let id = hex::encode(rand::random::<[u8; 8]>());
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

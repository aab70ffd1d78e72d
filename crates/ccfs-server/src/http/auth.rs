//! The auth extractor: verifies the auth-v2 signature of a request (SPEC section 3) and yields
//! the developer it belongs to, with the body bytes it was verified over.
//!
//! Order of checks: header shape, clock window, access key (unknown, disabled), signature
//! (current secret, then the previous one during its grace period; for each, the SPEC's
//! canonical form, then the empty-query-line form of some public ports when allowed), and only
//! then, with `replay = refuse`, the replay cache, so that garbage signatures never fill it.
//! With `replay = retry` (the default) an identical signature is a retry: the handlers make it
//! harmless (generate keys its job by the signature; download and status just answer again).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use ccfs_protocol::auth::{check_clock, AuthError, AuthHeader, QueryLine, RequestParts};
use ccfs_protocol::{ApiError, ResultCode};
use jiff::Timestamp;

use super::error::HttpError;
use crate::config::ReplayPolicy;
use crate::model::{Developer, Role};
use crate::state::AppState;

/// A request whose signature was verified.
pub struct Signed {
    pub developer: Developer,
    /// The request's signature: with `replay = retry`, the same value means the same request.
    pub signature: String,
    pub body: Bytes,
    pub content_type: Option<String>,
    pub headers: HeaderMap,
}

impl Signed {
    /// Refuses a developer without `role` (HTTP 403).
    pub fn require(&self, role: Role) -> Result<(), HttpError> {
        if self.developer.roles.contains(&role) {
            Ok(())
        } else {
            Err(HttpError::Forbidden(match role {
                Role::Export => "the access key lacks the export role",
                Role::Ingest => "the access key lacks the ingest role",
            }))
        }
    }
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

impl FromRequest<Arc<AppState>> for Signed {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, HttpError> {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, super::BODY_LIMIT)
            .await
            .map_err(|_| ApiError::new(ResultCode::TooLong, "requestBody"))?;
        let headers = parts.headers;
        // A value that is present but not visible ASCII is malformed, not missing.
        let value = headers.get("authorization").ok_or(AuthError::Missing)?;
        let auth = AuthHeader::parse(value.to_str().map_err(|_| AuthError::Malformed)?)?;
        let now = Timestamp::now();
        check_clock(auth.time(), now, state.config.auth_window())?;
        let developer = state
            .store
            .developer(&auth.ak)
            .await?
            .ok_or(AuthError::UnknownKey)?;
        if !developer.enabled {
            return Err(AuthError::DisabledKey.into());
        }
        let request = RequestParts {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query(),
            body: &body,
        };
        let forwarded = state.config.trust_forwarded_host;
        let lookup = |name: &str| {
            if name == "host" {
                let fwd = forwarded
                    .then(|| header_str(&headers, "x-forwarded-host"))
                    .flatten();
                // HTTP/2 carries the host in the URI authority, not a Host header.
                fwd.or_else(|| header_str(&headers, "host"))
                    .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()))
            } else {
                header_str(&headers, name)
            }
        };
        let forms: &[QueryLine] = if state.config.accept_empty_query_line {
            &[QueryLine::OmittedWhenEmpty, QueryLine::AlwaysWritten]
        } else {
            &[QueryLine::OmittedWhenEmpty]
        };
        let mut outcome = Err(AuthError::SignatureMismatch);
        for secret in state.tenants.secrets(&developer, now)? {
            outcome = auth.verify_in(forms, &secret, &request, lookup);
            if outcome != Err(AuthError::SignatureMismatch) {
                break;
            }
        }
        outcome?;
        if state.config.replay == ReplayPolicy::Refuse
            && !state
                .store
                .remember_signature(&auth.signature, auth.time() + state.config.auth_window())
                .await?
        {
            return Err(AuthError::Replay.into());
        }
        let content_type = header_str(&headers, "content-type");
        Ok(Signed {
            developer,
            signature: auth.signature,
            body,
            content_type,
            headers,
        })
    }
}

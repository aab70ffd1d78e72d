//! The auth extractor: verifies the auth-v2 signature of a request (SPEC section 3) and yields
//! the developer it belongs to, with the body bytes it was verified over.
//!
//! Everything the headers alone can tell is checked before a byte of the body is read, so that
//! a stranger cannot make the server take in (and hold) a body: header shape (one
//! `Authorization`, one `Host`), clock window, access key (unknown, disabled), the announced
//! length against the interface's limit. Such a refusal closes the connection (see
//! [`Refusal`]). The body is then read within `body_timeout_secs` and fed, chunk by chunk, to
//! the signature [`Verifier`], which computes the first candidate (current secret, the SPEC's
//! canonical form) as it arrives and the others (the previous secret during its grace period;
//! the empty-query-line form of some public ports when allowed) over the kept body only when
//! the first does not match, so memory is the body itself. Only then, with `replay = refuse`,
//! the replay cache is consulted, so that garbage signatures never fill it. With
//! `replay = retry` (the default) an identical signature is a retry: the handlers make it
//! harmless (generate keys its job by the signature; download and status just answer again).
//!
//! Each refused authentication is logged (a warning, target `ccfs::auth`, with the reason's
//! class, the AK presented, the peer and the request's id) and counted here, where the request
//! is at hand; an accepted one records its developer in the request's context, for the access
//! log ([`super::access_log`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use ccfs_protocol::auth::{check_clock, AuthError, AuthHeader, QueryLine, RequestHead, Verifier};
use ccfs_protocol::AppId;
use jiff::Timestamp;

use super::body::{self, BodyError};
use super::context::RequestContext;
use super::error::{HttpError, Refusal};
use crate::config::ReplayPolicy;
use crate::model::{Developer, Role};
use crate::state::AppState;

/// The target of the warnings about refused requests.
const LOG_TARGET: &str = "ccfs::auth";

/// A request whose signature was verified.
pub struct Signed {
    pub developer: Developer,
    /// The request's signature: with `replay = retry`, the same value means the same request.
    pub signature: String,
    pub body: Bytes,
    pub content_type: Option<String>,
    pub headers: HeaderMap,
    /// The request's id and peer, for the lines that name it.
    context: Arc<RequestContext>,
}

impl Signed {
    /// Refuses a developer without `role` (HTTP 403), with a warning.
    pub fn require(&self, role: Role) -> Result<(), HttpError> {
        if self.developer.roles.contains(&role) {
            return Ok(());
        }
        let (role, refusal) = match role {
            Role::Export => ("export", "the access key lacks the export role"),
            Role::Ingest => ("ingest", "the access key lacks the ingest role"),
        };
        tracing::warn!(
            target: LOG_TARGET,
            reason = "missing_role",
            role,
            app_id = %self.developer.app_id,
            remote = self.context.remote.map(tracing::field::display),
            request_id = %self.context.id,
            "request refused: {refusal}"
        );
        Err(HttpError::Forbidden(refusal))
    }
}

/// Logs and counts a refused authentication: its reason class, the access key presented (an
/// AK is no secret; only one shaped like an app id is named, so a line never carries
/// arbitrary header text), the peer and the request's id. Never the signature or the header.
fn refused(reason: AuthError, presented: Option<&AppId>, context: &RequestContext) {
    crate::telemetry::auth_refused(reason);
    tracing::warn!(
        target: LOG_TARGET,
        reason = reason.class(),
        app_id = presented.map(tracing::field::display),
        remote = context.remote.map(tracing::field::display),
        request_id = %context.id,
        "authentication refused: {reason}"
    );
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// What the headers established: whose request it claims to be, and a verifier waiting for the
/// body.
struct Head {
    auth: AuthHeader,
    developer: Developer,
    verifier: Verifier,
}

/// The `Authorization` header, read: one of it and one `Host`, in the auth-v2 shape.
fn auth_header(headers: &HeaderMap) -> Result<AuthHeader, AuthError> {
    // Two values would be read one way here and maybe another by a proxy in front.
    if headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .nth(1)
        .is_some()
    {
        return Err(AuthError::DuplicateAuthorization);
    }
    if headers.get_all(header::HOST).iter().nth(1).is_some() {
        return Err(AuthError::DuplicateHost);
    }
    // A value that is present but not visible ASCII is malformed, not missing.
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?;
    AuthHeader::parse(value.to_str().map_err(|_| AuthError::Malformed)?)
}

/// The checks after the header's shape that need no body, in the order of the module doc.
/// `too_long`: the request announces a body over its interface's limit.
async fn check_head(
    parts: &Parts,
    state: &AppState,
    auth: AuthHeader,
    too_long: Option<BodyError>,
) -> Result<Head, HttpError> {
    let headers = &parts.headers;
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
    if let Some(e) = too_long {
        return Err(e.into());
    }
    let forwarded = state.config.trust_forwarded_host;
    let lookup = |name: &str| {
        if name == "host" {
            let fwd = forwarded
                .then(|| header_str(headers, "x-forwarded-host"))
                .flatten();
            // HTTP/2 carries the host in the URI authority, not a Host header.
            fwd.or_else(|| header_str(headers, "host"))
                .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()))
        } else {
            header_str(headers, name)
        }
    };
    let forms: &[QueryLine] = if state.config.accept_empty_query_line {
        &[QueryLine::OmittedWhenEmpty, QueryLine::AlwaysWritten]
    } else {
        &[QueryLine::OmittedWhenEmpty]
    };
    let secrets = state.tenants.secrets(&developer, now)?;
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let head = RequestHead {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
    };
    let verifier = Verifier::new(&auth, &secrets, forms, &head, lookup)?;
    Ok(Head {
        auth,
        developer,
        verifier,
    })
}

impl FromRequest<Arc<AppState>> for Signed {
    type Rejection = Refusal;

    /// Verifies the request; on success records whom it was verified for in the request's
    /// context (for the access log), on a refused authentication logs and counts it.
    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Refusal> {
        // The access log layer puts the context on every request the router serves; a fresh
        // one stands in should a router be built without it.
        let context = req
            .extensions()
            .get::<Arc<RequestContext>>()
            .cloned()
            .unwrap_or_else(|| Arc::new(RequestContext::new(None)));
        let version = req.version();
        let auth = match auth_header(req.headers()) {
            Ok(auth) => auth,
            Err(e) => {
                refused(e, None, &context);
                return Err(Refusal::unread(e, version));
            }
        };
        let presented = AppId::parse(&auth.ak);
        match verify(req, state, auth, context.clone()).await {
            Ok(signed) => {
                context.verified_as(&signed.developer.app_id);
                Ok(signed)
            }
            Err(refusal) => {
                if let Some(e) = refusal.auth_error() {
                    refused(e, presented.as_ref(), &context);
                }
                Err(refusal)
            }
        }
    }
}

/// Everything after the header's shape: the checks of [`check_head`], the body read and fed
/// to the verifier, the signature's verdict, the replay cache.
async fn verify(
    req: Request,
    state: &Arc<AppState>,
    auth: AuthHeader,
    context: Arc<RequestContext>,
) -> Result<Signed, Refusal> {
    let (parts, body) = req.into_parts();
    let version = parts.version;
    let limit = super::body_limit(parts.uri.path());
    let too_long = body::announced_too_long(&body, limit).then_some(BodyError::TooLong(limit));
    let Head {
        auth,
        developer,
        mut verifier,
    } = check_head(&parts, state, auth, too_long)
        .await
        .map_err(|e| Refusal::unread(e, version))?;
    let body = body::read(body, limit, state.config.body_timeout(), |chunk| {
        verifier.update(chunk)
    })
    .await
    .map_err(|e| Refusal::unread(e, version))?;
    verifier.finish(&body).map_err(HttpError::from)?;
    if state.config.replay == ReplayPolicy::Refuse
        && !state
            .store
            .remember_signature(&auth.signature, auth.time() + state.config.auth_window())
            .await
            .map_err(HttpError::from)?
    {
        return Err(HttpError::from(AuthError::Replay).into());
    }
    let headers = parts.headers;
    let content_type = header_str(&headers, "content-type");
    Ok(Signed {
        developer,
        signature: auth.signature,
        body,
        content_type,
        headers,
        context,
    })
}

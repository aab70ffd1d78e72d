//! The access log: one `info` event per HTTP request, target `ccfs::access`, written when the
//! answer's last byte has gone out or the client went away (so a download's line comes at its
//! end, with its whole duration). Its fields:
//!
//! - `method`, `path`: the path alone. The query is left out, and so are every header and the
//!   body, so nothing of a signature or a secret can reach the log this way.
//! - `status`: the HTTP status (absent when the client went away before there was an answer).
//! - `duration_ms`: milliseconds from the request's arrival to the answer's end, with
//!   microsecond decimals.
//! - `app_id`: the developer whose signature was verified; absent for unsigned routes and for
//!   refused requests (whose AK is on the `ccfs::auth` warning instead).
//! - `remote`: the peer's address (a balancer's, behind one).
//! - `request_id`: the request's id (see [`super::context`]), also answered in the
//!   `X-Request-Id` header and, in a `0300500` answer, in its description.
//!
//! The same moment records `ccfs_http_request_duration_seconds` by route template and method.
//!
//! The app id reaches this layer through a slot in the request's [`RequestContext`], a request
//! extension put there before the request goes on and filled by the auth extractor when it has
//! verified the signature. A response extension would have to be added by every path that
//! answers (each handler's success and errors, the extractor's refusals); the slot is filled
//! in the one place a signature is verified, whatever the answer turns out to be.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::context::{self, RequestContext};

/// The answer header that carries the request's id.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The middleware: gives the request its context, runs it, and writes its line once the
/// answer has ended.
pub async fn record(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let remote = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let context = Arc::new(RequestContext::new(remote));
    request.extensions_mut().insert(context.clone());
    // Made now, so that a request dropped before its answer (the client went away while it
    // was handled) is written too, without a status.
    let mut line = Line {
        started,
        method: request.method().clone(),
        path: request.uri().path().to_owned(),
        route: request
            .extensions()
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_owned()),
        status: None,
        context,
    };
    let mut response = context::with_id(line.context.id, next.run(request)).await;
    if let Ok(id) = HeaderValue::from_str(&line.context.id.to_string()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, id);
    }
    line.status = Some(response.status());
    response.map(|body| super::hold_until_end(body, line))
}

/// One request's line, written when dropped: with the answer's body once it has ended (see
/// [`super::hold_until_end`]), or with the request's future when it never got an answer.
struct Line {
    started: Instant,
    method: Method,
    path: String,
    /// The matched route's template; `None` when no route matched.
    route: Option<String>,
    status: Option<StatusCode>,
    context: Arc<RequestContext>,
}

impl Drop for Line {
    fn drop(&mut self) {
        let took = self.started.elapsed();
        crate::telemetry::http_request(self.route.as_deref(), &self.method, took);
        let context = &self.context;
        tracing::info!(
            target: "ccfs::access",
            method = %self.method,
            path = self.path.as_str(),
            status = self.status.map(|s| s.as_u16()),
            duration_ms = took.as_micros() as f64 / 1000.0,
            app_id = context.app_id().map(tracing::field::display),
            remote = context.remote.map(tracing::field::display),
            request_id = %context.id,
            "request"
        );
    }
}

//! The HTTP interfaces: one file per interface, an auth extractor that yields the verified
//! developer ([`auth::Signed`]), and one error type ([`error::HttpError`]) that renders the SPEC
//! envelope and status. [`routes`] is the one list of every route, which builds the router,
//! which the OpenAPI description ([`openapi`]) is checked against and which the request
//! duration histogram is registered with. Around every route, the access log
//! ([`access_log`]) gives each request its context ([`context`]) and writes its line.

pub mod access_log;
pub mod auth;
mod body;
pub mod context;
pub mod download;
pub mod error;
pub mod generate;
pub mod health;
pub mod import;
pub mod openapi;
pub mod status;
mod until_end;

use std::sync::Arc;

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use ccfs_protocol::paths;
use serde_json::{Map, Value};

use crate::state::AppState;
use crate::telemetry::Interface;
use error::HttpError;
pub(crate) use until_end::hold_until_end;

/// Largest body of generate, download and status. The longest legal generate body, every
/// character of its 1,024-character `callBackURL` and other fields written as a `\uXXXX`
/// escape, is under 14 KB; the rest is room for whitespace and ignored members.
const SMALL_BODY_LIMIT: usize = 64 * 1024;

/// Largest import body: 10,000 of the longest records (see
/// [`ccfs_protocol::record::MAX_RECORD_JSON_LEN`]) in the envelope, with 1 MiB of room for
/// whitespace and ignored members; about 40 MB.
const IMPORT_BODY_LIMIT: usize = ccfs_protocol::messages::MAX_IMPORT_RECORDS
    * (ccfs_protocol::record::MAX_RECORD_JSON_LEN + 1)
    + 1024 * 1024;

/// The body limit of the interface at `path`.
fn body_limit(path: &str) -> usize {
    if path == paths::IMPORT {
        IMPORT_BODY_LIMIT
    } else {
        SMALL_BODY_LIMIT
    }
}

/// All routes, each request written to the access log. `layer` (not `route_layer`): requests
/// that match no route are logged too.
pub fn router(state: Arc<AppState>) -> Router {
    table()
        .into_iter()
        .fold(Router::new(), |router, r| router.route(r.path, r.handler))
        .with_state(state)
        .layer(axum::middleware::from_fn(access_log::record))
}

/// Every route's method and path: what the router serves, for the OpenAPI test and the
/// request duration histogram.
pub fn routes() -> impl Iterator<Item = (Method, &'static str)> {
    table().into_iter().map(|r| (r.method, r.path))
}

/// One route: its method and path, and its handler for that method.
struct Route {
    /// Also in `handler`, which cannot tell it; read by [`routes`].
    method: Method,
    path: &'static str,
    handler: MethodRouter<Arc<AppState>>,
}

impl Route {
    fn get<H: Handler<T, Arc<AppState>>, T: 'static>(path: &'static str, handler: H) -> Self {
        Self {
            method: Method::GET,
            path,
            handler: get(handler),
        }
    }

    fn post<H: Handler<T, Arc<AppState>>, T: 'static>(path: &'static str, handler: H) -> Self {
        Self {
            method: Method::POST,
            path,
            handler: post(handler),
        }
    }
}

/// The routes, each named once with its method: the router and [`routes`] both read this, so
/// no route can be served without the OpenAPI test seeing it.
fn table() -> [Route; 8] {
    [
        Route::post(paths::GENERATE, generate::handle),
        Route::post(paths::DOWNLOAD, download::handle),
        Route::post(paths::STATUS, status::handle),
        Route::post(paths::IMPORT, import::handle),
        Route::get("/healthz", health::healthz),
        Route::get("/readyz", health::readyz),
        Route::get("/metrics", health::metrics),
        Route::get(openapi::PATH, openapi::serve),
    ]
}

/// Opens a signed request's body: a content type other than JSON, or a body that is not the
/// envelope, is `0300007`; a wrong version `0300006`.
pub fn open_body(signed: &auth::Signed) -> Result<Map<String, Value>, HttpError> {
    Ok(ccfs_protocol::envelope::open_request(json_body(signed)?)?)
}

/// A signed request's body, when its content type (if any) is JSON; `0300007` otherwise.
pub fn json_body(signed: &auth::Signed) -> Result<&[u8], HttpError> {
    if let Some(ct) = &signed.content_type {
        let essence = ct.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(ccfs_protocol::ApiError::plain(ccfs_protocol::ResultCode::NoBody).into());
        }
    }
    Ok(&signed.body)
}

/// Counts an answer of an interface by result code.
pub fn count(interface: Interface, code: ccfs_protocol::ResultCode) {
    crate::telemetry::request_answered(interface, code);
}

/// Counts and renders a JSON answer: the success envelope around `data`, or the error.
pub fn respond<T: serde::Serialize>(
    interface: Interface,
    result: Result<T, HttpError>,
) -> Result<axum::response::Response, HttpError> {
    count(
        interface,
        result.as_ref().map_or_else(HttpError::result_code, |_| {
            ccfs_protocol::ResultCode::Success
        }),
    );
    let data = serde_json::to_value(result?).map_err(|e| HttpError::Internal(e.to_string()))?;
    Ok(error::envelope(
        axum::http::StatusCode::OK,
        ccfs_protocol::envelope::ResponseEnvelope::success(data),
    ))
}

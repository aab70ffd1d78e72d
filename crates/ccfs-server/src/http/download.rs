//! `POST /CCFS/resource/ccfs/downloadAgentOprInfoFile`: stream a finished zip (SPEC section 8),
//! whole or from a `Range`, only to the developer that generated it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ccfs_protocol::messages::parse_download;
use ccfs_protocol::range::RangeAsk;
use ccfs_protocol::{ResultCode, DOWNLOAD_CONTENT_TYPE};
use futures::StreamExt;
use jiff::Timestamp;

use super::auth::Signed;
use super::count;
use super::error::HttpError;
use super::open_body;
use crate::blobs::BlobError;
use crate::model::Role;
use crate::state::AppState;
use crate::telemetry::Interface;

const INTERFACE: Interface = Interface::Download;

pub async fn handle(
    State(state): State<Arc<AppState>>,
    signed: Signed,
) -> Result<Response, HttpError> {
    let result = download(&state, &signed).await;
    count(
        INTERFACE,
        result
            .as_ref()
            .map_or_else(HttpError::result_code, |_| ResultCode::Success),
    );
    result
}

async fn download(state: &Arc<AppState>, signed: &Signed) -> Result<Response, HttpError> {
    signed.require(Role::Export)?;
    let name = parse_download(&open_body(signed)?)?;
    let job = state.store.job(&name.response_id()).await?;
    // Missing, unfinished, expired and someone else's all answer the same.
    let now = Timestamp::now();
    let job = job
        .filter(|j| j.job.developer_id() == &signed.developer.app_id && j.job.file_name == name)
        .ok_or(HttpError::from(ResultCode::FileNotFound))?;
    // The object of the attempt the job published: its size and SHA-256 are the outcome's,
    // whatever a stale attempt uploaded under its own key.
    let (outcome, key) = job
        .file_at(now)
        .cloned()
        .zip(job.published_key())
        .ok_or(HttpError::from(ResultCode::FileNotFound))?;
    // Counted across every node on the database; a store that cannot answer is a 0300500.
    let slot = state
        .downloads
        .acquire(signed.developer.app_id.as_str(), state.config.max_downloads)
        .await?
        .ok_or(HttpError::from(ResultCode::DownloadFlowControl))?;

    let size = outcome.file_size;
    let etag = format!("\"{}\"", outcome.sha256);
    let if_range_ok = signed
        .headers
        .get(header::IF_RANGE)
        .is_none_or(|v| v.to_str().is_ok_and(|v| v.trim() == etag));
    let range_header = signed
        .headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| if_range_ok);
    let (status, range) = match RangeAsk::parse(range_header, size) {
        RangeAsk::Whole => (StatusCode::OK, 0..size),
        RangeAsk::Part(r) => (StatusCode::PARTIAL_CONTENT, r),
        RangeAsk::Unsatisfiable => {
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            insert(
                response.headers_mut(),
                header::CONTENT_RANGE,
                &format!("bytes */{size}"),
            );
            return Ok(response);
        }
    };
    let stream = match state
        .blobs
        .get(&key, (size > 0).then(|| range.clone()))
        .await
    {
        Ok(s) => s,
        Err(BlobError::NotFound(_)) => {
            tracing::warn!(file = %key, "a finished export's file is missing from the file store");
            return Err(ResultCode::FileNotFound.into());
        }
        Err(e) => return Err(e.into()),
    };
    // Once the last byte of the file has gone out, the owner has the file: a callback still
    // being retried has no purpose left. Stopping it is a store write, done on its own task so
    // the end of the body is not held up by it.
    let mut to_send = (range.end == size).then_some(range.end - range.start);
    let on_complete = {
        let state = Arc::clone(state);
        let id = name.response_id();
        move || {
            tokio::spawn(async move {
                match state.store.supersede_callback(&id).await {
                    Ok(true) => {
                        tracing::info!(response_id = %id, "file downloaded: pending callback superseded")
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(response_id = %id, "superseding the callback: {e}"),
                }
            });
        }
    };
    let mut on_complete = Some(on_complete);
    if to_send == Some(0) {
        if let Some(f) = on_complete.take() {
            f();
        }
    }
    // The slot lives as long as the body stream: it is released before the last chunk goes
    // out, or, when the client goes away first, by its drop (see `crate::download_slots`).
    let mut slot = Some(slot);
    let mut body_left = range.end - range.start;
    let body = Body::from_stream(stream.then(move |chunk| {
        let mut last = None;
        if let Ok(bytes) = &chunk {
            body_left = body_left.saturating_sub(bytes.len() as u64);
            if body_left == 0 {
                last = slot.take();
            }
            if let Some(left) = to_send.as_mut() {
                *left = left.saturating_sub(bytes.len() as u64);
                if *left == 0 {
                    if let Some(f) = on_complete.take() {
                        f();
                    }
                }
            }
        }
        async move {
            if let Some(slot) = last {
                slot.release().await;
            }
            chunk
        }
    }));
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    insert(h, header::CONTENT_TYPE, DOWNLOAD_CONTENT_TYPE);
    insert(
        h,
        header::CONTENT_LENGTH,
        &(range.end - range.start).to_string(),
    );
    insert(
        h,
        header::CONTENT_DISPOSITION,
        &format!("attachment; filename=\"{name}\""),
    );
    insert(h, header::ETAG, &etag);
    insert(h, header::ACCEPT_RANGES, "bytes");
    insert(h, "x-checksum-sha256", &outcome.sha256);
    if status == StatusCode::PARTIAL_CONTENT {
        insert(
            h,
            header::CONTENT_RANGE,
            &format!("bytes {}-{}/{size}", range.start, range.end - 1),
        );
    }
    Ok(response)
}

fn insert(headers: &mut HeaderMap, name: impl header::IntoHeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

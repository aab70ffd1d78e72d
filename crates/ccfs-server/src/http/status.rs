//! `POST /CCFS/resource/ccfs/queryAgentOprInfoStatus` (this project's extension, SPEC section 9):
//! the state of a job, so a client behind NAT can work without a callback.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use ccfs_protocol::messages::{parse_status, CallbackStatus, StatusData};
use ccfs_protocol::ResultCode;
use jiff::Timestamp;

use super::auth::Signed;
use super::error::HttpError;
use super::{open_body, respond};
use crate::model::{Job, Role};
use crate::state::AppState;
use crate::telemetry::Interface;

const INTERFACE: Interface = Interface::Status;

pub async fn handle(
    State(state): State<Arc<AppState>>,
    signed: Signed,
) -> Result<Response, HttpError> {
    respond(INTERFACE, status(&state, &signed).await)
}

async fn status(state: &AppState, signed: &Signed) -> Result<StatusData, HttpError> {
    signed.require(Role::Export)?;
    let id = parse_status(&open_body(signed)?)?;
    match state.store.job(&id).await? {
        // Another developer's job is indistinguishable from a missing one.
        Some(job) if job.job.developer_id() == &signed.developer.app_id => {
            Ok(describe(&job, Timestamp::now()))
        }
        _ => Err(ResultCode::FileNotFound.into()),
    }
}

/// The status answer of a job at `now`.
pub fn describe(job: &Job, now: Timestamp) -> StatusData {
    let outcome = job.outcome.as_ref();
    StatusData {
        response_id: job.job.response_id.to_string(),
        state: job.state_at(now).as_str().to_owned(),
        agent_opr_info_file_name: job.job.file_name.to_string(),
        attempts: job.attempts,
        record_count: outcome.map(|o| o.record_count),
        file_count: outcome.map(|o| o.file_count),
        file_size: outcome.map(|o| o.file_size),
        sha256: outcome.map(|o| o.sha256.clone()),
        created_at: job.job.created_at.to_string(),
        finished_at: outcome.map(|o| o.finished_at.to_string()),
        expires_at: outcome.map(|o| o.expires_at.to_string()),
        callback: job.callback.as_ref().map(|c| CallbackStatus {
            state: c.state.as_str().to_owned(),
            attempts: c.attempts,
            last_error: c.last_error.clone(),
        }),
        error: job.error.clone(),
    }
}

//! `POST /CCFS/resource/ccfs/queryAgentOprInfoData`: accept an export job (SPEC section 4).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use ccfs_protocol::messages::{GenerateData, GenerateRequest};
use ccfs_protocol::{ApiError, ResponseId, ResultCode, ZipFileName};
use jiff::Timestamp;

use super::auth::Signed;
use super::error::HttpError;
use super::{open_body, respond};
use crate::config::ReplayPolicy;
use crate::model::{BodyHash, Idempotency, IdempotencyKey, NewJob, RecordQuery, Role};
use crate::state::AppState;
use crate::store::CreateJob;
use crate::telemetry::Interface;

const INTERFACE: Interface = Interface::Generate;

/// The key that makes a repeated generate answer its first job: the `Idempotency-Key` header
/// when sent (a value that is not a key is `0300004`); otherwise, with `replay = retry`, the
/// signature itself (see [`IdempotencyKey::of_signature`]).
fn idempotency_key(
    signed: &Signed,
    replay: ReplayPolicy,
) -> Result<Option<IdempotencyKey>, HttpError> {
    let Some(v) = signed.headers.get("idempotency-key") else {
        return Ok((replay == ReplayPolicy::Retry)
            .then(|| IdempotencyKey::of_signature(&signed.signature))
            .flatten());
    };
    v.to_str()
        .ok()
        .and_then(IdempotencyKey::parse)
        .map(Some)
        .ok_or_else(|| ApiError::new(ResultCode::BadFormat, "Idempotency-Key").into())
}

pub async fn handle(
    State(state): State<Arc<AppState>>,
    signed: Signed,
) -> Result<Response, HttpError> {
    let result = accept(&state, &signed).await.map(|id| GenerateData {
        response_id: id.to_string(),
    });
    respond(INTERFACE, result)
}

async fn accept(state: &AppState, signed: &Signed) -> Result<ResponseId, HttpError> {
    signed.require(Role::Export)?;
    let body = open_body(signed)?;
    let req = GenerateRequest::parse(&body, state.config.max_span())?;
    // An address written in the URL is judged now; a host name only at delivery, where the
    // address it resolves to then is what counts.
    if let Some(ip) = req.callback_url.ip_literal() {
        if !state.config.callback_policy().allows(ip) {
            return Err(ApiError::new(ResultCode::BadFormat, "callBackURL").into());
        }
    }
    let dev = &signed.developer;
    if let Some(account) = &req.account_id {
        if !dev.accounts.contains(account) {
            return Err(ResultCode::AccountNotOwned.into());
        }
    }
    let tz = dev.timezone.zone();
    let (begin, end) = req
        .window
        .to_instants(tz)
        .ok_or_else(|| ApiError::new(ResultCode::BadFormat, "beginTime"))?;
    let idempotency = idempotency_key(signed, state.config.replay)?.map(|key| Idempotency {
        key,
        body_hash: BodyHash::of(&signed.body),
    });
    let now = Timestamp::now();
    let response_id = ResponseId::from_bytes(rand::random());
    let job = NewJob {
        file_name: ZipFileName::new(tz.to_datetime(now).date(), &response_id),
        response_id: response_id.clone(),
        query: RecordQuery {
            developer_id: dev.app_id.clone(),
            begin,
            end,
            account_id: req.account_id,
            agent_id: req.agent_id,
        },
        callback_url: req.callback_url,
        timezone: dev.timezone.clone(),
        csv_header: dev.csv_header,
        created_at: now,
        idempotency,
    };
    match state
        .store
        .create_job(&job, state.config.max_active_jobs)
        .await?
    {
        CreateJob::Created => {
            tracing::info!(response_id = %response_id, developer = %job.developer_id(), "export job queued");
            state.wake_exports.notify_one();
            Ok(response_id)
        }
        CreateJob::Existing(id) => Ok(id),
        CreateJob::TooMany => Err(ResultCode::QueryFlowControl.into()),
    }
}

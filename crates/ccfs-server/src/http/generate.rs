//! `POST /CCFS/resource/ccfs/queryAgentOprInfoData`: accept an export job (SPEC section 4).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use ccfs_protocol::messages::{GenerateData, GenerateRequest};
use ccfs_protocol::{ApiError, AppId, ResponseId, ResultCode, ZipFileName};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use sha2::{Digest, Sha256};

use super::auth::Signed;
use super::error::HttpError;
use super::{open_body, respond};
use crate::config::ReplayPolicy;
use crate::state::AppState;
use crate::store::{CreateJob, NewJob, RecordQuery, Role};

const INTERFACE: &str = "generate";

/// The key that makes a repeated generate answer its first job: the `Idempotency-Key` header
/// (1–255 visible ASCII characters) when sent; otherwise, with `replay = retry`, the signature
/// itself, since an identical signature can only carry the same method, path, host and body.
fn idempotency_key(signed: &Signed, replay: ReplayPolicy) -> Result<Option<String>, HttpError> {
    let Some(v) = signed.headers.get("idempotency-key") else {
        return Ok((replay == ReplayPolicy::Retry).then(|| format!("auth-v2:{}", signed.signature)));
    };
    let key = v
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()));
    key.map(|k| Some(k.to_owned()))
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
    let dev = &signed.developer;
    if let Some(account) = &req.account_id {
        if !dev.accounts.contains(account) {
            return Err(ResultCode::AccountNotOwned.into());
        }
    }
    let tz = TimeZone::get(&dev.timezone)
        .map_err(|e| HttpError::Internal(format!("developer time zone: {e}")))?;
    let (begin, end) = req
        .window
        .to_instants(&tz)
        .ok_or_else(|| ApiError::new(ResultCode::BadFormat, "beginTime"))?;
    let idempotency = idempotency_key(signed, state.config.replay)?
        .map(|k| (k, hex::encode(Sha256::digest(&signed.body))));
    let now = Timestamp::now();
    let response_id = ResponseId::from_bytes(rand::random());
    let developer_id: AppId = dev.app_id.clone();
    let job = NewJob {
        file_name: ZipFileName::new(tz.to_datetime(now).date(), &response_id),
        response_id: response_id.clone(),
        query: RecordQuery {
            developer_id: developer_id.to_string(),
            begin,
            end,
            account_id: req.account_id,
            agent_id: req.agent_id,
        },
        developer_id,
        callback_url: req.callback_url.to_string(),
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
            tracing::info!(response_id = %response_id, developer = %job.developer_id, "export job queued");
            state.wake_exports.notify_one();
            Ok(response_id)
        }
        CreateJob::Existing(id) => Ok(id),
        CreateJob::TooMany => Err(ResultCode::QueryFlowControl.into()),
    }
}

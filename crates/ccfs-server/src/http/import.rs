//! `POST /CCFS/resource/ccfs/importAgentOprInfoData` (this project's extension, SPEC section 9):
//! the CTI platform's way in. All or nothing: a batch with an invalid record stores nothing and
//! the answer names the record and the field. A record whose id is stored with different
//! content is a conflict: `onConflict` `fail` (the default) stores nothing of the batch and
//! answers `0300004` naming the first one (see [`conflict_error`]); `skip` and `replace` store
//! the batch and count the conflicts in the answer.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use ccfs_protocol::import_body::open_import;
use ccfs_protocol::messages::{conflict_error, record_error, ImportData, ImportRequest};
use ccfs_protocol::{ApiError, ResultCode};

use super::auth::Signed;
use super::error::HttpError;
use super::{json_body, respond};
use crate::ingest::{Ingest, IngestError};
use crate::model::Role;
use crate::state::AppState;
use crate::telemetry::Interface;

const INTERFACE: Interface = Interface::Import;

pub async fn handle(
    State(state): State<Arc<AppState>>,
    signed: Signed,
) -> Result<Response, HttpError> {
    respond(INTERFACE, import(&state, &signed).await)
}

async fn import(state: &AppState, signed: &Signed) -> Result<ImportData, HttpError> {
    signed.require(Role::Ingest)?;
    let ImportRequest {
        records: raws,
        on_conflict,
    } = open_import(json_body(signed)?)?;
    let mut ingest = Ingest::new(state.store.clone());
    let mut records = Vec::with_capacity(raws.len());
    for (i, raw) in raws.into_iter().enumerate() {
        match ingest.check(raw).await {
            Ok(r) => records.push(r),
            Err(IngestError::Field(e)) => return Err(record_error(i, &e).into()),
            Err(IngestError::UnknownDeveloper(_)) => {
                let mut e =
                    ApiError::new(ResultCode::BadFormat, &format!("records[{i}].developer_id"));
                e.desc.push_str(" No such developer.");
                return Err(e.into());
            }
            Err(IngestError::Store(e)) => return Err(e.into()),
        }
    }
    let outcome = ingest.insert(&records, on_conflict).await?;
    if outcome.conflicts > 0 {
        crate::telemetry::import_conflicts(on_conflict, outcome.conflicts);
    }
    if outcome.failed(on_conflict) {
        return Err(conflict_error(outcome.conflicts, &outcome.first_conflicts).into());
    }
    crate::telemetry::records_imported(outcome.inserted);
    Ok(ImportData {
        inserted: outcome.inserted,
        already_present: outcome.already_present,
        conflicts: outcome.conflicts,
        replaced: outcome.replaced,
        conflict_ids: outcome
            .first_conflicts
            .into_iter()
            .map(|(_, id)| id)
            .collect(),
    })
}

//! Expiry: deletes the files of jobs older than the retention period, then marks the jobs
//! expired (in that order, so a crash between the two only repeats a harmless delete), purges
//! expired replay-cache and idempotency rows and download slots whose lease has ended, and
//! removes uploads that a killed export left unfinished in the file store (see
//! [`crate::export::unfinished`]).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// Jobs handled per store round trip.
const BATCH: u32 = 100;

/// Runs one sweep; returns how many files were deleted.
pub async fn sweep(state: &AppState) -> Result<u64, String> {
    let now = Timestamp::now();
    let mut deleted = 0;
    loop {
        let jobs = state
            .store
            .expired_jobs(now, BATCH)
            .await
            .map_err(|e| e.to_string())?;
        let n = jobs.len();
        for job in jobs {
            state
                .blobs
                .delete(&job.job.file_name)
                .await
                .map_err(|e| e.to_string())?;
            state
                .store
                .mark_expired(&job.job.response_id)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(response_id = %job.job.response_id, file = %job.job.file_name, "export expired and deleted");
            deleted += 1;
        }
        if n < BATCH as usize {
            break;
        }
    }
    state.store.purge(now).await.map_err(|e| e.to_string())?;
    state
        .store
        .purge_downloads(now)
        .await
        .map_err(|e| e.to_string())?;
    crate::export::remove_unfinished_uploads(&*state.store, &state.blobs)
        .await
        .map_err(|e| e.to_string())?;
    metrics::counter!("ccfs_expired_files_total").increment(deleted);
    Ok(deleted)
}

/// Sweeps every `retention_interval_secs` until `shutdown`. A sweep that fails (the database or
/// the file store is down) is logged and the loop goes on: the interval is its pause (minutes, so
/// an outage costs a line per interval), and what it did not sweep waits in the store for the
/// next one.
pub fn spawn(state: Arc<AppState>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = Duration::from_secs(state.config.retention_interval_secs.max(1));
        loop {
            if let Err(e) = sweep(&state).await {
                tracing::warn!("retention sweep: {e}");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
        }
    })
}

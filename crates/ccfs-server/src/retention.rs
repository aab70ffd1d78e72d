//! Expiry: deletes the files of jobs older than the retention period, then marks the jobs
//! expired (in that order, so a crash between the two only repeats a harmless delete), purges
//! expired replay-cache and idempotency rows and download slots whose lease has ended, and
//! removes uploads that a killed export left unfinished in the file store (see
//! [`crate::export::unfinished`]).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::blobs::Blobs;
use crate::state::AppState;
use crate::store::JobQueue;

/// Jobs handled per store round trip.
const BATCH: u32 = 100;

/// Runs one sweep; returns how many jobs' files were deleted.
pub async fn sweep(state: &AppState) -> Result<u64, String> {
    let now = Timestamp::now();
    let deleted = expire_files(&*state.store, &state.blobs, now).await?;
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

/// Deletes the files of the succeeded jobs expired at `now` and marks them expired; returns how
/// many jobs it expired.
///
/// Every object of a job goes, not only the published one: each attempt uploaded under its own
/// key (see [`crate::export`]), and an attempt that lost its lease may have finished its upload
/// anyway, after another attempt published. Deleting the legacy key and the key of each claim
/// `1..=attempts` reaches all of them: an attempt's number is counted in the store by the claim
/// that starts it, before its upload begins, and a succeeded job is never claimed again, so
/// `attempts` read here is the last number any upload of the job can carry. What this cannot
/// reach is an upload that completes after the job expired, i.e. an attempt stalled for longer
/// than the retention period.
pub(crate) async fn expire_files<S: JobQueue + ?Sized>(
    store: &S,
    blobs: &Blobs,
    now: Timestamp,
) -> Result<u64, String> {
    let mut deleted = 0;
    loop {
        let jobs = store
            .expired_jobs(now, BATCH)
            .await
            .map_err(|e| e.to_string())?;
        let n = jobs.len();
        for job in jobs {
            for key in job.every_key() {
                blobs.delete(&key).await.map_err(|e| e.to_string())?;
            }
            store
                .mark_expired(&job.job.response_id)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(response_id = %job.job.response_id, file = %job.job.file_name, attempts = job.attempts, "export expired and deleted");
            deleted += 1;
        }
        if n < BATCH as usize {
            break;
        }
    }
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

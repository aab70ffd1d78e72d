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
    crate::telemetry::files_expired(deleted);
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::{BlobUrl, Config};
    use crate::model::JobState;
    use crate::store::conformance::{at_ms, finished_job, BASE};
    use crate::store::postgres::tests::postgres_conformance::fresh_schema;
    use crate::store::postgres::PgStore;
    use crate::store::Store;

    /// Three nodes sweeping one database and one file store at the same moment: every expired
    /// job's file is deleted and the job marked expired, none fails, and the purges of the
    /// housekeeping rows run side by side without an error.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs PostgreSQL: set CCFS_TEST_POSTGRES_URL and pass --include-ignored"]
    async fn postgres_nodes_expire_and_purge_at_once() {
        const JOBS: u8 = 24;
        let (_schema, options) = fresh_schema().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config::default();
        let blobs = Blobs::open_url(&BlobUrl::Local(dir.path().join("files")), &config)
            .expect("file store");
        let first: Arc<dyn Store> =
            Arc::new(PgStore::open_with(options.clone(), 4).await.expect("node"));
        let expires_ms = BASE * 1000 + 86_400_000;
        let src = dir.path().join("zip");
        std::fs::write(&src, b"PK not really a zip").expect("write");
        let mut ids = Vec::new();
        for id in 1..=JOBS {
            let (job, _) = finished_job(&first, id, BASE * 1000 + 5_000, expires_ms).await;
            let stored = first
                .job(&job.response_id)
                .await
                .expect("read")
                .expect("job");
            let key = stored.published_key().expect("a published file");
            blobs.put_file(&key, &src).await.expect("upload");
            ids.push(job.response_id);
        }
        let now = at_ms(expires_ms + 1);
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let store: Arc<dyn Store> =
                Arc::new(PgStore::open_with(options.clone(), 4).await.expect("node"));
            let blobs = blobs.clone();
            tasks.push(tokio::spawn(async move {
                let deleted = expire_files(&*store, &blobs, now).await?;
                store.purge(now).await.map_err(|e| e.to_string())?;
                store
                    .purge_downloads(now)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<u64, String>(deleted)
            }));
        }
        let mut deleted = 0;
        for t in tasks {
            deleted += t.await.expect("task").expect("a sweep fails");
        }
        // A job two nodes listed at once may be counted by both; each is expired once.
        assert!(deleted >= u64::from(JOBS), "{deleted} deleted");
        for id in &ids {
            let job = first.job(id).await.expect("read").expect("job");
            assert_eq!(job.state, JobState::Expired, "{id}");
            for key in job.every_key() {
                assert!(
                    matches!(blobs.digest(&key).await, Ok(None)),
                    "{key} is still stored"
                );
            }
        }
    }
}

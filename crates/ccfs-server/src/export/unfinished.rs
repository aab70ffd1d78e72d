//! Uploads a killed export left unfinished in the file store.
//!
//! A process killed while it uploads a zip cannot abort the upload: the local store keeps the
//! staging file `exports/a{ATTEMPT}/NAME#N` (`exports/NAME#N` for an upload from before
//! attempts had keys of their own) for ever: a download never sees it, and expiry deletes only
//! finished files. The job is taken over and uploaded again under a new staging name, so
//! the old one is garbage once the job is no longer running: published by another attempt, or
//! back in the queue to be built afresh. A running job's staging file stays, since its owner
//! may be uploading it right now; a later sweep removes it once the job has finished.

use std::time::SystemTime;

use super::ExportError;
use crate::blobs::Blobs;
use crate::model::JobState;
use crate::store::JobQueue;

/// Removes the unfinished uploads of jobs that are not running; returns how many.
pub async fn remove_unfinished_uploads<S>(store: &S, blobs: &Blobs) -> Result<u64, ExportError>
where
    S: JobQueue + ?Sized,
{
    let mut removed = 0;
    for upload in blobs.unfinished_uploads().await? {
        // Taken before the job is read: a staging file written after this belongs to an upload
        // that began after the read (the job was claimed since), and stays.
        let seen_dead_at = SystemTime::now();
        let job = store.job(&upload.name.response_id()).await?;
        if job.is_some_and(|j| j.state == JobState::Running) {
            continue;
        }
        if blobs.remove_unfinished(&upload, seen_dead_at)? {
            tracing::info!(file = %upload.name, "removed an upload a killed export left unfinished");
            removed += 1;
        }
    }
    Ok(removed)
}

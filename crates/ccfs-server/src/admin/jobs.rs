//! Jobs for an operator: list them, show one, cancel one.

use ccfs_protocol::ResponseId;
use jiff::Timestamp;

use super::{Admin, AdminError, AdminResult};
use crate::model::{Job, JobState};
use crate::store::{CancelJob, JobFilter};

/// The reason a cancelled job shows (the status interface's `error`).
pub const CANCELLED: &str = "The export was cancelled by an operator.";

impl Admin {
    /// The jobs `filter` selects now, newest first.
    pub async fn jobs(&self, filter: &JobFilter) -> AdminResult<Vec<Job>> {
        Ok(self.store.list_jobs(filter, Timestamp::now()).await?)
    }

    /// One job.
    pub async fn job(&self, id: &ResponseId) -> AdminResult<Job> {
        self.store
            .job(id)
            .await?
            .ok_or_else(|| AdminError::NoSuchJob(id.clone()))
    }

    /// Cancels a queued or running job: it ends `cancelled`, so it is never published and
    /// sends no callback, and its download answers "no such file". Whatever its attempts
    /// uploaded so far is deleted here; a worker still building it stops at its next lease
    /// renewal and deletes its own upload (see `crate::export`). A job that has ended is left
    /// as it is ([`AdminError::NotCancellable`], with the state a client sees); one cancelled
    /// already has its files deleted again first, so that a cancel whose deletion failed (or
    /// whose worker stopped before deleting its upload) is finished by running it again.
    pub async fn cancel_job(&self, id: &ResponseId) -> AdminResult<Job> {
        let now = Timestamp::now();
        match self.store.cancel_job(id, CANCELLED, now).await? {
            CancelJob::Cancelled(job) => {
                tracing::info!(job = %id, attempts = job.attempts, "export job cancelled by an operator");
                self.delete_files(&job)
                    .await
                    .map_err(|error| AdminError::FilesLeft {
                        id: id.clone(),
                        error,
                    })?;
                Ok(job)
            }
            CancelJob::Ended(job) => {
                if job.state == JobState::Cancelled {
                    self.delete_files(&job).await?;
                }
                Err(AdminError::NotCancellable {
                    id: id.clone(),
                    state: job.state_at(now),
                })
            }
            CancelJob::NotFound => Err(AdminError::NoSuchJob(id.clone())),
        }
    }
}

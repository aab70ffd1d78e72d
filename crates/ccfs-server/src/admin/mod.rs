//! What an operator does to an installation from the command line (`ccfs jobs …`, `ccfs app
//! delete`), against the configured store and file store, while servers run on them: list and
//! show jobs ([`jobs`]), cancel one, queue a callback that gave up again ([`callbacks`]),
//! delete a developer with everything it holds ([`developers`]), and the JSON a job is shown
//! as ([`view`]).
//!
//! Every change is one atomic step of the store (see `crate::store`), so a command racing a
//! running server (a finish, a claim, a callback attempt, a generate) either wins whole or
//! finds the job or callback already changed and says so. A running server learns of it from
//! the store, on any node: an export worker at its next lease renewal (a third of
//! `job_lease_secs`), the callback loop at its next look at the outbox (at most
//! [`CALLBACK_LOOK`] apart), a request at once (developers are read from the store on every
//! request; nothing caches them).

mod callbacks;
mod developers;
mod jobs;
mod view;

use std::sync::Arc;

use ccfs_protocol::{AppId, ResponseId};

use crate::blobs::{BlobError, Blobs};
use crate::config::Config;
use crate::model::{CallbackState, Job, JobState};
use crate::server::Core;
use crate::store::{Store, StoreError};

pub use developers::{DeletePlan, Deleted};
pub use view::JobView;

/// How far apart a running server's callback loop looks at the outbox at most, whatever it is
/// waiting for: a callback queued by another process is attempted within this.
pub const CALLBACK_LOOK: std::time::Duration = crate::callback::IDLE;

/// An operator's error: what cannot be done, and why, in words for the operator.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no job with response id {0}")]
    NoSuchJob(ResponseId),
    #[error("no developer with app id {0}")]
    NoSuchDeveloper(String),
    /// Only a queued or running job can be cancelled.
    #[error("job {id} is {} already: only a queued or running job can be cancelled", .state.as_str())]
    NotCancellable { id: ResponseId, state: JobState },
    /// The job is cancelled, but not every file of it could be deleted.
    #[error(
        "job {id} is cancelled, but not all of its files could be deleted ({error}); cancel it \
         again to delete them"
    )]
    FilesLeft { id: ResponseId, error: BlobError },
    /// Only a succeeded job has a callback.
    #[error(
        "job {id} has no callback: it is {}, and only a succeeded job sends one",
        .state.as_str()
    )]
    NoCallback { id: ResponseId, state: JobState },
    /// The job's file is gone: a callback would name a file that cannot be downloaded.
    #[error("the file of job {0} has expired: a callback would announce a file that is gone")]
    FileExpired(ResponseId),
    /// Only a callback that gave up is queued again.
    #[error(
        "the callback of job {id} is {}{}: only a callback that gave up (failed) is queued again",
        .state.as_str(),
        callback_state_why(*.state)
    )]
    CallbackNotFailed {
        id: ResponseId,
        state: CallbackState,
    },
    /// A developer with jobs in progress is not deleted.
    #[error(
        "developer {app_id} has {} queued or running ({})",
        counted_jobs(.jobs.len()),
        list_jobs(.jobs)
    )]
    ActiveJobs { app_id: AppId, jobs: Vec<Job> },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
}

fn callback_state_why(state: CallbackState) -> &'static str {
    match state {
        CallbackState::Pending => " (it is being retried already)",
        CallbackState::Delivered => " (the receiver has it)",
        CallbackState::Superseded => " (its file was downloaded)",
        CallbackState::Failed => "",
    }
}

fn counted_jobs(n: usize) -> String {
    match n {
        1 => "1 job".to_owned(),
        n => format!("{n} jobs"),
    }
}

fn list_jobs(jobs: &[Job]) -> String {
    jobs.iter()
        .map(|j| format!("{} {}", j.job.response_id, j.state.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub type AdminResult<T> = Result<T, AdminError>;

/// The operator's view of an installation: its store, its file store and its configuration.
#[derive(Clone)]
pub struct Admin {
    store: Arc<dyn Store>,
    blobs: Blobs,
    config: Arc<Config>,
}

impl Admin {
    /// Over what `core` opened.
    pub fn new(core: &Core) -> Self {
        Self {
            store: core.store.clone(),
            blobs: core.blobs.clone(),
            config: core.config.clone(),
        }
    }

    /// Deletes every object a job's attempts can have uploaded ([`Job::every_key`]); deleting a
    /// key that holds nothing is no error.
    async fn delete_files(&self, job: &Job) -> Result<(), BlobError> {
        for key in job.every_key() {
            self.blobs.delete(&key).await?;
        }
        Ok(())
    }
}

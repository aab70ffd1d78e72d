//! The export job runner: workers that claim queued jobs, build each zip (see [`archive`]),
//! upload it to the file store, and publish it together with its callback.
//!
//! A job is held under a lease in the store. While a worker runs a job it renews the lease every
//! third of its length; a worker that finds its lease taken (another node decided this one was
//! dead, or an operator cancelled the job) stops, deletes what it uploaded and drops the job
//! without touching it, since the job is no longer its own. So a cancelled job's worker stops
//! within a third of `job_lease_secs`, and one that completes first has its finish refused and
//! publishes nothing, sends no callback. On shutdown a
//! running export stops, its work file is deleted and the job goes back to the queue, so no job
//! is lost and none is half published. A failed attempt goes back to the queue too, until the
//! job has been claimed `job_max_attempts` times; then it is marked failed with a reason that
//! the status interface shows. What a killed process leaves in its work directory is swept by
//! [`spawn_work_sweeper`] (see [`work`]), what it left half uploaded by
//! [`remove_unfinished_uploads`] (see [`unfinished`]).
//!
//! Each attempt uploads under a key of its own (`exports/a{attempt}/{file_name}`), and publishing
//! records which attempt's object is the job's file. An attempt that stalls past its lease (a
//! pause, a partition from the database but not from the file store) may still complete its
//! upload after another attempt published; with a key of its own, it cannot replace the
//! published bytes. The file name the client sees is the same for every attempt.

pub mod archive;
pub mod unfinished;
pub mod work;

#[cfg(test)]
mod stale_attempts;
#[cfg(test)]
mod tests;

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::blobs::{BlobError, Blobs, Stable, Stored};
use crate::config::Config;
use crate::files::remove_quietly;
use crate::isolate::isolated;
use crate::model::{Callback, Job, JobOutcome, JobState};
use crate::pause::ErrorPause;
use crate::state::AppState;
use crate::store::{JobQueue, Records, Store, StoreError};
use crate::telemetry::{self, ExportOutcome};

pub use archive::{build_zip, Built, ZipSettings};
pub use unfinished::remove_unfinished_uploads;
pub use work::WorkFiles;

/// How long an idle worker sleeps before looking for a job again when nobody wakes it: only
/// jobs queued by another node wait for it, since those do not ring this process's bell.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Longest pause of a worker after an attempt that will be retried.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(30);

/// Why an export could not be built or published.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("writing the export file: {0}")]
    Io(#[from] std::io::Error),
    #[error("writing the zip: {0}")]
    Zip(#[from] rawzip::Error),
    /// The zip writer thread ended abnormally (a panic, or the runtime shutting down).
    #[error("zip writer: {0}")]
    Writer(String),
    /// The writer saw the record feed end without being told the export was complete.
    #[error("the record feed stopped before the export was complete")]
    Aborted,
    /// Shutdown, or the job's lease was lost.
    #[error("the export was cancelled")]
    Cancelled,
    #[error("uploading the export file: {0}")]
    Blob(#[from] BlobError),
    #[error("encoding the callback body: {0}")]
    Json(#[from] serde_json::Error),
    /// A bug: the job's code panicked (caught at the job's boundary).
    #[error("the export panicked: {0}")]
    Panicked(String),
}

impl ExportError {
    /// A sentence for the developer (the status interface's `error`): what went wrong, without
    /// the internal details (paths, database messages), which go to the server log.
    pub fn reason(&self) -> String {
        match self {
            ExportError::Store(_) => {
                "The export could not be built: the records could not be read.".into()
            }
            ExportError::Blob(_) => "The export could not be stored in the file store.".into(),
            ExportError::Io(_)
            | ExportError::Zip(_)
            | ExportError::Writer(_)
            | ExportError::Aborted
            | ExportError::Json(_) => "The export file could not be written.".into(),
            ExportError::Panicked(_) => {
                "The export could not be built because of an internal error.".into()
            }
            ExportError::Cancelled => "The export was interrupted.".into(),
        }
    }
}

/// What the export workers share.
///
/// Generic over the store, which the runner uses through two of its parts only, [`JobQueue`]
/// and [`Records`]: the server runs it on its `dyn Store` ([`Exports::of`]), and the runner's
/// tests on a fake that implements those two parts and nothing else. Generic rather than
/// `Arc<dyn JobQueue>` and `Arc<dyn Records>` fields because making those from the server's
/// `Arc<dyn Store>` takes trait upcasting, which is newer than this crate's minimum Rust; one
/// type parameter, bound once on the `impl` below, costs less than a second handle per part.
pub struct Exports<S: ?Sized> {
    pub store: Arc<S>,
    pub config: Arc<Config>,
    pub blobs: Blobs,
    /// This node's name: the owner of its job leases.
    pub node_name: String,
    /// Rung when a job is queued, so an idle worker starts at once.
    pub wake: Arc<Notify>,
    /// How long an idle worker waits for `wake` before looking in the store anyway
    /// ([`IDLE_POLL`]; the tests make it an hour, so that a job they see run was woken for).
    pub idle_poll: Duration,
    /// Rung when a job is published with its callback, for the callback loop.
    pub callbacks: Arc<Notify>,
    /// Where jobs are built, and which of those files this process is using.
    pub work: WorkFiles,
}

impl Exports<dyn Store> {
    /// The workers' share of the server's state.
    pub fn of(state: &AppState) -> Self {
        Self {
            store: state.store.clone(),
            config: state.config.clone(),
            blobs: state.blobs.clone(),
            node_name: state.node_name.clone(),
            wake: state.wake_exports.clone(),
            idle_poll: IDLE_POLL,
            callbacks: state.wake_callbacks.clone(),
            work: WorkFiles::new(state.config.work_dir()),
        }
    }
}

/// Starts `config.export_workers` export workers (none for an API-only node). Each stops when
/// `shutdown` fires, after releasing the job it holds; await the handles to know they are done.
pub fn spawn_workers<S>(
    exports: Arc<Exports<S>>,
    shutdown: CancellationToken,
) -> Vec<JoinHandle<()>>
where
    S: JobQueue + Records + ?Sized,
{
    (0..exports.config.export_workers)
        .map(|n| tokio::spawn(exports.clone().worker(shutdown.clone(), n)))
        .collect()
}

/// Starts the sweep of this node's work directory (see [`work`]): at once, then once per lease,
/// until `shutdown`. Every node runs it, an API-only one too.
pub fn spawn_work_sweeper<S>(
    exports: Arc<Exports<S>>,
    shutdown: CancellationToken,
) -> JoinHandle<()>
where
    S: JobQueue + Records + ?Sized,
{
    tokio::spawn(async move {
        let lease = lease_std(&exports.config).max(Duration::from_secs(1));
        loop {
            exports.work.sweep(lease).await;
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(lease) => {}
            }
        }
    })
}

/// How a claimed job ended for this worker.
enum Ended {
    Succeeded,
    Failed,
    /// Given back after a retryable error; the worker pauses before claiming again, so a
    /// transient fault (a database restart) does not burn every attempt within a second.
    Released {
        pause: Duration,
    },
    /// Given back because of shutdown.
    Interrupted,
    /// Another node holds the job now, or an operator cancelled it; this one left it alone.
    Abandoned,
}

impl<S> Exports<S>
where
    S: JobQueue + Records + ?Sized,
{
    async fn worker(self: Arc<Self>, shutdown: CancellationToken, n: u32) {
        tracing::debug!(worker = n, "export worker started");
        // A store error while claiming (the database is down) pauses the worker, longer after
        // each failure, so an outage is neither hammered nor the end of the worker.
        let mut claim_errors = ErrorPause::default();
        while !shutdown.is_cancelled() {
            let now = Timestamp::now();
            let lease_until = later(now, self.config.job_lease());
            let claimed = self
                .store
                .claim_job(&self.node_name, now, lease_until)
                .await;
            if claimed.is_ok() {
                claim_errors.succeeded("export worker");
            }
            let pause = match claimed {
                Ok(Some(job)) => match self.run_isolated(job, &shutdown).await {
                    Ended::Released { pause } => Some(pause),
                    Ended::Succeeded | Ended::Failed | Ended::Abandoned | Ended::Interrupted => {
                        None
                    }
                },
                Ok(None) => {
                    // `notify_one` keeps a permit when no worker is waiting, so a job queued
                    // between the claim above and this wait is not missed: it ends the wait at
                    // once.
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(self.idle_poll) => {}
                    }
                    None
                }
                Err(e) => {
                    let pause = claim_errors.failed();
                    tracing::warn!(worker = n, error = %e, retry_in = ?pause, "cannot claim an export job");
                    Some(pause)
                }
            };
            if let Some(pause) = pause {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
        tracing::debug!(worker = n, "export worker stopped");
    }

    /// Runs one claimed job so that a bug in it costs the job an attempt, not the worker: a
    /// panic is caught at the job's boundary, logged with the job id, and handled as a failed
    /// attempt (retried, or failed after the last one); the worker goes on with the next job.
    ///
    /// `AssertUnwindSafe` holds because nothing the job touched is used after a panic: the job
    /// is read again from the store when it is claimed again, its work file is removed here,
    /// and the worker's own state (configuration, store and file store handles) is not
    /// changed by a job.
    async fn run_isolated(&self, job: Job, shutdown: &CancellationToken) -> Ended {
        let id = job.job.response_id.clone();
        let again = job.clone();
        match isolated(AssertUnwindSafe(self.run_job(job, shutdown))).await {
            Ok(ended) => ended,
            Err(what) => {
                tracing::error!(job = %id, panic = %what, "export job panicked");
                remove_quietly(&self.work.path(&id));
                self.failed_attempt(&again, ExportError::Panicked(what))
                    .await
            }
        }
    }

    /// Runs one claimed job to its end, renewing the lease meanwhile.
    async fn run_job(&self, job: Job, shutdown: &CancellationToken) -> Ended {
        let id = job.job.response_id.clone();
        let started = Instant::now();
        tracing::info!(job = %id, attempt = job.attempts, developer = %job.job.developer_id(), "export started");
        // Held until this attempt is over, so the sweep never takes the file from under it.
        let held = self.work.hold(&id);
        let work_file = held.path();
        // Fires on shutdown (it is a child of it) and when the lease is lost.
        let cancel = shutdown.child_token();
        let mut lease_lost = false;

        let result = {
            let export = self.export_job(&job, &work_file, &cancel);
            tokio::pin!(export);
            // Renewal runs in this task, beside the export, rather than in a task of its own: it
            // ends with the export, and nothing is left to stop.
            let period = (lease_std(&self.config) / 3).max(Duration::from_millis(100));
            let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            renew.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    r = &mut export => break r,
                    _ = renew.tick(), if !lease_lost => {
                        let until = later(Timestamp::now(), self.config.job_lease());
                        match self.store.renew_lease(&id, &self.node_name, until).await {
                            Ok(true) => {}
                            Ok(false) => {
                                lease_lost = true;
                                cancel.cancel();
                            }
                            // Keep going: the store may be back before the lease runs out, and if
                            // not, finishing is refused and the job is another node's.
                            Err(e) => tracing::warn!(job = %id, error = %e, "cannot renew the lease of an export job"),
                        }
                    }
                }
            }
        };
        // Gone already after a successful upload; a partial file after anything else.
        remove_quietly(&work_file);
        let took = started.elapsed();
        let seconds = took.as_secs_f64();

        let (built, stored) = match result {
            Ok(done) => done,
            Err(e) if lease_lost => {
                tracing::debug!(job = %id, error = %e, "export stopped: the lease was lost");
                return self.lost(&job).await;
            }
            Err(ExportError::Cancelled) if shutdown.is_cancelled() => {
                self.release(&job).await;
                tracing::info!(job = %id, seconds, "export interrupted by shutdown; job released");
                return Ended::Interrupted;
            }
            Err(e) => return self.failed_attempt(&job, e).await,
        };

        match self.publish(&job, built, &stored).await {
            Ok(true) => {
                self.callbacks.notify_one();
                telemetry::export_succeeded(built.record_count, took);
                tracing::info!(
                    job = %id,
                    records = built.record_count,
                    files = built.file_count,
                    bytes = stored.size,
                    seconds,
                    "export succeeded"
                );
                Ended::Succeeded
            }
            Ok(false) => self.lost(&job).await,
            Err(e) => self.failed_attempt(&job, e).await,
        }
    }

    /// After this attempt lost its job (its lease renewal or its finish was refused): another
    /// node took the job over, or an operator cancelled it. Either way the job is not this
    /// attempt's to touch any more; what the attempt uploaded is deleted, since it is under
    /// the attempt's own key, which no other attempt writes or publishes. An upload cut short
    /// was aborted already; one that completed before the loss would otherwise stay: the
    /// file of a job taken over is another attempt's, and a cancelled job has none. Were the
    /// delete to fail (or this process to stop first), retention removes the upload of a job
    /// taken over with the job's published file (see `crate::retention`); that of a cancelled
    /// job waits for `ccfs jobs cancel`, which deletes every key of the job, to be run again.
    async fn lost(&self, job: &Job) -> Ended {
        let id = &job.job.response_id;
        let cancelled = matches!(
            self.store.job(id).await,
            Ok(Some(j)) if j.state == JobState::Cancelled
        );
        let key = job.attempt_key();
        let deleted = self.blobs.delete(&key).await;
        if cancelled {
            telemetry::export_ended(ExportOutcome::Cancelled);
            tracing::info!(job = %id, attempt = job.attempts, "export job cancelled by an operator; stopped, its upload deleted");
        } else {
            telemetry::export_ended(ExportOutcome::TakenOver);
            tracing::info!(job = %id, attempt = job.attempts, "export job taken over by another node; dropped");
        }
        if let Err(e) = deleted {
            tracing::warn!(job = %id, file = %key, error = %e, "cannot delete the upload of an export attempt that lost its job");
        }
        Ended::Abandoned
    }

    /// Builds the zip into `work_file` and uploads it under this attempt's key
    /// ([`Job::attempt_key`]): never over the file another attempt of the job published, should
    /// this one have stalled past its lease and be uploading late.
    async fn export_job(
        &self,
        job: &Job,
        work_file: &Path,
        cancel: &CancellationToken,
    ) -> Result<(Built, Stored), ExportError> {
        let j = &job.job;
        let timezone = j.timezone.zone().clone();
        let settings = ZipSettings {
            rows_per_file: self.config.rows_per_file,
            compression_level: self.config.compression_level,
            csv_header: j.csv_header,
            stamp: timezone.to_datetime(j.created_at),
            timezone,
        };
        if let Some(dir) = work_file.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let records = self.store.export_rows(j.query.clone());
        let key = job.attempt_key();
        // The upload runs beside the build, a part at a time as the zip writer finishes them,
        // so a large export is mostly uploaded when its last row is written. A failed upload
        // stops the build (nothing would be published); a failed build stops the upload, which
        // then reports only that its file was not finished: the build's error is the cause.
        let (stable_tx, stable_rx) = watch::channel(Stable::default());
        let stop_build = cancel.child_token();
        let build =
            archive::build_zip_until(records, &settings, work_file, &stop_build, Some(stable_tx));
        let upload = async {
            let r = self.blobs.put_growing(&key, work_file, stable_rx).await;
            if r.is_err() {
                stop_build.cancel();
            }
            r
        };
        match tokio::join!(build, upload) {
            (Ok(built), Ok(stored)) => Ok((built, stored)),
            // Cancelled from outside (shutdown, lost lease): say so, whatever the upload saw.
            (Err(e), _) if cancel.is_cancelled() => Err(e),
            // The build stopped because the upload failed: the upload's error is the cause.
            (Err(ExportError::Cancelled), Err(e)) => Err(e.into()),
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(e.into()),
        }
    }

    /// Marks the job succeeded and enqueues its callback, in one store step. False when the lease
    /// was lost meanwhile.
    async fn publish(&self, job: &Job, built: Built, stored: &Stored) -> Result<bool, ExportError> {
        let j = &job.job;
        let now = Timestamp::now();
        let outcome = JobOutcome {
            record_count: built.record_count,
            file_count: built.file_count,
            file_size: stored.size,
            sha256: stored.sha256.clone(),
            finished_at: now,
            expires_at: later(now, self.config.retention()),
            // The key `export_job` uploaded under, recorded with that upload's size and SHA-256
            // in one store step: whichever attempt the store lets publish, the job names the
            // object whose bytes it describes.
            file_attempt: Some(job.attempts),
        };
        let callback = Callback::first(j, now, Config::secs(self.config.callback_give_up_secs))?;
        Ok(self
            .store
            .finish_job(&j.response_id, &self.node_name, &outcome, &callback)
            .await?)
    }

    /// After an attempt failed: retry later, or give up when the job has used its attempts.
    async fn failed_attempt(&self, job: &Job, e: ExportError) -> Ended {
        let id = &job.job.response_id;
        let max = self.config.job_max_attempts;
        if job.attempts >= max {
            let reason = format!("{} Gave up after {} attempts.", e.reason(), job.attempts);
            if let Err(se) = self
                .store
                .fail_job(id, &self.node_name, &reason, Timestamp::now())
                .await
            {
                // The lease runs out and the job is claimed again, which then gives up at once.
                tracing::warn!(job = %id, error = %se, "cannot mark an export job failed");
            }
            telemetry::export_ended(ExportOutcome::Failed);
            tracing::error!(job = %id, attempt = job.attempts, error = %e, "export failed");
            Ended::Failed
        } else {
            self.release(job).await;
            tracing::warn!(job = %id, attempt = job.attempts, max_attempts = max, error = %e, "export attempt failed; job released for a retry");
            let pause = Duration::from_secs(1u64 << job.attempts.saturating_sub(1).min(5))
                .min(MAX_RETRY_PAUSE);
            Ended::Released { pause }
        }
    }

    /// Gives the job back to the queue. A failure only delays it: the lease runs out and the job
    /// is claimed again.
    async fn release(&self, job: &Job) {
        let id = &job.job.response_id;
        if let Err(e) = self.store.release_job(id, &self.node_name).await {
            tracing::warn!(job = %id, error = %e, "cannot release an export job");
        }
        telemetry::export_ended(ExportOutcome::Released);
    }
}

/// `now + d`, saturating instead of panicking on an absurd configured duration.
fn later(now: Timestamp, d: SignedDuration) -> Timestamp {
    now.checked_add(d).unwrap_or(Timestamp::MAX)
}

fn lease_std(config: &Config) -> Duration {
    Duration::from_secs(config.job_lease_secs)
}

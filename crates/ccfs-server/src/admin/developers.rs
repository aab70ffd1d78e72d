//! Deleting a developer with everything the installation holds of it: its records, jobs,
//! callbacks, idempotency keys and the files of its exports.
//!
//! The files go first, the rows after, in one transaction: a file store that fails stops the
//! deletion before any row is gone, and the deletion can be run again (deleting a file twice is
//! harmless). Meanwhile the developer is disabled, so no request of it starts a job between
//! the look at its jobs and their deletion; should one have slipped in all the same (a request
//! already past its authentication), the transaction refuses, the developer is enabled again
//! as it was, and its files of finished exports are gone: its downloads answer "no such file".

use std::collections::HashSet;

use ccfs_protocol::AppId;

use super::{Admin, AdminError, AdminResult};
use crate::model::{Developer, Job, JobState};
use crate::store::{DeleteDeveloper, Holdings, JobFilter};

/// What deleting a developer would delete, and whether it may be deleted now.
#[derive(Debug, Clone)]
pub struct DeletePlan {
    pub developer: Developer,
    /// Its rows in the store.
    pub held: Holdings,
    /// Its exports whose file is in the file store (succeeded, not yet expired by retention).
    pub files: u64,
    /// Its jobs queued or running, which stop the deletion.
    pub active: Vec<Job>,
}

/// What a deletion deleted.
#[derive(Debug, Clone)]
pub struct Deleted {
    pub app_id: AppId,
    /// Its rows that were in the store.
    pub held: Holdings,
    /// Its exports whose file was deleted from the file store.
    pub files: u64,
}

impl Admin {
    /// What [`Admin::delete_developer`] would do now.
    pub async fn delete_plan(&self, app_id: &str) -> AdminResult<DeletePlan> {
        let developer = self
            .store
            .developer(app_id)
            .await?
            .ok_or_else(|| AdminError::NoSuchDeveloper(app_id.to_owned()))?;
        let jobs = self.jobs_of(&developer.app_id).await?;
        let held = self.store.holdings(&developer.app_id).await?;
        Ok(DeletePlan {
            held,
            files: with_file(&jobs),
            active: jobs.into_iter().filter(|j| j.state.is_active()).collect(),
            developer,
        })
    }

    /// Deletes a developer and everything of it (see [`crate::store::Developers::delete_developer`]
    /// for the rows), and the files of its exports (every attempt's upload). Refused while it
    /// has a job queued or running ([`AdminError::ActiveJobs`]), with nothing changed.
    pub async fn delete_developer(&self, app_id: &str) -> AdminResult<Deleted> {
        let plan = self.delete_plan(app_id).await?;
        let developer = plan.developer;
        let id = developer.app_id.clone();
        if !plan.active.is_empty() {
            return Err(AdminError::ActiveJobs {
                app_id: id,
                jobs: plan.active,
            });
        }
        if developer.enabled {
            self.set_enabled(&id, false).await?;
        }
        let jobs = self.jobs_of(&id).await?;
        let files = with_file(&jobs);
        let result = self.delete_with_files(&id, &jobs).await;
        if result.is_err() && developer.enabled {
            // As it was: nothing of it is deleted but (maybe) files.
            if let Err(e) = self.set_enabled(&id, true).await {
                tracing::warn!(developer = %id, error = %e, "cannot enable a developer again after a refused deletion");
            }
        }
        let held = result?;
        tracing::info!(developer = %id, jobs = held.jobs, records = held.records, "developer deleted by an operator");
        Ok(Deleted {
            app_id: id,
            held,
            files,
        })
    }

    /// Deletes the files of `jobs`, then the developer's rows, then the files of any job of it
    /// the rows held that `jobs` did not (one accepted since they were read).
    async fn delete_with_files(&self, id: &AppId, jobs: &[Job]) -> AdminResult<Holdings> {
        for job in jobs {
            self.delete_files(job).await?;
        }
        match self.store.delete_developer(id).await? {
            DeleteDeveloper::Deleted { held, jobs: rows } => {
                let seen: HashSet<_> = jobs.iter().map(|j| &j.job.response_id).collect();
                for job in rows.iter().filter(|j| !seen.contains(&j.job.response_id)) {
                    self.delete_files(job).await?;
                }
                Ok(held)
            }
            DeleteDeveloper::Active(active) => Err(AdminError::ActiveJobs {
                app_id: id.clone(),
                jobs: active,
            }),
            DeleteDeveloper::NotFound => Err(AdminError::NoSuchDeveloper(id.to_string())),
        }
    }

    async fn jobs_of(&self, id: &AppId) -> AdminResult<Vec<Job>> {
        let filter = JobFilter {
            developer_id: Some(id.clone()),
            ..JobFilter::default()
        };
        self.jobs(&filter).await
    }

    /// Read afresh, so that nothing else of it changed meanwhile is written back.
    async fn set_enabled(&self, id: &AppId, enabled: bool) -> AdminResult<()> {
        let mut d = self
            .store
            .developer(id.as_str())
            .await?
            .ok_or_else(|| AdminError::NoSuchDeveloper(id.to_string()))?;
        d.enabled = enabled;
        Ok(self.store.update_developer(&d).await?)
    }
}

/// How many of `jobs` have their file in the file store.
fn with_file(jobs: &[Job]) -> u64 {
    jobs.iter()
        .filter(|j| j.state == JobState::Succeeded)
        .count() as u64
}

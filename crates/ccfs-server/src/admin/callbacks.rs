//! Callbacks for an operator: queue one that gave up again.

use ccfs_protocol::ResponseId;
use jiff::Timestamp;

use super::{Admin, AdminError, AdminResult};
use crate::config::Config;
use crate::model::{Job, JobState};
use crate::store::RetryCallback;

impl Admin {
    /// Queues the callback of a succeeded job that gave up (`failed`) again, as if the job had
    /// just been published: pending, due now, its attempts counted from 0 and given up
    /// `callback_give_up_secs` from now, so its backoff starts over. A running server attempts
    /// it at its next look at the outbox ([`super::CALLBACK_LOOK`]). Refused for a job without
    /// a callback, a file past its expiry, and a callback in any other state.
    pub async fn retry_callback(&self, id: &ResponseId) -> AdminResult<Job> {
        let now = Timestamp::now();
        let job = self.job(id).await?;
        let state = job.state_at(now);
        if job.callback.is_none() || !matches!(state, JobState::Succeeded | JobState::Expired) {
            return Err(AdminError::NoCallback {
                id: id.clone(),
                state,
            });
        }
        if state == JobState::Expired {
            return Err(AdminError::FileExpired(id.clone()));
        }
        let give_up = Config::secs(self.config.callback_give_up_secs);
        let give_up_at = now.checked_add(give_up).unwrap_or(Timestamp::MAX);
        match self.store.retry_callback(id, now, give_up_at).await? {
            RetryCallback::Queued => {
                tracing::info!(job = %id, "callback queued again by an operator");
                self.job(id).await
            }
            RetryCallback::NotFailed(state) => Err(AdminError::CallbackNotFailed {
                id: id.clone(),
                state,
            }),
            RetryCallback::NotFound => Err(AdminError::NoCallback {
                id: id.clone(),
                state,
            }),
        }
    }
}

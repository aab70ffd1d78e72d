//! A finished job's callback as the outbox holds it (SPEC section 6), and how one attempt to
//! deliver it ended.

use ccfs_protocol::envelope::RequestEnvelope;
use ccfs_protocol::messages::CallbackBody;
use ccfs_protocol::{AppId, ResponseId};
use jiff::{SignedDuration, Timestamp};

use super::{CallbackUrl, NewJob};

/// The delivery state of a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallbackState {
    Pending,
    Delivered,
    Failed,
    /// The file's owner downloaded the file before the callback got through: it has no
    /// purpose any more and is not retried.
    Superseded,
}

impl CallbackState {
    pub const ALL: [CallbackState; 4] = [
        CallbackState::Pending,
        CallbackState::Delivered,
        CallbackState::Failed,
        CallbackState::Superseded,
    ];

    /// The name the status interface answers (SPEC section 9).
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackState::Pending => "pending",
            CallbackState::Delivered => "delivered",
            CallbackState::Failed => "failed",
            CallbackState::Superseded => "superseded",
        }
    }
}

/// A callback in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    pub response_id: ResponseId,
    pub developer_id: AppId,
    pub url: CallbackUrl,
    /// The exact JSON body to POST.
    pub body: String,
    pub state: CallbackState,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    /// After this instant a failed attempt gives up.
    pub give_up_at: Timestamp,
    pub last_error: Option<String>,
}

impl Callback {
    /// The callback of `job`, finished at `now`, as the outbox first holds it: pending, due at
    /// once, no attempt made yet, given up `give_up_after` later. Its body names the file, and
    /// the account when the job was filtered by one (nothing else: strict receivers must not
    /// meet unknown fields).
    pub fn first(
        job: &NewJob,
        now: Timestamp,
        give_up_after: SignedDuration,
    ) -> Result<Callback, serde_json::Error> {
        let body = CallbackBody {
            response_id: job.response_id.to_string(),
            agent_opr_info_file_name: job.file_name.to_string(),
            account_id: job.query.account_id.clone(),
        };
        Ok(Callback {
            response_id: job.response_id.clone(),
            developer_id: job.developer_id().clone(),
            url: job.callback_url.clone(),
            body: serde_json::to_string(&RequestEnvelope::new(body))?,
            state: CallbackState::Pending,
            attempts: 0,
            next_attempt_at: now,
            // Saturating: an absurd configured duration means "never", not a panic.
            give_up_at: now.checked_add(give_up_after).unwrap_or(Timestamp::MAX),
            last_error: None,
        })
    }
}

/// How one callback attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    Retry {
        next_attempt_at: Timestamp,
        error: String,
    },
    GaveUp {
        error: String,
    },
}

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

    /// How a failed attempt ends: tried again at `next_attempt_at`, unless that is past the
    /// give-up instant (the file stays either way).
    pub fn failed_attempt(&self, next_attempt_at: Timestamp, error: String) -> Attempt {
        if next_attempt_at > self.give_up_at {
            Attempt::GaveUp { error }
        } else {
            Attempt::Retry {
                next_attempt_at,
                error,
            }
        }
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

#[cfg(test)]
mod tests {
    use ccfs_protocol::ZipFileName;

    use super::*;
    use crate::model::{RecordQuery, TimeZoneName};

    fn job(account: Option<&str>) -> NewJob {
        let response_id = ResponseId::from_bytes([1; 16]);
        NewJob {
            file_name: ZipFileName::new(jiff::civil::date(2024, 5, 1), &response_id),
            response_id,
            query: RecordQuery {
                developer_id: AppId::parse("dev").unwrap(),
                begin: Timestamp::UNIX_EPOCH,
                end: Timestamp::UNIX_EPOCH,
                account_id: account.map(str::to_owned),
                agent_id: Some("1001".into()),
            },
            callback_url: CallbackUrl::parse("https://example.com/cb").unwrap(),
            timezone: TimeZoneName::utc(),
            csv_header: false,
            created_at: Timestamp::UNIX_EPOCH,
            idempotency: None,
        }
    }

    #[test]
    fn a_first_callback_is_due_at_once_and_names_the_file() {
        let now: Timestamp = "2024-05-01T00:00:00Z".parse().unwrap();
        let j = job(Some("acc1"));
        let cb = Callback::first(&j, now, SignedDuration::from_hours(24)).unwrap();
        assert_eq!(
            (cb.state, cb.attempts, cb.next_attempt_at, cb.last_error),
            (CallbackState::Pending, 0, now, None)
        );
        assert_eq!(cb.give_up_at.to_string(), "2024-05-02T00:00:00Z");
        assert_eq!(
            (&cb.url, &cb.developer_id),
            (&j.callback_url, j.developer_id())
        );
        assert_eq!(
            cb.body,
            format!(
                r#"{{"request":{{"version":"2.0"}},"msgBody":{{"responseId":"{}","agentOprInfoFileName":"{}","accountId":"acc1"}}}}"#,
                j.response_id, j.file_name
            )
        );
        let cb = Callback::first(&job(None), now, SignedDuration::MAX).unwrap();
        assert!(!cb.body.contains("accountId") && !cb.body.contains("1001"));
        assert_eq!(cb.give_up_at, Timestamp::MAX);
    }

    #[test]
    fn a_failed_attempt_is_retried_until_the_give_up_instant() {
        let now: Timestamp = "2024-05-01T00:00:00Z".parse().unwrap();
        let cb = Callback::first(&job(None), now, SignedDuration::from_hours(1)).unwrap();
        let at_end = cb.give_up_at;
        assert_eq!(
            cb.failed_attempt(at_end, "HTTP 503".into()),
            Attempt::Retry {
                next_attempt_at: at_end,
                error: "HTTP 503".into()
            }
        );
        assert_eq!(
            cb.failed_attempt(at_end + SignedDuration::from_millis(1), "HTTP 503".into()),
            Attempt::GaveUp {
                error: "HTTP 503".into()
            }
        );
    }
}

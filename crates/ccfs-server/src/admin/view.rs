//! A job as `ccfs jobs show` and `ccfs jobs list --json` print it: what the status interface
//! answers its developer (the same mapping, [`crate::http::status::describe`]), and what only
//! an operator sees besides: whose job it is, what it selects, where its callback goes and when
//! the callback is tried next.

use ccfs_protocol::messages::{CallbackStatus, StatusData};
use jiff::Timestamp;
use serde::Serialize;

use crate::model::{Callback, CallbackState, Job};

/// A job for an operator, as JSON.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    /// The status interface's answer, its callback left out (see `callback`).
    #[serde(flatten)]
    status: StatusData,
    developer_id: String,
    query: QueryView,
    callback_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<String>,
    /// The status interface's callback, with its schedule.
    #[serde(skip_serializing_if = "Option::is_none")]
    callback: Option<CallbackView>,
}

/// The records a job selects, as its generate asked for them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct QueryView {
    /// In the developer's time zone, as generate takes them (`yyyy-MM-dd HH:mm:ss`).
    begin_time: String,
    end_time: String,
    timezone: String,
    /// The same instants in RFC 3339.
    begin: String,
    end: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct CallbackView {
    #[serde(flatten)]
    status: CallbackStatus,
    /// When it is attempted next; only while it is pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_attempt_at: Option<String>,
    /// After this instant a failed attempt gives up.
    give_up_at: String,
}

impl JobView {
    /// The job as seen at `now`.
    pub fn of(job: &Job, now: Timestamp) -> Self {
        let mut status = crate::http::status::describe(job, now);
        let callback = status
            .callback
            .take()
            .zip(job.callback.as_ref())
            .map(|(status, cb)| CallbackView::of(status, cb));
        let j = &job.job;
        let local = |t: Timestamp| {
            j.timezone
                .zone()
                .to_datetime(t)
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string()
        };
        Self {
            status,
            developer_id: j.developer_id().to_string(),
            query: QueryView {
                begin_time: local(j.query.begin),
                end_time: local(j.query.end),
                timezone: j.timezone.name().to_owned(),
                begin: j.query.begin.to_string(),
                end: j.query.end.to_string(),
                account_id: j.query.account_id.clone(),
                agent_id: j.query.agent_id.clone(),
            },
            callback_url: j.callback_url.as_str().to_owned(),
            started_at: job.started_at.map(|t| t.to_string()),
            callback,
        }
    }
}

impl CallbackView {
    fn of(status: CallbackStatus, cb: &Callback) -> Self {
        Self {
            status,
            next_attempt_at: (cb.state == CallbackState::Pending)
                .then(|| cb.next_attempt_at.to_string()),
            give_up_at: cb.give_up_at.to_string(),
        }
    }
}

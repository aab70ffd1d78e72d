//! Export jobs: what a job selects, how it is written, its life from queued to expired (or
//! failed, or cancelled), and the state a client sees at a given instant.

use ccfs_protocol::{AppId, ResponseId, ZipFileName};
use jiff::Timestamp;

use super::{Callback, CallbackUrl, Idempotency, TimeZoneName};

/// Which records an export selects: one developer's, `begin <= begin_time < end`, optionally
/// one account and one agent. Streamed in `(begin_time, id)` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordQuery {
    pub developer_id: AppId,
    pub begin: Timestamp,
    pub end: Timestamp,
    pub account_id: Option<String>,
    pub agent_id: Option<String>,
}

/// The life of an export job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    /// Succeeded once; its file has been deleted by retention (or, as a client sees it, is past
    /// its expiry: see [`Job::state_at`]).
    Expired,
    /// Stopped by an operator (`ccfs jobs cancel`) while queued or running: it has no file and
    /// sends no callback. A worker still building it notices at its next lease renewal, when
    /// the renewal is refused, and deletes what it uploaded.
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Expired,
        JobState::Cancelled,
    ];

    /// The name the status interface answers (SPEC section 9).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Expired => "expired",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether a worker has the job to do or is doing it: queued or running. Only an active job
    /// counts towards `max_active_jobs`, and only an active job can be cancelled.
    pub fn is_active(self) -> bool {
        matches!(self, JobState::Queued | JobState::Running)
    }
}

/// A job as accepted by generate.
///
/// Its developer is the developer of its query: the job exports its owner's records and no one
/// else's, so the owner is held once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub response_id: ResponseId,
    pub file_name: ZipFileName,
    pub query: RecordQuery,
    pub callback_url: CallbackUrl,
    /// The developer's time zone when the job was accepted; the export is written in it.
    pub timezone: TimeZoneName,
    pub csv_header: bool,
    pub created_at: Timestamp,
    pub idempotency: Option<Idempotency>,
}

impl NewJob {
    /// The developer that generated the job: the only one that may see or download it.
    pub fn developer_id(&self) -> &AppId {
        &self.query.developer_id
    }
}

/// What a finished export produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    pub record_count: u64,
    pub file_count: u32,
    pub file_size: u64,
    pub sha256: String,
    pub finished_at: Timestamp,
    pub expires_at: Timestamp,
    /// The claim of the job whose upload is the published file ([`FileKey::attempt`]); `None`
    /// for a job published before uploads were stored per attempt.
    pub file_attempt: Option<u32>,
}

/// Where a job's file is kept in the file store: the name the client sees, and the claim of
/// the job ([`Job::attempts`] at the time) whose upload it is.
///
/// Each claim uploads under its own key, so an attempt that stalled past its lease and uploads
/// late cannot overwrite the file a later attempt published: the job records which attempt's
/// object it published ([`JobOutcome::file_attempt`]), and only that one is served.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub name: ZipFileName,
    /// `None`: a file stored before per-attempt keys, under its name alone.
    pub attempt: Option<u32>,
}

impl FileKey {
    /// The key of the upload of attempt `attempt` of the job whose file is `name`.
    pub fn of_attempt(name: &ZipFileName, attempt: u32) -> Self {
        Self {
            name: name.clone(),
            attempt: Some(attempt),
        }
    }
}

impl std::fmt::Display for FileKey {
    /// The object's path in the file store (below its prefix).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.attempt {
            Some(a) => write!(f, "exports/a{a}/{}", self.name),
            None => write!(f, "exports/{}", self.name),
        }
    }
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub job: NewJob,
    pub state: JobState,
    /// How many times a worker has claimed the job.
    pub attempts: u32,
    pub started_at: Option<Timestamp>,
    pub outcome: Option<JobOutcome>,
    pub error: Option<String>,
    /// The job's callback, once enqueued.
    pub callback: Option<Callback>,
}

impl Job {
    /// The state a client sees at `now`: a succeeded job whose file has reached its expiry is
    /// expired from that instant, before retention gets round to deleting the file and marking
    /// the job.
    pub fn state_at(&self, now: Timestamp) -> JobState {
        match (&self.state, &self.outcome) {
            (JobState::Succeeded, Some(o)) if o.expires_at <= now => JobState::Expired,
            (state, _) => *state,
        }
    }

    /// The finished file while it may be downloaded at `now`.
    pub fn file_at(&self, now: Timestamp) -> Option<&JobOutcome> {
        (self.state_at(now) == JobState::Succeeded)
            .then_some(self.outcome.as_ref())
            .flatten()
    }

    /// Where this claim of the job uploads its file.
    pub fn attempt_key(&self) -> FileKey {
        FileKey::of_attempt(&self.job.file_name, self.attempts)
    }

    /// The published file's key; `None` until the job has succeeded.
    pub fn published_key(&self) -> Option<FileKey> {
        self.outcome.as_ref().map(|o| FileKey {
            name: self.job.file_name.clone(),
            attempt: o.file_attempt,
        })
    }

    /// Every key an upload of this job can have been stored under: the legacy key and that of
    /// each claim so far. Claims are counted in the store before their upload starts, so no
    /// attempt of the job uploads under a key outside this list.
    pub fn every_key(&self) -> impl Iterator<Item = FileKey> + '_ {
        std::iter::once(None)
            .chain((1..=self.attempts).map(Some))
            .map(|attempt| FileKey {
                name: self.job.file_name.clone(),
                attempt,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: JobState, expires_at: Option<Timestamp>) -> Job {
        let response_id = ResponseId::from_bytes([1; 16]);
        let t0: Timestamp = "2024-05-01T00:00:00Z".parse().unwrap();
        Job {
            job: NewJob {
                file_name: ZipFileName::new(jiff::civil::date(2024, 5, 1), &response_id),
                response_id,
                query: RecordQuery {
                    developer_id: AppId::parse("dev").unwrap(),
                    begin: t0,
                    end: t0,
                    account_id: None,
                    agent_id: None,
                },
                callback_url: CallbackUrl::parse("https://example.com/cb").unwrap(),
                timezone: TimeZoneName::utc(),
                csv_header: false,
                created_at: t0,
                idempotency: None,
            },
            state,
            attempts: 1,
            started_at: None,
            outcome: expires_at.map(|expires_at| JobOutcome {
                record_count: 1,
                file_count: 1,
                file_size: 1,
                sha256: String::new(),
                finished_at: t0,
                expires_at,
                file_attempt: Some(1),
            }),
            error: None,
            callback: None,
        }
    }

    #[test]
    fn a_file_expires_at_its_expiry_instant() {
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let expiry = at("2024-05-08T00:00:00Z");
        let done = job(JobState::Succeeded, Some(expiry));
        let before = at("2024-05-07T23:59:59.999Z");
        assert_eq!(done.state_at(before), JobState::Succeeded);
        assert!(done.file_at(before).is_some());
        assert_eq!(done.state_at(expiry), JobState::Expired);
        assert_eq!(done.file_at(expiry), None);

        let marked = job(JobState::Expired, Some(expiry));
        assert_eq!(marked.state_at(before), JobState::Expired);
        assert_eq!(marked.file_at(before), None);
        for state in [
            JobState::Queued,
            JobState::Running,
            JobState::Failed,
            JobState::Cancelled,
        ] {
            let j = job(state, None);
            assert_eq!(j.state_at(expiry), state);
            assert_eq!(j.file_at(before), None);
        }
        // A succeeded job always has its outcome; without one there is no file to offer.
        assert_eq!(job(JobState::Succeeded, None).file_at(before), None);
    }

    #[test]
    fn only_queued_and_running_jobs_are_active() {
        let active: Vec<JobState> = JobState::ALL
            .into_iter()
            .filter(|s| s.is_active())
            .collect();
        assert_eq!(active, [JobState::Queued, JobState::Running]);
        assert_eq!(JobState::Cancelled.as_str(), "cancelled");
    }

    #[test]
    fn each_attempt_has_its_own_key_and_the_legacy_key_stays_the_name() {
        let mut j = job(
            JobState::Succeeded,
            Some("2024-05-08T00:00:00Z".parse().unwrap()),
        );
        let name = j.job.file_name.clone();
        j.attempts = 3;
        assert_eq!(j.attempt_key().to_string(), format!("exports/a3/{name}"));
        assert_eq!(
            j.published_key().map(|k| k.to_string()),
            Some(format!("exports/a1/{name}"))
        );
        let every: Vec<String> = j.every_key().map(|k| k.to_string()).collect();
        assert_eq!(
            every,
            [
                format!("exports/{name}"),
                format!("exports/a1/{name}"),
                format!("exports/a2/{name}"),
                format!("exports/a3/{name}"),
            ]
        );
        if let Some(o) = j.outcome.as_mut() {
            o.file_attempt = None;
        }
        assert_eq!(
            j.published_key().map(|k| k.to_string()),
            Some(format!("exports/{name}"))
        );
        assert_eq!(job(JobState::Queued, None).published_key(), None);
    }
}

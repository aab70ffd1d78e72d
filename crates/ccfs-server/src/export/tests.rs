//! Tests of the job runner against an in-memory store that implements only the two parts of
//! the store the runner uses (the job queue and the records), so they run without a database
//! and can stage failures a real store rarely shows (a stalled query, a stolen lease).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ccfs_protocol::{AppId, Record, ResponseId, ZipFileName};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use jiff::{civil, Timestamp};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::blobs::Blobs;
use crate::model::{
    CallbackState, CallbackUrl, Developer, JobState, NewJob, RecordQuery, Role, TimeZoneName,
};
use crate::store::{CancelJob, CreateJob, InsertOutcome, JobFilter, OnConflict, StoreResult};

// The sweeps of what a killed process left: work files and unfinished uploads.
mod sweeps;

const DEV: &str = "0123456789abcdef0123456789abcdef";
const NODE: &str = "test-node";

/// How the fake's record stream behaves.
#[derive(Clone, Copy)]
enum StreamMode {
    /// All records, then the end.
    Normal,
    /// A few records, then an error.
    Fail,
    /// A few records, then nothing ever again (a query that hangs).
    Stall,
    /// A bug: the first call panics, later ones are normal.
    PanicOnce,
}

struct Inner {
    jobs: Vec<(Job, Option<String>)>,
    records: Vec<Record>,
    mode: StreamMode,
    /// `renew_lease` answers false: another node took the job.
    steal_lease: bool,
    /// An operator cancels the job just before its worker's `finish_job` (and wins the race).
    cancel_before_finish: bool,
    /// How many claims fail with a corrupt row before claims succeed again.
    corrupt_claims: u32,
    /// Every `claim_job` call, a job found or not: the worker's looks in the store.
    looks: u32,
    calls: Vec<&'static str>,
}

struct FakeStore(Mutex<Inner>);

impl FakeStore {
    fn new(records: Vec<Record>, mode: StreamMode) -> Arc<Self> {
        Arc::new(Self(Mutex::new(Inner {
            jobs: Vec::new(),
            records,
            mode,
            steal_lease: false,
            cancel_before_finish: false,
            corrupt_claims: 0,
            looks: 0,
            calls: Vec::new(),
        })))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.0.lock().unwrap())
    }

    fn add(&self, job: NewJob, attempts: u32) {
        let job = Job {
            job,
            state: JobState::Queued,
            attempts,
            started_at: None,
            outcome: None,
            error: None,
            callback: None,
        };
        self.with(|i| i.jobs.push((job, None)));
    }

    fn job(&self, id: &ResponseId) -> Job {
        self.with(|i| {
            i.jobs
                .iter()
                .find(|(j, _)| &j.job.response_id == id)
                .unwrap()
                .0
                .clone()
        })
    }

    fn calls(&self) -> Vec<&'static str> {
        self.with(|i| i.calls.clone())
    }

    /// Applies `f` to the job when `owner` holds it.
    fn owned<T>(
        &self,
        id: &ResponseId,
        owner: &str,
        call: &'static str,
        f: impl FnOnce(&mut Job) -> T,
    ) -> Option<T> {
        self.with(|i| {
            i.calls.push(call);
            let (job, holder) = i.jobs.iter_mut().find(|(j, _)| &j.job.response_id == id)?;
            (holder.as_deref() == Some(owner)).then(|| f(job))
        })
    }
}

#[async_trait]
impl Records for FakeStore {
    async fn insert_records(&self, _: &[Record], _: OnConflict) -> StoreResult<InsertOutcome> {
        unimplemented!("the runner never imports")
    }
    async fn check_records(&self, _: &[Record], _: OnConflict) -> StoreResult<InsertOutcome> {
        unimplemented!("the runner never imports")
    }
    fn stream_records(&self, _: RecordQuery) -> BoxStream<'static, StoreResult<Record>> {
        let (records, mode) = self.with(|i| {
            let mode = i.mode;
            if matches!(mode, StreamMode::PanicOnce) {
                i.mode = StreamMode::Normal;
            }
            (i.records.clone(), mode)
        });
        let head = stream::iter(records.into_iter().map(Ok));
        match mode {
            StreamMode::Normal => head.boxed(),
            StreamMode::Fail => head
                .chain(stream::once(async {
                    Err(StoreError::Corrupt("row 7 at /secret/path".into()))
                }))
                .boxed(),
            StreamMode::Stall => head.chain(stream::pending()).boxed(),
            StreamMode::PanicOnce => panic!("a bug in the record stream"),
        }
    }
}

#[async_trait]
impl JobQueue for FakeStore {
    async fn create_job(&self, _: &NewJob, _: u32) -> StoreResult<CreateJob> {
        unimplemented!("the runner never accepts jobs")
    }
    async fn job(&self, id: &ResponseId) -> StoreResult<Option<Job>> {
        Ok(self.with(|i| {
            i.jobs
                .iter()
                .find(|(j, _)| &j.job.response_id == id)
                .map(|(j, _)| j.clone())
        }))
    }
    async fn claim_job(
        &self,
        owner: &str,
        now: Timestamp,
        _: Timestamp,
    ) -> StoreResult<Option<Job>> {
        let corrupt = self.with(|i| {
            let corrupt = i.corrupt_claims > 0;
            if corrupt {
                i.corrupt_claims -= 1;
                i.calls.push("claim failed");
            }
            corrupt
        });
        if corrupt {
            // As the SQLite store answers a claimed row it cannot read: the claim is rolled back.
            return Err(StoreError::Corrupt(
                "job 0303…: unknown time zone 'Mars/Olympus_Mons'".into(),
            ));
        }
        Ok(self.with(|i| {
            i.looks += 1;
            let (job, holder) = i
                .jobs
                .iter_mut()
                .find(|(j, _)| j.state == JobState::Queued)?;
            i.calls.push("claim");
            job.state = JobState::Running;
            job.attempts += 1;
            job.started_at = Some(now);
            *holder = Some(owner.to_owned());
            Some(job.clone())
        }))
    }
    async fn renew_lease(&self, id: &ResponseId, owner: &str, _: Timestamp) -> StoreResult<bool> {
        let steal = self.with(|i| i.steal_lease);
        Ok(self.owned(id, owner, "renew", |_| !steal).unwrap_or(false))
    }
    async fn finish_job(
        &self,
        id: &ResponseId,
        owner: &str,
        outcome: &JobOutcome,
        callback: &Callback,
    ) -> StoreResult<bool> {
        if self.with(|i| std::mem::take(&mut i.cancel_before_finish)) {
            self.cancel_job(id, "cancelled", outcome.finished_at)
                .await?;
        }
        Ok(self
            .owned(id, owner, "finish", |j| {
                j.state = JobState::Succeeded;
                j.outcome = Some(outcome.clone());
                j.callback = Some(callback.clone());
            })
            .is_some())
    }
    async fn fail_job(
        &self,
        id: &ResponseId,
        owner: &str,
        error: &str,
        _: Timestamp,
    ) -> StoreResult<()> {
        self.owned(id, owner, "fail", |j| {
            j.state = JobState::Failed;
            j.error = Some(error.to_owned());
        });
        Ok(())
    }
    async fn release_job(&self, id: &ResponseId, owner: &str) -> StoreResult<()> {
        self.with(|i| {
            i.calls.push("release");
            if let Some((job, holder)) = i.jobs.iter_mut().find(|(j, _)| &j.job.response_id == id) {
                if holder.as_deref() == Some(owner) {
                    job.state = JobState::Queued;
                    *holder = None;
                }
            }
        });
        Ok(())
    }
    async fn expired_jobs(&self, _: Timestamp, _: u32) -> StoreResult<Vec<Job>> {
        unimplemented!("the runner never expires jobs")
    }
    async fn mark_expired(&self, _: &ResponseId) -> StoreResult<()> {
        unimplemented!("the runner never expires jobs")
    }
    async fn list_jobs(&self, _: &JobFilter, _: Timestamp) -> StoreResult<Vec<Job>> {
        unimplemented!("the runner never lists jobs")
    }
    /// As an operator would: the job ends cancelled and its holder loses it.
    async fn cancel_job(
        &self,
        id: &ResponseId,
        error: &str,
        _: Timestamp,
    ) -> StoreResult<CancelJob> {
        Ok(self.with(|i| {
            i.calls.push("cancel");
            let Some((job, holder)) = i.jobs.iter_mut().find(|(j, _)| &j.job.response_id == id)
            else {
                return CancelJob::NotFound;
            };
            if !job.state.is_active() {
                return CancelJob::Ended(job.clone());
            }
            job.state = JobState::Cancelled;
            job.error = Some(error.to_owned());
            *holder = None;
            CancelJob::Cancelled(job.clone())
        }))
    }
}

pub(super) fn record(i: u64) -> Record {
    let at = Timestamp::from_second(1_714_521_600 + i as i64).unwrap();
    let texts: [String; 19] = std::array::from_fn(|c| match c {
        0 => format!("r{i}"),
        1 => DEV.to_owned(),
        2 => "acc1".to_owned(),
        3 => "1001".to_owned(),
        7 => "4".to_owned(),
        _ => String::new(),
    });
    Record::from_texts(texts, at, at)
}

pub(super) fn new_job(byte: u8, timezone: &str, account: Option<&str>) -> NewJob {
    let response_id = ResponseId::from_bytes([byte; 16]);
    let created_at: Timestamp = "2024-05-01T22:30:00.123Z".parse().unwrap();
    NewJob {
        file_name: ZipFileName::new(civil::date(2024, 5, 2), &response_id),
        response_id,
        query: RecordQuery {
            developer_id: AppId::parse(DEV).unwrap(),
            begin: "2024-05-01T00:00:00Z".parse().unwrap(),
            end: "2024-05-02T00:00:00Z".parse().unwrap(),
            account_id: account.map(str::to_owned),
            agent_id: None,
        },
        callback_url: CallbackUrl::parse("https://example.com/cb").unwrap(),
        timezone: TimeZoneName::parse(timezone).unwrap(),
        csv_header: true,
        created_at,
        idempotency: None,
    }
}

struct Harness<S: ?Sized> {
    _dir: tempfile::TempDir,
    exports: Arc<Exports<S>>,
    shutdown: CancellationToken,
}

impl<S: JobQueue + Records + ?Sized> Harness<S> {
    fn new(store: Arc<S>, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_owned(),
            rows_per_file: 2,
            ..Config::default()
        };
        tweak(&mut config);
        let exports = Arc::new(Exports {
            blobs: Blobs::open(&config).unwrap(),
            work: WorkFiles::new(config.work_dir()),
            config: Arc::new(config),
            store,
            node_name: NODE.to_owned(),
            wake: Arc::new(Notify::new()),
            // Never, within a test: a job a test sees run was found at the worker's first look,
            // after a pause of its own, or because the worker was woken for it.
            idle_poll: Duration::from_secs(3600),
            callbacks: Arc::new(Notify::new()),
        });
        Self {
            _dir: dir,
            exports,
            shutdown: CancellationToken::new(),
        }
    }

    fn start(&self) -> Vec<JoinHandle<()>> {
        spawn_workers(self.exports.clone(), self.shutdown.clone())
    }

    fn work_file(&self, id: &ResponseId) -> PathBuf {
        self.exports.work.path(id)
    }

    async fn stop(&self, workers: Vec<JoinHandle<()>>) {
        self.shutdown.cancel();
        for w in workers {
            tokio::time::timeout(Duration::from_secs(10), w)
                .await
                .expect("worker stops")
                .unwrap();
        }
    }
}

/// Waits (up to 10 s) until `cond` holds.
async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_job_is_built_uploaded_and_published_with_its_callback() {
    let store = FakeStore::new((0..5).map(record).collect(), StreamMode::Normal);
    let h = Harness::new(store.clone(), |_| {});
    let job = new_job(1, "Asia/Shanghai", Some("acc1"));
    let id = job.response_id.clone();
    let name = job.file_name.clone();
    store.add(job, 0);
    let workers = h.start();
    h.exports.wake.notify_one();
    until("job succeeded", || {
        store.job(&id).state == JobState::Succeeded
    })
    .await;

    let done = store.job(&id);
    let outcome = done.outcome.clone().unwrap();
    assert_eq!((outcome.record_count, outcome.file_count), (5, 3));
    assert!(outcome.expires_at > outcome.finished_at);
    // The stored zip is the one described, and its parts are named from created_at in the
    // developer's zone (22:30:00.123Z is 06:30:00.123 the next day in Shanghai).
    // Under the key of the attempt that built it, which the job records.
    let key = done.published_key().unwrap();
    assert_eq!(key, crate::model::FileKey::of_attempt(&name, 1));
    let bytes: Vec<bytes::Bytes> =
        futures::TryStreamExt::try_collect(h.exports.blobs.get(&key, None).await.unwrap())
            .await
            .unwrap();
    let bytes = bytes.concat();
    assert_eq!(bytes.len() as u64, outcome.file_size);
    assert_eq!(hex::encode(Sha256::digest(&bytes)), outcome.sha256);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    assert_eq!(archive.len(), 3);
    assert!(archive
        .by_index(0)
        .unwrap()
        .name()
        .unwrap()
        .starts_with("20240502063000123"));

    let cb = done.callback.unwrap();
    assert_eq!(cb.state, CallbackState::Pending);
    assert_eq!(cb.url.as_str(), "https://example.com/cb");
    assert_eq!(cb.attempts, 0);
    assert!(cb.give_up_at > cb.next_attempt_at);
    assert_eq!(
        cb.body,
        format!(
            r#"{{"request":{{"version":"2.0"}},"msgBody":{{"responseId":"{id}","agentOprInfoFileName":"{name}","accountId":"acc1"}}}}"#
        )
    );
    // The callback loop was told; the work file is gone.
    tokio::time::timeout(Duration::from_secs(1), h.exports.callbacks.notified())
        .await
        .unwrap();
    assert!(!h.work_file(&id).exists());
    h.stop(workers).await;
    assert_eq!(store.calls(), ["claim", "finish"]);
}

/// A job queued while the worker waits idle starts when the worker is woken for it, not at its
/// next look in the store, which is an hour away here (see `Harness::new`): the runner wakes,
/// it does not poll. Two jobs in turn, so a wake that works only once fails too.
#[tokio::test]
async fn an_idle_worker_is_woken_for_a_job_queued_later() {
    let store = FakeStore::new((0..3).map(record).collect(), StreamMode::Normal);
    let h = Harness::new(store.clone(), |_| {});
    let workers = h.start();
    for (n, byte) in [3u8, 4].into_iter().enumerate() {
        // Each job takes two looks (the empty one before it, its claim), so the worker has
        // found nothing and is (about to be) waiting once it has looked 2n+1 times. Either
        // way the wake counts: `notify_one` keeps a permit for a worker not yet waiting.
        let idle_after = 2 * n as u32 + 1;
        until("the worker looked and found nothing", || {
            store.with(|i| i.looks) >= idle_after
        })
        .await;
        let job = new_job(byte, "UTC", None);
        let id = job.response_id.clone();
        store.add(job, 0);
        h.exports.wake.notify_one();
        until("the job queued later succeeded", || {
            store.job(&id).state == JobState::Succeeded
        })
        .await;
    }
    h.stop(workers).await;
    assert_eq!(store.calls(), ["claim", "finish", "claim", "finish"]);
}

#[tokio::test]
async fn a_callback_without_an_account_filter_has_no_account_id() {
    let store = FakeStore::new(vec![], StreamMode::Normal);
    let h = Harness::new(store.clone(), |_| {});
    let job = new_job(2, "UTC", None);
    let id = job.response_id.clone();
    store.add(job, 0);
    let workers = h.start();
    until("job succeeded", || {
        store.job(&id).state == JobState::Succeeded
    })
    .await;
    h.stop(workers).await;
    let done = store.job(&id);
    assert_eq!(done.outcome.unwrap().file_count, 1);
    assert!(!done.callback.unwrap().body.contains("accountId"));
}

/// A job cannot hold a time zone the server does not know (`TimeZoneName` refuses it where it
/// enters); a stored one that this node's time zone database does not know makes the row
/// corrupt, and the claim fails without taking the job (see the SQLite store's schema tests).
/// The worker survives that, pauses, and claims again: once the row reads, the job runs with no
/// attempt spent on the failed claims.
#[tokio::test]
async fn a_claim_of_a_corrupt_row_pauses_the_worker_and_leaves_the_job() {
    let store = FakeStore::new(vec![record(1)], StreamMode::Normal);
    store.with(|i| i.corrupt_claims = 1);
    let h = Harness::new(store.clone(), |_| {});
    let job = new_job(3, "Asia/Shanghai", None);
    let id = job.response_id.clone();
    store.add(job, 0);
    let workers = h.start();
    until("job succeeded", || {
        store.job(&id).state == JobState::Succeeded
    })
    .await;
    h.stop(workers).await;
    assert_eq!(store.calls(), ["claim failed", "claim", "finish"]);
    let done = store.job(&id);
    assert_eq!(done.attempts, 1);
    assert!(done.error.is_none());
    assert!(TimeZoneName::parse("Mars/Olympus_Mons").is_err());
}

#[tokio::test]
async fn a_failing_export_is_retried_then_failed_after_the_last_attempt() {
    let store = FakeStore::new((0..3).map(record).collect(), StreamMode::Fail);
    let h = Harness::new(store.clone(), |c| c.job_max_attempts = 2);
    let job = new_job(4, "UTC", None);
    let id = job.response_id.clone();
    store.add(job, 0);
    let workers = h.start();
    until("job failed", || store.job(&id).state == JobState::Failed).await;
    h.stop(workers).await;
    let done = store.job(&id);
    assert_eq!(done.attempts, 2);
    assert_eq!(store.calls(), ["claim", "release", "claim", "fail"]);
    let reason = done.error.unwrap();
    assert_eq!(
        reason,
        "The export could not be built: the records could not be read. Gave up after 2 attempts."
    );
    // Internal details stay in the log.
    assert!(!reason.contains("/secret/path"));
    assert!(!h.work_file(&id).exists());
}

/// A panic inside a job costs that job an attempt, not the worker: the job is released and
/// retried, and the same worker goes on to run it and the next one.
#[tokio::test]
async fn a_panicking_job_is_retried_and_the_worker_lives_on() {
    let store = FakeStore::new((0..3).map(record).collect(), StreamMode::PanicOnce);
    let h = Harness::new(store.clone(), |c| c.export_workers = 1);
    let job = new_job(6, "UTC", None);
    let id = job.response_id.clone();
    store.add(job, 0);
    let workers = h.start();
    until("job succeeded", || {
        store.job(&id).state == JobState::Succeeded
    })
    .await;
    let next = new_job(7, "UTC", None);
    let next_id = next.response_id.clone();
    store.add(next, 0);
    h.exports.wake.notify_one();
    until("the next job succeeded", || {
        store.job(&next_id).state == JobState::Succeeded
    })
    .await;
    h.stop(workers).await;
    assert_eq!(store.job(&id).attempts, 2, "the panic cost one attempt");
    assert_eq!(
        &store.calls()[..3],
        ["claim", "release", "claim"],
        "released after the panic, then claimed again"
    );
    assert!(!h.work_file(&id).exists());
}

#[tokio::test]
async fn shutdown_releases_a_running_job_and_removes_its_work_file() {
    let store = FakeStore::new((0..3).map(record).collect(), StreamMode::Stall);
    let h = Harness::new(store.clone(), |_| {});
    let job = new_job(5, "UTC", None);
    let id = job.response_id.clone();
    store.add(job, 0);
    let workers = h.start();
    let work_file = h.work_file(&id);
    until("work file written", || work_file.exists()).await;
    h.stop(workers).await;
    assert_eq!(store.job(&id).state, JobState::Queued);
    assert_eq!(store.calls(), ["claim", "release"]);
    assert!(!work_file.exists());
}

#[tokio::test]
async fn a_lost_lease_drops_the_job_without_touching_it() {
    let store = FakeStore::new((0..3).map(record).collect(), StreamMode::Stall);
    store.with(|i| i.steal_lease = true);
    // A 1 s lease is renewed every 333 ms.
    let h = Harness::new(store.clone(), |c| c.job_lease_secs = 1);
    let job = new_job(6, "UTC", None);
    let id = job.response_id.clone();
    store.add(job, 0);
    let workers = h.start();
    let work_file = h.work_file(&id);
    until("work file written", || work_file.exists()).await;
    until("lease renewal refused and work file removed", || {
        store.calls().contains(&"renew") && !work_file.exists()
    })
    .await;
    h.stop(workers).await;
    // Neither released nor failed: the job belongs to the other node.
    assert_eq!(store.calls(), ["claim", "renew"]);
    assert_eq!(store.job(&id).state, JobState::Running);
}

/// An operator cancels a job while it runs: the worker's next lease renewal is refused, so it
/// stops the export, and nothing it uploaded stays (no file, no unfinished upload). Neither a
/// finish, a failure nor a release follows: the job stays cancelled, without a callback.
#[tokio::test]
async fn a_job_cancelled_while_it_runs_stops_at_the_next_renewal_and_leaves_no_upload() {
    let store = FakeStore::new((0..3).map(record).collect(), StreamMode::Stall);
    // A 1 s lease is renewed every 333 ms.
    let h = Harness::new(store.clone(), |c| c.job_lease_secs = 1);
    let job = new_job(8, "UTC", None);
    let id = job.response_id.clone();
    let name = job.file_name.clone();
    store.add(job, 0);
    let workers = h.start();
    let work_file = h.work_file(&id);
    until("work file written", || work_file.exists()).await;
    store
        .cancel_job(&id, "cancelled", Timestamp::now())
        .await
        .unwrap();
    let renewed_after_cancel = || {
        let calls = store.calls();
        let cancel = calls.iter().position(|c| *c == "cancel");
        cancel.is_some_and(|at| calls[at..].contains(&"renew"))
    };
    until("a renewal refused and the export stopped", || {
        renewed_after_cancel() && !work_file.exists()
    })
    .await;
    h.stop(workers).await;
    let calls = store.calls();
    assert!(
        !calls
            .iter()
            .any(|c| ["finish", "fail", "release"].contains(c)),
        "{calls:?}"
    );
    let done = store.job(&id);
    assert_eq!(done.state, JobState::Cancelled);
    assert_eq!((done.outcome, done.callback), (None, None));
    let key = crate::model::FileKey::of_attempt(&name, 1);
    assert!(matches!(h.exports.blobs.digest(&key).await, Ok(None)));
    assert!(h
        .exports
        .blobs
        .unfinished_uploads()
        .await
        .unwrap()
        .is_empty());
}

/// A cancel that wins the race with a worker that completed its upload: the finish is refused,
/// so nothing is published and no callback enqueued, and the worker deletes its upload.
#[tokio::test]
async fn a_job_cancelled_before_its_finish_is_not_published_and_its_upload_is_deleted() {
    let store = FakeStore::new((0..3).map(record).collect(), StreamMode::Normal);
    store.with(|i| i.cancel_before_finish = true);
    let h = Harness::new(store.clone(), |_| {});
    let job = new_job(9, "UTC", None);
    let id = job.response_id.clone();
    let name = job.file_name.clone();
    store.add(job, 0);
    let workers = h.start();
    until("the finish refused", || store.calls().contains(&"finish")).await;
    h.stop(workers).await;
    assert_eq!(store.calls(), ["claim", "cancel", "finish"]);
    let done = store.job(&id);
    assert_eq!(done.state, JobState::Cancelled);
    assert_eq!((done.outcome, done.callback), (None, None));
    let key = crate::model::FileKey::of_attempt(&name, 1);
    until_deleted(&h.exports.blobs, &key).await;
}

/// Waits (up to 10 s) until nothing is stored under `key`.
async fn until_deleted(blobs: &Blobs, key: &crate::model::FileKey) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !matches!(blobs.digest(key).await, Ok(None)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{key} is still stored"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn an_api_only_node_starts_no_workers() {
    let store = FakeStore::new(vec![], StreamMode::Normal);
    let h = Harness::new(store.clone(), |c| c.export_workers = 0);
    store.add(new_job(10, "UTC", None), 0);
    assert!(h.start().is_empty());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(store.calls().is_empty());
}

#[test]
fn reasons_are_sentences_without_internal_details() {
    let e = ExportError::Store(StoreError::Corrupt("/var/lib/ccfs/ccfs.db: row 7".into()));
    assert!(!e.reason().contains("/var/lib"));
    assert!(e.reason().ends_with('.'));
    let e = ExportError::Io(std::io::Error::other("/tmp/work/x.zip.part: disk full"));
    assert_eq!(e.reason(), "The export file could not be written.");
}

/// A real SQLite store in `dir` with the developer [`DEV`] and `records` inserted.
pub(super) async fn sqlite_store(dir: &Path, records: &[Record]) -> Arc<dyn Store> {
    let store = crate::store::open(&crate::urls::DatabaseUrl::Sqlite(dir.join("t.db")), 1)
        .await
        .unwrap();
    store
        .insert_developer(&Developer {
            app_id: AppId::parse(DEV).unwrap(),
            name: "test".into(),
            secret_enc: vec![0; 60],
            old_secret_enc: None,
            old_secret_until: None,
            timezone: TimeZoneName::parse("Europe/Berlin").unwrap(),
            accounts: vec!["acc1".into()],
            roles: vec![Role::Export],
            enabled: true,
            csv_header: false,
            created_at: Timestamp::now(),
        })
        .await
        .unwrap();
    let outcome = store
        .insert_records(records, OnConflict::Fail)
        .await
        .unwrap();
    assert_eq!(outcome.inserted, records.len() as u64);
    store
}

#[tokio::test]
async fn with_the_sqlite_store_a_queued_job_is_published() {
    // The same path against the real store: claim, stream, finish with the callback.
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<Record> = (0..7).map(record).collect();
    let store = sqlite_store(dir.path(), &records).await;
    let mut job = new_job(11, "Europe/Berlin", Some("acc1"));
    job.query.begin = records[0].begin_time;
    job.query.end = records[6].begin_time; // half-open: the last record is left out
    let id = job.response_id.clone();
    assert_eq!(
        store.create_job(&job, 10).await.unwrap(),
        CreateJob::Created
    );

    let h = Harness::new(store.clone(), |c| c.rows_per_file = 4);
    let workers = h.start();
    h.exports.wake.notify_one();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let done = loop {
        let j = store.job(&id).await.unwrap().unwrap();
        if j.state == JobState::Succeeded {
            break j;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job still {:?}",
            j.state
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    h.stop(workers).await;
    let key = done.published_key().unwrap();
    let outcome = done.outcome.unwrap();
    assert_eq!((outcome.record_count, outcome.file_count), (6, 2));
    assert_eq!(done.attempts, 1);
    let cb = done.callback.unwrap();
    assert!(cb.body.contains(r#""accountId":"acc1""#));
    let stored: Vec<bytes::Bytes> = h
        .exports
        .blobs
        .get(&key, None)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(stored.concat().len() as u64, outcome.file_size);
}

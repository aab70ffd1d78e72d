//! Tests of the race between two attempts of one job on the real SQLite store and a real file
//! store: node A claims a job and stalls past its lease, node B takes the job over and publishes
//! it, then A's upload completes. The job's file must stay the one B published, and retention
//! must remove both attempts' objects.
//!
//! The nodes are driven step by step (claims with chosen instants, the runner's own build,
//! upload and publish steps), so the interleaving is the one named, not one a timer hopes for.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::tests::{new_job, record, sqlite_store};
use super::{Ended, Exports, WorkFiles, IDLE_POLL};
use crate::blobs::{BlobError, Blobs};
use crate::config::Config;
use crate::model::{FileKey, Job, JobState};
use crate::store::{CreateJob, OnConflict, Store};

/// One node's export runner on the shared store and file store.
fn node(
    store: &Arc<dyn Store>,
    blobs: &Blobs,
    config: &Arc<Config>,
    name: &str,
) -> Exports<dyn Store> {
    Exports {
        store: store.clone(),
        config: config.clone(),
        blobs: blobs.clone(),
        node_name: name.to_owned(),
        wake: Arc::new(Notify::new()),
        idle_poll: IDLE_POLL,
        callbacks: Arc::new(Notify::new()),
        work: WorkFiles::new(config.work_dir()),
    }
}

async fn read(blobs: &Blobs, key: &FileKey) -> Result<Vec<u8>, BlobError> {
    let parts: Vec<Bytes> = blobs.get(key, None).await?.try_collect().await?;
    Ok(parts.concat())
}

/// What the shared stores hold after A claimed the job (attempt 1), its lease ran out, and B
/// claimed it (attempt 2).
struct TakenOver {
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    blobs: Blobs,
    a: Exports<dyn Store>,
    b: Exports<dyn Store>,
    job_a: Job,
    job_b: Job,
}

async fn taken_over(byte: u8) -> TakenOver {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path(), &(0..5).map(record).collect::<Vec<_>>()).await;
    let config = Arc::new(Config {
        data_dir: dir.path().to_owned(),
        rows_per_file: 2,
        job_lease_secs: 60,
        ..Config::default()
    });
    let blobs = Blobs::open(&config).unwrap();
    let job = new_job(byte, "UTC", Some("acc1"));
    assert_eq!(
        store.create_job(&job, 10).await.unwrap(),
        CreateJob::Created
    );
    let lease = SignedDuration::from_secs(60);
    let t0 = Timestamp::now();
    let job_a = store
        .claim_job("node-a", t0, t0 + lease)
        .await
        .unwrap()
        .expect("A claims the job");
    // Not before A's lease has run out…
    let t1 = t0 + lease - SignedDuration::from_secs(1);
    assert_eq!(
        store.claim_job("node-b", t1, t1 + lease).await.unwrap(),
        None
    );
    // …but after it, B takes the job over.
    let t2 = t0 + lease + SignedDuration::from_secs(1);
    let job_b = store
        .claim_job("node-b", t2, t2 + lease)
        .await
        .unwrap()
        .expect("B takes the job over");
    assert_eq!((job_a.attempts, job_b.attempts), (1, 2));
    TakenOver {
        a: node(&store, &blobs, &config, "node-a"),
        b: node(&store, &blobs, &config, "node-b"),
        dir,
        store,
        blobs,
        job_a,
        job_b,
    }
}

#[tokio::test]
async fn a_stale_attempts_late_upload_cannot_replace_the_published_file() {
    let t = taken_over(21).await;
    let id = t.job_b.job.response_id.clone();
    let name = t.job_b.job.file_name.clone();
    let shutdown = CancellationToken::new();

    // B runs the job to the end: built, uploaded under attempt 2's key, published.
    assert!(matches!(
        t.b.run_job(t.job_b.clone(), &shutdown).await,
        Ended::Succeeded
    ));
    let published = t.store.job(&id).await.unwrap().unwrap();
    assert_eq!(published.state, JobState::Succeeded);
    let key = published.published_key().unwrap();
    assert_eq!(key, FileKey::of_attempt(&name, 2));
    let outcome = published.outcome.clone().unwrap();

    // A record arrives, then A wakes and completes its upload: other bytes than B's.
    let late = record(100);
    t.store
        .insert_records(std::slice::from_ref(&late), OnConflict::Fail)
        .await
        .unwrap();
    let work_file = t.a.work.path(&id);
    let (built, stored) =
        t.a.export_job(&t.job_a, &work_file, &CancellationToken::new())
            .await
            .expect("A's late build and upload");
    assert_eq!(built.record_count, outcome.record_count + 1);
    assert_ne!(stored.sha256, outcome.sha256);
    let key_a = FileKey::of_attempt(&name, 1);
    assert_eq!(
        hex::encode(Sha256::digest(read(&t.blobs, &key_a).await.unwrap())),
        stored.sha256,
        "A's upload is stored, under its own key"
    );
    // A cannot publish it: the job is B's, and succeeded.
    assert!(!t.a.publish(&t.job_a, built, &stored).await.unwrap());

    // The job's file is still B's: what a download serves has the recorded size and SHA-256.
    let job = t.store.job(&id).await.unwrap().unwrap();
    assert_eq!(job.outcome.as_ref(), Some(&outcome));
    assert_eq!(job.published_key(), Some(key.clone()));
    let served = read(&t.blobs, &key).await.unwrap();
    assert_eq!(served.len() as u64, outcome.file_size);
    assert_eq!(hex::encode(Sha256::digest(&served)), outcome.sha256);
    // Nothing under the key files had before attempts were kept apart.
    let legacy = FileKey {
        name: name.clone(),
        attempt: None,
    };
    assert!(matches!(
        read(&t.blobs, &legacy).await,
        Err(BlobError::NotFound(_))
    ));

    // An upload under the old key (an attempt of a node not yet upgraded) is the job's too.
    let old_upload = t.dir.path().join("old.zip");
    std::fs::write(&old_upload, b"an upload of a node not yet upgraded").unwrap();
    t.blobs.put_file(&legacy, &old_upload).await.unwrap();

    // Retention, once the file has expired, removes the published object, A's late one and
    // the one under the old key.
    let after_expiry = outcome.expires_at + SignedDuration::from_secs(1);
    assert_eq!(
        crate::retention::expire_files(&*t.store, &t.blobs, after_expiry)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        t.store.job(&id).await.unwrap().unwrap().state,
        JobState::Expired
    );
    for k in [&key, &key_a, &legacy] {
        assert!(
            matches!(read(&t.blobs, k).await, Err(BlobError::NotFound(_))),
            "{k} is left behind"
        );
    }
}

/// The common end of a stale attempt: its upload completes, its publish is refused, and the
/// runner deletes the upload itself rather than leave it for retention.
#[tokio::test]
async fn an_attempt_refused_at_publish_deletes_its_own_upload() {
    let t = taken_over(22).await;
    let id = t.job_b.job.response_id.clone();
    let name = t.job_b.job.file_name.clone();
    let shutdown = CancellationToken::new();
    assert!(matches!(
        t.b.run_job(t.job_b.clone(), &shutdown).await,
        Ended::Succeeded
    ));
    let outcome = t.store.job(&id).await.unwrap().unwrap().outcome.unwrap();

    // A runs its attempt to the end only now.
    assert!(matches!(
        t.a.run_job(t.job_a.clone(), &shutdown).await,
        Ended::Abandoned
    ));
    assert!(matches!(
        read(&t.blobs, &FileKey::of_attempt(&name, 1)).await,
        Err(BlobError::NotFound(_))
    ));
    let served = read(&t.blobs, &FileKey::of_attempt(&name, 2))
        .await
        .unwrap();
    assert_eq!(hex::encode(Sha256::digest(&served)), outcome.sha256);
    assert!(!t.a.work.path(&id).exists());
}

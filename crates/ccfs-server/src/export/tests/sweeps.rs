//! Tests of the sweeps of what a killed export leaves behind: its work file (see
//! [`crate::export::work`]) and its unfinished upload (see [`crate::export::unfinished`]).

use std::time::Duration;

use ccfs_protocol::ResponseId;

use super::super::{remove_unfinished_uploads, spawn_work_sweeper};
use super::{new_job, until, FakeStore, Harness, StreamMode};
use crate::model::{JobState, NewJob};

/// What a killed process left in the work directory goes: at once when it is older than the
/// lease, and within a lease more when the node came back sooner than that (a supervisor
/// restarts it at once). An API-only node sweeps too: it may have run exports before.
#[tokio::test]
async fn a_killed_attempts_work_file_is_swept_even_after_a_quick_restart() {
    let store = FakeStore::new(vec![], StreamMode::Normal);
    let h = Harness::new(store.clone(), |c| {
        c.job_lease_secs = 1;
        c.export_workers = 0;
    });
    let dir = h.exports.config.work_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let old = h.work_file(&ResponseId::from_bytes([8; 16]));
    let recent = h.work_file(&ResponseId::from_bytes([9; 16]));
    let other = dir.join("notes.txt");
    for p in [&old, &recent, &other] {
        std::fs::write(p, b"x").unwrap();
    }
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
    for p in [&old, &other] {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
    }
    let sweeper = spawn_work_sweeper(h.exports.clone(), h.shutdown.clone());
    until("the old work file removed", || !old.exists()).await;
    until("the recent one removed a lease later", || !recent.exists()).await;
    h.stop(vec![sweeper]).await;
    assert!(other.exists(), "only work files are swept");
}

/// The staging file of an upload a killed export left goes once its job is not running (taken
/// over and published, or queued again, or gone); a running job's stays, since its owner may be
/// uploading it; and so does one written after the job was looked at (a new upload).
#[tokio::test]
async fn unfinished_uploads_of_jobs_not_running_are_removed() {
    let store = FakeStore::new(vec![], StreamMode::Normal);
    let h = Harness::new(store.clone(), |_| {});
    let dir = h.exports.config.data_dir.join("files/exports");
    std::fs::create_dir_all(&dir).unwrap();
    let (queued, running, unknown) = (
        new_job(21, "UTC", None),
        new_job(22, "UTC", None),
        new_job(23, "UTC", None),
    );
    // The queued job's staging file is an attempt's (`exports/a1/`), the others under the keys
    // from before attempts were kept apart.
    let attempt_dir = dir.join("a1");
    std::fs::create_dir_all(&attempt_dir).unwrap();
    let staging = |j: &NewJob| {
        let at = if j.response_id == queued.response_id {
            &attempt_dir
        } else {
            &dir
        };
        at.join(format!("{}#1", j.file_name))
    };
    let finished = attempt_dir.join(queued.file_name.to_string());
    for p in [
        staging(&queued),
        staging(&running),
        staging(&unknown),
        finished.clone(),
    ] {
        std::fs::write(p, b"part").unwrap();
    }
    let running_id = running.response_id.clone();
    store.add(queued.clone(), 1);
    store.add(running.clone(), 1);
    store.with(|i| {
        for (j, _) in &mut i.jobs {
            if j.job.response_id == running_id {
                j.state = JobState::Running;
            }
        }
    });
    let blobs = &h.exports.blobs;
    // Written after the look: a new upload under the name, left alone.
    let listed = blobs.unfinished_uploads().await.unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    let before = std::time::SystemTime::now() - Duration::from_secs(3600);
    assert!(!blobs.remove_unfinished(&listed[0], before).unwrap());

    let removed = remove_unfinished_uploads(&*store, blobs).await.unwrap();
    assert_eq!(removed, 2);
    assert!(!staging(&queued).exists());
    assert!(!staging(&unknown).exists());
    assert!(staging(&running).exists(), "a running job's upload stays");
    assert!(finished.exists(), "finished files are not touched");
}

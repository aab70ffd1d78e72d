//! Export work files (`<data_dir>/work/<response id>.zip.part`, where a job's zip is built
//! before it is uploaded) and the sweep of those a dead process left behind.
//!
//! A process killed mid-export (SIGKILL, a crash, the machine going down) leaves its work file;
//! the job is taken over by a worker somewhere once its lease runs out, and nobody will ever
//! finish that file. So every node, an API-only one too (it may have run exports in an earlier
//! life on the same data directory), sweeps its work directory when it starts and then once per
//! lease: a part file untouched for a whole lease that belongs to no job this process runs is
//! removed. Sweeping only at start would miss the file of a process restarted within a lease of
//! its crash (a supervisor restarts it at once): that file is then younger than the lease.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use ccfs_protocol::ResponseId;

use crate::files::remove_quietly;

const SUFFIX: &str = ".zip.part";

/// The work directory of this process and the jobs whose work files it is using.
pub struct WorkFiles {
    dir: PathBuf,
    /// Jobs this process runs now. A std mutex: held only to look up, insert or remove an id,
    /// and around the one unlink of the sweep, never across an await.
    held: Mutex<HashSet<ResponseId>>,
}

/// A job's work file, this process's while the value lives (see [`WorkFiles::hold`]).
pub struct Held<'a> {
    files: &'a WorkFiles,
    id: ResponseId,
}

impl Held<'_> {
    pub fn path(&self) -> PathBuf {
        self.files.path(&self.id)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.files.lock().remove(&self.id);
    }
}

impl WorkFiles {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            held: Mutex::new(HashSet::new()),
        }
    }

    /// Where job `id`'s zip is built.
    pub fn path(&self, id: &ResponseId) -> PathBuf {
        self.dir.join(format!("{id}{SUFFIX}"))
    }

    /// Marks job `id`'s work file as in use by this process until the guard is dropped: the
    /// sweep leaves it alone. Taken before the file is created, so a sweep that saw a dead
    /// attempt's file of the same job (this process took its own job over after a restart)
    /// either removed it before or leaves it now.
    pub fn hold(&self, id: &ResponseId) -> Held<'_> {
        self.lock().insert(id.clone());
        Held {
            files: self,
            id: id.clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashSet<ResponseId>> {
        // A panic elsewhere while holding it cannot leave the set half changed.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes the `*.zip.part` files not modified for `older_than` that belong to no job this
    /// process holds; returns how many. Other files are left alone.
    pub async fn sweep(&self, older_than: Duration) -> usize {
        let mut entries = match tokio::fs::read_dir(&self.dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return 0,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot list the export work directory");
                return 0;
            }
        };
        let now = SystemTime::now();
        let mut removed = 0;
        loop {
            let entry = match entries.next_entry().await {
                Ok(Some(entry)) => entry,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "cannot list the export work directory");
                    break;
                }
            };
            let file_name = entry.file_name();
            let Some(id) = file_name
                .to_str()
                .and_then(|n| n.strip_suffix(SUFFIX))
                .and_then(ResponseId::parse)
            else {
                continue;
            };
            let Ok(meta) = entry.metadata().await else {
                continue;
            };
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok());
            let stale = meta.is_file() && age.is_some_and(|age| age >= older_than);
            if !stale {
                continue;
            }
            // Checked and removed under the lock, so a worker cannot start on the file between.
            let held = self.lock();
            if !held.contains(&id) {
                tracing::info!(path = %entry.path().display(), "removing a stale export work file");
                remove_quietly(&entry.path());
                removed += 1;
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn age(path: &Path, secs: u64) {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(secs))
            .unwrap();
    }

    #[tokio::test]
    async fn the_sweep_removes_old_parts_of_jobs_nobody_here_holds() {
        let dir = tempfile::tempdir().unwrap();
        let work = WorkFiles::new(dir.path().to_owned());
        let dead = work.path(&ResponseId::from_bytes([1; 16]));
        let held_id = ResponseId::from_bytes([2; 16]);
        let held = work.path(&held_id);
        let fresh = work.path(&ResponseId::from_bytes([3; 16]));
        let other = dir.path().join("notes.zip.part");
        for p in [&dead, &held, &fresh, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        for p in [&dead, &held, &other] {
            age(p, 120);
        }
        let guard = work.hold(&held_id);
        assert_eq!(work.sweep(Duration::from_secs(60)).await, 1);
        assert!(!dead.exists());
        assert!(held.exists(), "a held job's file stays");
        assert!(fresh.exists(), "a file written within the lease stays");
        assert!(other.exists(), "a file not named by a job stays");
        // Once the job is no longer held here, its old file goes too.
        drop(guard);
        assert_eq!(work.sweep(Duration::from_secs(60)).await, 1);
        assert!(!held.exists());
        // A missing directory is nothing to sweep.
        let gone = WorkFiles::new(dir.path().join("missing"));
        assert_eq!(gone.sweep(Duration::ZERO).await, 0);
    }
}

//! Small file-system helpers shared by the parts that write secrets and work files, and the
//! rule that keeps data at rest private: every directory ccfs creates is 0700 and every file
//! 0600, whatever umask it was started with.

use std::io::Write;
use std::path::Path;

/// Writes a new file only its owner can read (mode 0600 on Unix), synced to disk: the master
/// key and the self-signed certificate's key.
///
/// The file is created, never reused: an existing file is an error, so a key is never
/// overwritten by accident and a file made by someone else with a wider mode is never taken
/// over (opening with `truncate` would keep that file's mode).
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Makes every file and directory this process creates from now on private to its owner
/// (files 0600, directories 0700), whatever umask it was started with.
///
/// Process-wide on purpose: SQLite (the database, its WAL and shared-memory files), the local
/// file store and the certificate writer all create files themselves, and the umask is the one
/// setting that governs all of them. Nothing ccfs writes is meant for another user: the
/// database holds records and callback URLs, the exports hold the same records.
pub(crate) fn private_from_now_on() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Takes group and other permissions away from what already exists at `path` (a data directory
/// or database made by an earlier version, or under a looser umask); what is missing or already
/// private is left alone. A change is logged, since the operator may have meant it.
pub(crate) fn make_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Nothing to tighten where nothing can be looked at (missing, or under a file): the
        // store that opens the path next says what is wrong with it.
        let Ok(meta) = std::fs::metadata(path) else {
            return Ok(());
        };
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            let private = mode & 0o700;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(private))?;
            tracing::info!(
                path = %path.display(),
                "made private to its owner (mode {mode:o} -> {private:o})"
            );
        }
    }
    Ok(())
}

/// Deletes an export work file; one already gone is fine, any other failure is only logged
/// (the stale-file sweep removes what is left).
///
/// Synchronous on purpose, even when called from async code: one unlink costs about what
/// handing it to a blocking thread would.
pub(crate) fn remove_quietly(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove an export work file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_file_is_new_and_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        write_private(&path, b"secret\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"secret\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = write_private(&path, b"other\n").unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"secret\n");
    }

    #[cfg(unix)]
    #[test]
    fn what_exists_is_made_private_and_the_rest_left_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        let db = open.join("ccfs.db");
        std::fs::write(&db, b"").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o664)).unwrap();
        make_private(&open).unwrap();
        make_private(&db).unwrap();
        assert_eq!(mode(&open), 0o700);
        assert_eq!(mode(&db), 0o600);
        // Already private, or a mode the owner narrowed further: unchanged.
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o400)).unwrap();
        make_private(&db).unwrap();
        assert_eq!(mode(&db), 0o400);
        make_private(&dir.path().join("missing")).unwrap();
        make_private(&db.join("under-a-file")).unwrap();
    }

    #[test]
    fn removing_quietly_takes_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("work.zip.part");
        std::fs::write(&path, b"x").unwrap();
        remove_quietly(&path);
        assert!(!path.exists());
        remove_quietly(&path);
    }
}

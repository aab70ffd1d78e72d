//! Small file-system helpers shared by the parts that write secrets and work files.

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

//! The open-file limit, which bounds the connections: raised at start as far as the process
//! may (the soft limit to the hard one), and the connection cap kept at half of it, so that
//! the database, the file store, exports and callbacks always have descriptors left.

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the limit now in force
/// (`None`: unlimited, or not a Unix system).
pub(super) fn raise_open_files() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let before = getrlimit(Resource::Nofile);
        if before.current != before.maximum {
            let raised = Rlimit {
                current: before.maximum,
                maximum: before.maximum,
            };
            // Some systems refuse an unlimited or very large soft limit (macOS caps it below
            // the hard one): the server then runs with what it had.
            if let Err(e) = setrlimit(Resource::Nofile, raised) {
                tracing::warn!(
                    soft = ?before.current,
                    hard = ?before.maximum,
                    "cannot raise the open-file limit: {e}"
                );
            }
        }
        getrlimit(Resource::Nofile).current
    }
    #[cfg(not(unix))]
    None
}

/// The connection cap: `configured`, but at most half the open-file limit.
pub(super) fn connection_cap(configured: u32, open_files: Option<u64>) -> usize {
    let configured = configured as usize;
    match open_files {
        Some(n) => configured.min(usize::try_from(n / 2).unwrap_or(usize::MAX).max(1)),
        None => configured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_stays_at_half_the_open_file_limit() {
        assert_eq!(connection_cap(4096, Some(1024)), 512);
        assert_eq!(connection_cap(4096, Some(1_048_576)), 4096);
        assert_eq!(connection_cap(8, Some(1024)), 8);
        assert_eq!(connection_cap(8, None), 8);
        assert_eq!(connection_cap(8, Some(1)), 1);
    }
}

//! Moving an embedded installation (SQLite and a local directory) to a cluster's PostgreSQL
//! database and file store, for `ccfs migrate-store`: first every table
//! ([`crate::store::transfer`]), then the file of every finished export (the object of the
//! attempt its job published, under the same key, since the job row naming it is copied as it
//! is), each copied only when the target lacks it and checked against the SHA-256 its job
//! recorded.
//!
//! Run again, it copies nothing twice and checks everything again; cut short, it goes on where
//! it stopped. The installation should be stopped meanwhile: what it writes after its table was
//! copied stays behind (a second run, after stopping it, brings that along).

use crate::blobs::{BlobError, Blobs};
use crate::config::{BlobUrl, Config, DatabaseUrl};
use crate::model::FileKey;
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::transfer::{published_files, transfer};
pub use crate::store::transfer::{Progress, TableCount};
use crate::store::StoreError;

/// What to move where.
#[derive(Debug, Clone)]
pub struct MigratePlan {
    /// The embedded store: `sqlite://PATH`, which must exist.
    pub from: DatabaseUrl,
    /// The cluster's store: `postgres://…` (the database must exist; it is migrated).
    pub to: DatabaseUrl,
    /// The file stores, source and target; `None` leaves the files where they are.
    pub blobs: Option<(BlobUrl, BlobUrl)>,
}

/// What the files step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilesCount {
    /// Files of finished exports in the source store.
    pub listed: u64,
    /// Copied by this run.
    pub copied: u64,
    /// Already in the target with the recorded SHA-256.
    pub present: u64,
    /// Bytes copied by this run.
    pub bytes_copied: u64,
}

/// What a migration did.
#[derive(Debug, Clone)]
pub struct MigrateReport {
    pub tables: Vec<TableCount>,
    /// `None` when no file stores were given.
    pub files: Option<FilesCount>,
}

/// Why a migration stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("the source (--from) must be an SQLite store, sqlite://PATH; {0} is not")]
    FromNotSqlite(DatabaseUrl),
    #[error("no SQLite store at {0} (--from): give the database_url of the installation to move")]
    FromMissing(std::path::PathBuf),
    #[error("the target (--to) must be a PostgreSQL store, postgres://…; {0} is not")]
    ToNotPostgres(DatabaseUrl),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("{key}: the target holds SHA-256 {got} after the copy, the export recorded {want}")]
    Mismatch {
        key: FileKey,
        want: String,
        got: String,
    },
    #[error(
        "{} file(s) of finished exports are not in the source file store (--blobs-from), \
         first {}: their downloads answer 0300011 on the cluster as they did here",
        .0.len(),
        .0[0]
    )]
    Missing(Vec<FileKey>),
}

/// Moves the store, then the files. `config` gives the S3 settings of an `s3://` file store.
pub async fn migrate_store(
    plan: &MigratePlan,
    config: &Config,
    progress: &dyn Progress,
) -> Result<MigrateReport, MigrateError> {
    let DatabaseUrl::Sqlite(path) = &plan.from else {
        return Err(MigrateError::FromNotSqlite(plan.from.clone()));
    };
    // Opening creates a missing file; a typo must not migrate an empty store.
    if !path.is_file() {
        return Err(MigrateError::FromMissing(path.clone()));
    }
    let DatabaseUrl::Postgres(url) = &plan.to else {
        return Err(MigrateError::ToNotPostgres(plan.to.clone()));
    };
    let from = SqliteStore::open_path(path).await?;
    let to = PgStore::open(url.expose(), 4).await?;
    let tables = transfer(&from, &to, progress).await?;
    let files = match &plan.blobs {
        Some((source, target)) => Some(
            copy_files(
                &from,
                &Blobs::open_url(source, config)?,
                &Blobs::open_url(target, config)?,
                progress,
            )
            .await?,
        ),
        None => None,
    };
    Ok(MigrateReport { tables, files })
}

/// Copies each finished export's file the target lacks (or holds with other bytes), and checks
/// every one, copied or found, against the SHA-256 its job recorded.
async fn copy_files(
    from: &SqliteStore,
    source: &Blobs,
    target: &Blobs,
    progress: &dyn Progress,
) -> Result<FilesCount, MigrateError> {
    let files = published_files(from).await?;
    progress.table("files", files.len() as u64);
    let mut count = FilesCount {
        listed: files.len() as u64,
        ..FilesCount::default()
    };
    let mut missing = Vec::new();
    for file in files {
        match target.digest(&file.key).await? {
            Some(there) if there.sha256 == file.sha256 => count.present += 1,
            _ => match target.copy_from(source, &file.key).await {
                Ok(stored) if stored.sha256 == file.sha256 => {
                    count.copied += 1;
                    count.bytes_copied += stored.size;
                }
                Ok(stored) => {
                    return Err(MigrateError::Mismatch {
                        key: file.key,
                        want: file.sha256,
                        got: stored.sha256,
                    })
                }
                Err(BlobError::NotFound(key)) => missing.push(key),
                Err(e) => return Err(e.into()),
            },
        }
        progress.advance(1);
    }
    if !missing.is_empty() {
        return Err(MigrateError::Missing(missing));
    }
    Ok(count)
}

//! The file store for finished exports, behind `object_store`: a local directory by default, or
//! an S3-compatible bucket shared by the nodes of a cluster.
//!
//! An object appears only when its upload completes (the local store writes to a staging file
//! and renames it; S3 shows a multipart upload only once it is completed), so a partial zip can
//! never be read. An upload that fails is aborted, so S3 keeps no orphaned parts. An upload
//! whose process was killed cannot abort: the local store's staging file is listed by
//! [`Blobs::unfinished_uploads`] for the export sweep to remove; on S3 the parts stay until a
//! lifecycle rule (`AbortIncompleteMultipartUpload`) of the bucket removes them, since
//! `object_store` cannot list unfinished uploads.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{GetOptions, GetRange, GetResultPayload, ObjectStore, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::io::ReaderStream;

use ccfs_protocol::ZipFileName;

use crate::config::{BlobUrl, Config};
use crate::model::FileKey;

/// An error of the file store.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No file is stored under this key.
    #[error("file store: {0} is not stored")]
    NotFound(FileKey),
    #[error("file store: {0}")]
    Store(#[from] object_store::Error),
    #[error("file store: {0}")]
    Io(#[from] std::io::Error),
    /// The directory of the file store (`blob_url`) cannot be created or opened.
    #[error("cannot use the file store directory {} (blob_url): {error}", .path.display())]
    Dir {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
    /// The file being uploaded as it is written stopped growing before it was complete (its
    /// writer failed or was cancelled; the writer's error says why).
    #[error("file store: the file being uploaded was not finished")]
    Unfinished,
    /// The S3 settings cannot make a client (a bad endpoint, a missing region).
    #[error("cannot use the S3 file store {url} (blob_url and aws_*): {error}")]
    S3 {
        url: BlobUrl,
        error: object_store::Error,
    },
}

/// What an upload stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub size: u64,
    /// Lower-case hex SHA-256 of the bytes stored.
    pub sha256: String,
}

/// The export file store.
#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// The directory of a local store (where its unfinished uploads can be seen).
    local_dir: Option<PathBuf>,
}

/// An upload to the local store that was begun and never completed nor aborted: the staging
/// file `exports/NAME#N` that `object_store` writes before renaming it into place.
#[derive(Debug, Clone)]
pub struct UnfinishedUpload {
    /// The file it was to become.
    pub name: ZipFileName,
    path: PathBuf,
}

impl UnfinishedUpload {
    /// When it was last written to, now (a new upload may have taken the same staging name
    /// since it was listed); `None` when it is gone.
    pub fn modified(&self) -> Option<SystemTime> {
        std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok()
    }
}

/// Upload part size; memory per upload stays around a few of these.
const PART: usize = 8 * 1024 * 1024;

/// Read size of a local file being uploaded.
const READ: usize = 1024 * 1024;

impl Blobs {
    /// The store the configuration names: a local directory (created when missing) or an S3
    /// bucket (which must exist; [`Blobs::ping`] tells whether it answers).
    pub fn open(config: &Config) -> Result<Self, BlobError> {
        Self::open_url(&config.blob_url(), config)
    }

    /// The store `url` names, with the S3 settings of `config` (`ccfs migrate-store` opens two).
    pub fn open_url(url: &BlobUrl, config: &Config) -> Result<Self, BlobError> {
        let mut local_dir = None;
        let store: Arc<dyn ObjectStore> = match url.clone() {
            BlobUrl::Local(dir) => {
                std::fs::create_dir_all(&dir).map_err(|error| BlobError::Dir {
                    path: dir.clone(),
                    error,
                })?;
                let store = Arc::new(LocalFileSystem::new_with_prefix(&dir)?);
                local_dir = Some(dir);
                store
            }
            BlobUrl::S3(at) => {
                let s3 = s3_client(config, &at).map_err(|error| BlobError::S3 {
                    url: BlobUrl::S3(at.clone()),
                    error,
                })?;
                if at.prefix().is_empty() {
                    Arc::new(s3)
                } else {
                    Arc::new(PrefixStore::new(s3, at.prefix()))
                }
            }
        };
        Ok(Self { store, local_dir })
    }

    /// Whether the file store answers (for `/readyz` and at start): a look-up of a name no file
    /// has, which a reachable store with valid credentials answers "not found".
    pub async fn ping(&self) -> Result<(), BlobError> {
        match self
            .store
            .head(&ObjectPath::from("exports/.ccfs-ready"))
            .await
        {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The object's path: `exports/{name}` for a file stored before per-attempt keys,
    /// `exports/a{attempt}/{name}` since (see [`FileKey`]).
    fn path(key: &FileKey) -> ObjectPath {
        ObjectPath::from(key.to_string())
    }

    /// Uploads a local file under `key`, hashing it on the way.
    pub async fn put_file(&self, key: &FileKey, file: &Path) -> Result<Stored, BlobError> {
        let src = tokio::fs::File::open(file).await?;
        let chunks = ReaderStream::with_capacity(src, READ).map_err(BlobError::from);
        self.put_stream(key, chunks).await
    }

    /// Uploads the file at `path` while it is being written: the bytes `stable` says are final
    /// go up in parts as they come, the rest once it says the file is complete. Fails with
    /// [`BlobError::Unfinished`] (and the upload is aborted) when the writer stops before that.
    pub async fn put_growing(
        &self,
        key: &FileKey,
        path: &Path,
        stable: watch::Receiver<Stable>,
    ) -> Result<Stored, BlobError> {
        let chunks = growing::final_bytes(path, stable, READ).await?;
        self.put_stream(key, chunks).await
    }

    /// Copies the file `key` of `src` into this store under the same key, hashing it on the way.
    pub async fn copy_from(&self, src: &Blobs, key: &FileKey) -> Result<Stored, BlobError> {
        let chunks = src.get(key, None).await?;
        self.put_stream(key, chunks).await
    }

    /// The size and SHA-256 of a stored file, read back whole; `None` when no file is stored
    /// under `key`.
    pub async fn digest(&self, key: &FileKey) -> Result<Option<Stored>, BlobError> {
        let mut chunks = match self.get(key, None).await {
            Ok(chunks) => chunks,
            Err(BlobError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = chunks.try_next().await? {
            hasher.update(&chunk);
            size += chunk.len() as u64;
        }
        Ok(Some(Stored {
            size,
            sha256: hex::encode(hasher.finalize()),
        }))
    }

    /// Uploads `chunks` under `key` in parts, hashing them; an upload that fails is aborted.
    async fn put_stream(
        &self,
        key: &FileKey,
        chunks: impl futures::Stream<Item = Result<Bytes, BlobError>>,
    ) -> Result<Stored, BlobError> {
        let upload = self.store.put_multipart(&Self::path(key)).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        match copy_hashing(chunks, &mut writer).await {
            Ok(stored) => {
                writer.finish().await?;
                Ok(stored)
            }
            Err(e) => {
                // The parts uploaded so far would otherwise stay in the bucket, unseen and
                // billed; the first error is the one worth reporting.
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(file = %key, "cannot abort a failed upload: {abort}");
                }
                Err(e)
            }
        }
    }

    /// Streams a stored file, or the byte range of it; [`BlobError::NotFound`] when no file is
    /// stored under `key`.
    pub async fn get(
        &self,
        key: &FileKey,
        range: Option<Range<u64>>,
    ) -> Result<BoxStream<'static, Result<Bytes, BlobError>>, BlobError> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = match self.store.get_opts(&Self::path(key), options).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(BlobError::NotFound(key.clone()))
            }
            Err(e) => return Err(e.into()),
        };
        let range = result.range.clone();
        Ok(match result.payload {
            // The local store opened the file: it is read here in large blocks (see
            // `local_read`) rather than by `object_store`'s 8 KiB reader.
            GetResultPayload::File(file, _) => {
                local_read::read_range(file, range, local_read::BLOCK)
                    .map_err(BlobError::from)
                    .boxed()
            }
            // S3 answered a ranged GET (the range, when given, was sent as its `Range`).
            GetResultPayload::Stream(body) => {
                coalesce::coalesce(body.map_err(BlobError::from), local_read::BLOCK).boxed()
            }
        })
    }

    /// The local store's unfinished uploads (none on S3, which cannot list them; see the module
    /// header), under the legacy keys (`exports/`) and every attempt's (`exports/a{N}/`). Not
    /// every one is dead: an upload in progress is listed too.
    pub async fn unfinished_uploads(&self) -> Result<Vec<UnfinishedUpload>, BlobError> {
        let Some(dir) = &self.local_dir else {
            return Ok(Vec::new());
        };
        let dir = dir.join("exports");
        let mut found = Vec::new();
        // (directory, whether it is `exports/` itself, whose attempt directories are listed too)
        let mut dirs = vec![(dir, true)];
        while let Some((dir, top)) = dirs.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            while let Some(entry) = entries.next_entry().await? {
                let file_name = entry.file_name();
                let Some(file_name) = file_name.to_str() else {
                    continue;
                };
                // `a{N}`: the directory of attempt N's uploads (see `FileKey`), one level down.
                if top && is_attempt_dir(file_name) && entry.file_type().await?.is_dir() {
                    dirs.push((entry.path(), false));
                    continue;
                }
                // `NAME#DIGITS`, as `object_store`'s local store names a staging file.
                let Some((name, n)) = file_name.rsplit_once('#') else {
                    continue;
                };
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                if let Some(name) = ZipFileName::parse(name) {
                    found.push(UnfinishedUpload {
                        name,
                        path: entry.path(),
                    });
                }
            }
        }
        Ok(found)
    }

    /// Removes an unfinished upload unless it was written to after `seen_dead_at` (then it is a
    /// new upload under the same staging name); true when it was removed. Its uploader, if it
    /// still runs, fails when it tries to complete.
    pub fn remove_unfinished(
        &self,
        upload: &UnfinishedUpload,
        seen_dead_at: SystemTime,
    ) -> Result<bool, BlobError> {
        match upload.modified() {
            Some(m) if m <= seen_dead_at => match std::fs::remove_file(&upload.path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e.into()),
            },
            _ => Ok(false),
        }
    }

    /// Deletes a file; a file already gone is not an error.
    pub async fn delete(&self, key: &FileKey) -> Result<(), BlobError> {
        match self.store.delete(&Self::path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Whether a directory of the local store's `exports/` is an attempt's: `a` and digits.
fn is_attempt_dir(name: &str) -> bool {
    name.strip_prefix('a')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Copies `chunks` into an upload, hashing on the way; at most two parts are in flight, so
/// memory stays a few parts whatever the file's size.
async fn copy_hashing(
    chunks: impl futures::Stream<Item = Result<Bytes, BlobError>>,
    writer: &mut WriteMultipart,
) -> Result<Stored, BlobError> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut chunks = std::pin::pin!(chunks);
    while let Some(chunk) = chunks.try_next().await? {
        hasher.update(&chunk);
        size += chunk.len() as u64;
        writer.wait_for_capacity(2).await?;
        writer.write(&chunk);
    }
    Ok(Stored {
        size,
        sha256: hex::encode(hasher.finalize()),
    })
}

mod coalesce;
mod growing;
mod local_read;
mod s3;
#[cfg(test)]
mod tests;

pub use growing::Stable;
use s3::s3_client;

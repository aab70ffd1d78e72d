//! The file store for finished exports, behind `object_store`: a local directory by default.
//!
//! An object appears only when its upload completes (the local store writes to a staging file
//! and renames it), so a partial zip can never be read.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use ccfs_protocol::ZipFileName;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::config::Config;

/// An error of the file store.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No file is stored under this name.
    #[error("file store: {0} is not stored")]
    NotFound(ZipFileName),
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
}

/// Upload part size; memory per upload stays around a few of these.
const PART: usize = 8 * 1024 * 1024;

impl Blobs {
    /// The store the configuration names (a local directory, created when missing).
    pub fn open(config: &Config) -> Result<Self, BlobError> {
        let dir = config.blob_dir();
        std::fs::create_dir_all(&dir).map_err(|error| BlobError::Dir {
            path: dir.clone(),
            error,
        })?;
        Ok(Self {
            store: Arc::new(LocalFileSystem::new_with_prefix(&dir)?),
        })
    }

    fn key(name: &ZipFileName) -> ObjectPath {
        ObjectPath::from(format!("exports/{name}"))
    }

    /// Uploads a local file under `name`, hashing it on the way.
    pub async fn put_file(&self, name: &ZipFileName, file: &Path) -> Result<Stored, BlobError> {
        let mut src = tokio::fs::File::open(file).await?;
        let upload = self.store.put_multipart(&Self::key(name)).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 1024 * 1024];
        loop {
            let n = src.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
            writer.wait_for_capacity(2).await?;
            writer.write(&buf[..n]);
        }
        writer.finish().await?;
        Ok(Stored {
            size,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    /// Streams a stored file, or the byte range of it; [`BlobError::NotFound`] when no file is
    /// stored under `name`.
    pub async fn get(
        &self,
        name: &ZipFileName,
        range: Option<Range<u64>>,
    ) -> Result<BoxStream<'static, Result<Bytes, BlobError>>, BlobError> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = match self.store.get_opts(&Self::key(name), options).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(BlobError::NotFound(name.clone()))
            }
            Err(e) => return Err(e.into()),
        };
        Ok(result.into_stream().map_err(BlobError::from).boxed())
    }

    /// Deletes a file; a file already gone is not an error.
    pub async fn delete(&self, name: &ZipFileName) -> Result<(), BlobError> {
        match self.store.delete(&Self::key(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccfs_protocol::ResponseId;

    #[tokio::test]
    async fn put_get_range_delete() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        let blobs = Blobs::open(&config).unwrap();
        let name = ZipFileName::new(
            jiff::civil::date(2024, 5, 1),
            &ResponseId::from_bytes([1; 16]),
        );
        let src = dir.path().join("src.bin");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&src, &data).unwrap();
        let stored = blobs.put_file(&name, &src).await.unwrap();
        assert_eq!(stored.size, data.len() as u64);
        assert_eq!(stored.sha256, hex::encode(Sha256::digest(&data)));
        let whole: Vec<Bytes> = blobs
            .get(&name, None)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(whole.concat(), data);
        let part: Vec<Bytes> = blobs
            .get(&name, Some(10..20))
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(part.concat(), data[10..20]);
        blobs.delete(&name).await.unwrap();
        blobs.delete(&name).await.unwrap();
        assert!(matches!(
            blobs.get(&name, None).await,
            Err(BlobError::NotFound(n)) if n == name
        ));
    }
}

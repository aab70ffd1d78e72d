//! Uploading a file while it is being written: what the writer says is final ([`Stable`], on
//! a watch channel: the uploader only needs the latest length, and the writer never waits for
//! it), and the stream of those bytes as they become final.

use std::path::Path;

use bytes::Bytes;
use futures::Stream;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use super::BlobError;

/// What the uploader may read of a file being written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stable {
    /// Bytes from the start of the file that will not change.
    pub bytes: u64,
    /// The file is complete and synced: `bytes` is its length.
    pub complete: bool,
}

/// The bytes of the file at `path` in chunks of at most `chunk`, each as soon as `stable` says
/// it is final, ending when it says the file is complete; [`BlobError::Unfinished`] when the
/// writer goes away before that.
pub(super) async fn final_bytes(
    path: &Path,
    mut stable: watch::Receiver<Stable>,
    chunk: usize,
) -> Result<impl Stream<Item = Result<Bytes, BlobError>>, BlobError> {
    // The writer creates the file; it exists once anything of it is reported.
    while *stable.borrow_and_update() == Stable::default() {
        stable.changed().await.map_err(|_| BlobError::Unfinished)?;
    }
    let file = tokio::fs::File::open(path).await?;
    Ok(futures::stream::try_unfold(
        (file, 0u64, stable),
        move |(mut file, offset, mut stable)| async move {
            loop {
                let now = *stable.borrow_and_update();
                if offset < now.bytes {
                    let n = (now.bytes - offset).min(chunk as u64) as usize;
                    let mut buf = vec![0u8; n];
                    file.read_exact(&mut buf).await?;
                    return Ok(Some((Bytes::from(buf), (file, offset + n as u64, stable))));
                }
                if now.complete {
                    return Ok(None);
                }
                stable.changed().await.map_err(|_| BlobError::Unfinished)?;
            }
        },
    ))
}

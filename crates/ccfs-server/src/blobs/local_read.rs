//! Reading a byte range of a file of the local store as a stream of large blocks, for
//! downloads (and digests and copies).
//!
//! `object_store`'s own reader hands every 8 KiB to a blocking thread: about 12,500 hand-offs
//! per 100 MB, which cost more CPU than the TLS that encrypts the bytes after them. Here one
//! hand-off reads a whole block of [`BLOCK`] bytes.
//!
//! Why a block per `spawn_blocking` rather than the alternatives:
//! - `tokio::fs::File` also makes one hand-off per read, but copies every byte once more, from
//!   its own buffer into the caller's;
//! - a dedicated thread reading ahead into a bounded channel would hold a thread for the whole
//!   download, also while a slow client is not taking anything;
//! - mmap would turn a file truncated under us into a SIGBUS instead of an error.
//!
//! A blocking thread is held only while a block is being read, and the next block is read while
//! the previous one is being sent (one block of read-ahead), so on a fast client the reads
//! overlap the encryption. A download holds at most two blocks of its own.

use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures::Stream;
use tokio::task::JoinHandle;

/// The size of one read, and of the chunks the stream yields (the last may be shorter).
///
/// 256 KiB: large enough that the hand-off to a blocking thread is lost in the time to copy
/// and encrypt the block (server CPU per 113 MB download over TLS: 0.10 s with 64 KiB blocks,
/// 0.08 s with 256 KiB, no less with 1 MiB), small enough that 16 downloads at once add about
/// 12 MiB to the server's peak (hyper queues up to about 400 KiB of a body before it writes,
/// then one block is read ahead), where 1 MiB blocks added 45 MiB.
pub(super) const BLOCK: usize = 256 * 1024;

/// The bytes `range` of `file`, in blocks of `block` bytes, read on tokio's blocking threads.
/// A file that ends before `range` does fails the stream with [`io::ErrorKind::UnexpectedEof`]
/// (rather than ending it early: the client was told the length).
pub(super) fn read_range(file: File, range: Range<u64>, block: usize) -> RangeReader {
    RangeReader {
        file: Some(file),
        offset: range.start,
        end: range.end.max(range.start),
        block: block.max(1),
        positioned: false,
        reading: None,
    }
}

/// A block read on a blocking thread: the file comes back with it, positioned after it.
type BlockRead = JoinHandle<(File, io::Result<Bytes>)>;

/// The stream of [`read_range`].
pub(super) struct RangeReader {
    /// The file, when no read holds it.
    file: Option<File>,
    /// Where the next read not yet begun starts.
    offset: u64,
    end: u64,
    block: usize,
    /// Whether the file's position is `offset` (set by the first read, which seeks).
    positioned: bool,
    /// The read in flight, whose block is the next to yield.
    reading: Option<BlockRead>,
}

impl RangeReader {
    /// Begins reading the next block, if any is left and the file is free.
    fn start_read(&mut self) {
        if self.offset >= self.end {
            return;
        }
        let Some(mut file) = self.file.take() else {
            return;
        };
        let start = self.offset;
        // At most `block`, which is a usize, so the conversion cannot fail.
        let len = (self.end - start).min(self.block as u64);
        let seek = !self.positioned;
        self.offset += len;
        self.positioned = true;
        self.reading = Some(tokio::task::spawn_blocking(move || {
            let block = read_block(&mut file, seek.then_some(start), len);
            (file, block)
        }));
    }
}

/// Reads exactly `len` bytes of `file` (from `seek_to`, when given, else from where it is).
fn read_block(file: &mut File, seek_to: Option<u64>, len: u64) -> io::Result<Bytes> {
    if let Some(at) = seek_to {
        file.seek(SeekFrom::Start(at))?;
    }
    // `read_to_end` into reserved capacity reads straight into it, without first zeroing it
    // (which `read_exact` into a `vec![0; len]` would cost, a pass over every byte).
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(usize::MAX));
    file.take(len).read_to_end(&mut buf)?;
    if (buf.len() as u64) < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file is shorter than when it was opened",
        ));
    }
    Ok(Bytes::from(buf))
}

impl Stream for RangeReader {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.reading.is_none() {
            this.start_read();
        }
        let Some(reading) = this.reading.as_mut() else {
            return Poll::Ready(None);
        };
        let joined = ready!(Pin::new(reading).poll(cx));
        this.reading = None;
        let block = match joined {
            Ok((file, block)) => {
                this.file = Some(file);
                block
            }
            // The read panicked (or the runtime is shutting down): the file is lost with it.
            Err(e) => Err(io::Error::other(e)),
        };
        match block {
            Ok(block) => {
                // Read ahead while this block is being sent.
                this.start_read();
                Poll::Ready(Some(Ok(block)))
            }
            Err(e) => {
                // Nothing follows an error.
                this.file = None;
                this.offset = this.end;
                Poll::Ready(Some(Err(e)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    fn file_of(data: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, data).unwrap();
        let file = File::open(&path).unwrap();
        (dir, file)
    }

    async fn chunks(data: &[u8], range: Range<u64>, block: usize) -> io::Result<Vec<Bytes>> {
        let (_dir, file) = file_of(data);
        read_range(file, range, block).try_collect().await
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    #[tokio::test]
    async fn ranges_at_block_boundaries_come_whole_in_blocks() {
        let d = data(40);
        // (range, the chunk lengths expected) with blocks of 8
        let cases: [(Range<u64>, &[usize]); 7] = [
            (0..40, &[8, 8, 8, 8, 8]),
            (0..39, &[8, 8, 8, 8, 7]),
            (1..40, &[8, 8, 8, 8, 7]),
            (8..16, &[8]),
            (7..17, &[8, 2]),
            (39..40, &[1]),
            (0..1, &[1]),
        ];
        for (range, lengths) in cases {
            let got = chunks(&d, range.clone(), 8).await.unwrap();
            let got_lengths: Vec<usize> = got.iter().map(Bytes::len).collect();
            assert_eq!(got_lengths, lengths, "{range:?}");
            let (s, e) = (range.start as usize, range.end as usize);
            assert_eq!(got.concat(), d[s..e], "{range:?}");
        }
    }

    #[tokio::test]
    async fn an_empty_range_or_file_yields_nothing() {
        assert!(chunks(&data(10), 4..4, 8).await.unwrap().is_empty());
        assert!(chunks(&[], 0..0, 8).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_file_shorter_than_the_range_fails_after_what_it_has() {
        let d = data(20);
        let (_dir, file) = file_of(&d);
        let mut s = read_range(file, 0..30, 8);
        let mut got = Vec::new();
        let err = loop {
            match s.try_next().await {
                Ok(Some(b)) => got.extend_from_slice(&b),
                Ok(None) => panic!("ended without an error after {} bytes", got.len()),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(got, d[..16]);
        // Nothing after the error.
        assert!(s.try_next().await.unwrap().is_none());
        // Empty file, non-empty range: the error comes first.
        let e = chunks(&[], 0..1, 8).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn a_file_truncated_while_read_fails() {
        let d = data(64);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, &d).unwrap();
        let mut s = read_range(File::open(&path).unwrap(), 0..64, 16);
        assert_eq!(s.try_next().await.unwrap().unwrap(), d[..16]);
        // The second block is whole whenever it is read; the third is read only once the
        // second has been taken, so after the cut.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(40)
            .unwrap();
        assert_eq!(s.try_next().await.unwrap().unwrap(), d[16..32]);
        let e = s.try_next().await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}

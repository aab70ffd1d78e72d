//! How much of a zip being written is final, so its upload can start before it is finished.
//!
//! The zip writer writes each CSV part's local header, then the deflated rows, then seeks back
//! to the header to fill in the CRC and sizes it only knows at the end, then seeks back to the
//! end for the next part. So the bytes before the header it patches were written for good, and
//! once it is back at the end, every byte up to there is. [`Tracked`] sits under the zip writer
//! (below its write buffer, which it flushes before every seek) and follows exactly that: it
//! publishes the final length on a watch channel each time the writer returns to the end after
//! a patch, and the complete length once the file is synced.
//!
//! A watch channel because the upload only ever needs the latest length: the writer thread never
//! waits for the uploader, and the uploader wakes once per finished part, not once per write.

use std::io::{self, Seek, SeekFrom, Write};

use tokio::sync::watch;

use crate::blobs::Stable;

/// A file under the zip writer that reports its final prefix.
pub(super) struct Tracked<W> {
    inner: W,
    /// Where the next write lands.
    pos: u64,
    /// The file's length so far.
    end: u64,
    /// Set while the writer is back inside what it wrote (patching a header): the length to
    /// publish once it returns to the end.
    patching: Option<u64>,
    stable: Option<watch::Sender<Stable>>,
}

impl<W: Write + Seek> Tracked<W> {
    pub(super) fn new(inner: W, stable: Option<watch::Sender<Stable>>) -> Self {
        Self {
            inner,
            pos: 0,
            end: 0,
            patching: None,
            stable,
        }
    }

    /// The file, and the channel to say it is complete once it is synced.
    pub(super) fn into_parts(self) -> (W, Option<watch::Sender<Stable>>) {
        (self.inner, self.stable)
    }

    fn moved_to(&mut self, pos: u64) {
        if pos < self.end {
            // Back inside the file: a patch. Everything before it is final now, and everything
            // up to the current end will be once the writer returns there.
            self.patching.get_or_insert(self.end);
            self.publish(pos.min(self.end));
        } else if let Some(done) = self.patching.take() {
            self.publish(done);
        }
        self.pos = pos;
    }

    fn publish(&self, bytes: u64) {
        if let Some(tx) = &self.stable {
            tx.send_if_modified(|s| {
                let grew = bytes > s.bytes;
                if grew {
                    s.bytes = bytes;
                }
                grew
            });
        }
    }
}

impl<W: Write + Seek> Write for Tracked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.pos += n as u64;
        self.end = self.end.max(self.pos);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write + Seek> Seek for Tracked<W> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = self.inner.seek(to)?;
        self.moved_to(pos);
        Ok(pos)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufWriter, Cursor};
    use std::sync::{Arc, Mutex};

    use zip::write::SimpleFileOptions;
    use zip::{CompressionMethod, ZipWriter};

    use super::*;

    /// A file in memory that the test can read at any moment while the zip writer writes it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Cursor<Vec<u8>>>>);

    impl Shared {
        fn bytes(&self) -> Vec<u8> {
            self.0.lock().expect("lock").get_ref().clone()
        }
    }

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Seek for Shared {
        fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
            self.0.lock().expect("lock").seek(to)
        }
    }

    /// Writes a zip of `parts` entries the way the export's writer does (buffered, deflated or
    /// stored, sizes patched into each header afterwards), snapshotting the reported final
    /// prefix after every step; every snapshot must be the start of the finished file.
    fn check(method: CompressionMethod, parts: usize) {
        let file = Shared::default();
        let (tx, rx) = watch::channel(Stable::default());
        let mut zip = ZipWriter::new(BufWriter::with_capacity(
            4096,
            Tracked::new(file.clone(), Some(tx)),
        ));
        let options = SimpleFileOptions::default().compression_method(method);
        let mut snapshots = Vec::new();
        let snapshot = |snapshots: &mut Vec<(u64, Vec<u8>)>| {
            let bytes = rx.borrow().bytes;
            let now = file.bytes();
            snapshots.push((bytes, now[..bytes as usize].to_vec()));
        };
        for part in 0..parts {
            zip.start_file(format!("part-{part}.csv"), options)
                .expect("start");
            snapshot(&mut snapshots);
            for row in 0..2_000u32 {
                writeln!(zip, "{part},{row},{}", row.wrapping_mul(2_654_435_761)).expect("row");
                if row % 500 == 0 {
                    snapshot(&mut snapshots);
                }
            }
        }
        let (_, tracked_tx) = zip
            .finish()
            .expect("finish")
            .into_inner()
            .map_err(|e| e.into_error())
            .expect("flush")
            .into_parts();
        let done = file.bytes();
        let grew: std::collections::BTreeSet<u64> = snapshots.iter().map(|(b, _)| *b).collect();
        assert!(
            grew.len() >= parts - 1,
            "the final prefix grew {} times over {parts} parts",
            grew.len()
        );
        for (bytes, prefix) in snapshots {
            assert_eq!(
                prefix[..],
                done[..bytes as usize],
                "the first {bytes} bytes changed after they were reported final"
            );
        }
        assert!(rx.borrow().bytes <= done.len() as u64);
        assert!(tracked_tx.is_some());
    }

    #[test]
    fn the_reported_prefix_never_changes_and_grows_part_by_part() {
        check(CompressionMethod::Deflated, 6);
        check(CompressionMethod::Stored, 6);
        check(CompressionMethod::Deflated, 1);
    }
}

//! How much of a zip being written is final, so its upload can start before it is finished.
//!
//! The zip writer only appends (see [`super::writer`]): every byte it has written is final. So
//! the file only has to count what went through it, and the writer publishes that count on a
//! watch channel after each finished entry, and the complete length once the file is synced.
//!
//! A watch channel because the upload only ever needs the latest length: the writer thread never
//! waits for the uploader, and the uploader wakes once per finished part, not once per write.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Write};
use std::rc::Rc;

use tokio::sync::watch;

use crate::blobs::Stable;

/// The zip file, counting the bytes written to it.
pub(super) struct Counted {
    file: File,
    // Shared with the writer thread's [`Progress`], on that one thread: the zip writer owns the
    // file, and the count is read between its calls. Hence `Rc<Cell>`, not an atomic.
    bytes: Rc<Cell<u64>>,
}

/// Publishes how much of the file is written.
pub(super) struct Progress {
    bytes: Rc<Cell<u64>>,
    stable: Option<watch::Sender<Stable>>,
}

impl Counted {
    pub(super) fn new(file: File, stable: Option<watch::Sender<Stable>>) -> (Self, Progress) {
        let bytes = Rc::new(Cell::new(0));
        let progress = Progress {
            bytes: bytes.clone(),
            stable,
        };
        (Self { file, bytes }, progress)
    }

    pub(super) fn into_file(self) -> File {
        self.file
    }
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.bytes.set(self.bytes.get() + n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Progress {
    /// Says that every byte written so far is final; `complete` once the file is whole and
    /// synced.
    pub(super) fn publish(&self, complete: bool) {
        let bytes = self.bytes.get();
        if let Some(tx) = &self.stable {
            tx.send_if_modified(|s| {
                let changed = bytes > s.bytes || complete != s.complete;
                if changed {
                    s.bytes = bytes;
                    s.complete = complete;
                }
                changed
            });
        }
    }
}

//! Deflating a CSV part on every core, as pigz does: the part is cut into pieces of [`PIECE`]
//! bytes, each piece is deflated on its own by one of the threads, primed with the 32 KiB before
//! it (the deflate window, so matches reach back across the cut as they would in one stream), and
//! ended with a sync flush, which byte-aligns it. The pieces of a part, concatenated in order, are
//! one deflate stream: the last piece ends it. Each piece's CRC-32 is computed beside it and the
//! checksums are combined in order, so no thread ever sees the whole part.
//!
//! Pieces go to the threads round-robin and come back the same way, so order needs no sorting:
//! the n-th piece is always the n-th result of thread `n % threads`. Every channel is bounded
//! ([`DEPTH`] pieces each way per thread), so a slow side makes the other wait and memory stays
//! at a few pieces per thread whatever the export's size.

use std::io;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::Scope;

use crc32fast::Hasher;
use flate2::{Compress, Compression, FlushCompress, Status};

/// Bytes of CSV per piece: large enough that priming and flushing cost nothing measurable (the
/// size pigz uses), small enough that a few per thread are little memory.
pub(super) const PIECE: usize = 128 * 1024;
/// The deflate window: what a piece is primed with.
pub(super) const WINDOW: usize = 32 * 1024;
/// Pieces queued per thread in each direction.
const DEPTH: usize = 2;

/// How the parts' bytes are stored in the zip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    /// Uncompressed (level 0).
    Stored,
    /// Deflate at this level (1–9).
    Deflate(u32),
}

/// A piece of a part's CSV.
pub(super) struct Piece {
    /// The part's sequence number (1, 2, ...).
    pub part: u32,
    pub data: Vec<u8>,
    /// Up to [`WINDOW`] bytes that precede `data` in its part (empty for a part's first piece).
    pub window: Vec<u8>,
    /// Whether it ends its part.
    pub last: bool,
}

/// A piece as it goes into the zip.
pub(super) struct Deflated {
    pub part: u32,
    pub bytes: Vec<u8>,
    /// The CRC-32 of the piece's CSV, to combine with the others of its part.
    pub crc: Hasher,
    pub last: bool,
}

enum Job {
    Piece(Piece),
    /// No more pieces: the thread that gets it passes it on, so the results say the export is
    /// complete rather than just stopping.
    End,
}

/// What comes out of the threads, in order.
pub(super) enum Done {
    Piece(Deflated),
    End,
}

/// Hands pieces to the threads. Dropping it without [`Pieces::end`] stops them, and the results
/// then end without [`Done::End`].
pub(super) struct Pieces {
    to: Vec<SyncSender<Job>>,
    next: usize,
}

/// The threads' results, in the order the pieces were sent.
pub(super) struct Results {
    from: Vec<Receiver<io::Result<Done>>>,
    next: usize,
}

/// The threads stopped taking pieces (the zip writer failed, and its error is the cause).
#[derive(Debug)]
pub(super) struct Gone;

impl Pieces {
    pub(super) fn send(&mut self, piece: Piece) -> Result<(), Gone> {
        self.send_job(Job::Piece(piece))
    }

    pub(super) fn end(mut self) -> Result<(), Gone> {
        self.send_job(Job::End)
    }

    fn send_job(&mut self, job: Job) -> Result<(), Gone> {
        let to = &self.to[self.next];
        self.next = (self.next + 1) % self.to.len();
        to.send(job).map_err(|_| Gone)
    }
}

impl Results {
    /// The next result; `None` when the pieces stopped coming without [`Done::End`].
    pub(super) fn next(&mut self) -> Option<io::Result<Done>> {
        let from = &self.from[self.next];
        self.next = (self.next + 1) % self.from.len();
        from.recv().ok()
    }
}

/// Starts `threads` deflating threads in `scope` (named `ccfs-deflate-N`, for `top` and
/// profilers); they end when [`Pieces`] is dropped or ended and every result has been taken (or
/// [`Results`] is dropped).
pub(super) fn spawn<'scope>(
    scope: &'scope Scope<'scope, '_>,
    threads: usize,
    method: Method,
) -> io::Result<(Pieces, Results)> {
    let threads = threads.max(1);
    let mut to = Vec::with_capacity(threads);
    let mut from = Vec::with_capacity(threads);
    for n in 0..threads {
        let (job_tx, job_rx) = sync_channel::<Job>(DEPTH);
        let (done_tx, done_rx) = sync_channel::<io::Result<Done>>(DEPTH);
        std::thread::Builder::new()
            .name(format!("ccfs-deflate-{n}"))
            .spawn_scoped(scope, move || work(method, &job_rx, &done_tx))?;
        to.push(job_tx);
        from.push(done_rx);
    }
    Ok((Pieces { to, next: 0 }, Results { from, next: 0 }))
}

/// One thread: pieces in, deflated pieces out, until the pieces stop or nobody takes results.
fn work(method: Method, jobs: &Receiver<Job>, done: &SyncSender<io::Result<Done>>) {
    let mut compress = match method {
        Method::Deflate(level) => Some(Compress::new(Compression::new(level.min(9)), false)),
        Method::Stored => None,
    };
    while let Ok(job) = jobs.recv() {
        let result = match job {
            Job::End => Ok(Done::End),
            Job::Piece(piece) => {
                let mut crc = Hasher::new();
                crc.update(&piece.data);
                let bytes = match compress.as_mut() {
                    Some(c) => deflate(c, &piece),
                    None => Ok(piece.data),
                };
                bytes.map(|bytes| {
                    Done::Piece(Deflated {
                        part: piece.part,
                        bytes,
                        crc,
                        last: piece.last,
                    })
                })
            }
        };
        if done.send(result).is_err() {
            return;
        }
    }
}

/// Deflates one piece: primed with its window, ended by a sync flush (or, for the last piece of
/// its part, by the end of the stream).
fn deflate(c: &mut Compress, piece: &Piece) -> io::Result<Vec<u8>> {
    c.reset();
    if !piece.window.is_empty() {
        c.set_dictionary(&piece.window).map_err(io::Error::other)?;
    }
    let flush = if piece.last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    // CSV deflates to well under half; the loop grows the buffer in the rare case it is short.
    let mut out = Vec::with_capacity(piece.data.len() / 2 + 64);
    let start = c.total_in();
    loop {
        let taken = usize::try_from(c.total_in() - start).map_err(io::Error::other)?;
        let status = c
            .compress_vec(&piece.data[taken..], &mut out, flush)
            .map_err(io::Error::other)?;
        let taken = usize::try_from(c.total_in() - start).map_err(io::Error::other)?;
        // A sync flush is complete once all input is in and the output was not filled up (a
        // full buffer may hide more flushed bytes); the last piece ends at the stream's end.
        let done = match status {
            Status::StreamEnd => true,
            Status::Ok | Status::BufError => {
                !piece.last && taken == piece.data.len() && out.len() < out.capacity()
            }
        };
        if done {
            return Ok(out);
        }
        out.reserve(out.capacity().max(4096));
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::DeflateDecoder;

    use super::*;

    /// Text with long-range repeats, like CSV rows that share most of their columns.
    fn text(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut i = 0u64;
        while out.len() < len {
            out.extend_from_slice(
                format!(
                    "rec{i:08},dev,acct,{},2024-05-01 12:00:{:02},IDLE\n",
                    i % 97,
                    i % 60
                )
                .as_bytes(),
            );
            i += 1;
        }
        out.truncate(len);
        out
    }

    /// Cuts `data` into pieces, runs them through `threads` threads, and joins the output.
    fn run(data: &[u8], threads: usize, method: Method) -> (Vec<u8>, u32) {
        std::thread::scope(|scope| {
            let (mut pieces, mut results) = spawn(scope, threads, method).expect("threads");
            let sender = scope.spawn(move || {
                let chunks: Vec<&[u8]> = if data.is_empty() {
                    vec![&[]]
                } else {
                    data.chunks(PIECE).collect()
                };
                let mut start = 0usize;
                for (i, chunk) in chunks.iter().enumerate() {
                    let window = data[start.saturating_sub(WINDOW)..start].to_vec();
                    start += chunk.len();
                    pieces
                        .send(Piece {
                            part: 1,
                            data: chunk.to_vec(),
                            window,
                            last: i == chunks.len() - 1,
                        })
                        .expect("send");
                }
                pieces.end().expect("end");
            });
            let mut out = Vec::new();
            let mut crc = Hasher::new();
            while let Done::Piece(d) = results.next().expect("a result").expect("deflated") {
                out.extend_from_slice(&d.bytes);
                crc.combine(&d.crc);
            }
            sender.join().expect("sender");
            (out, crc.finalize())
        })
    }

    #[test]
    fn pieces_make_one_deflate_stream_with_the_parts_crc() {
        for len in [0, 1, PIECE - 1, PIECE, PIECE + 1, 5 * PIECE + 12_345] {
            let data = text(len);
            for threads in [1, 2, 3] {
                let (deflated, crc) = run(&data, threads, Method::Deflate(6));
                let mut back = Vec::new();
                DeflateDecoder::new(&deflated[..])
                    .read_to_end(&mut back)
                    .expect("inflate");
                assert_eq!(back, data, "len {len}, {threads} threads");
                assert_eq!(crc, crc32fast::hash(&data), "len {len}");
            }
            let (stored, crc) = run(&data, 2, Method::Stored);
            assert_eq!(stored, data);
            assert_eq!(crc, crc32fast::hash(&data));
        }
    }

    #[test]
    fn priming_keeps_the_ratio_of_one_stream() {
        let data = text(8 * PIECE);
        let (pieces, _) = run(&data, 2, Method::Deflate(6));
        let mut one = flate2::write::DeflateEncoder::new(Vec::new(), Compression::new(6));
        std::io::Write::write_all(&mut one, &data).expect("deflate");
        let one = one.finish().expect("finish");
        // Without priming the pieces come out several percent larger; with it, about the same.
        assert!(
            pieces.len() * 1000 <= one.len() * 1005,
            "{} bytes in pieces vs {} in one stream",
            pieces.len(),
            one.len()
        );
    }
}

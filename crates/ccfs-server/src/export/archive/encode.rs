//! Rows into CSV pieces: each record becomes one CSV row of its part, a new part starts every
//! `rows_per_file` rows (with the header row when asked), and the bytes are cut into pieces for
//! the deflating threads ([`super::deflate`]). Runs on the thread that reads the rows, so a
//! store that hands over borrowed columns ([`RowSink`]) costs no allocation per record.

use ccfs_protocol::record::{push_csv_header, push_csv_row};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use super::deflate::{Gone, Piece, Pieces, PIECE, WINDOW};
use super::ZipSettings;
use crate::export::ExportError;
use crate::store::convert::corrupt;
use crate::store::{RowSink, Stop};

/// The CSV side of an export.
pub(super) struct Encoder {
    /// The current piece's CSV so far.
    csv: Vec<u8>,
    /// The end of the previous piece of the current part: the next piece's window.
    window: Vec<u8>,
    pieces: Pieces,
    timezone: TimeZone,
    header: bool,
    rows_per_file: u64,
    part: u32,
    in_part: u64,
    total: u64,
    cancel: CancellationToken,
    /// Why the encoder asked the reader to stop.
    stopped: Option<Stopped>,
}

/// Why the encoder stopped early.
pub(super) enum Stopped {
    /// Cancelled, a CSV error, or a stored value that is not a time.
    Failed(ExportError),
    /// The deflating threads are gone: the zip writer failed, and its error is the cause.
    WriterGone,
}

impl Encoder {
    pub(super) fn new(s: &ZipSettings, pieces: Pieces, cancel: CancellationToken) -> Self {
        let mut encoder = Self {
            csv: piece_buffer(),
            window: Vec::new(),
            pieces,
            timezone: s.timezone.clone(),
            header: s.csv_header,
            rows_per_file: s.rows_per_file.max(1),
            part: 1,
            in_part: 0,
            total: 0,
            cancel,
            stopped: None,
        };
        encoder.start_part();
        encoder
    }

    /// Ends the last part and tells the threads the export is complete; returns the records and
    /// parts written, or why the encoder stopped early.
    pub(super) fn finish(mut self) -> Result<(u64, u32), Stopped> {
        if let Some(why) = self.stopped.take() {
            return Err(why);
        }
        self.cut(true)?;
        self.pieces.end().map_err(|Gone| Stopped::WriterGone)?;
        Ok((self.total, self.part))
    }

    /// Remembers why the reader was told to stop.
    fn stop(&mut self, why: Stopped) -> Stop {
        self.stopped.get_or_insert(why);
        Stop
    }

    fn start_part(&mut self) {
        if self.header {
            push_csv_header(&mut self.csv);
        }
    }

    fn row_at(&mut self, texts: [&[u8]; 19], begin: i64, end: i64) -> Result<(), Stopped> {
        if self.in_part == self.rows_per_file {
            self.cut(true)?;
            self.part = self
                .part
                .checked_add(1)
                .ok_or_else(|| Stopped::Failed(ExportError::Writer("too many CSV parts".into())))?;
            self.in_part = 0;
            self.start_part();
        }
        let time = |s: i64, what: &str| {
            Timestamp::from_second(s)
                .map_err(|e| Stopped::Failed(corrupt(format_args!("record {what}: {e}")).into()))
        };
        let (begin, end) = (time(begin, "begin_time")?, time(end, "end_time")?);
        push_csv_row(&mut self.csv, texts, begin, end, &self.timezone);
        self.in_part += 1;
        self.total += 1;
        if self.csv.len() >= PIECE {
            self.cut(false)?;
        }
        Ok(())
    }

    /// Sends what the part has so far as a piece (`last`: the part ends with it).
    fn cut(&mut self, last: bool) -> Result<(), Stopped> {
        // Checked once a piece, not once a row: a cancelled export stops within a piece.
        if self.cancel.is_cancelled() {
            return Err(Stopped::Failed(ExportError::Cancelled));
        }
        // A fresh buffer per piece: the piece's goes to a deflating thread.
        let data = std::mem::replace(&mut self.csv, piece_buffer());
        // This piece's window is the end of the previous one; the next one's is the end of
        // this one (topped up from this window when the piece is shorter than a window).
        let window = std::mem::take(&mut self.window);
        if !last {
            let keep = WINDOW.saturating_sub(data.len());
            let mut next = window[window.len().saturating_sub(keep)..].to_vec();
            next.extend_from_slice(&data[data.len().saturating_sub(WINDOW)..]);
            self.window = next;
        }
        let piece = Piece {
            part: self.part,
            data,
            window,
            last,
        };
        self.pieces.send(piece).map_err(|Gone| Stopped::WriterGone)
    }
}

/// The buffer of one piece, with room for a piece and the row that passes its end.
fn piece_buffer() -> Vec<u8> {
    Vec::with_capacity(PIECE + PIECE / 4)
}

impl RowSink for Encoder {
    fn row(&mut self, texts: [&[u8]; 19], begin: i64, end: i64) -> Result<(), Stop> {
        if self.stopped.is_some() {
            return Err(Stop);
        }
        self.row_at(texts, begin, end).map_err(|why| self.stop(why))
    }
}

//! The records part of the store: agent operation records, imported idempotently by
//! `(developer_id, id)` and streamed out for exports.

use async_trait::async_trait;
pub use ccfs_protocol::messages::OnConflict;
use ccfs_protocol::Record;
use futures::stream::BoxStream;

use super::StoreResult;
use crate::model::RecordQuery;

/// What `Store::insert_records` did with a batch (or, from `Store::check_records`,
/// would do). Records are taken in batch order: a record whose `(developer_id, id)` is not
/// stored is inserted; one equal to the stored version in all 21 columns (times at whole
/// seconds) is already present, also when the batch sent it before; any other is a conflict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// New records stored.
    pub inserted: u64,
    /// Records equal to the stored version, left as they were.
    pub already_present: u64,
    /// Records whose id is stored with different content.
    pub conflicts: u64,
    /// Conflicting records that overwrote the stored version ([`OnConflict::Replace`]; a later
    /// record of the batch with the same id overwrites an earlier one).
    pub replaced: u64,
    /// The first [`MAX_CONFLICTS_LISTED`] conflicts: each record's index in the batch and id.
    pub first_conflicts: Vec<(usize, String)>,
}

/// How many conflicts an [`InsertOutcome`] lists.
pub const MAX_CONFLICTS_LISTED: usize = ccfs_protocol::messages::MAX_CONFLICT_IDS;

impl InsertOutcome {
    /// Whether the batch stored nothing because of a conflict ([`OnConflict::Fail`]); the
    /// counts other than `conflicts` are then 0.
    pub fn failed(&self, on_conflict: OnConflict) -> bool {
        on_conflict == OnConflict::Fail && self.conflicts > 0
    }

    /// Counts one conflict, listing it while the list is short.
    pub fn conflict(&mut self, index: usize, id: &str) {
        self.conflicts += 1;
        if self.first_conflicts.len() < MAX_CONFLICTS_LISTED {
            self.first_conflicts.push((index, id.to_owned()));
        }
    }

    /// Adds the outcome of the batch that followed `self`, whose first record was record
    /// number `offset` of the whole.
    pub fn add(&mut self, next: InsertOutcome, offset: usize) {
        self.inserted += next.inserted;
        self.already_present += next.already_present;
        self.replaced += next.replaced;
        self.conflicts += next.conflicts;
        let room = MAX_CONFLICTS_LISTED.saturating_sub(self.first_conflicts.len());
        self.first_conflicts.extend(
            next.first_conflicts
                .into_iter()
                .take(room)
                .map(|(i, id)| (offset + i, id)),
        );
    }
}

#[async_trait]
pub trait Records: Send + Sync + 'static {
    /// Stores the records in one transaction, comparing each with the stored version of its
    /// `(developer_id, id)` inside it (see [`InsertOutcome`]). Equal records are stored once.
    /// On a conflict, `on_conflict` decides: `Fail` rolls the whole batch back (the outcome
    /// then counts only the conflicts), `Skip` keeps the stored version, `Replace` overwrites
    /// it with the record's content.
    async fn insert_records(
        &self,
        records: &[Record],
        on_conflict: OnConflict,
    ) -> StoreResult<InsertOutcome>;
    /// What `insert_records` would answer for the records now, storing nothing (reads only).
    /// Another writer may change the answer before the records are stored.
    async fn check_records(
        &self,
        records: &[Record],
        on_conflict: OnConflict,
    ) -> StoreResult<InsertOutcome>;
    /// Streams the selected records in `(begin_time, id)` order without holding them in memory.
    fn stream_records(&self, query: RecordQuery) -> BoxStream<'static, StoreResult<Record>>;
    /// The selected records for an export, in the order of [`Records::stream_records`]. By
    /// default that stream; a store that can hand over each row's columns without building a
    /// [`Record`] (SQLite) gives a blocking reader instead.
    fn export_rows(&self, query: RecordQuery) -> RowSource {
        RowSource::Stream(self.stream_records(query))
    }
}

/// Where an export's rows come from (see [`Records::export_rows`]).
pub enum RowSource {
    /// Records from an async stream.
    Stream(BoxStream<'static, StoreResult<Record>>),
    /// A reader to run on a blocking thread.
    Blocking(BlockingReader),
}

/// A store's blocking reader of an export's rows: it passes every row to the sink, in order,
/// and returns when the rows end or the sink asks it to stop.
pub type BlockingReader = Box<dyn FnOnce(&mut dyn RowSink) -> StoreResult<()> + Send>;

/// Takes an export's rows one at a time, as a store reads them.
pub trait RowSink {
    /// One record: its 19 texts in [`TEXT_COLUMNS`](ccfs_protocol::record::TEXT_COLUMNS) order
    /// and its times in unix seconds. [`Stop`] tells the reader to stop reading: the export was
    /// cancelled or failed, and the sink knows why.
    fn row(&mut self, texts: [&[u8]; 19], begin: i64, end: i64) -> Result<(), Stop>;
}

/// A [`RowSink`]'s request to stop reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop;

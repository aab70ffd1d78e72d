//! The records part of the SQLite store: one row of `records` per `(developer_id, id)`,
//! imported and checked through the records' own direct connection ([`super::record_db`]),
//! exported through [`super::record_stream`].

use async_trait::async_trait;
use ccfs_protocol::Record;
use futures::stream::BoxStream;

use super::record_db::Batch;
use super::record_stream;
use super::SqliteStore;
use crate::model::RecordQuery;
use crate::store::{InsertOutcome, OnConflict, Records, RowSource, StoreResult};

#[async_trait]
impl Records for SqliteStore {
    async fn insert_records(
        &self,
        records: &[Record],
        on_conflict: OnConflict,
    ) -> StoreResult<InsertOutcome> {
        if records.is_empty() {
            return Ok(InsertOutcome::default());
        }
        self.records.insert(Batch::of(records), on_conflict).await
    }

    async fn check_records(
        &self,
        records: &[Record],
        on_conflict: OnConflict,
    ) -> StoreResult<InsertOutcome> {
        if records.is_empty() {
            return Ok(InsertOutcome::default());
        }
        self.records.check(Batch::of(records), on_conflict).await
    }

    fn stream_records(&self, query: RecordQuery) -> BoxStream<'static, StoreResult<Record>> {
        record_stream::stream(self.direct.clone(), query)
    }

    fn export_rows(&self, query: RecordQuery) -> RowSource {
        let db = self.direct.clone();
        RowSource::Blocking(Box::new(move |sink| {
            record_stream::read_rows(&db, &query, sink)
        }))
    }
}

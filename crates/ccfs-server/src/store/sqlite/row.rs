//! One record as the `records` table holds it: the row type a query reads,
//! and the stored version a new record is compared with. Shared by the import side
//! ([`super::records`]) and the export stream ([`super::record_stream`]), so neither needs the
//! other.

use ccfs_protocol::Record;

use super::from_second;
pub(super) use crate::store::versions::Version;
use crate::store::StoreResult;

/// One record of a [`record_page_sql`](super::record_stream::record_page_sql) page: the texts in [`RECORD_TEXT_COLUMNS`](crate::store::convert::RECORD_TEXT_COLUMNS) order, then
/// the times.
#[derive(serde::Deserialize)]
#[rustfmt::skip]
pub(super) struct RecordRow(
    String, String, String, String, String, String, String, String, String, String,
    String, String, String, String, String, String, String, String, String,
    i64, i64,
);

impl RecordRow {
    pub(super) fn key(&self) -> (i64, &str) {
        (self.19, &self.0)
    }

    #[rustfmt::skip]
    pub(super) fn into_version(self) -> Version {
        let RecordRow(t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10, t11, t12, t13, t14, t15, t16, t17, t18, begin, end) = self;
        Version {
            texts: [t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10, t11, t12, t13, t14, t15, t16, t17, t18],
            begin,
            end,
        }
    }

    pub(super) fn into_record(self) -> StoreResult<Record> {
        let v = self.into_version();
        Ok(Record::from_texts(
            v.texts,
            from_second(v.begin, "record begin_time")?,
            from_second(v.end, "record end_time")?,
        ))
    }
}

//! One record as the `records` table holds it: the row type the import's comparison query reads,
//! and the stored version a new record is compared with.

pub(super) use crate::store::versions::Version;

/// One record of a [`stored_versions_sql`](super::records::stored_versions_sql) answer: the texts in [`RECORD_TEXT_COLUMNS`](crate::store::convert::RECORD_TEXT_COLUMNS) order, then
/// the times.
#[derive(serde::Deserialize)]
#[rustfmt::skip]
pub(super) struct RecordRow(
    String, String, String, String, String, String, String, String, String, String,
    String, String, String, String, String, String, String, String, String,
    i64, i64,
);

impl RecordRow {
    #[rustfmt::skip]
    pub(super) fn into_version(self) -> Version {
        let RecordRow(t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10, t11, t12, t13, t14, t15, t16, t17, t18, begin, end) = self;
        Version {
            texts: [t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10, t11, t12, t13, t14, t15, t16, t17, t18],
            begin,
            end,
        }
    }
}

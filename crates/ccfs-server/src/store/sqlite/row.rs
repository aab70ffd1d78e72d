//! One record as the `records` table holds it: the column list, the row type a query reads,
//! and the stored version a new record is compared with. Shared by the import side
//! ([`super::records`]) and the export stream ([`super::record_stream`]), so neither needs the
//! other.

use ccfs_protocol::Record;

use super::{floor_second, from_second};
use crate::store::StoreResult;

/// The SQL names of [`ccfs_protocol::record::TEXT_COLUMNS`], in the same order.
pub(super) const RECORD_TEXT_COLUMNS: [&str; 19] = [
    "id",
    "developer_id",
    "account_id",
    "agent_id",
    "service_no",
    "skill_id",
    "call_id",
    "op_type",
    "op_object",
    "op_cause",
    "media_type",
    "vdn_id",
    "cc_id",
    "agent_type",
    "phone_no",
    "call_in_out",
    "location_id",
    "logon_sn",
    "skill_info_sn",
];

/// One record of a [`record_page_sql`](super::record_stream::record_page_sql) page: the texts in [`RECORD_TEXT_COLUMNS`] order, then
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

/// A record as stored: its texts in [`RECORD_TEXT_COLUMNS`] order and its times in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Version {
    pub(super) texts: [String; 19],
    pub(super) begin: i64,
    pub(super) end: i64,
}

impl Version {
    pub(super) fn of(r: &Record) -> Self {
        Version {
            texts: r.texts().map(str::to_owned),
            begin: floor_second(r.begin_time),
            end: floor_second(r.end_time),
        }
    }

    /// Whether `r` would be stored as this version: all 21 columns equal.
    pub(super) fn stores(&self, r: &Record) -> bool {
        self.begin == floor_second(r.begin_time)
            && self.end == floor_second(r.end_time)
            && self.texts.iter().zip(r.texts()).all(|(a, b)| a == b)
    }
}

//! How a batch of records compares with the stored versions of their ids, the same for every
//! store: the stores load the stored versions their way, and this decides, record by record in
//! batch order, what is new, what is already present and what conflicts.

use std::collections::HashMap;

use ccfs_protocol::Record;

use super::convert::floor_second;
use super::{InsertOutcome, OnConflict};

/// A record as stored: its texts in [`ccfs_protocol::record::TEXT_COLUMNS`] order and its times in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version {
    pub(crate) texts: [String; 19],
    pub(crate) begin: i64,
    pub(crate) end: i64,
}

impl Version {
    pub(crate) fn of(r: &Record) -> Self {
        Version {
            texts: r.texts().map(str::to_owned),
            begin: floor_second(r.begin_time),
            end: floor_second(r.end_time),
        }
    }

    /// Whether `r` would be stored as this version: all 21 columns equal.
    pub(crate) fn stores(&self, r: &Record) -> bool {
        self.begin == floor_second(r.begin_time)
            && self.end == floor_second(r.end_time)
            && self.texts.iter().zip(r.texts()).all(|(a, b)| a == b)
    }
}

/// The current version of each `(developer_id, id)` a batch has named so far.
pub(crate) type Versions = HashMap<(String, String), Version>;

/// How the records of a chunk compare with the current versions of their ids.
#[derive(Debug, Default)]
pub(crate) struct Sorted<'r> {
    /// Records whose id has no version yet (each becomes the version of its id).
    pub(crate) new: u64,
    /// Records equal to the current version.
    pub(crate) same: u64,
    /// Conflicting records to write, in batch order (`Replace` only).
    pub(crate) replace: Vec<&'r Record>,
}

/// Compares the records of `chunk` (whose first is record number `offset` of the batch) with
/// the current versions of their ids, in order, counting conflicts into `outcome`. With
/// `Replace`, a conflicting record becomes the current version.
pub(crate) fn sort_chunk<'r>(
    chunk: &'r [Record],
    offset: usize,
    versions: &mut Versions,
    on_conflict: OnConflict,
    outcome: &mut InsertOutcome,
) -> Sorted<'r> {
    let mut sorted = Sorted::default();
    for (i, r) in chunk.iter().enumerate() {
        match versions.get_mut(&(r.developer_id.clone(), r.id.clone())) {
            None => {
                versions.insert((r.developer_id.clone(), r.id.clone()), Version::of(r));
                sorted.new += 1;
            }
            Some(v) if v.stores(r) => sorted.same += 1,
            Some(v) => {
                outcome.conflict(offset + i, &r.id);
                if on_conflict == OnConflict::Replace {
                    *v = Version::of(r);
                    sorted.replace.push(r);
                }
            }
        }
    }
    sorted
}

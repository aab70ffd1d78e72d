//! The ids a file has shown so far, for `--on-conflict fail`: two different versions of one
//! record in one file are a conflict the first pass must find wherever they are in the file,
//! not only within one batch, so that a failing file stores nothing.
//!
//! Memory is what makes this affordable for large files: a record is kept as a 64-bit hash of
//! its `(developer_id, id)` and a 64-bit fingerprint of its content, 16 bytes, in a sorted
//! array that grows by merging in the most recent ids (held in a small map until there are
//! [`RECENT`] of them), so there is no hash table's slack or doubling: about 16 MB for a
//! million records. A lookup is a binary search in a small index of every [`BLOCK`]th key (it
//! stays in the CPU cache), then in one block.
//!
//! Hashes can collide. Two versions with equal key hashes and equal fingerprints are taken as
//! the same record (a 2^-128 chance of hiding a conflict, which the store would still find
//! while storing); a differing fingerprint under an equal key hash is only *probably* a second
//! version, which the caller confirms by reading the file again (see `FileImport::validate`).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, DefaultHasher, Hash, Hasher};

use ccfs_protocol::Record;

/// Ids kept in the map before they are merged into the sorted array: large enough that merges
/// (each moves the whole array) are rare, small enough to stay a few MB.
const RECENT: usize = 1 << 16;

/// Entries of the sorted array per entry of its index.
const BLOCK: usize = 64;

/// First versions of the ids seen: key hash → content fingerprint.
#[derive(Default)]
pub struct SeenIds {
    /// The latest ids, not merged yet.
    recent: HashMap<u64, u64, BuildHasherDefault<Prehashed>>,
    /// Every other id, sorted by key hash, each key once.
    sorted: Vec<(u64, u64)>,
    /// The key of every [`BLOCK`]th entry of `sorted`.
    index: Vec<u64>,
}

/// What [`SeenIds::note`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// The first version of this id in the file.
    New,
    /// The same content as an earlier line: harmless.
    Same,
    /// Different content from the first version (or a key hash collision: see the module).
    Differs,
}

impl SeenIds {
    /// Notes `record`; the first version of an id is the one kept.
    pub fn note(&mut self, record: &Record) -> Seen {
        let (key, fingerprint) = (key(record), content(record));
        match self.recent.get(&key).copied().or_else(|| self.find(key)) {
            None => {
                self.recent.insert(key, fingerprint);
                if self.recent.len() >= RECENT {
                    self.merge();
                }
                Seen::New
            }
            Some(f) if f == fingerprint => Seen::Same,
            Some(_) => Seen::Differs,
        }
    }

    fn find(&self, key: u64) -> Option<u64> {
        // The block that can hold `key` starts at the last indexed key at or below it.
        let block = self.index.partition_point(|k| *k <= key).checked_sub(1)?;
        let start = block * BLOCK;
        let entries = &self.sorted[start..(start + BLOCK).min(self.sorted.len())];
        let at = entries.binary_search_by_key(&key, |e| e.0).ok()?;
        Some(entries[at].1)
    }

    /// Moves the recent ids into the sorted array, merging from its end so that nothing but
    /// the array itself is allocated.
    fn merge(&mut self) {
        let mut recent: Vec<(u64, u64)> = self.recent.drain().collect();
        recent.sort_unstable_by_key(|e| e.0);
        let old = self.sorted.len();
        self.sorted.reserve_exact(recent.len());
        self.sorted.resize(old + recent.len(), (0, 0));
        let (mut i, mut j) = (old, recent.len());
        for w in (0..self.sorted.len()).rev() {
            if j == 0 {
                break;
            }
            if i > 0 && self.sorted[i - 1].0 > recent[j - 1].0 {
                self.sorted[w] = self.sorted[i - 1];
                i -= 1;
            } else {
                self.sorted[w] = recent[j - 1];
                j -= 1;
            }
        }
        self.index = self.sorted.iter().step_by(BLOCK).map(|e| e.0).collect();
    }
}

/// The map's hasher: its keys are hashes already, so hashing them again would only cost time.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (the keys are `u64`); anything else is folded in.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// `(developer_id, id)` as 64 bits.
fn key(record: &Record) -> u64 {
    let mut h = DefaultHasher::new();
    record.developer_id.hash(&mut h);
    record.id.hash(&mut h);
    h.finish()
}

/// The content the store compares: every text column, and the times at whole seconds.
fn content(record: &Record) -> u64 {
    let mut h = DefaultHasher::new();
    // `str`'s Hash writes a terminator, so ("a", "bc") and ("ab", "c") differ.
    record.texts().hash(&mut h);
    record.begin_time.as_second().hash(&mut h);
    record.end_time.as_second().hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    fn rec(id: &str, dev: &str, op: &str, at: i64) -> Record {
        let t = Timestamp::from_second(at).unwrap();
        let texts: [String; 19] = std::array::from_fn(|c| match c {
            0 => id.to_owned(),
            1 => dev.to_owned(),
            7 => op.to_owned(),
            _ => String::new(),
        });
        Record::from_texts(texts, t, t)
    }

    #[test]
    fn finds_a_second_version_wherever_it_is() {
        let mut seen = SeenIds::default();
        assert_eq!(seen.note(&rec("a", "d1", "2", 100)), Seen::New);
        assert_eq!(seen.note(&rec("a", "d2", "2", 100)), Seen::New);
        assert_eq!(seen.note(&rec("b", "d1", "2", 100)), Seen::New);
        assert_eq!(seen.note(&rec("a", "d1", "2", 100)), Seen::Same);
        assert_eq!(seen.note(&rec("a", "d1", "3", 100)), Seen::Differs);
        assert_eq!(seen.note(&rec("b", "d1", "2", 101)), Seen::Differs);
        // Fractions of a second are not content: the store keeps whole seconds.
        let mut r = rec("c", "d1", "2", 100);
        assert_eq!(seen.note(&r), Seen::New);
        r.begin_time = Timestamp::new(100, 500_000_000).unwrap();
        assert_eq!(seen.note(&r), Seen::Same);
    }

    /// Across several merges into the sorted array: every id is found again, whether it was
    /// merged first, last or is still recent, and a second version of each is told apart.
    #[test]
    fn finds_ids_after_merges() {
        let mut seen = SeenIds::default();
        let n = RECENT * 3 + 100;
        for i in 0..n {
            assert_eq!(seen.note(&rec(&i.to_string(), "d", "2", 100)), Seen::New);
        }
        assert_eq!(seen.sorted.len(), RECENT * 3);
        assert!(seen.sorted.windows(2).all(|w| w[0].0 < w[1].0));
        for i in (0..n).step_by(97).chain([0, RECENT - 1, RECENT, n - 1]) {
            assert_eq!(seen.note(&rec(&i.to_string(), "d", "2", 100)), Seen::Same);
            assert_eq!(seen.note(&rec(&i.to_string(), "d", "3", 100)), Seen::Differs);
        }
        assert_eq!(seen.note(&rec("new", "d", "2", 100)), Seen::New);
    }
}

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
//! the same record (about a 2^-64 chance of hiding a conflict, which the store would still
//! find while storing); a differing fingerprint under an equal key hash is only *probably* a second
//! version, which the caller confirms by reading the file again (see `FileImport::validate`).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

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
    let mut h = Mix::default();
    h.text(&record.developer_id);
    h.text(&record.id);
    h.finish()
}

/// The content the store compares: every text column, and the times at whole seconds.
fn content(record: &Record) -> u64 {
    let mut h = Mix::default();
    for text in record.texts() {
        h.text(text);
    }
    // The store keeps whole seconds (an i64, hashed as its bits).
    h.word(record.begin_time.as_second() as u64);
    h.word(record.end_time.as_second() as u64);
    h.finish()
}

/// A fast 64-bit hash of a few short texts: a word at a time (xor, multiply, xor-shift), then
/// a full avalanche (MurmurHash3's finalizer). It runs twice for every
/// record of a file, where std's SipHash took a tenth of the first pass; it needs no
/// resistance to chosen collisions (a file could only hide its own conflicts from this pass,
/// and the store still finds them).
#[derive(Default)]
struct Mix(u64);

impl Mix {
    fn word(&mut self, w: u64) {
        // Multiplying carries a bit only upwards; the shift brings the high bits back down,
        // without which ids that differ in two words collide (FxHash's step alone did, on
        // simulated ids). Each step is a bijection of the state for a given word.
        let h = (self.0 ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
        self.0 = h ^ (h >> 29);
    }

    /// The text's bytes, then its length: ("a", "bc") and ("ab", "c") differ.
    fn text(&mut self, text: &str) {
        let bytes = text.as_bytes();
        let mut words = bytes.chunks_exact(8);
        for chunk in &mut words {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            self.word(u64::from_le_bytes(w));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(w));
        }
        self.word(bytes.len() as u64);
    }

    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
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
    fn hashes_tell_texts_apart_by_their_boundaries() {
        let of = |texts: &[&str]| {
            let mut h = Mix::default();
            texts.iter().for_each(|t| h.text(t));
            h.finish()
        };
        assert_ne!(of(&["a", "bc"]), of(&["ab", "c"]));
        assert_ne!(of(&["", "x"]), of(&["x", ""]));
        assert_ne!(of(&["12345678", ""]), of(&["1234567", "8"]));
        assert_eq!(of(&["same"]), of(&["same"]));
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
            assert_eq!(
                seen.note(&rec(&i.to_string(), "d", "3", 100)),
                Seen::Differs
            );
        }
        assert_eq!(seen.note(&rec("new", "d", "2", 100)), Seen::New);
    }
}

//! The ids a file has shown so far, for `--on-conflict fail`: two different versions of one
//! record in one file are a conflict the first pass must find wherever they are in the file,
//! not only within one batch, so that a failing file stores nothing.
//!
//! Memory is what makes this affordable for large files: a record is kept as a 128-bit hash of
//! its `(developer_id, id)` with a 64-bit fingerprint of its content and its line, about 40
//! bytes a record with the map's overhead (40 MB for a million records), instead of the record.
//! A fingerprint collision could only hide a conflict inside the file (one in 2^64), which the
//! store then still finds while storing.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use ccfs_protocol::Record;

/// First versions of the ids seen: key hash → (content fingerprint, line).
#[derive(Default)]
pub struct SeenIds {
    first: HashMap<u128, (u64, u64)>,
}

/// What [`SeenIds::note`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// The first version of this id in the file.
    New,
    /// The same content as an earlier line: harmless.
    Same,
    /// Different content from the version at this earlier line.
    Differs { first_line: u64 },
}

impl SeenIds {
    /// Notes `record`, read at `line`.
    pub fn note(&mut self, record: &Record, line: u64) -> Seen {
        let fingerprint = content(record);
        match self.first.get(&key(record)) {
            None => {
                self.first.insert(key(record), (fingerprint, line));
                Seen::New
            }
            Some((f, _)) if *f == fingerprint => Seen::Same,
            Some((_, first_line)) => Seen::Differs {
                first_line: *first_line,
            },
        }
    }
}

/// `(developer_id, id)` as 128 bits: two SipHash runs with different prefixes.
fn key(record: &Record) -> u128 {
    let half = |salt: u8| {
        let mut h = DefaultHasher::new();
        salt.hash(&mut h);
        record.developer_id.hash(&mut h);
        record.id.hash(&mut h);
        h.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
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
        assert_eq!(seen.note(&rec("a", "d1", "2", 100), 1), Seen::New);
        assert_eq!(seen.note(&rec("a", "d2", "2", 100), 2), Seen::New);
        assert_eq!(seen.note(&rec("b", "d1", "2", 100), 3), Seen::New);
        assert_eq!(seen.note(&rec("a", "d1", "2", 100), 4), Seen::Same);
        assert_eq!(
            seen.note(&rec("a", "d1", "3", 100), 5),
            Seen::Differs { first_line: 1 }
        );
        assert_eq!(
            seen.note(&rec("b", "d1", "2", 101), 6),
            Seen::Differs { first_line: 3 }
        );
        // Fractions of a second are not content: the store keeps whole seconds.
        let mut r = rec("c", "d1", "2", 100);
        assert_eq!(seen.note(&r, 7), Seen::New);
        r.begin_time = Timestamp::new(100, 500_000_000).unwrap();
        assert_eq!(seen.note(&r, 8), Seen::Same);
    }
}

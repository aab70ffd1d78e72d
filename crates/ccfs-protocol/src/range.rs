//! The `Range` header of a download (SPEC section 8): a single `bytes=` range is honoured,
//! anything else (several ranges, other units, garbage) is ignored, as HTTP allows, and the
//! whole file is sent.

use std::ops::Range;

/// What a `Range` header asks of a file of a given size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeAsk {
    /// No usable range: the whole file, `200`.
    Whole,
    /// These bytes, never empty and within the file: `206`.
    Part(Range<u64>),
    /// A range that starts at or past the end: `416`.
    Unsatisfiable,
}

impl RangeAsk {
    /// Reads the header `value` (absent: `None`) against a file of `size` bytes.
    pub fn parse(value: Option<&str>, size: u64) -> Self {
        let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
            return Self::Whole;
        };
        if spec.contains(',') {
            return Self::Whole;
        }
        let Some((a, b)) = spec.trim().split_once('-') else {
            return Self::Whole;
        };
        let (a, b) = (a.trim(), b.trim());
        let range = match (digits(a), digits(b)) {
            (Some(start), Some(end)) if start <= end => start..end.saturating_add(1).min(size),
            (Some(_), Some(_)) => return Self::Whole,
            (Some(start), None) if b.is_empty() => start..size,
            (None, Some(suffix)) if a.is_empty() => size.saturating_sub(suffix)..size,
            _ => return Self::Whole,
        };
        if range.start >= size || range.is_empty() {
            Self::Unsatisfiable
        } else {
            Self::Part(range)
        }
    }
}

/// A position as HTTP writes it: ASCII digits only (`u64`'s own parse also takes a `+`).
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = |v: &str| RangeAsk::parse(Some(v), 100);
        assert_eq!(RangeAsk::parse(None, 100), RangeAsk::Whole);
        assert_eq!(r("bytes=0-9"), RangeAsk::Part(0..10));
        assert_eq!(r("bytes=90-"), RangeAsk::Part(90..100));
        assert_eq!(r("bytes=-10"), RangeAsk::Part(90..100));
        assert_eq!(r("bytes=50-500"), RangeAsk::Part(50..100));
        assert_eq!(r("bytes=100-"), RangeAsk::Unsatisfiable);
        assert_eq!(r("bytes=-0"), RangeAsk::Unsatisfiable);
        assert_eq!(r("bytes=0-1,5-6"), RangeAsk::Whole);
        assert_eq!(r("items=0-1"), RangeAsk::Whole);
        assert_eq!(r("bytes=9-1"), RangeAsk::Whole);
        assert_eq!(
            RangeAsk::parse(Some("bytes=0-"), 0),
            RangeAsk::Unsatisfiable
        );
        assert_eq!(r("bytes=+5-9"), RangeAsk::Whole);
        assert_eq!(r("bytes=-+5"), RangeAsk::Whole);
        // Past u64: not a position, so no range.
        assert_eq!(r("bytes=0-99999999999999999999"), RangeAsk::Whole);
    }
}

//! Validated names: the response id of a job, the zip file name that carries it, and the name
//! of each CSV part inside the zip. A value of these types is always well formed, so a file
//! name taken from a request can never name a path outside the file store.

use std::fmt;
use std::str::FromStr;

use jiff::civil;

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A job id: 32 lower-case hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResponseId(String);

impl ResponseId {
    /// The id made of 16 (random) bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(hex::encode(bytes))
    }

    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 32 && is_lower_hex(s)).then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResponseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ResponseId {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        Self::parse(s).ok_or(NameError {
            expected: "a response id: 32 lower-case hex characters",
        })
    }
}

/// A name that does not have the required shape; says which shape, for a command line's
/// message (`ccfs jobs show 0123`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not {expected}")]
pub struct NameError {
    expected: &'static str,
}

/// A zip file name: `yyyyMMdd_{responseId}.zip`, 45 characters, matching
/// `^[0-9]{8}_[0-9a-f]{32}\.zip$`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ZipFileName(String);

impl ZipFileName {
    pub const LEN: usize = 45;

    pub fn new(date: civil::Date, id: &ResponseId) -> Self {
        Self(format!("{}_{}.zip", date.strftime("%Y%m%d"), id))
    }

    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let ok = b.len() == Self::LEN
            && b[..8].iter().all(u8::is_ascii_digit)
            && b[8] == b'_'
            && s.get(9..41).is_some_and(is_lower_hex)
            && s.get(41..) == Some(".zip");
        ok.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The response id the name carries.
    pub fn response_id(&self) -> ResponseId {
        ResponseId(self.0[9..41].to_owned())
    }
}

impl fmt::Display for ZipFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ZipFileName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        Self::parse(s).ok_or(NameError {
            expected: "an export file name: yyyyMMdd_, 32 lower-case hex characters, .zip",
        })
    }
}

/// The name of a CSV part inside the zip:
/// `{yyyyMMddHHmmssSSS}{3 random digits}_agentOprInfo_{seq}.csv`, `seq` from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvPartName(String);

impl CsvPartName {
    /// `stamp` is the export's creation time in the developer's time zone; `random` is taken
    /// modulo 1000.
    pub fn new(stamp: civil::DateTime, random: u16, seq: u32) -> Self {
        Self(format!(
            "{}{:03}{:03}_agentOprInfo_{seq}.csv",
            stamp.strftime("%Y%m%d%H%M%S"),
            stamp.subsec_nanosecond() / 1_000_000,
            random % 1000
        ))
    }

    pub fn parse(s: &str) -> Option<Self> {
        let (stamp, rest) = s.split_at_checked(20)?;
        let seq = rest.strip_prefix("_agentOprInfo_")?.strip_suffix(".csv")?;
        let ok = stamp.bytes().all(|b| b.is_ascii_digit())
            && !seq.is_empty()
            && !seq.starts_with('0')
            && seq.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part's sequence number.
    pub fn seq(&self) -> u32 {
        let seq = &self.0[34..self.0.len() - 4];
        seq.parse().unwrap_or(0)
    }
}

impl fmt::Display for CsvPartName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `file_names` fuzz target: a name of the right length whose 42nd byte is
    /// inside a multi-byte character made the slicing panic (a download request could carry it).
    #[test]
    fn a_zip_name_cut_inside_a_character_is_refused() {
        let name = "20261205_0123456789ab214567\u{10}\0\0\0\0\0\0\0\09db\u{11}\u{7a0} ip";
        assert_eq!(name.len(), ZipFileName::LEN);
        assert!(!name.is_char_boundary(41));
        assert_eq!(ZipFileName::parse(name), None);
        let mut shifted = "20261205_".to_owned();
        shifted.push_str(&"a".repeat(31));
        shifted.push('é');
        shifted.push_str("zip");
        assert_eq!(shifted.len(), ZipFileName::LEN);
        assert_eq!(ZipFileName::parse(&shifted), None);
    }

    #[test]
    fn a_refused_name_says_which_shape_was_expected() {
        let id = "0123".parse::<ResponseId>().unwrap_err();
        assert_eq!(
            id.to_string(),
            "not a response id: 32 lower-case hex characters"
        );
        let file = "x.zip".parse::<ZipFileName>().unwrap_err();
        assert!(
            file.to_string().starts_with("not an export file name"),
            "{file}"
        );
    }

    #[test]
    fn zip_names() {
        let id = ResponseId::from_bytes([0xab; 16]);
        let name = ZipFileName::new(civil::date(2024, 5, 1), &id);
        assert_eq!(
            name.as_str(),
            "20240501_abababababababababababababababab.zip"
        );
        assert_eq!(name.as_str().len(), 45);
        assert_eq!(ZipFileName::parse(name.as_str()), Some(name.clone()));
        assert_eq!(name.response_id(), id);
        for bad in [
            "20240501_ABABABABABABABABABABABABABABABAB.zip",
            "2024050_abababababababababababababababab.zip",
            "../../../../etc/passwd",
            "20240501_abababababababababababababababab.zi",
            "20240501_abababababababababababababababab.zipx",
            "20240501-abababababababababababababababab.zip",
        ] {
            assert_eq!(ZipFileName::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn response_ids() {
        assert!(ResponseId::parse("0123456789abcdef0123456789abcdef").is_some());
        assert!(ResponseId::parse("0123456789ABCDEF0123456789abcdef").is_none());
        assert!(ResponseId::parse("0123456789abcdef").is_none());
    }

    #[test]
    fn csv_part_names() {
        let stamp = civil::date(2024, 5, 1).at(13, 4, 5, 67_000_000);
        let n = CsvPartName::new(stamp, 9, 12);
        assert_eq!(n.as_str(), "20240501130405067009_agentOprInfo_12.csv");
        assert_eq!(n.seq(), 12);
        assert_eq!(CsvPartName::parse(n.as_str()), Some(n));
        assert!(CsvPartName::parse("2024050113040506700_agentOprInfo_1.csv").is_none());
        assert!(CsvPartName::parse("20240501130405067009_agentOprInfo_0.csv").is_none());
    }
}

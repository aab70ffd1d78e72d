//! Validated identifiers.

use std::fmt;
use std::str::FromStr;

/// A developer's app id, which is also its access key (AK): 1–64 characters of
/// `A-Z a-z 0-9 - . _` (`developer_id` is String(1-64)). Generated ids are 32 lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppId(String);

impl AppId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        ok.then(|| Self(s.to_owned()))
    }

    /// The id made of 16 (random) bytes: 32 lower-case hex characters.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(hex::encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AppId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
            .ok_or_else(|| format!("'{s}' is not a valid app id (1-64 of A-Z a-z 0-9 - . _)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids() {
        assert!(AppId::parse("globalaktest").is_some());
        assert_eq!(AppId::from_bytes([1; 16]).as_str().len(), 32);
        assert!(AppId::parse("").is_none());
        assert!(AppId::parse("a/b").is_none());
        assert!(AppId::parse(&"a".repeat(65)).is_none());
    }
}

//! Developers (tenants): who may do what, and in which time zone their local times are read
//! and written.

use std::fmt;

use ccfs_protocol::AppId;
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// What a developer may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Generate, status and download.
    Export,
    /// Import records for any developer (the CTI platform's credential).
    Ingest,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Export, Role::Ingest];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Export => "export",
            Role::Ingest => "ingest",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A developer (tenant). Secrets are held encrypted; see `tenants`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Developer {
    pub app_id: AppId,
    pub name: String,
    /// The current secret key, encrypted with the master key.
    pub secret_enc: Vec<u8>,
    /// The previous secret key, still valid until `old_secret_until`.
    pub old_secret_enc: Option<Vec<u8>>,
    pub old_secret_until: Option<Timestamp>,
    pub timezone: TimeZoneName,
    /// Account ids the developer owns, sorted, without duplicates.
    pub accounts: Vec<String>,
    /// Sorted, without duplicates.
    pub roles: Vec<Role>,
    pub enabled: bool,
    /// Whether exports start with a header row.
    pub csv_header: bool,
    pub created_at: Timestamp,
}

/// An IANA time zone that this server's time zone database knows, with the name it was given
/// by (kept as given: it is what `ccfs app show` prints and what the store holds).
#[derive(Clone, serde::Serialize)]
#[serde(into = "String")]
pub struct TimeZoneName {
    name: String,
    zone: TimeZone,
}

/// A time zone name the time zone database does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone '{0}'")]
pub struct UnknownTimeZone(pub String);

impl TimeZoneName {
    pub fn parse(name: &str) -> Result<Self, UnknownTimeZone> {
        let zone = TimeZone::get(name).map_err(|_| UnknownTimeZone(name.to_owned()))?;
        Ok(Self {
            name: name.to_owned(),
            zone,
        })
    }

    pub fn utc() -> Self {
        Self {
            name: "UTC".to_owned(),
            zone: TimeZone::UTC,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The zone to convert with.
    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }
}

/// Two names are the same zone when they are the same name: the zone follows from the name.
impl PartialEq for TimeZoneName {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for TimeZoneName {}

impl fmt::Debug for TimeZoneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TimeZoneName({:?})", self.name)
    }
}

impl fmt::Display for TimeZoneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl std::str::FromStr for TimeZoneName {
    type Err = UnknownTimeZone;
    fn from_str(s: &str) -> Result<Self, UnknownTimeZone> {
        Self::parse(s)
    }
}

/// Written as its name (the configuration's `default_timezone`).
impl From<TimeZoneName> for String {
    fn from(tz: TimeZoneName) -> String {
        tz.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zones_are_known_or_refused() {
        let tz = TimeZoneName::parse("Asia/Shanghai").unwrap();
        assert_eq!(tz.name(), "Asia/Shanghai");
        let t: Timestamp = "2024-05-01T22:30:00Z".parse().unwrap();
        assert_eq!(tz.zone().to_datetime(t).to_string(), "2024-05-02T06:30:00");
        assert_eq!(TimeZoneName::utc(), TimeZoneName::parse("UTC").unwrap());
        let e = TimeZoneName::parse("Mars/Olympus_Mons").unwrap_err();
        assert_eq!(e.to_string(), "unknown time zone 'Mars/Olympus_Mons'");
        assert!(TimeZoneName::parse("").is_err());
    }

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("admin"), None);
    }
}

//! The bounds of an export window on the command line (`--begin`, `--end`): what the server
//! wants, `yyyy-MM-dd HH:mm:ss` in the developer's time zone, or RFC 3339, converted to it.
//!
//! The client cannot know the developer's time zone (the server keeps it), so an RFC 3339 time
//! is converted to the zone `--timezone` names; without `--timezone` it is refused, since
//! dropping its offset would move the window without a word.

use jiff::civil::{Date, DateTime, Time};
use jiff::fmt::temporal::Pieces;
use jiff::tz::{Offset, TimeZone};

/// The formats a window bound may have, for the error of one that has none of them.
const FORMATS: &str = "write yyyy-MM-dd HH:mm:ss in the developer's time zone, e.g. \
'2024-05-01 08:00:00' (quoted: it holds a space), or yyyy-MM-dd for midnight; RFC 3339 such \
as 2024-05-01T08:00:00+08:00 is also accepted and converted to yyyy-MM-dd HH:mm:ss (see \
--timezone)";

/// One bound of the window, as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowTime {
    /// A date and time of day in the developer's time zone, sent as it is.
    Local(DateTime),
    /// An RFC 3339 time: a date and time of day at a UTC offset.
    Offset { local: DateTime, offset: Offset },
}

impl WindowTime {
    /// Reads `yyyy-MM-dd HH:mm:ss`, `yyyy-MM-dd` (midnight), `yyyy-MM-ddTHH:mm:ss` or RFC 3339
    /// (`2024-05-01T08:00:00+08:00`, `2024-05-01T00:00:00Z`); the error says what to write.
    pub fn parse(value: &str) -> Result<Self, String> {
        let v = value.trim();
        if let Ok(date) = Date::strptime("%Y-%m-%d", v) {
            return Ok(WindowTime::Local(date.to_datetime(Time::midnight())));
        }
        for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
            if let Ok(dt) = DateTime::strptime(format, v) {
                return Ok(WindowTime::Local(dt));
            }
        }
        if let Some(t) = rfc3339(v) {
            return Ok(t);
        }
        Err(FORMATS.to_owned())
    }

    /// What the server is sent, `yyyy-MM-dd HH:mm:ss`: an RFC 3339 time converted to `zone`
    /// (fractions of a second dropped). An RFC 3339 time without a zone is refused: the error
    /// says to give `--timezone`.
    pub fn to_server(self, zone: Option<&TimeZone>) -> Result<String, String> {
        let dt = match (self, zone) {
            (WindowTime::Local(dt), _) => dt,
            (WindowTime::Offset { local, offset }, None) => {
                return Err(format!(
                    "{} has a UTC offset ({offset}), but the server reads --begin and --end in \
                     the developer's time zone, which this client does not know: add \
                     --timezone ZONE (the developer's, e.g. Europe/Berlin) to convert it, or \
                     write yyyy-MM-dd HH:mm:ss in the developer's time zone",
                    local.strftime("%Y-%m-%dT%H:%M:%S")
                ))
            }
            (WindowTime::Offset { local, offset }, Some(zone)) => offset
                .to_timestamp(local)
                .map(|ts| ts.to_zoned(zone.clone()).datetime())
                .unwrap_or(local),
        };
        Ok(dt.strftime("%Y-%m-%d %H:%M:%S").to_string())
    }
}

/// An RFC 3339 date-time with an offset (`Z` or `±hh:mm`) and no zone annotation.
fn rfc3339(v: &str) -> Option<WindowTime> {
    let separator = v.as_bytes().get(10)?;
    if !matches!(separator, b'T' | b't' | b' ') {
        return None;
    }
    let pieces = Pieces::parse(v).ok()?;
    if pieces.time_zone_annotation().is_some() {
        return None;
    }
    let local = pieces.date().to_datetime(pieces.time()?);
    let offset = pieces.to_numeric_offset()?;
    Some(WindowTime::Offset { local, offset })
}

/// `--timezone`: an IANA time zone name.
pub fn parse_zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name.trim()).map_err(|_| {
        format!("unknown time zone '{name}': use an IANA name such as Asia/Shanghai, or UTC")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(value: &str, zone: Option<&str>) -> String {
        let zone = zone.map(|z| parse_zone(z).unwrap());
        WindowTime::parse(value)
            .unwrap()
            .to_server(zone.as_ref())
            .unwrap()
    }

    #[test]
    fn the_server_format_and_a_bare_date_are_sent_as_they_are() {
        assert_eq!(sent("2024-05-01 08:30:00", None), "2024-05-01 08:30:00");
        assert_eq!(sent(" 2024-05-01 08:30:00 ", None), "2024-05-01 08:30:00");
        assert_eq!(sent("2024-05-01T08:30:00", None), "2024-05-01 08:30:00");
        assert_eq!(sent("2024-05-01", None), "2024-05-01 00:00:00");
        // --timezone only converts times that carry an offset.
        assert_eq!(
            sent("2024-05-01 08:30:00", Some("America/New_York")),
            "2024-05-01 08:30:00"
        );
    }

    #[test]
    fn rfc3339_is_converted_to_the_timezone_or_refused_without_one() {
        let refused = WindowTime::parse("2026-11-20T00:00:00+01:00")
            .unwrap()
            .to_server(None)
            .unwrap_err();
        assert!(
            refused.contains("2026-11-20T00:00:00") && refused.contains("--timezone ZONE"),
            "{refused}"
        );
        assert_eq!(
            sent("2026-11-20T00:00:00.999Z", Some("UTC")),
            "2026-11-20 00:00:00"
        );
        assert_eq!(
            sent("2026-11-20T00:00:00+01:00", Some("UTC")),
            "2026-11-19 23:00:00"
        );
        assert_eq!(
            sent("2026-11-20T00:00:00+01:00", Some("Asia/Shanghai")),
            "2026-11-20 07:00:00"
        );
        assert_eq!(
            sent("2024-05-01T00:00:00Z", Some("America/New_York")),
            "2024-04-30 20:00:00"
        );
        // Daylight saving time comes from the zone, not from the offset given.
        assert_eq!(
            sent("2024-01-01T12:00:00Z", Some("Europe/Berlin")),
            "2024-01-01 13:00:00"
        );
        assert_eq!(
            sent("2024-07-01T12:00:00Z", Some("Europe/Berlin")),
            "2024-07-01 14:00:00"
        );
    }

    #[test]
    fn anything_else_is_refused_with_the_formats() {
        for bad in [
            "2024/05/01",
            "01.05.2024 00:00:00",
            "2024-05-01 25:00:00",
            "2024-13-01",
            "2024-05-01 08:00",
            "yesterday",
            "",
            "2024-05-01T00:00:00+01:00[Europe/Paris]",
        ] {
            let e = WindowTime::parse(bad).unwrap_err();
            assert!(e.contains("yyyy-MM-dd HH:mm:ss"), "{bad}: {e}");
            assert!(e.contains("RFC 3339"), "{bad}: {e}");
        }
        assert!(parse_zone("Mars/Base").unwrap_err().contains("Mars/Base"));
    }
}

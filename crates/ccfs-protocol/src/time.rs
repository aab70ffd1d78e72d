//! Local times in the CC-FS format `yyyy-MM-dd HH:mm:ss`, and the generate time window.

use jiff::{civil, tz::TimeZone, SignedDuration, Timestamp};

/// Parses exactly `yyyy-MM-dd HH:mm:ss` (19 characters).
pub fn parse_local(s: &str) -> Option<civil::DateTime> {
    let b = s.as_bytes();
    let digits = [0..4, 5..7, 8..10, 11..13, 14..16, 17..19];
    let ok = b.len() == 19
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':'
        && digits
            .into_iter()
            .all(|r| b[r].iter().all(u8::is_ascii_digit));
    if !ok {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s[r].parse::<i16>().ok();
    let date = civil::Date::new(n(0..4)?, n(5..7)? as i8, n(8..10)? as i8).ok()?;
    let time = civil::Time::new(n(11..13)? as i8, n(14..16)? as i8, n(17..19)? as i8, 0).ok()?;
    Some(date.to_datetime(time))
}

/// Writes `dt` as `yyyy-MM-dd HH:mm:ss` into `out` (19 bytes; years 0000–9999).
pub fn write_local(dt: civil::DateTime, out: &mut [u8; 19]) {
    fn put(out: &mut [u8], mut v: u32) {
        for slot in out.iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    put(&mut out[0..4], dt.year().clamp(0, 9999) as u32);
    out[4] = b'-';
    put(&mut out[5..7], dt.month() as u32);
    out[7] = b'-';
    put(&mut out[8..10], dt.day() as u32);
    out[10] = b' ';
    put(&mut out[11..13], dt.hour() as u32);
    out[13] = b':';
    put(&mut out[14..16], dt.minute() as u32);
    out[16] = b':';
    put(&mut out[17..19], dt.second() as u32);
}

/// `dt` as `yyyy-MM-dd HH:mm:ss`.
pub fn format_local(dt: civil::DateTime) -> String {
    let mut buf = [0u8; 19];
    write_local(dt, &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// The local time of an instant in a time zone.
pub fn to_local(ts: Timestamp, tz: &TimeZone) -> civil::DateTime {
    tz.to_datetime(ts)
}

/// The instant of a local time in a time zone. A time skipped by a daylight-saving gap moves
/// forward; a repeated one takes its first occurrence (jiff's "compatible" rule).
pub fn to_instant(dt: civil::DateTime, tz: &TimeZone) -> Option<Timestamp> {
    tz.to_ambiguous_timestamp(dt).compatible().ok()
}

/// Why a time window was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("beginTime is later than endTime")]
    BeginAfterEnd,
    #[error("the span exceeds the maximum")]
    SpanTooLong,
}

/// A generate window `[begin, end)` in the developer's local time: `begin <= end`, and the span
/// no longer than the maximum the server allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalWindow {
    begin: civil::DateTime,
    end: civil::DateTime,
}

impl LocalWindow {
    pub fn new(
        begin: civil::DateTime,
        end: civil::DateTime,
        max_span: SignedDuration,
    ) -> Result<Self, WindowError> {
        if begin > end {
            return Err(WindowError::BeginAfterEnd);
        }
        if end.duration_since(begin) > max_span {
            return Err(WindowError::SpanTooLong);
        }
        Ok(Self { begin, end })
    }

    pub fn begin(&self) -> civil::DateTime {
        self.begin
    }

    pub fn end(&self) -> civil::DateTime {
        self.end
    }

    /// The window as instants `[begin, end)` in `tz`.
    pub fn to_instants(&self, tz: &TimeZone) -> Option<(Timestamp, Timestamp)> {
        Some((to_instant(self.begin, tz)?, to_instant(self.end, tz)?))
    }
}

/// Describes a span for the `0300014` message: `3 days`, `36 hours`, `90 minutes` or `N seconds`.
pub fn describe_span(span: SignedDuration) -> String {
    let secs = span.as_secs();
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if secs % 86_400 == 0 {
        plural(secs / 86_400, "day")
    } else if secs % 3600 == 0 {
        plural(secs / 3600, "hour")
    } else if secs % 60 == 0 {
        plural(secs / 60, "minute")
    } else {
        plural(secs, "second")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_format_round_trips() {
        let dt = parse_local("2024-03-31 02:30:00").unwrap();
        assert_eq!(format_local(dt), "2024-03-31 02:30:00");
        for bad in [
            "2024-3-31 02:30:00",
            "2024-02-30 00:00:00",
            "2024-03-31T02:30:00",
            "2024-03-31 24:00:00",
            "2024-03-31 02:30:00 ",
        ] {
            assert!(parse_local(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn windows() {
        let d = |s| parse_local(s).unwrap();
        let max = SignedDuration::from_hours(72);
        assert!(LocalWindow::new(d("2024-05-01 00:00:00"), d("2024-05-04 00:00:00"), max).is_ok());
        assert!(LocalWindow::new(d("2024-05-01 00:00:00"), d("2024-05-01 00:00:00"), max).is_ok());
        assert_eq!(
            LocalWindow::new(d("2024-05-01 00:00:00"), d("2024-05-04 00:00:01"), max),
            Err(WindowError::SpanTooLong)
        );
        assert_eq!(
            LocalWindow::new(d("2024-05-02 00:00:00"), d("2024-05-01 00:00:00"), max),
            Err(WindowError::BeginAfterEnd)
        );
        assert_eq!(describe_span(max), "3 days");
        assert_eq!(describe_span(SignedDuration::from_hours(36)), "36 hours");
    }

    #[test]
    fn dst_gap_and_fold() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        // 02:30 does not exist on 2024-03-31 in Berlin; it moves forward to 03:30 CEST = 01:30Z.
        let gap = to_instant(parse_local("2024-03-31 02:30:00").unwrap(), &tz).unwrap();
        assert_eq!(gap.to_string(), "2024-03-31T01:30:00Z");
        // 02:30 happens twice on 2024-10-27; the first (CEST) is 00:30Z.
        let fold = to_instant(parse_local("2024-10-27 02:30:00").unwrap(), &tz).unwrap();
        assert_eq!(fold.to_string(), "2024-10-27T00:30:00Z");
    }
}

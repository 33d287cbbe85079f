//! ICS (RFC 5545) UTC date-times: `YYYYMMDDTHHMMSSZ`.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Timelike};

/// The first instant an ICS UTC date-time can write: 0000-01-01T00:00:00Z.
pub const ICS_MIN_MS: i64 = -62_167_219_200_000;
/// The last instant an ICS UTC date-time can write: 9999-12-31T23:59:59.999Z.
pub const ICS_MAX_MS: i64 = 253_402_300_799_999;

/// Why a text is not an ICS UTC date-time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IcsError {
    /// Not 16 characters of the form `YYYYMMDDTHHMMSSZ` (upper-case `T` and `Z`).
    Malformed,
    /// The right form, but no such date or time (month 13, 25:00, a leap second, 30 February).
    NoSuchTime,
}

impl fmt::Display for IcsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IcsError::Malformed => "not an ICS UTC date-time (YYYYMMDDTHHMMSSZ)",
            IcsError::NoSuchTime => "an ICS UTC date-time naming no real date or time",
        })
    }
}

impl std::error::Error for IcsError {}

/// Formats instant `ms` as an ICS UTC date-time, `YYYYMMDDTHHMMSSZ`, dropping milliseconds
/// (rounding towards the past). `None` outside years 0000-9999.
pub fn try_ics_utc(ms: i64) -> Option<String> {
    if !(ICS_MIN_MS..=ICS_MAX_MS).contains(&ms) {
        return None;
    }
    let t = DateTime::from_timestamp_millis(ms)?.naive_utc();
    Some(format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

/// Formats instant `ms` as an ICS UTC date-time, `YYYYMMDDTHHMMSSZ`, dropping milliseconds
/// (rounding towards the past), so `parse_ics_utc(&ics_utc(ms))` is `ms` rounded down to a whole
/// second. Instants outside years 0000-9999 (no booking is) are written as the nearest of
/// `00000101T000000Z` and `99991231T235959Z`; use [`try_ics_utc`] to detect them.
pub fn ics_utc(ms: i64) -> String {
    try_ics_utc(ms.clamp(ICS_MIN_MS, ICS_MAX_MS)).expect("clamped into the ICS range")
}

/// Parses an ICS UTC date-time `YYYYMMDDTHHMMSSZ` (the form [`ics_utc`] writes) into
/// milliseconds since the epoch. Floating and `TZID` times are not accepted: they need a zone.
pub fn parse_ics_utc(text: &str) -> Result<i64, IcsError> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return Err(IcsError::Malformed);
    }
    let num = |range: std::ops::Range<usize>| -> Result<u32, IcsError> {
        b[range].iter().try_fold(0u32, |acc, &c| {
            if c.is_ascii_digit() {
                Ok(acc * 10 + u32::from(c - b'0'))
            } else {
                Err(IcsError::Malformed)
            }
        })
    };
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second) = (num(9..11)?, num(11..13)?, num(13..15)?);
    let date = NaiveDate::from_ymd_opt(year as i32, month, day).ok_or(IcsError::NoSuchTime)?;
    let time = NaiveTime::from_hms_opt(hour, minute, second).ok_or(IcsError::NoSuchTime)?;
    Ok(date.and_time(time).and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_known_instants() {
        assert_eq!(ics_utc(0), "19700101T000000Z");
        assert_eq!(ics_utc(1_795_000_000_123), "20261118T110640Z");
        assert_eq!(parse_ics_utc("20261118T110640Z"), Ok(1_795_000_000_000));
        assert_eq!(ics_utc(-1), "19691231T235959Z");
        assert_eq!(ics_utc(ICS_MIN_MS), "00000101T000000Z");
        assert_eq!(ics_utc(ICS_MAX_MS), "99991231T235959Z");
        assert_eq!(ics_utc(i64::MIN), "00000101T000000Z");
        assert_eq!(ics_utc(i64::MAX), "99991231T235959Z");
        assert_eq!(try_ics_utc(ICS_MAX_MS + 1), None);
        assert_eq!(try_ics_utc(ICS_MIN_MS - 1), None);
    }

    #[test]
    fn refuses_other_forms() {
        for bad in [
            "",
            "20261118T071320",
            "20261118t071320Z",
            "20261118T071320z",
            "2026-11-18T07:13:20Z",
            "20261118T0713200Z",
            "+0261118T071320Z",
            "2026111８T07132Z",
        ] {
            assert_eq!(parse_ics_utc(bad), Err(IcsError::Malformed), "{bad}");
        }
        for bad in [
            "20261318T071320Z",
            "20260230T071320Z",
            "20261118T241320Z",
            "20261118T076020Z",
            "20261231T235960Z",
        ] {
            assert_eq!(parse_ics_utc(bad), Err(IcsError::NoSuchTime), "{bad}");
        }
    }
}

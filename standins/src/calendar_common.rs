//! What the two calendar stand-ins share besides OAuth ([`crate::oauth`]): times in the
//! shapes both APIs write (RFC 3339 with offsets, Graph's offset-less seven-digit fractions,
//! dates), the faults every API call checks first, the "outside event" a tester adds, and
//! small path helpers.

use std::sync::atomic::Ordering;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use rand::Rng;

use crate::controls::{CalendarFaults, take_one};

/// An appointment of the staff member's own, made outside the portal (on their phone, by a
/// colleague), so tests and demos can make busy time appear.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutsideEvent {
    pub summary: String,
    /// Unix milliseconds; for an all-day event, any instant of its first day (in the
    /// calendar's zone).
    pub start_ms: i64,
    /// End, exclusive; for an all-day event, any instant of the day after its last.
    pub end_ms: i64,
    pub all_day: bool,
    /// `showAs`/`transparency`: free time shown in the calendar.
    pub free: bool,
    /// `tentative` status (Google) / `showAs: tentative` (Graph).
    pub tentative: bool,
    /// Google only: an RRULE (`FREQ=WEEKLY;COUNT=4`) to make it recurring. Graph's delta
    /// returns instances, so a recurring outside event there is added as its instances.
    pub rrule: Option<String>,
}

impl OutsideEvent {
    /// A busy, confirmed, one-off event.
    pub fn busy(summary: &str, start_ms: i64, end_ms: i64) -> OutsideEvent {
        OutsideEvent {
            summary: summary.to_owned(),
            start_ms,
            end_ms,
            all_day: false,
            free: false,
            tentative: false,
            rrule: None,
        }
    }
}

/// What the fault switches say about this call, in order: down, failing, rate-limited.
pub(crate) enum Tripped {
    Down,
    Fail,
    RateLimited { status_429: bool, retry_after: u32 },
}

/// Checks (and consumes) the call-level faults.
pub(crate) fn tripped(f: &CalendarFaults) -> Option<Tripped> {
    if f.api_down.load(Ordering::SeqCst) {
        return Some(Tripped::Down);
    }
    if take_one(&f.fail_next) {
        return Some(Tripped::Fail);
    }
    if take_one(&f.rate_limit_next) {
        return Some(Tripped::RateLimited {
            status_429: f.rate_limit_429.load(Ordering::SeqCst),
            retry_after: f.retry_after_secs.load(Ordering::SeqCst),
        });
    }
    None
}

/// `2026-03-10T09:00:00.000Z`.
pub(crate) fn rfc3339_utc(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `2026-03-10T11:00:00+02:00`: an instant in a zone, as Google writes event times.
pub(crate) fn rfc3339_in(ms: i64, tz: Tz) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `2026-03-10T09:00:00.0000000`: Graph's offset-less wall time in `tz`.
pub(crate) fn graph_local(ms: i64, tz: Tz) -> String {
    let local = DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&tz)
        .naive_local();
    format!("{}.0000000", local.format("%Y-%m-%dT%H:%M:%S"))
}

/// The calendar date of an instant in `tz`.
pub(crate) fn date_in(ms: i64, tz: Tz) -> NaiveDate {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&tz)
        .date_naive()
}

/// Midnight starting `date` in `tz` (the first instant of the day).
pub(crate) fn midnight(date: NaiveDate, tz: Tz) -> Option<i64> {
    let local = date.and_hms_opt(0, 0, 0)?;
    local_ms(local, tz)
}

/// A wall time in `tz` as an instant (the earlier one when repeated, an hour on when skipped).
pub(crate) fn local_ms(local: NaiveDateTime, tz: Tz) -> Option<i64> {
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => Some(t.timestamp_millis()),
        chrono::LocalResult::Ambiguous(a, _) => Some(a.timestamp_millis()),
        chrono::LocalResult::None => {
            local_ms(local.checked_add_signed(chrono::TimeDelta::hours(1))?, tz)
        }
    }
}

/// Reads an RFC 3339 time with an offset (`…Z`, `…+02:00`).
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Reads a wall time without an offset (`2026-03-10T09:00:00`, with any fraction).
pub(crate) fn parse_naive(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
        .ok()
}

/// Reads `YYYY-MM-DD`.
pub(crate) fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

/// An IANA zone, or a Windows one through guards' CLDR table; `None` if neither.
pub(crate) fn zone(name: &str) -> Option<Tz> {
    let name = name.trim();
    name.parse::<Tz>()
        .ok()
        .or_else(|| guards::ical::windows_to_iana(name).and_then(|iana| iana.parse::<Tz>().ok()))
}

/// `Tue, 10 Mar 2026 09:00:00 GMT` (the HTTP date format).
pub(crate) fn http_date(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// A meeting code in Google Meet's shape, `abc-defg-hij`.
pub(crate) fn meet_code() -> String {
    let mut rng = rand::thread_rng();
    let mut part = |n: usize| -> String {
        (0..n)
            .map(|_| char::from(b'a' + rng.gen_range(0..26u8)))
            .collect()
    };
    format!("{}-{}-{}", part(3), part(4), part(3))
}

/// Percent-decodes one path segment (lossy: invalid UTF-8 becomes U+FFFD).
pub(crate) fn decode_segment(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = bytes.get(i + 1..i + 3)
            && let Ok(text) = std::str::from_utf8(h)
            && let Ok(v) = u8::from_str_radix(text, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query string of a URI as a map (the last value of a repeated name wins).
pub(crate) fn query_map(query: Option<&str>) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// A readable form value of `<input type="datetime-local">` (`2026-03-10T09:00`) in `tz`.
pub(crate) fn parse_form_local(s: &str, tz: Tz) -> Option<i64> {
    local_ms(parse_naive(s)?, tz)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_and_read_in_each_apis_shape() {
        let ms = 1_773_133_200_000; // 2026-03-10T09:00:00Z
        assert_eq!(rfc3339_utc(ms), "2026-03-10T09:00:00.000Z");
        assert_eq!(
            rfc3339_in(ms, Tz::Africa__Johannesburg),
            "2026-03-10T11:00:00+02:00"
        );
        assert_eq!(graph_local(ms, Tz::UTC), "2026-03-10T09:00:00.0000000");
        assert_eq!(parse_rfc3339("2026-03-10T11:00:00+02:00"), Some(ms));
        assert_eq!(
            parse_naive("2026-03-10T09:00:00.0000000").map(|n| n.and_utc().timestamp_millis()),
            Some(ms)
        );
        assert_eq!(http_date(ms), "Tue, 10 Mar 2026 09:00:00 GMT");
        assert_eq!(zone("W. Europe Standard Time"), Some(Tz::Europe__Berlin));
        assert_eq!(decode_segment("a%40b.com%2"), "a@b.com%2");
        let code = meet_code();
        assert_eq!(code.len(), 12);
        assert_eq!(code.matches('-').count(), 2);
    }
}

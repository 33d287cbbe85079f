//! iCalendar (`guards::ical`): the reader, the TZID resolver and the recurrence expansion, on
//! arbitrary input.
//!
//! Input format (so seeds can be written by hand): an optional first line
//! `#window START_MS END_MS ZONE` (Unix milliseconds, and the IANA zone floating times are read
//! in); without it the window is 2026 (UTC) and the zone Africa/Johannesburg. The rest is the
//! iCalendar text.
//!
//! Besides "never panics" (and finishing well inside libFuzzer's timeout, whatever the rules
//! say), it checks what the functions promise:
//! - a parsed calendar respects its caps (dates per event, UID and SUMMARY lengths);
//! - the expansion returns at most `MAX_INSTANCES` intervals, each with `end >= start`,
//!   overlapping the window, sorted by start;
//! - unless something was capped, expanding the first half of the window gives exactly the
//!   intervals of the whole window that overlap that half (expansion does not depend on how
//!   far the window reaches);
//! - every line, read as a Google `recurrence[]` line or an RRULE value, is answered.
#![no_main]

use std::str::FromStr;

use chrono_tz::Tz;
use guards::ical::{
    MAX_DATES_PER_EVENT, MAX_INSTANCES, MAX_SUMMARY_CHARS, MAX_UID_BYTES, RRule, expand_report,
    parse, parse_recurrence,
};
use libfuzzer_sys::fuzz_target;

/// 2026-01-01T00:00:00Z and 2027-01-01T00:00:00Z.
const YEAR_2026: (i64, i64) = (1_767_225_600_000, 1_798_761_600_000);

fuzz_target!(|data: &[u8]| {
    let (mut from, mut to, mut zone) = (YEAR_2026.0, YEAR_2026.1, Tz::Africa__Johannesburg);
    let mut body = data;
    if let Some(rest) = data.strip_prefix(b"#window ") {
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let line = String::from_utf8_lossy(&rest[..end]);
        let mut parts = line.split_whitespace();
        if let (Some(a), Some(b)) = (parts.next(), parts.next())
            && let (Ok(a), Ok(b)) = (a.parse::<i64>(), b.parse::<i64>())
        {
            // Within chrono's comfortable range: ±10,000 years.
            let clamp = |v: i64| v.clamp(-315_000_000_000_000, 315_000_000_000_000);
            (from, to) = (clamp(a), clamp(b));
        }
        if let Some(z) = parts.next().and_then(|z| Tz::from_str(z).ok()) {
            zone = z;
        }
        body = rest.get(end + 1..).unwrap_or_default();
    }

    for line in String::from_utf8_lossy(body).lines().take(200) {
        let _ = parse_recurrence(&[line]);
        if let Some((_, value)) = line.split_once(':') {
            let _ = RRule::parse(value);
        }
    }

    let Ok(cal) = parse(body) else { return };
    for ev in &cal.events {
        assert!(ev.exdates.len() + ev.rdates.len() <= MAX_DATES_PER_EVENT);
        assert!(ev.uid.len() <= MAX_UID_BYTES);
        assert!(
            ev.summary
                .as_ref()
                .is_none_or(|s| s.chars().count() <= MAX_SUMMARY_CHARS)
        );
    }
    let tz = cal.resolver(zone);
    for ev in &cal.events {
        for tzid in [&ev.dtstart, &ev.dtend, &ev.recurrence_id]
            .into_iter()
            .flatten()
            .filter_map(|d| d.tzid())
        {
            let _ = tz.resolve(tzid);
        }
    }

    let whole = expand_report(&cal.events, from, to, &tz);
    assert!(whole.intervals.len() <= MAX_INSTANCES);
    assert!(whole.unknown_tzids.len() <= 100 && whole.unsupported.len() <= 100);
    if from >= to {
        assert!(whole.intervals.is_empty());
        return;
    }
    for iv in &whole.intervals {
        assert!(iv.end_ms >= iv.start_ms, "{iv:?}");
        assert!(iv.start_ms < to, "{iv:?} starts after the window");
        assert!(
            iv.end_ms > from || (iv.end_ms == iv.start_ms && iv.start_ms >= from),
            "{iv:?}"
        );
    }
    assert!(
        whole
            .intervals
            .windows(2)
            .all(|w| w[0].start_ms <= w[1].start_ms)
    );

    let mid = from + (to - from) / 2;
    let half = expand_report(&cal.events, from, mid, &tz);
    if !whole.capped && !half.capped {
        let expected: Vec<_> = whole
            .intervals
            .iter()
            .filter(|i| {
                i.start_ms < mid
                    && (i.end_ms > from || (i.end_ms == i.start_ms && i.start_ms >= from))
            })
            .collect();
        let got: Vec<_> = half.intervals.iter().collect();
        assert_eq!(
            got, expected,
            "the first half differs from the whole window's first half"
        );
    }
});

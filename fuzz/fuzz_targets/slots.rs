//! The slot engine (`slots`) on arbitrary calendars, services, bookings and windows, in any zone
//! of the tz database.
//!
//! Input format: read front to back, little-endian; missing bytes read as zero, extra bytes are
//! ignored. Instants are "near" (minutes from a base, as in real use) unless a flag bit makes
//! them any `i64`.
//!
//! | field      | bytes          | meaning                                                      |
//! |------------|----------------|--------------------------------------------------------------|
//! | zone       | u16            | index into `chrono_tz::TZ_VARIANTS` (modulo its length)      |
//! | zone 2     | u16            | zone of the second staff member ("anyone")                   |
//! | flags      | u8             | bit 0 wild `from`, bit 1 wild `now`, bit 2 wild busy/time off |
//! | from       | u32 or i64     | near: 2025-11-28T00:00Z + (u32 mod 2 years) minutes          |
//! | length     | u16            | window length, minutes modulo 3 days + 1                     |
//! | now        | i32 or i64     | near: `from` - i32 seconds                                   |
//! | duration   | u16            | minutes modulo 2,900 (0 and above the 2,880 maximum occur)   |
//! | step       | u16            | minutes modulo 1,450 (0 and above the 1,440 maximum occur)   |
//! | buffers    | u16, u16       | before and after, minutes modulo 600                         |
//! | notice     | u16            | minutes                                                      |
//! | horizon    | u16            | days modulo 4,000 (above the 3,660 maximum occurs)           |
//! | weekly     | 7 x (u8 n, n x (u16, u16)) | Monday first; n mod 4 ranges of minutes mod 1,441 |
//! | exceptions | u8 n, n x exception | n mod 5; kind u8 mod 3: day off (i8 days from `from`'s UTC date), changed day (i8 days, u8 m mod 3, m x (u16, u16)), time off (instant, u16 minutes) |
//! | busy       | u8 n, n x (instant, u16 minutes) | n mod 7; near instants are `from` + (i32 mod 5 days) minutes - 1 day |
//! | probe      | u32            | an instant `from` + (u32 mod length) ms, checked alone       |
//! | local      | i8, u16, u8    | a local date (days from `from`'s date), minute mod 1,440 and occurrence (mod 3) for `check_local_start` |
//!
//! Besides "never panics", it checks what the engine documents: starts are ascending and
//! unique, inside the window, notice and horizon; invalid rules offer nothing; no offered
//! appointment overlaps a booking, its buffers or time off; a start is offered exactly when
//! `check_start` accepts it; splitting the window changes nothing; "anyone" offers the union of
//! the staff members' starts, each with the staff member `check_start_any` picks; a local time
//! `check_local_start` accepts passes `check_start`; ICS times round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slots::chrono::{DateTime, NaiveDate, TimeDelta};
use slots::{
    Exception, Interval, LocalRange, Occurrence, ServiceRules, StaffBusy, StaffCalendar,
    WeeklyHours, available_starts, available_starts_any, check_local_start, check_start,
    check_start_any, parse_ics_utc, try_ics_utc,
};

const MIN: i64 = 60_000;
/// 2025-11-28T00:00:00Z; near instants fall in the two years from here.
const BASE: i64 = 1_764_288_000_000;

/// The fuzzer's bytes, read front to back; zero once they run out.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }
    fn u8(&mut self) -> u8 {
        self.bytes::<1>()[0]
    }
    fn i8(&mut self) -> i8 {
        i8::from_le_bytes(self.bytes())
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.bytes())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes())
    }
    fn i32(&mut self) -> i32 {
        i32::from_le_bytes(self.bytes())
    }
    fn i64(&mut self) -> i64 {
        i64::from_le_bytes(self.bytes())
    }
    fn ranges(&mut self, max: u8) -> Vec<LocalRange> {
        (0..self.u8() % max)
            .filter_map(|_| LocalRange::new(self.u16() % 1441, self.u16() % 1441).ok())
            .collect()
    }
}

/// The UTC date of `ms`, moved by `days` (the base date when either is out of range).
fn date_near(ms: i64, days: i8) -> NaiveDate {
    let base = DateTime::from_timestamp_millis(BASE)
        .expect("in range")
        .date_naive();
    DateTime::from_timestamp_millis(ms)
        .map(|d| d.date_naive())
        .and_then(|d| d.checked_add_signed(TimeDelta::days(days.into())))
        .unwrap_or(base)
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader(data);
    let zones = &chrono_tz::TZ_VARIANTS;
    let tz = zones[usize::from(r.u16()) % zones.len()];
    let tz2 = zones[usize::from(r.u16()) % zones.len()];
    let flags = r.u8();
    let from = if flags & 1 != 0 {
        r.i64()
    } else {
        BASE + i64::from(r.u32() % (2 * 366 * 1440)) * MIN
    };
    let len_ms = i64::from(r.u16() % (3 * 1440 + 1)) * MIN;
    let to = from.saturating_add(len_ms);
    let now = if flags & 2 != 0 {
        r.i64()
    } else {
        from.saturating_sub(i64::from(r.i32()) * 1000)
    };
    let rules = ServiceRules {
        duration_min: u32::from(r.u16() % 2900),
        slot_step_min: u32::from(r.u16() % 1450),
        buffer_before_min: u32::from(r.u16() % 600),
        buffer_after_min: u32::from(r.u16() % 600),
        min_notice_min: u32::from(r.u16()),
        horizon_days: u32::from(r.u16() % 4000),
    };
    let mut weekly = WeeklyHours::new();
    for day in [
        slots::chrono::Weekday::Mon,
        slots::chrono::Weekday::Tue,
        slots::chrono::Weekday::Wed,
        slots::chrono::Weekday::Thu,
        slots::chrono::Weekday::Fri,
        slots::chrono::Weekday::Sat,
        slots::chrono::Weekday::Sun,
    ] {
        let ranges = r.ranges(4);
        weekly.set(day, ranges);
    }
    let wild = flags & 4 != 0;
    let instant = |r: &mut Reader<'_>| {
        if wild {
            r.i64()
        } else {
            from.saturating_add((i64::from(r.i32() % (5 * 1440)) - 1440) * MIN)
        }
    };
    let mut staff = StaffCalendar::new(7, "Thandi", tz, weekly.clone());
    for _ in 0..r.u8() % 5 {
        let exception = match r.u8() % 3 {
            0 => Exception::DayOff(date_near(from, r.i8())),
            1 => Exception::ChangedDay {
                date: date_near(from, r.i8()),
                ranges: r.ranges(3),
            },
            _ => {
                let start = instant(&mut r);
                Exception::TimeOff(Interval::new(
                    start,
                    start.saturating_add(i64::from(r.u16()) * MIN),
                ))
            }
        };
        staff.exceptions.push(exception);
    }
    let busy: Vec<Interval> = (0..r.u8() % 7)
        .map(|_| {
            let start = instant(&mut r);
            Interval::new(start, start.saturating_add(i64::from(r.u16()) * MIN))
        })
        .collect();
    let probe = from.saturating_add(i64::from(r.u32()) % len_ms.max(1));
    let (local_days, local_minute, occurrence) = (r.i8(), r.u16() % 1440, r.u8() % 3);

    // One staff member.
    let starts = available_starts(&staff, &rules, &busy, from, to, now);
    if rules.validate().is_err() {
        assert!(starts.is_empty(), "invalid rules {rules:?} offered starts");
    }
    assert!(
        starts.windows(2).all(|w| w[0] < w[1]),
        "not ascending and unique"
    );
    let time_off: Vec<Interval> = staff
        .exceptions
        .iter()
        .filter_map(|e| match e {
            Exception::TimeOff(i) => Some(*i),
            _ => None,
        })
        .collect();
    let minutes = |m: u32| i64::from(m) * MIN;
    for &s in &starts {
        assert!((from..to).contains(&s), "{s} outside the window");
        assert!(
            s >= rules.earliest_ms(now) && s <= rules.latest_ms(now),
            "{s}: notice or horizon"
        );
        let appointment = Interval::new(s, s + minutes(rules.duration_min));
        let buffered = Interval::new(
            appointment.start_ms - minutes(rules.buffer_before_min),
            appointment.end_ms + minutes(rules.buffer_after_min),
        );
        assert!(
            !busy.iter().any(|b| b.overlaps(&buffered)),
            "{s} overlaps a booking"
        );
        assert!(
            !time_off.iter().any(|t| t.overlaps(&appointment)),
            "{s} overlaps time off"
        );
    }
    for &s in starts.iter().take(12) {
        assert_eq!(
            check_start(&staff, &rules, &busy, s, now),
            Ok(()),
            "offered {s}"
        );
    }
    if (from..to).contains(&probe) {
        assert_eq!(
            check_start(&staff, &rules, &busy, probe, now).is_ok(),
            starts.binary_search(&probe).is_ok(),
            "check_start and available_starts disagree on {probe}"
        );
    } else {
        let _ = check_start(&staff, &rules, &busy, probe, now);
    }
    let mid = from.saturating_add(len_ms / 2);
    let mut halves = available_starts(&staff, &rules, &busy, from, mid, now);
    halves.extend(available_starts(&staff, &rules, &busy, mid, to, now));
    assert_eq!(
        halves, starts,
        "splitting the window at {mid} changed the starts"
    );

    // A local date and time, as a form without JavaScript posts it.
    let local = date_near(from, local_days)
        .and_hms_opt(
            u32::from(local_minute / 60),
            u32::from(local_minute % 60),
            0,
        )
        .expect("minute < 1440");
    let occurrence =
        [None, Some(Occurrence::Earlier), Some(Occurrence::Later)][occurrence as usize];
    if let Ok(s) = check_local_start(&staff, &rules, &busy, local, occurrence, now) {
        assert_eq!(check_start(&staff, &rules, &busy, s, now), Ok(()));
    }

    // "Anyone": the same hours in another zone, with half the bookings.
    let other = StaffCalendar::new(3, "Sipho", tz2, weekly);
    let other_busy = &busy[..busy.len() / 2];
    let team = [
        StaffBusy {
            calendar: &staff,
            busy: &busy,
        },
        StaffBusy {
            calendar: &other,
            busy: other_busy,
        },
    ];
    let any = available_starts_any(&team, &rules, from, to, now);
    let mut union = starts.clone();
    union.extend(available_starts(&other, &rules, other_busy, from, to, now));
    union.sort_unstable();
    union.dedup();
    assert_eq!(
        any.iter().map(|&(s, _)| s).collect::<Vec<_>>(),
        union,
        "anyone is not the union"
    );
    for &(s, id) in any.iter().take(6) {
        assert_eq!(
            check_start_any(&team, &rules, s, now),
            Ok(id),
            "anyone at {s}"
        );
    }

    // ICS round trip, to the second.
    for t in [from, now, probe] {
        if let Some(text) = try_ics_utc(t) {
            assert_eq!(parse_ics_utc(&text), Ok(t - t.rem_euclid(1000)), "{text}");
        }
    }
});

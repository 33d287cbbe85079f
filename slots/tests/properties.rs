//! Property tests: random calendars, services, bookings and windows, in many zones, on dates
//! across the two years from 2026-11-28 and especially around their DST transitions.
//!
//! The main property compares the engine with an independent, brute-force oracle written here
//! from the rules alone: it walks every minute of every appointment through chrono-tz, instead
//! of the engine's offset pieces and wall-time ranges.

use std::collections::HashMap;
use std::sync::OnceLock;

use chrono::{Datelike, LocalResult, NaiveDate, Offset, TimeZone, Timelike, Weekday};
use chrono_tz::Tz;
use proptest::prelude::*;
use slots::{
    Exception, Interval, LocalRange, ServiceRules, StaffBusy, StaffCalendar, WeeklyHours,
    available_starts, available_starts_any, check_start, check_start_any, ics_utc, parse_ics_utc,
};

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
/// 2026-11-28T00:00:00Z.
const BASE: i64 = 1_795_824_000_000;
const SPAN_DAYS: i64 = 731;

const ZONES: &[Tz] = &[
    chrono_tz::Africa::Johannesburg,
    chrono_tz::Europe::London,
    chrono_tz::Europe::Berlin,
    chrono_tz::America::New_York,
    chrono_tz::America::Sao_Paulo,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Pacific::Chatham,
    chrono_tz::Asia::Kolkata,
    chrono_tz::America::St_Johns,
    // Clocks change at local midnight.
    chrono_tz::America::Santiago,
    chrono_tz::America::Havana,
    // A 45-minute offset; a two-hour DST jump.
    chrono_tz::Asia::Kathmandu,
    chrono_tz::Antarctica::Troll,
];

fn offset_ms(tz: Tz, t: i64) -> i64 {
    let utc = chrono::DateTime::from_timestamp_millis(t)
        .unwrap()
        .naive_utc();
    i64::from(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc()) * 1000
}

/// Instants near each offset change of each zone over the span (hourly sampling is enough: the
/// test only needs windows that contain the changes).
fn transitions(zone: usize) -> &'static [i64] {
    static ALL: OnceLock<Vec<Vec<i64>>> = OnceLock::new();
    &ALL.get_or_init(|| {
        ZONES
            .iter()
            .map(|&tz| {
                let mut out = Vec::new();
                let mut prev = offset_ms(tz, BASE);
                let mut t = BASE;
                while t < BASE + SPAN_DAYS * DAY {
                    t += HOUR;
                    let o = offset_ms(tz, t);
                    if o != prev {
                        out.push(t);
                        prev = o;
                    }
                }
                out
            })
            .collect()
    })[zone]
}

// ---- the case ----

#[derive(Clone, Debug)]
enum ExKind {
    DayOff,
    Changed(Vec<(u16, u16)>),
    /// Minutes after the window's start, and a length in minutes.
    TimeOff(i64, i64),
}

#[derive(Clone, Debug)]
struct Case {
    zone: usize,
    /// Either a day in the span or a transition of the zone.
    near_transition: bool,
    pick: usize,
    /// The window: from this many minutes before the anchor (plus stray milliseconds) to this
    /// many minutes after it.
    before_min: i64,
    from_stray_ms: i64,
    after_min: i64,
    weekly: Vec<Vec<(u16, u16)>>,
    /// Days after the window's start date, and what happens that day.
    exceptions: Vec<(i64, ExKind)>,
    duration_min: u32,
    buffer_before_min: u32,
    buffer_after_min: u32,
    min_notice_min: u32,
    horizon_days: u32,
    slot_step_min: u32,
    /// Minutes after the window's start, and a length in minutes.
    busy: Vec<(i64, i64)>,
    /// How long before the window's start "now" is, in milliseconds.
    now_before_ms: i64,
}

fn ranges_strategy() -> impl Strategy<Value = Vec<(u16, u16)>> {
    let one = prop_oneof![
        // Anything.
        2 => (0u16..1440, 1u16..720).prop_map(|(s, len)| (s, (s + len).min(1440))),
        // Night hours, when clocks change.
        3 => (0u16..8, 1u16..10).prop_map(|(s, len)| (s * 30, ((s + len) * 30).min(1440))),
        1 => Just((0, 1440)),
        1 => Just((540, 1020)),
    ];
    prop::collection::vec(one, 1..3)
}

fn case_strategy() -> impl Strategy<Value = Case> {
    let place = (
        0..ZONES.len(),
        prop::bool::weighted(0.7),
        0usize..10_000,
        0i64..24 * 60,
        prop_oneof![Just(0i64), 0i64..MIN],
        1i64..24 * 60,
    );
    let calendar = (
        prop::collection::vec(ranges_strategy(), 7),
        prop::collection::vec(
            (
                -1i64..3,
                prop_oneof![
                    Just(ExKind::DayOff),
                    ranges_strategy().prop_map(ExKind::Changed),
                    (-120i64..40 * 60, 1i64..600).prop_map(|(a, l)| ExKind::TimeOff(a, l)),
                ],
            ),
            0..3,
        ),
    );
    let service = (
        prop_oneof![
            Just(15u32),
            Just(30),
            Just(45),
            Just(60),
            Just(90),
            1u32..150
        ],
        prop_oneof![Just(0u32), 1u32..60],
        prop_oneof![Just(0u32), 1u32..60],
        prop_oneof![Just(0u32), 1u32..24 * 60],
        1u32..20,
        prop_oneof![
            Just(5u32),
            Just(10),
            Just(15),
            Just(20),
            Just(30),
            Just(45),
            Just(60),
            Just(90),
            3u32..120
        ],
    );
    let bookings = (
        prop::collection::vec((-300i64..40 * 60, 1i64..240), 0..6),
        prop_oneof![Just(0i64), 0i64..3 * DAY],
    );
    (place, calendar, service, bookings).prop_map(
        |(
            (zone, near_transition, pick, before_min, from_stray_ms, after_min),
            (weekly, exceptions),
            (
                duration_min,
                buffer_before_min,
                buffer_after_min,
                min_notice_min,
                horizon_days,
                slot_step_min,
            ),
            (busy, now_before_ms),
        )| Case {
            zone,
            near_transition,
            pick,
            before_min,
            from_stray_ms,
            after_min,
            weekly,
            exceptions,
            duration_min,
            buffer_before_min,
            buffer_after_min,
            min_notice_min,
            horizon_days,
            slot_step_min,
            busy,
            now_before_ms,
        },
    )
}

/// The case made concrete.
struct World {
    tz: Tz,
    staff: StaffCalendar,
    service: ServiceRules,
    busy: Vec<Interval>,
    from: i64,
    to: i64,
    now: i64,
}

fn weekday(i: usize) -> Weekday {
    [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ][i]
}

fn to_ranges(v: &[(u16, u16)]) -> Vec<LocalRange> {
    v.iter()
        .map(|&(s, e)| LocalRange::new(s, e).unwrap())
        .collect()
}

fn local_date(tz: Tz, t: i64) -> NaiveDate {
    tz.timestamp_millis_opt(t).unwrap().date_naive()
}

fn world(case: &Case) -> World {
    let tz = ZONES[case.zone];
    let anchor = if case.near_transition && !transitions(case.zone).is_empty() {
        let ts = transitions(case.zone);
        ts[case.pick % ts.len()]
    } else {
        BASE + (case.pick as i64 % SPAN_DAYS) * DAY + (case.pick as i64 % 24) * HOUR
    };
    let from = anchor - case.before_min * MIN + case.from_stray_ms;
    let to = anchor + case.after_min * MIN;
    let mut weekly = WeeklyHours::new();
    for (i, ranges) in case.weekly.iter().enumerate() {
        weekly.set(weekday(i), to_ranges(ranges));
    }
    let mut staff = StaffCalendar::new(1, "Thandi", tz, weekly);
    let first_date = local_date(tz, from);
    for (day, kind) in &case.exceptions {
        let date = first_date + chrono::TimeDelta::days(*day);
        staff.exceptions.push(match kind {
            ExKind::DayOff => Exception::DayOff(date),
            ExKind::Changed(r) => Exception::ChangedDay {
                date,
                ranges: to_ranges(r),
            },
            ExKind::TimeOff(a, len) => {
                Exception::TimeOff(Interval::new(from + a * MIN, from + (a + len) * MIN))
            }
        });
    }
    let service = ServiceRules {
        duration_min: case.duration_min,
        buffer_before_min: case.buffer_before_min,
        buffer_after_min: case.buffer_after_min,
        min_notice_min: case.min_notice_min,
        horizon_days: case.horizon_days,
        slot_step_min: case.slot_step_min,
    };
    let busy = case
        .busy
        .iter()
        .map(|&(a, len)| Interval::new(from + a * MIN, from + (a + len) * MIN))
        .collect();
    World {
        tz,
        staff,
        service,
        busy,
        from,
        to,
        now: from - case.now_before_ms,
    }
}

// ---- the oracle ----

/// The working ranges of a local date, computed here independently of the crate.
fn oracle_ranges(w: &World, date: NaiveDate) -> Vec<(u32, u32)> {
    let mut off = false;
    let mut changed: Option<Vec<(u32, u32)>> = None;
    for e in &w.staff.exceptions {
        match e {
            Exception::DayOff(d) if *d == date => off = true,
            Exception::ChangedDay { date: d, ranges } if *d == date => {
                changed.get_or_insert_with(Vec::new).extend(
                    ranges
                        .iter()
                        .map(|r| (u32::from(r.start_min()), u32::from(r.end_min()))),
                )
            }
            _ => {}
        }
    }
    if off {
        return Vec::new();
    }
    let mut v = changed.unwrap_or_else(|| {
        w.staff
            .weekly
            .ranges(date.weekday())
            .iter()
            .map(|r| (u32::from(r.start_min()), u32::from(r.end_min())))
            .collect()
    });
    v.sort();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn overlaps(a: i64, b: i64, c: i64, d: i64) -> bool {
    a < b && c < d && a < d && c < b
}

/// Whether `s` is bookable, from the rules alone, by brute force (every minute of the
/// appointment through chrono-tz). Valid for zones whose offsets and transitions fall on whole
/// minutes, as all of them do in the span.
fn oracle(w: &World, s: i64) -> bool {
    let sv = &w.service;
    if s < w.now + i64::from(sv.min_notice_min) * MIN
        || s > w.now + i64::from(sv.horizon_days) * DAY
        || s.rem_euclid(MIN) != 0
    {
        return false;
    }
    let local = w.tz.timestamp_millis_opt(s).unwrap().naive_local();
    if local.second() != 0 {
        return false;
    }
    let date = local.date();
    let minute = local.hour() * 60 + local.minute();
    let ranges = oracle_ranges(w, date);
    let Some(&(rs, re)) = ranges.iter().find(|(a, b)| *a <= minute && minute < *b) else {
        return false;
    };
    if !(minute - rs).is_multiple_of(sv.slot_step_min) {
        return false;
    }
    let e = s + i64::from(sv.duration_min) * MIN;
    let mut t = s;
    while t < e {
        let l = w.tz.timestamp_millis_opt(t).unwrap().naive_local();
        let m = l.hour() * 60 + l.minute();
        if l.date() != date || m < rs || m >= re {
            return false;
        }
        t += MIN;
    }
    for ex in &w.staff.exceptions {
        if let Exception::TimeOff(i) = ex
            && overlaps(s, e, i.start_ms, i.end_ms)
        {
            return false;
        }
    }
    let bs = s - i64::from(sv.buffer_before_min) * MIN;
    let be = e + i64::from(sv.buffer_after_min) * MIN;
    !w.busy
        .iter()
        .any(|b| overlaps(bs, be, b.start_ms, b.end_ms))
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(128))]

    /// Offered starts are exactly the oracle's; each is inside working hours in local time, on
    /// an existing local time, offered once, accepted by `check_start`, and round-trips as ICS.
    #[test]
    fn offered_starts_are_exactly_the_bookable_ones(case in case_strategy()) {
        let w = world(&case);
        let starts = available_starts(&w.staff, &w.service, &w.busy, w.from, w.to, w.now);

        // Ascending, each instant once, inside the window.
        prop_assert!(starts.windows(2).all(|p| p[0] < p[1]), "not strictly ascending");
        prop_assert!(starts.iter().all(|s| (w.from..w.to).contains(s)));

        for &s in &starts {
            let local = w.tz.timestamp_millis_opt(s).unwrap().naive_local();
            // An existing local time, and this instant is one of its instants.
            match w.tz.from_local_datetime(&local) {
                LocalResult::None => prop_assert!(false, "{s} is at a nonexistent local time"),
                LocalResult::Single(d) => prop_assert_eq!(d.timestamp_millis(), s),
                LocalResult::Ambiguous(a, b) => prop_assert!(
                    a.timestamp_millis() == s || b.timestamp_millis() == s
                ),
            }
            // Inside working hours in local time.
            let minute = local.hour() * 60 + local.minute();
            prop_assert!(
                oracle_ranges(&w, local.date()).iter().any(|&(a, b)| a <= minute && minute < b),
                "{local} is outside working hours"
            );
            prop_assert_eq!(check_start(&w.staff, &w.service, &w.busy, s, w.now), Ok(()));
            prop_assert!(check_start(&w.staff, &w.service, &w.busy, s + 1, w.now).is_err());
            prop_assert_eq!(parse_ics_utc(&ics_utc(s)), Ok(s));
        }

        // Exactly the oracle's starts, and check_start agrees with the oracle on every minute.
        let mut expected = Vec::new();
        let mut m = w.from.div_euclid(MIN) * MIN;
        while m < w.to {
            if m >= w.from {
                let ok = oracle(&w, m);
                prop_assert_eq!(
                    check_start(&w.staff, &w.service, &w.busy, m, w.now).is_ok(),
                    ok,
                    "check_start disagrees with the oracle at {} ({})",
                    m,
                    w.tz.timestamp_millis_opt(m).unwrap()
                );
                if ok {
                    expected.push(m);
                }
            }
            m += MIN;
        }
        prop_assert_eq!(starts, expected);
    }

    /// "Anyone": each start once, ascending, the union of everyone's starts, and the staff member
    /// offered is the one `check_start_any` gives when the start is posted.
    #[test]
    fn anyone_offers_the_union_with_a_stable_choice(
        cases in prop::collection::vec(case_strategy(), 1..4),
        ids in prop::collection::vec(1i64..4, 3),
    ) {
        let worlds: Vec<World> = cases.iter().map(world).collect();
        // Everyone is asked about the first world's window, service and "now".
        let w0 = &worlds[0];
        let calendars: Vec<StaffCalendar> = worlds
            .iter()
            .zip(&ids)
            .map(|(w, &id)| StaffCalendar { id, ..w.staff.clone() })
            .collect();
        let staff: Vec<StaffBusy<'_>> = calendars
            .iter()
            .zip(&worlds)
            .map(|(c, w)| StaffBusy { calendar: c, busy: &w.busy })
            .collect();
        let offered = available_starts_any(&staff, &w0.service, w0.from, w0.to, w0.now);
        prop_assert!(offered.windows(2).all(|p| p[0].0 < p[1].0));
        let mut union: Vec<i64> = staff
            .iter()
            .flat_map(|m| {
                available_starts(m.calendar, &w0.service, m.busy, w0.from, w0.to, w0.now)
            })
            .collect();
        union.sort_unstable();
        union.dedup();
        prop_assert_eq!(offered.iter().map(|p| p.0).collect::<Vec<_>>(), union);
        for &(s, id) in &offered {
            prop_assert_eq!(check_start_any(&staff, &w0.service, s, w0.now), Ok(id));
            let accepted = staff
                .iter()
                .filter(|m| m.calendar.id == id)
                .any(|m| check_start(m.calendar, &w0.service, m.busy, s, w0.now).is_ok());
            prop_assert!(accepted, "staff {} cannot take {}", id, s);
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// ICS times round-trip: any instant to the second, any well-formed text exactly.
    #[test]
    fn ics_round_trips(
        ms in slots::ICS_MIN_MS..=slots::ICS_MAX_MS,
        near in BASE..BASE + SPAN_DAYS * DAY,
    ) {
        for t in [ms, near] {
            let text = ics_utc(t);
            prop_assert_eq!(text.len(), 16);
            prop_assert_eq!(parse_ics_utc(&text), Ok(t - t.rem_euclid(1000)));
            prop_assert_eq!(ics_utc(parse_ics_utc(&text).unwrap()), text);
        }
    }

    /// No input makes the engine panic, however wild.
    #[test]
    fn wild_inputs_do_not_panic(
        from in any::<i64>(),
        len in prop_oneof![any::<i64>(), 0i64..10 * DAY],
        now in prop_oneof![any::<i64>(), BASE..BASE + SPAN_DAYS * DAY],
        start in any::<i64>(),
        duration_min in any::<u32>(),
        buffers in (any::<u32>(), any::<u32>()),
        min_notice_min in any::<u32>(),
        horizon_days in prop_oneof![0u32..40, any::<u32>()],
        slot_step_min in prop_oneof![0u32..120, any::<u32>()],
        busy in prop::collection::vec((any::<i64>(), any::<i64>()), 0..4),
        zone in 0..ZONES.len(),
    ) {
        let weekly = WeeklyHours::new()
            .with(Weekday::Mon, [LocalRange::new(0, 1440).unwrap()])
            .with(Weekday::Sun, [LocalRange::new(60, 180).unwrap()]);
        let staff = StaffCalendar::new(1, "Thandi", ZONES[zone], weekly)
            .with_exception(Exception::TimeOff(Interval::new(start, start.saturating_add(len))));
        let service = ServiceRules {
            duration_min,
            buffer_before_min: buffers.0,
            buffer_after_min: buffers.1,
            min_notice_min,
            horizon_days,
            slot_step_min,
        };
        let busy: Vec<Interval> = busy.into_iter().map(|(a, b)| Interval::new(a, b)).collect();
        let to = from.saturating_add(len);
        let starts = available_starts(&staff, &service, &busy, from, to, now);
        for &s in starts.iter().take(20) {
            prop_assert_eq!(check_start(&staff, &service, &busy, s, now), Ok(()));
        }
        let _ = check_start(&staff, &service, &busy, start, now);
        let _ = slots::ics_utc(start);
        let _ = slots::try_ics_utc(start);
    }
}

/// Around every offset change of every zone in the span, with working hours across the change:
/// the engine offers exactly the oracle's starts.
#[test]
fn every_transition_in_the_span_matches_the_oracle() {
    let shapes: [&[(u16, u16)]; 4] = [
        &[(0, 1440)],
        &[(0, 180), (210, 360)],
        &[(60, 120)],
        &[(105, 225)],
    ];
    let mut checked = 0;
    for (zone, &tz) in ZONES.iter().enumerate() {
        for &t in transitions(zone) {
            for (k, shape) in shapes.iter().enumerate() {
                let mut weekly = WeeklyHours::new();
                for i in 0..7 {
                    weekly.set(weekday(i), to_ranges(shape));
                }
                let w = World {
                    tz,
                    staff: StaffCalendar::new(1, "Thandi", tz, weekly),
                    service: ServiceRules {
                        duration_min: [30, 60, 90, 45][k],
                        slot_step_min: [15, 10, 15, 5][k],
                        ..ServiceRules::new(30)
                    },
                    busy: Vec::new(),
                    from: t - 8 * HOUR,
                    to: t + 8 * HOUR,
                    now: BASE - DAY,
                };
                let w = World {
                    service: ServiceRules {
                        horizon_days: 1000,
                        ..w.service
                    },
                    ..w
                };
                let starts = available_starts(&w.staff, &w.service, &w.busy, w.from, w.to, w.now);
                let expected: Vec<i64> = (0..16 * 60)
                    .map(|m| w.from + m * MIN)
                    .filter(|&m| oracle(&w, m))
                    .collect();
                assert_eq!(starts, expected, "{} near {}", tz.name(), ics_utc(t));
                checked += starts.len();
            }
        }
    }
    assert!(checked > 1000, "{checked}");
}

#[test]
fn every_zone_has_transitions_in_the_span_except_the_steady_ones() {
    let counts: HashMap<&str, usize> = ZONES
        .iter()
        .enumerate()
        .map(|(i, tz)| (tz.name(), transitions(i).len()))
        .collect();
    for steady in [
        "Africa/Johannesburg",
        "Asia/Kolkata",
        "America/Sao_Paulo",
        "Asia/Kathmandu",
    ] {
        assert_eq!(counts[steady], 0, "{steady}");
    }
    for changing in [
        "Europe/London",
        "Australia/Lord_Howe",
        "Pacific/Chatham",
        "America/St_Johns",
        "America/Santiago",
        "Antarctica/Troll",
    ] {
        assert!(counts[changing] >= 4, "{changing}: {}", counts[changing]);
    }
}

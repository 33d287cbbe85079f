//! Real DST transitions, with working hours covering them: every offered start is listed.

use chrono::{NaiveDate, Weekday};
use chrono_tz::Tz;
use slots::{
    LocalRange, Occurrence, RefusalReason, ServiceRules, StaffCalendar, WeeklyHours,
    available_starts, check_local_start, check_start, ics_utc, parse_ics_utc,
};

const DAY: i64 = 86_400_000;

fn staff(tz: Tz, day: Weekday, range: &str) -> StaffCalendar {
    let hours = WeeklyHours::new().with(day, [LocalRange::parse(range).unwrap()]);
    StaffCalendar::new(1, "Thandi", tz, hours)
}

fn service(duration_min: u32) -> ServiceRules {
    ServiceRules {
        horizon_days: 1000,
        ..ServiceRules::new(duration_min)
    }
}

/// 2026-11-28T00:00Z, the project's "today" in these tests.
fn now() -> i64 {
    parse_ics_utc("20261128T000000Z").unwrap()
}

/// The offered starts on the UTC days around `ics_day` (`YYYYMMDD`), as ICS UTC texts.
fn offered(staff: &StaffCalendar, service: &ServiceRules, ics_day: &str) -> Vec<String> {
    let day = parse_ics_utc(&format!("{ics_day}T000000Z")).unwrap();
    let starts = available_starts(staff, service, &[], day - DAY, day + 2 * DAY, now());
    for &s in &starts {
        assert_eq!(check_start(staff, service, &[], s, now()), Ok(()));
    }
    starts.into_iter().map(ics_utc).collect()
}

/// Every `step_min` minutes from `first` to `last` (UTC, `YYYYMMDDTHHMM`), as ICS texts.
fn every(first: &str, last: &str, step_min: i64) -> Vec<String> {
    let a = parse_ics_utc(&format!("{first}00Z")).unwrap();
    let b = parse_ics_utc(&format!("{last}00Z")).unwrap();
    (0..)
        .map(|k| a + k * step_min * 60_000)
        .take_while(|&t| t <= b)
        .map(ics_utc)
        .collect()
}

fn local(y: i32, m: u32, d: u32, h: u32, mi: u32) -> chrono::NaiveDateTime {
    NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(h, mi, 0)
        .unwrap()
}

#[test]
fn london_spring_forward_2027_03_28_skips_the_gap() {
    // 01:00-02:00 local does not exist: at 01:00Z the clock goes from 01:00 GMT to 02:00 BST.
    let thandi = staff(chrono_tz::Europe::London, Weekday::Sun, "00:00-04:00");
    let got = offered(&thandi, &service(30), "20270328");
    // 00:00-00:45 GMT (00:45 GMT + 30 minutes ends 02:15 BST, still in the range), then
    // 02:00-03:30 BST (01:00Z-02:30Z). No start at a local 01:xx.
    let mut want = every("20270328T0000", "20270328T0045", 15);
    want.extend(every("20270328T0100", "20270328T0230", 15));
    assert_eq!(got, want);
    assert_eq!(got.len(), 11);

    for minute in [0, 15, 30, 45] {
        let r = check_local_start(
            &thandi,
            &service(30),
            &[],
            local(2027, 3, 28, 1, minute),
            None,
            now(),
        )
        .unwrap_err();
        assert_eq!(r.reason, RefusalReason::InDstGap);
    }
    // A range that lies wholly in the gap offers nothing; one that starts in it, from 02:00.
    let gap_only = staff(chrono_tz::Europe::London, Weekday::Sun, "01:00-02:00");
    assert!(offered(&gap_only, &service(30), "20270328").is_empty());
    let from_gap = staff(chrono_tz::Europe::London, Weekday::Sun, "01:30-03:00");
    assert_eq!(
        offered(&from_gap, &service(60), "20270328"),
        ["20270328T010000Z"]
    );
}

#[test]
fn london_fall_back_2027_10_31_offers_each_instant_once() {
    // 01:00-02:00 local happens twice: 00:00Z-01:00Z (BST) and 01:00Z-02:00Z (GMT).
    let thandi = staff(chrono_tz::Europe::London, Weekday::Sun, "00:00-04:00");
    let got = offered(&thandi, &service(30), "20271031");
    // 00:00 BST (23:00Z the day before) to 03:30 GMT: every quarter hour of real time, 19
    // distinct instants, 4.5 real hours in a 4-hour range.
    assert_eq!(got, every("20271030T2300", "20271031T0330", 15));
    assert_eq!(got.len(), 19);
    let mut dedup = got.clone();
    dedup.dedup();
    assert_eq!(dedup, got);

    let r = check_local_start(
        &thandi,
        &service(30),
        &[],
        local(2027, 10, 31, 1, 30),
        None,
        now(),
    )
    .unwrap_err();
    assert_eq!(r.reason, RefusalReason::AmbiguousLocalTime);
    for (occurrence, want) in [
        (Occurrence::Earlier, "20271031T003000Z"),
        (Occurrence::Later, "20271031T013000Z"),
    ] {
        let s = check_local_start(
            &thandi,
            &service(30),
            &[],
            local(2027, 10, 31, 1, 30),
            Some(occurrence),
            now(),
        )
        .unwrap();
        assert_eq!(ics_utc(s), want);
    }

    // A range 01:00-02:00 holds two real hours that day. A 60-minute appointment fits from
    // 01:00 BST to 01:45 BST (ending 01:45 GMT: the wall clock never leaves 01:00-02:00), and at
    // 01:00 GMT; from 01:15 GMT it would end at 02:15.
    let repeat_only = staff(chrono_tz::Europe::London, Weekday::Sun, "01:00-02:00");
    assert_eq!(
        offered(&repeat_only, &service(60), "20271031"),
        every("20271031T0000", "20271031T0100", 15)
    );
}

#[test]
fn lord_howe_half_hour_changes() {
    let tz = chrono_tz::Australia::Lord_Howe;
    let thandi = staff(tz, Weekday::Sun, "00:00-06:00");
    // 2027-10-03: 02:00 (+10:30) jumps to 02:30 (+11). Starts 00:00 to 05:30 are 23 quarter
    // hours, less 02:00 and 02:15 (an appointment at 01:45 ends at 02:45, inside the range).
    let got = offered(&thandi, &service(30), "20271002");
    let got: Vec<String> = got
        .into_iter()
        .filter(|s| s.starts_with("20271002"))
        .collect();
    assert_eq!(got.len(), 21);
    for minute in [0, 15] {
        let r = check_local_start(
            &thandi,
            &service(30),
            &[],
            local(2027, 10, 3, 2, minute),
            None,
            now(),
        )
        .unwrap_err();
        assert_eq!(r.reason, RefusalReason::InDstGap);
    }
    // 2027-04-04: 02:00 (+11) goes back to 01:30 (+10:30). 01:30 and 01:45 happen twice: 25
    // instants, every quarter hour of real time from 00:00 (+11) to 05:30 (+10:30).
    let got = offered(&thandi, &service(30), "20270403");
    let got: Vec<String> = got
        .into_iter()
        .filter(|s| s.starts_with("20270403"))
        .collect();
    assert_eq!(got.len(), 25);
    assert_eq!(got, every("20270403T1300", "20270403T1900", 15));
}

#[test]
fn chatham_hour_gap_at_a_quarter_to() {
    // Pacific/Chatham, 2027-09-26: 02:45 (+12:45) jumps to 03:45 (+13:45).
    let tz = chrono_tz::Pacific::Chatham;
    let thandi = staff(tz, Weekday::Sun, "02:00-05:00");
    let got = offered(&thandi, &service(15), "20270925");
    // 02:00, 02:15, 02:30 (+12:45), then 03:45 to 04:45 (+13:45).
    assert_eq!(
        got,
        [
            "20270925T131500Z",
            "20270925T133000Z",
            "20270925T134500Z",
            "20270925T140000Z",
            "20270925T141500Z",
            "20270925T143000Z",
            "20270925T144500Z",
            "20270925T150000Z",
        ]
    );
}

#[test]
fn new_york_and_st_johns_change_at_night_not_at_work() {
    // A usual working day is untouched by the change: 09:00-17:00 on the Monday after.
    for (tz, first, last) in [
        (
            chrono_tz::America::New_York,
            "20270315T1300",
            "20270315T2030",
        ),
        (
            chrono_tz::America::St_Johns,
            "20270315T1130",
            "20270315T1900",
        ),
    ] {
        let thandi = staff(tz, Weekday::Mon, "09:00-17:00");
        let got = offered(&thandi, &service(30), "20270315");
        assert_eq!(got, every(first, last, 15), "{tz}");
    }
}

//! Unit tests of the rules, one refusal reason at a time, in a zone without DST
//! (Africa/Johannesburg, UTC+2) so the local times are easy to read.

use chrono::{NaiveDate, TimeZone, Weekday};
use chrono_tz::Tz;

use crate::*;

const MIN: i64 = 60_000;
const DAY: i64 = 86_400_000;
const JHB: Tz = chrono_tz::Africa::Johannesburg;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// Monday 2026-11-30 at `h:m` in `tz`.
fn mon_in(tz: Tz, h: u32, m: u32) -> i64 {
    tz.with_ymd_and_hms(2026, 11, 30, h, m, 0)
        .single()
        .unwrap()
        .timestamp_millis()
}

fn mon(h: u32, m: u32) -> i64 {
    mon_in(JHB, h, m)
}

fn range(s: &str) -> LocalRange {
    LocalRange::parse(s).unwrap()
}

/// Thandi works Monday to Friday 09:00-12:00 and 13:00-17:00.
fn thandi() -> StaffCalendar {
    let mut hours = WeeklyHours::new();
    for d in [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
    ] {
        hours.set(d, [range("13:00-17:00"), range("09:00-12:00")]);
    }
    StaffCalendar::new(7, "Thandi", JHB, hours)
}

fn hour_service() -> ServiceRules {
    ServiceRules::new(60)
}

/// A week before Monday, so notice and horizon do not interfere.
fn early() -> i64 {
    mon(0, 0) - 7 * DAY
}

fn reason(r: Result<(), Refusal>) -> Option<RefusalReason> {
    r.err().map(|r| r.reason)
}

fn offered_monday(staff: &StaffCalendar, service: &ServiceRules, busy: &[Interval]) -> Vec<i64> {
    let starts = available_starts(staff, service, busy, mon(0, 0), mon(0, 0) + DAY, early());
    for &s in &starts {
        assert_eq!(check_start(staff, service, busy, s, early()), Ok(()));
    }
    starts
}

#[test]
fn offers_every_grid_start_that_fits_the_ranges() {
    let starts = offered_monday(&thandi(), &hour_service(), &[]);
    let mut expected: Vec<i64> = (0..=8).map(|k| mon(9, 0) + k * 15 * MIN).collect();
    expected.extend((0..=12).map(|k| mon(13, 0) + k * 15 * MIN));
    assert_eq!(starts, expected);
}

#[test]
fn window_is_half_open() {
    let staff = thandi();
    let service = hour_service();
    let starts = available_starts(&staff, &service, &[], mon(9, 0), mon(9, 30), early());
    assert_eq!(starts, vec![mon(9, 0), mon(9, 15)]);
    assert!(available_starts(&staff, &service, &[], mon(9, 30), mon(9, 0), early()).is_empty());
}

#[test]
fn too_soon_includes_the_past_and_the_notice() {
    let staff = thandi();
    let mut service = hour_service();
    let now = mon(10, 0);
    let r = check_start(&staff, &service, &[], mon(9, 0), now).unwrap_err();
    assert_eq!(r.reason, RefusalReason::TooSoon);
    assert_eq!(r.message, "That time has already passed.");
    assert_eq!(check_start(&staff, &service, &[], now, now), Ok(()));

    service.min_notice_min = 150;
    let r = check_start(&staff, &service, &[], mon(11, 0), now).unwrap_err();
    assert_eq!(r.reason, RefusalReason::TooSoon);
    assert_eq!(
        r.message,
        "That time is too soon: bookings need at least 2 hours 30 minutes notice."
    );
    assert_eq!(check_start(&staff, &service, &[], mon(13, 0), now), Ok(()));
    let starts = available_starts(&staff, &service, &[], mon(0, 0), mon(0, 0) + DAY, now);
    assert_eq!(starts.first(), Some(&mon(13, 0)));
}

#[test]
fn too_far_ahead_is_after_the_horizon() {
    let staff = thandi();
    let service = ServiceRules {
        horizon_days: 7,
        ..hour_service()
    };
    let now = mon(9, 0) - 7 * DAY;
    assert_eq!(check_start(&staff, &service, &[], mon(9, 0), now), Ok(()));
    let r = check_start(&staff, &service, &[], mon(9, 15), now).unwrap_err();
    assert_eq!(r.reason, RefusalReason::TooFarAhead);
    assert_eq!(
        r.message,
        "That time is too far ahead: bookings open 7 days in advance."
    );
    let starts = available_starts(&staff, &service, &[], mon(0, 0), mon(0, 0) + DAY, now);
    assert_eq!(starts, vec![mon(9, 0)]);
}

#[test]
fn not_working_that_day() {
    let staff = thandi();
    let saturday = mon(10, 0) - 2 * DAY;
    let r = check_start(&staff, &hour_service(), &[], saturday, early()).unwrap_err();
    assert_eq!(r.reason, RefusalReason::NotWorkingThatDay);
    assert_eq!(r.message, "Thandi isn't working on that day.");
}

#[test]
fn outside_hours_before_between_and_past_the_end() {
    let staff = thandi();
    let service = hour_service();
    for start in [mon(8, 45), mon(12, 15), mon(17, 0), mon(23, 45)] {
        let r = check_start(&staff, &service, &[], start, early()).unwrap_err();
        assert_eq!(r.reason, RefusalReason::OutsideHours);
        assert_eq!(r.message, "That time is outside Thandi's working hours.");
    }
    let r = check_start(&staff, &service, &[], mon(11, 15), early()).unwrap_err();
    assert_eq!(r.reason, RefusalReason::OutsideHours);
    assert_eq!(
        r.message,
        "An appointment at that time would run past the end of Thandi's working hours."
    );
    assert_eq!(
        check_start(&staff, &service, &[], mon(11, 0), early()),
        Ok(())
    );
}

#[test]
fn ranges_that_touch_are_one_range() {
    let hours = WeeklyHours::new().with(Weekday::Mon, [range("09:00-12:00"), range("12:00-13:00")]);
    assert_eq!(hours.ranges(Weekday::Mon), &[range("09:00-13:00")]);
    let staff = StaffCalendar::new(1, "Sipho", JHB, hours);
    assert_eq!(
        check_start(&staff, &hour_service(), &[], mon(11, 30), early()),
        Ok(())
    );
}

#[test]
fn not_on_grid() {
    let staff = thandi();
    let service = hour_service();
    for start in [mon(9, 10), mon(9, 0) + 30_000, mon(9, 0) + 1] {
        let r = check_start(&staff, &service, &[], start, early()).unwrap_err();
        assert_eq!(r.reason, RefusalReason::NotOnGrid);
        assert_eq!(
            r.message,
            "That isn't one of the offered start times: appointments start every 15 minutes."
        );
    }
}

#[test]
fn grid_counts_from_the_start_of_the_range() {
    let hours = WeeklyHours::new().with(Weekday::Mon, [range("09:10-10:30")]);
    let staff = StaffCalendar::new(1, "Sipho", JHB, hours);
    let service = ServiceRules {
        slot_step_min: 20,
        ..ServiceRules::new(30)
    };
    assert_eq!(
        offered_monday(&staff, &service, &[]),
        vec![mon(9, 10), mon(9, 30), mon(9, 50)]
    );
    assert_eq!(
        reason(check_start(&staff, &service, &[], mon(9, 20), early())),
        Some(RefusalReason::NotOnGrid)
    );
}

#[test]
fn overlapping_a_booking_is_refused() {
    let staff = thandi();
    let service = ServiceRules::new(30);
    let busy = [Interval::new(mon(10, 0), mon(11, 0))];
    for start in [mon(9, 45), mon(10, 0), mon(10, 30)] {
        let r = check_start(&staff, &service, &busy, start, early()).unwrap_err();
        assert_eq!(r.reason, RefusalReason::Overlaps);
        assert_eq!(r.message, "Thandi is already booked at that time.");
    }
    // Half-open: ending exactly when the booking starts, or starting when it ends, is fine.
    assert_eq!(
        check_start(&staff, &service, &busy, mon(9, 30), early()),
        Ok(())
    );
    assert_eq!(
        check_start(&staff, &service, &busy, mon(11, 0), early()),
        Ok(())
    );
    let starts = offered_monday(&staff, &service, &busy);
    assert!(starts.contains(&mon(9, 30)) && starts.contains(&mon(11, 0)));
    assert!(!starts.contains(&mon(9, 45)) && !starts.contains(&mon(10, 30)));
}

#[test]
fn a_start_right_after_a_booking_but_inside_the_buffer_is_refused_and_not_offered() {
    let staff = thandi();
    let service = ServiceRules {
        buffer_before_min: 15,
        buffer_after_min: 15,
        ..ServiceRules::new(30)
    };
    let busy = [Interval::new(mon(10, 0), mon(11, 0))];
    // Right after the booking: the appointment is clear, its 15 minutes before are not.
    let r = check_start(&staff, &service, &busy, mon(11, 0), early()).unwrap_err();
    assert_eq!(r.reason, RefusalReason::InsideBuffer);
    assert_eq!(
        r.message,
        "That time is too close to another of Thandi's appointments."
    );
    // Ending right when the booking starts: the 15 minutes after are not clear.
    assert_eq!(
        reason(check_start(&staff, &service, &busy, mon(9, 30), early())),
        Some(RefusalReason::InsideBuffer)
    );
    assert_eq!(
        check_start(&staff, &service, &busy, mon(11, 15), early()),
        Ok(())
    );
    assert_eq!(
        check_start(&staff, &service, &busy, mon(9, 15), early()),
        Ok(())
    );
    let starts = offered_monday(&staff, &service, &busy);
    assert!(!starts.contains(&mon(11, 0)) && !starts.contains(&mon(9, 30)));
    assert!(starts.contains(&mon(11, 15)) && starts.contains(&mon(9, 15)));
    // Buffers may run outside working hours: 09:00 is offered though its buffer starts 08:45.
    assert!(starts.contains(&mon(9, 0)));
}

#[test]
fn time_off_is_refused() {
    let staff = thandi().with_exception(Exception::TimeOff(Interval::new(mon(14, 0), mon(15, 0))));
    let service = hour_service();
    for start in [mon(13, 15), mon(14, 0), mon(14, 45)] {
        let r = check_start(&staff, &service, &[], start, early()).unwrap_err();
        assert_eq!(r.reason, RefusalReason::TimeOff);
        assert_eq!(r.message, "Thandi is away at that time.");
    }
    assert_eq!(
        check_start(&staff, &service, &[], mon(13, 0), early()),
        Ok(())
    );
    assert_eq!(
        check_start(&staff, &service, &[], mon(15, 0), early()),
        Ok(())
    );
}

#[test]
fn day_off_and_changed_day_exceptions() {
    let monday = date(2026, 11, 30);
    let saturday = date(2026, 11, 28);
    let staff = thandi()
        .with_exception(Exception::DayOff(monday))
        .with_exception(Exception::ChangedDay {
            date: monday,
            ranges: vec![range("09:00-10:00")],
        })
        .with_exception(Exception::ChangedDay {
            date: saturday,
            ranges: vec![range("10:00-11:00")],
        })
        .with_exception(Exception::ChangedDay {
            date: saturday,
            ranges: vec![range("11:00-11:30")],
        });
    let service = hour_service();
    // The day off wins over a changed day, whatever the order.
    assert!(staff.ranges_on(monday).is_empty());
    assert_eq!(
        reason(check_start(&staff, &service, &[], mon(9, 0), early())),
        Some(RefusalReason::NotWorkingThatDay)
    );
    assert!(offered_monday(&staff, &service, &[]).is_empty());
    // Changed days on one date are united: 10:00-11:30 on a Saturday.
    assert_eq!(staff.ranges_on(saturday), vec![range("10:00-11:30")]);
    let sat = mon(0, 0) - 2 * DAY;
    let starts = available_starts(&staff, &service, &[], sat, sat + DAY, early());
    assert_eq!(
        starts,
        vec![
            mon(10, 0) - 2 * DAY,
            mon(10, 15) - 2 * DAY,
            mon(10, 30) - 2 * DAY
        ]
    );
    // An empty changed day is a day off.
    let staff = thandi().with_exception(Exception::ChangedDay {
        date: monday,
        ranges: vec![],
    });
    assert_eq!(
        reason(check_start(&staff, &service, &[], mon(9, 0), early())),
        Some(RefusalReason::NotWorkingThatDay)
    );
}

#[test]
fn invalid_rules_offer_nothing_and_refuse_everything() {
    let staff = thandi();
    for (service, err) in [
        (ServiceRules::new(0), RulesError::ZeroDuration),
        (
            ServiceRules {
                slot_step_min: 0,
                ..hour_service()
            },
            RulesError::ZeroStep,
        ),
        (
            ServiceRules {
                horizon_days: MAX_HORIZON_DAYS + 1,
                ..hour_service()
            },
            RulesError::HorizonTooLong,
        ),
    ] {
        assert_eq!(service.validate(), Err(err));
        assert!(offered_monday(&staff, &service, &[]).is_empty());
        let r = check_start(&staff, &service, &[], mon(9, 0), early()).unwrap_err();
        assert_eq!(r.reason, RefusalReason::InvalidRules(err));
    }
}

#[test]
fn local_starts_resolve_gaps_and_repeats() {
    let london = chrono_tz::Europe::London;
    let all_day = WeeklyHours::new().with(Weekday::Sun, [range("00:00-24:00")]);
    let staff = StaffCalendar::new(3, "Ayanda", london, all_day);
    let service = ServiceRules {
        horizon_days: 400,
        ..ServiceRules::new(30)
    };
    let now = mon(0, 0);
    let local = |d: NaiveDate, h, m| d.and_hms_opt(h, m, 0).unwrap();

    let spring = date(2027, 3, 28);
    let r = check_local_start(&staff, &service, &[], local(spring, 1, 30), None, now).unwrap_err();
    assert_eq!(r.reason, RefusalReason::InDstGap);
    assert_eq!(
        r.message,
        "That time doesn't exist on that day, because the clocks go forward. Please choose \
         another time."
    );
    let two = check_local_start(&staff, &service, &[], local(spring, 2, 0), None, now).unwrap();
    assert_eq!(ics_utc(two), "20270328T010000Z");

    let autumn = date(2027, 10, 31);
    let r = check_local_start(&staff, &service, &[], local(autumn, 1, 30), None, now).unwrap_err();
    assert_eq!(r.reason, RefusalReason::AmbiguousLocalTime);
    let first = check_local_start(
        &staff,
        &service,
        &[],
        local(autumn, 1, 30),
        Some(Occurrence::Earlier),
        now,
    )
    .unwrap();
    let second = check_local_start(
        &staff,
        &service,
        &[],
        local(autumn, 1, 30),
        Some(Occurrence::Later),
        now,
    )
    .unwrap();
    assert_eq!(ics_utc(first), "20271031T003000Z");
    assert_eq!(ics_utc(second), "20271031T013000Z");
    // The same local time, other rules still apply.
    let busy = [Interval::new(second, second + 30 * MIN)];
    assert_eq!(
        check_local_start(
            &staff,
            &service,
            &busy,
            local(autumn, 1, 30),
            Some(Occurrence::Later),
            now
        )
        .unwrap_err()
        .reason,
        RefusalReason::Overlaps
    );
}

#[test]
fn instants_out_of_range_are_refused_without_panicking() {
    let staff = thandi();
    let service = hour_service();
    for start in [i64::MIN, i64::MIN + 1, -1, i64::MAX, i64::MAX - 1] {
        assert!(check_start(&staff, &service, &[], start, start).is_err());
        assert!(check_start(&staff, &service, &[], start, i64::MIN).is_err());
    }
    assert!(available_starts(&staff, &service, &[], i64::MIN, i64::MAX, i64::MAX).is_empty());
    let service = ServiceRules {
        horizon_days: 10,
        ..service
    };
    assert!(!available_starts(&staff, &service, &[], i64::MIN, i64::MAX, mon(0, 0)).is_empty());
}

// ---- anyone ----

fn lerato() -> StaffCalendar {
    StaffCalendar {
        id: 3,
        name: "Lerato".into(),
        ..thandi()
    }
}

#[test]
fn anyone_prefers_the_less_busy_then_the_smaller_id() {
    let (t, l) = (thandi(), lerato());
    let service = hour_service();
    let none: [Interval; 0] = [];
    let both_free = [
        StaffBusy {
            calendar: &t,
            busy: &none,
        },
        StaffBusy {
            calendar: &l,
            busy: &none,
        },
    ];
    // A tie: the smaller id (Lerato, 3) wins, whatever the order given.
    let starts = available_starts_any(&both_free, &service, mon(0, 0), mon(0, 0) + DAY, early());
    assert_eq!(starts.len(), 22);
    assert!(starts.iter().all(|&(_, id)| id == 3));
    let reversed = [both_free[1], both_free[0]];
    assert_eq!(
        available_starts_any(&reversed, &service, mon(0, 0), mon(0, 0) + DAY, early()),
        starts
    );

    // Lerato has a booking 09:00-10:00: she is not free then, and busier that day, so Thandi
    // gets every start, including those where both are free.
    let lerato_busy = [Interval::new(mon(9, 0), mon(10, 0))];
    let staff = [
        StaffBusy {
            calendar: &t,
            busy: &none,
        },
        StaffBusy {
            calendar: &l,
            busy: &lerato_busy,
        },
    ];
    let starts = available_starts_any(&staff, &service, mon(0, 0), mon(0, 0) + DAY, early());
    assert_eq!(starts.len(), 22);
    assert!(starts.iter().all(|&(_, id)| id == 7));
    for &(s, id) in &starts {
        assert_eq!(check_start_any(&staff, &service, s, early()), Ok(id));
    }
    // Thandi busy 09:00-11:00: Lerato (free from 10:00) gets 10:00 and later; before that, only
    // Thandi... who is busy, so nobody is free at 09:00.
    let thandi_busy = [Interval::new(mon(9, 0), mon(11, 0))];
    let staff = [
        StaffBusy {
            calendar: &t,
            busy: &thandi_busy,
        },
        StaffBusy {
            calendar: &l,
            busy: &lerato_busy,
        },
    ];
    let starts = available_starts_any(&staff, &service, mon(0, 0), mon(0, 0) + DAY, early());
    assert_eq!(starts.first(), Some(&(mon(10, 0), 3)));
    assert!(starts.iter().all(|&(_, id)| id == 3));
    let r = check_start_any(&staff, &service, mon(9, 0), early()).unwrap_err();
    assert_eq!(r.reason, RefusalReason::NoStaffAvailable);
    assert_eq!(
        r.message,
        "No one is free at that time. Please choose another time."
    );
    // A reason shared by everyone for the service is passed on.
    let r = check_start_any(&staff, &service, mon(9, 0), mon(12, 0)).unwrap_err();
    assert_eq!(r.reason, RefusalReason::TooSoon);
    // Nobody to ask.
    assert_eq!(
        check_start_any(&[], &service, mon(10, 0), early())
            .unwrap_err()
            .reason,
        RefusalReason::NoStaffAvailable
    );
}

#[test]
fn anyone_across_zones_merges_and_orders() {
    let t = thandi();
    // Femi in London works 09:00-10:00 on Mondays: 11:00-12:00 in Johannesburg.
    let hours = WeeklyHours::new().with(Weekday::Mon, [range("09:00-10:00")]);
    let f = StaffCalendar::new(1, "Femi", chrono_tz::Europe::London, hours);
    let none: [Interval; 0] = [];
    let staff = [
        StaffBusy {
            calendar: &t,
            busy: &none,
        },
        StaffBusy {
            calendar: &f,
            busy: &none,
        },
    ];
    let service = ServiceRules {
        slot_step_min: 60,
        ..hour_service()
    };
    let starts = available_starts_any(&staff, &service, mon(0, 0), mon(0, 0) + DAY, early());
    let london_nine = mon_in(chrono_tz::Europe::London, 9, 0);
    assert_eq!(london_nine, mon(11, 0));
    assert_eq!(
        starts,
        vec![
            (mon(9, 0), 7),
            (mon(10, 0), 7),
            (mon(11, 0), 1),
            (mon(13, 0), 7),
            (mon(14, 0), 7),
            (mon(15, 0), 7),
            (mon(16, 0), 7),
        ]
    );
}

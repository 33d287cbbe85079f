//! The reader and the expansion on known cases. Expected instants were worked out by hand and
//! checked against python-dateutil's rrule (the same rules, the same zones).

use chrono::NaiveDate;
use chrono_tz::Tz;

use super::*;

fn utc(y: i32, m: u32, d: u32, h: u32, mi: u32) -> i64 {
    NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|d| d.and_hms_opt(h, mi, 0))
        .map(|t| t.and_utc().timestamp_millis())
        .expect("a valid date")
}

const HOUR: i64 = 3_600_000;

/// Wraps VEVENT (and VTIMEZONE) text in a VCALENDAR with CRLF line endings.
fn cal(body: &str) -> Vec<u8> {
    let text = format!(
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//Stoep//test//EN\n{}\nEND:VCALENDAR\n",
        body.trim()
    );
    text.lines()
        .map(|l| l.trim_start_matches("        "))
        .collect::<Vec<_>>()
        .join("\r\n")
        .into_bytes()
}

fn expand_text(body: &str, from: i64, to: i64) -> Expansion {
    let c = parse(&cal(body)).expect("parses");
    assert!(c.skipped.is_empty(), "{:?}", c.skipped);
    expand_report(&c.events, from, to, &c.resolver(Tz::Africa__Johannesburg))
}

fn starts(x: &Expansion) -> Vec<i64> {
    x.intervals.iter().map(|i| i.start_ms).collect()
}

#[test]
fn a_weekly_london_meeting_keeps_its_local_time_across_the_spring_change() {
    let x = expand_text(
        "BEGIN:VEVENT
        UID:weekly-1@example.com
        DTSTART;TZID=Europe/London:20260316T090000
        DTEND;TZID=Europe/London:20260316T100000
        RRULE:FREQ=WEEKLY;COUNT=4
        SUMMARY:Stand-up\\, weekly
        END:VEVENT",
        utc(2026, 3, 1, 0, 0),
        utc(2026, 5, 1, 0, 0),
    );
    // London moves to BST on 29 March 2026: 09:00 is 09:00Z before, 08:00Z after.
    assert_eq!(
        starts(&x),
        [
            utc(2026, 3, 16, 9, 0),
            utc(2026, 3, 23, 9, 0),
            utc(2026, 3, 30, 8, 0),
            utc(2026, 4, 6, 8, 0),
        ]
    );
    for iv in &x.intervals {
        assert_eq!(iv.end_ms - iv.start_ms, HOUR);
        assert_eq!(iv.recurrence_id_ms, Some(iv.start_ms));
        assert!(iv.busy() && !iv.all_day && !iv.tentative && !iv.zone_guessed);
        assert_eq!(iv.summary.as_deref(), Some("Stand-up, weekly"));
    }
    assert!(!x.capped && x.unknown_tzids.is_empty());
}

#[test]
fn a_fortnightly_new_york_rule_with_wkst_and_an_exdate_crosses_the_autumn_change() {
    let x = expand_text(
        "BEGIN:VEVENT
        UID:ny-1
        DTSTART;TZID=America/New_York:20261026T093000
        DURATION:PT30M
        RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;COUNT=6;WKST=SU
        EXDATE;TZID=America/New_York:20261111T093000
        END:VEVENT",
        utc(2026, 10, 1, 0, 0),
        utc(2026, 12, 31, 0, 0),
    );
    // New York falls back on 1 November 2026: 13:30Z before, 14:30Z after.
    assert_eq!(
        starts(&x),
        [
            utc(2026, 10, 26, 13, 30),
            utc(2026, 10, 28, 13, 30),
            utc(2026, 11, 9, 14, 30),
            utc(2026, 11, 23, 14, 30),
            utc(2026, 11, 25, 14, 30),
        ]
    );
    assert!(
        x.intervals
            .iter()
            .all(|i| i.end_ms - i.start_ms == HOUR / 2)
    );
}

#[test]
fn an_overridden_instance_moves_and_a_cancelled_one_disappears() {
    let x = expand_text(
        "BEGIN:VEVENT
        UID:series@example.com
        DTSTART;TZID=Europe/London:20260302T140000
        DTEND;TZID=Europe/London:20260302T150000
        RRULE:FREQ=DAILY;COUNT=5
        END:VEVENT
        BEGIN:VEVENT
        UID:series@example.com
        RECURRENCE-ID;TZID=Europe/London:20260303T140000
        DTSTART;TZID=Europe/London:20260303T160000
        DTEND;TZID=Europe/London:20260303T163000
        SEQUENCE:1
        STATUS:TENTATIVE
        END:VEVENT
        BEGIN:VEVENT
        UID:series@example.com
        RECURRENCE-ID:20260304T140000Z
        DTSTART:20260304T140000Z
        STATUS:CANCELLED
        END:VEVENT
        BEGIN:VEVENT
        UID:series@example.com
        RECURRENCE-ID;TZID=Europe/London:20260306T140000
        DTSTART;TZID=Europe/London:20260320T090000
        END:VEVENT",
        utc(2026, 3, 1, 0, 0),
        utc(2026, 3, 31, 0, 0),
    );
    let got: Vec<(i64, i64, Option<i64>, bool, bool)> = x
        .intervals
        .iter()
        .map(|i| {
            (
                i.start_ms,
                i.end_ms,
                i.recurrence_id_ms,
                i.overridden,
                i.tentative,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                utc(2026, 3, 2, 14, 0),
                utc(2026, 3, 2, 15, 0),
                Some(utc(2026, 3, 2, 14, 0)),
                false,
                false
            ),
            (
                utc(2026, 3, 3, 16, 0),
                utc(2026, 3, 3, 16, 30),
                Some(utc(2026, 3, 3, 14, 0)),
                true,
                true
            ),
            (
                utc(2026, 3, 5, 14, 0),
                utc(2026, 3, 5, 15, 0),
                Some(utc(2026, 3, 5, 14, 0)),
                false,
                false
            ),
            // Moved two weeks on, with the master's length (it has no DTEND of its own).
            (
                utc(2026, 3, 20, 9, 0),
                utc(2026, 3, 20, 10, 0),
                Some(utc(2026, 3, 6, 14, 0)),
                true,
                false
            ),
        ]
    );
}

#[test]
fn an_override_moved_into_the_window_counts_and_one_moved_out_does_not() {
    let body = "BEGIN:VEVENT
        UID:m
        DTSTART:20260302T080000Z
        DTEND:20260302T090000Z
        RRULE:FREQ=WEEKLY;COUNT=3
        END:VEVENT
        BEGIN:VEVENT
        UID:m
        RECURRENCE-ID:20260309T080000Z
        DTSTART:20260401T080000Z
        DTEND:20260401T090000Z
        END:VEVENT";
    let march = expand_text(body, utc(2026, 3, 1, 0, 0), utc(2026, 3, 31, 0, 0));
    assert_eq!(
        starts(&march),
        [utc(2026, 3, 2, 8, 0), utc(2026, 3, 16, 8, 0)]
    );
    let april = expand_text(body, utc(2026, 3, 31, 0, 0), utc(2026, 4, 30, 0, 0));
    assert_eq!(starts(&april), [utc(2026, 4, 1, 8, 0)]);
}

#[test]
fn all_day_events_cover_whole_local_days_and_transparent_ones_are_marked() {
    let x = expand_text(
        "BEGIN:VEVENT
        UID:leave
        DTSTART;VALUE=DATE:20260310
        DTEND;VALUE=DATE:20260312
        END:VEVENT
        BEGIN:VEVENT
        UID:birthday
        DTSTART;VALUE=DATE:20200314
        RRULE:FREQ=YEARLY
        TRANSP:TRANSPARENT
        END:VEVENT",
        utc(2026, 3, 1, 0, 0),
        utc(2026, 4, 1, 0, 0),
    );
    assert_eq!(x.intervals.len(), 2);
    let leave = &x.intervals[0];
    // Johannesburg is UTC+2: local midnight is 22:00Z the day before.
    assert_eq!(leave.start_ms, utc(2026, 3, 9, 22, 0));
    assert_eq!(leave.end_ms, utc(2026, 3, 11, 22, 0));
    assert!(leave.all_day && leave.busy());
    let birthday = &x.intervals[1];
    assert_eq!(birthday.start_ms, utc(2026, 3, 13, 22, 0));
    assert_eq!(birthday.end_ms - birthday.start_ms, 24 * HOUR);
    assert!(birthday.all_day && birthday.transparent && !birthday.busy());
}

#[test]
fn an_endless_daily_rule_stops_at_the_window_and_a_huge_window_is_capped() {
    let body = "BEGIN:VEVENT
        UID:daily
        DTSTART;TZID=Europe/London:20200101T120000
        DTEND;TZID=Europe/London:20200101T121500
        RRULE:FREQ=DAILY
        END:VEVENT";
    let week = expand_text(body, utc(2026, 6, 1, 0, 0), utc(2026, 6, 8, 0, 0));
    assert_eq!(week.intervals.len(), 7);
    assert_eq!(week.intervals[0].start_ms, utc(2026, 6, 1, 11, 0));
    assert!(!week.capped);
    let forever = expand_text(body, utc(2020, 1, 1, 0, 0), utc(2100, 1, 1, 0, 0));
    assert_eq!(forever.intervals.len(), MAX_INSTANCES);
    assert!(forever.capped);
}

#[test]
fn monthly_and_yearly_rules_follow_rfc_5545() {
    let x = expand_text(
        "BEGIN:VEVENT
        UID:last-weekday
        DTSTART:20260130T170000
        RRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT=6
        END:VEVENT",
        utc(2026, 1, 1, 0, 0),
        utc(2027, 1, 1, 0, 0),
    );
    // Floating times read in Johannesburg (UTC+2).
    assert_eq!(
        starts(&x),
        [
            utc(2026, 1, 30, 15, 0),
            utc(2026, 2, 27, 15, 0),
            utc(2026, 3, 31, 15, 0),
            utc(2026, 4, 30, 15, 0),
            utc(2026, 5, 29, 15, 0),
            utc(2026, 6, 30, 15, 0),
        ]
    );
    let x = expand_text(
        "BEGIN:VEVENT
        UID:31st
        DTSTART:20260131T090000Z
        RRULE:FREQ=MONTHLY;BYMONTHDAY=31;COUNT=5
        END:VEVENT
        BEGIN:VEVENT
        UID:leap
        DTSTART:20240229T090000Z
        RRULE:FREQ=YEARLY;COUNT=3
        END:VEVENT
        BEGIN:VEVENT
        UID:2tu
        DTSTART:20260113T100000Z
        RRULE:FREQ=MONTHLY;BYDAY=2TU;UNTIL=20260414T100000Z
        END:VEVENT
        BEGIN:VEVENT
        UID:thanksgiving
        DTSTART:20261126T120000Z
        RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=4TH;COUNT=3
        END:VEVENT",
        utc(2024, 1, 1, 0, 0),
        utc(2033, 1, 1, 0, 0),
    );
    let of = |uid: &str| -> Vec<i64> {
        x.intervals
            .iter()
            .filter(|i| i.uid == uid)
            .map(|i| i.start_ms)
            .collect()
    };
    assert_eq!(
        of("31st"),
        [
            utc(2026, 1, 31, 9, 0),
            utc(2026, 3, 31, 9, 0),
            utc(2026, 5, 31, 9, 0),
            utc(2026, 7, 31, 9, 0),
            utc(2026, 8, 31, 9, 0),
        ]
    );
    assert_eq!(
        of("leap"),
        [
            utc(2024, 2, 29, 9, 0),
            utc(2028, 2, 29, 9, 0),
            utc(2032, 2, 29, 9, 0)
        ]
    );
    assert_eq!(
        of("2tu"),
        [
            utc(2026, 1, 13, 10, 0),
            utc(2026, 2, 10, 10, 0),
            utc(2026, 3, 10, 10, 0),
            utc(2026, 4, 14, 10, 0),
        ]
    );
    assert_eq!(
        of("thanksgiving"),
        [
            utc(2026, 11, 26, 12, 0),
            utc(2027, 11, 25, 12, 0),
            utc(2028, 11, 23, 12, 0)
        ]
    );
}

#[test]
fn a_time_skipped_by_the_spring_change_moves_an_hour_later() {
    let x = expand_text(
        "BEGIN:VEVENT
        UID:gap
        DTSTART;TZID=Europe/Berlin:20260328T023000
        DTEND;TZID=Europe/Berlin:20260328T033000
        RRULE:FREQ=DAILY;COUNT=3
        END:VEVENT",
        utc(2026, 3, 27, 0, 0),
        utc(2026, 4, 1, 0, 0),
    );
    // 28th: CET (01:30Z); 29th: 02:30 does not exist, read as 03:30 CEST (01:30Z); 30th:
    // CEST (00:30Z).
    assert_eq!(
        starts(&x),
        [
            utc(2026, 3, 28, 1, 30),
            utc(2026, 3, 29, 1, 30),
            utc(2026, 3, 30, 0, 30)
        ]
    );
}

#[test]
fn a_local_until_is_read_in_the_events_zone() {
    let x = expand_text(
        "BEGIN:VEVENT
        UID:until
        DTSTART;TZID=America/New_York:20260302T090000
        RRULE:FREQ=DAILY;UNTIL=20260304T090000
        END:VEVENT",
        utc(2026, 3, 1, 0, 0),
        utc(2026, 4, 1, 0, 0),
    );
    assert_eq!(x.intervals.len(), 3);
}

#[test]
fn windows_names_custom_vtimezones_and_unknown_tzids_resolve_or_are_reported() {
    let x = expand_text(
        "BEGIN:VTIMEZONE
        TZID:Customized Time Zone
        BEGIN:STANDARD
        DTSTART:16010101T030000
        TZOFFSETFROM:+0200
        TZOFFSETTO:+0100
        RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10
        END:STANDARD
        BEGIN:DAYLIGHT
        DTSTART:16010101T020000
        TZOFFSETFROM:+0100
        TZOFFSETTO:+0200
        RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3
        END:DAYLIGHT
        END:VTIMEZONE
        BEGIN:VEVENT
        UID:outlook
        DTSTART;TZID=W. Europe Standard Time:20260701T090000
        END:VEVENT
        BEGIN:VEVENT
        UID:custom
        DTSTART;TZID=\"Customized Time Zone\":20260701T100000
        END:VEVENT
        BEGIN:VEVENT
        UID:mozilla
        DTSTART;TZID=/mozilla.org/20050126_1/Europe/London:20260701T110000
        END:VEVENT
        BEGIN:VEVENT
        UID:mystery
        DTSTART;TZID=Atlantis/Capital:20260701T120000
        END:VEVENT
        BEGIN:VEVENT
        UID:named-offset
        DTSTART;TZID=\"(UTC+02:00) Harare, Pretoria\":20260701T130000
        END:VEVENT",
        utc(2026, 7, 1, 0, 0),
        utc(2026, 7, 2, 0, 0),
    );
    let by = |uid: &str| x.intervals.iter().find(|i| i.uid == uid).expect(uid);
    assert_eq!(by("outlook").start_ms, utc(2026, 7, 1, 7, 0));
    assert!(!by("outlook").zone_guessed);
    // Matched to a zone with CET/CEST rules (so 10:00 CEST is 08:00Z), but a guess.
    assert_eq!(by("custom").start_ms, utc(2026, 7, 1, 8, 0));
    assert!(by("custom").zone_guessed);
    assert_eq!(by("mozilla").start_ms, utc(2026, 7, 1, 10, 0));
    assert_eq!(by("mystery").start_ms, utc(2026, 7, 1, 12, 0));
    assert!(by("mystery").zone_guessed);
    assert_eq!(by("named-offset").start_ms, utc(2026, 7, 1, 11, 0));
    assert_eq!(x.unknown_tzids.len(), 2, "{:?}", x.unknown_tzids);
    assert!(x.unknown_tzids.contains(&"Atlantis/Capital".to_string()));

    let r = TzResolver::new(Tz::UTC, &[]);
    assert_eq!(
        r.resolve("South Africa Standard Time").zone,
        Zone::Iana(Tz::Africa__Johannesburg)
    );
    assert_eq!(r.resolve("europe/london").how, Resolved::Alias);
    assert_eq!(r.resolve("Europe/London").how, Resolved::Iana);
    assert_eq!(windows_to_iana("GMT Standard Time"), Some("Europe/London"));
    assert_eq!(windows_to_iana("gmt standard time"), Some("Europe/London"));
    assert_eq!(windows_to_iana("Nowhere Standard Time"), None);
}

#[test]
fn the_windows_table_is_sorted_and_names_only_zones_chrono_tz_knows() {
    use std::str::FromStr;
    let table = windows::WINDOWS_ZONES;
    assert!(table.len() > 130);
    for pair in table.windows(2) {
        assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].0, pair[1].0);
    }
    for (win, iana) in table {
        assert!(Tz::from_str(iana).is_ok(), "{win} -> {iana}");
        assert_eq!(windows_to_iana(win), Some(*iana));
    }
}

#[test]
fn lf_endings_folds_inside_a_character_and_lower_case_names_are_accepted() {
    let mut text =
        b"BEGIN:VCALENDAR\nbegin:vevent\nuid:fold\ndtstart:20260310T090000Z\nSUMMARY:Caf\xC3"
            .to_vec();
    text.extend_from_slice(b"\n \xA9 meeting\nEND:VEVENT\nEND:VCALENDAR\n");
    let c = parse(&text).expect("parses");
    assert_eq!(c.events.len(), 1);
    assert_eq!(c.events[0].summary.as_deref(), Some("Café meeting"));
    assert_eq!(
        c.events[0].dtstart,
        Some(DateOrTime::Utc(
            NaiveDate::from_ymd_opt(2026, 3, 10)
                .and_then(|d| d.and_hms_opt(9, 0, 0))
                .expect("date")
        ))
    );
}

#[test]
fn malformed_calendars_are_refused_with_an_error() {
    assert_eq!(parse(b""), Err(IcalError::NotICalendar));
    assert_eq!(parse(b"hello world"), Err(IcalError::BadLine { line: 1 }));
    assert_eq!(
        parse(b"BEGIN:VEVENT\nEND:VEVENT\n"),
        Err(IcalError::NotICalendar)
    );
    assert_eq!(
        parse(b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nEND:VCALENDAR\n"),
        Err(IcalError::Unbalanced { line: 3 })
    );
    assert_eq!(
        parse(b"BEGIN:VCALENDAR\nBEGIN:VEVENT\n"),
        Err(IcalError::Unterminated)
    );
    assert_eq!(parse(b"VERSION:2.0\n"), Err(IcalError::NotICalendar));
    assert_eq!(
        parse(b" folded first\n"),
        Err(IcalError::BadLine { line: 1 })
    );
    assert_eq!(
        parse(b"BEGIN:VCALENDAR\nX;P=\"open:1\nEND:VCALENDAR\n"),
        Err(IcalError::BadLine { line: 2 })
    );
    let big = vec![b'A'; MAX_ICAL_BYTES + 1];
    assert_eq!(parse(&big), Err(IcalError::TooLarge));
    let lines = "X:1\n".repeat(MAX_LINES + 1);
    assert_eq!(parse(lines.as_bytes()), Err(IcalError::TooManyLines));
    let deep = format!(
        "{}{}",
        "BEGIN:VCALENDAR\n".repeat(MAX_DEPTH + 1),
        "END:VCALENDAR\n".repeat(MAX_DEPTH + 1)
    );
    assert_eq!(
        parse(deep.as_bytes()),
        Err(IcalError::TooDeep {
            line: MAX_DEPTH + 1
        })
    );
    let props = format!(
        "BEGIN:VCALENDAR\n{}END:VCALENDAR\n",
        "X-A:1\n".repeat(MAX_PROPERTIES + 1)
    );
    assert_eq!(
        parse(props.as_bytes()),
        Err(IcalError::TooManyProperties { line: 1 })
    );
    let many = format!(
        "BEGIN:VCALENDAR\n{}END:VCALENDAR\n",
        "BEGIN:VTODO\nEND:VTODO\n".repeat(MAX_COMPONENTS)
    );
    assert_eq!(parse(many.as_bytes()), Err(IcalError::TooManyComponents));
}

#[test]
fn unusable_events_are_skipped_and_reported_without_losing_the_others() {
    let c = parse(&cal("BEGIN:VEVENT
        UID:no-start
        END:VEVENT
        BEGIN:VEVENT
        UID:bad-date
        DTSTART:20261340T250000Z
        END:VEVENT
        BEGIN:VEVENT
        UID:bad-rule
        DTSTART:20260101T090000Z
        RRULE:FREQ=FORTNIGHTLY
        END:VEVENT
        BEGIN:VEVENT
        UID:fine
        DTSTART:20260101T090000Z
        END:VEVENT"))
    .expect("parses");
    let reasons: Vec<&str> = c.skipped.iter().map(|s| s.reason).collect();
    assert_eq!(
        reasons,
        ["no DTSTART", "unreadable DTSTART", "unreadable RRULE"]
    );
    assert_eq!(c.skipped[0].uid.as_deref(), Some("no-start"));
    assert_eq!(c.events.len(), 1);
}

#[test]
fn unsupported_rules_keep_their_first_instance_and_are_reported() {
    let x = expand_text(
        "BEGIN:VEVENT
        UID:hourly
        DTSTART:20260101T090000Z
        RRULE:FREQ=HOURLY;COUNT=5
        END:VEVENT",
        utc(2026, 1, 1, 0, 0),
        utc(2026, 1, 2, 0, 0),
    );
    assert_eq!(starts(&x), [utc(2026, 1, 1, 9, 0)]);
    assert_eq!(x.unsupported, ["hourly"]);
}

#[test]
fn rdates_add_instances_and_the_higher_sequence_master_wins() {
    let x = expand_text(
        "BEGIN:VEVENT
        UID:r
        DTSTART:20260105T090000Z
        DTEND:20260105T100000Z
        RDATE:20260107T090000Z,20260105T090000Z
        RDATE;VALUE=PERIOD:20260109T130000Z/PT2H
        SEQUENCE:2
        END:VEVENT
        BEGIN:VEVENT
        UID:r
        DTSTART:20260105T200000Z
        SEQUENCE:1
        END:VEVENT",
        utc(2026, 1, 1, 0, 0),
        utc(2026, 2, 1, 0, 0),
    );
    let got: Vec<(i64, i64)> = x.intervals.iter().map(|i| (i.start_ms, i.end_ms)).collect();
    assert_eq!(
        got,
        [
            (utc(2026, 1, 5, 9, 0), utc(2026, 1, 5, 10, 0)),
            (utc(2026, 1, 7, 9, 0), utc(2026, 1, 7, 10, 0)),
            (utc(2026, 1, 9, 13, 0), utc(2026, 1, 9, 15, 0)),
        ]
    );
}

#[test]
fn google_recurrence_lines_expand_like_caldav_ones() {
    let rec = parse_recurrence(&[
        "RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=3",
        "EXDATE;TZID=Europe/Berlin:20260316T090000",
    ])
    .expect("reads");
    let ev = Event {
        uid: "google-1".into(),
        dtstart: Some(DateOrTime::Zoned {
            local: NaiveDate::from_ymd_opt(2026, 3, 9)
                .and_then(|d| d.and_hms_opt(9, 0, 0))
                .expect("date"),
            tzid: "Europe/Berlin".into(),
        }),
        duration: Some(IcalDuration {
            days: 0,
            seconds: 3600,
        }),
        rrule: rec.rrule,
        exdates: rec.exdates,
        ..Event::default()
    };
    let got = expand(
        &[ev],
        utc(2026, 3, 1, 0, 0),
        utc(2026, 4, 1, 0, 0),
        &TzResolver::new(Tz::UTC, &[]),
    );
    let got: Vec<i64> = got.iter().map(|i| i.start_ms).collect();
    assert_eq!(got, [utc(2026, 3, 9, 8, 0), utc(2026, 3, 23, 8, 0)]);
    assert_eq!(
        parse_recurrence(&["DTSTART:20260101T000000Z"]),
        Err(IcalError::BadRecurrence { index: 0 })
    );
    assert_eq!(
        parse_recurrence(&["RRULE:FREQ=DAILY", "RRULE;bad"]),
        Err(IcalError::BadRecurrence { index: 1 })
    );
}

#[test]
fn durations_and_rules_parse_and_refuse_as_documented() {
    assert_eq!(
        parse_duration("PT1H30M"),
        Some(IcalDuration {
            days: 0,
            seconds: 5400
        })
    );
    assert_eq!(
        parse_duration("P1W"),
        Some(IcalDuration {
            days: 7,
            seconds: 0
        })
    );
    assert_eq!(
        parse_duration("-P1DT2S"),
        Some(IcalDuration {
            days: -1,
            seconds: -2
        })
    );
    for bad in [
        "",
        "P",
        "PT",
        "1H",
        "PT1D",
        "P1H",
        "P99999999999999999999D",
        "PT5",
    ] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
    let r = RRule::parse("freq=monthly;interval=2;byday=-1fr,+2MO;wkst=su").expect("parses");
    assert_eq!(r.freq, Frequency::Monthly);
    assert_eq!(r.interval, 2);
    assert_eq!(
        r.by_day,
        [(-1, chrono::Weekday::Fri), (2, chrono::Weekday::Mon)]
    );
    assert_eq!(r.wkst, chrono::Weekday::Sun);
    for bad in [
        "",
        "INTERVAL=2",
        "FREQ=DAILY;INTERVAL=0",
        "FREQ=DAILY;COUNT=2;UNTIL=20260101",
        "FREQ=DAILY;BYMONTH=13",
        "FREQ=DAILY;BYMONTHDAY=0",
        "FREQ=DAILY;BYDAY=XX",
        "FREQ=DAILY;BYDAY=99MO",
        "FREQ=DAILY;JUNK",
    ] {
        assert_eq!(RRule::parse(bad), None, "{bad}");
    }
}

#[test]
fn a_rule_that_never_matches_costs_a_bounded_amount_of_work() {
    let x = expand_text(
        "BEGIN:VEVENT
        UID:never
        DTSTART:20260131T090000Z
        RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=31;COUNT=10
        END:VEVENT",
        utc(2026, 1, 1, 0, 0),
        utc(2600, 1, 1, 0, 0),
    );
    // Only DTSTART, which RFC 5545 always counts.
    assert_eq!(starts(&x), [utc(2026, 1, 31, 9, 0)]);
    assert!(x.capped);
}

#[test]
fn values_with_characters_where_digits_belong_are_refused_not_a_panic() {
    for v in ["2026é310", "20260310T09é000Z", "é0260310T090000"] {
        assert_eq!(parse_date_or_time(v, None, false), None, "{v}");
    }
    assert_eq!(parse_offset("+1é2"), None);
    assert_eq!(RRule::parse("FREQ=WEEKLY;BYDAY=éa"), None);
}

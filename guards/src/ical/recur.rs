//! RRULE: the value parsed ([`RRule::parse`]) and its occurrences generated in local wall time
//! ([`occurrences`]), period by period (a day, week, month or year), following RFC 5545
//! §3.3.10's table of which BYxxx parts expand and which limit. Everything is bounded by the
//! caller's work budget, so a rule that never matches (`BYMONTHDAY=31;BYMONTH=2`) costs a fixed
//! amount of work, not a loop.

use chrono::{Datelike, Days, Months, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Weekday};

use super::{DateOrTime, parse_date_or_time, weekday};

/// The most periods one rule is walked through (a daily rule for 270 years).
const MAX_PERIODS: u64 = 100_000;
/// The largest INTERVAL read.
const MAX_INTERVAL: u32 = 10_000;

/// `FREQ`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frequency {
    Secondly,
    Minutely,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

/// A parsed RRULE value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RRule {
    pub freq: Frequency,
    /// At least 1.
    pub interval: u32,
    pub count: Option<u32>,
    /// Without a TZID: DATE, UTC or floating (a local UNTIL, which real feeds write, is read
    /// in the event's zone).
    pub until: Option<DateOrTime>,
    pub by_second: Vec<u8>,
    pub by_minute: Vec<u8>,
    pub by_hour: Vec<u8>,
    /// `(ordinal, weekday)`; ordinal 0 means every such weekday (`MO`), else `2MO`, `-1FR`.
    pub by_day: Vec<(i8, Weekday)>,
    pub by_month_day: Vec<i8>,
    pub by_year_day: Vec<i16>,
    pub by_week_no: Vec<i8>,
    pub by_month: Vec<u8>,
    pub by_set_pos: Vec<i16>,
    pub wkst: Weekday,
}

fn list<T: std::str::FromStr + Copy + PartialOrd>(
    v: &str,
    lo: T,
    hi: T,
    zero: Option<T>,
) -> Option<Vec<T>> {
    let mut out = Vec::new();
    for part in v.split(',') {
        let n: T = part.trim().trim_start_matches('+').parse().ok()?;
        if n < lo || n > hi || Some(n) == zero {
            return None;
        }
        if out.len() >= 400 {
            return None;
        }
        out.push(n);
    }
    Some(out)
}

impl RRule {
    /// Parses an RRULE value (`FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;UNTIL=20261231T235959Z`).
    /// Part names in any case; unknown parts (`X-…`, `RSCALE`) are ignored; `None` for a
    /// missing or unknown FREQ, a value out of range, or COUNT together with UNTIL.
    pub fn parse(value: &str) -> Option<RRule> {
        let mut rule = RRule {
            freq: Frequency::Daily,
            interval: 1,
            count: None,
            until: None,
            by_second: Vec::new(),
            by_minute: Vec::new(),
            by_hour: Vec::new(),
            by_day: Vec::new(),
            by_month_day: Vec::new(),
            by_year_day: Vec::new(),
            by_week_no: Vec::new(),
            by_month: Vec::new(),
            by_set_pos: Vec::new(),
            wkst: Weekday::Mon,
        };
        let mut freq = None;
        for part in value.trim().split(';').filter(|p| !p.trim().is_empty()) {
            let (k, v) = part.split_once('=')?;
            let v = v.trim();
            match k.trim().to_ascii_uppercase().as_str() {
                "FREQ" => {
                    freq = Some(match v.to_ascii_uppercase().as_str() {
                        "SECONDLY" => Frequency::Secondly,
                        "MINUTELY" => Frequency::Minutely,
                        "HOURLY" => Frequency::Hourly,
                        "DAILY" => Frequency::Daily,
                        "WEEKLY" => Frequency::Weekly,
                        "MONTHLY" => Frequency::Monthly,
                        "YEARLY" => Frequency::Yearly,
                        _ => return None,
                    })
                }
                "INTERVAL" => {
                    let n: u32 = v.parse().ok()?;
                    if n == 0 || n > MAX_INTERVAL {
                        return None;
                    }
                    rule.interval = n;
                }
                "COUNT" => rule.count = Some(v.parse().ok()?),
                "UNTIL" => rule.until = Some(parse_date_or_time(v, None, false)?),
                "BYSECOND" => rule.by_second = list(v, 0, 60, None)?,
                "BYMINUTE" => rule.by_minute = list(v, 0, 59, None)?,
                "BYHOUR" => rule.by_hour = list(v, 0, 23, None)?,
                "BYMONTHDAY" => rule.by_month_day = list(v, -31, 31, Some(0))?,
                "BYYEARDAY" => rule.by_year_day = list(v, -366, 366, Some(0))?,
                "BYWEEKNO" => rule.by_week_no = list(v, -53, 53, Some(0))?,
                "BYMONTH" => rule.by_month = list(v, 1, 12, None)?,
                "BYSETPOS" => rule.by_set_pos = list(v, -366, 366, Some(0))?,
                "WKST" => rule.wkst = weekday(v)?,
                "BYDAY" => {
                    for d in v.split(',') {
                        let d = d.trim();
                        if d.len() < 2 || !d.is_ascii() || rule.by_day.len() >= 400 {
                            return None;
                        }
                        let (n, code) = d.split_at(d.len() - 2);
                        let n: i8 = match n.trim_start_matches('+') {
                            "" => 0,
                            n => n.parse().ok()?,
                        };
                        if !(-53..=53).contains(&n) {
                            return None;
                        }
                        rule.by_day.push((n, weekday(code)?));
                    }
                }
                _ => {}
            }
        }
        rule.freq = freq?;
        if rule.count.is_some() && rule.until.is_some() {
            return None;
        }
        // Leap seconds are read as 59, as for DATE-TIME values.
        for s in &mut rule.by_second {
            *s = (*s).min(59);
        }
        Some(rule)
    }

    /// Whether [`occurrences`] can expand this rule (else the event keeps its first instance).
    pub fn supported(&self) -> bool {
        matches!(
            self.freq,
            Frequency::Daily | Frequency::Weekly | Frequency::Monthly | Frequency::Yearly
        ) && self.by_week_no.is_empty()
    }
}

/// What stops [`occurrences`] early.
pub(crate) struct Bounds<'a> {
    /// Periods before the one holding this date may be skipped (only without COUNT).
    pub skip_to: Option<NaiveDate>,
    /// No occurrence after this local time is wanted.
    pub stop_after: NaiveDateTime,
    /// Whether a local time is past UNTIL.
    pub past_until: &'a dyn Fn(NaiveDateTime) -> bool,
    /// Shared across events; each period and each candidate costs one.
    pub budget: &'a mut u64,
}

/// Why [`occurrences`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// COUNT, UNTIL, the window's end or the end of the calendar.
    Done,
    /// The work budget or the period cap ran out, or the callback said stop.
    Capped,
}

fn days_in_month(y: i32, m: u32) -> u32 {
    let first = NaiveDate::from_ymd_opt(y, m, 1);
    let next = first.and_then(|f| f.checked_add_months(Months::new(1)));
    match (first, next) {
        (Some(a), Some(b)) => (b - a).num_days() as u32,
        _ => 30,
    }
}

fn days_in_year(y: i32) -> u32 {
    if NaiveDate::from_ymd_opt(y, 2, 29).is_some() {
        366
    } else {
        365
    }
}

/// The dates of `wd` in `first..=last`, and those picked by an ordinal (1 first, -1 last).
fn weekdays_in(first: NaiveDate, last: NaiveDate, wd: Weekday, ord: i8, out: &mut Vec<NaiveDate>) {
    let offset =
        (7 + wd.num_days_from_monday() as i64 - first.weekday().num_days_from_monday() as i64) % 7;
    let Some(mut d) = first.checked_add_days(Days::new(offset as u64)) else {
        return;
    };
    let mut all = Vec::new();
    while d <= last {
        all.push(d);
        match d.checked_add_days(Days::new(7)) {
            Some(n) => d = n,
            None => break,
        }
    }
    if ord == 0 {
        out.extend(all);
    } else {
        let idx = if ord > 0 {
            ord as i64 - 1
        } else {
            all.len() as i64 + ord as i64
        };
        if idx >= 0
            && let Some(d) = all.get(idx as usize)
        {
            out.push(*d);
        }
    }
}

fn month_day_matches(rule: &RRule, d: NaiveDate) -> bool {
    if rule.by_month_day.is_empty() {
        return true;
    }
    let len = days_in_month(d.year(), d.month()) as i32;
    let day = d.day() as i32;
    rule.by_month_day
        .iter()
        .any(|&md| md as i32 == day || (md < 0 && len + 1 + md as i32 == day))
}

fn year_day_matches(rule: &RRule, d: NaiveDate) -> bool {
    if rule.by_year_day.is_empty() {
        return true;
    }
    let len = days_in_year(d.year()) as i32;
    let day = d.ordinal() as i32;
    rule.by_year_day
        .iter()
        .any(|&yd| yd as i32 == day || (yd < 0 && len + 1 + yd as i32 == day))
}

fn weekday_matches(rule: &RRule, d: NaiveDate) -> bool {
    rule.by_day.is_empty() || rule.by_day.iter().any(|(_, wd)| *wd == d.weekday())
}

fn month_matches(rule: &RRule, d: NaiveDate) -> bool {
    rule.by_month.is_empty() || rule.by_month.contains(&(d.month() as u8))
}

/// The days of a month a MONTHLY (or YEARLY with BYMONTH) rule gives.
fn days_of_month(rule: &RRule, y: i32, m: u32, start_day: u32, out: &mut Vec<NaiveDate>) {
    let Some(first) = NaiveDate::from_ymd_opt(y, m, 1) else {
        return;
    };
    let len = days_in_month(y, m);
    let Some(last) = NaiveDate::from_ymd_opt(y, m, len) else {
        return;
    };
    if !rule.by_day.is_empty() {
        let mut days = Vec::new();
        for &(ord, wd) in &rule.by_day {
            weekdays_in(first, last, wd, ord, &mut days);
        }
        out.extend(days.into_iter().filter(|d| month_day_matches(rule, *d)));
    } else if !rule.by_month_day.is_empty() {
        for &md in &rule.by_month_day {
            let day = if md > 0 {
                md as i32
            } else {
                len as i32 + 1 + md as i32
            };
            if day >= 1
                && let Some(d) = NaiveDate::from_ymd_opt(y, m, day as u32)
            {
                out.push(d);
            }
        }
    } else if let Some(d) = NaiveDate::from_ymd_opt(y, m, start_day) {
        // The 31st in a month without one is no occurrence (RFC 5545 §3.3.10).
        out.push(d);
    }
}

/// The dates of period `n` (before BYSETPOS and times).
fn period_dates(
    rule: &RRule,
    start: NaiveDate,
    n: u64,
    out: &mut Vec<NaiveDate>,
) -> Option<NaiveDate> {
    let step = n.checked_mul(u64::from(rule.interval))?;
    match rule.freq {
        Frequency::Daily => {
            let d = start.checked_add_days(Days::new(step))?;
            if month_matches(rule, d)
                && month_day_matches(rule, d)
                && year_day_matches(rule, d)
                && weekday_matches(rule, d)
            {
                out.push(d);
            }
            Some(d)
        }
        Frequency::Weekly => {
            let back = (7 + start.weekday().num_days_from_monday() as i64
                - rule.wkst.num_days_from_monday() as i64)
                % 7;
            let week = start
                .checked_sub_days(Days::new(back as u64))?
                .checked_add_days(Days::new(step.checked_mul(7)?))?;
            for i in 0..7 {
                let d = week.checked_add_days(Days::new(i))?;
                let wanted = if rule.by_day.is_empty() {
                    d.weekday() == start.weekday()
                } else {
                    weekday_matches(rule, d)
                };
                if wanted && month_matches(rule, d) {
                    out.push(d);
                }
            }
            Some(week)
        }
        Frequency::Monthly => {
            let first = NaiveDate::from_ymd_opt(start.year(), start.month(), 1)?
                .checked_add_months(Months::new(u32::try_from(step).ok()?))?;
            if month_matches(rule, first) {
                days_of_month(rule, first.year(), first.month(), start.day(), out);
            }
            Some(first)
        }
        Frequency::Yearly => {
            let y = start.year().checked_add(i32::try_from(step).ok()?)?;
            let first = NaiveDate::from_ymd_opt(y, 1, 1)?;
            if !rule.by_year_day.is_empty() {
                let len = days_in_year(y) as i32;
                for &yd in &rule.by_year_day {
                    let day = if yd > 0 {
                        yd as i32
                    } else {
                        len + 1 + yd as i32
                    };
                    if day >= 1
                        && let Some(d) = NaiveDate::from_yo_opt(y, day as u32)
                        && month_matches(rule, d)
                        && month_day_matches(rule, d)
                        && weekday_matches(rule, d)
                    {
                        out.push(d);
                    }
                }
            } else if !rule.by_month.is_empty() {
                for &m in &rule.by_month {
                    days_of_month(rule, y, u32::from(m), start.day(), out);
                }
            } else if !rule.by_month_day.is_empty() {
                for m in 1..=12 {
                    days_of_month(rule, y, m, start.day(), out);
                }
            } else if !rule.by_day.is_empty() {
                // BYDAY alone in a YEARLY rule counts its ordinals within the year.
                let last = NaiveDate::from_ymd_opt(y, 12, 31)?;
                for &(ord, wd) in &rule.by_day {
                    weekdays_in(first, last, wd, ord, out);
                }
            } else if let Some(d) = NaiveDate::from_ymd_opt(y, start.month(), start.day()) {
                // February 29th only in leap years.
                out.push(d);
            }
            Some(first)
        }
        _ => None,
    }
}

/// The first period worth walking for `skip_to` (a little before it, never before 0).
fn first_period(rule: &RRule, start: NaiveDate, skip_to: NaiveDate) -> u64 {
    if skip_to <= start {
        return 0;
    }
    let units: i64 = match rule.freq {
        Frequency::Daily => (skip_to - start).num_days(),
        Frequency::Weekly => (skip_to - start).num_days() / 7,
        Frequency::Monthly => {
            (skip_to.year() as i64 - start.year() as i64) * 12 + skip_to.month() as i64
                - start.month() as i64
        }
        Frequency::Yearly => skip_to.year() as i64 - start.year() as i64,
        _ => 0,
    };
    (units / i64::from(rule.interval) - 1).max(0) as u64
}

/// Calls `emit` with each occurrence of `rule` from `dtstart` (local wall times, ascending;
/// DTSTART itself first, as RFC 5545 counts it), until COUNT, UNTIL, `bounds.stop_after`, the
/// budget, or `emit` returning `false`.
pub(crate) fn occurrences(
    rule: &RRule,
    dtstart: NaiveDateTime,
    bounds: Bounds<'_>,
    emit: &mut dyn FnMut(NaiveDateTime) -> bool,
) -> Stop {
    let Bounds {
        skip_to,
        stop_after,
        past_until,
        budget,
    } = bounds;
    let mut count = 0u32;
    let limit = rule.count.unwrap_or(u32::MAX);
    if limit == 0 {
        return Stop::Done;
    }
    if (past_until)(dtstart) && rule.until.is_some() {
        // An UNTIL before DTSTART leaves DTSTART alone.
        return if emit(dtstart) {
            Stop::Done
        } else {
            Stop::Capped
        };
    }
    if !emit(dtstart) {
        return Stop::Capped;
    }
    count += 1;
    if !rule.supported() {
        return Stop::Done;
    }
    let hours: Vec<u32> = if rule.by_hour.is_empty() {
        vec![dtstart.hour()]
    } else {
        rule.by_hour.iter().map(|&h| u32::from(h)).collect()
    };
    let minutes: Vec<u32> = if rule.by_minute.is_empty() {
        vec![dtstart.minute()]
    } else {
        rule.by_minute.iter().map(|&m| u32::from(m)).collect()
    };
    let seconds: Vec<u32> = if rule.by_second.is_empty() {
        vec![dtstart.second()]
    } else {
        rule.by_second.iter().map(|&s| u32::from(s)).collect()
    };
    let start = dtstart.date();
    let first = match (rule.count, skip_to) {
        (None, Some(d)) => first_period(rule, start, d),
        _ => 0,
    };
    let mut dates = Vec::new();
    let mut set = Vec::new();
    for n in first..first.saturating_add(MAX_PERIODS) {
        *budget = match budget.checked_sub(1) {
            Some(b) => b,
            None => return Stop::Capped,
        };
        dates.clear();
        let Some(period_start) = period_dates(rule, start, n, &mut dates) else {
            return Stop::Done;
        };
        if period_start > stop_after.date() {
            return Stop::Done;
        }
        set.clear();
        for d in &dates {
            for &h in &hours {
                for &m in &minutes {
                    for &s in &seconds {
                        *budget = match budget.checked_sub(1) {
                            Some(b) => b,
                            None => return Stop::Capped,
                        };
                        if let Some(t) = NaiveTime::from_hms_opt(h, m, s) {
                            set.push(d.and_time(t));
                        }
                    }
                }
            }
        }
        set.sort_unstable();
        set.dedup();
        if !rule.by_set_pos.is_empty() {
            let len = set.len() as i64;
            let mut picked: Vec<NaiveDateTime> = rule
                .by_set_pos
                .iter()
                .filter_map(|&p| {
                    let i = if p > 0 { p as i64 - 1 } else { len + p as i64 };
                    (0..len).contains(&i).then(|| set[i as usize])
                })
                .collect();
            picked.sort_unstable();
            picked.dedup();
            set = picked;
        }
        for &t in &set {
            if t <= dtstart {
                continue;
            }
            if (past_until)(t) || t > stop_after {
                return Stop::Done;
            }
            if count >= limit {
                return Stop::Done;
            }
            if !emit(t) {
                return Stop::Capped;
            }
            count += 1;
        }
    }
    Stop::Capped
}

//! The inputs of the engine: intervals, local working ranges, weekly hours, exceptions, the
//! staff member's calendar and the service's rules.

use std::fmt;

use chrono::{Datelike, NaiveDate, Weekday};
use chrono_tz::Tz;

/// A staff member's id, as stored in the portal's database.
pub type StaffId = i64;

/// Minutes in a local day (as wall-clock minutes, `24:00` is minute 1440).
pub const MINUTES_PER_DAY: u16 = 1440;

/// The largest `horizon_days` a service may have (about ten years).
pub const MAX_HORIZON_DAYS: u32 = 3660;

/// The longest appointment a service may have, in minutes (two days; in practice an appointment
/// must fit inside one day's working range, so anything over 24 hours is never bookable anyway).
pub const MAX_DURATION_MIN: u32 = 2 * 1440;

/// A half-open interval of absolute instants `[start_ms, end_ms)`, in milliseconds since the Unix
/// epoch (UTC). An interval whose end is not after its start is empty and overlaps nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Interval {
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Interval {
    pub const fn new(start_ms: i64, end_ms: i64) -> Self {
        Self { start_ms, end_ms }
    }

    /// True when the interval holds no instant.
    pub const fn is_empty(&self) -> bool {
        self.start_ms >= self.end_ms
    }

    /// True when the two intervals share at least one instant.
    pub const fn overlaps(&self, other: &Interval) -> bool {
        !self.is_empty()
            && !other.is_empty()
            && self.start_ms < other.end_ms
            && other.start_ms < self.end_ms
    }
}

/// Why a [`LocalRange`] could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RangeError {
    /// The end is not after the start.
    Empty,
    /// A minute past 24:00 (or an hour past 24, or a minute past 59).
    OutOfDay,
    /// Text that is not `HH:MM-HH:MM`.
    Syntax,
}

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RangeError::Empty => "the end of a working range must be after its start",
            RangeError::OutOfDay => "a working range must lie between 00:00 and 24:00",
            RangeError::Syntax => "a working range is written like 09:00-12:30",
        })
    }
}

impl std::error::Error for RangeError {}

/// A range of local wall-clock time within one day, `[start, end)`, in whole minutes after local
/// midnight. `end` may be 1440 (24:00). A range never crosses midnight: a night shift is two
/// ranges on two days (and an appointment never spans the two).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalRange {
    start_min: u16,
    end_min: u16,
}

impl LocalRange {
    /// A range from minute `start_min` to minute `end_min` after local midnight.
    pub fn new(start_min: u16, end_min: u16) -> Result<Self, RangeError> {
        if start_min > MINUTES_PER_DAY || end_min > MINUTES_PER_DAY {
            return Err(RangeError::OutOfDay);
        }
        if end_min <= start_min {
            return Err(RangeError::Empty);
        }
        Ok(Self { start_min, end_min })
    }

    /// A range from `start_h:start_m` to `end_h:end_m` (`24:00` allowed as an end).
    pub fn hm(start_h: u16, start_m: u16, end_h: u16, end_m: u16) -> Result<Self, RangeError> {
        if start_m > 59 || end_m > 59 || start_h > 24 || end_h > 24 {
            return Err(RangeError::OutOfDay);
        }
        Self::new(start_h * 60 + start_m, end_h * 60 + end_m)
    }

    /// Parses `HH:MM-HH:MM` (for example `09:00-12:30`; `24:00` allowed as an end).
    pub fn parse(text: &str) -> Result<Self, RangeError> {
        fn hhmm(s: &str) -> Result<(u16, u16), RangeError> {
            let b = s.trim().as_bytes();
            if b.len() != 5 || b[2] != b':' {
                return Err(RangeError::Syntax);
            }
            let digit = |c: u8| {
                if c.is_ascii_digit() {
                    Ok(u16::from(c - b'0'))
                } else {
                    Err(RangeError::Syntax)
                }
            };
            Ok((
                digit(b[0])? * 10 + digit(b[1])?,
                digit(b[3])? * 10 + digit(b[4])?,
            ))
        }
        let (a, b) = text.split_once('-').ok_or(RangeError::Syntax)?;
        let (sh, sm) = hhmm(a)?;
        let (eh, em) = hhmm(b)?;
        Self::hm(sh, sm, eh, em)
    }

    /// Minutes after local midnight at which the range starts.
    pub const fn start_min(&self) -> u16 {
        self.start_min
    }

    /// Minutes after local midnight at which the range ends (exclusive; at most 1440).
    pub const fn end_min(&self) -> u16 {
        self.end_min
    }

    /// True when local minute-of-day `minute` lies in the range.
    pub const fn contains_minute(&self, minute: u32) -> bool {
        self.start_min as u32 <= minute && minute < self.end_min as u32
    }
}

impl fmt::Display for LocalRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start_min / 60,
            self.start_min % 60,
            self.end_min / 60,
            self.end_min % 60
        )
    }
}

/// Sorts ranges and merges those that overlap or touch (`09:00-12:00` and `12:00-13:00` become
/// `09:00-13:00`: the staff member works throughout, so an appointment may run across 12:00).
pub fn normalize_ranges(mut ranges: Vec<LocalRange>) -> Vec<LocalRange> {
    ranges.sort_unstable();
    let mut out: Vec<LocalRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start_min <= last.end_min => {
                last.end_min = last.end_min.max(r.end_min);
            }
            _ => out.push(r),
        }
    }
    out
}

/// The usual working hours: per weekday, local wall-clock ranges in the staff member's zone.
/// Ranges are kept sorted and merged (see [`normalize_ranges`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WeeklyHours {
    days: [Vec<LocalRange>; 7],
}

impl WeeklyHours {
    /// No working hours on any day.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the ranges of `day` (builder style).
    pub fn with(mut self, day: Weekday, ranges: impl IntoIterator<Item = LocalRange>) -> Self {
        self.set(day, ranges);
        self
    }

    /// Replaces the ranges of `day`.
    pub fn set(&mut self, day: Weekday, ranges: impl IntoIterator<Item = LocalRange>) {
        self.days[day.num_days_from_monday() as usize] =
            normalize_ranges(ranges.into_iter().collect());
    }

    /// The (sorted, merged) ranges of `day`.
    pub fn ranges(&self, day: Weekday) -> &[LocalRange] {
        &self.days[day.num_days_from_monday() as usize]
    }
}

/// A departure from the weekly hours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exception {
    /// Not working at all on this local date. Wins over any `ChangedDay` for the same date.
    DayOff(NaiveDate),
    /// On this local date the staff member works these ranges instead of the weekly ones (an
    /// empty list is the same as a day off). Several for the same date are united.
    ChangedDay {
        date: NaiveDate,
        ranges: Vec<LocalRange>,
    },
    /// Away during these absolute instants (a doctor's appointment, a holiday given as instants).
    /// No appointment may overlap it; buffers may (as they may run past the working range).
    TimeOff(Interval),
}

/// One staff member's calendar: who, in which zone, and when they work.
#[derive(Clone, Debug, PartialEq)]
pub struct StaffCalendar {
    pub id: StaffId,
    /// The name used in refusal messages ("That time is outside Thandi's working hours.").
    pub name: String,
    /// The IANA zone in which the working ranges are read.
    pub tz: Tz,
    pub weekly: WeeklyHours,
    pub exceptions: Vec<Exception>,
}

impl StaffCalendar {
    pub fn new(id: StaffId, name: impl Into<String>, tz: Tz, weekly: WeeklyHours) -> Self {
        Self {
            id,
            name: name.into(),
            tz,
            weekly,
            exceptions: Vec::new(),
        }
    }

    /// Adds an exception (builder style).
    pub fn with_exception(mut self, exception: Exception) -> Self {
        self.exceptions.push(exception);
        self
    }

    /// The working ranges on local date `date`, after exceptions (sorted, merged).
    pub fn ranges_on(&self, date: NaiveDate) -> Vec<LocalRange> {
        effective_ranges(
            self.weekly.ranges(date.weekday()),
            self.exceptions.iter().filter(|e| match e {
                Exception::DayOff(d) | Exception::ChangedDay { date: d, .. } => *d == date,
                Exception::TimeOff(_) => false,
            }),
        )
    }
}

/// The ranges of one day given its weekly ranges and the exceptions for that date.
pub(crate) fn effective_ranges<'a>(
    weekly: &[LocalRange],
    for_date: impl Iterator<Item = &'a Exception>,
) -> Vec<LocalRange> {
    let mut changed: Option<Vec<LocalRange>> = None;
    for e in for_date {
        match e {
            Exception::DayOff(_) => return Vec::new(),
            Exception::ChangedDay { ranges, .. } => changed
                .get_or_insert_with(Vec::new)
                .extend_from_slice(ranges),
            Exception::TimeOff(_) => {}
        }
    }
    match changed {
        Some(ranges) => normalize_ranges(ranges),
        None => weekly.to_vec(),
    }
}

/// Why a [`ServiceRules`] cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RulesError {
    ZeroDuration,
    DurationTooLong,
    ZeroStep,
    StepTooLong,
    HorizonTooLong,
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RulesError::ZeroDuration => "the service's duration must be at least one minute",
            RulesError::DurationTooLong => "the service's duration must be at most two days",
            RulesError::ZeroStep => "the slot step must be at least one minute",
            RulesError::StepTooLong => "the slot step must be at most one day",
            RulesError::HorizonTooLong => "bookings can open at most 3660 days ahead",
        })
    }
}

impl std::error::Error for RulesError {}

/// How a service is booked. All lengths are real (elapsed) minutes, except `slot_step_min`, which
/// counts local wall-clock minutes from the start of a working range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServiceRules {
    /// Length of the appointment itself.
    pub duration_min: u32,
    /// Time kept free before the appointment (preparation).
    pub buffer_before_min: u32,
    /// Time kept free after the appointment (clean-up).
    pub buffer_after_min: u32,
    /// A start must be at least this long after "now".
    pub min_notice_min: u32,
    /// A start may be at most this many 24-hour days after "now".
    pub horizon_days: u32,
    /// Offered starts are this many wall-clock minutes apart, counted from a range's start.
    pub slot_step_min: u32,
}

impl ServiceRules {
    /// The default step between offered starts.
    pub const DEFAULT_STEP_MIN: u32 = 15;
    /// The default horizon.
    pub const DEFAULT_HORIZON_DAYS: u32 = 90;

    /// A service of `duration_min` minutes, no buffers, no notice, a 90-day horizon and starts
    /// every 15 minutes.
    pub const fn new(duration_min: u32) -> Self {
        Self {
            duration_min,
            buffer_before_min: 0,
            buffer_after_min: 0,
            min_notice_min: 0,
            horizon_days: Self::DEFAULT_HORIZON_DAYS,
            slot_step_min: Self::DEFAULT_STEP_MIN,
        }
    }

    /// Checks the rules can be used (the engine offers nothing and refuses everything otherwise).
    pub const fn validate(&self) -> Result<(), RulesError> {
        if self.duration_min == 0 {
            Err(RulesError::ZeroDuration)
        } else if self.duration_min > MAX_DURATION_MIN {
            Err(RulesError::DurationTooLong)
        } else if self.slot_step_min == 0 {
            Err(RulesError::ZeroStep)
        } else if self.slot_step_min > MINUTES_PER_DAY as u32 {
            Err(RulesError::StepTooLong)
        } else if self.horizon_days > MAX_HORIZON_DAYS {
            Err(RulesError::HorizonTooLong)
        } else {
            Ok(())
        }
    }

    pub(crate) const fn duration_ms(&self) -> i64 {
        self.duration_min as i64 * 60_000
    }

    pub(crate) const fn buffer_before_ms(&self) -> i64 {
        self.buffer_before_min as i64 * 60_000
    }

    pub(crate) const fn buffer_after_ms(&self) -> i64 {
        self.buffer_after_min as i64 * 60_000
    }

    /// The earliest bookable start for `now_ms`.
    pub const fn earliest_ms(&self, now_ms: i64) -> i64 {
        now_ms.saturating_add(self.min_notice_min as i64 * 60_000)
    }

    /// The latest bookable start for `now_ms` (inclusive).
    pub const fn latest_ms(&self, now_ms: i64) -> i64 {
        now_ms.saturating_add(self.horizon_days as i64 * 86_400_000)
    }
}

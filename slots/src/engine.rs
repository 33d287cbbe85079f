//! The rules: which starts are offered, and whether a posted start can be booked.

use std::collections::BTreeMap;

use chrono::{Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike};

use crate::model::{
    Exception, Interval, LocalRange, ServiceRules, StaffCalendar, effective_ranges,
};
use crate::refusal::{Refusal, RefusalReason};
use crate::zone::{
    DAY_MS, MAX_INSTANT_MS, MIN_INSTANT_MS, MINUTE_MS, Offsets, in_domain, naive_of_wall, resolve,
    wall_ms, wall_of,
};

/// Sorts intervals and merges those that overlap or touch; drops empty ones.
pub(crate) fn merge_intervals(intervals: impl IntoIterator<Item = Interval>) -> Vec<Interval> {
    let mut v: Vec<Interval> = intervals.into_iter().filter(|i| !i.is_empty()).collect();
    v.sort_unstable();
    let mut out: Vec<Interval> = Vec::with_capacity(v.len());
    for i in v {
        match out.last_mut() {
            Some(last) if i.start_ms <= last.end_ms => last.end_ms = last.end_ms.max(i.end_ms),
            _ => out.push(i),
        }
    }
    out
}

/// True when `[a, b)` overlaps one of `sorted` (sorted, disjoint, as from [`merge_intervals`]).
pub(crate) fn overlaps_any(sorted: &[Interval], a: i64, b: i64) -> bool {
    if a >= b {
        return false;
    }
    let i = sorted.partition_point(|iv| iv.end_ms <= a);
    i < sorted.len() && sorted[i].start_ms < b
}

/// One staff member's calendar and bookings, indexed for repeated questions.
pub(crate) struct Prepared<'a> {
    pub(crate) cal: &'a StaffCalendar,
    /// Dates with a day-off or changed-day exception, and their ranges (empty when off).
    changed: BTreeMap<NaiveDate, Vec<LocalRange>>,
    time_off: Vec<Interval>,
    pub(crate) busy: Vec<Interval>,
}

impl<'a> Prepared<'a> {
    pub(crate) fn new(cal: &'a StaffCalendar, busy: &[Interval]) -> Self {
        let mut by_date: BTreeMap<NaiveDate, Vec<&Exception>> = BTreeMap::new();
        for e in &cal.exceptions {
            match e {
                Exception::DayOff(d) | Exception::ChangedDay { date: d, .. } => {
                    by_date.entry(*d).or_default().push(e)
                }
                Exception::TimeOff(_) => {}
            }
        }
        let changed = by_date
            .into_iter()
            .map(|(d, es)| {
                let ranges = effective_ranges(cal.weekly.ranges(d.weekday()), es.into_iter());
                (d, ranges)
            })
            .collect();
        let time_off = merge_intervals(cal.exceptions.iter().filter_map(|e| match e {
            Exception::TimeOff(i) => Some(*i),
            _ => None,
        }));
        Self {
            cal,
            changed,
            time_off,
            busy: merge_intervals(busy.iter().copied()),
        }
    }

    pub(crate) fn ranges_on(&self, date: NaiveDate) -> &[LocalRange] {
        match self.changed.get(&date) {
            Some(ranges) => ranges,
            None => self.cal.weekly.ranges(date.weekday()),
        }
    }

    /// Every rule except notice, horizon and domain, for a start `s` whose wall time is minute
    /// `minute` (plus `sub_minute_ms`) of local date `date`. `offsets` must cover
    /// `[s, s + duration]`.
    fn judge(
        &self,
        rules: &ServiceRules,
        offsets: &Offsets,
        s: i64,
        date: NaiveDate,
        minute: u32,
        sub_minute_ms: i64,
    ) -> Result<(), Refusal> {
        let name = self.cal.name.as_str();
        let refuse = |reason| Err(Refusal::new(reason, name, rules));
        let ranges = self.ranges_on(date);
        if ranges.is_empty() {
            return refuse(RefusalReason::NotWorkingThatDay);
        }
        let Some(range) = ranges.iter().find(|r| r.contains_minute(minute)) else {
            return refuse(RefusalReason::OutsideHours);
        };
        let e = s + rules.duration_ms();
        if overlaps_any(&self.time_off, s, e) {
            return refuse(RefusalReason::TimeOff);
        }
        if sub_minute_ms != 0
            || !(minute - u32::from(range.start_min())).is_multiple_of(rules.slot_step_min)
        {
            return refuse(RefusalReason::NotOnGrid);
        }
        let w0 = wall_of(date, u32::from(range.start_min()));
        let w1 = wall_of(date, u32::from(range.end_min()));
        if !offsets.fits(s, e, w0, w1) {
            return Err(Refusal::runs_past_end(name));
        }
        if overlaps_any(&self.busy, s, e) {
            return refuse(RefusalReason::Overlaps);
        }
        let before = s - rules.buffer_before_ms();
        let after = e + rules.buffer_after_ms();
        if overlaps_any(&self.busy, before, after) {
            return refuse(RefusalReason::InsideBuffer);
        }
        Ok(())
    }
}

/// The bookable start instants in `[from_ms, to_ms)`, ascending, each once.
///
/// A start `s` is bookable when: its local wall time (in `staff.tz`) is a whole minute inside one
/// of that local date's working ranges (weekly hours after exceptions), `slot_step_min` minutes
/// (or a multiple) after the range's start; every instant of the appointment
/// `[s, s + duration)` has a wall time inside that same range; the appointment overlaps no time
/// off and no busy interval; the buffered interval `[s - buffer_before, s + duration +
/// buffer_after)` overlaps no busy interval; and `now + min_notice <= s <= now + horizon`.
///
/// Wall times that do not exist (clocks going forward) are never offered; wall times that happen
/// twice (clocks going back) give two distinct instants, each offered if it is bookable.
/// Invalid `service` rules offer nothing.
pub fn available_starts(
    staff: &StaffCalendar,
    service: &ServiceRules,
    busy: &[Interval],
    from_ms: i64,
    to_ms: i64,
    now_ms: i64,
) -> Vec<i64> {
    if service.validate().is_err() {
        return Vec::new();
    }
    let lo = from_ms.max(service.earliest_ms(now_ms)).max(MIN_INSTANT_MS);
    let hi = to_ms
        .min(service.latest_ms(now_ms).saturating_add(1))
        .min(MAX_INSTANT_MS);
    if lo >= hi {
        return Vec::new();
    }
    let tz = staff.tz;
    let prep = Prepared::new(staff, busy);
    let offsets = Offsets::build(tz, lo - DAY_MS, hi + service.duration_ms() + DAY_MS);
    // Any instant's wall time is within 26 hours of any other instant's offset, so two days of
    // margin on each side finds every date an instant of [lo, hi) can fall on.
    let first = naive_of_wall(wall_ms(tz, lo)).date() - Days::new(2);
    let last = naive_of_wall(wall_ms(tz, hi - 1)).date() + Days::new(2);
    let step = service.slot_step_min as usize;
    let mut out = Vec::new();
    for date in first.iter_days().take_while(|d| *d <= last) {
        for range in prep.ranges_on(date) {
            for minute in (u32::from(range.start_min())..u32::from(range.end_min())).step_by(step) {
                for s in resolve(tz, date, minute).instants() {
                    if (lo..hi).contains(&s)
                        && prep.judge(service, &offsets, s, date, minute, 0).is_ok()
                    {
                        out.push(s);
                    }
                }
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Whether the start instant `start_ms` (posted by a client) can be booked: the same rules as
/// [`available_starts`], so `check_start(..).is_ok()` exactly when `available_starts` over any
/// window containing `start_ms` offers it. Refusals say why, in the order documented on
/// [`RefusalReason`].
///
/// An instant always has a wall time, so this never answers `InDstGap`; a local date and time
/// typed by a person is checked with [`check_local_start`].
pub fn check_start(
    staff: &StaffCalendar,
    service: &ServiceRules,
    busy: &[Interval],
    start_ms: i64,
    now_ms: i64,
) -> Result<(), Refusal> {
    let refuse = |reason| Err(Refusal::new(reason, &staff.name, service));
    if let Err(e) = service.validate() {
        return refuse(RefusalReason::InvalidRules(e));
    }
    if start_ms < service.earliest_ms(now_ms) {
        return refuse(RefusalReason::TooSoon);
    }
    if start_ms > service.latest_ms(now_ms) {
        return refuse(RefusalReason::TooFarAhead);
    }
    if !in_domain(start_ms) {
        return refuse(RefusalReason::OutsideHours);
    }
    let wall = wall_ms(staff.tz, start_ms);
    let naive = naive_of_wall(wall);
    let minute = naive.hour() * 60 + naive.minute();
    let sub_minute = wall.rem_euclid(MINUTE_MS);
    let prep = Prepared::new(staff, busy);
    let offsets = Offsets::build(staff.tz, start_ms, start_ms + service.duration_ms());
    prep.judge(
        service,
        &offsets,
        start_ms,
        naive.date(),
        minute,
        sub_minute,
    )
}

/// Which of the two instants of a repeated local time (clocks going back) is meant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Occurrence {
    /// The first time the clock shows it (still on summer time).
    Earlier,
    /// The second time (after the clocks went back).
    Later,
}

/// Checks a start given as a local date and time in the staff member's zone (a form without
/// JavaScript posts this), and returns its instant when it can be booked.
///
/// A local time in a gap (clocks going forward) is refused with `InDstGap`. A local time that
/// happens twice needs `occurrence`; without it the answer is `AmbiguousLocalTime`. Otherwise the
/// instant is checked with [`check_start`].
pub fn check_local_start(
    staff: &StaffCalendar,
    service: &ServiceRules,
    busy: &[Interval],
    local: NaiveDateTime,
    occurrence: Option<Occurrence>,
    now_ms: i64,
) -> Result<i64, Refusal> {
    let refuse = |reason| Err(Refusal::new(reason, &staff.name, service));
    if let Err(e) = service.validate() {
        return refuse(RefusalReason::InvalidRules(e));
    }
    let start_ms = match staff.tz.from_local_datetime(&local) {
        LocalResult::None => return refuse(RefusalReason::InDstGap),
        LocalResult::Single(dt) => dt.timestamp_millis(),
        LocalResult::Ambiguous(a, b) => {
            let (a, b) = (a.timestamp_millis(), b.timestamp_millis());
            match occurrence {
                None => return refuse(RefusalReason::AmbiguousLocalTime),
                Some(Occurrence::Earlier) => a.min(b),
                Some(Occurrence::Later) => a.max(b),
            }
        }
    };
    check_start(staff, service, busy, start_ms, now_ms).map(|()| start_ms)
}

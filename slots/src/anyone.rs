//! "Anyone": the starts at which at least one of several staff members is free, and who gets it.
//!
//! The choice is deterministic and depends only on the start, never on the window asked for, so
//! the staff member offered for a start is the one [`check_start_any`] picks when it is posted
//! (as long as nothing changed meanwhile): among the staff free at the start, the one with the
//! least busy time on their local day of the start; on a tie, the smallest id; on a tie again (the
//! same id twice), the first in the slice.

use std::collections::{BTreeMap, HashMap};

use chrono::{Days, NaiveDate};

use crate::engine::{Prepared, available_starts, check_start};
use crate::model::{Interval, ServiceRules, StaffCalendar, StaffId};
use crate::refusal::{Refusal, RefusalReason};
use crate::zone::{DAY_MS, Offsets, in_domain, naive_of_wall, wall_ms, wall_of};

/// One staff member taking part in an "anyone" question: their calendar and their busy
/// intervals (bookings and holds, buffers included).
#[derive(Clone, Copy, Debug)]
pub struct StaffBusy<'a> {
    pub calendar: &'a StaffCalendar,
    pub busy: &'a [Interval],
}

/// Busy milliseconds on the local date `date` of a staff member (from the first instant whose
/// wall time is on or after that date to the first on or after the next date).
fn busy_on_local_day(prep: &Prepared<'_>, date: NaiveDate, near_ms: i64) -> i64 {
    let tz = prep.cal.tz;
    let from = near_ms.saturating_sub(2 * DAY_MS);
    let offsets = Offsets::build(tz, from, near_ms.saturating_add(2 * DAY_MS));
    let start = offsets.first_at_or_after_wall(from, wall_of(date, 0));
    let end = offsets.first_at_or_after_wall(start, wall_of(date + Days::new(1), 0));
    // Saturating: busy intervals may reach the ends of time (found by the `slots` fuzz target).
    prep.busy
        .iter()
        .map(|b| {
            b.end_ms
                .min(end)
                .saturating_sub(b.start_ms.max(start))
                .max(0)
        })
        .fold(0i64, i64::saturating_add)
}

/// The local date of instant `s` for a staff member.
fn local_date(prep: &Prepared<'_>, s: i64) -> NaiveDate {
    naive_of_wall(wall_ms(prep.cal.tz, s)).date()
}

/// Picks among `candidates` (indices into `preps`, all free at `s`) by the rule in the module
/// documentation. `cache` remembers each staff member's load per local date.
fn choose(
    preps: &[Prepared<'_>],
    candidates: &[usize],
    s: i64,
    cache: &mut HashMap<(usize, NaiveDate), i64>,
) -> usize {
    if let [only] = candidates {
        return *only;
    }
    candidates
        .iter()
        .copied()
        .min_by_key(|&i| {
            let prep = &preps[i];
            let date = local_date(prep, s);
            let load = *cache
                .entry((i, date))
                .or_insert_with(|| busy_on_local_day(prep, date, s));
            (load, prep.cal.id, i)
        })
        .expect("at least one candidate")
}

/// The bookable starts in `[from_ms, to_ms)` across several staff members, ascending, each start
/// once, with the staff member chosen for it (see the module documentation for the rule).
pub fn available_starts_any(
    staff: &[StaffBusy<'_>],
    service: &ServiceRules,
    from_ms: i64,
    to_ms: i64,
    now_ms: i64,
) -> Vec<(i64, StaffId)> {
    let mut by_start: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, member) in staff.iter().enumerate() {
        for s in available_starts(
            member.calendar,
            service,
            member.busy,
            from_ms,
            to_ms,
            now_ms,
        ) {
            by_start.entry(s).or_default().push(i);
        }
    }
    let preps: Vec<Prepared<'_>> = staff
        .iter()
        .map(|m| Prepared::new(m.calendar, m.busy))
        .collect();
    let mut cache = HashMap::new();
    by_start
        .into_iter()
        .map(|(s, candidates)| {
            let i = choose(&preps, &candidates, s, &mut cache);
            (s, staff[i].calendar.id)
        })
        .collect()
}

/// Checks a start posted for "anyone" and returns the staff member who gets it (the same one
/// [`available_starts_any`] offered). When nobody can take it, the refusal is the common one
/// when every staff member was refused for the same service-wide reason (too soon, too far
/// ahead, invalid rules), and `NoStaffAvailable` otherwise.
pub fn check_start_any(
    staff: &[StaffBusy<'_>],
    service: &ServiceRules,
    start_ms: i64,
    now_ms: i64,
) -> Result<StaffId, Refusal> {
    let mut free = Vec::new();
    let mut refusals = Vec::new();
    for (i, member) in staff.iter().enumerate() {
        match check_start(member.calendar, service, member.busy, start_ms, now_ms) {
            Ok(()) => free.push(i),
            Err(r) => refusals.push(r),
        }
    }
    if !free.is_empty() && in_domain(start_ms) {
        let preps: Vec<Prepared<'_>> = staff
            .iter()
            .map(|m| Prepared::new(m.calendar, m.busy))
            .collect();
        let i = choose(&preps, &free, start_ms, &mut HashMap::new());
        return Ok(staff[i].calendar.id);
    }
    let service_wide = |r: &RefusalReason| {
        matches!(
            r,
            RefusalReason::TooSoon | RefusalReason::TooFarAhead | RefusalReason::InvalidRules(_)
        )
    };
    match refusals.first() {
        Some(first)
            if service_wide(&first.reason) && refusals.iter().all(|r| r.reason == first.reason) =>
        {
            Err(first.clone())
        }
        _ => Err(Refusal::new(RefusalReason::NoStaffAvailable, "", service)),
    }
}

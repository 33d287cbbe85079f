//! Events to busy intervals inside a window: masters expanded ([`super::recur`]), RDATEs
//! added, EXDATEs removed, overrides (RECURRENCE-ID) put in place of the instances they
//! replace, and cancelled ones dropped. Instances are computed in the event's wall time and
//! converted one by one, so the UTC times move across DST changes and the local ones do not.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{Days, NaiveDate, TimeDelta};

use super::recur::{Bounds, Stop, occurrences};
use super::{
    DateOrTime, Event, EventStatus, IcalDuration, MAX_INSTANCES, PeriodEnd, RDate, TzResolver, Zone,
};

/// The most candidate instants (and rule periods) one [`expand`] call looks at, over all
/// events: a fixed cost for rules that match rarely or never.
pub const MAX_WORK: u64 = 2_000_000;
/// The most TZIDs or UIDs listed in an [`Expansion`]'s reports.
const MAX_REPORTED: usize = 100;
const DAY_MS: i64 = 86_400_000;

/// One busy (or shown-but-free) stretch of time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusyInterval {
    pub uid: String,
    /// Unix milliseconds, end exclusive.
    pub start_ms: i64,
    pub end_ms: i64,
    /// For an instance of a recurring event: its original start (what a RECURRENCE-ID, a
    /// Google `originalStartTime` or an EXDATE names). `None` for a single event.
    pub recurrence_id_ms: Option<i64>,
    /// A DATE event: whole days in the floating zone.
    pub all_day: bool,
    /// `STATUS:TENTATIVE`.
    pub tentative: bool,
    /// `TRANSP:TRANSPARENT`: in the calendar, but free time.
    pub transparent: bool,
    /// Comes from an override (a moved or changed instance).
    pub overridden: bool,
    /// Its zone is a guess ([`super::Resolution::guessed`]).
    pub zone_guessed: bool,
    pub summary: Option<String>,
}

impl BusyInterval {
    /// Whether it blocks time (not transparent; cancelled instances are never returned).
    pub fn busy(&self) -> bool {
        !self.transparent
    }
}

/// [`expand_report`]'s answer: the intervals and what to log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expansion {
    /// Sorted by start, then end, then UID.
    pub intervals: Vec<BusyInterval>,
    /// [`MAX_INSTANCES`] or [`MAX_WORK`] was reached: some instances are missing (narrow the
    /// window).
    pub capped: bool,
    /// TZIDs read as a fixed offset or UTC ([`super::Resolution::unknown`]).
    pub unknown_tzids: Vec<String>,
    /// UIDs whose RRULE is not expanded (HOURLY and finer, BYWEEKNO): only their first
    /// instance and RDATEs are in.
    pub unsupported: Vec<String>,
}

/// The busy intervals of `events` that overlap `[window_start_ms, window_end_ms)`. See
/// [`expand_report`], which also says what was capped or guessed.
pub fn expand(
    events: &[Event],
    window_start_ms: i64,
    window_end_ms: i64,
    tz: &TzResolver,
) -> Vec<BusyInterval> {
    expand_report(events, window_start_ms, window_end_ms, tz).intervals
}

/// How long an instance lasts.
#[derive(Clone, Copy)]
enum Span {
    /// Exact milliseconds (DTEND − DTSTART of DATE-TIMEs).
    Exact(i64),
    /// Nominal days (in local time) plus exact seconds (a DURATION, or all-day DTENDs).
    Nominal(IcalDuration),
}

impl Span {
    /// An upper bound in milliseconds, for how far back to look.
    fn max_ms(self) -> i64 {
        match self {
            Span::Exact(ms) => ms,
            Span::Nominal(d) => d
                .days
                .saturating_add(1)
                .saturating_mul(DAY_MS)
                .saturating_add(d.seconds.saturating_mul(1000)),
        }
    }

    fn end(self, zone: &Zone, start_ms: i64) -> Option<i64> {
        match self {
            Span::Exact(ms) => start_ms.checked_add(ms),
            Span::Nominal(d) => {
                let local = zone.to_local(start_ms)?;
                let shifted = local.checked_add_signed(TimeDelta::try_days(d.days)?)?;
                zone.to_utc_ms(shifted)?
                    .checked_add(d.seconds.checked_mul(1000)?)
            }
        }
        .map(|end| end.max(start_ms))
    }
}

struct Ctx<'a> {
    tz: &'a TzResolver,
    ws: i64,
    we: i64,
    budget: u64,
    out: Expansion,
    unknown: BTreeSet<String>,
}

impl Ctx<'_> {
    fn zone_of(&mut self, v: &DateOrTime) -> (Zone, bool) {
        match v {
            DateOrTime::Date(_) | DateOrTime::Floating(_) => (self.tz.floating(), false),
            DateOrTime::Utc(_) => (Zone::utc(), false),
            DateOrTime::Zoned { tzid, .. } => {
                let r = self.tz.resolve(tzid);
                if r.unknown() && self.unknown.len() < MAX_REPORTED {
                    self.unknown.insert(tzid.chars().take(200).collect());
                }
                (r.zone, r.guessed())
            }
        }
    }

    fn ms_of(&mut self, v: &DateOrTime) -> Option<i64> {
        let (zone, _) = self.zone_of(v);
        zone.to_utc_ms(v.local())
    }

    fn overlaps(&self, start: i64, end: i64) -> bool {
        start < self.we && (end > self.ws || (end == start && start >= self.ws))
    }

    /// Adds an interval; `false` once [`MAX_INSTANCES`] is reached.
    fn push(&mut self, iv: BusyInterval) -> bool {
        if self.out.intervals.len() >= MAX_INSTANCES {
            self.out.capped = true;
            return false;
        }
        self.out.intervals.push(iv);
        true
    }

    fn span_of(&mut self, ev: &Event) -> Span {
        let Some(start) = &ev.dtstart else {
            return Span::Exact(0);
        };
        if let Some(end) = &ev.dtend {
            if let (DateOrTime::Date(s), DateOrTime::Date(e)) = (start, end) {
                return Span::Nominal(IcalDuration {
                    days: (*e - *s).num_days().max(0),
                    seconds: 0,
                });
            }
            let ms = match (self.ms_of(start), self.ms_of(end)) {
                (Some(s), Some(e)) => e.saturating_sub(s).max(0),
                _ => 0,
            };
            return Span::Exact(ms);
        }
        match ev.duration {
            Some(d) if d.days >= 0 && d.seconds >= 0 => Span::Nominal(d),
            Some(_) => Span::Exact(0),
            None if start.is_date() => Span::Nominal(IcalDuration {
                days: 1,
                seconds: 0,
            }),
            None => Span::Exact(0),
        }
    }

    fn interval(
        &self,
        ev: &Event,
        start_ms: i64,
        end_ms: i64,
        rid: Option<i64>,
        guessed: bool,
    ) -> BusyInterval {
        BusyInterval {
            uid: ev.uid.clone(),
            start_ms,
            end_ms,
            recurrence_id_ms: rid,
            all_day: ev.dtstart.as_ref().is_some_and(DateOrTime::is_date),
            tentative: ev.status == EventStatus::Tentative,
            transparent: ev.transparent,
            overridden: ev.recurrence_id.is_some(),
            zone_guessed: guessed,
            summary: ev.summary.clone(),
        }
    }

    /// A master's instances (rule, DTSTART and RDATEs), less EXDATEs and overridden ones.
    fn expand_master(&mut self, ev: &Event, overridden: &HashSet<i64>) -> bool {
        let Some(dtstart) = ev.dtstart.clone() else {
            return true;
        };
        let (zone, guessed) = self.zone_of(&dtstart);
        let span = self.span_of(ev);
        let all_day = dtstart.is_date();
        let mut ex_ms: HashSet<i64> = HashSet::new();
        let mut ex_dates: HashSet<NaiveDate> = HashSet::new();
        for x in &ev.exdates {
            match x {
                DateOrTime::Date(d) if !all_day => {
                    ex_dates.insert(*d);
                }
                other => {
                    if let Some(ms) = self.ms_of(other) {
                        ex_ms.insert(ms);
                    }
                }
            }
        }
        let recurring = ev.rrule.is_some() || !ev.rdates.is_empty();
        let mut seen: HashSet<i64> = HashSet::new();
        let keep = |ms: i64, seen: &mut HashSet<i64>| -> bool {
            if ex_ms.contains(&ms) || overridden.contains(&ms) || !seen.insert(ms) {
                return false;
            }
            if ex_dates.is_empty() {
                return true;
            }
            zone.to_local(ms)
                .is_none_or(|l| !ex_dates.contains(&l.date()))
        };

        let mut go_on = true;
        match &ev.rrule {
            Some(rule) => {
                if !rule.supported() && self.out.unsupported.len() < MAX_REPORTED {
                    self.out.unsupported.push(ev.uid.clone());
                }
                let until = rule.until.clone();
                let past_until = move |t: chrono::NaiveDateTime| -> bool {
                    match &until {
                        None => false,
                        Some(DateOrTime::Date(d)) if all_day => t.date() > *d,
                        Some(DateOrTime::Utc(u)) => zone
                            .to_utc_ms(t)
                            .is_some_and(|ms| ms > u.and_utc().timestamp_millis()),
                        Some(other) => t > other.local(),
                    }
                };
                let back = span.max_ms().saturating_add(2 * DAY_MS);
                let skip_to = zone
                    .to_local(self.ws.saturating_sub(back))
                    .map(|l| l.date());
                let stop_after = zone
                    .to_local(self.we)
                    .and_then(|l| l.checked_add_days(Days::new(1)))
                    .unwrap_or(chrono::NaiveDateTime::MAX);
                let mut budget = self.budget;
                let mut found: Vec<i64> = Vec::new();
                let (ws, longest) = (self.ws, span.max_ms());
                let stop = {
                    let mut emit = |t: chrono::NaiveDateTime| -> bool {
                        if let Some(ms) = zone.to_utc_ms(t) {
                            // Instances ending before the window (a COUNT rule walks from its
                            // start) are not kept; more than this many inside it cannot all be
                            // returned anyway.
                            if ms.saturating_add(longest) < ws {
                                return true;
                            }
                            found.push(ms);
                            if found.len() >= 4 * MAX_INSTANCES {
                                return false;
                            }
                        }
                        true
                    };
                    occurrences(
                        rule,
                        dtstart.local(),
                        Bounds {
                            skip_to,
                            stop_after,
                            past_until: &past_until,
                            budget: &mut budget,
                        },
                        &mut emit,
                    )
                };
                self.budget = budget;
                if stop == Stop::Capped {
                    self.out.capped = true;
                }
                for ms in found {
                    if !keep(ms, &mut seen) {
                        continue;
                    }
                    let Some(end) = span.end(&zone, ms) else {
                        continue;
                    };
                    if self.overlaps(ms, end) {
                        let iv = self.interval(ev, ms, end, Some(ms), guessed);
                        if !self.push(iv) {
                            go_on = false;
                            break;
                        }
                    }
                }
            }
            None => {
                if let Some(ms) = zone.to_utc_ms(dtstart.local())
                    && keep(ms, &mut seen)
                    && let Some(end) = span.end(&zone, ms)
                    && self.overlaps(ms, end)
                {
                    let iv = self.interval(ev, ms, end, recurring.then_some(ms), guessed);
                    go_on = self.push(iv);
                }
            }
        }
        if !go_on {
            return false;
        }
        for rdate in &ev.rdates {
            let (start, end) = match rdate {
                RDate::At(v) => {
                    let Some(s) = self.ms_of(v) else { continue };
                    (s, span.end(&zone, s))
                }
                RDate::Period { start, end } => {
                    let Some(s) = self.ms_of(start) else { continue };
                    let e = match end {
                        PeriodEnd::At(v) => self.ms_of(v).map(|e| e.max(s)),
                        PeriodEnd::After(d) => Span::Nominal(*d).end(&zone, s),
                    };
                    (s, e)
                }
            };
            let Some(end) = end else { continue };
            if keep(start, &mut seen) && self.overlaps(start, end) {
                let iv = self.interval(ev, start, end, Some(start), guessed);
                if !self.push(iv) {
                    return false;
                }
            }
        }
        true
    }

    /// An override's own interval (its DTSTART, and its DTEND or DURATION, or the master's
    /// length when it has neither).
    fn expand_override(&mut self, ev: &Event, rid_ms: i64, master_span: Option<Span>) -> bool {
        if ev.status == EventStatus::Cancelled {
            return true;
        }
        let Some(dtstart) = ev.dtstart.clone() else {
            return true;
        };
        let (zone, guessed) = self.zone_of(&dtstart);
        let span = match (&ev.dtend, ev.duration, master_span) {
            (None, None, Some(s)) => s,
            _ => self.span_of(ev),
        };
        let Some(start) = zone.to_utc_ms(dtstart.local()) else {
            return true;
        };
        let Some(end) = span.end(&zone, start) else {
            return true;
        };
        if self.overlaps(start, end) {
            let iv = self.interval(ev, start, end, Some(rid_ms), guessed);
            return self.push(iv);
        }
        true
    }
}

/// The events of one UID.
#[derive(Default)]
struct Group {
    master: Option<usize>,
    overrides: Vec<usize>,
}

/// Expands `events` (the VEVENTs of one or more calendar resources; masters and overrides are
/// matched by UID) into the intervals overlapping `[window_start_ms, window_end_ms)`:
///
/// - a master's instances are its DTSTART, its RRULE's occurrences and its RDATEs, less its
///   EXDATEs and the instances an override replaces; a cancelled master gives none;
/// - an override (RECURRENCE-ID) stands in for the instance it names, wherever it moved to
///   (into or out of the window); a cancelled override removes the instance;
/// - of two masters, or two overrides of the same instance, the higher SEQUENCE wins (the
///   later one on a tie);
/// - all-day (DATE) events cover whole days in the resolver's floating zone.
///
/// An endless rule stops at the window's end; at most [`MAX_INSTANCES`] intervals are returned
/// and [`MAX_WORK`] candidates looked at, and [`Expansion::capped`] tells when either ran out.
/// An empty or inverted window gives nothing.
pub fn expand_report(
    events: &[Event],
    window_start_ms: i64,
    window_end_ms: i64,
    tz: &TzResolver,
) -> Expansion {
    let mut ctx = Ctx {
        tz,
        ws: window_start_ms,
        we: window_end_ms,
        budget: MAX_WORK,
        out: Expansion::default(),
        unknown: BTreeSet::new(),
    };
    if window_start_ms >= window_end_ms {
        return ctx.out;
    }
    let mut groups: BTreeMap<&str, Group> = BTreeMap::new();
    let mut loners: Vec<usize> = Vec::new();
    for (i, ev) in events.iter().enumerate() {
        if ev.uid.is_empty() {
            loners.push(i);
            continue;
        }
        let g = groups.entry(ev.uid.as_str()).or_default();
        if ev.recurrence_id.is_some() {
            g.overrides.push(i);
        } else {
            let better = match g.master {
                Some(m) => ev.sequence >= events[m].sequence,
                None => true,
            };
            if better {
                g.master = Some(i);
            }
        }
    }
    'groups: for g in groups.values() {
        // The override of each instance, by its RECURRENCE-ID instant.
        let mut chosen: BTreeMap<i64, usize> = BTreeMap::new();
        for &i in &g.overrides {
            let Some(rid) = events[i].recurrence_id.as_ref() else {
                continue;
            };
            let Some(ms) = ctx.ms_of(rid) else { continue };
            let better = match chosen.get(&ms) {
                Some(&j) => events[i].sequence >= events[j].sequence,
                None => true,
            };
            if better {
                chosen.insert(ms, i);
            }
        }
        let overridden: HashSet<i64> = chosen.keys().copied().collect();
        let mut master_span = None;
        if let Some(m) = g.master {
            let master = &events[m];
            master_span = Some(ctx.span_of(master));
            if master.status != EventStatus::Cancelled && !ctx.expand_master(master, &overridden) {
                break 'groups;
            }
        }
        for (&rid, &i) in &chosen {
            if !ctx.expand_override(&events[i], rid, master_span) {
                break 'groups;
            }
        }
    }
    for &i in &loners {
        if events[i].status == EventStatus::Cancelled {
            continue;
        }
        let ok = if events[i].recurrence_id.is_some() {
            match events[i].recurrence_id.as_ref().and_then(|r| ctx.ms_of(r)) {
                Some(rid) => ctx.expand_override(&events[i], rid, None),
                None => true,
            }
        } else {
            ctx.expand_master(&events[i], &HashSet::new())
        };
        if !ok {
            break;
        }
    }
    let mut out = ctx.out;
    out.unknown_tzids = ctx.unknown.into_iter().collect();
    out.intervals
        .sort_by(|a, b| (a.start_ms, a.end_ms, &a.uid).cmp(&(b.start_ms, b.end_ms, &b.uid)));
    out
}

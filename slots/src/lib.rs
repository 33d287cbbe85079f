//! # Stoep's slot engine
//!
//! Works out when a customer can book a service with a member of staff, and re-checks a start a
//! client posts (the server never trusts the client's list). Pure functions over plain values:
//! no I/O, no clock (the caller passes `now_ms`), no async.
//!
//! ## The model
//!
//! Every instant is an `i64` of milliseconds since the Unix epoch (UTC), as everywhere in Stoep.
//!
//! - A [`StaffCalendar`] holds a staff member's IANA zone ([`chrono_tz::Tz`]), their
//!   [`WeeklyHours`] (per weekday, ranges of **local wall-clock** time such as 09:00-12:00 and
//!   13:00-17:00) and their [`Exception`]s: a day off on a local date, a changed day (other ranges
//!   on a local date), or time off given as absolute instants.
//! - Busy intervals ([`Interval`], half-open `[start_ms, end_ms)`) are the existing bookings and
//!   holds of that staff member, **with their buffers already included**.
//! - [`ServiceRules`] give the appointment's duration, the buffers kept free before and after
//!   it, the minimum notice, the horizon and the step between offered starts.
//!
//! A start instant `s` is bookable when all of these hold:
//!
//! 1. `now + min_notice <= s <= now + horizon_days * 24h`;
//! 2. the wall time of `s` in the staff member's zone is a whole minute inside a working range
//!    of that local date (weekly hours, replaced by a changed day, emptied by a day off; ranges
//!    that overlap or touch are merged), a multiple of `slot_step_min` wall-clock minutes after
//!    the range's start (the slot grid);
//! 3. every instant of the appointment `[s, s + duration)` has a wall time inside that same
//!    range on that same date (so an appointment never runs past the range's end, nor from one
//!    day's range into the next day's);
//! 4. the appointment overlaps no time off and no busy interval;
//! 5. the buffered interval `[s - buffer_before, s + duration + buffer_after)` overlaps no busy
//!    interval. Buffers may run outside working hours and over time off: they are the staff
//!    member's own preparation time, not the customer's.
//!
//! [`available_starts`] lists the bookable starts of a window; [`check_start`] answers for one
//! start, with a [`Refusal`] (a [`RefusalReason`] and a plain-English message) when it is not
//! bookable. They share one implementation, so a start is offered exactly when it passes
//! [`check_start`]. [`available_starts_any`] and [`check_start_any`] do the same for "anyone"
//! over several staff members, choosing the staff member deterministically (see [`anyone`]).
//!
//! ## Daylight saving time
//!
//! Durations, buffers, notice and horizon are real elapsed time; working ranges and the slot grid
//! are wall-clock time in the staff member's zone. Where the two meet:
//!
//! - **Gaps** (clocks going forward): a wall time that does not exist is never offered, and a
//!   posted local date-time inside a gap is refused with [`RefusalReason::InDstGap`]
//!   ([`check_local_start`]). A range 00:00-04:00 on Europe/London's 2027-03-28 offers
//!   00:00-00:45 and 02:00-03:30; a 30-minute appointment at 00:45 GMT ends at 02:15 BST and is
//!   inside the range throughout. (An instant always has a wall time, so [`check_start`], which
//!   takes instants, never answers `InDstGap`.)
//! - **Repeats** (clocks going back): a wall time that happens twice is two distinct instants;
//!   each is offered if it is bookable, and no instant is ever offered twice. A posted local
//!   date-time in a repeat needs an [`Occurrence`] (earlier or later), or it is refused with
//!   [`RefusalReason::AmbiguousLocalTime`]. Because membership of a range is judged by wall
//!   time, a range 01:00-02:00 on Europe/London's 2027-10-31 holds two real hours, and a
//!   60-minute appointment at 01:30 BST (ending 01:30 GMT) lies inside it.
//! - Wall times are resolved with chrono-tz (`LocalResult::None` for a gap,
//!   `LocalResult::Ambiguous` for a repeat). Whether an appointment stays inside its range is
//!   judged piece by piece between the zone's offset changes, which the engine finds by sampling
//!   the offset hourly and bisecting; this assumes two offset changes are never less than an
//!   hour apart, true of every zone in the tz database in modern times. Zones with 30-minute
//!   (Australia/Lord_Howe) or 45-minute offsets (Pacific/Chatham) need nothing special.
//! - chrono-tz carries DST rules up to about 2100; instants are accepted from year 1 to 9998.
//!
//! ## ICS
//!
//! [`ics_utc`] writes an instant as an ICS UTC date-time (`YYYYMMDDTHHMMSSZ`) and
//! [`parse_ics_utc`] reads it back; starts are whole minutes, so they round-trip exactly.
//!
//! ## Example
//!
//! ```
//! use chrono::Weekday;
//! use slots::{LocalRange, ServiceRules, StaffCalendar, WeeklyHours, available_starts};
//!
//! let hours = WeeklyHours::new().with(Weekday::Mon, [LocalRange::parse("09:00-10:00").unwrap()]);
//! let thandi = StaffCalendar::new(7, "Thandi", chrono_tz::Africa::Johannesburg, hours);
//! let service = ServiceRules { slot_step_min: 30, ..ServiceRules::new(30) };
//! // Monday 2026-11-30 00:00 SAST is 2026-11-29T22:00Z.
//! let monday = slots::parse_ics_utc("20261129T220000Z").unwrap();
//! let now = monday - 86_400_000;
//! let starts = available_starts(&thandi, &service, &[], monday, monday + 86_400_000, now);
//! let shown: Vec<String> = starts.iter().map(|&s| slots::ics_utc(s)).collect();
//! assert_eq!(shown, ["20261130T070000Z", "20261130T073000Z"]);
//! ```

pub mod anyone;
mod engine;
mod ics;
mod model;
mod refusal;
mod zone;

#[cfg(test)]
mod tests;

pub use anyone::{StaffBusy, available_starts_any, check_start_any};
pub use engine::{Occurrence, available_starts, check_local_start, check_start};
pub use ics::{ICS_MAX_MS, ICS_MIN_MS, IcsError, ics_utc, parse_ics_utc, try_ics_utc};
pub use model::{
    Exception, Interval, LocalRange, MAX_DURATION_MIN, MAX_HORIZON_DAYS, MINUTES_PER_DAY,
    RangeError, RulesError, ServiceRules, StaffCalendar, StaffId, WeeklyHours, normalize_ranges,
};
pub use refusal::{Refusal, RefusalReason};

/// The chrono version the engine uses, for callers building dates and weekdays.
pub use chrono;
/// The zone type, re-exported so callers need not depend on chrono-tz to name it.
pub use chrono_tz::Tz;

//! Why a start was refused, with a message a customer can read.

use std::fmt;

use crate::model::{RulesError, ServiceRules};

/// The reason a start cannot be booked. When several apply, [`crate::check_start`] reports the
/// first in this order: `InvalidRules`, `TooSoon`, `TooFarAhead`, `NotWorkingThatDay`,
/// `OutsideHours` (start outside every range), `TimeOff`, `NotOnGrid`, `OutsideHours` (runs past
/// the range's end), `Overlaps`, `InsideBuffer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// Before `now + min_notice` (including starts in the past).
    TooSoon,
    /// After `now + horizon`.
    TooFarAhead,
    /// No working range at all on that local date (weekly day off, or a day-off exception).
    NotWorkingThatDay,
    /// The appointment does not lie wholly inside one working range of that local day.
    OutsideHours,
    /// The appointment overlaps the staff member's time off.
    TimeOff,
    /// The start is not on the slot grid (`slot_step_min` wall-clock minutes from the range's
    /// start, on a whole minute).
    NotOnGrid,
    /// The appointment itself overlaps an existing booking or hold.
    Overlaps,
    /// The appointment is clear, but its buffers overlap an existing booking or hold.
    InsideBuffer,
    /// The local time posted does not exist: the clocks jump over it (spring forward).
    InDstGap,
    /// The local time posted happens twice (fall back) and the caller did not say which.
    AmbiguousLocalTime,
    /// "Anyone": no staff member can take this start.
    NoStaffAvailable,
    /// The service's rules cannot be used (a configuration error, not the customer's).
    InvalidRules(RulesError),
}

impl RefusalReason {
    /// A stable snake_case code for logs and APIs.
    pub const fn code(&self) -> &'static str {
        match self {
            RefusalReason::TooSoon => "too_soon",
            RefusalReason::TooFarAhead => "too_far_ahead",
            RefusalReason::NotWorkingThatDay => "not_working_that_day",
            RefusalReason::OutsideHours => "outside_hours",
            RefusalReason::TimeOff => "time_off",
            RefusalReason::NotOnGrid => "not_on_grid",
            RefusalReason::Overlaps => "overlaps",
            RefusalReason::InsideBuffer => "inside_buffer",
            RefusalReason::InDstGap => "in_dst_gap",
            RefusalReason::AmbiguousLocalTime => "ambiguous_local_time",
            RefusalReason::NoStaffAvailable => "no_staff_available",
            RefusalReason::InvalidRules(_) => "invalid_rules",
        }
    }
}

/// A refused start: the reason, for code, and a plain-English message, for the customer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: RefusalReason,
    pub message: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refusal {}

/// "2 hours", "1 hour 30 minutes", "1 day", "45 minutes".
pub(crate) fn human_minutes(minutes: u32) -> String {
    fn unit(n: u32, one: &str) -> String {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    }
    let (d, h, m) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    let mut parts = Vec::new();
    if d > 0 {
        parts.push(unit(d, "day"));
    }
    if h > 0 {
        parts.push(unit(h, "hour"));
    }
    if m > 0 || parts.is_empty() {
        parts.push(unit(m, "minute"));
    }
    parts.join(" ")
}

fn possessive(name: &str) -> String {
    let name = name.trim();
    if name.is_empty() {
        "this staff member's".to_owned()
    } else {
        format!("{name}'s")
    }
}

fn subject(name: &str) -> String {
    let name = name.trim();
    if name.is_empty() {
        "This staff member".to_owned()
    } else {
        name.to_owned()
    }
}

impl Refusal {
    pub(crate) fn new(reason: RefusalReason, staff_name: &str, rules: &ServiceRules) -> Self {
        let message = match reason {
            RefusalReason::TooSoon if rules.min_notice_min == 0 => {
                "That time has already passed.".to_owned()
            }
            RefusalReason::TooSoon => format!(
                "That time is too soon: bookings need at least {} notice.",
                human_minutes(rules.min_notice_min)
            ),
            RefusalReason::TooFarAhead if rules.horizon_days == 0 => {
                "That time is too far ahead.".to_owned()
            }
            RefusalReason::TooFarAhead => format!(
                "That time is too far ahead: bookings open {} in advance.",
                if rules.horizon_days == 1 {
                    "1 day".to_owned()
                } else {
                    format!("{} days", rules.horizon_days)
                }
            ),
            RefusalReason::NotWorkingThatDay => {
                format!("{} isn't working on that day.", subject(staff_name))
            }
            RefusalReason::OutsideHours => format!(
                "That time is outside {} working hours.",
                possessive(staff_name)
            ),
            RefusalReason::TimeOff => format!("{} is away at that time.", subject(staff_name)),
            RefusalReason::NotOnGrid => format!(
                "That isn't one of the offered start times: appointments start every {}.",
                human_minutes(rules.slot_step_min)
            ),
            RefusalReason::Overlaps => {
                format!("{} is already booked at that time.", subject(staff_name))
            }
            RefusalReason::InsideBuffer => format!(
                "That time is too close to another of {} appointments.",
                possessive(staff_name)
            ),
            RefusalReason::InDstGap => "That time doesn't exist on that day, because the clocks \
                                        go forward. Please choose another time."
                .to_owned(),
            RefusalReason::AmbiguousLocalTime => "That time happens twice on that day, because \
                                                  the clocks go back. Please choose one of the \
                                                  offered times."
                .to_owned(),
            RefusalReason::NoStaffAvailable => {
                "No one is free at that time. Please choose another time.".to_owned()
            }
            RefusalReason::InvalidRules(_) => {
                "This service can't be booked online at the moment.".to_owned()
            }
        };
        Self { reason, message }
    }

    /// An `OutsideHours` refusal for an appointment that starts inside a range but runs past it.
    pub(crate) fn runs_past_end(staff_name: &str) -> Self {
        Self {
            reason: RefusalReason::OutsideHours,
            message: format!(
                "An appointment at that time would run past the end of {} working hours.",
                possessive(staff_name)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_minutes_reads_naturally() {
        assert_eq!(human_minutes(0), "0 minutes");
        assert_eq!(human_minutes(1), "1 minute");
        assert_eq!(human_minutes(45), "45 minutes");
        assert_eq!(human_minutes(60), "1 hour");
        assert_eq!(human_minutes(90), "1 hour 30 minutes");
        assert_eq!(human_minutes(120), "2 hours");
        assert_eq!(human_minutes(1440), "1 day");
        assert_eq!(human_minutes(2 * 1440 + 61), "2 days 1 hour 1 minute");
    }

    #[test]
    fn messages_name_the_staff_member() {
        let rules = ServiceRules::new(30);
        let r = Refusal::new(RefusalReason::OutsideHours, "Thandi", &rules);
        assert_eq!(r.message, "That time is outside Thandi's working hours.");
        let r = Refusal::new(RefusalReason::Overlaps, "  ", &rules);
        assert_eq!(
            r.message,
            "This staff member is already booked at that time."
        );
        assert_eq!(r.to_string(), r.message);
    }
}

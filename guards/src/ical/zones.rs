//! Which zone a TZID means. Calendars name zones in four ways, tried in this order:
//!
//! 1. an IANA name (`Europe/London`), also in another letter case;
//! 2. an IANA name behind a vendor prefix (`/mozilla.org/20050126_1/Europe/Berlin`,
//!    `/freeassociation.sourceforge.net/Tzfile/Europe/London`);
//! 3. a Windows name (`W. Europe Standard Time`, as Outlook writes), through CLDR's table;
//! 4. anything else (`Customized Time Zone`, `(UTC+02:00) Harare, Pretoria`) with the
//!    calendar's own VTIMEZONE: the first IANA zone (South Africa first, then the common ones,
//!    then every zone in the Windows table) whose standard and daylight offsets, and the months
//!    its clocks change in, match the VTIMEZONE's latest observances in [`REFERENCE_YEAR`].
//!    If none matches, the VTIMEZONE's standard offset as a fixed offset (no DST); without a
//!    VTIMEZONE, an offset written in the name (`UTC+02:00`); else UTC.
//!
//! Only 1–3 are certain; [`Resolution::guessed`] tells the others apart, so the portal can say
//! "times of this event may be off by an hour" instead of silently trusting a guess.

use std::str::FromStr;

use chrono::{
    DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone,
};
use chrono_tz::Tz;

use super::VTimezone;
use super::windows::{WINDOWS_ZONES, windows_to_iana};

/// The year whose offsets a VTIMEZONE is compared in (the library has no clock).
pub const REFERENCE_YEAR: i32 = 2025;
/// At most this many VTIMEZONEs are matched against IANA zones; later ones fall back to their
/// fixed standard offset.
const MAX_MATCHED: usize = 64;
/// Tried first when matching a VTIMEZONE: the portal's home zone, then common ones.
const PREFERRED: [&str; 10] = [
    "Africa/Johannesburg",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Paris",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "Australia/Sydney",
    "Asia/Kolkata",
];

/// A zone times are converted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    Iana(Tz),
    /// A fixed offset: a VTIMEZONE or name no IANA zone matched.
    Fixed(FixedOffset),
}

impl Zone {
    /// UTC.
    pub fn utc() -> Zone {
        Zone::Iana(Tz::UTC)
    }

    /// The instant (Unix ms) of a wall time. A time skipped by a DST change (02:30 on the
    /// spring-forward night) is read with the offset before the change, so it lands an hour
    /// later (03:30), and a repeated one (the autumn night) is its first occurrence: both as
    /// RFC 5545 §3.3.5 says. `None` only outside chrono's range.
    pub fn to_utc_ms(&self, local: NaiveDateTime) -> Option<i64> {
        match self {
            Zone::Fixed(off) => local
                .checked_sub_signed(TimeDelta::seconds(i64::from(off.local_minus_utc())))
                .map(|t| t.and_utc().timestamp_millis()),
            Zone::Iana(tz) => match tz.from_local_datetime(&local) {
                LocalResult::Single(t) => Some(t.timestamp_millis()),
                LocalResult::Ambiguous(a, b) => {
                    Some(a.timestamp_millis().min(b.timestamp_millis()))
                }
                LocalResult::None => {
                    let before = local.checked_sub_signed(TimeDelta::days(1))?;
                    let off = tz.offset_from_utc_datetime(&before).fix().local_minus_utc();
                    local
                        .checked_sub_signed(TimeDelta::seconds(i64::from(off)))
                        .map(|t| t.and_utc().timestamp_millis())
                }
            },
        }
    }

    /// The wall time of an instant.
    pub fn to_local(&self, ms: i64) -> Option<NaiveDateTime> {
        let utc = DateTime::from_timestamp_millis(ms)?;
        Some(match self {
            Zone::Fixed(off) => utc.with_timezone(off).naive_local(),
            Zone::Iana(tz) => utc.with_timezone(tz).naive_local(),
        })
    }

    fn offset_at(&self, utc: NaiveDateTime) -> i32 {
        match self {
            Zone::Fixed(off) => off.local_minus_utc(),
            Zone::Iana(tz) => tz.offset_from_utc_datetime(&utc).fix().local_minus_utc(),
        }
    }
}

/// How a TZID was resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// An IANA name as written.
    Iana,
    /// An IANA name in another case or behind a vendor prefix.
    Alias,
    /// A Windows name, through CLDR's table.
    Windows,
    /// An IANA zone whose offsets match the calendar's VTIMEZONE (a guess).
    MatchedVTimezone,
    /// The VTIMEZONE's standard offset, fixed: no IANA zone matched (a guess; no DST).
    FixedFromVTimezone,
    /// An offset written in the name, `(UTC+02:00) …` (a guess; no DST).
    FixedFromName,
    /// Nothing known: UTC (a guess, likely wrong).
    Unknown,
}

/// A TZID's zone and how sure it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolution {
    pub zone: Zone,
    pub how: Resolved,
}

impl Resolution {
    /// Whether the zone is a guess (not named by IANA or Windows).
    pub fn guessed(&self) -> bool {
        !matches!(
            self.how,
            Resolved::Iana | Resolved::Alias | Resolved::Windows
        )
    }

    /// Whether the TZID should be reported as unknown (a fixed-offset or UTC fallback).
    pub fn unknown(&self) -> bool {
        matches!(
            self.how,
            Resolved::FixedFromVTimezone | Resolved::FixedFromName | Resolved::Unknown
        )
    }
}

/// Resolves TZIDs for [`super::expand`]; see the module documentation for the order. Built
/// once per calendar (the VTIMEZONE matching is done here).
#[derive(Clone, Debug)]
pub struct TzResolver {
    floating: Zone,
    custom: Vec<(String, Resolution)>,
}

impl TzResolver {
    /// `floating` reads floating times and all-day dates (the staff member's zone, or the
    /// calendar's `calendar-timezone` / Google's calendar `timeZone`); `timezones` are the
    /// calendar's VTIMEZONEs.
    pub fn new(floating: Tz, timezones: &[VTimezone]) -> TzResolver {
        let mut custom: Vec<(String, Resolution)> = Vec::new();
        for vtz in timezones {
            if by_name(&vtz.tzid).is_some() || custom.iter().any(|(id, _)| *id == vtz.tzid) {
                continue;
            }
            let resolution = if custom.len() < MAX_MATCHED {
                match_vtimezone(vtz)
            } else {
                fixed_from_vtimezone(vtz)
            };
            if let Some(r) = resolution {
                custom.push((vtz.tzid.clone(), r));
            }
        }
        TzResolver {
            floating: Zone::Iana(floating),
            custom,
        }
    }

    /// The zone of floating times and dates.
    pub fn floating(&self) -> Zone {
        self.floating
    }

    /// The zone a TZID stands for. Never fails: the last resort is UTC, marked
    /// [`Resolved::Unknown`].
    pub fn resolve(&self, tzid: &str) -> Resolution {
        if let Some(r) = by_name(tzid) {
            return r;
        }
        if let Some((_, r)) = self.custom.iter().find(|(id, _)| id == tzid.trim()) {
            return *r;
        }
        if let Some(off) = offset_in_name(tzid) {
            return Resolution {
                zone: Zone::Fixed(off),
                how: Resolved::FixedFromName,
            };
        }
        Resolution {
            zone: Zone::utc(),
            how: Resolved::Unknown,
        }
    }
}

/// Steps 1–3: IANA, prefixed IANA, Windows.
fn by_name(tzid: &str) -> Option<Resolution> {
    let name = tzid.trim().trim_matches('"').trim();
    if name.is_empty() || name.len() > 200 {
        return None;
    }
    let iana = |tz: Tz, how| {
        Some(Resolution {
            zone: Zone::Iana(tz),
            how,
        })
    };
    if let Ok(tz) = Tz::from_str(name) {
        return iana(tz, Resolved::Iana);
    }
    if let Some(tz) = chrono_tz::TZ_VARIANTS
        .iter()
        .find(|tz| tz.name().eq_ignore_ascii_case(name))
    {
        return iana(*tz, Resolved::Alias);
    }
    if let Some(w) = windows_to_iana(name)
        && let Ok(tz) = Tz::from_str(w)
    {
        return iana(tz, Resolved::Windows);
    }
    let segments: Vec<&str> = name.split('/').collect();
    for k in 1..segments.len() {
        let tail = segments[k..].join("/");
        if let Ok(tz) = Tz::from_str(&tail) {
            return iana(tz, Resolved::Alias);
        }
    }
    None
}

/// The latest STANDARD and DAYLIGHT observances: (standard offset, daylight offset and the
/// months they start in).
struct Shape {
    std: i32,
    std_month: Option<u32>,
    dst: Option<(i32, Option<u32>)>,
}

fn shape(vtz: &VTimezone) -> Option<Shape> {
    let latest = |daylight: bool| {
        vtz.observances
            .iter()
            .filter(|o| o.daylight == daylight)
            .max_by_key(|o| o.dtstart)
    };
    let std = latest(false).or_else(|| latest(true))?;
    let dst = latest(true)
        .filter(|d| d.offset_to != std.offset_to)
        .map(|d| (d.offset_to, d.month));
    Some(Shape {
        std: std.offset_to,
        std_month: if dst.is_some() { std.month } else { None },
        dst,
    })
}

fn fixed_from_vtimezone(vtz: &VTimezone) -> Option<Resolution> {
    let s = shape(vtz)?;
    Some(Resolution {
        zone: Zone::Fixed(FixedOffset::east_opt(s.std)?),
        how: Resolved::FixedFromVTimezone,
    })
}

fn noon(y: i32, m: u32, d: u32) -> Option<NaiveDateTime> {
    NaiveDate::from_ymd_opt(y, m, d)?.and_hms_opt(12, 0, 0)
}

/// The month in `REFERENCE_YEAR` in which `zone` changes to `offset`, if it does.
fn change_month(zone: &Zone, offset: i32) -> Option<u32> {
    let mut prev = zone.offset_at(noon(REFERENCE_YEAR, 1, 1)?);
    for m in 1..=12u32 {
        let next = match m {
            12 => noon(REFERENCE_YEAR + 1, 1, 1)?,
            _ => noon(REFERENCE_YEAR, m + 1, 1)?,
        };
        let now = zone.offset_at(next);
        if now != prev && now == offset {
            return Some(m);
        }
        prev = now;
    }
    None
}

fn matches_shape(zone: &Zone, s: &Shape) -> Option<bool> {
    let jan = zone.offset_at(noon(REFERENCE_YEAR, 1, 15)?);
    let jul = zone.offset_at(noon(REFERENCE_YEAR, 7, 15)?);
    Some(match s.dst {
        None => jan == s.std && jul == s.std,
        Some((dst, dst_month)) => {
            let pair = (jan == s.std && jul == dst) || (jan == dst && jul == s.std);
            pair && dst_month.is_none_or(|m| change_month(zone, dst) == Some(m))
                && s.std_month
                    .is_none_or(|m| change_month(zone, s.std) == Some(m))
        }
    })
}

/// Step 4.
fn match_vtimezone(vtz: &VTimezone) -> Option<Resolution> {
    let s = shape(vtz)?;
    let candidates = PREFERRED
        .iter()
        .chain(WINDOWS_ZONES.iter().map(|(_, iana)| iana));
    for name in candidates {
        let Ok(tz) = Tz::from_str(name) else { continue };
        let zone = Zone::Iana(tz);
        if matches_shape(&zone, &s) == Some(true) {
            return Some(Resolution {
                zone,
                how: Resolved::MatchedVTimezone,
            });
        }
    }
    fixed_from_vtimezone(vtz)
}

/// `UTC+02:00`, `GMT-0500`, `UTC+2` inside a name.
fn offset_in_name(name: &str) -> Option<FixedOffset> {
    let upper = name.to_ascii_uppercase();
    let at = upper.find("UTC").or_else(|| upper.find("GMT"))?;
    let rest = &upper.as_bytes()[at + 3..];
    let sign = match rest.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: Vec<u32> = rest[1..]
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b':')
        .filter(|b| b.is_ascii_digit())
        .map(|b| u32::from(b - b'0'))
        .take(4)
        .collect();
    let (h, m) = match digits.as_slice() {
        [h] => (*h, 0),
        [h1, h2] => (h1 * 10 + h2, 0),
        [h1, h2, m1] => (h1 * 10 + h2, m1 * 10),
        [h1, h2, m1, m2] => (h1 * 10 + h2, m1 * 10 + m2),
        _ => return None,
    };
    if h > 14 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60) as i32)
}

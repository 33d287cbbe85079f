//! iCalendar (RFC 5545) as CalDAV servers return it, read defensively, and its recurrences
//! expanded into busy intervals.
//!
//! Why here: a staff member's calendar is written by whoever invited them (any mail client, any
//! server, any bug), so every byte of `calendar-data` is untrusted, and availability is computed
//! from it. The reader therefore:
//!
//! - is bounded before it allocates much: input size ([`MAX_ICAL_BYTES`]), physical lines
//!   ([`MAX_LINES`]), components ([`MAX_COMPONENTS`]), properties per component
//!   ([`MAX_PROPERTIES`]), nesting ([`MAX_DEPTH`]), dates per event ([`MAX_DATES_PER_EVENT`]);
//! - refuses what is structurally broken ([`IcalError`]: unbalanced `BEGIN`/`END`, a line
//!   that is not `NAME[;PARAM=..]:VALUE`, no `VCALENDAR`), but skips, and reports in
//!   [`Calendar::skipped`], a single event it cannot use (no `DTSTART`, an unreadable date or
//!   `RRULE`), so one bad invitation does not hide the rest of the week;
//! - accepts what real servers send: LF as well as CRLF (Radicale), folds split inside a UTF-8
//!   character (unfolding is done on bytes), invalid UTF-8 (replaced, not refused), lower-case
//!   names, quoted parameters, `TZID`s that are Windows names (Outlook), Mozilla-style prefixed
//!   names, or custom names with an embedded `VTIMEZONE` ([`TzResolver`]).
//!
//! [`expand`] turns the events into [`BusyInterval`]s inside a window: RRULE (DAILY, WEEKLY,
//! MONTHLY, YEARLY with INTERVAL, COUNT, UNTIL, BYMONTH, BYMONTHDAY, BYYEARDAY, BYDAY,
//! BYHOUR, BYMINUTE, BYSECOND, BYSETPOS, WKST), RDATE, EXDATE and RECURRENCE-ID overrides
//! (moved or cancelled instances), computed in local wall time and converted per instance, so
//! a 09:00 meeting stays at 09:00 across a DST change. It is capped ([`MAX_INSTANCES`] results,
//! and a work budget against rules that never match); an endless rule stops at the window's
//! end. The recurrence code is our own rather than the `rrule` crate: that crate knows neither
//! RECURRENCE-ID, floating times nor Windows zones, validates strictly (real feeds send a
//! local `UNTIL`), and its caps are not ours; the subset above is what calendars write.
//!
//! Google's `recurrence[]` lines (`RRULE:…`, `EXDATE;TZID=…:…`) go through
//! [`parse_recurrence`], so Google events expand with the same code.
//!
//! Not read: VTODO, VJOURNAL, VFREEBUSY, alarms, attendees (declines are the caller's call),
//! `RANGE=THISANDFUTURE` (treated as a single-instance override), `EXRULE` (deprecated),
//! HOURLY/MINUTELY/SECONDLY rules and BYWEEKNO (such an event keeps its first instance and is
//! reported in [`Expansion::unsupported`]).

mod expand;
mod recur;
mod windows;
mod zones;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Weekday};

pub use expand::{BusyInterval, Expansion, expand, expand_report};
pub use recur::{Frequency, RRule};
pub use windows::windows_to_iana;
pub use zones::{Resolution, Resolved, TzResolver, Zone};

/// The largest iCalendar text read (one CalDAV resource, or one exported calendar).
pub const MAX_ICAL_BYTES: usize = 4 * 1024 * 1024;
/// The most physical lines read.
pub const MAX_LINES: usize = 200_000;
/// The most components (`BEGIN:` lines) read, of any kind.
pub const MAX_COMPONENTS: usize = 10_000;
/// The most properties in one component (a meeting with a few thousand attendees fits).
pub const MAX_PROPERTIES: usize = 5_000;
/// The deepest nesting (`VCALENDAR` > `VEVENT` > `VALARM` is 3).
pub const MAX_DEPTH: usize = 8;
/// The most EXDATE and RDATE values kept for one event; the rest are ignored and reported.
pub const MAX_DATES_PER_EVENT: usize = 2_000;
/// The most intervals [`expand`] returns; past it, [`Expansion::capped`] is set.
pub const MAX_INSTANCES: usize = 5_000;
/// The longest UID kept (bytes); an event with a longer one is skipped.
pub const MAX_UID_BYTES: usize = 1_024;
/// The longest SUMMARY kept (characters); longer ones are cut.
pub const MAX_SUMMARY_CHARS: usize = 500;

// ---------------------------------------------------------------------------------------------
// Errors and the parsed shapes.

/// Why an iCalendar text was refused as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IcalError {
    /// Longer than [`MAX_ICAL_BYTES`].
    TooLarge,
    /// More than [`MAX_LINES`] physical lines.
    TooManyLines,
    /// More than [`MAX_COMPONENTS`] components.
    TooManyComponents,
    /// A component with more than [`MAX_PROPERTIES`] properties (its first line).
    TooManyProperties { line: usize },
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep { line: usize },
    /// A content line that is not `NAME[;PARAM=VALUE]*:VALUE`.
    BadLine { line: usize },
    /// An `END` that closes nothing, or another component than the open one.
    Unbalanced { line: usize },
    /// The text ended inside a component.
    Unterminated,
    /// Not a `VCALENDAR` (content outside one, or none at all).
    NotICalendar,
    /// A `recurrence[]` line ([`parse_recurrence`]) that is not RRULE, RDATE, EXDATE or EXRULE,
    /// or whose value cannot be read (its index).
    BadRecurrence { index: usize },
}

impl std::fmt::Display for IcalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IcalError::TooLarge => write!(f, "calendar data larger than {MAX_ICAL_BYTES} bytes"),
            IcalError::TooManyLines => write!(f, "more than {MAX_LINES} lines"),
            IcalError::TooManyComponents => write!(f, "more than {MAX_COMPONENTS} components"),
            IcalError::TooManyProperties { line } => {
                write!(
                    f,
                    "more than {MAX_PROPERTIES} properties in the component at line {line}"
                )
            }
            IcalError::TooDeep { line } => {
                write!(f, "nested deeper than {MAX_DEPTH} at line {line}")
            }
            IcalError::BadLine { line } => write!(f, "line {line} is not NAME:VALUE"),
            IcalError::Unbalanced { line } => write!(f, "unbalanced END at line {line}"),
            IcalError::Unterminated => f.write_str("the text ends inside a component"),
            IcalError::NotICalendar => f.write_str("not an iCalendar VCALENDAR"),
            IcalError::BadRecurrence { index } => {
                write!(f, "recurrence line {index} is unreadable")
            }
        }
    }
}

impl std::error::Error for IcalError {}

/// A DATE or DATE-TIME value, as written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DateOrTime {
    /// `VALUE=DATE` (`20260310`): a whole day in the floating zone.
    Date(NaiveDate),
    /// `20260310T090000Z`.
    Utc(NaiveDateTime),
    /// `20260310T090000`, no zone: read in the resolver's floating zone.
    Floating(NaiveDateTime),
    /// `TZID=Europe/London:20260310T090000`.
    Zoned { local: NaiveDateTime, tzid: String },
}

impl DateOrTime {
    /// Whether this is a DATE (an all-day value).
    pub fn is_date(&self) -> bool {
        matches!(self, DateOrTime::Date(_))
    }

    /// The wall-clock value (midnight for a DATE).
    pub fn local(&self) -> NaiveDateTime {
        match self {
            DateOrTime::Date(d) => d.and_time(NaiveTime::MIN),
            DateOrTime::Utc(t) | DateOrTime::Floating(t) => *t,
            DateOrTime::Zoned { local, .. } => *local,
        }
    }

    /// The TZID, for a zoned value.
    pub fn tzid(&self) -> Option<&str> {
        match self {
            DateOrTime::Zoned { tzid, .. } => Some(tzid),
            _ => None,
        }
    }
}

/// An RDATE: a start (DATE or DATE-TIME), or a PERIOD with its own end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RDate {
    At(DateOrTime),
    /// `VALUE=PERIOD`: start and end (a duration is turned into an end).
    Period {
        start: DateOrTime,
        end: PeriodEnd,
    },
}

/// The end of an RDATE PERIOD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeriodEnd {
    At(DateOrTime),
    After(IcalDuration),
}

/// A DURATION (`P1DT2H`, `-PT15M`, `P2W`): days are nominal (a day in local time, 23 or 25
/// hours across a DST change), seconds exact, as RFC 5545 §3.3.6 says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct IcalDuration {
    pub days: i64,
    pub seconds: i64,
}

/// `STATUS` of an event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EventStatus {
    #[default]
    Confirmed,
    Tentative,
    Cancelled,
}

/// One VEVENT: a master (no `recurrence_id`) or an override of one instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// Empty when the event has none (it then stands alone: nothing can override it).
    pub uid: String,
    pub dtstart: Option<DateOrTime>,
    pub dtend: Option<DateOrTime>,
    pub duration: Option<IcalDuration>,
    pub rrule: Option<RRule>,
    pub exdates: Vec<DateOrTime>,
    pub rdates: Vec<RDate>,
    /// Which instance this overrides (its original start).
    pub recurrence_id: Option<DateOrTime>,
    pub status: EventStatus,
    /// `TRANSP:TRANSPARENT`: shown but not busy.
    pub transparent: bool,
    pub sequence: i64,
    /// Unescaped, cut to [`MAX_SUMMARY_CHARS`].
    pub summary: Option<String>,
}

/// A VTIMEZONE: the observances a custom TZID stands for (used when its name resolves to no
/// IANA zone, see [`TzResolver`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VTimezone {
    pub tzid: String,
    pub observances: Vec<Observance>,
}

/// A STANDARD or DAYLIGHT block of a VTIMEZONE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observance {
    pub daylight: bool,
    /// Local time of the first onset.
    pub dtstart: Option<NaiveDateTime>,
    /// `TZOFFSETFROM` / `TZOFFSETTO`, seconds east of UTC.
    pub offset_from: i32,
    pub offset_to: i32,
    /// The month of the onset: the RRULE's first BYMONTH, else DTSTART's.
    pub month: Option<u32>,
}

/// An event the reader left out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The event's UID, if it had a readable one.
    pub uid: Option<String>,
    /// Its `BEGIN:VEVENT` line.
    pub line: usize,
    pub reason: &'static str,
}

/// A parsed iCalendar text: every VEVENT and VTIMEZONE of every VCALENDAR in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Calendar {
    pub events: Vec<Event>,
    pub timezones: Vec<VTimezone>,
    /// Events left out (unusable dates, rules, UIDs); log them.
    pub skipped: Vec<Skipped>,
    /// EXDATE/RDATE values ignored past [`MAX_DATES_PER_EVENT`], and repeated RRULEs.
    pub ignored_values: usize,
    /// `X-WR-TIMEZONE` or the first VTIMEZONE's TZID: a hint for the floating zone.
    pub calendar_tz_hint: Option<String>,
}

impl Calendar {
    /// A resolver for this calendar's TZIDs (its VTIMEZONEs included), reading floating times
    /// and dates in `floating`.
    pub fn resolver(&self, floating: chrono_tz::Tz) -> TzResolver {
        TzResolver::new(floating, &self.timezones)
    }
}

// ---------------------------------------------------------------------------------------------
// Content lines.

/// A property: upper-case name, parameters (upper-case names, unquoted values), raw value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Prop {
    pub name: String,
    pub params: Vec<(String, String)>,
    pub value: String,
}

impl Prop {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses one unfolded content line; `None` if it is not `NAME[;P=V]*:VALUE`.
pub(crate) fn parse_content_line(line: &str) -> Option<Prop> {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'-') {
        i += 1;
    }
    if i == 0 {
        return None;
    }
    let name = line[..i].to_ascii_uppercase();
    let mut params = Vec::new();
    while i < bytes.len() && bytes[i] == b';' {
        i += 1;
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'-') {
            i += 1;
        }
        if i == start || i >= bytes.len() || bytes[i] != b'=' {
            return None;
        }
        let pname = line[start..i].to_ascii_uppercase();
        i += 1;
        // One or more values separated by commas; each quoted or bare. Kept joined by commas.
        let mut value = String::new();
        loop {
            if i < bytes.len() && bytes[i] == b'"' {
                let end = line[i + 1..].find('"')? + i + 1;
                value.push_str(&line[i + 1..end]);
                i = end + 1;
            } else {
                let start = i;
                while i < bytes.len() && !matches!(bytes[i], b';' | b':' | b',' | b'"') {
                    i += 1;
                }
                value.push_str(&line[start..i]);
            }
            if i < bytes.len() && bytes[i] == b',' {
                value.push(',');
                i += 1;
                continue;
            }
            break;
        }
        params.push((pname, value));
    }
    if i >= bytes.len() || bytes[i] != b':' {
        return None;
    }
    Some(Prop {
        name,
        params,
        value: line[i + 1..].to_owned(),
    })
}

/// Unfolds `input` into logical lines (byte-wise, so a fold inside a UTF-8 character heals),
/// with the physical line number each starts on. Empty lines are dropped.
fn unfold(input: &[u8]) -> Result<Vec<(usize, String)>, IcalError> {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let mut out: Vec<(usize, Vec<u8>)> = Vec::new();
    for (n, raw) in input.split(|&b| b == b'\n').enumerate() {
        if n >= MAX_LINES {
            return Err(IcalError::TooManyLines);
        }
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        match raw.first() {
            Some(b' ' | b'\t') => match out.last_mut() {
                Some((_, line)) => line.extend_from_slice(&raw[1..]),
                // A continuation before any line: nothing to continue.
                None => return Err(IcalError::BadLine { line: n + 1 }),
            },
            None => {}
            Some(_) => out.push((n + 1, raw.to_vec())),
        }
    }
    Ok(out
        .into_iter()
        .map(|(n, b)| (n, String::from_utf8_lossy(&b).into_owned()))
        .collect())
}

/// A component as read, before interpretation.
struct Comp {
    name: String,
    line: usize,
    props: Vec<Prop>,
    children: Vec<Comp>,
}

/// Reads the component tree; returns the top-level components.
fn read_tree(input: &[u8]) -> Result<Vec<Comp>, IcalError> {
    if input.len() > MAX_ICAL_BYTES {
        return Err(IcalError::TooLarge);
    }
    let lines = unfold(input)?;
    let mut stack: Vec<Comp> = Vec::new();
    let mut top = Vec::new();
    let mut components = 0usize;
    for (n, line) in lines {
        let prop = parse_content_line(&line).ok_or(IcalError::BadLine { line: n })?;
        match prop.name.as_str() {
            "BEGIN" => {
                components += 1;
                if components > MAX_COMPONENTS {
                    return Err(IcalError::TooManyComponents);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(IcalError::TooDeep { line: n });
                }
                let name = prop.value.trim().to_ascii_uppercase();
                if stack.is_empty() && name != "VCALENDAR" {
                    return Err(IcalError::NotICalendar);
                }
                stack.push(Comp {
                    name,
                    line: n,
                    props: Vec::new(),
                    children: Vec::new(),
                });
            }
            "END" => {
                let name = prop.value.trim().to_ascii_uppercase();
                let comp = match stack.pop() {
                    Some(c) if c.name == name => c,
                    _ => return Err(IcalError::Unbalanced { line: n }),
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(comp),
                    None => top.push(comp),
                }
            }
            _ => {
                let comp = stack.last_mut().ok_or(IcalError::NotICalendar)?;
                if comp.props.len() >= MAX_PROPERTIES {
                    return Err(IcalError::TooManyProperties { line: comp.line });
                }
                comp.props.push(prop);
            }
        }
    }
    if !stack.is_empty() {
        return Err(IcalError::Unterminated);
    }
    if top.is_empty() {
        return Err(IcalError::NotICalendar);
    }
    Ok(top)
}

// ---------------------------------------------------------------------------------------------
// Values.

fn digits(s: &str, n: usize) -> Option<u32> {
    if s.len() != n || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    // ASCII first: the slicing below must not land inside a character.
    if s.len() != 8 || !s.is_ascii() {
        return None;
    }
    let y = digits(&s[..4], 4)?;
    let m = digits(&s[4..6], 2)?;
    let d = digits(&s[6..8], 2)?;
    if y == 0 {
        return None;
    }
    NaiveDate::from_ymd_opt(y as i32, m, d)
}

fn parse_time(s: &str) -> Option<NaiveTime> {
    if s.len() != 6 || !s.is_ascii() {
        return None;
    }
    let h = digits(&s[..2], 2)?;
    let m = digits(&s[2..4], 2)?;
    // A leap second (60) is read as 59, as RFC 5545 allows implementations to.
    let sec = digits(&s[4..6], 2)?.min(59);
    NaiveTime::from_hms_opt(h, m, sec)
}

/// A DATE or DATE-TIME value with its `TZID` parameter (if any). `force_date` for
/// `VALUE=DATE`. A `Z` value ignores the TZID (RFC 5545 forbids both; UTC is what it says).
pub(crate) fn parse_date_or_time(
    value: &str,
    tzid: Option<&str>,
    force_date: bool,
) -> Option<DateOrTime> {
    let value = value.trim();
    if force_date || value.len() == 8 {
        return parse_date(value).map(DateOrTime::Date);
    }
    let (date, rest) = value.split_once(['T', 't'])?;
    let date = parse_date(date)?;
    let (time, utc) = match rest.strip_suffix(['Z', 'z']) {
        Some(t) => (t, true),
        None => (rest, false),
    };
    let local = date.and_time(parse_time(time)?);
    Some(if utc {
        DateOrTime::Utc(local)
    } else {
        match tzid.map(str::trim).filter(|t| !t.is_empty()) {
            Some(tzid) => DateOrTime::Zoned {
                local,
                tzid: tzid.to_owned(),
            },
            None => DateOrTime::Floating(local),
        }
    })
}

fn date_of(prop: &Prop) -> Option<DateOrTime> {
    let force_date = prop
        .param("VALUE")
        .is_some_and(|v| v.eq_ignore_ascii_case("DATE"));
    parse_date_or_time(&prop.value, prop.param("TZID"), force_date)
}

/// The largest duration read (days): longer ones are not calendar events.
const MAX_DURATION_DAYS: i64 = 366 * 100;

/// Parses a DURATION value (`P15DT5H0M20S`, `P7W`, `-PT15M`).
pub fn parse_duration(s: &str) -> Option<IcalDuration> {
    let s = s.trim();
    let (neg, s) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let s = s.strip_prefix(['P', 'p'])?;
    let mut days: i64 = 0;
    let mut seconds: i64 = 0;
    let mut in_time = false;
    let mut num: Option<i64> = None;
    let mut any = false;
    for c in s.chars() {
        match c.to_ascii_uppercase() {
            '0'..='9' => {
                let d = i64::from(c as u8 - b'0');
                let n = num.unwrap_or(0).checked_mul(10)?.checked_add(d)?;
                if n > MAX_DURATION_DAYS * 86_400 {
                    return None;
                }
                num = Some(n);
            }
            'T' if !in_time && num.is_none() => in_time = true,
            unit => {
                let n = num.take()?;
                any = true;
                match (unit, in_time) {
                    ('W', false) => days = days.checked_add(n.checked_mul(7)?)?,
                    ('D', false) => days = days.checked_add(n)?,
                    ('H', true) => seconds = seconds.checked_add(n.checked_mul(3600)?)?,
                    ('M', true) => seconds = seconds.checked_add(n.checked_mul(60)?)?,
                    ('S', true) => seconds = seconds.checked_add(n)?,
                    _ => return None,
                }
            }
        }
    }
    if num.is_some() || !any || days + seconds / 86_400 > MAX_DURATION_DAYS {
        return None;
    }
    Some(if neg {
        IcalDuration {
            days: -days,
            seconds: -seconds,
        }
    } else {
        IcalDuration { days, seconds }
    })
}

/// A UTC offset (`+0200`, `-0500`, `+053000`) in seconds.
fn parse_offset(s: &str) -> Option<i32> {
    let s = s.trim();
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let rest = &s[1..];
    if !rest.is_ascii() {
        return None;
    }
    let (h, m, sec) = match rest.len() {
        4 => (digits(&rest[..2], 2)?, digits(&rest[2..], 2)?, 0),
        6 => (
            digits(&rest[..2], 2)?,
            digits(&rest[2..4], 2)?,
            digits(&rest[4..], 2)?,
        ),
        _ => return None,
    };
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60 + sec) as i32)
}

/// Unescapes a TEXT value (`\n`, `\,`, `\;`, `\\`) and cuts it to `max` characters.
fn unescape_text(s: &str, max: usize) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    let mut n = 0;
    while let Some(c) = chars.next() {
        if n >= max {
            break;
        }
        let c = if c == '\\' {
            match chars.next() {
                Some('n' | 'N') => '\n',
                Some(other) => other,
                None => break,
            }
        } else {
            c
        };
        out.push(c);
        n += 1;
    }
    out
}

/// Reads the comma-separated values of an EXDATE into `out`, at most `room` of them; returns
/// how many were ignored, or `None` if one is unreadable.
fn push_dates(prop: &Prop, out: &mut Vec<DateOrTime>, room: &mut usize) -> Option<usize> {
    let force_date = prop
        .param("VALUE")
        .is_some_and(|v| v.eq_ignore_ascii_case("DATE"));
    let mut ignored = 0;
    for v in prop.value.split(',').filter(|v| !v.trim().is_empty()) {
        if *room == 0 {
            ignored += 1;
            continue;
        }
        out.push(parse_date_or_time(v, prop.param("TZID"), force_date)?);
        *room -= 1;
    }
    Some(ignored)
}

/// Reads an RDATE's values (DATE, DATE-TIME or PERIOD) into `out`, as [`push_dates`].
fn push_rdates(prop: &Prop, out: &mut Vec<RDate>, room: &mut usize) -> Option<usize> {
    let kind = prop.param("VALUE").unwrap_or("DATE-TIME");
    let tzid = prop.param("TZID");
    let mut ignored = 0;
    for v in prop.value.split(',').filter(|v| !v.trim().is_empty()) {
        if *room == 0 {
            ignored += 1;
            continue;
        }
        let rdate = if kind.eq_ignore_ascii_case("PERIOD") || v.contains('/') {
            let (start, end) = v.split_once('/')?;
            let start = parse_date_or_time(start, tzid, false)?;
            let end = if end.trim_start().starts_with(['P', 'p', '+', '-']) {
                PeriodEnd::After(parse_duration(end)?)
            } else {
                PeriodEnd::At(parse_date_or_time(end, tzid, false)?)
            };
            RDate::Period { start, end }
        } else {
            RDate::At(parse_date_or_time(
                v,
                tzid,
                kind.eq_ignore_ascii_case("DATE"),
            )?)
        };
        out.push(rdate);
        *room -= 1;
    }
    Some(ignored)
}

// ---------------------------------------------------------------------------------------------
// Components.

/// Reads a VEVENT; `Err(reason)` when it is unusable.
fn read_event(comp: &Comp, ignored: &mut usize) -> Result<Event, &'static str> {
    let mut ev = Event::default();
    let mut room = MAX_DATES_PER_EVENT;
    let mut uid_seen = false;
    for p in &comp.props {
        match p.name.as_str() {
            "UID" if !uid_seen => {
                uid_seen = true;
                let uid = p.value.trim();
                if uid.len() > MAX_UID_BYTES {
                    return Err("UID too long");
                }
                ev.uid = uid.to_owned();
            }
            "DTSTART" => ev.dtstart = Some(date_of(p).ok_or("unreadable DTSTART")?),
            "DTEND" => ev.dtend = Some(date_of(p).ok_or("unreadable DTEND")?),
            "DURATION" => {
                ev.duration = Some(parse_duration(&p.value).ok_or("unreadable DURATION")?)
            }
            "RRULE" => {
                if ev.rrule.is_some() {
                    *ignored += 1;
                } else {
                    ev.rrule = Some(RRule::parse(&p.value).ok_or("unreadable RRULE")?);
                }
            }
            "EXDATE" => {
                *ignored += push_dates(p, &mut ev.exdates, &mut room).ok_or("unreadable EXDATE")?
            }
            "RDATE" => {
                *ignored += push_rdates(p, &mut ev.rdates, &mut room).ok_or("unreadable RDATE")?
            }
            "RECURRENCE-ID" => {
                ev.recurrence_id = Some(date_of(p).ok_or("unreadable RECURRENCE-ID")?)
            }
            "STATUS" => {
                ev.status = match p.value.trim().to_ascii_uppercase().as_str() {
                    "TENTATIVE" => EventStatus::Tentative,
                    "CANCELLED" => EventStatus::Cancelled,
                    _ => EventStatus::Confirmed,
                }
            }
            "TRANSP" => ev.transparent = p.value.trim().eq_ignore_ascii_case("TRANSPARENT"),
            "SEQUENCE" => ev.sequence = p.value.trim().parse().unwrap_or(0),
            "SUMMARY" => ev.summary = Some(unescape_text(&p.value, MAX_SUMMARY_CHARS)),
            _ => {}
        }
    }
    if ev.dtstart.is_none() {
        return Err("no DTSTART");
    }
    Ok(ev)
}

fn read_timezone(comp: &Comp) -> Option<VTimezone> {
    let tzid = comp.props.iter().find(|p| p.name == "TZID")?.value.trim();
    let mut tz = VTimezone {
        tzid: tzid.to_owned(),
        observances: Vec::new(),
    };
    for child in &comp.children {
        let daylight = match child.name.as_str() {
            "STANDARD" => false,
            "DAYLIGHT" => true,
            _ => continue,
        };
        let mut dtstart = None;
        let mut from = None;
        let mut to = None;
        let mut month = None;
        for p in &child.props {
            match p.name.as_str() {
                "DTSTART" => dtstart = date_of(p).map(|d| d.local()),
                "TZOFFSETFROM" => from = parse_offset(&p.value),
                "TZOFFSETTO" => to = parse_offset(&p.value),
                "RRULE" => month = RRule::parse(&p.value).and_then(|r| r.by_month.first().copied()),
                _ => {}
            }
        }
        let Some(to) = to else { continue };
        tz.observances.push(Observance {
            daylight,
            dtstart,
            offset_from: from.unwrap_or(to),
            offset_to: to,
            month: month
                .map(u32::from)
                .or_else(|| dtstart.map(|d| chrono::Datelike::month(&d))),
        });
    }
    Some(tz)
}

fn walk(comp: &Comp, cal: &mut Calendar) {
    for child in &comp.children {
        match child.name.as_str() {
            "VEVENT" => match read_event(child, &mut cal.ignored_values) {
                Ok(ev) => cal.events.push(ev),
                Err(reason) => cal.skipped.push(Skipped {
                    uid: child
                        .props
                        .iter()
                        .find(|p| p.name == "UID")
                        .map(|p| p.value.trim().chars().take(200).collect()),
                    line: child.line,
                    reason,
                }),
            },
            "VTIMEZONE" => {
                if let Some(tz) = read_timezone(child) {
                    cal.timezones.push(tz);
                }
            }
            _ => {}
        }
    }
}

/// Parses an iCalendar text (one or more VCALENDARs, e.g. a CalDAV `calendar-data` or an
/// `.ics` export). Bounded and panic-free; see the module documentation for what is refused
/// and what is skipped.
pub fn parse(input: &[u8]) -> Result<Calendar, IcalError> {
    let top = read_tree(input)?;
    let mut cal = Calendar::default();
    for comp in &top {
        if cal.calendar_tz_hint.is_none() {
            cal.calendar_tz_hint = comp
                .props
                .iter()
                .find(|p| p.name == "X-WR-TIMEZONE")
                .map(|p| p.value.trim().chars().take(200).collect());
        }
        walk(comp, &mut cal);
    }
    if cal.calendar_tz_hint.is_none() {
        cal.calendar_tz_hint = cal.timezones.first().map(|t| t.tzid.clone());
    }
    Ok(cal)
}

/// What a Google event's `recurrence[]` holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recurrence {
    pub rrule: Option<RRule>,
    pub exdates: Vec<DateOrTime>,
    pub rdates: Vec<RDate>,
}

/// Reads Google's `recurrence[]` lines (`RRULE:FREQ=WEEKLY;BYDAY=MO`,
/// `EXDATE;TZID=Europe/Berlin:20260316T090000`, `RDATE;VALUE=DATE:20260401`). An `EXRULE` is
/// ignored (deprecated, and Google never writes one); anything else is refused. At most
/// [`MAX_DATES_PER_EVENT`] dates are kept and 100 lines read.
pub fn parse_recurrence<S: AsRef<str>>(lines: &[S]) -> Result<Recurrence, IcalError> {
    let mut out = Recurrence::default();
    let mut room = MAX_DATES_PER_EVENT;
    for (index, line) in lines.iter().enumerate() {
        let bad = IcalError::BadRecurrence { index };
        if index >= 100 {
            return Err(bad);
        }
        let prop = parse_content_line(line.as_ref().trim()).ok_or(bad.clone())?;
        match prop.name.as_str() {
            "RRULE" if out.rrule.is_none() => {
                out.rrule = Some(RRule::parse(&prop.value).ok_or(bad)?);
            }
            "EXDATE" => {
                push_dates(&prop, &mut out.exdates, &mut room).ok_or(bad)?;
            }
            "RDATE" => {
                push_rdates(&prop, &mut out.rdates, &mut room).ok_or(bad)?;
            }
            "EXRULE" => {}
            _ => return Err(bad),
        }
    }
    Ok(out)
}

/// A weekday from its two-letter iCalendar code.
pub(crate) fn weekday(code: &str) -> Option<Weekday> {
    Some(match code.to_ascii_uppercase().as_str() {
        "MO" => Weekday::Mon,
        "TU" => Weekday::Tue,
        "WE" => Weekday::Wed,
        "TH" => Weekday::Thu,
        "FR" => Weekday::Fri,
        "SA" => Weekday::Sat,
        "SU" => Weekday::Sun,
        _ => return None,
    })
}

#[cfg(test)]
mod tests;

//! Time-zone arithmetic on millisecond instants.
//!
//! An instant's *wall time* is its local date and time in a zone, written as milliseconds since
//! 1970-01-01T00:00 of that (naive) local calendar: `wall(t) = t + offset(t)`. Wall time jumps at
//! each offset change (forward over a gap, back over a repeated stretch), so it is not monotonic.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone};
use chrono_tz::Tz;

pub(crate) const MINUTE_MS: i64 = 60_000;
pub(crate) const HOUR_MS: i64 = 3_600_000;
pub(crate) const DAY_MS: i64 = 86_400_000;

/// The instants the engine works with: 0001-01-01T00:00Z to 9999-01-01T00:00Z. Starts outside
/// are never offered and always refused; windows are clamped to it. (chrono-tz knows DST rules up
/// to about 2100; after that each zone keeps its last offset.)
pub(crate) const MIN_INSTANT_MS: i64 = -62_135_596_800_000;
pub(crate) const MAX_INSTANT_MS: i64 = 253_370_764_800_000;

/// Offset changes are found by sampling the offset at this spacing (aligned to multiples of it, so
/// the answer never depends on the window asked for) and bisecting between samples that differ.
/// This assumes two offset changes are never less than an hour apart, which holds for every zone
/// in the tz database in modern times.
const SAMPLE_MS: i64 = HOUR_MS;

/// True when `t` lies in the domain the engine works with.
pub(crate) fn in_domain(t: i64) -> bool {
    (MIN_INSTANT_MS..MAX_INSTANT_MS).contains(&t)
}

/// The zone's offset from UTC at instant `t`, in milliseconds. `t` is clamped to the domain.
pub(crate) fn offset_ms(tz: Tz, t: i64) -> i64 {
    let t = t.clamp(MIN_INSTANT_MS, MAX_INSTANT_MS);
    let utc = DateTime::from_timestamp_millis(t)
        .expect("clamped into chrono's range")
        .naive_utc();
    i64::from(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc()) * 1000
}

/// The wall time of instant `t` (see the module comment).
pub(crate) fn wall_ms(tz: Tz, t: i64) -> i64 {
    t + offset_ms(tz, t)
}

/// The naive local date-time that a wall time stands for.
pub(crate) fn naive_of_wall(wall: i64) -> NaiveDateTime {
    DateTime::from_timestamp_millis(wall)
        .expect("wall times of domain instants are in chrono's range")
        .naive_utc()
}

/// The wall time of minute `minute` (0..=1440) of local date `date`.
pub(crate) fn wall_of(date: NaiveDate, minute: u32) -> i64 {
    date.and_hms_opt(0, 0, 0)
        .expect("midnight exists on a naive date")
        .and_utc()
        .timestamp_millis()
        + i64::from(minute) * MINUTE_MS
}

/// Every instant whose wall time is minute `minute` (< 1440) of `date`: none in a gap (clocks
/// going forward), one usually, two in a repeated stretch (clocks going back), earliest first.
pub(crate) fn resolve(tz: Tz, date: NaiveDate, minute: u32) -> Resolved {
    let naive = date
        .and_hms_opt(minute / 60, minute % 60, 0)
        .expect("minute < 1440");
    match tz.from_local_datetime(&naive) {
        LocalResult::None => Resolved::Gap,
        LocalResult::Single(dt) => Resolved::One(dt.timestamp_millis()),
        LocalResult::Ambiguous(a, b) => {
            let (a, b) = (a.timestamp_millis(), b.timestamp_millis());
            Resolved::Two(a.min(b), a.max(b))
        }
    }
}

/// The instants of one wall time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resolved {
    Gap,
    One(i64),
    Two(i64, i64),
}

impl Resolved {
    pub(crate) fn instants(self) -> impl Iterator<Item = i64> {
        let (a, b) = match self {
            Resolved::Gap => (None, None),
            Resolved::One(a) => (Some(a), None),
            Resolved::Two(a, b) => (Some(a), Some(b)),
        };
        a.into_iter().chain(b)
    }
}

/// The zone's offset as a step function over a window of instants: piece `i` has offset
/// `pieces[i].1` from instant `pieces[i].0` until the next piece starts. Only valid for instants
/// inside the window it was built for.
#[derive(Clone, Debug)]
pub(crate) struct Offsets {
    pieces: Vec<(i64, i64)>,
}

impl Offsets {
    /// The offsets over `[lo, hi]` (both clamped to the domain).
    pub(crate) fn build(tz: Tz, lo: i64, hi: i64) -> Self {
        let lo = lo.clamp(MIN_INSTANT_MS, MAX_INSTANT_MS);
        let hi = hi.clamp(MIN_INSTANT_MS, MAX_INSTANT_MS);
        let mut t = lo.div_euclid(SAMPLE_MS) * SAMPLE_MS;
        let mut off_t = offset_ms(tz, t);
        let mut pieces = vec![(i64::MIN, off_t)];
        while t < hi {
            let next = t + SAMPLE_MS;
            let off_next = offset_ms(tz, next);
            if off_next != off_t {
                // Bisect for the first instant after `t` whose offset differs.
                let (mut a, mut b) = (t, next);
                while b - a > 1 {
                    let mid = a + (b - a) / 2;
                    if offset_ms(tz, mid) == off_t {
                        a = mid;
                    } else {
                        b = mid;
                    }
                }
                pieces.push((b, offset_ms(tz, b)));
                if offset_ms(tz, b) != off_next {
                    // Two changes within one sample (never seen in modern data): keep the later.
                    pieces.push((next, off_next));
                }
            }
            t = next;
            off_t = off_next;
        }
        Self { pieces }
    }

    fn index_at(&self, t: i64) -> usize {
        self.pieces.partition_point(|&(start, _)| start <= t) - 1
    }

    /// True when every instant of `[s, e)` has a wall time in `[w0, w1)`.
    pub(crate) fn fits(&self, s: i64, e: i64, w0: i64, w1: i64) -> bool {
        let mut i = self.index_at(s);
        loop {
            let (start, off) = self.pieces[i];
            let next = self.pieces.get(i + 1).map_or(i64::MAX, |p| p.0);
            let a = start.max(s);
            let b = next.min(e);
            if a + off < w0 || b + off > w1 {
                return false;
            }
            if next >= e {
                return true;
            }
            i += 1;
        }
    }

    /// The first instant at or after `from` whose wall time is at least `wall`. Used to find where
    /// a local day begins (the first instant of that date, even when its midnight is in a gap).
    pub(crate) fn first_at_or_after_wall(&self, from: i64, wall: i64) -> i64 {
        let mut i = self.index_at(from);
        loop {
            let (start, off) = self.pieces[i];
            let next = self.pieces.get(i + 1).map_or(i64::MAX, |p| p.0);
            let candidate = start.max(from).max(wall - off);
            if candidate < next || i + 1 == self.pieces.len() {
                return candidate;
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        chrono::Utc
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn offsets_find_london_transitions_exactly() {
        let tz = chrono_tz::Europe::London;
        let o = Offsets::build(tz, ms(2027, 3, 27, 0, 0), ms(2027, 3, 29, 0, 0));
        // [00:00, 01:00) UTC is GMT (wall == instant), from 01:00 UTC it is BST.
        let day = NaiveDate::from_ymd_opt(2027, 3, 28).unwrap();
        assert!(o.fits(
            ms(2027, 3, 28, 0, 0),
            ms(2027, 3, 28, 1, 0),
            wall_of(day, 0),
            wall_of(day, 60)
        ));
        assert!(!o.fits(
            ms(2027, 3, 28, 0, 0),
            ms(2027, 3, 28, 1, 1),
            wall_of(day, 0),
            wall_of(day, 60)
        ));
        assert!(o.fits(
            ms(2027, 3, 28, 0, 30),
            ms(2027, 3, 28, 1, 30),
            wall_of(day, 30),
            wall_of(day, 150)
        ));
        assert_eq!(resolve(tz, day, 90), Resolved::Gap);
    }

    #[test]
    fn resolve_gives_both_instants_of_a_repeated_hour() {
        let tz = chrono_tz::Europe::London;
        let day = NaiveDate::from_ymd_opt(2027, 10, 31).unwrap();
        assert_eq!(
            resolve(tz, day, 90),
            Resolved::Two(ms(2027, 10, 31, 0, 30), ms(2027, 10, 31, 1, 30))
        );
    }

    #[test]
    fn first_at_or_after_wall_handles_a_gap_at_midnight() {
        // America/Santiago moves its clocks at 24:00 local: 2027-09-05 00:00 does not exist.
        let tz = chrono_tz::America::Santiago;
        let day = NaiveDate::from_ymd_opt(2027, 9, 5).unwrap();
        let o = Offsets::build(tz, ms(2027, 9, 3, 0, 0), ms(2027, 9, 7, 0, 0));
        let start = o.first_at_or_after_wall(ms(2027, 9, 3, 0, 0), wall_of(day, 0));
        assert!(wall_ms(tz, start) >= wall_of(day, 0));
        assert!(wall_ms(tz, start - 1) < wall_of(day, 0));
    }
}

//! Slot search for a month: 20 staff members, 10,000 existing bookings, "anyone" across all of
//! them, through the same engine the portal uses (`slots::available_starts_any`).
//!
//! Prints p50/p99 and the ratio to a baseline measured in the same run: one linear pass over
//! the same 10,000 bookings (sum of durations), the least work any search must do to look at
//! them. The portal's own path adds loading calendars and bookings from the database; that part
//! is measured with the pages in the page benchmark.

use std::time::Instant;

use slots::chrono::Weekday;
use slots::{Interval, LocalRange, ServiceRules, StaffBusy, StaffCalendar, Tz, WeeklyHours};

const MIN: i64 = 60_000;
const DAY: i64 = 24 * 60 * MIN;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let tz: Tz = "Africa/Johannesburg".parse().unwrap();
    let hours = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
    ]
    .into_iter()
    .fold(WeeklyHours::new(), |w, d| {
        w.with(
            d,
            [
                LocalRange::parse("08:00-12:30").unwrap(),
                LocalRange::parse("13:30-18:00").unwrap(),
            ],
        )
    });
    let staff: Vec<StaffCalendar> = (0..20)
        .map(|i| StaffCalendar::new(i, format!("Staff {i}"), tz, hours.clone()))
        .collect();
    // 2026-12-01 00:00 SAST.
    let from: i64 = 1_796_076_000_000;
    let to = from + 31 * DAY;
    // 10,000 bookings over the month: 500 per staff member, 30-75 minutes each with gaps of
    // 0-30 minutes, on a fixed pseudo-random schedule (no overlap within a staff member). They
    // are not confined to working hours, as holds and staff-made bookings need not be.
    let mut busy: Vec<Vec<Interval>> = vec![Vec::new(); 20];
    let mut seed: u64 = 42;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as i64
    };
    for (s, list) in busy.iter_mut().enumerate() {
        let mut t = from + (s as i64) * 7 * MIN;
        while list.len() < 500 {
            t += (next() % 31) * MIN;
            let len = (next() % 4 + 2) * 15 * MIN;
            list.push(Interval::new(t, t + len));
            t += len;
        }
    }
    let total: usize = busy.iter().map(Vec::len).sum();
    let rules = ServiceRules {
        duration_min: 45,
        buffer_before_min: 5,
        buffer_after_min: 10,
        min_notice_min: 60,
        horizon_days: 90,
        slot_step_min: 15,
    };
    let now = from - DAY;
    let inputs: Vec<StaffBusy<'_>> = staff
        .iter()
        .zip(&busy)
        .map(|(c, b)| StaffBusy {
            calendar: c,
            busy: b,
        })
        .collect();

    let mut search = Vec::with_capacity(iterations);
    let mut baseline = Vec::with_capacity(iterations);
    let mut found = 0;
    for _ in 0..iterations {
        let t = Instant::now();
        let mut sum = 0i64;
        for list in &busy {
            for i in list {
                sum = sum.wrapping_add(std::hint::black_box(i.end_ms - i.start_ms));
            }
        }
        std::hint::black_box(sum);
        baseline.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let starts =
            slots::available_starts_any(std::hint::black_box(&inputs), &rules, from, to, now);
        search.push(t.elapsed().as_secs_f64() * 1e3);
        found = starts.len();
    }
    search.sort_by(|a, b| a.total_cmp(b));
    baseline.sort_by(|a, b| a.total_cmp(b));
    let (p50, p99) = (percentile(&search, 0.5), percentile(&search, 0.99));
    let (b50, b99) = (percentile(&baseline, 0.5), percentile(&baseline, 0.99));
    println!("| measure | p50 | p99 | p50 / baseline p50 |");
    println!("|---|---|---|---|");
    println!(
        "| slot search, 1 month, 20 staff, {total} bookings, anyone ({found} starts found) | {p50:.2} ms | {p99:.2} ms | {:.0}x |",
        p50 / b50
    );
    println!("| baseline: one pass over the same bookings | {b50:.4} ms | {b99:.4} ms | 1x |");
    println!();
    println!("{iterations} iterations; target: p99 under 20 ms.");
}

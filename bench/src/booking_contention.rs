//! Booking creation under contention, in process, through the portal's own booking path
//! (`domain::booking::create`: write transaction, re-check of the slot, insert guarded by the
//! database's no-overlap constraint, history, confirmation email and reminder enqueued) against a
//! real database: the one `STOEP_DATABASE_URL` names (a fresh SQLite file or PostgreSQL database),
//! with the portal's own pool settings. HTTP is left out on purpose: the page benchmark covers it.
//!
//! Set-up: the demo business, 20 members of staff offering the 30-minute "Consultation", and one
//! customer per client. `clients` tasks then make `requests` booking requests between them, "with
//! anyone", at a random start among the free starts of one day; the day moves on every
//! `PER_DAY` requests, so all clients crowd the same few dozen starts at once and many requests
//! collide. Each request ends booked, or refused as taken. Afterwards no two active bookings of
//! one member of staff may overlap.
//!
//! Baseline, same database, same pool, same number of clients and requests: one trivial INSERT per
//! request, in the same kind of write transaction (`BEGIN IMMEDIATE` on SQLite).
//!
//! `booking_contention <label> [clients] [requests]`; prints one Markdown row per measure.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use domain::booking::{self, BookingError};
use domain::db::{self, now_ms};
use rand::Rng;
use sea_orm::ConnectionTrait;
use stoep_bench::{percentile, rate};

/// Requests aimed at one day before the crowd moves to the next.
const PER_DAY: usize = 150;
const STAFF: usize = 20;

#[derive(Default)]
struct Tally {
    booked: AtomicUsize,
    taken: AtomicUsize,
    errors: AtomicUsize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let label = args.next().unwrap_or_else(|| "database".into());
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let requests: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);

    let services = stoep_bench::portal_from_env().await?;
    let db = services.db.clone();
    let settings = services.settings.clone();
    domain::demo::seed(&db).await?;
    let service_id = stoep_bench::consultation(&db).await?;
    stoep_bench::add_staff(&db, STAFF - 1, service_id).await?;
    let customers = Arc::new(stoep_bench::add_customers(&db, clients, "contention", None).await?);

    // Free starts for "anyone" over the service's horizon, grouped by (UTC) day.
    let service = booking::service(&db, service_id).await?.expect("service");
    let now = now_ms();
    let free = booking::search(&db, &service, None, now, now + 60 * 86_400_000, now).await?;
    let mut days: Vec<Vec<i64>> = Vec::new();
    for (start, _) in free {
        match days.last_mut() {
            Some(d) if d[0] / 86_400_000 == start / 86_400_000 => d.push(start),
            _ => days.push(vec![start]),
        }
    }
    let days = Arc::new(days);
    let needed = requests.div_ceil(PER_DAY);
    anyhow::ensure!(
        days.len() >= needed,
        "only {} bookable days, {needed} needed",
        days.len()
    );

    // Baseline: a trivial INSERT per request.
    db.execute_unprepared(
        "CREATE TABLE bench_inserts (client BIGINT NOT NULL, at BIGINT NOT NULL)",
    )
    .await?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (db, next) = (db.clone(), next.clone());
        tasks.spawn(async move {
            let mut lat = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                let t = Instant::now();
                let txn = db::begin_write(&db).await?;
                db::execute(
                    &txn,
                    "INSERT INTO bench_inserts (client, at) VALUES (?, ?)",
                    vec![(c as i64).into(), now_ms().into()],
                )
                .await?;
                txn.commit().await?;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
            Ok::<_, sea_orm::DbErr>(lat)
        });
    }
    let mut base_lat = Vec::new();
    while let Some(r) = tasks.join_next().await {
        base_lat.extend(r??);
    }
    let base_secs = started.elapsed().as_secs_f64();
    let base_rate = requests as f64 / base_secs;

    // The booking path.
    let next = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (db, settings, next, tally, days, customers) = (
            db.clone(),
            settings.clone(),
            next.clone(),
            tally.clone(),
            days.clone(),
            customers.clone(),
        );
        tasks.spawn(async move {
            let mut lat = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= requests {
                    break;
                }
                let day = &days[k / PER_DAY];
                let start = day[rand::thread_rng().gen_range(0..day.len())];
                let t = Instant::now();
                let result =
                    booking::create(&db, &settings, customers[c], service_id, None, start).await;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
                match result {
                    Ok(_) => tally.booked.fetch_add(1, Ordering::Relaxed),
                    // Re-checked on the server and no longer free, or refused by the database.
                    Err(BookingError::Taken | BookingError::Refused(_)) => {
                        tally.taken.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(e) => {
                        if tally.errors.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("booking_contention: first unexpected error: {e}");
                        }
                        0
                    }
                };
            }
            lat
        });
    }
    let mut lat = Vec::new();
    while let Some(r) = tasks.join_next().await {
        lat.extend(r?);
    }
    let secs = started.elapsed().as_secs_f64();
    let doubles = stoep_bench::double_bookings(&db).await?;
    lat.sort_by(f64::total_cmp);
    base_lat.sort_by(f64::total_cmp);
    let booked = tally.booked.load(Ordering::Relaxed);
    let taken = tally.taken.load(Ordering::Relaxed);
    let errors = tally.errors.load(Ordering::Relaxed);
    let req_rate = requests as f64 / secs;
    let book_rate = booked as f64 / secs;
    // The target is set for SQLite, the default database.
    let target = match (label.as_str(), book_rate >= 300.0) {
        ("sqlite", true) => "; target ≥ 300 bookings/s: met",
        ("sqlite", false) => "; target ≥ 300 bookings/s: **missed**",
        _ => "",
    };
    println!(
        "| {label} | booking requests ({clients} clients, {requests} requests, 20 staff) | {} | {} | {:.1} ms | {:.1} ms | {:.2} | {booked} booked, {taken} taken, {errors} errors; **{doubles} double bookings**{target} |",
        rate(req_rate),
        rate(book_rate),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        req_rate / base_rate,
    );
    println!(
        "| {label} | baseline: one INSERT per request, write transaction | {} | | {:.1} ms | {:.1} ms | 1 | |",
        rate(base_rate),
        percentile(&base_lat, 0.5),
        percentile(&base_lat, 0.99),
    );
    anyhow::ensure!(doubles == 0, "{doubles} double bookings on {label}");
    Ok(())
}

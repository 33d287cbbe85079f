//! Shared by the benchmark binaries: the portal's services from the same `STOEP_*` environment
//! `stoep serve` reads, seeding helpers (staff, customers), percentiles and the double-booking
//! check. Every binary prints Markdown table rows (or `key=value` lines for `run.sh`); `run.sh`
//! puts them together in `bench/RESULTS.md`.

use app::ssr::db::{self, col, now_ms};
use sea_orm::{DatabaseConnection, DbErr};
use server::config::Settings;
use server::startup::{self, Services};

/// The portal's services (database connected and migrated, settings), built exactly as
/// `stoep serve` builds them from the `STOEP_*` environment.
pub async fn services_from_env() -> anyhow::Result<Services> {
    let settings = Settings::load()?;
    startup::prepare(settings, None, None, None).await
}

/// The `p` quantile (0..=1) of an ascending list, nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The id of the demo's "Consultation" service (seeded by `server::demo::seed`).
pub async fn consultation(db: &DatabaseConnection) -> Result<i64, DbErr> {
    let row = db::query_one(
        db,
        "SELECT id FROM services WHERE name = 'Consultation'",
        vec![],
    )
    .await?
    .ok_or_else(|| DbErr::RecordNotFound("the demo's Consultation service".into()))?;
    col(&row, "id")
}

/// Adds `n` members of staff with the demo's hours (Monday to Saturday, 08:00-17:00) who offer
/// `service_id`.
pub async fn add_staff(db: &DatabaseConnection, n: usize, service_id: i64) -> Result<(), DbErr> {
    let txn = db::begin_write(db).await?;
    let now = now_ms();
    for i in 0..n {
        let row = db::query_one(
            &txn,
            "INSERT INTO users (email, name, role, status, email_verified_at, created_at, updated_at) \
             VALUES (?, ?, 'staff', 'active', ?, ?, ?) RETURNING id",
            vec![
                format!("staff{i}@bench.stoep.localhost").into(),
                format!("Bench Staff {i}").into(),
                now.into(),
                now.into(),
                now.into(),
            ],
        )
        .await?
        .ok_or(DbErr::RecordNotInserted)?;
        let id: i64 = col(&row, "id")?;
        for day in 0..6 {
            db::execute(
                &txn,
                "INSERT INTO working_hours (staff_id, weekday, start_min, end_min) VALUES (?, ?, 480, 1020)",
                vec![id.into(), day.into()],
            )
            .await?;
        }
        db::execute(
            &txn,
            "INSERT INTO service_staff (service_id, staff_id) VALUES (?, ?)",
            vec![service_id.into(), id.into()],
        )
        .await?;
    }
    txn.commit().await
}

/// Adds `n` verified, active customers without a password (they are used in-process) and returns
/// their ids. `tag` keeps emails unique between calls.
pub async fn add_customers(
    db: &DatabaseConnection,
    n: usize,
    tag: &str,
    password_hash: Option<&str>,
) -> Result<Vec<i64>, DbErr> {
    let txn = db::begin_write(db).await?;
    let now = now_ms();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let row = db::query_one(
            &txn,
            "INSERT INTO users (email, name, password_hash, role, status, email_verified_at, privacy_notice_version, privacy_accepted_at, created_at, updated_at) \
             VALUES (?, ?, ?, 'customer', 'active', ?, '2026-11-28', ?, ?, ?) RETURNING id",
            vec![
                format!("{tag}{i}@bench.example.com").into(),
                format!("Bench Customer {i}").into(),
                password_hash.map(str::to_owned).into(),
                now.into(),
                now.into(),
                now.into(),
                now.into(),
            ],
        )
        .await?
        .ok_or(DbErr::RecordNotInserted)?;
        ids.push(col(&row, "id")?);
    }
    txn.commit().await?;
    Ok(ids)
}

/// Pairs of active bookings (confirmed or holding) of one member of staff whose blocks overlap,
/// buffers included. Must be zero: the check the portal's constraints exist for.
pub async fn double_bookings(db: &DatabaseConnection) -> Result<i64, DbErr> {
    let row = db::query_one(
        db,
        "SELECT COUNT(*) AS n FROM bookings a JOIN bookings b ON a.staff_id = b.staff_id AND a.id < b.id \
         WHERE a.status IN ('confirmed', 'awaiting_deposit') AND b.status IN ('confirmed', 'awaiting_deposit') \
         AND a.block_start < b.block_end AND b.block_start < a.block_end",
        vec![],
    )
    .await?
    .ok_or(DbErr::RecordNotFound("count".into()))?;
    col(&row, "n")
}

/// A rate for tables: no decimals above 100, one below.
pub fn rate(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

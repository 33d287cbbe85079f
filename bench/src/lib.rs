//! Shared by the benchmark binaries: the portal's database and settings from the same `STOEP_*`
//! environment `stoep serve` reads (the few settings the benchmarks need), seeding helpers (staff,
//! customers), percentiles and the double-booking check. Every binary prints Markdown table rows (or `key=value` lines for `run.sh`); `run.sh`
//! puts them together in `bench/RESULTS.md`.

use domain::db::{self, col, now_ms};
use std::sync::Arc;

use domain::PortalSettings;
use sea_orm::{DatabaseConnection, DbErr};
use secrecy::SecretString;

/// What the benchmarks need of the portal: its database (connected and migrated as `stoep serve`
/// does it) and its settings, from the `STOEP_*` environment `bench/run.sh` sets.
pub struct Portal {
    pub db: DatabaseConnection,
    pub settings: Arc<PortalSettings>,
    /// `STOEP_WORKER__CONCURRENCY` (default 8).
    pub worker_concurrency: usize,
    /// `STOEP_WORKER__POLL_INTERVAL_MS` (default 250).
    pub poll_interval_ms: u64,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The portal's database and settings from the environment.
pub async fn portal_from_env() -> anyhow::Result<Portal> {
    let url = std::env::var("STOEP_DATABASE_URL")
        .map_err(|_| anyhow::anyhow!("STOEP_DATABASE_URL must name the benchmark's database"))?;
    let db = domain::database::connect(&SecretString::from(url), 10).await?;
    domain::database::migrate(&db).await?;
    let settings = PortalSettings {
        public_url: env_or("STOEP_PUBLIC_URL", "http://127.0.0.1:3000")
            .trim_end_matches('/')
            .to_owned(),
        branding: model::Branding {
            business_name: env_or("STOEP_BUSINESS__NAME", "Stoep Demo Studio"),
            ..Default::default()
        },
        mail_from: env_or("STOEP_SMTP__FROM", "Stoep <noreply@stoep.localhost>"),
        privacy_notice_version: "2026-11-28".into(),
        privacy_notice: None,
        demo: true,
        checkout_origin: String::new(),
        storage_description: None,
        map: Default::default(),
        documents: Default::default(),
    };
    Ok(Portal {
        db,
        settings: Arc::new(settings),
        worker_concurrency: env_or("STOEP_WORKER__CONCURRENCY", "8").parse()?,
        poll_interval_ms: env_or("STOEP_WORKER__POLL_INTERVAL_MS", "250").parse()?,
    })
}

/// The `p` quantile (0..=1) of an ascending list, nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The id of the demo's "Consultation" service (seeded by `domain::demo::seed`).
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

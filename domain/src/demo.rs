//! Demo data for the run command (`demo = true`): a member of staff with weekday hours and two
//! services, one with a deposit, so a new user can book straight away. Only added when the
//! portal has no services yet; never touches existing data.

use crate::db::{self, col, now_ms};
use sea_orm::{DatabaseConnection, DbErr};

pub async fn seed(db: &DatabaseConnection) -> Result<(), DbErr> {
    let txn = db::begin_write(db).await?;
    let services: i64 = db::query_one(&txn, "SELECT COUNT(*) AS n FROM services", vec![])
        .await?
        .map(|r| col(&r, "n"))
        .transpose()?
        .unwrap_or(0);
    if services > 0 {
        return Ok(());
    }
    let now = now_ms();
    let staff: i64 = match db::query_one(&txn, "SELECT id FROM users WHERE email = 'thandi@demo.stoep.localhost'", vec![]).await? {
        Some(r) => col(&r, "id")?,
        None => col(
            &db::query_one(
                &txn,
                "INSERT INTO users (email, name, role, status, email_verified_at, created_at, updated_at) VALUES ('thandi@demo.stoep.localhost', 'Thandi Nkosi', 'staff', 'active', ?, ?, ?) RETURNING id",
                vec![now.into(), now.into(), now.into()],
            )
            .await?
            .ok_or(DbErr::RecordNotInserted)?,
            "id",
        )?,
    };
    for day in 0..6 {
        db::execute(&txn, "INSERT INTO working_hours (staff_id, weekday, start_min, end_min) VALUES (?, ?, 480, 1020)", vec![staff.into(), day.into()]).await?;
    }
    for (name, description, duration, before, after, price, kind, value) in [
        (
            "Consultation",
            "A first conversation about what you need.",
            30,
            0,
            10,
            35_000,
            "none",
            0,
        ),
        (
            "Treatment",
            "A full treatment session.",
            60,
            5,
            10,
            65_000,
            "fixed",
            15_000,
        ),
    ] {
        let id: i64 = col(
            &db::query_one(
                &txn,
                "INSERT INTO services (name, description, duration_min, buffer_before_min, buffer_after_min, price_cents, deposit_kind, deposit_value, min_notice_min, horizon_days, slot_step_min, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, 60, 60, 15, ?, ?) RETURNING id",
                vec![name.into(), description.into(), duration.into(), before.into(), after.into(), price.into(), kind.into(), value.into(), now.into(), now.into()],
            )
            .await?
            .ok_or(DbErr::RecordNotInserted)?,
            "id",
        )?;
        db::execute(
            &txn,
            "INSERT INTO service_staff (service_id, staff_id) VALUES (?, ?)",
            vec![id.into(), staff.into()],
        )
        .await?;
    }
    txn.commit().await?;
    tracing::info!(
        "demo data added: Thandi Nkosi with weekday hours, a consultation and a treatment with a deposit"
    );
    Ok(())
}

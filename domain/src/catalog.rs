//! What the business offers and when: services, who offers each, staff members' weekly hours,
//! their own time zones and exceptions, and the business's booking settings. Admins edit these on
//! the setup page; the booking engine (`booking`) reads them.

use sea_orm::{ConnectionTrait, DatabaseConnection, FromQueryResult};

use crate::audit;
use crate::db::{self, col, now_ms};
use model::error::AppError;

/// A service as an admin saves it (already checked by the caller).
#[derive(Clone, Debug)]
pub struct ServiceInput {
    pub name: String,
    pub description: String,
    pub duration_min: i32,
    pub buffer_before_min: i32,
    pub buffer_after_min: i32,
    pub price_cents: i64,
    /// `none`, `fixed` or `percent`.
    pub deposit_kind: String,
    /// Cents for `fixed`, basis points for `percent`.
    pub deposit_value: i64,
    pub min_notice_min: i32,
    pub horizon_days: i32,
    pub active: bool,
}

/// Creates (no `id`) or updates a service; returns its id. Audited.
#[tracing::instrument(skip_all)]
pub async fn save_service(
    db: &DatabaseConnection,
    actor: i64,
    id: Option<i64>,
    s: &ServiceInput,
) -> Result<i64, AppError> {
    let now = now_ms();
    let txn = db::begin_write(db).await?;
    let values = vec![
        s.name.clone().into(),
        s.description.clone().into(),
        s.duration_min.into(),
        s.buffer_before_min.into(),
        s.buffer_after_min.into(),
        s.price_cents.into(),
        s.deposit_kind.clone().into(),
        s.deposit_value.into(),
        s.min_notice_min.into(),
        s.horizon_days.into(),
        s.active.into(),
        now.into(),
    ];
    let id = match id {
        Some(id) => {
            let mut v = values;
            v.push(id.into());
            let n = db::execute(&txn, "UPDATE services SET name = ?, description = ?, duration_min = ?, buffer_before_min = ?, buffer_after_min = ?, price_cents = ?, deposit_kind = ?, deposit_value = ?, min_notice_min = ?, horizon_days = ?, active = ?, updated_at = ? WHERE id = ?", v).await?;
            if n == 0 {
                return Err(AppError::NotFound);
            }
            id
        }
        None => {
            let mut v = values;
            v.push(now.into());
            let r = db::query_one(&txn, "INSERT INTO services (name, description, duration_min, buffer_before_min, buffer_after_min, price_cents, deposit_kind, deposit_value, min_notice_min, horizon_days, active, updated_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id", v).await?.ok_or(AppError::Internal)?;
            col(&r, "id")?
        }
    };
    audit::record(
        &txn,
        Some(actor),
        "setup.service",
        "service",
        &id.to_string(),
        &format!("service {} saved", s.name),
    )
    .await?;
    txn.commit().await?;
    Ok(id)
}

/// Who offers a service.
#[tracing::instrument(skip_all, err)]
pub async fn service_staff_ids<C: ConnectionTrait>(
    conn: &C,
    service_id: i64,
) -> Result<Vec<i64>, sea_orm::DbErr> {
    db::query(
        conn,
        "SELECT staff_id FROM service_staff WHERE service_id = ?",
        vec![service_id.into()],
    )
    .await?
    .iter()
    .map(|r| col(r, "staff_id"))
    .collect()
}

/// Whether a member of staff offers a service. Audited; an unknown service or person is 404.
#[tracing::instrument(skip_all)]
pub async fn set_service_staff(
    db: &DatabaseConnection,
    actor: i64,
    service_id: i64,
    staff_id: i64,
    offered: bool,
) -> Result<(), AppError> {
    let ok = db::query_one(db, "SELECT 1 AS one FROM users u, services s WHERE u.id = ? AND s.id = ? AND u.role IN ('staff', 'admin')", vec![staff_id.into(), service_id.into()]).await?.is_some();
    if !ok {
        return Err(AppError::NotFound);
    }
    if offered {
        db::execute(
            db,
            "INSERT INTO service_staff (service_id, staff_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            vec![service_id.into(), staff_id.into()],
        )
        .await?;
    } else {
        db::execute(
            db,
            "DELETE FROM service_staff WHERE service_id = ? AND staff_id = ?",
            vec![service_id.into(), staff_id.into()],
        )
        .await?;
    }
    audit::record(
        db,
        Some(actor),
        "setup.service_staff",
        "service",
        &service_id.to_string(),
        &format!(
            "staff {staff_id} {}",
            if offered {
                "offers it"
            } else {
                "no longer offers it"
            }
        ),
    )
    .await?;
    Ok(())
}

/// An exception to a member of staff's weekly hours.
#[derive(Clone, Debug, PartialEq, Eq, FromQueryResult)]
pub struct ExceptionRow {
    pub id: i64,
    /// `day_off`, `changed_day` or `time_off`.
    pub kind: String,
    pub local_date: Option<String>,
    pub start_min: Option<i32>,
    pub end_min: Option<i32>,
    pub start_at: Option<i64>,
    pub end_at: Option<i64>,
    pub note: String,
}

/// A member of staff's schedule as the setup page shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaffSchedule {
    pub id: i64,
    pub name: String,
    /// `(weekday 0 = Monday, start minute, end minute)`, by day and start.
    pub hours: Vec<(i32, i32, i32)>,
    pub exceptions: Vec<ExceptionRow>,
    /// Their own zone, empty for the business's.
    pub time_zone: String,
}

/// Every active member of staff (and admin) with their hours and exceptions, by name.
#[tracing::instrument(skip_all, err)]
pub async fn staff_schedules<C: ConnectionTrait>(
    conn: &C,
) -> Result<Vec<StaffSchedule>, sea_orm::DbErr> {
    let mut out = Vec::new();
    for r in db::query(conn, "SELECT id, name FROM users WHERE role IN ('staff', 'admin') AND status = 'active' ORDER BY name, id", vec![]).await? {
        let id: i64 = col(&r, "id")?;
        let mut hours = Vec::new();
        for h in db::query(conn, "SELECT weekday, start_min, end_min FROM working_hours WHERE staff_id = ? ORDER BY weekday, start_min", vec![id.into()]).await? {
            hours.push((col(&h, "weekday")?, col(&h, "start_min")?, col(&h, "end_min")?));
        }
        let exceptions = db::query(conn, "SELECT id, kind, local_date, start_min, end_min, start_at, end_at, note FROM availability_exceptions WHERE staff_id = ? ORDER BY COALESCE(local_date, ''), start_at, id", vec![id.into()])
            .await?
            .iter()
            .map(|e| ExceptionRow::from_query_result(e, ""))
            .collect::<Result<Vec<_>, _>>()?;
        let time_zone: String = db::query_one(conn, "SELECT time_zone FROM staff_profiles WHERE user_id = ?", vec![id.into()])
            .await?
            .and_then(|r| col::<Option<String>>(&r, "time_zone").ok().flatten())
            .unwrap_or_default();
        out.push(StaffSchedule {
            id,
            name: col(&r, "name")?,
            hours,
            exceptions,
            time_zone,
        });
    }
    Ok(out)
}

async fn is_staff<C: ConnectionTrait>(conn: &C, id: i64) -> Result<bool, sea_orm::DbErr> {
    Ok(db::query_one(
        conn,
        "SELECT id FROM users WHERE id = ? AND role IN ('staff', 'admin')",
        vec![id.into()],
    )
    .await?
    .is_some())
}

/// Replaces a member of staff's weekly hours (`(weekday, start minute, end minute)`) and their
/// own time zone (`None`: the business's). Audited; an unknown person is 404.
#[tracing::instrument(skip_all)]
pub async fn save_hours(
    db: &DatabaseConnection,
    actor: i64,
    staff_id: i64,
    hours: &[(i32, i32, i32)],
    zone: Option<String>,
) -> Result<(), AppError> {
    let txn = db::begin_write(db).await?;
    if !is_staff(&txn, staff_id).await? {
        return Err(AppError::NotFound);
    }
    db::execute(
        &txn,
        "DELETE FROM working_hours WHERE staff_id = ?",
        vec![staff_id.into()],
    )
    .await?;
    for (d, s, e) in hours {
        db::execute(
            &txn,
            "INSERT INTO working_hours (staff_id, weekday, start_min, end_min) VALUES (?, ?, ?, ?)",
            vec![staff_id.into(), (*d).into(), (*s).into(), (*e).into()],
        )
        .await?;
    }
    db::execute(
        &txn,
        "INSERT INTO staff_profiles (user_id, time_zone, bookable, updated_at) VALUES (?, ?, TRUE, ?) \
         ON CONFLICT (user_id) DO UPDATE SET time_zone = excluded.time_zone, updated_at = excluded.updated_at",
        vec![staff_id.into(), zone.into(), now_ms().into()],
    )
    .await?;
    audit::record(
        &txn,
        Some(actor),
        "setup.hours",
        "user",
        &staff_id.to_string(),
        "weekly hours saved",
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// A new exception (already checked by the caller): a day off (no times), a changed day (local
/// minutes) or time off (instants).
#[derive(Clone, Debug)]
pub struct NewException {
    pub kind: String,
    /// `YYYY-MM-DD`, local to the business.
    pub local_date: String,
    pub start_min: Option<i32>,
    pub end_min: Option<i32>,
    pub start_at: Option<i64>,
    pub end_at: Option<i64>,
    pub note: String,
}

/// Adds an exception. Audited; an unknown person is 404.
#[tracing::instrument(skip_all)]
pub async fn add_exception(
    db: &DatabaseConnection,
    actor: i64,
    staff_id: i64,
    e: &NewException,
) -> Result<(), AppError> {
    if !is_staff(db, staff_id).await? {
        return Err(AppError::NotFound);
    }
    db::execute(
        db,
        "INSERT INTO availability_exceptions (staff_id, kind, local_date, start_min, end_min, start_at, end_at, note, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        vec![staff_id.into(), e.kind.clone().into(), e.local_date.clone().into(), e.start_min.into(), e.end_min.into(), e.start_at.into(), e.end_at.into(), e.note.clone().into(), now_ms().into()],
    )
    .await?;
    audit::record(
        db,
        Some(actor),
        "setup.exception",
        "user",
        &staff_id.to_string(),
        &format!("{} on {}", e.kind, e.local_date),
    )
    .await?;
    Ok(())
}

/// Removes an exception. Audited; an unknown one is 404.
#[tracing::instrument(skip_all)]
pub async fn remove_exception(
    db: &DatabaseConnection,
    actor: i64,
    id: i64,
) -> Result<(), AppError> {
    if db::execute(
        db,
        "DELETE FROM availability_exceptions WHERE id = ?",
        vec![id.into()],
    )
    .await?
        == 0
    {
        return Err(AppError::NotFound);
    }
    audit::record(
        db,
        Some(actor),
        "setup.exception_removed",
        "exception",
        &id.to_string(),
        "exception removed",
    )
    .await?;
    Ok(())
}

/// The business's booking settings as an admin saves them (already checked by the caller).
#[derive(Clone, Debug)]
pub struct BusinessInput {
    /// An IANA zone name.
    pub time_zone: String,
    pub currency: String,
    pub vat_rate_bp: i64,
    pub prices_include_vat: bool,
    pub free_change_hours: i64,
    pub hold_minutes: i64,
    pub reminder_hours: i64,
}

/// Saves the business's booking settings. Audited.
#[tracing::instrument(skip_all)]
pub async fn save_business(
    db: &DatabaseConnection,
    actor: i64,
    b: &BusinessInput,
) -> Result<(), AppError> {
    db::execute(
        db,
        "UPDATE business_settings SET time_zone = ?, currency = ?, vat_rate_bp = ?, prices_include_vat = ?, free_change_hours = ?, hold_minutes = ?, reminder_hours = ?, updated_at = ? WHERE id = 1",
        vec![b.time_zone.clone().into(), b.currency.clone().into(), b.vat_rate_bp.into(), b.prices_include_vat.into(), b.free_change_hours.into(), b.hold_minutes.into(), b.reminder_hours.into(), now_ms().into()],
    )
    .await?;
    audit::record(
        db,
        Some(actor),
        "setup.business",
        "business",
        "1",
        "business settings saved",
    )
    .await?;
    Ok(())
}

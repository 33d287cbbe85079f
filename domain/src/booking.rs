//! The booking engine around the pure slot engine (`slots`): the business's settings, services,
//! staff calendars from the database, slot search, and every change to a booking (create, hold,
//! confirm, reschedule, cancel, complete, no-show) with its history and its outbound effects
//! (emails with calendar files, reminders, hold expiry) enqueued in the same transaction.
//!
//! No double booking: the slot is re-checked on the server inside a write transaction, and the
//! database itself refuses overlapping active bookings of one staff member, buffers included
//! (an exclusion constraint on PostgreSQL, triggers on SQLite), so two racing requests get one
//! booking and one "that time was just taken".

use model::BookingStatus;
use std::collections::HashMap;
use std::str::FromStr;

use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, FromQueryResult};
use serde::{Deserialize, Serialize};
use slots::chrono::{NaiveDate, Weekday};
use slots::{
    Exception, Interval, LocalRange, ServiceRules, StaffBusy, StaffCalendar, Tz, WeeklyHours,
};

use crate::db::{self, col, now_ms};
use crate::email::{self as mail, Attachment};
use crate::ledger::{self, NewJob, Subject};
pub use crate::records::{BookingView, Business, booking as view, business, local_time, money};
use crate::settings::PortalSettings;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

/// A service as customers see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sea_orm::FromQueryResult)]
pub struct Service {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub duration_min: i32,
    pub buffer_before_min: i32,
    pub buffer_after_min: i32,
    pub price_cents: i64,
    pub deposit_kind: String,
    pub deposit_value: i64,
    pub min_notice_min: i32,
    pub horizon_days: i32,
    pub slot_step_min: i32,
    pub active: bool,
}

impl Service {
    pub fn rules(&self) -> ServiceRules {
        ServiceRules {
            duration_min: self.duration_min.max(1) as u32,
            buffer_before_min: self.buffer_before_min.max(0) as u32,
            buffer_after_min: self.buffer_after_min.max(0) as u32,
            min_notice_min: self.min_notice_min.max(0) as u32,
            horizon_days: self.horizon_days.max(0) as u32,
            slot_step_min: self.slot_step_min.max(1) as u32,
        }
    }

    /// The deposit in minor units: none, a fixed amount, or a percentage (basis points) of the price.
    pub fn deposit_cents(&self) -> i64 {
        match self.deposit_kind.as_str() {
            "fixed" => self.deposit_value.clamp(0, self.price_cents),
            "percent" => (self.price_cents * self.deposit_value.clamp(0, 10_000) + 5_000) / 10_000,
            _ => 0,
        }
    }
}

#[tracing::instrument(skip_all, err)]
pub async fn service<C: ConnectionTrait>(conn: &C, id: i64) -> Result<Option<Service>, DbErr> {
    db::query_one(conn, "SELECT * FROM services WHERE id = ?", vec![id.into()])
        .await?
        .map(|r| Service::from_query_result(&r, ""))
        .transpose()
}

#[tracing::instrument(skip_all, err)]
pub async fn services<C: ConnectionTrait>(
    conn: &C,
    active_only: bool,
) -> Result<Vec<Service>, DbErr> {
    let sql = if active_only {
        "SELECT * FROM services WHERE active = TRUE ORDER BY name, id"
    } else {
        "SELECT * FROM services ORDER BY name, id"
    };
    db::query(conn, sql, vec![])
        .await?
        .iter()
        .map(|r| Service::from_query_result(r, ""))
        .collect()
}

/// Staff who offer `service_id` and can be booked now (active account, bookable profile).
#[tracing::instrument(skip_all, err)]
pub async fn staff_for_service<C: ConnectionTrait>(
    conn: &C,
    service_id: i64,
) -> Result<Vec<(i64, String)>, DbErr> {
    db::query(
        conn,
        "SELECT u.id AS id, u.name AS name FROM service_staff ss JOIN users u ON u.id = ss.staff_id \
         LEFT JOIN staff_profiles p ON p.user_id = u.id \
         WHERE ss.service_id = ? AND u.status = 'active' AND u.role IN ('staff', 'admin') AND COALESCE(p.bookable, TRUE) = TRUE ORDER BY u.id",
        vec![service_id.into()],
    )
    .await?
    .iter()
    .map(|r| Ok((col(r, "id")?, col(r, "name")?)))
    .collect()
}

fn weekday(n: i32) -> Weekday {
    match n {
        0 => Weekday::Mon,
        1 => Weekday::Tue,
        2 => Weekday::Wed,
        3 => Weekday::Thu,
        4 => Weekday::Fri,
        5 => Weekday::Sat,
        _ => Weekday::Sun,
    }
}

/// `?, ?, ?` for `n` values (`n` > 0), and the ids as values.
fn id_list(ids: impl IntoIterator<Item = i64>) -> (String, Vec<sea_orm::Value>) {
    let values: Vec<sea_orm::Value> = ids.into_iter().map(Into::into).collect();
    (vec!["?"; values.len()].join(", "), values)
}

/// The calendars of `staff` (weekly hours, exceptions, zone), in the order given. Three queries
/// whatever the number of staff: a booking "with anyone" reads every candidate's calendar
/// inside its write transaction, so one query per staff member per table would hold the write
/// lock for dozens of round trips.
#[tracing::instrument(skip_all, err)]
pub async fn calendars<C: ConnectionTrait>(
    conn: &C,
    staff: &[(i64, String)],
    business_tz: Tz,
) -> Result<Vec<StaffCalendar>, DbErr> {
    if staff.is_empty() {
        return Ok(Vec::new());
    }
    let (marks, ids) = id_list(staff.iter().map(|s| s.0));
    let mut zones: HashMap<i64, Tz> = HashMap::new();
    for r in db::query(
        conn,
        &format!("SELECT user_id, time_zone FROM staff_profiles WHERE user_id IN ({marks})"),
        ids.clone(),
    )
    .await?
    {
        if let Some(tz) =
            col::<Option<String>>(&r, "time_zone")?.and_then(|t| Tz::from_str(&t).ok())
        {
            zones.insert(col(&r, "user_id")?, tz);
        }
    }
    let mut hours: HashMap<i64, HashMap<i32, Vec<LocalRange>>> = HashMap::new();
    for r in db::query(
        conn,
        &format!("SELECT staff_id, weekday, start_min, end_min FROM working_hours WHERE staff_id IN ({marks})"),
        ids.clone(),
    )
    .await?
    {
        if let Ok(range) = LocalRange::new(
            col::<i32>(&r, "start_min")? as u16,
            col::<i32>(&r, "end_min")? as u16,
        ) {
            hours
                .entry(col(&r, "staff_id")?)
                .or_default()
                .entry(col(&r, "weekday")?)
                .or_default()
                .push(range);
        }
    }
    let mut exceptions: HashMap<i64, Vec<Exception>> = HashMap::new();
    for r in db::query(conn, &format!("SELECT staff_id, kind, local_date, start_min, end_min, start_at, end_at FROM availability_exceptions WHERE staff_id IN ({marks}) ORDER BY id"), ids).await? {
        let kind: String = col(&r, "kind")?;
        let date = col::<Option<String>>(&r, "local_date")?.and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok());
        let exception = match (kind.as_str(), date) {
            ("day_off", Some(date)) => Some(Exception::DayOff(date)),
            ("changed_day", Some(date)) => {
                let range = LocalRange::new(col::<Option<i32>>(&r, "start_min")?.unwrap_or(0) as u16, col::<Option<i32>>(&r, "end_min")?.unwrap_or(0) as u16).ok();
                Some(Exception::ChangedDay { date, ranges: range.into_iter().collect() })
            }
            ("time_off", _) => match (col::<Option<i64>>(&r, "start_at")?, col::<Option<i64>>(&r, "end_at")?) {
                (Some(s), Some(e)) if s < e => Some(Exception::TimeOff(Interval::new(s, e))),
                _ => None,
            },
            _ => None,
        };
        if let Some(e) = exception {
            exceptions.entry(col(&r, "staff_id")?).or_default().push(e);
        }
    }
    Ok(staff
        .iter()
        .map(|(id, name)| {
            let mut weekly = WeeklyHours::new();
            for (d, ranges) in hours.remove(id).unwrap_or_default() {
                weekly.set(weekday(d), ranges);
            }
            let tz = zones.get(id).copied().unwrap_or(business_tz);
            exceptions.remove(id).unwrap_or_default().into_iter().fold(
                StaffCalendar::new(*id, name.clone(), tz, weekly),
                |cal, e| cal.with_exception(e),
            )
        })
        .collect())
}

/// Busy intervals (buffers included) of `staff` between `from` and `to`: active bookings and
/// holds that have not expired. One query for all of them.
#[tracing::instrument(skip_all, err)]
pub async fn busy<C: ConnectionTrait>(
    conn: &C,
    staff: &[i64],
    from: i64,
    to: i64,
    now: i64,
    except_booking: Option<i64>,
) -> Result<HashMap<i64, Vec<Interval>>, DbErr> {
    let mut out: HashMap<i64, Vec<Interval>> = staff.iter().map(|s| (*s, Vec::new())).collect();
    if staff.is_empty() {
        return Ok(out);
    }
    let (marks, mut values) = id_list(staff.iter().copied());
    values.extend([
        to.into(),
        from.into(),
        except_booking.unwrap_or(0).into(),
        now.into(),
    ]);
    let rows = db::query(
        conn,
        &format!(
            "SELECT staff_id, block_start, block_end FROM bookings WHERE staff_id IN ({marks}) AND block_start < ? AND block_end > ? AND id <> ? \
             AND {}",
            holds_time_sql("")
        ),
        values,
    )
    .await?;
    for r in rows {
        out.entry(col(&r, "staff_id")?)
            .or_default()
            .push(Interval::new(
                col(&r, "block_start")?,
                col(&r, "block_end")?,
            ));
    }
    Ok(out)
}

/// Bookable starts for `service` between `from` and `to`, for one staff member or anyone.
#[tracing::instrument(skip_all, err)]
pub async fn search(
    db: &DatabaseConnection,
    service: &Service,
    staff_filter: Option<i64>,
    from: i64,
    to: i64,
    now: i64,
) -> Result<Vec<(i64, i64)>, DbErr> {
    let biz = business(db).await?;
    let staff = staff_for_service(db, service.id).await?;
    search_among(db, &biz, service, staff, staff_filter, from, to, now).await
}

/// [`search`] with the business settings and the service's staff already read (the slot page
/// has them: two queries fewer per page).
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(skip_all, err)]
pub async fn search_among(
    db: &DatabaseConnection,
    biz: &Business,
    service: &Service,
    mut staff: Vec<(i64, String)>,
    staff_filter: Option<i64>,
    from: i64,
    to: i64,
    now: i64,
) -> Result<Vec<(i64, i64)>, DbErr> {
    if let Some(f) = staff_filter {
        staff.retain(|(id, _)| *id == f);
    }
    let cals = calendars(db, &staff, biz.tz).await?;
    let margin =
        i64::from(service.buffer_before_min.max(service.buffer_after_min)) * MINUTE + 2 * HOUR;
    let ids: Vec<i64> = staff.iter().map(|s| s.0).collect();
    let busy = busy(
        db,
        &ids,
        from - margin - 24 * HOUR,
        to + margin + 24 * HOUR,
        now,
        None,
    )
    .await?;
    let inputs: Vec<StaffBusy<'_>> = cals
        .iter()
        .map(|c| StaffBusy {
            calendar: c,
            busy: busy.get(&c.id).map(Vec::as_slice).unwrap_or(&[]),
        })
        .collect();
    Ok(slots::available_starts_any(
        &inputs,
        &service.rules(),
        from,
        to,
        now,
    ))
}

/// Why a booking change was refused. Each message is fit to show the customer.
#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    #[error("{0}")]
    Refused(String),
    #[error(
        "That time was just taken. Please choose another; the list of free times is up to date."
    )]
    Taken,
    #[error("We couldn't find that booking.")]
    NotFound,
    #[error("{0}")]
    NotAllowed(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl From<BookingError> for model::error::AppError {
    fn from(e: BookingError) -> Self {
        use model::error::AppError;
        match e {
            BookingError::Refused(m) => AppError::Invalid(m),
            BookingError::Taken => AppError::Conflict(BookingError::Taken.to_string()),
            BookingError::NotFound => AppError::NotFound,
            BookingError::NotAllowed(m) => AppError::Conflict(m),
            BookingError::Db(d) => d.into(),
        }
    }
}

/// On PostgreSQL, takes a transaction-scoped advisory lock per staff member (in id order, so two
/// requests never wait on each other in a cycle), so that changes to one person's calendar queue
/// up instead of meeting in the exclusion check, where PostgreSQL resolves the collision only by
/// deadlock detection after a second, holding pool connections meanwhile. The exclusion
/// constraint still guarantees no overlap. SQLite's `BEGIN IMMEDIATE` already serialises writers.
#[tracing::instrument(skip_all, err)]
pub async fn lock_staff<C: ConnectionTrait>(txn: &C, staff: &[i64]) -> Result<(), DbErr> {
    if txn.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Ok(());
    }
    let mut ids: Vec<i64> = staff.to_vec();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        db::execute(
            txn,
            "SELECT pg_advisory_xact_lock(7301, CAST(? AS INTEGER))",
            vec![id.into()],
        )
        .await?;
    }
    Ok(())
}

/// True when the database refused a booking because it overlaps another (either backend). On
/// PostgreSQL two inserts racing for the same time can also meet in the exclusion check as a
/// deadlock (40P01): one of them is aborted, and for its caller the time was just taken.
pub fn is_overlap(err: &DbErr) -> bool {
    let text = err.to_string();
    if text.contains("bookings_no_overlap") || text.contains("23P01") {
        return true;
    }
    // The error's text is only PostgreSQL's message ("deadlock detected"): the code and the
    // context naming the exclusion check are read from the driver's error.
    use sea_orm::RuntimeErr;
    use sea_orm::sqlx::postgres::PgDatabaseError;
    if let DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) = err
        && let sea_orm::sqlx::Error::Database(d) = e.as_ref()
        && let Some(pg) = d.try_downcast_ref::<PgDatabaseError>()
    {
        return pg.code() == "23P01"
            || (pg.code() == "40P01"
                && pg
                    .r#where()
                    .is_some_and(|w| w.contains("exclusion constraint")));
    }
    false
}

async fn event<C: ConnectionTrait>(
    conn: &C,
    booking: i64,
    actor: Option<i64>,
    action: &str,
    detail: &str,
) -> Result<(), DbErr> {
    db::execute(
        conn,
        "INSERT INTO booking_events (booking_id, at, actor_user_id, action, detail) VALUES (?, ?, ?, ?, ?)",
        vec![booking.into(), now_ms().into(), actor.into(), action.into(), detail.into()],
    )
    .await?;
    Ok(())
}

/// The result of a successful booking.
#[derive(Debug)]
pub struct Created {
    pub id: i64,
    pub status: String,
}

/// Books `service` at `start` for `customer`, with `staff` or anyone. The start is recomputed
/// here from the database, never trusted from the client.
#[tracing::instrument(skip_all)]
pub async fn create(
    db: &DatabaseConnection,
    settings: &PortalSettings,
    customer_id: i64,
    service_id: i64,
    staff: Option<i64>,
    start: i64,
) -> Result<Created, BookingError> {
    let now = now_ms();
    let txn = db::begin_write(db).await?;
    let biz = business(&txn).await?;
    let unpaid: i64 = db::query_one(
        &txn,
        &format!(
            "SELECT COUNT(*) AS n FROM bookings WHERE customer_id = ? AND {}",
            live_hold_sql("")
        ),
        vec![customer_id.into(), now.into()],
    )
    .await?
    .map(|r| col(&r, "n"))
    .transpose()?
    .unwrap_or(0);
    if unpaid >= biz.max_unpaid_holds {
        return Err(BookingError::NotAllowed(format!(
            "You already have {unpaid} bookings waiting for a deposit. Pay or cancel one of them first."
        )));
    }
    let service = service(&txn, service_id)
        .await?
        .filter(|s| s.active)
        .ok_or_else(|| {
            BookingError::Refused("That service is not available for booking.".into())
        })?;
    let mut candidates = staff_for_service(&txn, service.id).await?;
    if let Some(s) = staff {
        candidates.retain(|(id, _)| *id == s);
        if candidates.is_empty() {
            return Err(BookingError::Refused(
                "That member of staff does not offer this service.".into(),
            ));
        }
    }
    lock_staff(&txn, &candidates.iter().map(|c| c.0).collect::<Vec<_>>()).await?;
    // Free expired holds of these staff first, so their slots can be taken.
    if !candidates.is_empty() {
        let staff: Vec<i64> = candidates.iter().map(|c| c.0).collect();
        let which = Holds {
            staff_ids: &staff,
            ..Default::default()
        };
        expire_holds(&txn, which, now).await?;
    }
    let cals = calendars(&txn, &candidates, biz.tz).await?;
    let ids: Vec<i64> = candidates.iter().map(|c| c.0).collect();
    let rules = service.rules();
    let margin = i64::from(rules.buffer_before_min.max(rules.buffer_after_min)) * MINUTE
        + i64::from(rules.duration_min) * MINUTE
        + 24 * HOUR;
    let busy = busy(&txn, &ids, start - margin, start + margin, now, None).await?;
    let inputs: Vec<StaffBusy<'_>> = cals
        .iter()
        .map(|c| StaffBusy {
            calendar: c,
            busy: busy.get(&c.id).map(Vec::as_slice).unwrap_or(&[]),
        })
        .collect();
    let staff_id = slots::check_start_any(&inputs, &rules, start, now)
        .map_err(|r| BookingError::Refused(r.message))?;
    let end = start + i64::from(rules.duration_min) * MINUTE;
    let block_start = start - i64::from(rules.buffer_before_min) * MINUTE;
    let block_end = end + i64::from(rules.buffer_after_min) * MINUTE;
    let deposit = service.deposit_cents();
    let (status, hold) = if deposit > 0 {
        ("awaiting_deposit", Some(now + biz.hold_minutes * MINUTE))
    } else {
        ("confirmed", None)
    };
    let policy = serde_json::json!({
        "free_change_hours": biz.free_change_hours,
        "late": "deposit kept",
        "vat_rate_bp": biz.vat_rate_bp,
        "prices_include_vat": biz.prices_include_vat,
    })
    .to_string();
    let inserted = db::query_one(
        &txn,
        "INSERT INTO bookings (customer_id, staff_id, service_id, start_at, end_at, block_start, block_end, status, hold_expires_at, price_cents, deposit_cents, currency, policy, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        vec![
            customer_id.into(), staff_id.into(), service.id.into(), start.into(), end.into(), block_start.into(), block_end.into(), status.into(), hold.into(),
            service.price_cents.into(), deposit.into(), biz.currency.clone().into(), policy.into(), now.into(), now.into(),
        ],
    )
    .await;
    let row = match inserted {
        Ok(Some(r)) => r,
        Ok(None) => return Err(BookingError::Db(DbErr::RecordNotInserted)),
        Err(e) if is_overlap(&e) => return Err(BookingError::Taken),
        Err(e) => return Err(e.into()),
    };
    let id: i64 = col(&row, "id")?;
    crate::crm::changed(&txn, customer_id, "booking created").await?;
    event(
        &txn,
        id,
        Some(customer_id),
        "created",
        &format!("booked {} with staff {staff_id} ({status})", service.name),
    )
    .await?;
    if let Some(expires) = hold {
        ledger::enqueue(
            &txn,
            NewJob::of(
                &crate::jobs::ExpireHold { booking_id: id },
                Subject::new("booking", id),
                format!("booking.expire_hold:{id}"),
            )
            .at(expires),
        )
        .await?;
    } else {
        after_confirmation(&txn, settings, &biz, id, 1, "confirmed").await?;
    }
    txn.commit().await?;
    Ok(Created {
        id,
        status: status.into(),
    })
}

/// Effects of a confirmed (or moved) booking: the email with its calendar file, and the reminder.
#[tracing::instrument(skip_all, err)]
pub async fn after_confirmation<C: ConnectionTrait>(
    conn: &C,
    settings: &PortalSettings,
    biz: &Business,
    id: i64,
    version: i32,
    what: &str,
) -> Result<(), DbErr> {
    let Some(b) = view(conn, id).await? else {
        return Ok(());
    };
    let Some(customer) = crate::records::find_user(conn, b.customer_id).await? else {
        return Ok(());
    };
    let ics = ics(settings, &b, "REQUEST");
    let mut message = if what == "rescheduled" {
        mail::templates::booking_rescheduled(settings, biz, &customer.name, &b)
    } else {
        mail::templates::booking_confirmed(settings, biz, &customer.name, &b)
    };
    message.attachment = Some(Attachment {
        filename: "booking.ics".into(),
        content_type: "text/calendar; method=REQUEST; charset=utf-8".into(),
        body: ics,
    });
    mail::enqueue(
        conn,
        settings,
        Some(customer.id),
        &customer.email,
        message,
        &format!("booking:{what}:{id}:{version}"),
    )
    .await?;
    let remind_at = b.start_ms - biz.reminder_hours * HOUR;
    // A booking made inside the reminder window gets no reminder: the confirmation is fresh.
    if remind_at > now_ms() {
        ledger::enqueue(
            conn,
            NewJob::of(
                &crate::jobs::BookingReminder {
                    booking_id: id,
                    version,
                },
                Subject::new("booking", id),
                format!("booking.reminder:{id}:{version}"),
            )
            .at(remind_at),
        )
        .await?;
    }
    Ok(())
}

/// The policy's verdict on the deposit if the customer cancels now.
pub fn deposit_outcome_if_cancelled(
    biz: &Business,
    b: &BookingView,
    now: i64,
    by_staff: bool,
) -> &'static str {
    if b.deposit_cents == 0 || b.status == BookingStatus::AwaitingDeposit {
        "none"
    } else if by_staff || b.start_ms - now >= biz.free_change_hours * HOUR {
        "refund"
    } else {
        "keep"
    }
}

/// Cancels a booking. Customers may cancel their own at any time before it starts (the policy
/// decides the deposit); staff and admins any booking. Cancelling twice is refused.
///
/// Runs in the caller's write transaction and returns the deposit outcome (`none`, `refund` or
/// `keep`); the caller requests the refund the outcome names in the same transaction
/// (`payments::cancel_booking` does both).
#[tracing::instrument(skip_all)]
pub async fn cancel(
    txn: &DatabaseTransaction,
    settings: &PortalSettings,
    id: i64,
    actor: i64,
    by_staff: bool,
    reason: &str,
) -> Result<&'static str, BookingError> {
    let now = now_ms();
    let biz = business(txn).await?;
    let b = view(txn, id).await?.ok_or(BookingError::NotFound)?;
    if !by_staff && b.customer_id != actor {
        return Err(BookingError::NotFound);
    }
    if !matches!(b.status.as_str(), "confirmed" | "awaiting_deposit") {
        return Err(BookingError::NotAllowed(format!(
            "This booking is already {}.",
            b.status.words()
        )));
    }
    if !by_staff && b.start_ms <= now {
        return Err(BookingError::NotAllowed(
            "This appointment has already started; please contact us.".into(),
        ));
    }
    let outcome = deposit_outcome_if_cancelled(&biz, &b, now, by_staff);
    let reason: String = reason.trim().chars().take(300).collect();
    let changed = db::execute(
        txn,
        "UPDATE bookings SET status = 'cancelled', deposit_outcome = ?, cancel_reason = ?, updated_at = ?, version = version + 1 WHERE id = ? AND status IN ('confirmed', 'awaiting_deposit')",
        vec![outcome.into(), reason.clone().into(), now.into(), id.into()],
    )
    .await?;
    if changed != 1 {
        return Err(BookingError::NotAllowed(
            "This booking changed meanwhile; reload the page.".into(),
        ));
    }
    event(
        txn,
        id,
        Some(actor),
        "cancelled",
        &format!(
            "cancelled by {}; deposit: {outcome}{}",
            if by_staff { "staff" } else { "the customer" },
            if reason.is_empty() {
                String::new()
            } else {
                format!("; reason: {reason}")
            }
        ),
    )
    .await?;
    crate::crm::changed(txn, b.customer_id, "booking cancelled").await?;
    if let Some(customer) = crate::records::find_user(txn, b.customer_id).await? {
        let mut cancelled = b.clone();
        cancelled.version += 1;
        let mut message =
            mail::templates::booking_cancelled(settings, &biz, &customer.name, &b, outcome);
        message.attachment = Some(Attachment {
            filename: "booking.ics".into(),
            content_type: "text/calendar; method=CANCEL; charset=utf-8".into(),
            body: ics(settings, &cancelled, "CANCEL"),
        });
        mail::enqueue(
            txn,
            settings,
            Some(customer.id),
            &customer.email,
            message,
            &format!("booking:cancelled:{id}"),
        )
        .await?;
    }
    Ok(outcome)
}

/// Moves a booking to a new start, keeping its identity and history. Customers may move their own
/// until the free-change window closes; staff and admins any time.
#[tracing::instrument(skip_all)]
pub async fn reschedule(
    db: &DatabaseConnection,
    settings: &PortalSettings,
    id: i64,
    actor: i64,
    by_staff: bool,
    new_start: i64,
) -> Result<(), BookingError> {
    let now = now_ms();
    let txn = db::begin_write(db).await?;
    let biz = business(&txn).await?;
    let b = view(&txn, id).await?.ok_or(BookingError::NotFound)?;
    if !by_staff && b.customer_id != actor {
        return Err(BookingError::NotFound);
    }
    if b.status != BookingStatus::Confirmed {
        return Err(BookingError::NotAllowed(format!(
            "Only a confirmed booking can be moved; this one is {}.",
            b.status.words()
        )));
    }
    if !by_staff && b.start_ms - now < biz.free_change_hours * HOUR {
        return Err(BookingError::NotAllowed(format!(
            "Bookings can be moved online until {} hours before; please contact us.",
            biz.free_change_hours
        )));
    }
    let service = service(&txn, b.service_id)
        .await?
        .ok_or(BookingError::NotFound)?;
    lock_staff(&txn, &[b.staff_id]).await?;
    let staff = vec![(b.staff_id, b.staff_name.clone())];
    let cals = calendars(&txn, &staff, biz.tz).await?;
    let rules = service.rules();
    let margin =
        i64::from(rules.buffer_before_min.max(rules.buffer_after_min) + rules.duration_min)
            * MINUTE
            + 24 * HOUR;
    let busy = busy(
        &txn,
        &[b.staff_id],
        new_start - margin,
        new_start + margin,
        now,
        Some(id),
    )
    .await?;
    slots::check_start(
        &cals[0],
        &rules,
        busy.get(&b.staff_id).map(Vec::as_slice).unwrap_or(&[]),
        new_start,
        now,
    )
    .map_err(|r| BookingError::Refused(r.message))?;
    let end = new_start + i64::from(rules.duration_min) * MINUTE;
    let updated = db::execute(
        &txn,
        "UPDATE bookings SET start_at = ?, end_at = ?, block_start = ?, block_end = ?, version = version + 1, updated_at = ? WHERE id = ? AND status = 'confirmed'",
        vec![new_start.into(), end.into(), (new_start - i64::from(rules.buffer_before_min) * MINUTE).into(), (end + i64::from(rules.buffer_after_min) * MINUTE).into(), now.into(), id.into()],
    )
    .await;
    match updated {
        Ok(1) => {}
        Ok(_) => {
            return Err(BookingError::NotAllowed(
                "This booking changed meanwhile; reload the page.".into(),
            ));
        }
        Err(e) if is_overlap(&e) => return Err(BookingError::Taken),
        Err(e) => return Err(e.into()),
    }
    event(
        &txn,
        id,
        Some(actor),
        "rescheduled",
        &format!(
            "moved from {} to {}",
            slots::ics_utc(b.start_ms),
            slots::ics_utc(new_start)
        ),
    )
    .await?;
    after_confirmation(&txn, settings, &biz, id, b.version + 1, "rescheduled").await?;
    crate::crm::changed(&txn, b.customer_id, "booking moved").await?;
    txn.commit().await?;
    Ok(())
}

/// Staff mark a booking completed or a no-show, once it has started.
#[tracing::instrument(skip_all)]
pub async fn mark(
    db: &DatabaseConnection,
    id: i64,
    actor: i64,
    status: &str,
) -> Result<(), BookingError> {
    if !matches!(status, "completed" | "no_show") {
        return Err(BookingError::Refused("Choose completed or no-show.".into()));
    }
    let txn = db::begin_write(db).await?;
    let b = view(&txn, id).await?.ok_or(BookingError::NotFound)?;
    if b.status != BookingStatus::Confirmed {
        return Err(BookingError::NotAllowed(format!(
            "This booking is {}.",
            b.status.words()
        )));
    }
    if b.start_ms > now_ms() {
        return Err(BookingError::NotAllowed(
            "This appointment has not started yet.".into(),
        ));
    }
    db::execute(
        &txn,
        "UPDATE bookings SET status = ?, updated_at = ? WHERE id = ? AND status = 'confirmed'",
        vec![status.into(), now_ms().into(), id.into()],
    )
    .await?;
    event(
        &txn,
        id,
        Some(actor),
        status,
        &format!("marked {}", status.replace('_', " ")),
    )
    .await?;
    crate::crm::changed(&txn, b.customer_id, status).await?;
    txn.commit().await?;
    Ok(())
}

/// An iCalendar file for a booking: a stable UID per booking, SEQUENCE from its version, METHOD
/// REQUEST for new and moved bookings and CANCEL when cancelled.
pub fn ics(settings: &PortalSettings, b: &BookingView, method: &str) -> String {
    let host = settings
        .public_url
        .split("://")
        .nth(1)
        .unwrap_or("stoep.local")
        .split(['/', ':'])
        .next()
        .unwrap_or("stoep.local");
    let text = |s: &str| {
        s.replace('\\', "\\\\")
            .replace(';', "\\;")
            .replace(',', "\\,")
            .replace(['\r', '\n'], " ")
    };
    let status = if method == "CANCEL" {
        "CANCELLED"
    } else {
        "CONFIRMED"
    };
    let lines = [
        "BEGIN:VCALENDAR".to_string(),
        "VERSION:2.0".into(),
        "PRODID:-//Stoep//Customer portal//EN".into(),
        format!("METHOD:{method}"),
        "BEGIN:VEVENT".into(),
        format!("UID:booking-{}@{host}", b.id),
        format!("SEQUENCE:{}", b.version),
        format!("DTSTAMP:{}", slots::ics_utc(now_ms() / 60_000 * 60_000)),
        format!("DTSTART:{}", slots::ics_utc(b.start_ms)),
        format!("DTEND:{}", slots::ics_utc(b.end_ms)),
        format!(
            "SUMMARY:{}",
            text(&format!(
                "{} with {} at {}",
                b.service_name, b.staff_name, settings.branding.business_name
            ))
        ),
        format!("STATUS:{status}"),
        format!("URL:{}/bookings/{}", settings.public_url, b.id),
        "END:VEVENT".into(),
        "END:VCALENDAR".into(),
    ];
    lines.join("\r\n") + "\r\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(kind: &str, value: i64) -> Service {
        Service {
            id: 1,
            name: "Massage".into(),
            description: String::new(),
            duration_min: 60,
            buffer_before_min: 0,
            buffer_after_min: 15,
            price_cents: 45_000,
            deposit_kind: kind.into(),
            deposit_value: value,
            min_notice_min: 60,
            horizon_days: 60,
            slot_step_min: 15,
            active: true,
        }
    }

    #[test]
    fn deposits_are_none_fixed_or_a_percentage_in_minor_units() {
        assert_eq!(svc("none", 0).deposit_cents(), 0);
        assert_eq!(svc("fixed", 10_000).deposit_cents(), 10_000);
        assert_eq!(
            svc("fixed", 99_999_999).deposit_cents(),
            45_000,
            "never more than the price"
        );
        assert_eq!(svc("percent", 2_500).deposit_cents(), 11_250);
        assert_eq!(svc("percent", 3_333).deposit_cents(), 14_999);
    }

    #[test]
    fn money_and_local_times_read_well() {
        assert_eq!(money(45_000, "ZAR"), "R 450.00");
        assert_eq!(money(5, "USD"), "$0.05");
        assert_eq!(
            local_time(1_795_859_200_000, Tz::Africa__Johannesburg),
            "Sat 28 Nov 2026, 11:46"
        );
    }
}

/// Which bookings to list. Every condition given must hold.
#[derive(Clone, Debug, Default)]
pub struct BookingFilter {
    pub customer_id: Option<i64>,
    pub staff_id: Option<i64>,
    /// Only these statuses (empty: any).
    pub statuses: Vec<BookingStatus>,
    /// None of these statuses.
    pub not_statuses: Vec<BookingStatus>,
    /// Starting at or after this instant.
    pub from_ms: Option<i64>,
    /// Starting strictly after this instant.
    pub after_ms: Option<i64>,
    /// Starting before this instant.
    pub to_ms: Option<i64>,
}

impl BookingFilter {
    fn sql(&self) -> (String, Vec<sea_orm::Value>) {
        let mut clauses = vec!["1 = 1".to_string()];
        let mut values: Vec<sea_orm::Value> = Vec::new();
        if let Some(id) = self.customer_id {
            clauses.push("b.customer_id = ?".into());
            values.push(id.into());
        }
        if let Some(id) = self.staff_id {
            clauses.push("b.staff_id = ?".into());
            values.push(id.into());
        }
        let list = |n: usize| vec!["?"; n].join(", ");
        if !self.statuses.is_empty() {
            clauses.push(format!("b.status IN ({})", list(self.statuses.len())));
            values.extend(self.statuses.iter().map(|s| sea_orm::Value::from(*s)));
        }
        if !self.not_statuses.is_empty() {
            clauses.push(format!(
                "b.status NOT IN ({})",
                list(self.not_statuses.len())
            ));
            values.extend(self.not_statuses.iter().map(|s| sea_orm::Value::from(*s)));
        }
        if let Some(ms) = self.from_ms {
            clauses.push("b.start_at >= ?".into());
            values.push(ms.into());
        }
        if let Some(ms) = self.after_ms {
            clauses.push("b.start_at > ?".into());
            values.push(ms.into());
        }
        if let Some(ms) = self.to_ms {
            clauses.push("b.start_at < ?".into());
            values.push(ms.into());
        }
        (clauses.join(" AND "), values)
    }
}

/// The bookings matching `filter`, by start (at most `limit`).
#[tracing::instrument(skip_all, err)]
pub async fn filtered<C: ConnectionTrait>(
    conn: &C,
    filter: &BookingFilter,
    limit: i64,
) -> Result<Vec<BookingView>, DbErr> {
    let (sql, values) = filter.sql();
    crate::records::bookings(conn, &sql, values, limit).await
}

/// Holds still waiting for their deposit at `now`.
#[tracing::instrument(skip_all, err)]
pub async fn holds_waiting<C: ConnectionTrait>(conn: &C, now: i64) -> Result<i64, DbErr> {
    let r = db::query_one(
        conn,
        &format!(
            "SELECT COUNT(*) AS n FROM bookings WHERE {}",
            live_hold_sql("")
        ),
        vec![now.into()],
    )
    .await?;
    Ok(r.map(|r| col::<i64>(&r, "n")).transpose()?.unwrap_or(0))
}

/// A booking's history: `(when, what happened)`, oldest first.
#[tracing::instrument(skip_all, err)]
pub async fn history<C: ConnectionTrait>(conn: &C, id: i64) -> Result<Vec<(i64, String)>, DbErr> {
    db::query(
        conn,
        "SELECT at, detail FROM booking_events WHERE booking_id = ? ORDER BY at, id",
        vec![id.into()],
    )
    .await?
    .iter()
    .map(|r| Ok((col::<i64>(r, "at")?, col::<String>(r, "detail")?)))
    .collect()
}

/// The one rule for unpaid holds: a booking `awaiting_deposit` whose `hold_expires_at` has passed
/// no longer holds its time. Whether `b`'s hold still holds at `now`; [`live_hold_sql`],
/// [`holds_time_sql`] and [`expire_holds`] are the same rule for queries.
pub fn hold_is_live(b: &BookingView, now: i64) -> bool {
    b.status == BookingStatus::AwaitingDeposit && b.hold_expires_ms.is_none_or(|h| h > now)
}

/// Which holds to release: those of one booking, or of some staff members (but one booking).
#[derive(Clone, Debug, Default)]
pub struct Holds<'a> {
    pub booking_id: Option<i64>,
    pub staff_ids: &'a [i64],
    pub except_booking: Option<i64>,
}

/// Marks the holds in `which` whose time has passed at `now` expired (the same rule as
/// [`hold_is_live`], in SQL); returns how many. Run it in the transaction that needs the time.
#[tracing::instrument(skip_all, err)]
pub async fn expire_holds<C: ConnectionTrait>(
    conn: &C,
    which: Holds<'_>,
    now: i64,
) -> Result<u64, DbErr> {
    let mut sql = String::from(
        "UPDATE bookings SET status = 'expired', updated_at = ? WHERE status = 'awaiting_deposit' AND hold_expires_at <= ?",
    );
    let mut values: Vec<sea_orm::Value> = vec![now.into(), now.into()];
    if let Some(id) = which.booking_id {
        sql.push_str(" AND id = ?");
        values.push(id.into());
    }
    if !which.staff_ids.is_empty() {
        let (marks, ids) = id_list(which.staff_ids.iter().copied());
        sql.push_str(&format!(" AND staff_id IN ({marks})"));
        values.extend(ids);
    }
    if let Some(id) = which.except_booking {
        sql.push_str(" AND id <> ?");
        values.push(id.into());
    }
    db::execute(conn, &sql, values).await
}

/// [`hold_is_live`] as a `WHERE` condition on the bookings aliased `alias` (`""` or `"x."`), with
/// one `?` for now.
pub(crate) fn live_hold_sql(alias: &str) -> String {
    format!("({alias}status = 'awaiting_deposit' AND {alias}hold_expires_at > ?)")
}

/// Whether a booking holds its time at `?` (now): confirmed, or a live hold.
pub(crate) fn holds_time_sql(alias: &str) -> String {
    format!("({alias}status = 'confirmed' OR {})", live_hold_sql(alias))
}

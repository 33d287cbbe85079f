//! The records several parts of the domain share (accounts, bookings, payments, email all read
//! them), kept apart so that those modules depend on this one instead of on each other: the user
//! record, the business's settings, a booking as pages and emails show it, a payment attempt, and
//! how money and local times are written for people.

use std::str::FromStr;

use model::{BookingStatus, CurrentUser, PaymentStatus, Role};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use serde::{Deserialize, Serialize};
use slots::Tz;

use crate::db::{self, col};

// ---------------------------------------------------------------------------------------------
// Users.

/// A user row as the server sees it (holds the hash: never serialised).
#[derive(Clone)]
pub struct UserRecord {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub active: bool,
    pub email_verified: bool,
    pub password_hash: Option<String>,
    /// The confirmed TOTP secret (base32), when the second factor is on.
    pub totp_secret: Option<String>,
    pub totp_last_step: Option<i64>,
    /// Signed in with a one-time password: must choose their own before anything else.
    pub password_change_required: bool,
    pub password_expires_at: Option<i64>,
}

impl UserRecord {
    /// Staff and admins must have a second factor before they can do anything else.
    pub fn needs_second_factor_setup(&self) -> bool {
        self.role != Role::Customer && self.totp_secret.is_none()
    }

    pub fn to_current(&self) -> CurrentUser {
        CurrentUser {
            id: self.id,
            name: self.name.clone(),
            email: self.email.clone(),
            role: self.role,
            email_verified: self.email_verified,
        }
    }
}

fn user_from_row(r: &sea_orm::QueryResult) -> Result<UserRecord, DbErr> {
    let role: String = col(r, "role")?;
    let status: String = col(r, "status")?;
    let verified: Option<i64> = col(r, "email_verified_at")?;
    Ok(UserRecord {
        id: col(r, "id")?,
        email: col(r, "email")?,
        name: col(r, "name")?,
        role: Role::parse(&role).unwrap_or(Role::Customer),
        active: status == "active",
        email_verified: verified.is_some(),
        password_hash: col(r, "password_hash")?,
        totp_secret: col(r, "totp_secret")?,
        totp_last_step: col(r, "totp_last_step")?,
        password_change_required: col(r, "password_change_required")?,
        password_expires_at: col(r, "password_expires_at")?,
    })
}

const USER_COLUMNS: &str = "id, email, name, role, status, email_verified_at, password_hash, totp_secret, totp_last_step, password_change_required, password_expires_at";

#[tracing::instrument(skip_all, err)]
pub async fn find_user_by_email<C: ConnectionTrait>(
    conn: &C,
    email: &str,
) -> Result<Option<UserRecord>, DbErr> {
    db::query_one(
        conn,
        &format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?"),
        vec![email.into()],
    )
    .await?
    .map(|r| user_from_row(&r))
    .transpose()
}

#[tracing::instrument(skip_all, err)]
pub async fn find_user<C: ConnectionTrait>(conn: &C, id: i64) -> Result<Option<UserRecord>, DbErr> {
    db::query_one(
        conn,
        &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"),
        vec![id.into()],
    )
    .await?
    .map(|r| user_from_row(&r))
    .transpose()
}

// ---------------------------------------------------------------------------------------------
// The business and its bookings.

/// The business's booking settings (one row, edited by admins).
#[derive(Clone, Debug)]
pub struct Business {
    pub tz: Tz,
    pub currency: String,
    pub vat_rate_bp: i64,
    pub prices_include_vat: bool,
    /// Customers change or cancel for free until this many hours before; later the deposit is kept.
    pub free_change_hours: i64,
    pub hold_minutes: i64,
    pub reminder_hours: i64,
    pub max_unpaid_holds: i64,
}

#[tracing::instrument(skip_all, err)]
pub async fn business<C: ConnectionTrait>(conn: &C) -> Result<Business, DbErr> {
    let r = db::query_one(conn, "SELECT * FROM business_settings WHERE id = 1", vec![])
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("business_settings".into()))?;
    let tz: String = col(&r, "time_zone")?;
    Ok(Business {
        tz: Tz::from_str(&tz).unwrap_or(Tz::Africa__Johannesburg),
        currency: col(&r, "currency")?,
        vat_rate_bp: col::<i32>(&r, "vat_rate_bp")?.into(),
        prices_include_vat: col(&r, "prices_include_vat")?,
        free_change_hours: col::<i32>(&r, "free_change_hours")?.into(),
        hold_minutes: col::<i32>(&r, "hold_minutes")?.into(),
        reminder_hours: col::<i32>(&r, "reminder_hours")?.into(),
        max_unpaid_holds: col::<i32>(&r, "max_unpaid_holds")?.into(),
    })
}

/// A booking as pages show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sea_orm::FromQueryResult)]
pub struct BookingView {
    pub id: i64,
    pub customer_id: i64,
    pub customer_name: String,
    pub staff_id: i64,
    pub staff_name: String,
    pub service_id: i64,
    pub service_name: String,
    #[sea_orm(alias = "start_at")]
    pub start_ms: i64,
    #[sea_orm(alias = "end_at")]
    pub end_ms: i64,
    pub status: BookingStatus,
    #[sea_orm(alias = "hold_expires_at")]
    pub hold_expires_ms: Option<i64>,
    pub price_cents: i64,
    pub deposit_cents: i64,
    pub currency: String,
    pub deposit_outcome: Option<String>,
    pub version: i32,
    /// Confirmed while payments were unavailable: the deposit is collected at the visit (or by
    /// a payment link).
    pub deposit_due_at_visit: bool,
}

const VIEW_SQL: &str = "SELECT b.id AS id, b.customer_id AS customer_id, c.name AS customer_name, b.staff_id AS staff_id, s.name AS staff_name, \
    b.service_id AS service_id, v.name AS service_name, b.start_at AS start_at, b.end_at AS end_at, b.status AS status, b.hold_expires_at AS hold_expires_at, \
    b.price_cents AS price_cents, b.deposit_cents AS deposit_cents, b.currency AS currency, b.deposit_outcome AS deposit_outcome, b.version AS version, b.deposit_due_at_visit AS deposit_due_at_visit \
    FROM bookings b JOIN users c ON c.id = b.customer_id JOIN users s ON s.id = b.staff_id JOIN services v ON v.id = b.service_id";

#[tracing::instrument(skip_all, err)]
pub async fn booking<C: ConnectionTrait>(conn: &C, id: i64) -> Result<Option<BookingView>, DbErr> {
    db::query_one(conn, &format!("{VIEW_SQL} WHERE b.id = ?"), vec![id.into()])
        .await?
        .map(|r| BookingView::from_query_result(&r, ""))
        .transpose()
}

/// Bookings matching a where-clause fragment (with `?` values), ordered by start.
#[tracing::instrument(skip_all, err)]
pub async fn bookings<C: ConnectionTrait>(
    conn: &C,
    where_sql: &str,
    values: Vec<sea_orm::Value>,
    limit: i64,
) -> Result<Vec<BookingView>, DbErr> {
    let mut values = values;
    values.push(limit.into());
    db::query(
        conn,
        &format!("{VIEW_SQL} WHERE {where_sql} ORDER BY b.start_at, b.id LIMIT ?"),
        values,
    )
    .await?
    .iter()
    .map(|r| BookingView::from_query_result(r, ""))
    .collect()
}

/// Money in minor units as text, e.g. `R 450.00`.
pub fn money(cents: i64, currency: &str) -> String {
    let symbol = match currency {
        "ZAR" => "R ".to_string(),
        "USD" => "$".into(),
        "EUR" => "€".into(),
        "GBP" => "£".into(),
        other => format!("{other} "),
    };
    format!("{symbol}{}.{:02}", cents / 100, (cents % 100).abs())
}

/// A local date and time for people, in the business's zone: `Mon 30 Nov 2026, 09:30`.
pub fn local_time(ms: i64, tz: Tz) -> String {
    use slots::chrono::TimeZone;
    match tz.timestamp_millis_opt(ms).single() {
        Some(t) => t.format("%a %-d %b %Y, %H:%M").to_string(),
        None => slots::ics_utc(ms),
    }
}

// ---------------------------------------------------------------------------------------------
// Payments.

/// A payment attempt as pages show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sea_orm::FromQueryResult)]
pub struct Payment {
    pub id: i64,
    pub booking_id: i64,
    pub customer_id: i64,
    pub attempt: i32,
    pub status: PaymentStatus,
    pub amount_cents: i64,
    pub currency: String,
    pub vat_rate_bp: i32,
    pub vat_cents: i64,
    pub refunded_cents: i64,
    pub checkout_session_id: Option<String>,
    pub checkout_url: Option<String>,
    pub session_expires_at: Option<i64>,
    pub payment_intent_id: Option<String>,
    pub receipt_number: Option<String>,
    pub disputed: bool,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub paid_at: Option<i64>,
}

impl Payment {
    /// What is left to refund.
    pub fn refundable_cents(&self) -> i64 {
        if self.status == PaymentStatus::Paid {
            (self.amount_cents - self.refunded_cents).max(0)
        } else {
            0
        }
    }

    /// A word for people: paid, refunded, partly refunded, waiting, failed...
    pub fn label(&self) -> String {
        match self.status.as_str() {
            "paid" if self.refunded_cents >= self.amount_cents => "refunded".into(),
            "paid" if self.refunded_cents > 0 => "partly refunded".into(),
            "paid" => "paid".into(),
            "open" | "creating" => "waiting for payment".into(),
            "processing" => "processing".into(),
            other => other.replace('_', " "),
        }
    }
}

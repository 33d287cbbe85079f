//! Deposits: the payment gateway interface (implemented in the server crate with async-stripe),
//! the payment and refund records, and every state change a payment goes through.
//!
//! Stripe is the source of truth for whether money moved; the portal's `payments` row is the
//! portal's copy of that fact for one Checkout Session attempt. Every change here is monotonic
//! and idempotent, so webhook events can arrive twice, late or out of order, and reconciliation
//! can apply the same fact again, and the result is the same: a paid payment never goes back to
//! open, a booking is confirmed once, a refund is requested once per cause.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, FromQueryResult};
use serde::{Deserialize, Serialize};

use crate::booking::{self, BookingView, Business};
use crate::db::{self, col, now_ms};
use crate::email as mail;
use crate::ledger::{self, NewJob, Subject};
pub use crate::ports::payments::{
    CheckoutRequest, Gateway, GatewayError, NoGateway, RefundDone, RefundRequest, SessionFacts,
};
pub use crate::records::Payment;
use crate::settings::PortalSettings;
use model::{BookingStatus, PaymentStatus, RefundStatus};

const MINUTE: i64 = 60_000;

// ---------------------------------------------------------------------------------------------
// Records.

#[tracing::instrument(skip_all, err)]
pub async fn get<C: ConnectionTrait>(conn: &C, id: i64) -> Result<Option<Payment>, DbErr> {
    db::query_one(conn, "SELECT * FROM payments WHERE id = ?", vec![id.into()])
        .await?
        .map(|r| Payment::from_query_result(&r, ""))
        .transpose()
}

async fn find_by<C: ConnectionTrait>(
    conn: &C,
    column: &str,
    value: &str,
) -> Result<Option<Payment>, DbErr> {
    db::query_one(
        conn,
        &format!("SELECT * FROM payments WHERE {column} = ? ORDER BY id LIMIT 1"),
        vec![value.into()],
    )
    .await?
    .map(|r| Payment::from_query_result(&r, ""))
    .transpose()
}

#[tracing::instrument(skip_all, err)]
pub async fn by_session<C: ConnectionTrait>(
    conn: &C,
    session: &str,
) -> Result<Option<Payment>, DbErr> {
    find_by(conn, "checkout_session_id", session).await
}

#[tracing::instrument(skip_all, err)]
pub async fn by_intent<C: ConnectionTrait>(conn: &C, pi: &str) -> Result<Option<Payment>, DbErr> {
    find_by(conn, "payment_intent_id", pi).await
}

/// Every payment attempt of a booking, oldest first.
#[tracing::instrument(skip_all, err)]
pub async fn for_booking<C: ConnectionTrait>(
    conn: &C,
    booking_id: i64,
) -> Result<Vec<Payment>, DbErr> {
    db::query(
        conn,
        "SELECT * FROM payments WHERE booking_id = ? ORDER BY attempt",
        vec![booking_id.into()],
    )
    .await?
    .iter()
    .map(|r| Payment::from_query_result(r, ""))
    .collect()
}

/// Payments matching a where-clause fragment, newest first.
async fn list<C: ConnectionTrait>(
    conn: &C,
    where_sql: &str,
    values: Vec<sea_orm::Value>,
    limit: i64,
) -> Result<Vec<Payment>, DbErr> {
    let mut values = values;
    values.push(limit.into());
    db::query(
        conn,
        &format!(
            "SELECT * FROM payments WHERE {where_sql} ORDER BY created_at DESC, id DESC LIMIT ?"
        ),
        values,
    )
    .await?
    .iter()
    .map(|r| Payment::from_query_result(r, ""))
    .collect()
}

/// A customer's payments in any of `statuses` (all when empty), newest first.
#[tracing::instrument(skip_all, err)]
pub async fn of_customer<C: ConnectionTrait>(
    conn: &C,
    customer_id: i64,
    statuses: &[PaymentStatus],
    limit: i64,
) -> Result<Vec<Payment>, DbErr> {
    let mut sql = "customer_id = ?".to_string();
    let mut values: Vec<sea_orm::Value> = vec![customer_id.into()];
    if !statuses.is_empty() {
        sql.push_str(&format!(
            " AND status IN ({})",
            vec!["?"; statuses.len()].join(", ")
        ));
        values.extend(statuses.iter().map(|s| sea_orm::Value::from(*s)));
    }
    list(conn, &sql, values, limit).await
}

/// Open or processing attempts with a checkout, created after `since`: what reconciliation
/// asks the provider about.
#[tracing::instrument(skip_all, err)]
pub async fn waiting_since<C: ConnectionTrait>(
    conn: &C,
    since: i64,
    limit: i64,
) -> Result<Vec<Payment>, DbErr> {
    list(
        conn,
        "status IN ('open', 'processing') AND checkout_session_id IS NOT NULL AND created_at > ?",
        vec![since.into()],
        limit,
    )
    .await
}

/// The admins' payments list and export: filtered by a status label and local dates (see
/// [`filter_sql`]); `Ok(Err(message))` when the filter is not one the portal knows.
#[tracing::instrument(skip_all, err)]
pub async fn filtered<C: ConnectionTrait>(
    conn: &C,
    status: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
    tz: slots::Tz,
    limit: i64,
) -> Result<Result<Vec<Payment>, String>, DbErr> {
    let (where_sql, values) = match filter_sql(status, from, to, tz) {
        Ok(w) => w,
        Err(message) => return Ok(Err(message)),
    };
    Ok(Ok(list(conn, &where_sql, values, limit).await?))
}

/// The where-clause for the payments list and export: `status` is one of the labels' keys
/// (`paid`, `refunded`, `partly_refunded`, `waiting`, `processing`, `failed`, `expired`,
/// `disputed`) and `from`/`to` are local dates (`YYYY-MM-DD`, inclusive) in the business's zone.
fn filter_sql(
    status: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
    tz: slots::Tz,
) -> Result<(String, Vec<sea_orm::Value>), String> {
    use slots::chrono::{NaiveDate, TimeZone};
    let mut clauses = vec!["1 = 1".to_string()];
    let mut values: Vec<sea_orm::Value> = Vec::new();
    match status.map(str::trim).filter(|s| !s.is_empty()) {
        None | Some("all") => {}
        Some("paid") => clauses.push("status = 'paid' AND refunded_cents = 0".into()),
        Some("refunded") => {
            clauses.push("status = 'paid' AND refunded_cents >= amount_cents".into())
        }
        Some("partly_refunded") => clauses.push(
            "status = 'paid' AND refunded_cents > 0 AND refunded_cents < amount_cents".into(),
        ),
        Some("waiting") => clauses.push("status IN ('creating', 'open')".into()),
        Some("disputed") => clauses.push("disputed = TRUE".into()),
        Some(s @ ("processing" | "failed" | "expired")) => {
            clauses.push("status = ?".into());
            values.push(s.into());
        }
        Some(other) => {
            return Err(format!(
                "Unknown status {other:?}: use paid, refunded, partly_refunded, waiting, processing, failed, expired or disputed."
            ));
        }
    }
    let day = |s: &str, name: &str| -> Result<i64, String> {
        let d = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .map_err(|_| format!("The {name} date must look like 2026-11-30."))?;
        let t = d
            .and_hms_opt(0, 0, 0)
            .and_then(|t| tz.from_local_datetime(&t).earliest())
            .ok_or_else(|| format!("The {name} date is not valid in the business's time zone."))?;
        Ok(t.timestamp_millis())
    };
    if let Some(f) = from.filter(|s| !s.trim().is_empty()) {
        clauses.push("created_at >= ?".into());
        values.push(day(f, "from")?.into());
    }
    if let Some(t) = to.filter(|s| !s.trim().is_empty()) {
        clauses.push("created_at < ?".into());
        values.push((day(t, "to")? + 86_400_000).into());
    }
    Ok((clauses.join(" AND "), values))
}

/// A refund as pages show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sea_orm::FromQueryResult)]
pub struct Refund {
    pub id: i64,
    pub payment_id: i64,
    pub amount_cents: i64,
    pub reason: String,
    pub source: String,
    pub status: RefundStatus,
    pub stripe_refund_id: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
}

#[tracing::instrument(skip_all, err)]
pub async fn refunds_of<C: ConnectionTrait>(
    conn: &C,
    payment_id: i64,
) -> Result<Vec<Refund>, DbErr> {
    db::query(
        conn,
        "SELECT * FROM refunds WHERE payment_id = ? ORDER BY id",
        vec![payment_id.into()],
    )
    .await?
    .iter()
    .map(|r| Refund::from_query_result(r, ""))
    .collect()
}

/// VAT included in a VAT-inclusive amount, rounded half up: `amount * rate / (1 + rate)`.
/// Deposits are charged as part of a consumer price, which in South Africa includes VAT.
pub fn vat_included(amount_cents: i64, rate_bp: i64) -> i64 {
    if rate_bp <= 0 {
        return 0;
    }
    (amount_cents * rate_bp * 2 + (10_000 + rate_bp)) / ((10_000 + rate_bp) * 2)
}

// ---------------------------------------------------------------------------------------------
// Starting a payment.

/// Why a payment could not start; each message is fit to show the customer.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("{0}")]
    NotAllowed(String),
    #[error("We couldn't find that booking.")]
    NotFound,
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl From<PaymentError> for model::error::AppError {
    fn from(e: PaymentError) -> Self {
        use model::error::AppError;
        match e {
            PaymentError::NotAllowed(m) => AppError::Conflict(m),
            PaymentError::NotFound => AppError::NotFound,
            PaymentError::Unavailable(m) => AppError::Unavailable(m),
            PaymentError::Db(d) => d.into(),
        }
    }
}

/// Stripe accepts a Checkout Session expiry between 30 minutes and 24 hours ahead. The session
/// lives at least as long as the hold; a payment that lands after the hold is a late payment
/// (confirmed if the time is still free, refunded otherwise).
pub fn session_expiry(hold_expires_ms: i64, now_ms: i64) -> i64 {
    let min = now_ms + 31 * MINUTE;
    let max = now_ms + 23 * 60 * MINUTE;
    hold_expires_ms.clamp(min, max) / 1000
}

/// Sends the customer to pay the deposit of booking `booking_id`: reuses a session still open,
/// or creates a new attempt. Returns the payment page's URL. The hold is never shortened: when
/// Stripe cannot be reached the booking stays held until its expiry and the customer may retry.
#[tracing::instrument(skip_all)]
pub async fn begin_checkout(
    db: &DatabaseConnection,
    settings: &PortalSettings,
    gateway: &dyn Gateway,
    booking_id: i64,
    customer_id: i64,
) -> Result<String, PaymentError> {
    let now = now_ms();
    let txn = db::begin_write(db).await?;
    let b = booking::view(&txn, booking_id)
        .await?
        .filter(|b| b.customer_id == customer_id)
        .ok_or(PaymentError::NotFound)?;
    let attempts = for_booking(&txn, booking_id).await?;
    if attempts.iter().any(|p| p.status == PaymentStatus::Paid) {
        return Err(PaymentError::NotAllowed(
            "This deposit is already paid.".into(),
        ));
    }
    let due_at_visit = b.status == BookingStatus::Confirmed && b.deposit_due_at_visit;
    if !due_at_visit && !booking::hold_is_live(&b, now) {
        return Err(PaymentError::NotAllowed(
            "This booking is no longer waiting for a deposit. If the hold expired, please book again."
                .into(),
        ));
    }
    if attempts
        .iter()
        .any(|p| p.status == PaymentStatus::Processing)
    {
        return Err(PaymentError::NotAllowed(
            "Your payment is being processed by the bank; we'll email you when it clears.".into(),
        ));
    }
    if let Some(open) = attempts.iter().rev().find(|p| {
        p.status == PaymentStatus::Open
            && p.session_expires_at.is_some_and(|e| e > now + 2 * MINUTE)
    }) && let Some(url) = &open.checkout_url
    {
        return Ok(url.clone());
    }
    let customer = crate::records::find_user(&txn, customer_id)
        .await?
        .ok_or(PaymentError::NotFound)?;
    let biz = booking::business(&txn).await?;
    let attempt = attempts.iter().map(|p| p.attempt).max().unwrap_or(0) + 1;
    let vat = vat_included(b.deposit_cents, biz.vat_rate_bp);
    let row = db::query_one(
        &txn,
        "INSERT INTO payments (booking_id, customer_id, attempt, status, amount_cents, currency, vat_rate_bp, vat_cents, created_at, updated_at) \
         VALUES (?, ?, ?, 'creating', ?, ?, ?, ?, ?, ?) RETURNING id",
        vec![booking_id.into(), customer_id.into(), attempt.into(), b.deposit_cents.into(), b.currency.clone().into(), (biz.vat_rate_bp as i32).into(), vat.into(), now.into(), now.into()],
    )
    .await?
    .ok_or(DbErr::RecordNotInserted)?;
    let payment_id: i64 = col(&row, "id")?;
    txn.commit().await?;

    let req = CheckoutRequest {
        payment_id,
        booking_id,
        customer_id,
        customer_email: customer.email.clone(),
        description: format!(
            "Deposit: {} with {}, {}",
            b.service_name,
            b.staff_name,
            booking::local_time(b.start_ms, biz.tz)
        ),
        amount_cents: b.deposit_cents,
        currency: b.currency.clone(),
        expires_at: if due_at_visit {
            session_expiry(now + 23 * 60 * MINUTE, now)
        } else {
            session_expiry(b.hold_expires_ms.unwrap_or(now), now)
        },
        success_url: format!(
            "{}/bookings/{booking_id}/paid?session_id={{CHECKOUT_SESSION_ID}}",
            settings.public_url
        ),
        cancel_url: format!(
            "{}/bookings/{booking_id}?payment=cancelled",
            settings.public_url
        ),
        idempotency_key: format!("stoep-checkout-{booking_id}-{attempt}"),
    };
    match gateway.create_checkout(&req).await {
        Ok(session) => {
            db::execute(
                db,
                "UPDATE payments SET status = 'open', checkout_session_id = ?, checkout_url = ?, session_expires_at = ?, updated_at = ? WHERE id = ? AND status = 'creating'",
                vec![session.id.clone().into(), session.url.clone().into(), session.expires_at.map(|s| s * 1000).into(), now_ms().into(), payment_id.into()],
            )
            .await?;
            session.url.ok_or_else(|| {
                PaymentError::Unavailable("The payment page did not open. Please try again.".into())
            })
        }
        Err(e) => {
            tracing::warn!(booking = booking_id, payment = payment_id, error = %e, "could not create a Checkout Session");
            db::execute(
                db,
                "UPDATE payments SET status = 'failed', last_error = ?, updated_at = ? WHERE id = ? AND status = 'creating'",
                vec![format!("could not start the payment: {e}").into(), now_ms().into(), payment_id.into()],
            )
            .await?;
            let until = b
                .hold_expires_ms
                .map(|h| booking::local_time(h, biz.tz))
                .unwrap_or_default();
            Err(PaymentError::Unavailable(format!(
                "We couldn't reach the payment provider just now. Your time is held until {until}; please try again in a minute."
            )))
        }
    }
}

/// The payments fallback `pay_at_visit`: Stripe could not be reached as the customer booked, so
/// the booking is confirmed with the deposit due at the visit (shown to staff, and collectable
/// later by a payment link). Same transaction: the confirmation email and the CRM update.
#[tracing::instrument(skip_all, err)]
pub async fn confirm_with_deposit_at_visit(
    db: &DatabaseConnection,
    settings: &PortalSettings,
    booking_id: i64,
) -> Result<bool, DbErr> {
    let txn = db::begin_write(db).await?;
    let n = db::execute(
        &txn,
        "UPDATE bookings SET status = 'confirmed', hold_expires_at = NULL, deposit_due_at_visit = TRUE, updated_at = ? WHERE id = ? AND status = 'awaiting_deposit'",
        vec![now_ms().into(), booking_id.into()],
    )
    .await?;
    if n == 0 {
        return Ok(false);
    }
    booking_event(
        &txn,
        booking_id,
        "confirmed with the deposit due at the visit: online payment was unavailable",
    )
    .await?;
    let biz = booking::business(&txn).await?;
    if let Some(b) = booking::view(&txn, booking_id).await? {
        booking::after_confirmation(&txn, settings, &biz, booking_id, b.version, "confirmed")
            .await?;
        crm_update(
            &txn,
            b.customer_id,
            &format!("confirmed-at-visit:{booking_id}"),
        )
        .await?;
    }
    txn.commit().await?;
    Ok(true)
}

/// Staff email the customer a link to pay a deposit that was due at the visit.
#[tracing::instrument(skip_all)]
pub async fn send_payment_link(
    db: &DatabaseConnection,
    settings: &PortalSettings,
    gateway: &dyn Gateway,
    booking_id: i64,
    actor: i64,
) -> Result<(), PaymentError> {
    let b = booking::view(db, booking_id)
        .await?
        .ok_or(PaymentError::NotFound)?;
    if !(b.status == BookingStatus::Confirmed && b.deposit_due_at_visit) {
        return Err(PaymentError::NotAllowed(
            "This booking has no deposit due at the visit.".into(),
        ));
    }
    let url = begin_checkout(db, settings, gateway, booking_id, b.customer_id).await?;
    let txn = db::begin_write(db).await?;
    let biz = booking::business(&txn).await?;
    if let Some(customer) = crate::records::find_user(&txn, b.customer_id).await? {
        let message = mail::templates::payment_link(settings, &biz, &customer.name, &b, &url);
        let attempt = for_booking(&txn, booking_id).await?.len();
        mail::enqueue(
            &txn,
            settings,
            Some(customer.id),
            &customer.email,
            message,
            &format!("payment:link:{booking_id}:{attempt}"),
        )
        .await?;
    }
    crate::audit::record(
        &txn,
        Some(actor),
        "payment.link",
        "booking",
        &booking_id.to_string(),
        "payment link emailed",
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Applying facts from Stripe (webhooks and reconciliation).

/// The result of applying a fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Something changed (a short description for the event log).
    Changed(String),
    /// Nothing to do: the portal already knew.
    AlreadyKnown,
}

/// Why a fact could not be applied (yet).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The portal does not know the object yet (e.g. a refund event before the payment's own
    /// event): keep the event and try again later.
    #[error("{0}")]
    NotYetKnown(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Applies what Stripe says about a Checkout Session: paid, processing, or expired.
/// `failed` is true for `checkout.session.async_payment_failed`.
#[tracing::instrument(skip_all)]
pub async fn apply_session(
    db: &DatabaseConnection,
    settings: &PortalSettings,
    s: &SessionFacts,
    failed: bool,
) -> Result<Applied, ApplyError> {
    let txn = db::begin_write(db).await?;
    let payment = match by_session(&txn, &s.id).await? {
        Some(p) => p,
        None => {
            // The session was created but its id not yet recorded (a crash in between): the
            // metadata names the payment.
            let Some(p) = (match s.payment_id {
                Some(id) => get(&txn, id).await?,
                None => None,
            }) else {
                return Err(ApplyError::NotYetKnown(format!(
                    "no payment matches Checkout Session {}",
                    s.id
                )));
            };
            if p.checkout_session_id.is_some() {
                return Err(ApplyError::NotYetKnown(format!(
                    "Checkout Session {} names payment {} which has another session",
                    s.id, p.id
                )));
            }
            db::execute(&txn, "UPDATE payments SET checkout_session_id = ?, checkout_url = COALESCE(checkout_url, ?), status = CASE WHEN status = 'creating' THEN 'open' ELSE status END WHERE id = ?", vec![s.id.clone().into(), s.url.clone().into(), p.id.into()]).await?;
            get(&txn, p.id)
                .await?
                .ok_or(DbErr::RecordNotFound("payment".into()))?
        }
    };
    let now = now_ms();
    let outcome = if s.payment_status == "paid" {
        mark_paid(&txn, settings, &payment, s).await?
    } else if failed {
        let n = db::execute(&txn, "UPDATE payments SET status = 'failed', last_error = ?, updated_at = ? WHERE id = ? AND status IN ('creating', 'open', 'processing')", vec!["The bank did not complete the payment.".into(), now.into(), payment.id.into()]).await?;
        changed(n, "the delayed payment failed")
    } else if s.status == "complete" {
        let n = db::execute(&txn, "UPDATE payments SET status = 'processing', payment_intent_id = COALESCE(payment_intent_id, ?), updated_at = ? WHERE id = ? AND status IN ('creating', 'open')", vec![s.payment_intent.clone().into(), now.into(), payment.id.into()]).await?;
        changed(n, "payment submitted, waiting for the bank")
    } else if s.status == "expired" {
        let n = db::execute(&txn, "UPDATE payments SET status = 'expired', updated_at = ? WHERE id = ? AND status IN ('creating', 'open')", vec![now.into(), payment.id.into()]).await?;
        changed(n, "the payment page expired unpaid")
    } else {
        Applied::AlreadyKnown
    };
    txn.commit().await?;
    Ok(outcome)
}

fn changed(rows: u64, what: &str) -> Applied {
    if rows > 0 {
        Applied::Changed(what.into())
    } else {
        Applied::AlreadyKnown
    }
}

/// Records a paid deposit and confirms its booking, with the confirmation email, the receipt and
/// the CRM update in the same transaction. A payment for a booking that can no longer be kept
/// (its hold expired and the time was taken, or it was cancelled, or already paid) is refunded.
async fn mark_paid<C: ConnectionTrait>(
    txn: &C,
    settings: &PortalSettings,
    payment: &Payment,
    s: &SessionFacts,
) -> Result<Applied, ApplyError> {
    let now = now_ms();
    let amount = s.amount_total.unwrap_or(payment.amount_cents);
    let n = db::execute(
        txn,
        "UPDATE payments SET status = 'paid', paid_at = ?, payment_intent_id = COALESCE(?, payment_intent_id), amount_cents = ?, receipt_number = ?, last_error = NULL, updated_at = ? WHERE id = ? AND status <> 'paid'",
        vec![now.into(), s.payment_intent.clone().into(), amount.into(), format!("D{:06}", payment.id).into(), now.into(), payment.id.into()],
    )
    .await?;
    if n == 0 {
        return Ok(Applied::AlreadyKnown);
    }
    let payment = get(txn, payment.id)
        .await?
        .ok_or(DbErr::RecordNotFound("payment".into()))?;
    let biz = booking::business(txn).await?;
    let b = booking::view(txn, payment.booking_id)
        .await?
        .ok_or(DbErr::RecordNotFound("booking".into()))?;
    if amount != b.deposit_cents {
        review(
            txn,
            &format!("payment-amount:{}", payment.id),
            &format!(
                "Payment {} for booking {} was {} but the deposit is {}; check it in Stripe.",
                payment.id,
                b.id,
                booking::money(amount, &payment.currency),
                booking::money(b.deposit_cents, &b.currency)
            ),
            payment.id,
        )
        .await?;
    }
    let other_paid = for_booking(txn, b.id)
        .await?
        .into_iter()
        .any(|p| p.id != payment.id && p.status == PaymentStatus::Paid);
    if b.status == BookingStatus::Confirmed && b.deposit_due_at_visit && !other_paid {
        // The deposit that was due at the visit, paid by the payment link.
        db::execute(
            txn,
            "UPDATE bookings SET deposit_due_at_visit = FALSE, updated_at = ? WHERE id = ?",
            vec![now.into(), b.id.into()],
        )
        .await?;
        booking_event(
            txn,
            b.id,
            "deposit paid by payment link (it was due at the visit)",
        )
        .await?;
        let mut paid_b = b.clone();
        paid_b.deposit_due_at_visit = false;
        send_receipt(txn, settings, &biz, &paid_b, &payment).await?;
        crm_update(txn, b.customer_id, &format!("payment:{}", payment.id)).await?;
        return Ok(Applied::Changed(format!(
            "deposit for booking {} paid by payment link",
            b.id
        )));
    }
    let keep = match b.status.as_str() {
        "awaiting_deposit" if !other_paid => {
            confirm_booking(txn, &b, "deposit paid; booking confirmed").await?
        }
        "expired" if !other_paid
            && slot_is_free(txn, &b).await? => {
                confirm_booking(
                    txn,
                    &b,
                    "deposit paid after the hold expired; the time was still free, so the booking is confirmed",
                )
                .await?
            }
        _ => false,
    };
    if keep {
        let confirmed = booking::view(txn, b.id).await?.unwrap_or(b.clone());
        booking::after_confirmation(txn, settings, &biz, b.id, confirmed.version, "confirmed")
            .await?;
        send_receipt(txn, settings, &biz, &confirmed, &payment).await?;
        crm_update(txn, b.customer_id, &format!("payment:{}", payment.id)).await?;
        return Ok(Applied::Changed(format!(
            "deposit paid, booking {} confirmed",
            b.id
        )));
    }
    // The money cannot be kept: refund all of it, tell the customer, and show admins.
    let why = if other_paid {
        "a second payment for a deposit that was already paid"
    } else if b.status == BookingStatus::Expired {
        "paid after the hold expired, and the time had been taken by then"
    } else {
        "paid for a booking that is no longer active"
    };
    let refund_id = request_refund(
        txn,
        &payment,
        payment.amount_cents,
        &format!("Automatic refund: {why}."),
        "late_payment",
        None,
    )
    .await?;
    booking_event(
        txn,
        b.id,
        &format!("payment {} refunded automatically: {why}", payment.id),
    )
    .await?;
    if let Some(customer) = crate::records::find_user(txn, b.customer_id).await? {
        let message = mail::templates::late_payment_refunded(
            settings,
            &biz,
            &customer.name,
            &b,
            payment.amount_cents,
            why,
        );
        mail::enqueue(
            txn,
            settings,
            Some(customer.id),
            &customer.email,
            message,
            &format!("payment:late-refund:{}", payment.id),
        )
        .await?;
    }
    review(
        txn,
        &format!("late-payment:{}", payment.id),
        &format!(
            "Booking {}: {} was {why}. It is being refunded automatically (refund {refund_id}); nothing to do unless the refund fails.",
            b.id,
            booking::money(payment.amount_cents, &payment.currency)
        ),
        payment.id,
    )
    .await?;
    Ok(Applied::Changed(format!(
        "payment {} cannot be kept: refunding",
        payment.id
    )))
}

/// True when no active booking of the same staff member overlaps `b`'s time (buffers included).
async fn slot_is_free<C: ConnectionTrait>(txn: &C, b: &BookingView) -> Result<bool, DbErr> {
    let r = db::query_one(
        txn,
        &format!(
            "SELECT COUNT(*) AS n FROM bookings x JOIN bookings me ON me.id = ? WHERE x.staff_id = me.staff_id AND x.id <> me.id \
             AND x.block_start < me.block_end AND x.block_end > me.block_start AND {}",
            booking::holds_time_sql("x.")
        ),
        vec![b.id.into(), now_ms().into()],
    )
    .await?;
    Ok(r.map(|r| col::<i64>(&r, "n")).transpose()?.unwrap_or(0) == 0)
}

async fn confirm_booking<C: ConnectionTrait>(
    txn: &C,
    b: &BookingView,
    detail: &str,
) -> Result<bool, DbErr> {
    booking::lock_staff(txn, &[b.staff_id]).await?;
    // Holds of others that expired but were not yet swept could block the update on the
    // database's overlap rule; release them first.
    let others = booking::Holds {
        staff_ids: &[b.staff_id],
        except_booking: Some(b.id),
        ..Default::default()
    };
    booking::expire_holds(txn, others, now_ms()).await?;
    let n = db::execute(
        txn,
        "UPDATE bookings SET status = 'confirmed', hold_expires_at = NULL, updated_at = ? WHERE id = ? AND status IN ('awaiting_deposit', 'expired')",
        vec![now_ms().into(), b.id.into()],
    )
    .await?;
    if n == 1 {
        booking_event(txn, b.id, detail).await?;
    }
    Ok(n == 1)
}

async fn booking_event<C: ConnectionTrait>(txn: &C, id: i64, detail: &str) -> Result<(), DbErr> {
    let action = if detail.contains("refund") {
        "payment"
    } else {
        "confirmed"
    };
    db::execute(
        txn,
        "INSERT INTO booking_events (booking_id, at, actor_user_id, action, detail) VALUES (?, ?, NULL, ?, ?)",
        vec![id.into(), now_ms().into(), action.into(), detail.into()],
    )
    .await?;
    Ok(())
}

async fn send_receipt<C: ConnectionTrait>(
    txn: &C,
    settings: &PortalSettings,
    biz: &Business,
    b: &BookingView,
    payment: &Payment,
) -> Result<(), DbErr> {
    let Some(customer) = crate::records::find_user(txn, b.customer_id).await? else {
        return Ok(());
    };
    let message = mail::templates::deposit_receipt(settings, biz, &customer.name, b, payment);
    mail::enqueue(
        txn,
        settings,
        Some(customer.id),
        &customer.email,
        message,
        &format!("payment:receipt:{}", payment.id),
    )
    .await?;
    Ok(())
}

/// Marks the customer changed for the CRM (deposits paid and refunds are CRM fields); the push
/// is coalesced with any other change in the same moment.
#[tracing::instrument(skip_all, err)]
pub async fn crm_update<C: ConnectionTrait>(
    txn: &C,
    customer_id: i64,
    cause: &str,
) -> Result<(), DbErr> {
    crate::crm::changed(txn, customer_id, cause).await
}

/// Puts a payment problem in front of admins: a `payments.review` job that re-checks the
/// condition and, while it holds, waits in manual review with `message`.
#[tracing::instrument(skip_all, err)]
pub async fn review<C: ConnectionTrait>(
    txn: &C,
    key: &str,
    message: &str,
    payment_id: i64,
) -> Result<(), DbErr> {
    ledger::enqueue(
        txn,
        NewJob::of(
            &crate::jobs::PaymentReview {
                payment_id,
                message: message.to_owned(),
            },
            Subject::new("payment", payment_id),
            format!("payments.review:{key}"),
        ),
    )
    .await?;
    Ok(())
}

/// Records a failed card attempt on a payment (the session stays open: the customer may try
/// another card on the same page).
#[tracing::instrument(skip_all)]
pub async fn apply_payment_failed(
    db: &DatabaseConnection,
    payment_id: Option<i64>,
    payment_intent: &str,
    message: &str,
) -> Result<Applied, ApplyError> {
    let txn = db::begin_write(db).await?;
    let p = match payment_id {
        Some(id) => get(&txn, id).await?,
        None => by_intent(&txn, payment_intent).await?,
    };
    let Some(p) = p else {
        // A failed attempt changes no money; if we cannot place it, there is nothing to keep.
        return Ok(Applied::AlreadyKnown);
    };
    let msg: String = message.chars().take(300).collect();
    let n = db::execute(
        &txn,
        "UPDATE payments SET last_error = ?, updated_at = ? WHERE id = ? AND status IN ('creating', 'open', 'processing')",
        vec![format!("The last attempt failed: {msg}").into(), now_ms().into(), p.id.into()],
    )
    .await?;
    txn.commit().await?;
    Ok(changed(n, "a card attempt failed"))
}

/// Stripe says `amount_refunded` of the charge for `payment_intent` is refunded (cumulative).
/// Refunds the portal asked for are recorded by their own job; a refund made elsewhere (the
/// Stripe dashboard) is recorded here. While one of the portal's refunds is still pending, the
/// event waits, so the two are never counted twice.
#[tracing::instrument(skip_all)]
pub async fn apply_charge_refunded(
    db: &DatabaseConnection,
    payment_intent: &str,
    amount_refunded: i64,
) -> Result<Applied, ApplyError> {
    let txn = db::begin_write(db).await?;
    let Some(p) = by_intent(&txn, payment_intent).await? else {
        return Err(ApplyError::NotYetKnown(format!(
            "no paid payment with payment intent {payment_intent} yet"
        )));
    };
    if amount_refunded <= p.refunded_cents {
        return Ok(Applied::AlreadyKnown);
    }
    let refunds = refunds_of(&txn, p.id).await?;
    let known: i64 = refunds
        .iter()
        .filter(|r| r.status == RefundStatus::Succeeded)
        .map(|r| r.amount_cents)
        .sum();
    if refunds.iter().any(|r| r.status == RefundStatus::Pending) && amount_refunded > known {
        return Err(ApplyError::NotYetKnown(format!(
            "a refund of payment {} is still being recorded",
            p.id
        )));
    }
    let now = now_ms();
    if amount_refunded > known {
        db::execute(
            &txn,
            "INSERT INTO refunds (payment_id, amount_cents, reason, source, requested_by, status, created_at, updated_at) VALUES (?, ?, 'Refunded in Stripe', 'stripe', NULL, 'succeeded', ?, ?)",
            vec![p.id.into(), (amount_refunded - known).into(), now.into(), now.into()],
        )
        .await?;
        booking_event(
            &txn,
            p.booking_id,
            &format!(
                "{} refunded in Stripe",
                booking::money(amount_refunded - known, &p.currency)
            ),
        )
        .await?;
    }
    db::execute(
        &txn,
        "UPDATE payments SET refunded_cents = ?, updated_at = ? WHERE id = ? AND refunded_cents < ?",
        vec![amount_refunded.into(), now.into(), p.id.into(), amount_refunded.into()],
    )
    .await?;
    crm_update(
        &txn,
        p.customer_id,
        &format!("refunded:{}:{amount_refunded}", p.id),
    )
    .await?;
    txn.commit().await?;
    Ok(Applied::Changed(format!(
        "refunded total now {amount_refunded}"
    )))
}

/// A dispute (chargeback) was opened: flag the payment and put it in front of admins.
#[tracing::instrument(skip_all)]
pub async fn apply_dispute(
    db: &DatabaseConnection,
    payment_intent: &str,
    dispute_id: &str,
    reason: &str,
    amount: i64,
) -> Result<Applied, ApplyError> {
    let txn = db::begin_write(db).await?;
    let Some(p) = by_intent(&txn, payment_intent).await? else {
        return Err(ApplyError::NotYetKnown(format!(
            "no payment with payment intent {payment_intent} yet"
        )));
    };
    db::execute(
        &txn,
        "UPDATE payments SET disputed = TRUE, updated_at = ? WHERE id = ?",
        vec![now_ms().into(), p.id.into()],
    )
    .await?;
    review(
        &txn,
        &format!("dispute:{dispute_id}"),
        &format!(
            "The customer disputed {} of payment {} (booking {}), reason: {}. Respond in the Stripe dashboard before the deadline (dispute {dispute_id}).",
            booking::money(amount, &p.currency),
            p.id,
            p.booking_id,
            reason.replace('_', " ")
        ),
        p.id,
    )
    .await?;
    txn.commit().await?;
    Ok(Applied::Changed("dispute flagged".into()))
}

// ---------------------------------------------------------------------------------------------
// Refunds.

/// Records a refund of `amount` and queues its job. Refused when it would refund more than was
/// paid (pending refunds count).
#[tracing::instrument(skip_all, err)]
pub async fn request_refund<C: ConnectionTrait>(
    txn: &C,
    payment: &Payment,
    amount: i64,
    reason: &str,
    source: &str,
    actor: Option<i64>,
) -> Result<i64, DbErr> {
    let now = now_ms();
    let row = db::query_one(
        txn,
        "INSERT INTO refunds (payment_id, amount_cents, reason, source, requested_by, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?) RETURNING id",
        vec![payment.id.into(), amount.into(), reason.chars().take(300).collect::<String>().into(), source.into(), actor.into(), now.into(), now.into()],
    )
    .await?
    .ok_or(DbErr::RecordNotInserted)?;
    let id: i64 = col(&row, "id")?;
    ledger::enqueue(
        txn,
        NewJob::of(
            &crate::jobs::Refund { refund_id: id },
            Subject::new("payment", payment.id),
            format!("payments.refund:{id}"),
        ),
    )
    .await?;
    Ok(id)
}

/// What is left to refund on `payment`, after refunds done and pending.
#[tracing::instrument(skip_all, err)]
pub async fn refund_room<C: ConnectionTrait>(txn: &C, payment: &Payment) -> Result<i64, DbErr> {
    if payment.status != PaymentStatus::Paid {
        return Ok(0);
    }
    let refunds = refunds_of(txn, payment.id).await?;
    let pending: i64 = refunds
        .iter()
        .filter(|r| r.status == RefundStatus::Pending)
        .map(|r| r.amount_cents)
        .sum();
    let done: i64 = refunds
        .iter()
        .filter(|r| r.status == RefundStatus::Succeeded)
        .map(|r| r.amount_cents)
        .sum();
    Ok((payment.amount_cents - pending - done.max(payment.refunded_cents)).max(0))
}

/// Cancels a booking under the policy ([`booking::cancel`]) and, when the policy refunds the
/// deposit, requests the refund in the same transaction.
#[tracing::instrument(skip_all)]
pub async fn cancel_booking(
    db: &DatabaseConnection,
    settings: &PortalSettings,
    id: i64,
    actor: i64,
    by_staff: bool,
    reason: &str,
) -> Result<String, booking::BookingError> {
    let txn = db::begin_write(db).await?;
    let outcome = booking::cancel(&txn, settings, id, actor, by_staff, reason).await?;
    if outcome == "refund" {
        refund_for_cancellation(&txn, id).await?;
    }
    txn.commit().await?;
    Ok(outcome.into())
}

/// The refund the policy gives when a booking is cancelled: the whole deposit (in the free
/// window, or cancelled by staff). Called inside the cancellation's transaction.
#[tracing::instrument(skip_all, err)]
pub async fn refund_for_cancellation<C: ConnectionTrait>(
    txn: &C,
    booking_id: i64,
) -> Result<Option<i64>, DbErr> {
    for p in for_booking(txn, booking_id).await? {
        let room = refund_room(txn, &p).await?;
        if room > 0 {
            let id = request_refund(
                txn,
                &p,
                room,
                "Cancelled within the free cancellation window",
                "policy",
                None,
            )
            .await?;
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Staff or an admin refund by hand, with a reason. Audited by the caller.
#[tracing::instrument(skip_all)]
pub async fn manual_refund(
    db: &DatabaseConnection,
    payment_id: i64,
    amount: i64,
    reason: &str,
    actor: i64,
) -> Result<i64, PaymentError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(PaymentError::NotAllowed(
            "Give a reason for the refund; the customer sees it.".into(),
        ));
    }
    if amount <= 0 {
        return Err(PaymentError::NotAllowed(
            "Enter an amount greater than zero.".into(),
        ));
    }
    let txn = db::begin_write(db).await?;
    let p = get(&txn, payment_id).await?.ok_or(PaymentError::NotFound)?;
    let room = refund_room(&txn, &p).await?;
    if p.status != PaymentStatus::Paid {
        return Err(PaymentError::NotAllowed(
            "Only a paid payment can be refunded.".into(),
        ));
    }
    if amount > room {
        return Err(PaymentError::NotAllowed(format!(
            "At most {} can still be refunded on this payment.",
            booking::money(room, &p.currency)
        )));
    }
    let id = request_refund(&txn, &p, amount, reason, "staff", Some(actor)).await?;
    booking_event(
        &txn,
        p.booking_id,
        &format!(
            "refund of {} requested by staff: {reason}",
            booking::money(amount, &p.currency)
        ),
    )
    .await?;
    crate::audit::record(
        &txn,
        Some(actor),
        "payment.refund",
        "payment",
        &payment_id.to_string(),
        &format!("{} ({reason})", booking::money(amount, &p.currency)),
    )
    .await?;
    txn.commit().await?;
    Ok(id)
}

/// Records a refund Stripe made (called by the refund job), emails the customer. Idempotent.
#[tracing::instrument(skip_all, err)]
pub async fn refund_succeeded(
    db: &DatabaseConnection,
    settings: &PortalSettings,
    refund_id: i64,
    done: &RefundDone,
) -> Result<(), DbErr> {
    let txn = db::begin_write(db).await?;
    let n = db::execute(
        &txn,
        "UPDATE refunds SET status = 'succeeded', stripe_refund_id = ?, error = NULL, updated_at = ? WHERE id = ? AND status = 'pending'",
        vec![done.id.clone().into(), now_ms().into(), refund_id.into()],
    )
    .await?;
    if n == 0 {
        return Ok(());
    }
    let r = db::query_one(
        &txn,
        "SELECT payment_id, amount_cents, reason FROM refunds WHERE id = ?",
        vec![refund_id.into()],
    )
    .await?
    .ok_or(DbErr::RecordNotFound("refund".into()))?;
    let payment_id: i64 = col(&r, "payment_id")?;
    let amount: i64 = col(&r, "amount_cents")?;
    let reason: String = col(&r, "reason")?;
    let p = get(&txn, payment_id)
        .await?
        .ok_or(DbErr::RecordNotFound("payment".into()))?;
    let total: i64 = refunds_of(&txn, p.id)
        .await?
        .iter()
        .filter(|r| r.status == RefundStatus::Succeeded)
        .map(|r| r.amount_cents)
        .sum();
    db::execute(
        &txn,
        "UPDATE payments SET refunded_cents = ?, updated_at = ? WHERE id = ? AND refunded_cents < ?",
        vec![total.into(), now_ms().into(), p.id.into(), total.into()],
    )
    .await?;
    booking_event(
        &txn,
        p.booking_id,
        &format!(
            "{} refunded ({reason})",
            booking::money(amount, &p.currency)
        ),
    )
    .await?;
    let biz = booking::business(&txn).await?;
    if let (Some(b), Some(customer)) = (
        booking::view(&txn, p.booking_id).await?,
        crate::records::find_user(&txn, p.customer_id).await?,
    ) {
        let message =
            mail::templates::refund_issued(settings, &biz, &customer.name, &b, amount, &reason);
        mail::enqueue(
            &txn,
            settings,
            Some(customer.id),
            &customer.email,
            message,
            &format!("payment:refund:{refund_id}"),
        )
        .await?;
    }
    crm_update(&txn, p.customer_id, &format!("refund:{refund_id}")).await?;
    txn.commit().await?;
    Ok(())
}

/// Records Stripe's message on a refund that failed (it stays pending: the job is in manual
/// review, and retrying it from the health area tries again).
#[tracing::instrument(skip_all, err)]
pub async fn refund_failed(
    db: &DatabaseConnection,
    refund_id: i64,
    error: &str,
) -> Result<(), DbErr> {
    db::execute(
        db,
        "UPDATE refunds SET error = ?, updated_at = ? WHERE id = ? AND status = 'pending'",
        vec![
            error.chars().take(500).collect::<String>().into(),
            now_ms().into(),
            refund_id.into(),
        ],
    )
    .await?;
    Ok(())
}

/// Deposits paid since `from` (milliseconds), less what was refunded of them, in cents.
#[tracing::instrument(skip_all, err)]
pub async fn net_paid_since<C: ConnectionTrait>(conn: &C, from: i64) -> Result<i64, DbErr> {
    let r = db::query_one(
        conn,
        "SELECT CAST(COALESCE(SUM(amount_cents - refunded_cents), 0) AS BIGINT) AS c FROM payments WHERE status = 'paid' AND paid_at >= ?",
        vec![from.into()],
    )
    .await?;
    Ok(r.map(|r| col::<i64>(&r, "c")).transpose()?.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vat_included_in_an_inclusive_amount() {
        // R 115.00 at 15 % holds R 15.00 VAT.
        assert_eq!(vat_included(11_500, 1_500), 1_500);
        assert_eq!(vat_included(10_000, 1_500), 1_304);
        assert_eq!(vat_included(1, 1_500), 0);
        assert_eq!(vat_included(10_000, 0), 0);
    }

    #[test]
    fn a_session_lives_between_31_minutes_and_23_hours() {
        let now = 1_000_000_000_000;
        assert_eq!(
            session_expiry(now + 5 * MINUTE, now),
            (now + 31 * MINUTE) / 1000
        );
        assert_eq!(
            session_expiry(now + 90 * MINUTE, now),
            (now + 90 * MINUTE) / 1000
        );
        assert_eq!(
            session_expiry(now + 48 * 60 * MINUTE, now),
            (now + 23 * 60 * MINUTE) / 1000
        );
    }
}

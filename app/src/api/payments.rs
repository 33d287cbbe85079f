//! Payments: paying a deposit (sent to Stripe Checkout), the return page's status, a customer's
//! payment history and receipts, refunds by staff and admins, and the admin payments list.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use model::error::AppError;

/// A payment as pages show it (amounts already formatted in the business's currency).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentLine {
    pub id: i64,
    pub booking_id: i64,
    pub service_name: String,
    pub customer_name: String,
    pub created: String,
    pub paid: Option<String>,
    /// paid, refunded, partly refunded, waiting for payment, processing, failed, expired.
    pub status: String,
    pub amount: String,
    pub vat: String,
    pub net: String,
    pub vat_rate: String,
    pub refunded: String,
    pub refundable_cents: i64,
    pub refundable: String,
    pub receipt_number: Option<String>,
    pub disputed: bool,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundLine {
    pub id: i64,
    pub at: String,
    pub amount: String,
    pub reason: String,
    pub source: String,
    pub status: String,
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentDetail {
    pub payment: PaymentLine,
    pub refunds: Vec<RefundLine>,
    pub business_name: String,
    pub booking_when: String,
    pub staff_name: String,
    pub can_refund: bool,
}

/// The return page after Stripe Checkout: the booking's real state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnStatus {
    pub booking_id: i64,
    pub service_name: String,
    pub when: String,
    /// `confirmed`, `confirming` (paid or submitted at Stripe, the webhook not yet applied),
    /// `processing` (a delayed method), `failed`, `expired`, or `cancelled`.
    pub state: String,
    pub message: String,
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::*;
    use domain::booking::{Business, local_time, money};
    use domain::payments::Payment;

    pub fn line(p: &Payment, biz: &Business, service: &str, customer: &str) -> PaymentLine {
        let room = p.refundable_cents();
        PaymentLine {
            id: p.id,
            booking_id: p.booking_id,
            service_name: service.to_owned(),
            customer_name: customer.to_owned(),
            created: local_time(p.created_at, biz.tz),
            paid: p.paid_at.map(|t| local_time(t, biz.tz)),
            status: p.label(),
            amount: money(p.amount_cents, &p.currency),
            vat: money(p.vat_cents, &p.currency),
            net: money(p.amount_cents - p.vat_cents, &p.currency),
            vat_rate: format!("{}.{:02} %", p.vat_rate_bp / 100, p.vat_rate_bp % 100),
            refunded: money(p.refunded_cents, &p.currency),
            refundable_cents: room,
            refundable: money(room, &p.currency),
            receipt_number: p.receipt_number.clone(),
            disputed: p.disputed,
            last_error: p.last_error.clone(),
        }
    }

    /// Lines for payments, with the booking's service and the customer's name.
    pub async fn lines<C: sea_orm::ConnectionTrait>(
        conn: &C,
        biz: &Business,
        list: &[Payment],
    ) -> Result<Vec<PaymentLine>, sea_orm::DbErr> {
        let mut out = Vec::with_capacity(list.len());
        for p in list {
            let (service, customer) = match domain::booking::view(conn, p.booking_id).await? {
                Some(b) => (b.service_name, b.customer_name),
                None => (String::new(), String::new()),
            };
            out.push(line(p, biz, &service, &customer));
        }
        Ok(out)
    }

    /// Whether `user` may see payment `p` (its customer, the booking's staff member, admins).
    pub async fn can_see<C: sea_orm::ConnectionTrait>(
        conn: &C,
        user: &domain::auth::UserRecord,
        p: &Payment,
    ) -> Result<bool, sea_orm::DbErr> {
        use model::Role;
        Ok(match user.role {
            Role::Admin => true,
            Role::Customer => p.customer_id == user.id,
            Role::Staff => domain::booking::view(conn, p.booking_id)
                .await?
                .is_some_and(|b| b.staff_id == user.id),
        })
    }
}

/// Sends the customer to Stripe's payment page for the booking's deposit.
#[server(prefix = "/api", endpoint = "pay_deposit")]
pub async fn pay_deposit(booking_id: i64) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::payments;
    let me = crate::ssr::guard::require_user().await?;
    let st = state();
    let url = payments::begin_checkout(
        &st.db,
        &st.settings,
        st.payments.as_ref(),
        booking_id,
        me.id,
    )
    .await
    .map_err(AppError::from)?;
    leptos_axum::redirect(&url);
    Ok(())
}

/// What the return page from Stripe shows.
#[server(prefix = "/api", endpoint = "payment_return")]
pub async fn payment_return(booking_id: i64) -> Result<ReturnStatus, AppError> {
    use crate::ssr::state;
    use domain::{booking as bk, payments};
    let me = crate::ssr::guard::require_user().await?;
    let db = state().db.clone();
    let b = bk::view(&db, booking_id)
        .await?
        .filter(|b| b.customer_id == me.id)
        .ok_or(AppError::NotFound)?;
    let biz = bk::business(&db).await?;
    let attempts = payments::for_booking(&db, booking_id).await?;
    let latest = attempts.last();
    let (state, message) = match (b.status.as_str(), latest.map(|p| p.status.as_str())) {
        ("confirmed" | "completed", _) => (
            "confirmed",
            "Payment received and your booking is confirmed. The confirmation and your receipt are on their way by email.".to_string(),
        ),
        ("cancelled", _) => ("cancelled", "This booking was cancelled; any payment for it is refunded.".to_string()),
        (_, Some("paid")) => (
            "confirming",
            "Payment received, confirming… This page updates by itself.".to_string(),
        ),
        (_, Some("processing")) => (
            "processing",
            "Your payment was submitted and is waiting for the bank. We'll email you as soon as it clears.".to_string(),
        ),
        (_, Some("failed")) => (
            "failed",
            latest
                .and_then(|p| p.last_error.clone())
                .unwrap_or_else(|| "The payment did not go through.".into()),
        ),
        ("expired", _) => ("expired", "The hold on this time expired before the payment arrived. If you paid, the money is refunded automatically unless the time is still free.".to_string()),
        _ => (
            "confirming",
            "Payment received, confirming… This page updates by itself.".to_string(),
        ),
    };
    Ok(ReturnStatus {
        booking_id,
        service_name: b.service_name.clone(),
        when: bk::local_time(b.start_ms, biz.tz),
        state: state.into(),
        message,
    })
}

/// The payments of a booking (for its page).
#[server(prefix = "/api", endpoint = "booking_payments")]
pub async fn booking_payments(booking_id: i64) -> Result<Vec<PaymentLine>, AppError> {
    use crate::ssr::state;
    use domain::{booking as bk, payments};
    let me = crate::ssr::guard::require_user().await?;
    let db = state().db.clone();
    let b = bk::view(&db, booking_id).await?.ok_or(AppError::NotFound)?;
    let allowed = match me.role {
        model::Role::Admin => true,
        model::Role::Staff => b.staff_id == me.id,
        model::Role::Customer => b.customer_id == me.id,
    };
    if !allowed {
        return Err(AppError::NotFound);
    }
    let biz = bk::business(&db).await?;
    let list = payments::for_booking(&db, booking_id).await?;
    Ok(ssr::lines(&db, &biz, &list).await?)
}

/// The signed-in customer's payments, newest first.
#[server(prefix = "/api", endpoint = "my_payments")]
pub async fn my_payments() -> Result<Vec<PaymentLine>, AppError> {
    use crate::ssr::state;
    use domain::{booking as bk, payments};
    let me = crate::ssr::guard::require_user().await?;
    let db = state().db.clone();
    let biz = bk::business(&db).await?;
    let list = payments::of_customer(
        &db,
        me.id,
        &[model::PaymentStatus::Paid, model::PaymentStatus::Processing],
        500,
    )
    .await?;
    Ok(ssr::lines(&db, &biz, &list).await?)
}

/// One payment with its refunds: the receipt for the customer, the refund form for staff.
#[server(prefix = "/api", endpoint = "get_payment")]
pub async fn get_payment(id: i64) -> Result<PaymentDetail, AppError> {
    use crate::ssr::state;
    use domain::{booking as bk, payments};
    use model::Role;
    let me = crate::ssr::guard::require_user().await?;
    let st = state();
    let p = payments::get(&st.db, id).await?.ok_or(AppError::NotFound)?;
    if !ssr::can_see(&st.db, &me, &p).await? {
        return Err(AppError::NotFound);
    }
    let biz = bk::business(&st.db).await?;
    let b = bk::view(&st.db, p.booking_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let refunds = payments::refunds_of(&st.db, p.id)
        .await?
        .into_iter()
        .map(|r| RefundLine {
            id: r.id,
            at: bk::local_time(r.created_at, biz.tz),
            amount: bk::money(r.amount_cents, &p.currency),
            reason: r.reason,
            source: r.source,
            status: r.status.to_string(),
            error: if me.role == Role::Customer {
                None
            } else {
                r.error
            },
        })
        .collect();
    let room = payments::refund_room(&st.db, &p).await?;
    let mut line = ssr::line(&p, &biz, &b.service_name, &b.customer_name);
    line.refundable_cents = room;
    line.refundable = bk::money(room, &p.currency);
    if me.role == Role::Customer {
        line.last_error = None;
    }
    Ok(PaymentDetail {
        payment: line,
        refunds,
        business_name: st.settings.branding.business_name.clone(),
        booking_when: bk::local_time(b.start_ms, biz.tz),
        staff_name: b.staff_name,
        can_refund: me.role != Role::Customer && room > 0,
    })
}

/// Parses an amount typed by staff (`150`, `150.5`, `150.50`, `R 150,50`) into minor units.
pub fn parse_amount(input: &str) -> Result<i64, String> {
    let cleaned: String = input
        .trim()
        .trim_start_matches(|c: char| c.is_alphabetic() || c == '$' || c == '€' || c == '£')
        .trim()
        .replace(',', ".")
        .replace(' ', "");
    let bad = || format!("{input:?} is not an amount: type it like 150.00.");
    let (whole, frac) = match cleaned.split_once('.') {
        Some((w, f)) => (w, f),
        None => (cleaned.as_str(), ""),
    };
    if whole.is_empty() && frac.is_empty() || frac.len() > 2 {
        return Err(bad());
    }
    if !whole.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let w: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let f: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<2}").parse().map_err(|_| bad())?
    };
    w.checked_mul(100)
        .and_then(|x| x.checked_add(f))
        .ok_or_else(bad)
}

/// Staff (for their own bookings) and admins refund by hand, with a reason the customer sees.
#[server(prefix = "/api", endpoint = "refund_payment")]
pub async fn refund_payment(
    payment_id: i64,
    amount: String,
    reason: String,
) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::payments;
    use model::Role;
    let me = crate::ssr::guard::require_role(Role::Staff).await?;
    let st = state();
    let p = payments::get(&st.db, payment_id)
        .await?
        .ok_or(AppError::NotFound)?;
    if !ssr::can_see(&st.db, &me, &p).await? {
        return Err(AppError::NotFound);
    }
    let cents = parse_amount(&amount).map_err(AppError::Invalid)?;
    payments::manual_refund(&st.db, payment_id, cents, &reason, me.id)
        .await
        .map_err(AppError::from)?;
    Ok(())
}

/// Every payment, filtered, for admins (newest first, at most 500; the CSV has all).
#[server(prefix = "/api", endpoint = "admin_payments")]
pub async fn admin_payments(
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
) -> Result<Vec<PaymentLine>, AppError> {
    use crate::ssr::state;
    use domain::{booking as bk, payments};
    use model::Role;
    crate::ssr::guard::require_role(Role::Admin).await?;
    let db = state().db.clone();
    let biz = bk::business(&db).await?;
    let list = payments::filtered(
        &db,
        status.as_deref(),
        from.as_deref(),
        to.as_deref(),
        biz.tz,
        500,
    )
    .await?
    .map_err(AppError::Invalid)?;
    Ok(ssr::lines(&db, &biz, &list).await?)
}

#[cfg(test)]
mod tests {
    use super::parse_amount;

    #[test]
    fn amounts_typed_by_people() {
        assert_eq!(parse_amount("150"), Ok(15_000));
        assert_eq!(parse_amount("150.5"), Ok(15_050));
        assert_eq!(parse_amount("R 150,50"), Ok(15_050));
        assert_eq!(parse_amount(".75"), Ok(75));
        assert!(parse_amount("1.234").is_err());
        assert!(parse_amount("-5").is_err());
        assert!(parse_amount("abc").is_err());
        assert!(parse_amount("").is_err());
        assert!(parse_amount("99999999999999999999").is_err());
    }
}

/// Staff (for their bookings) and admins email the customer a link to pay a deposit that was
/// due at the visit.
#[server(prefix = "/api", endpoint = "send_payment_link")]
pub async fn send_payment_link(booking_id: i64) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::{booking as bk, payments};
    use model::Role;
    let me = crate::ssr::guard::require_role(Role::Staff).await?;
    let st = state();
    let b = bk::view(&st.db, booking_id)
        .await?
        .ok_or(AppError::NotFound)?;
    if me.role != Role::Admin && b.staff_id != me.id {
        return Err(AppError::NotFound);
    }
    payments::send_payment_link(
        &st.db,
        &st.settings,
        st.payments.as_ref(),
        booking_id,
        me.id,
    )
    .await
    .map_err(AppError::from)
}

/// A message the portal sent (or is trying to send) to the signed-in user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageLine {
    pub subject: String,
    pub at: String,
    /// `sent`, `queued` (waiting: email may be down) or `failed`.
    pub status: String,
    /// The text, or a note when the message carried a one-time link (never shown here).
    pub text: String,
}

/// The user's recent emails with what they say, so that while email is down the customer still
/// learns what the message would have told them.
#[server(prefix = "/api", endpoint = "my_messages")]
pub async fn my_messages() -> Result<Vec<MessageLine>, AppError> {
    use crate::ssr::state;

    let me = crate::ssr::guard::require_user().await?;
    Ok(domain::email::recent_for(&state().db, me.id)
        .await?
        .into_iter()
        .map(|m| MessageLine {
            subject: m.subject,
            at: model::format_ms(m.created_at),
            status: m.status,
            text: if m.redact_after_send {
                "This message carried a one-time link, which is only sent by email.".into()
            } else {
                m.body_text
            },
        })
        .collect())
}

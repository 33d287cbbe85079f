//! The customer's dashboard (what's next and what needs them) and the admin's day at a glance.

use leptos::prelude::*;
#[cfg(feature = "ssr")]
use model::BookingStatus;
use serde::{Deserialize, Serialize};

use crate::api::booking::BookingRow;
use crate::api::payments::PaymentLine;
use model::error::AppError;

/// Something the customer should do, with where to do it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attention {
    pub text: String,
    pub href: String,
    pub action: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashboardData {
    pub name: String,
    pub next: Option<BookingRow>,
    pub upcoming: usize,
    pub attention: Vec<Attention>,
    pub payments: Vec<PaymentLine>,
}

#[server(prefix = "/api", endpoint = "customer_dashboard")]
pub async fn customer_dashboard() -> Result<DashboardData, AppError> {
    use crate::ssr::state;
    use domain::{booking as bk, db, payments};
    let st = state();
    let me = crate::ssr::guard::require_user().await?;
    let biz = bk::business(&st.db).await?;
    let now = db::now_ms();
    let upcoming = bk::BookingFilter {
        customer_id: Some(me.id),
        statuses: vec![BookingStatus::Confirmed, BookingStatus::AwaitingDeposit],
        after_ms: Some(now),
        ..Default::default()
    };
    let rows = bk::filtered(&st.db, &upcoming, 100).await?;
    let mut attention = Vec::new();
    if !me.email_verified {
        attention.push(Attention {
            text:
                "Confirm your email address with the link we sent you; until then you can't book."
                    .into(),
            href: "/account".into(),
            action: "My account".into(),
        });
    }
    for b in rows
        .iter()
        .filter(|b| b.status == BookingStatus::AwaitingDeposit)
    {
        attention.push(Attention {
            text: format!(
                "Pay the deposit of {} for {} on {} to confirm it (held until {}).",
                bk::money(b.deposit_cents, &b.currency),
                b.service_name,
                bk::local_time(b.start_ms, biz.tz),
                b.hold_expires_ms
                    .map(|t| bk::local_time(t, biz.tz))
                    .unwrap_or_default()
            ),
            href: format!("/bookings/{}", b.id),
            action: "Pay deposit".into(),
        });
    }
    for b in rows.iter().filter(|b| b.deposit_due_at_visit) {
        attention.push(Attention {
            text: format!(
                "The deposit of {} for {} is due at your visit.",
                bk::money(b.deposit_cents, &b.currency),
                b.service_name
            ),
            href: format!("/bookings/{}", b.id),
            action: "View booking".into(),
        });
    }
    for r in domain::documents::requests_for_customer(&st.db, me.id, true).await? {
        let (what, due) = (r.description, r.due_at);
        attention.push(Attention {
            text: format!(
                "We asked you for a document: {what} (by {}).",
                bk::local_time(due, biz.tz)
            ),
            href: "/documents".into(),
            action: "Upload".into(),
        });
    }
    let next = rows
        .iter()
        .find(|b| b.status == BookingStatus::Confirmed)
        .map(|b| crate::api::booking::ssr_row(b, &biz));
    let paid = payments::of_customer(&st.db, me.id, &[model::PaymentStatus::Paid], 3).await?;
    Ok(DashboardData {
        name: me.name.clone(),
        next,
        upcoming: rows.len(),
        attention,
        payments: crate::api::payments::ssr::lines(&st.db, &biz, &paid).await?,
    })
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TodaySummary {
    pub date: String,
    pub bookings: Vec<BookingRow>,
    pub deposits_today: String,
    pub deposits_month: String,
    pub awaiting_deposit: i64,
    pub open_requests: i64,
}

/// Today's bookings and the deposits received (net of refunds), for the admin overview.
#[server(prefix = "/api", endpoint = "admin_today")]
pub async fn admin_today() -> Result<TodaySummary, AppError> {
    use crate::ssr::state;
    use domain::{booking as bk, db};
    use model::Role;
    use slots::chrono::{Datelike, NaiveDate, TimeZone};
    let st = state();
    crate::ssr::guard::require_role(Role::Admin).await?;
    let biz = bk::business(&st.db).await?;
    let now = db::now_ms();
    let today = biz
        .tz
        .timestamp_millis_opt(now)
        .single()
        .map(|t| t.date_naive())
        .unwrap_or_default();
    let start_of = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .and_then(|t| biz.tz.from_local_datetime(&t).earliest())
            .map(|t| t.timestamp_millis())
            .unwrap_or(now)
    };
    let day_start = start_of(today);
    let day_end = start_of(today.succ_opt().unwrap_or(today));
    let month_start = start_of(today.with_day(1).unwrap_or(today));
    let on_today = bk::BookingFilter {
        statuses: vec![
            BookingStatus::Confirmed,
            BookingStatus::AwaitingDeposit,
            BookingStatus::Completed,
            BookingStatus::NoShow,
        ],
        from_ms: Some(day_start),
        to_ms: Some(day_end),
        ..Default::default()
    };
    let bookings = bk::filtered(&st.db, &on_today, 500)
        .await?
        .iter()
        .map(|b| crate::api::booking::ssr_row(b, &biz))
        .collect();
    Ok(TodaySummary {
        date: today.format("%A %-d %B %Y").to_string(),
        bookings,
        deposits_today: bk::money(
            domain::payments::net_paid_since(&st.db, day_start).await?,
            &biz.currency,
        ),
        deposits_month: bk::money(
            domain::payments::net_paid_since(&st.db, month_start).await?,
            &biz.currency,
        ),
        awaiting_deposit: bk::holds_waiting(&st.db, now).await?,
        open_requests: domain::documents::open_requests(&st.db, now).await?,
    })
}

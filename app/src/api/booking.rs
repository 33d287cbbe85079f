//! Booking: services and free times (public), booking, a customer's bookings with cancel and
//! move, staff's day, and admin set-up (services, staff hours, business settings, all bookings).

use leptos::prelude::*;
#[cfg(feature = "ssr")]
use model::BookingStatus;
use serde::{Deserialize, Serialize};

use model::error::AppError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCard {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub duration_min: i32,
    pub price: String,
    /// "R 100.00 deposit", or empty when none.
    pub deposit: String,
    pub active: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub start_ms: i64,
    pub staff_id: i64,
    /// Local time, e.g. `09:30`.
    pub label: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotDay {
    /// `YYYY-MM-DD` in the business's zone.
    pub date: String,
    /// e.g. `Mon 30 Nov`.
    pub label: String,
    pub slots: Vec<Slot>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotPage {
    pub service: ServiceCard,
    pub staff: Vec<(i64, String)>,
    pub days: Vec<SlotDay>,
    pub prev_day: Option<String>,
    pub next_day: String,
    pub time_zone: String,
}

/// The summary shown before booking: what, when, with whom, price, deposit and policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingQuote {
    pub service: ServiceCard,
    pub staff_name: String,
    pub when: String,
    pub policy: String,
    pub bookable: Result<(), String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingDetail {
    pub booking: BookingRow,
    pub history: Vec<(i64, String)>,
    /// What cancelling now would do to the deposit, in words.
    pub cancel_effect: String,
    pub can_cancel: bool,
    pub can_move: bool,
    pub is_staff_view: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingRow {
    pub id: i64,
    pub service_id: i64,
    pub service_name: String,
    pub staff_name: String,
    pub customer_name: String,
    pub when: String,
    pub start_ms: i64,
    pub status: String,
    pub price: String,
    pub deposit: String,
    pub deposit_outcome: Option<String>,
    pub hold_expires: Option<String>,
    pub deposit_due_at_visit: bool,
}

#[cfg(feature = "ssr")]
mod ssr {
    use super::*;
    use domain::booking::{BookingView, Business, Service, local_time, money};

    pub fn card(s: &Service, biz: &Business) -> ServiceCard {
        let deposit = s.deposit_cents();
        ServiceCard {
            id: s.id,
            name: s.name.clone(),
            description: s.description.clone(),
            duration_min: s.duration_min,
            price: money(s.price_cents, &biz.currency),
            deposit: if deposit > 0 {
                format!("{} deposit", money(deposit, &biz.currency))
            } else {
                String::new()
            },
            active: s.active,
        }
    }

    pub fn row(b: &BookingView, biz: &Business) -> BookingRow {
        BookingRow {
            id: b.id,
            service_id: b.service_id,
            service_name: b.service_name.clone(),
            staff_name: b.staff_name.clone(),
            customer_name: b.customer_name.clone(),
            when: local_time(b.start_ms, biz.tz),
            start_ms: b.start_ms,
            status: b.status.to_string(),
            price: money(b.price_cents, &b.currency),
            deposit: if b.deposit_cents > 0 {
                money(b.deposit_cents, &b.currency)
            } else {
                String::new()
            },
            deposit_outcome: b.deposit_outcome.clone(),
            hold_expires: b.hold_expires_ms.map(|t| local_time(t, biz.tz)),
            deposit_due_at_visit: b.deposit_due_at_visit,
        }
    }

    pub fn policy_text(biz: &Business, deposit: bool) -> String {
        if deposit {
            format!(
                "Free to move or cancel until {} hours before; after that the deposit is kept. Your time is held for {} minutes while you pay the deposit.",
                biz.free_change_hours, biz.hold_minutes
            )
        } else {
            format!(
                "Free to move or cancel until {} hours before.",
                biz.free_change_hours
            )
        }
    }

    /// Midnight at the start of a local date, as an instant.
    pub fn day_start(date: slots::chrono::NaiveDate, tz: slots::Tz) -> i64 {
        use slots::chrono::TimeZone;
        let midnight = date.and_hms_opt(0, 0, 0).expect("midnight");
        tz.from_local_datetime(&midnight)
            .earliest()
            .map(|t| t.timestamp_millis())
            .unwrap_or_else(|| midnight.and_utc().timestamp_millis())
    }

    pub fn today(tz: slots::Tz) -> slots::chrono::NaiveDate {
        use slots::chrono::TimeZone;
        tz.timestamp_millis_opt(domain::db::now_ms())
            .single()
            .map(|t| t.date_naive())
            .unwrap_or_default()
    }

    pub async fn can_see(user: &domain::auth::UserRecord, b: &BookingView) -> bool {
        use model::Role;
        match user.role {
            Role::Admin => true,
            Role::Staff => b.staff_id == user.id,
            Role::Customer => b.customer_id == user.id,
        }
    }
}

#[cfg(feature = "ssr")]
pub fn ssr_row(b: &domain::booking::BookingView, biz: &domain::booking::Business) -> BookingRow {
    ssr::row(b, biz)
}

#[server(prefix = "/api", endpoint = "list_services")]
pub async fn list_services() -> Result<Vec<ServiceCard>, AppError> {
    use crate::ssr::state;
    use domain::booking as bk;
    let db = state().db.clone();
    let biz = bk::business(&db).await?;
    Ok(bk::services(&db, true)
        .await?
        .iter()
        .map(|s| ssr::card(s, &biz))
        .collect())
}

/// Free times for a service over seven days from `day` (today when empty), for one staff member
/// or anyone.
#[server(prefix = "/api", endpoint = "service_slots")]
pub async fn service_slots(
    service_id: i64,
    staff_id: Option<i64>,
    day: Option<String>,
) -> Result<SlotPage, AppError> {
    use crate::ssr::state;
    use domain::{booking as bk, db};
    use slots::chrono::{Duration, NaiveDate, TimeZone};
    let db = state().db.clone();
    let biz = bk::business(&db).await?;
    let service = bk::service(&db, service_id)
        .await?
        .filter(|s| s.active)
        .ok_or(AppError::NotFound)?;
    let today = ssr::today(biz.tz);
    let start_day = day
        .as_deref()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .filter(|d| *d >= today)
        .unwrap_or(today);
    let from = ssr::day_start(start_day, biz.tz);
    let to = ssr::day_start(start_day + Duration::days(7), biz.tz);
    let staff = bk::staff_for_service(&db, service.id).await?;
    let found = bk::search_among(
        &db,
        &biz,
        &service,
        staff.clone(),
        staff_id,
        from,
        to,
        db::now_ms(),
    )
    .await?;
    let mut days: Vec<SlotDay> = (0..7)
        .map(|i| {
            let d = start_day + Duration::days(i);
            SlotDay {
                date: d.format("%Y-%m-%d").to_string(),
                label: d.format("%a %-d %b").to_string(),
                slots: Vec::new(),
            }
        })
        .collect();
    for (start, staff_id) in found {
        if let Some(t) = biz.tz.timestamp_millis_opt(start).single() {
            let key = t.date_naive().format("%Y-%m-%d").to_string();
            if let Some(day) = days.iter_mut().find(|d| d.date == key) {
                day.slots.push(Slot {
                    start_ms: start,
                    staff_id,
                    label: t.format("%H:%M").to_string(),
                });
            }
        }
    }
    Ok(SlotPage {
        service: ssr::card(&service, &biz),
        staff,
        days,
        prev_day: (start_day > today).then(|| {
            (start_day - Duration::days(7))
                .max(today)
                .format("%Y-%m-%d")
                .to_string()
        }),
        next_day: (start_day + Duration::days(7))
            .format("%Y-%m-%d")
            .to_string(),
        time_zone: biz.tz.name().to_owned(),
    })
}

/// The summary before booking, with whether the time is still free.
#[server(prefix = "/api", endpoint = "quote_booking")]
pub async fn quote_booking(
    service_id: i64,
    staff_id: i64,
    start_ms: i64,
) -> Result<BookingQuote, AppError> {
    use crate::ssr::state;
    use domain::{booking as bk, db};
    let db = state().db.clone();
    let biz = bk::business(&db).await?;
    let service = bk::service(&db, service_id)
        .await?
        .filter(|s| s.active)
        .ok_or(AppError::NotFound)?;
    let staff = bk::staff_for_service(&db, service.id).await?;
    let staff_name = staff
        .iter()
        .find(|s| s.0 == staff_id)
        .map(|s| s.1.clone())
        .ok_or(AppError::NotFound)?;
    let cals = bk::calendars(
        &db,
        &staff
            .iter()
            .filter(|s| s.0 == staff_id)
            .cloned()
            .collect::<Vec<_>>(),
        biz.tz,
    )
    .await?;
    let now = db::now_ms();
    let busy = bk::busy(
        &db,
        &[staff_id],
        start_ms - 2 * 86_400_000,
        start_ms + 2 * 86_400_000,
        now,
        None,
    )
    .await?;
    let bookable = slots::check_start(
        &cals[0],
        &service.rules(),
        busy.get(&staff_id).map(Vec::as_slice).unwrap_or(&[]),
        start_ms,
        now,
    )
    .map_err(|r| r.message);
    let deposit = service.deposit_cents() > 0;
    Ok(BookingQuote {
        service: ssr::card(&service, &biz),
        staff_name,
        when: bk::local_time(start_ms, biz.tz),
        policy: ssr::policy_text(&biz, deposit),
        bookable,
    })
}

/// Books a time. The customer must have confirmed their email.
#[server(prefix = "/api", endpoint = "book")]
pub async fn book(service_id: i64, staff_id: i64, start_ms: i64) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::booking as bk;
    let me = crate::ssr::guard::require_user().await?;
    if !me.email_verified {
        return Err(AppError::Invalid(
            "Please confirm your email address first: open the link we emailed you.".into(),
        ));
    }
    let st = state();
    let created = bk::create(
        &st.db,
        &st.settings,
        me.id,
        service_id,
        Some(staff_id),
        start_ms,
    )
    .await
    .map_err(AppError::from)?;
    if created.status == "awaiting_deposit" {
        // Straight on to the deposit; if the payment provider cannot be reached, the booking
        // page explains, keeps the hold, and offers to try again.
        match domain::payments::begin_checkout(
            &st.db,
            &st.settings,
            st.payments.as_ref(),
            created.id,
            me.id,
        )
        .await
        {
            Ok(url) => leptos_axum::redirect(&url),
            Err(domain::payments::PaymentError::Unavailable(_))
                if st.settings.map.payments_fallback == "pay_at_visit"
                    && domain::payments::confirm_with_deposit_at_visit(
                        &st.db,
                        &st.settings,
                        created.id,
                    )
                    .await? =>
            {
                leptos_axum::redirect(&format!("/bookings/{}?payment=at_visit", created.id))
            }
            Err(_) => {
                leptos_axum::redirect(&format!("/bookings/{}?payment=unavailable", created.id))
            }
        }
        return Ok(());
    }
    leptos_axum::redirect(&format!("/bookings/{}", created.id));
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MyBookingsList {
    /// Active bookings still to come, soonest first.
    pub upcoming: Vec<BookingRow>,
    /// Past, cancelled and expired ones, newest first.
    pub past: Vec<BookingRow>,
}

/// The signed-in customer's bookings (staff: the ones they give).
#[server(prefix = "/api", endpoint = "my_bookings")]
pub async fn my_bookings() -> Result<MyBookingsList, AppError> {
    use crate::ssr::state;
    use domain::booking as bk;
    use model::Role;
    let me = crate::ssr::guard::require_user().await?;
    let db = state().db.clone();
    let biz = bk::business(&db).await?;
    let filter = if me.role == Role::Customer {
        bk::BookingFilter {
            customer_id: Some(me.id),
            ..Default::default()
        }
    } else {
        bk::BookingFilter {
            staff_id: Some(me.id),
            ..Default::default()
        }
    };
    let rows = bk::filtered(&db, &filter, 500).await?;
    let now = domain::db::now_ms();
    let (upcoming, mut past): (Vec<_>, Vec<_>) =
        rows.iter().map(|b| ssr::row(b, &biz)).partition(|b| {
            b.start_ms >= now && matches!(b.status.as_str(), "confirmed" | "awaiting_deposit")
        });
    past.reverse();
    Ok(MyBookingsList { upcoming, past })
}

#[server(prefix = "/api", endpoint = "get_booking")]
pub async fn get_booking(id: i64) -> Result<BookingDetail, AppError> {
    use crate::ssr::state;
    use domain::{booking as bk, db};
    use model::Role;
    let me = crate::ssr::guard::require_user().await?;
    let db = state().db.clone();
    let b = bk::view(&db, id).await?.ok_or(AppError::NotFound)?;
    if !ssr::can_see(&me, &b).await {
        return Err(AppError::NotFound);
    }
    let biz = bk::business(&db).await?;
    let staff_view = me.role != Role::Customer;
    let now = db::now_ms();
    let outcome = bk::deposit_outcome_if_cancelled(&biz, &b, now, staff_view);
    let cancel_effect = match outcome {
        "refund" => format!(
            "Your deposit of {} will be refunded.",
            bk::money(b.deposit_cents, &b.currency)
        ),
        "keep" => format!(
            "It is less than {} hours before, so the deposit of {} is kept.",
            biz.free_change_hours,
            bk::money(b.deposit_cents, &b.currency)
        ),
        _ => "Nothing is charged.".into(),
    };
    let active = matches!(b.status.as_str(), "confirmed" | "awaiting_deposit");
    let history = bk::history(&db, id).await?;
    Ok(BookingDetail {
        booking: ssr::row(&b, &biz),
        history,
        cancel_effect,
        can_cancel: active && (staff_view || b.start_ms > now),
        can_move: b.status == BookingStatus::Confirmed
            && (staff_view || b.start_ms - now >= biz.free_change_hours * 3_600_000),
        is_staff_view: staff_view,
    })
}

#[server(prefix = "/api", endpoint = "cancel_booking")]
pub async fn cancel_booking(id: i64, reason: Option<String>) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::booking as bk;
    use model::Role;
    let me = crate::ssr::guard::require_user().await?;
    let st = state();
    let b = bk::view(&st.db, id).await?.ok_or(AppError::NotFound)?;
    if !ssr::can_see(&me, &b).await {
        return Err(AppError::NotFound);
    }
    domain::payments::cancel_booking(
        &st.db,
        &st.settings,
        id,
        me.id,
        me.role != Role::Customer,
        reason.as_deref().unwrap_or(""),
    )
    .await
    .map_err(AppError::from)?;
    Ok(())
}

#[server(prefix = "/api", endpoint = "reschedule_booking")]
pub async fn reschedule_booking(id: i64, start_ms: i64) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::booking as bk;
    use model::Role;
    let me = crate::ssr::guard::require_user().await?;
    let st = state();
    let b = bk::view(&st.db, id).await?.ok_or(AppError::NotFound)?;
    if !ssr::can_see(&me, &b).await {
        return Err(AppError::NotFound);
    }
    bk::reschedule(
        &st.db,
        &st.settings,
        id,
        me.id,
        me.role != Role::Customer,
        start_ms,
    )
    .await
    .map_err(AppError::from)?;
    leptos_axum::redirect(&format!("/bookings/{id}"));
    Ok(())
}

/// Staff mark a booking completed or a no-show.
#[server(prefix = "/api", endpoint = "mark_booking")]
pub async fn mark_booking(id: i64, status: String) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::booking as bk;
    use model::Role;
    let me = crate::ssr::guard::require_role(Role::Staff).await?;
    let st = state();
    let b = bk::view(&st.db, id).await?.ok_or(AppError::NotFound)?;
    if !ssr::can_see(&me, &b).await {
        return Err(AppError::NotFound);
    }
    bk::mark(&st.db, id, me.id, &status)
        .await
        .map_err(AppError::from)
}

/// Staff's appointments for seven days from `day` (admins: everyone's).
#[server(prefix = "/api", endpoint = "staff_schedule")]
pub async fn staff_schedule(day: Option<String>) -> Result<Vec<SlotDayBookings>, AppError> {
    use crate::ssr::state;
    use domain::booking as bk;
    use model::Role;
    use slots::chrono::{Duration, NaiveDate, TimeZone};
    let me = crate::ssr::guard::require_role(Role::Staff).await?;
    let db = state().db.clone();
    let biz = bk::business(&db).await?;
    let start_day = day
        .as_deref()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .unwrap_or_else(|| ssr::today(biz.tz));
    let from = ssr::day_start(start_day, biz.tz);
    let to = ssr::day_start(start_day + Duration::days(7), biz.tz);
    let week = bk::BookingFilter {
        staff_id: (me.role != Role::Admin).then_some(me.id),
        not_statuses: vec![BookingStatus::Expired],
        from_ms: Some(from),
        to_ms: Some(to),
        ..Default::default()
    };
    let rows = bk::filtered(&db, &week, 1000).await?;
    let mut days: Vec<SlotDayBookings> = (0..7)
        .map(|i| {
            let d = start_day + Duration::days(i);
            SlotDayBookings {
                date: d.format("%Y-%m-%d").to_string(),
                label: d.format("%A %-d %B").to_string(),
                bookings: Vec::new(),
            }
        })
        .collect();
    for b in rows {
        if let Some(t) = biz.tz.timestamp_millis_opt(b.start_ms).single() {
            let key = t.date_naive().format("%Y-%m-%d").to_string();
            if let Some(day) = days.iter_mut().find(|d| d.date == key) {
                day.bookings.push(ssr::row(&b, &biz));
            }
        }
    }
    Ok(days)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotDayBookings {
    pub date: String,
    pub label: String,
    pub bookings: Vec<BookingRow>,
}

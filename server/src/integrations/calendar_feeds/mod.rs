//! The calendar feeds: each user's bookings as a private, revocable iCalendar subscription
//! (`/calendar/{token}.ics`), which any calendar app can subscribe to. The portal serves its own
//! data here; no other system is called, so there is no port and nothing to retry.

use app::ssr::AppState;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::booking::{self as bk, BookingView};
use domain::db::{self};
use model::Role;

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "Not found").into_response()
}

/// `GET /calendar/{token}.ics`: the user's bookings as a calendar subscription.
pub async fn calendar_feed(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    let Some(token) = file.strip_suffix(".ics") else {
        return not_found();
    };
    let Ok(Some(uid)) = domain::account::calendar_feed_owner(&state.db, token).await else {
        return not_found();
    };
    let Ok(Some(user)) = domain::auth::find_user(&state.db, uid).await else {
        return not_found();
    };
    if !user.active {
        return not_found();
    }
    let since = db::now_ms() - 30 * 86_400_000;
    let customer = user.role == Role::Customer;
    let filter = bk::BookingFilter {
        customer_id: customer.then_some(uid),
        staff_id: (!customer).then_some(uid),
        statuses: vec![
            model::BookingStatus::Confirmed,
            model::BookingStatus::Completed,
        ],
        from_ms: Some(since),
        ..Default::default()
    };
    let Ok(rows) = bk::filtered(&state.db, &filter, 2000).await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "Try again later").into_response();
    };
    let mut body = String::from(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Stoep//Customer portal//EN\r\nMETHOD:PUBLISH\r\n",
    );
    body.push_str(&format!(
        "X-WR-CALNAME:{}\r\n",
        state
            .settings
            .branding
            .business_name
            .replace([',', ';', '\r', '\n'], " ")
    ));
    for b in &rows {
        body.push_str(&event(&state, b));
    }
    body.push_str("END:VCALENDAR\r\n");
    (
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

fn event(state: &AppState, b: &BookingView) -> String {
    let ics = bk::ics(&state.settings, b, "PUBLISH");
    // Keep just the VEVENT block of the single-event file.
    let start = ics.find("BEGIN:VEVENT").unwrap_or(0);
    let end = ics
        .find("END:VEVENT")
        .map(|i| i + "END:VEVENT\r\n".len())
        .unwrap_or(ics.len());
    ics[start..end].to_owned()
}

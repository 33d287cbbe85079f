//! Downloads outside the page router: the bookings and payments CSVs for admins, the integration
//! map as Markdown, and each customer's archive of their data.

use app::ssr::AppState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::booking::{self as bk};
use domain::db::{self, col};
use model::Role;
use tower_sessions::Session;

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "Not found").into_response()
}

/// A CSV cell: quoted, and a leading `=`, `+`, `-` or `@` defused so spreadsheets don't run it.
fn cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `GET /admin/bookings.csv`: every booking, for the accountant's spreadsheet. Admins only.
pub async fn bookings_csv(State(state): State<AppState>, session: Session) -> Response {
    let Ok(Some(uid)) = session.get::<i64>(domain::sessions::USER_ID_KEY).await else {
        return not_found();
    };
    let Ok(Some(user)) = domain::auth::find_user(&state.db, uid).await else {
        return not_found();
    };
    if user.role != Role::Admin || !user.active || user.needs_second_factor_setup() {
        return not_found();
    }
    let (Ok(biz), Ok(rows)) = (
        bk::business(&state.db).await,
        bk::filtered(&state.db, &bk::BookingFilter::default(), 100_000).await,
    ) else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Could not read the bookings; please try again.",
        )
            .into_response();
    };
    let mut out = String::from(
        "id,start_local,start_utc,end_utc,service,staff,customer,status,price,deposit,currency,deposit_outcome\r\n",
    );
    for b in rows {
        let fields = [
            b.id.to_string(),
            bk::local_time(b.start_ms, biz.tz),
            slots::ics_utc(b.start_ms),
            slots::ics_utc(b.end_ms),
            b.service_name,
            b.staff_name,
            b.customer_name,
            b.status.to_string(),
            format!("{}.{:02}", b.price_cents / 100, b.price_cents % 100),
            format!("{}.{:02}", b.deposit_cents / 100, b.deposit_cents % 100),
            b.currency,
            b.deposit_outcome.unwrap_or_default(),
        ];
        out.push_str(&fields.iter().map(|f| cell(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    let _ = domain::audit::record(
        &state.db,
        Some(user.id),
        "export.bookings_csv",
        "bookings",
        "all",
        "bookings exported as CSV",
    )
    .await;
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"bookings.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        out,
    )
        .into_response()
}

/// Filters for the payments list and its CSV: status (`paid`, `refunded`, `open`, ...) and a
/// date range (`YYYY-MM-DD`, in the business's zone, inclusive).
#[derive(Debug, Default, serde::Deserialize)]
pub struct PaymentFilter {
    pub status: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// `GET /admin/payments.csv`: payments for the accountant, with the list's filters. Admins only.
pub async fn payments_csv(
    State(state): State<AppState>,
    session: Session,
    axum::extract::Query(f): axum::extract::Query<PaymentFilter>,
) -> Response {
    let Ok(Some(uid)) = session.get::<i64>(domain::sessions::USER_ID_KEY).await else {
        return not_found();
    };
    let Ok(Some(user)) = domain::auth::find_user(&state.db, uid).await else {
        return not_found();
    };
    if user.role != Role::Admin || !user.active || user.needs_second_factor_setup() {
        return not_found();
    }
    let Ok(biz) = bk::business(&state.db).await else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Could not read the settings.",
        )
            .into_response();
    };
    let rows = match domain::payments::filtered(
        &state.db,
        f.status.as_deref(),
        f.from.as_deref(),
        f.to.as_deref(),
        biz.tz,
        100_000,
    )
    .await
    {
        Ok(Ok(rows)) => Ok(rows),
        Ok(Err(message)) => return (StatusCode::BAD_REQUEST, message).into_response(),
        Err(e) => Err(e),
    };
    let Ok(rows) = rows else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Could not read the payments; please try again.",
        )
            .into_response();
    };
    let amount = |c: i64| format!("{}.{:02}", c / 100, c % 100);
    let mut out = String::from(
        "payment_id,booking_id,customer_id,created_local,paid_local,status,amount,vat_included,net,refunded,currency,receipt,stripe_payment_intent,disputed\r\n",
    );
    for p in rows {
        let fields = [
            p.id.to_string(),
            p.booking_id.to_string(),
            p.customer_id.to_string(),
            bk::local_time(p.created_at, biz.tz),
            p.paid_at
                .map(|t| bk::local_time(t, biz.tz))
                .unwrap_or_default(),
            p.label(),
            amount(p.amount_cents),
            amount(p.vat_cents),
            amount(p.amount_cents - p.vat_cents),
            amount(p.refunded_cents),
            p.currency.clone(),
            p.receipt_number.clone().unwrap_or_default(),
            p.payment_intent_id.clone().unwrap_or_default(),
            p.disputed.to_string(),
        ];
        out.push_str(&fields.iter().map(|f| cell(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    let _ = domain::audit::record(
        &state.db,
        Some(user.id),
        "export.payments_csv",
        "payments",
        "all",
        "payments exported as CSV",
    )
    .await;
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"payments.csv\"",
            ),
        ],
        out,
    )
        .into_response()
}

/// `GET /admin/integrations/map.md`: the integration map as Markdown, for handover documents.
/// Admins only; audited.
pub async fn map_markdown(State(state): State<AppState>, session: Session) -> Response {
    let Ok(Some(uid)) = session.get::<i64>(domain::sessions::USER_ID_KEY).await else {
        return not_found();
    };
    let Ok(Some(user)) = domain::auth::find_user(&state.db, uid).await else {
        return not_found();
    };
    if user.role != Role::Admin || !user.active || user.needs_second_factor_setup() {
        return not_found();
    }
    let (Ok(rows), Ok(biz)) = (
        domain::map::build(&state).await,
        bk::business(&state.db).await,
    ) else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Could not build the map; please try again.",
        )
            .into_response();
    };
    let md = domain::map::to_markdown(
        &rows,
        &state.settings.branding.business_name,
        &bk::local_time(domain::db::now_ms(), biz.tz),
    );
    let _ = domain::audit::record(
        &state.db,
        Some(user.id),
        "export.integration_map",
        "integrations",
        "map",
        "integration map exported as Markdown",
    )
    .await;
    (
        [
            (header::CONTENT_TYPE, "text/markdown; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"integration-map.md\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        md,
    )
        .into_response()
}

/// `GET /account/export`: everything the portal holds about the signed-in user, as one tar
/// archive (`data.json`, and their documents once stored), for POPIA s23 requests. Audited.
pub async fn account_export(State(state): State<AppState>, session: Session) -> Response {
    let Ok(Some(uid)) = session.get::<i64>(domain::sessions::USER_ID_KEY).await else {
        return (StatusCode::UNAUTHORIZED, "Please sign in to continue.").into_response();
    };
    let Ok(Some(user)) = domain::auth::find_user(&state.db, uid).await else {
        return not_found();
    };
    if !user.active {
        return not_found();
    }
    let Ok(data) = domain::privacy::export(&state.db, user.id).await else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Could not gather your data; please try again.",
        )
            .into_response();
    };
    let json = serde_json::to_vec_pretty(&data).unwrap_or_default();
    let mut entries = vec![("data.json".to_string(), json)];
    // The documents themselves (those the customer uploaded or that were shared with them).
    let docs = db::query(&state.db, "SELECT id, display_name, object_key FROM documents WHERE customer_id = ? AND status = 'stored' AND (visibility = 'shared' OR uploaded_by = customer_id) ORDER BY id", vec![user.id.into()]).await.unwrap_or_default();
    for d in docs {
        let (Ok(id), Ok(name), Ok(key)) = (
            col::<i64>(&d, "id"),
            col::<String>(&d, "display_name"),
            col::<String>(&d, "object_key"),
        ) else {
            continue;
        };
        let bytes = state.storage.read_all(&key).await.ok();
        match bytes {
            Some(b) => entries.push((format!("documents/{id}-{name}"), b.to_vec())),
            None => {
                return (StatusCode::SERVICE_UNAVAILABLE, "Document storage cannot be reached just now; please try again in a few minutes.").into_response();
            }
        }
    }
    let now = domain::db::now_ms();
    let tar = crate::archive::tar(&entries, (now / 1000) as u64);
    let _ = domain::audit::record_access(
        &state.db,
        user.id,
        "privacy.export",
        user.id,
        ("user", &user.id.to_string()),
        "the user downloaded their data",
    )
    .await;
    (
        [
            (header::CONTENT_TYPE, "application/x-tar"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"my-data.tar\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        tar,
    )
        .into_response()
}

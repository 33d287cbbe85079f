//! A customer's privacy rights, self-service: their data as one archive (the download is
//! `/account/export`, served by the server), and deletion, which an admin confirms.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use model::error::AppError;

/// The customer asks to be deleted. An admin confirms; then everything is erased except the
/// payment records the law requires, which are kept de-identified.
#[server(prefix = "/api", endpoint = "request_account_deletion")]
pub async fn request_account_deletion() -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::privacy;
    use model::Role;
    let me = crate::ssr::guard::require_user().await?;
    if me.role != Role::Customer {
        return Err(AppError::Conflict(
            "Staff and admin accounts are removed by another admin (people page).".into(),
        ));
    }
    privacy::request_deletion(&state().db, me.id)
        .await
        .map_err(AppError::Conflict)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionRequest {
    pub user_id: i64,
    pub name: String,
    pub email: String,
    pub requested: String,
}

/// Customers who asked to be deleted and are not erased yet.
#[server(prefix = "/api", endpoint = "deletion_requests")]
pub async fn deletion_requests() -> Result<Vec<DeletionRequest>, AppError> {
    use crate::ssr::state;

    use model::Role;
    crate::ssr::guard::require_role(Role::Admin).await?;
    Ok(domain::customers::deletion_requests(&state().db)
        .await?
        .into_iter()
        .map(|(user_id, name, email, at)| DeletionRequest {
            user_id,
            name,
            email,
            requested: model::format_ms(at),
        })
        .collect())
}

/// An admin confirms a deletion request: sessions end now; erasure runs as jobs.
#[server(prefix = "/api", endpoint = "confirm_account_deletion")]
pub async fn confirm_account_deletion(user_id: i64) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::privacy;
    use model::Role;
    let me = crate::ssr::guard::require_role(Role::Admin).await?;
    privacy::confirm_deletion(&state().db, user_id, me.id)
        .await
        .map_err(AppError::Conflict)
}

/// One line of the incident report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessLine {
    pub at: String,
    pub who: String,
    pub role: String,
    pub action: String,
    /// `#12 jo***@example.com`, `#12 (erased)` or `every customer`.
    pub customer: String,
    pub exposed: String,
    pub detail: String,
}

/// The incident report: who accessed which customer's data in a period, with the totals the
/// Information Regulator's breach notification form asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessReportView {
    pub from: String,
    pub to: String,
    pub customer: Option<String>,
    pub lines: Vec<AccessLine>,
    /// Distinct customers named by the entries (bulk exports aside).
    pub customers_affected: usize,
    /// Whether a bulk export (every customer's data) falls in the period.
    pub bulk_export: bool,
    /// Distinct people who accessed data.
    pub actors: Vec<String>,
    /// The kinds of personal information exposed.
    pub categories: Vec<String>,
    pub first: Option<String>,
    pub last: Option<String>,
    /// The list stopped at its limit: narrow the period.
    pub truncated: bool,
}

/// Admins: who accessed customers' data, and when (`from` and `to` are dates in the business's
/// time zone, `to` included; `customer` is an id or an email address).
#[server(prefix = "/api", endpoint = "access_report")]
pub async fn access_report(
    customer: Option<String>,
    from: Option<String>,
    to: Option<String>,
) -> Result<AccessReportView, AppError> {
    use std::collections::BTreeSet;

    use slots::chrono::{Duration, NaiveDate, TimeZone};

    use crate::ssr::state;
    use domain::{audit, booking as bk, db};
    use model::{Role, format_ms, mask_email};
    let st = state();
    crate::ssr::guard::require_role(Role::Admin).await?;
    let biz = bk::business(&st.db).await?;
    let today = biz
        .tz
        .timestamp_millis_opt(db::now_ms())
        .single()
        .map(|t| t.date_naive())
        .unwrap_or_default();
    let date =
        |raw: &Option<String>, default: NaiveDate, what: &str| -> Result<NaiveDate, AppError> {
            match raw.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                None => Ok(default),
                Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
                    AppError::Invalid(format!("The {what} date must look like 2026-11-28."))
                }),
            }
        };
    let to_day = date(&to, today, "end")?;
    let from_day = date(&from, to_day - Duration::days(30), "start")?;
    if from_day > to_day {
        return Err(AppError::Invalid(
            "The start date is after the end date.".into(),
        ));
    }
    let start_of = |d: NaiveDate| -> i64 {
        let midnight = d.and_hms_opt(0, 0, 0).unwrap_or_default();
        biz.tz
            .from_local_datetime(&midnight)
            .earliest()
            .map(|t| t.timestamp_millis())
            .unwrap_or_else(|| midnight.and_utc().timestamp_millis())
    };
    let customer_id = match customer.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => {
            let id = match s.trim_start_matches('#').parse::<i64>() {
                Ok(id) => Some(id),
                Err(_) => domain::customers::id_by_email(&st.db, s).await?,
            };
            Some(id.ok_or_else(|| AppError::Invalid(format!("No customer matches “{s}”.")))?)
        }
    };
    const LIMIT: u32 = 1_000;
    let rows = audit::access_report(
        &st.db,
        customer_id,
        start_of(from_day),
        start_of(to_day + Duration::days(1)),
        LIMIT,
    )
    .await?;
    let mut customers = BTreeSet::new();
    let mut actors = BTreeSet::new();
    let mut categories = BTreeSet::new();
    let mut bulk_export = false;
    let lines: Vec<AccessLine> = rows
        .iter()
        .map(|a| {
            let who = a.actor_email.clone().unwrap_or_else(|| "system".into());
            actors.insert(who.clone());
            categories.insert(audit::categories_of(&a.action).to_owned());
            let customer = match (a.customer_id, &a.customer_email) {
                (None, _) => {
                    bulk_export = true;
                    "every customer".to_owned()
                }
                (Some(id), _) if a.customer_erased => {
                    customers.insert(id);
                    format!("#{id} (erased)")
                }
                (Some(id), email) => {
                    customers.insert(id);
                    format!(
                        "#{id} {}",
                        email.as_deref().map(mask_email).unwrap_or_default()
                    )
                }
            };
            AccessLine {
                at: bk::local_time(a.at_ms, biz.tz),
                who,
                role: a.actor_role.clone().unwrap_or_default(),
                action: a.action.clone(),
                customer,
                exposed: audit::categories_of(&a.action).to_owned(),
                detail: a.detail.clone(),
            }
        })
        .collect();
    Ok(AccessReportView {
        from: from_day.to_string(),
        to: to_day.to_string(),
        customer: customer_id.map(|id| format!("#{id}")),
        customers_affected: customers.len(),
        bulk_export,
        actors: actors.into_iter().collect(),
        categories: categories.into_iter().collect(),
        first: rows.last().map(|a| format_ms(a.at_ms)),
        last: rows.first().map(|a| format_ms(a.at_ms)),
        truncated: rows.len() >= LIMIT as usize,
        lines,
    })
}

//! The audit log: who did what to which subject, and when. Security events (sign-in, password
//! and role changes) and every admin action on the ledger are written here, in the same
//! transaction as the change they describe.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, FromQueryResult};

use crate::db::{self, col, now_ms};
use model::AuditRow;

/// Appends an entry. `detail` must hold no secret and no needless personal data.
#[tracing::instrument(skip_all, err)]
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    actor: Option<i64>,
    action: &str,
    subject_type: &str,
    subject_id: &str,
    detail: &str,
) -> Result<(), DbErr> {
    db::execute(
        conn,
        "INSERT INTO audit_log (at, actor_user_id, action, subject_type, subject_id, detail) VALUES (?, ?, ?, ?, ?, ?)",
        vec![now_ms().into(), actor.into(), action.into(), subject_type.into(), subject_id.into(), detail.into()],
    )
    .await?;
    Ok(())
}

const SELECT: &str = "SELECT a.id AS id, a.at AS at, u.email AS actor, a.action AS action, a.subject_type AS subject_type, \
    a.subject_id AS subject_id, a.detail AS detail FROM audit_log a LEFT JOIN users u ON u.id = a.actor_user_id";

/// Entries about one subject, oldest first.
#[tracing::instrument(skip_all, err)]
pub async fn for_subject(
    db: &DatabaseConnection,
    subject_type: &str,
    subject_id: &str,
) -> Result<Vec<AuditRow>, DbErr> {
    db::query(
        db,
        &format!("{SELECT} WHERE a.subject_type = ? AND a.subject_id = ? ORDER BY a.at, a.id"),
        vec![subject_type.into(), subject_id.into()],
    )
    .await?
    .iter()
    .map(|r| AuditRow::from_query_result(r, ""))
    .collect()
}

/// The newest entries, optionally only those whose action starts with `prefix`.
#[tracing::instrument(skip_all, err)]
pub async fn recent(
    db: &DatabaseConnection,
    prefix: Option<&str>,
    limit: u32,
) -> Result<Vec<AuditRow>, DbErr> {
    let like = format!("{}%", prefix.unwrap_or(""));
    db::query(
        db,
        &format!("{SELECT} WHERE a.action LIKE ? ORDER BY a.at DESC, a.id DESC LIMIT ?"),
        vec![like.into(), i64::from(limit.min(500)).into()],
    )
    .await?
    .iter()
    .map(|r| AuditRow::from_query_result(r, ""))
    .collect()
}

/// Records that someone read a customer's personal information: staff opening the customer's
/// page, downloading their document, the customer downloading their own archive. The incident
/// report ([`access_report`]) lists these entries.
#[tracing::instrument(skip_all, err)]
pub async fn record_access<C: ConnectionTrait>(
    conn: &C,
    actor: i64,
    action: &str,
    customer_id: i64,
    subject: (&str, &str),
    detail: &str,
) -> Result<(), DbErr> {
    db::execute(
        conn,
        "INSERT INTO audit_log (at, actor_user_id, action, subject_type, subject_id, detail, customer_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
        vec![now_ms().into(), actor.into(), action.into(), subject.0.into(), subject.1.into(), detail.into(), customer_id.into()],
    )
    .await?;
    Ok(())
}

/// Exports that hold every customer's data: in the report for any customer.
pub const BULK_EXPORTS: [&str; 2] = ["export.bookings_csv", "export.payments_csv"];

/// One access in the incident report.
#[derive(Clone, Debug)]
pub struct Access {
    pub at_ms: i64,
    pub actor_id: Option<i64>,
    pub actor_email: Option<String>,
    pub actor_role: Option<String>,
    pub action: String,
    pub customer_id: Option<i64>,
    pub customer_email: Option<String>,
    pub customer_erased: bool,
    pub detail: String,
}

/// Who read which customer's data, newest first, within `[from_ms, to_ms)`; only about
/// `customer` when given (the bulk exports count for every customer).
#[tracing::instrument(skip_all, err)]
pub async fn access_report(
    db: &DatabaseConnection,
    customer: Option<i64>,
    from_ms: i64,
    to_ms: i64,
    limit: u32,
) -> Result<Vec<Access>, DbErr> {
    let mut params: Vec<sea_orm::Value> = vec![from_ms.into(), to_ms.into()];
    let bulk = BULK_EXPORTS.map(|a| format!("'{a}'")).join(", ");
    let which = match customer {
        Some(id) => {
            params.push(id.into());
            format!("(a.customer_id = ? OR (a.customer_id IS NULL AND a.action IN ({bulk})))")
        }
        None => format!("(a.customer_id IS NOT NULL OR a.action IN ({bulk}))"),
    };
    params.push(i64::from(limit.min(5_000)).into());
    let rows = db::query(
        db,
        &format!(
            "SELECT a.at AS at, a.actor_user_id AS actor_id, u.email AS actor_email, u.role AS actor_role, a.action AS action, \
             a.customer_id AS customer_id, c.email AS customer_email, c.erased_at AS erased_at, a.detail AS detail \
             FROM audit_log a LEFT JOIN users u ON u.id = a.actor_user_id LEFT JOIN users c ON c.id = a.customer_id \
             WHERE a.at >= ? AND a.at < ? AND {which} ORDER BY a.at DESC, a.id DESC LIMIT ?"
        ),
        params,
    )
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Access {
                at_ms: col(r, "at")?,
                actor_id: col(r, "actor_id")?,
                actor_email: col(r, "actor_email")?,
                actor_role: col(r, "actor_role")?,
                action: col(r, "action")?,
                customer_id: col(r, "customer_id")?,
                customer_email: col(r, "customer_email")?,
                customer_erased: col::<Option<i64>>(r, "erased_at")?.is_some(),
                detail: col(r, "detail")?,
            })
        })
        .collect()
}

/// The kinds of personal information an access exposed, in the words of the breach form.
pub fn categories_of(action: &str) -> &'static str {
    match action {
        "customer.viewed" => "contact details, bookings, payments, staff notes",
        "document.downloaded" => "a document the customer uploaded or was sent",
        "privacy.export" => "everything the portal holds about the customer (their own download)",
        "export.bookings_csv" => "every customer's bookings and contact names",
        "export.payments_csv" => "every customer's payments",
        _ => "account details",
    }
}

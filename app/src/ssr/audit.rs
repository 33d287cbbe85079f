//! The audit log: who did what to which subject, and when. Security events (sign-in, password
//! and role changes) and every admin action on the ledger are written here, in the same
//! transaction as the change they describe.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};

use crate::model::AuditRow;
use crate::ssr::db::{self, col, now_ms};

/// Appends an entry. `detail` must hold no secret and no needless personal data.
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

fn audit_row(r: &sea_orm::QueryResult) -> Result<AuditRow, DbErr> {
    Ok(AuditRow {
        id: col(r, "id")?,
        at_ms: col(r, "at")?,
        actor: col(r, "actor")?,
        action: col(r, "action")?,
        subject_type: col(r, "subject_type")?,
        subject_id: col(r, "subject_id")?,
        detail: col(r, "detail")?,
    })
}

const SELECT: &str = "SELECT a.id AS id, a.at AS at, u.email AS actor, a.action AS action, a.subject_type AS subject_type, \
    a.subject_id AS subject_id, a.detail AS detail FROM audit_log a LEFT JOIN users u ON u.id = a.actor_user_id";

/// Entries about one subject, oldest first.
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
    .map(audit_row)
    .collect()
}

/// The newest entries, optionally only those whose action starts with `prefix`.
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
    .map(audit_row)
    .collect()
}

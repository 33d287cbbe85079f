//! The people of the portal as admins manage them: the list with each customer's CRM state,
//! deactivating and reactivating accounts, correcting an address, and inviting staff.

use sea_orm::{DatabaseConnection, FromQueryResult};

use crate::records::UserRecord;
use crate::settings::PortalSettings;
use crate::{audit, auth, db, email as mail, sessions};
use model::error::AppError;
use model::mask_email;

/// One person in the admins' list, with their CRM sync state.
#[derive(Clone, Debug, FromQueryResult)]
pub struct PersonRecord {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub role: String,
    pub status: String,
    pub email_verified_at: Option<i64>,
    pub created_at: i64,
    pub crm_id: Option<String>,
    pub lifecycle_stage: Option<String>,
    pub crm_owner: Option<String>,
    pub blocked_error: Option<String>,
    pub crm_pending: Option<i32>,
}

/// People whose name or email contains `q` (newest first, at most 200).
#[tracing::instrument(skip_all, err)]
pub async fn list(db: &DatabaseConnection, q: &str) -> Result<Vec<PersonRecord>, sea_orm::DbErr> {
    let like = format!("%{}%", q.trim().to_lowercase().replace(['%', '_'], ""));
    let rows = db::query(
        db,
        "SELECT u.id AS id, u.name AS name, u.email AS email, u.role AS role, u.status AS status, u.email_verified_at AS email_verified_at, u.created_at AS created_at, \
         s.crm_id AS crm_id, s.lifecycle_stage AS lifecycle_stage, s.crm_owner AS crm_owner, s.blocked_error AS blocked_error, \
         CASE WHEN s.changed_version > s.synced_version THEN 1 ELSE 0 END AS crm_pending \
         FROM users u LEFT JOIN crm_sync s ON s.customer_id = u.id WHERE LOWER(u.name) LIKE ? OR u.email LIKE ? ORDER BY u.created_at DESC, u.id DESC LIMIT 200",
        vec![like.clone().into(), like.into()],
    )
    .await?;
    rows.iter()
        .map(|r| PersonRecord::from_query_result(r, ""))
        .collect()
}

/// Deactivates or reactivates an account; a deactivated user is signed out at once. Audited.
#[tracing::instrument(skip_all)]
pub async fn set_active(
    db: &DatabaseConnection,
    actor: i64,
    id: i64,
    active: bool,
) -> Result<(), AppError> {
    let txn = db::begin_write(db).await?;
    let changed = db::execute(
        &txn,
        "UPDATE users SET status = ?, updated_at = ? WHERE id = ?",
        vec![
            if active { "active" } else { "deactivated" }.into(),
            db::now_ms().into(),
            id.into(),
        ],
    )
    .await?;
    if changed == 0 {
        return Err(AppError::NotFound);
    }
    crate::crm::changed(&txn, id, "admin").await?;
    if !active {
        sessions::end_user_sessions(&txn, id, None).await?;
    }
    audit::record(
        &txn,
        Some(actor),
        if active {
            "auth.reactivated"
        } else {
            "auth.deactivated"
        },
        "user",
        &id.to_string(),
        if active {
            "account reactivated"
        } else {
            "account deactivated; sessions ended"
        },
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Corrects a person's email address (already parsed). Audited.
#[tracing::instrument(skip_all)]
pub async fn correct_email(
    db: &DatabaseConnection,
    actor: i64,
    id: i64,
    email: String,
) -> Result<(), AppError> {
    let txn = db::begin_write(db).await?;
    if auth::find_user_by_email(&txn, &email)
        .await?
        .is_some_and(|u| u.id != id)
    {
        return Err(AppError::Conflict(
            "Another account already uses that address.".into(),
        ));
    }
    let changed = db::execute(
        &txn,
        "UPDATE users SET email = ?, updated_at = ? WHERE id = ?",
        vec![email.clone().into(), db::now_ms().into(), id.into()],
    )
    .await?;
    if changed == 0 {
        return Err(AppError::NotFound);
    }
    crate::crm::changed(&txn, id, "admin").await?;
    audit::record(
        &txn,
        Some(actor),
        "auth.email_corrected",
        "user",
        &id.to_string(),
        &format!("email corrected by an admin to {}", mask_email(&email)),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Invites a member of staff (name and address already parsed): an account without a password
/// and an email with a link, valid for seven days, where they choose one. Audited.
#[tracing::instrument(skip_all)]
pub async fn invite_staff(
    db: &DatabaseConnection,
    settings: &PortalSettings,
    me: &UserRecord,
    name: String,
    email: String,
) -> Result<(), AppError> {
    let txn = db::begin_write(db).await?;
    if auth::find_user_by_email(&txn, &email).await?.is_some() {
        return Err(AppError::Conflict(
            "That address already has an account. Change its role from the people list instead."
                .into(),
        ));
    }
    let now = db::now_ms();
    let row = db::query_one(
        &txn,
        "INSERT INTO users (email, name, role, status, created_at, updated_at) VALUES (?, ?, 'staff', 'active', ?, ?) RETURNING id",
        vec![email.clone().into(), name.clone().into(), now.into(), now.into()],
    )
    .await?
    .ok_or(AppError::Internal)?;
    let id: i64 = db::col(&row, "id")?;
    let token = auth::issue_token(&txn, id, "invite", 7 * 86_400_000).await?;
    mail::enqueue(
        &txn,
        settings,
        Some(id),
        &email,
        mail::templates::staff_invitation(settings, &name, &me.name, &token),
        &format!("invite:{id}:{now}"),
    )
    .await?;
    audit::record(
        &txn,
        Some(me.id),
        "auth.staff_invited",
        "user",
        &id.to_string(),
        "staff member invited",
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

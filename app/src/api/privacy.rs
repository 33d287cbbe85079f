//! A customer's privacy rights, self-service: their data as one archive (the download is
//! `/account/export`, served by the server), and deletion, which an admin confirms.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// The customer asks to be deleted. An admin confirms; then everything is erased except the
/// payment records the law requires, which are kept de-identified.
#[server(prefix = "/api", endpoint = "request_account_deletion")]
pub async fn request_account_deletion() -> Result<(), AppError> {
    use crate::error::respond;
    use crate::model::Role;
    use crate::ssr::{auth, privacy, state};
    let me = auth::require_user().await?;
    if me.role != Role::Customer {
        return Err(respond(AppError::Conflict(
            "Staff and admin accounts are removed by another admin (people page).".into(),
        )));
    }
    privacy::request_deletion(&state().db, me.id)
        .await
        .map_err(|m| respond(AppError::Conflict(m)))
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
    use crate::model::Role;
    use crate::ssr::{auth, db, state};
    auth::require_role(Role::Admin).await?;
    let rows = db::query(
        &state().db,
        "SELECT id, name, email, deletion_requested_at FROM users WHERE deletion_requested_at IS NOT NULL AND erased_at IS NULL ORDER BY deletion_requested_at",
        vec![],
    )
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DeletionRequest {
                user_id: db::col(r, "id")?,
                name: db::col(r, "name")?,
                email: db::col(r, "email")?,
                requested: crate::model::format_ms(db::col(r, "deletion_requested_at")?),
            })
        })
        .collect::<Result<_, sea_orm::DbErr>>()
        .map_err(AppError::from)
}

/// An admin confirms a deletion request: sessions end now; erasure runs as jobs.
#[server(prefix = "/api", endpoint = "confirm_account_deletion")]
pub async fn confirm_account_deletion(user_id: i64) -> Result<(), AppError> {
    use crate::error::respond;
    use crate::model::Role;
    use crate::ssr::{auth, privacy, state};
    let me = auth::require_role(Role::Admin).await?;
    privacy::confirm_deletion(&state().db, user_id, me.id)
        .await
        .map_err(|m| respond(AppError::Conflict(m)))
}

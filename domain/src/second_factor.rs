//! Two-step verification of an account: the authenticator's secret set up and confirmed, the
//! recovery codes (only their hashes are kept), and turning it off. The codes themselves are
//! `totp`; checking them at sign-in is `auth`.

use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::{audit, auth, db, totp};
use model::error::AppError;

/// Recovery codes not used yet.
#[tracing::instrument(skip_all, err)]
pub async fn recovery_codes_left(
    db: &DatabaseConnection,
    user_id: i64,
) -> Result<i64, sea_orm::DbErr> {
    Ok(db::query_one(
        db,
        "SELECT COUNT(*) AS n FROM recovery_codes WHERE user_id = ? AND used_at IS NULL",
        vec![user_id.into()],
    )
    .await?
    .map(|r| db::col(&r, "n"))
    .transpose()?
    .unwrap_or(0))
}

/// Starts (or restarts) setting up the authenticator: a new secret, kept pending until confirmed.
#[tracing::instrument(skip_all, err)]
pub async fn begin_setup(db: &DatabaseConnection, user_id: i64) -> Result<String, sea_orm::DbErr> {
    let secret = totp::new_secret();
    db::execute(
        db,
        "UPDATE users SET totp_pending_secret = ? WHERE id = ?",
        vec![secret.clone().into(), user_id.into()],
    )
    .await?;
    Ok(secret)
}

/// Confirms the pending secret with a code from the app; returns ten recovery codes, shown once.
#[tracing::instrument(skip_all)]
pub async fn confirm_setup(
    db: &DatabaseConnection,
    user_id: i64,
    code: &str,
) -> Result<Vec<String>, AppError> {
    let txn = db::begin_write(db).await?;
    let pending: Option<String> = db::query_one(
        &txn,
        "SELECT totp_pending_secret FROM users WHERE id = ?",
        vec![user_id.into()],
    )
    .await?
    .and_then(|r| db::col(&r, "totp_pending_secret").ok())
    .flatten();
    let Some(secret) = pending else {
        return Err(AppError::Invalid(
            "Start the set-up again: no authenticator is waiting to be confirmed.".into(),
        ));
    };
    let Some(step) = totp::verify(&secret, code, db::now_ms(), None) else {
        return Err(AppError::Invalid("That code is not right. Check the time on your phone and type the 6 digits the app shows now.".into()));
    };
    let now = db::now_ms();
    db::execute(&txn, "UPDATE users SET totp_secret = ?, totp_pending_secret = NULL, totp_enabled_at = ?, totp_last_step = ?, updated_at = ? WHERE id = ?", vec![secret.into(), now.into(), step.into(), now.into(), user_id.into()]).await?;
    let codes = replace_recovery_codes(&txn, user_id).await?;
    audit::record(
        &txn,
        Some(user_id),
        "auth.second_factor_enabled",
        "user",
        &user_id.to_string(),
        "two-step verification turned on",
    )
    .await?;
    txn.commit().await?;
    Ok(codes)
}

async fn replace_recovery_codes<C: ConnectionTrait>(
    conn: &C,
    user_id: i64,
) -> Result<Vec<String>, AppError> {
    db::execute(
        conn,
        "DELETE FROM recovery_codes WHERE user_id = ?",
        vec![user_id.into()],
    )
    .await?;
    let codes = totp::new_recovery_codes();
    for c in &codes {
        db::execute(
            conn,
            "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES (?, ?, ?)",
            vec![
                user_id.into(),
                auth::hash_token(&totp::normalise_recovery_code(c)).into(),
                db::now_ms().into(),
            ],
        )
        .await?;
    }
    Ok(codes)
}

/// New recovery codes; the old ones stop working. (The caller checked the password.)
#[tracing::instrument(skip_all)]
pub async fn regenerate_recovery_codes(
    db: &DatabaseConnection,
    user_id: i64,
) -> Result<Vec<String>, AppError> {
    let txn = db::begin_write(db).await?;
    let codes = replace_recovery_codes(&txn, user_id).await?;
    audit::record(
        &txn,
        Some(user_id),
        "auth.recovery_codes_replaced",
        "user",
        &user_id.to_string(),
        "new recovery codes",
    )
    .await?;
    txn.commit().await?;
    Ok(codes)
}

/// Turns two-step verification off. (The caller checked the password and that the account may.)
#[tracing::instrument(skip_all)]
pub async fn disable(db: &DatabaseConnection, user_id: i64) -> Result<(), AppError> {
    let txn = db::begin_write(db).await?;
    db::execute(&txn, "UPDATE users SET totp_secret = NULL, totp_enabled_at = NULL, totp_last_step = NULL WHERE id = ?", vec![user_id.into()]).await?;
    db::execute(
        &txn,
        "DELETE FROM recovery_codes WHERE user_id = ?",
        vec![user_id.into()],
    )
    .await?;
    audit::record(
        &txn,
        Some(user_id),
        "auth.second_factor_disabled",
        "user",
        &user_id.to_string(),
        "two-step verification turned off",
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

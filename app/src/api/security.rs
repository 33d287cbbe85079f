//! Two-step verification: setting up the authenticator app, recovery codes, and (for
//! customers, for whom it is optional) turning it off.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use model::error::AppError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityState {
    pub enabled: bool,
    /// Staff and admins cannot turn it off.
    pub required: bool,
    pub recovery_codes_left: i64,
}

/// A secret being set up: shown once, confirmed with a first code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpSetup {
    pub secret: String,
    pub otpauth_uri: String,
}

#[server(prefix = "/api", endpoint = "get_security")]
pub async fn get_security() -> Result<SecurityState, AppError> {
    use crate::ssr::state;
    use domain::db;
    let me = crate::ssr::guard::require_user_during_setup().await?;
    let left: i64 = db::query_one(
        &state().db,
        "SELECT COUNT(*) AS n FROM recovery_codes WHERE user_id = ? AND used_at IS NULL",
        vec![me.id.into()],
    )
    .await?
    .map(|r| db::col(&r, "n"))
    .transpose()?
    .unwrap_or(0);
    Ok(SecurityState {
        enabled: me.totp_secret.is_some(),
        required: me.role != model::Role::Customer,
        recovery_codes_left: left,
    })
}

/// Starts (or restarts) setting up the authenticator: a new secret, kept pending until confirmed.
#[server(prefix = "/api", endpoint = "begin_totp_setup")]
pub async fn begin_totp_setup() -> Result<TotpSetup, AppError> {
    use crate::ssr::state;
    use domain::{db, totp};
    let me = crate::ssr::guard::require_user_during_setup().await?;
    if me.totp_secret.is_some() {
        return Err(AppError::Conflict(
            "Two-step verification is already on.".into(),
        ));
    }
    let st = state();
    let secret = totp::new_secret();
    db::execute(
        &st.db,
        "UPDATE users SET totp_pending_secret = ? WHERE id = ?",
        vec![secret.clone().into(), me.id.into()],
    )
    .await?;
    let uri = totp::otpauth_uri(&st.settings.branding.business_name, &me.email, &secret);
    Ok(TotpSetup {
        secret,
        otpauth_uri: uri,
    })
}

/// Confirms the pending secret with a code from the app; returns ten recovery codes, shown once.
#[server(prefix = "/api", endpoint = "confirm_totp_setup")]
pub async fn confirm_totp_setup(code: String) -> Result<Vec<String>, AppError> {
    use crate::ssr::state;
    use domain::{audit, db, totp};
    let me = crate::ssr::guard::require_user_during_setup().await?;
    let st = state();
    let txn = db::begin_write(&st.db).await?;
    let pending: Option<String> = db::query_one(
        &txn,
        "SELECT totp_pending_secret FROM users WHERE id = ?",
        vec![me.id.into()],
    )
    .await?
    .and_then(|r| db::col(&r, "totp_pending_secret").ok())
    .flatten();
    let Some(secret) = pending else {
        return Err(AppError::Invalid(
            "Start the set-up again: no authenticator is waiting to be confirmed.".into(),
        ));
    };
    let Some(step) = totp::verify(&secret, &code, db::now_ms(), None) else {
        return Err(AppError::Invalid("That code is not right. Check the time on your phone and type the 6 digits the app shows now.".into()));
    };
    let now = db::now_ms();
    db::execute(&txn, "UPDATE users SET totp_secret = ?, totp_pending_secret = NULL, totp_enabled_at = ?, totp_last_step = ?, updated_at = ? WHERE id = ?", vec![secret.into(), now.into(), step.into(), now.into(), me.id.into()]).await?;
    let codes = replace_recovery_codes(&txn, me.id).await?;
    audit::record(
        &txn,
        Some(me.id),
        "auth.second_factor_enabled",
        "user",
        &me.id.to_string(),
        "two-step verification turned on",
    )
    .await?;
    txn.commit().await?;
    Ok(codes)
}

#[cfg(feature = "ssr")]
async fn replace_recovery_codes<C: sea_orm::ConnectionTrait>(
    conn: &C,
    user_id: i64,
) -> Result<Vec<String>, AppError> {
    use domain::{auth, db, totp};
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

/// New recovery codes (the old ones stop working), after the password.
#[server(prefix = "/api", endpoint = "regenerate_recovery_codes")]
pub async fn regenerate_recovery_codes(password: String) -> Result<Vec<String>, AppError> {
    use crate::ssr::state;
    use domain::{audit, auth, db};
    let me = crate::ssr::guard::require_user().await?;
    if me.totp_secret.is_none()
        || !auth::verify_password(
            me.password_hash.clone(),
            secrecy::SecretString::from(password),
        )
        .await
        .ok
    {
        return Err(AppError::Invalid("Your password is not right.".into()));
    }
    let txn = db::begin_write(&state().db).await?;
    let codes = replace_recovery_codes(&txn, me.id).await?;
    audit::record(
        &txn,
        Some(me.id),
        "auth.recovery_codes_replaced",
        "user",
        &me.id.to_string(),
        "new recovery codes",
    )
    .await?;
    txn.commit().await?;
    Ok(codes)
}

/// Turns two-step verification off (customers only), after the password.
#[server(prefix = "/api", endpoint = "disable_totp")]
pub async fn disable_totp(password: String) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::{audit, auth, db};
    let me = crate::ssr::guard::require_user().await?;
    if me.role != model::Role::Customer {
        return Err(AppError::Conflict(
            "Staff and admin accounts must keep two-step verification on.".into(),
        ));
    }
    if !auth::verify_password(
        me.password_hash.clone(),
        secrecy::SecretString::from(password),
    )
    .await
    .ok
    {
        return Err(AppError::Invalid("Your password is not right.".into()));
    }
    let txn = db::begin_write(&state().db).await?;
    db::execute(&txn, "UPDATE users SET totp_secret = NULL, totp_enabled_at = NULL, totp_last_step = NULL WHERE id = ?", vec![me.id.into()]).await?;
    db::execute(
        &txn,
        "DELETE FROM recovery_codes WHERE user_id = ?",
        vec![me.id.into()],
    )
    .await?;
    audit::record(
        &txn,
        Some(me.id),
        "auth.second_factor_disabled",
        "user",
        &me.id.to_string(),
        "two-step verification turned off",
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

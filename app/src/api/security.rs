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
    let me = crate::ssr::guard::require_user_during_setup().await?;
    let left = domain::second_factor::recovery_codes_left(&state().db, me.id).await?;
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
    use domain::totp;
    let me = crate::ssr::guard::require_user_during_setup().await?;
    if me.totp_secret.is_some() {
        return Err(AppError::Conflict(
            "Two-step verification is already on.".into(),
        ));
    }
    let st = state();
    let secret = domain::second_factor::begin_setup(&st.db, me.id).await?;
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
    let me = crate::ssr::guard::require_user_during_setup().await?;
    domain::second_factor::confirm_setup(&state().db, me.id, &code).await
}

/// New recovery codes (the old ones stop working), after the password.
#[server(prefix = "/api", endpoint = "regenerate_recovery_codes")]
pub async fn regenerate_recovery_codes(password: String) -> Result<Vec<String>, AppError> {
    use crate::ssr::state;
    use domain::auth;
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
    domain::second_factor::regenerate_recovery_codes(&state().db, me.id).await
}

/// Turns two-step verification off (customers only), after the password.
#[server(prefix = "/api", endpoint = "disable_totp")]
pub async fn disable_totp(password: String) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::auth;
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
    domain::second_factor::disable(&state().db, me.id).await
}

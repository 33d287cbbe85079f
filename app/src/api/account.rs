//! A signed-in user's own account: profile, password, email address; and the password reset for
//! users who cannot sign in.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use model::error::AppError;

/// What the account page shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    pub marketing_consent: bool,
    pub email_verified: bool,
    pub privacy_notice_version: Option<String>,
    pub privacy_accepted_at_ms: Option<i64>,
}

#[server(prefix = "/api", endpoint = "get_profile")]
pub async fn get_profile() -> Result<Profile, AppError> {
    use crate::ssr::state;
    let me = crate::ssr::guard::require_user_during_setup().await?;
    let p = domain::account::profile(&state().db, me.id).await?;
    Ok(Profile {
        name: p.name,
        email: p.email,
        phone: p.phone,
        marketing_consent: p.marketing_consent,
        email_verified: p.email_verified_at.is_some(),
        privacy_notice_version: p.privacy_notice_version,
        privacy_accepted_at_ms: p.privacy_accepted_at,
    })
}

/// Updates name, phone and marketing consent. Only these fields can change here.
#[server(prefix = "/api", endpoint = "update_profile")]
pub async fn update_profile(
    name: String,
    phone: Option<String>,
    marketing: Option<String>,
) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::auth;
    let me = crate::ssr::guard::require_user().await?;
    let name = auth::parse_name(&name)?;
    let phone = auth::parse_phone(phone.as_deref())?;
    let marketing = marketing.as_deref() == Some("on");
    domain::account::update_profile(&state().db, me.id, name, phone, marketing).await
}

/// Changes the password after checking the current one. Every other session ends; this one gets
/// a new id.
#[server(prefix = "/api", endpoint = "change_password")]
pub async fn change_password(current: String, new_password: String) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::auth;
    let me = crate::ssr::guard::require_user_during_setup().await?;
    let ok = auth::verify_password(
        me.password_hash.clone(),
        secrecy::SecretString::from(current),
    )
    .await
    .ok;
    if !ok {
        return Err(AppError::Invalid(
            "Your current password is not right.".into(),
        ));
    }
    auth::check_new_password(&new_password, &[&me.name, &me.email])?;
    let hash = auth::hash_password(secrecy::SecretString::from(new_password)).await?;
    let session = leptos_axum::extract::<tower_sessions::Session>()
        .await
        .map_err(|_| AppError::Internal)?;
    session.cycle_id().await.map_err(|_| AppError::Internal)?;
    let st = state();
    domain::account::password_changed(&st.db, &st.settings, &me, hash).await
}

/// Starts an email change: a confirmation link goes to the new address and a notice to the old.
/// The answer is the same whether or not the new address is free.
#[server(prefix = "/api", endpoint = "request_email_change")]
pub async fn request_email_change(password: String, new_email: String) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::auth;

    let me = crate::ssr::guard::require_user().await?;
    let ok = auth::verify_password(
        me.password_hash.clone(),
        secrecy::SecretString::from(password),
    )
    .await
    .ok;
    if !ok {
        return Err(AppError::Invalid("Your password is not right.".into()));
    }
    let new_email = auth::parse_email(&new_email)?;
    if new_email == me.email {
        return Err(AppError::Invalid(
            "That is already your email address.".into(),
        ));
    }
    let st = state();
    domain::account::request_email_change(&st.db, &st.settings, &me, new_email).await
}

/// Confirms an email change with the link sent to the new address.
#[server(prefix = "/api", endpoint = "confirm_email_change")]
pub async fn confirm_email_change(token: String) -> Result<(), AppError> {
    use crate::ssr::state;
    domain::account::confirm_email_change(&state().db, &token).await?;
    leptos_axum::redirect("/account?email_changed=1");
    Ok(())
}

/// Sends a reset link if the address has an account. The answer is always the same.
#[server(prefix = "/api", endpoint = "request_password_reset")]
pub async fn request_password_reset(email: String) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::auth;
    let st = state();
    if let Ok(email) = auth::parse_email(&email) {
        domain::account::request_password_reset(&st.db, &st.settings, &email).await?;
    }
    leptos_axum::redirect("/forgot-password/sent");
    Ok(())
}

/// Sets a new password with a reset link. Ends every session; the user then signs in.
#[server(prefix = "/api", endpoint = "reset_password")]
pub async fn reset_password(token: String, new_password: String) -> Result<(), AppError> {
    use crate::ssr::state;
    let st = state();
    domain::account::reset_password(&st.db, &st.settings, &token, new_password).await?;
    leptos_axum::redirect("/signin?reset=1");
    Ok(())
}

/// Accepts a staff invitation: sets the password and confirms the address. The new member of
/// staff then signs in and sets up two-step verification.
#[server(prefix = "/api", endpoint = "accept_invitation")]
pub async fn accept_invitation(token: String, new_password: String) -> Result<(), AppError> {
    use crate::ssr::state;
    domain::account::accept_invitation(&state().db, &token, new_password).await?;
    leptos_axum::redirect("/signin?invited=1");
    Ok(())
}

/// A new private calendar-feed link for the signed-in user; older links stop working.
#[server(prefix = "/api", endpoint = "new_calendar_feed")]
pub async fn new_calendar_feed() -> Result<String, AppError> {
    use crate::ssr::state;
    let me = crate::ssr::guard::require_user().await?;
    let st = state();
    domain::account::new_calendar_feed(&st.db, &st.settings, me.id).await
}

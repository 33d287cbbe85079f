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
    use domain::db;
    let me = crate::ssr::guard::require_user_during_setup().await?;
    let r = db::query_one(
        &state().db,
        "SELECT name, email, phone, marketing_consent, email_verified_at, privacy_notice_version, privacy_accepted_at FROM users WHERE id = ?",
        vec![me.id.into()],
    )
    .await?
    .ok_or(AppError::NotFound)?;
    Ok(Profile {
        name: db::col(&r, "name")?,
        email: db::col(&r, "email")?,
        phone: db::col(&r, "phone")?,
        marketing_consent: db::col(&r, "marketing_consent")?,
        email_verified: db::col::<Option<i64>>(&r, "email_verified_at")?.is_some(),
        privacy_notice_version: db::col(&r, "privacy_notice_version")?,
        privacy_accepted_at_ms: db::col(&r, "privacy_accepted_at")?,
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
    use domain::{audit, auth, db};
    let me = crate::ssr::guard::require_user().await?;
    let name = auth::parse_name(&name)?;
    let phone = auth::parse_phone(phone.as_deref())?;
    let marketing = marketing.as_deref() == Some("on");
    let st = state();
    let txn = db::begin_write(&st.db).await?;
    let now = db::now_ms();
    let was: bool = db::query_one(
        &txn,
        "SELECT marketing_consent FROM users WHERE id = ?",
        vec![me.id.into()],
    )
    .await?
    .map(|r| db::col(&r, "marketing_consent"))
    .transpose()?
    .unwrap_or(false);
    db::execute(
        &txn,
        "UPDATE users SET name = ?, phone = ?, marketing_consent = ?, marketing_consent_at = CASE WHEN marketing_consent <> ? THEN ? ELSE marketing_consent_at END, updated_at = ? WHERE id = ?",
        vec![name.into(), phone.into(), marketing.into(), marketing.into(), now.into(), now.into(), me.id.into()],
    )
    .await?;
    domain::crm::changed(&txn, me.id, "profile").await?;
    audit::record(
        &txn,
        Some(me.id),
        "account.profile",
        "user",
        &me.id.to_string(),
        "profile updated",
    )
    .await?;
    if was != marketing {
        audit::record(
            &txn,
            Some(me.id),
            "account.consent",
            "user",
            &me.id.to_string(),
            if marketing {
                "marketing consent given"
            } else {
                "marketing consent withdrawn"
            },
        )
        .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Changes the password after checking the current one. Every other session ends; this one gets
/// a new id.
#[server(prefix = "/api", endpoint = "change_password")]
pub async fn change_password(current: String, new_password: String) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::{audit, auth, db, email as mail};
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
    let txn = db::begin_write(&st.db).await?;
    // The new id is only known once the response saves the session: end every stored session of
    // this user; this one is written again under its new id when the response goes out.
    auth::set_password(&txn, me.id, hash, None).await?;
    mail::enqueue(
        &txn,
        &st.settings,
        Some(me.id),
        &me.email,
        mail::templates::password_changed(&st.settings, &me.name),
        &format!("password-changed:{}:{}", me.id, db::now_ms()),
    )
    .await?;
    audit::record(
        &txn,
        Some(me.id),
        "auth.password_changed",
        "user",
        &me.id.to_string(),
        "password changed by the user; other sessions ended",
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Starts an email change: a confirmation link goes to the new address and a notice to the old.
/// The answer is the same whether or not the new address is free.
#[server(prefix = "/api", endpoint = "request_email_change")]
pub async fn request_email_change(password: String, new_email: String) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::{audit, auth, db, email as mail};
    use model::mask_email;
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
    let txn = db::begin_write(&st.db).await?;
    if auth::tokens_issued_since(&txn, me.id, "change_email", db::now_ms() - 3_600_000).await? >= 5
    {
        return Err(AppError::RateLimited(
            "You've asked for several email changes in the last hour. Please wait a while.".into(),
        ));
    }
    let taken = auth::find_user_by_email(&txn, &new_email).await?.is_some();
    let now = db::now_ms();
    if !taken {
        let token = auth::issue_token_with(
            &txn,
            me.id,
            "change_email",
            24 * 3_600_000,
            Some(&new_email),
        )
        .await?;
        mail::enqueue(
            &txn,
            &st.settings,
            None,
            &new_email,
            mail::templates::email_change_confirm(&st.settings, &me.name, &token),
            &format!("email-change:{}:{now}", me.id),
        )
        .await?;
    }
    mail::enqueue(
        &txn,
        &st.settings,
        Some(me.id),
        &me.email,
        mail::templates::email_change_notice(&st.settings, &me.name, &mask_email(&new_email)),
        &format!("email-change-notice:{}:{now}", me.id),
    )
    .await?;
    audit::record(
        &txn,
        Some(me.id),
        "auth.email_change_requested",
        "user",
        &me.id.to_string(),
        &format!("change to {} requested", mask_email(&new_email)),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Confirms an email change with the link sent to the new address.
#[server(prefix = "/api", endpoint = "confirm_email_change")]
pub async fn confirm_email_change(token: String) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::{audit, auth, db};
    let st = state();
    let txn = db::begin_write(&st.db).await?;
    let expired = || {
        AppError::Invalid("This link has expired or was already used. Ask for the change again from your account page.".into())
    };
    let Some(t) = auth::consume_token(&txn, &token, "change_email").await? else {
        return Err(expired());
    };
    let new_email = t.payload.ok_or_else(expired)?;
    if auth::find_user_by_email(&txn, &new_email).await?.is_some() {
        return Err(AppError::Conflict(
            "That address now belongs to another account.".into(),
        ));
    }
    let now = db::now_ms();
    db::execute(
        &txn,
        "UPDATE users SET email = ?, email_verified_at = ?, updated_at = ? WHERE id = ?",
        vec![new_email.into(), now.into(), now.into(), t.user_id.into()],
    )
    .await?;
    domain::crm::changed(&txn, t.user_id, "email").await?;
    audit::record(
        &txn,
        Some(t.user_id),
        "auth.email_changed",
        "user",
        &t.user_id.to_string(),
        "email address changed and confirmed",
    )
    .await?;
    txn.commit().await?;
    leptos_axum::redirect("/account?email_changed=1");
    Ok(())
}

/// Sends a reset link if the address has an account. The answer is always the same.
#[server(prefix = "/api", endpoint = "request_password_reset")]
pub async fn request_password_reset(email: String) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::{audit, auth, db, email as mail};
    let st = state();
    if let Ok(email) = auth::parse_email(&email) {
        let txn = db::begin_write(&st.db).await?;
        if let Some(user) = auth::find_user_by_email(&txn, &email)
            .await?
            .filter(|u| u.active)
        {
            // At most 3 links an hour per account; more would only flood the inbox.
            if auth::tokens_issued_since(&txn, user.id, "reset_password", db::now_ms() - 3_600_000)
                .await?
                < 3
            {
                let token = auth::issue_token(&txn, user.id, "reset_password", 3_600_000).await?;
                mail::enqueue(
                    &txn,
                    &st.settings,
                    Some(user.id),
                    &user.email,
                    mail::templates::password_reset(&st.settings, &user.name, &token),
                    &format!("reset:{}:{}", user.id, db::now_ms()),
                )
                .await?;
                audit::record(
                    &txn,
                    Some(user.id),
                    "auth.reset_requested",
                    "user",
                    &user.id.to_string(),
                    "password reset link sent",
                )
                .await?;
            }
        }
        txn.commit().await?;
    }
    leptos_axum::redirect("/forgot-password/sent");
    Ok(())
}

/// Sets a new password with a reset link. Ends every session; the user then signs in.
#[server(prefix = "/api", endpoint = "reset_password")]
pub async fn reset_password(token: String, new_password: String) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::{audit, auth, db, email as mail};
    let st = state();
    // Check the rules before using up the token.
    let (user_id, name, email) = {
        let hash = auth::hash_token(token.trim());
        let r = db::query_one(&st.db, "SELECT t.user_id AS user_id, u.name AS name, u.email AS email FROM user_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ? AND t.purpose = 'reset_password' AND t.used_at IS NULL AND t.expires_at > ?", vec![hash.into(), db::now_ms().into()])
            .await?
            .ok_or_else(|| AppError::Invalid("This reset link has expired or was already used. Ask for a new one.".into()))?;
        (
            db::col::<i64>(&r, "user_id")?,
            db::col::<String>(&r, "name")?,
            db::col::<String>(&r, "email")?,
        )
    };
    auth::check_new_password(&new_password, &[&name, &email])?;
    let hash = auth::hash_password(secrecy::SecretString::from(new_password)).await?;
    let txn = db::begin_write(&st.db).await?;
    if auth::consume_token(&txn, &token, "reset_password")
        .await?
        .is_none_or(|t| t.user_id != user_id)
    {
        return Err(AppError::Invalid(
            "This reset link has expired or was already used. Ask for a new one.".into(),
        ));
    }
    auth::set_password(&txn, user_id, hash, None).await?;
    mail::enqueue(
        &txn,
        &st.settings,
        Some(user_id),
        &email,
        mail::templates::password_changed(&st.settings, &name),
        &format!("password-changed:{user_id}:{}", db::now_ms()),
    )
    .await?;
    audit::record(
        &txn,
        Some(user_id),
        "auth.password_reset",
        "user",
        &user_id.to_string(),
        "password reset with an emailed link; all sessions ended",
    )
    .await?;
    txn.commit().await?;
    leptos_axum::redirect("/signin?reset=1");
    Ok(())
}

/// Accepts a staff invitation: sets the password and confirms the address. The new member of
/// staff then signs in and sets up two-step verification.
#[server(prefix = "/api", endpoint = "accept_invitation")]
pub async fn accept_invitation(token: String, new_password: String) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::{audit, auth, db};
    let st = state();
    let invalid = || {
        AppError::Invalid(
            "This invitation has expired or was already used. Ask the business for a new one."
                .into(),
        )
    };
    let (user_id, name, email) = {
        let r = db::query_one(&st.db, "SELECT t.user_id AS user_id, u.name AS name, u.email AS email FROM user_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ? AND t.purpose = 'invite' AND t.used_at IS NULL AND t.expires_at > ?", vec![auth::hash_token(token.trim()).into(), db::now_ms().into()])
            .await?
            .ok_or_else(invalid)?;
        (
            db::col::<i64>(&r, "user_id")?,
            db::col::<String>(&r, "name")?,
            db::col::<String>(&r, "email")?,
        )
    };
    auth::check_new_password(&new_password, &[&name, &email])?;
    let hash = auth::hash_password(secrecy::SecretString::from(new_password)).await?;
    let txn = db::begin_write(&st.db).await?;
    if auth::consume_token(&txn, &token, "invite")
        .await?
        .is_none_or(|t| t.user_id != user_id)
    {
        return Err(invalid());
    }
    let now = db::now_ms();
    db::execute(&txn, "UPDATE users SET password_hash = ?, email_verified_at = COALESCE(email_verified_at, ?), updated_at = ? WHERE id = ?", vec![hash.into(), now.into(), now.into(), user_id.into()]).await?;
    audit::record(
        &txn,
        Some(user_id),
        "auth.invitation_accepted",
        "user",
        &user_id.to_string(),
        "staff invitation accepted",
    )
    .await?;
    txn.commit().await?;
    leptos_axum::redirect("/signin?invited=1");
    Ok(())
}

/// A new private calendar-feed link for the signed-in user; older links stop working.
#[server(prefix = "/api", endpoint = "new_calendar_feed")]
pub async fn new_calendar_feed() -> Result<String, AppError> {
    use crate::ssr::state;
    use domain::{audit, auth, db};
    let me = crate::ssr::guard::require_user().await?;
    let st = state();
    let txn = db::begin_write(&st.db).await?;
    let now = db::now_ms();
    db::execute(
        &txn,
        "UPDATE calendar_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
        vec![now.into(), me.id.into()],
    )
    .await?;
    let (token, hash) = auth::new_token();
    db::execute(
        &txn,
        "INSERT INTO calendar_tokens (user_id, token_hash, created_at) VALUES (?, ?, ?)",
        vec![me.id.into(), hash.into(), now.into()],
    )
    .await?;
    audit::record(
        &txn,
        Some(me.id),
        "account.calendar_feed",
        "user",
        &me.id.to_string(),
        "new calendar feed link; older links revoked",
    )
    .await?;
    txn.commit().await?;
    Ok(format!("{}/calendar/{token}.ics", st.settings.public_url))
}

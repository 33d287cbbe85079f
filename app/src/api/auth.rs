//! Sign-in, sign-out, sign-up and email verification.

use leptos::prelude::*;

use model::error::AppError;

/// Signs in and redirects to `next` (a path inside the portal) or the user's home.
#[server(prefix = "/api", endpoint = "sign_in")]
pub async fn sign_in(
    email: String,
    password: String,
    next: Option<String>,
) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::auth;
    let session = leptos_axum::extract::<tower_sessions::Session>()
        .await
        .map_err(|_| AppError::Internal)?;
    let next = next.filter(|n| is_local_path(n));
    match auth::sign_in(
        &state().db,
        &session,
        &email,
        secrecy::SecretString::from(password),
    )
    .await?
    {
        auth::SignedIn::NeedsCode(_) => {
            let q = next
                .map(|n| format!("?next={}", encode_query(&n)))
                .unwrap_or_default();
            leptos_axum::redirect(&format!("/signin/verify{q}"));
        }
        auth::SignedIn::Done(user) => {
            leptos_axum::redirect(&next.unwrap_or_else(|| home_of(&user).into()))
        }
    }
    Ok(())
}

/// The second step of signing in: a code from the authenticator app, or a recovery code.
#[server(prefix = "/api", endpoint = "verify_sign_in_code")]
pub async fn verify_sign_in_code(code: String, next: Option<String>) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::auth;
    let session = leptos_axum::extract::<tower_sessions::Session>()
        .await
        .map_err(|_| AppError::Internal)?;
    let user = auth::verify_second_factor(&state().db, &session, &code).await?;
    leptos_axum::redirect(
        &next
            .filter(|n| is_local_path(n))
            .unwrap_or_else(|| home_of(&user).into()),
    );
    Ok(())
}

#[cfg(feature = "ssr")]
fn home_of(user: &domain::auth::UserRecord) -> &'static str {
    use model::Role;
    if user.password_change_required {
        return "/account";
    }
    if user.needs_second_factor_setup() {
        return "/account/security";
    }
    match user.role {
        Role::Admin => "/admin",
        Role::Staff | Role::Customer => "/account",
    }
}

/// A path inside the portal (not `//host` or a full URL), safe to redirect to.
pub fn is_local_path(p: &str) -> bool {
    p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') && !p.contains("://")
}

#[cfg(feature = "ssr")]
fn encode_query(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Signs out: the session is deleted on the server.
#[server(prefix = "/api", endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::audit;
    if let Some(u) = crate::ssr::guard::current_user().await? {
        audit::record(
            &state().db,
            Some(u.id),
            "auth.signout",
            "user",
            &u.id.to_string(),
            "signed out",
        )
        .await?;
    }
    if let Ok(session) = leptos_axum::extract::<tower_sessions::Session>().await {
        session.flush().await.map_err(|_| AppError::Internal)?;
    }
    leptos_axum::redirect("/");
    Ok(())
}

/// Creates a customer account and sends the verification email. The answer is the same whether
/// or not the email already has an account (the existing owner gets a notice instead), so the
/// form cannot be used to find out who is a customer.
#[server(prefix = "/api", endpoint = "sign_up")]
pub async fn sign_up(
    name: String,
    email: String,
    phone: Option<String>,
    password: String,
    accept_privacy: Option<String>,
    marketing: Option<String>,
) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::{audit, auth, db, email as mail};
    let st = state();
    let name = auth::parse_name(&name)?;
    let email = auth::parse_email(&email)?;
    let phone = auth::parse_phone(phone.as_deref())?;
    if accept_privacy.as_deref() != Some("on") {
        return Err(AppError::Invalid(
            "Please read and accept the privacy notice to create an account.".into(),
        ));
    }
    auth::check_new_password(&password, &[&name, &email])?;
    let hash = auth::hash_password(secrecy::SecretString::from(password)).await?;
    let now = db::now_ms();
    let marketing = marketing.as_deref() == Some("on");
    let txn = db::begin_write(&st.db).await?;
    match auth::find_user_by_email(&txn, &email).await? {
        Some(existing) => {
            // Tell the owner, once a day at most; the form answers as for a new account.
            let message = mail::templates::signup_existing(&st.settings, &existing.name);
            mail::enqueue(
                &txn,
                &st.settings,
                Some(existing.id),
                &existing.email,
                message,
                &format!("signup-existing:{}:{}", existing.id, now / 86_400_000),
            )
            .await?;
            audit::record(
                &txn,
                Some(existing.id),
                "auth.signup_existing",
                "user",
                &existing.id.to_string(),
                "sign-up attempted with an existing email",
            )
            .await?;
        }
        None => {
            let row = db::query_one(
                &txn,
                "INSERT INTO users (email, name, phone, password_hash, role, status, privacy_notice_version, privacy_accepted_at, \
                 marketing_consent, marketing_consent_at, created_at, updated_at) VALUES (?, ?, ?, ?, 'customer', 'active', ?, ?, ?, ?, ?, ?) RETURNING id",
                vec![
                    email.clone().into(), name.clone().into(), phone.into(), hash.into(), st.settings.privacy_notice_version.clone().into(),
                    now.into(), marketing.into(), marketing.then_some(now).into(), now.into(), now.into(),
                ],
            )
            .await?
            .ok_or(AppError::Internal)?;
            let id: i64 = db::col(&row, "id")?;
            domain::crm::changed(&txn, id, "sign-up").await?;
            let token = auth::issue_token(&txn, id, "verify_email", 24 * 3_600_000).await?;
            let message = mail::templates::verify_email(&st.settings, &name, &token);
            mail::enqueue(
                &txn,
                &st.settings,
                Some(id),
                &email,
                message,
                &format!("verify:{id}:{now}"),
            )
            .await?;
            audit::record(
                &txn,
                Some(id),
                "auth.signup",
                "user",
                &id.to_string(),
                &format!(
                    "customer signed up; privacy notice {} accepted; marketing consent {}",
                    st.settings.privacy_notice_version,
                    if marketing { "given" } else { "not given" }
                ),
            )
            .await?;
        }
    }
    txn.commit().await?;
    leptos_axum::redirect("/signup/done");
    Ok(())
}

/// Confirms an email address with the token from the verification email.
#[server(prefix = "/api", endpoint = "verify_email")]
pub async fn verify_email(token: String) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::{audit, auth, db, email as mail};
    let st = state();
    let txn = db::begin_write(&st.db).await?;
    let Some(auth::ConsumedToken { user_id, .. }) =
        auth::consume_token(&txn, &token, "verify_email").await?
    else {
        return Err(AppError::Invalid("This confirmation link has expired or was already used. Sign in and ask for a new one.".into()));
    };
    let now = db::now_ms();
    db::execute(&txn, "UPDATE users SET email_verified_at = COALESCE(email_verified_at, ?), updated_at = ? WHERE id = ?", vec![now.into(), now.into(), user_id.into()]).await?;
    domain::crm::changed(&txn, user_id, "verified").await?;
    if let Some(user) = auth::find_user(&txn, user_id).await? {
        mail::enqueue(
            &txn,
            &st.settings,
            Some(user_id),
            &user.email,
            mail::templates::welcome(&st.settings, &user.name),
            &format!("welcome:{user_id}"),
        )
        .await?;
    }
    audit::record(
        &txn,
        Some(user_id),
        "auth.email_verified",
        "user",
        &user_id.to_string(),
        "email address confirmed",
    )
    .await?;
    txn.commit().await?;
    leptos_axum::redirect("/signin?verified=1");
    Ok(())
}
